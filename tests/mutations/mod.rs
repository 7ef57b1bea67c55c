//! Damaged image files for the tests that prove no file can stop a run: small images in every
//! format the default build reads (written by the `image` crate's encoders, plus committed
//! fixtures that are hard to write), and deterministic truncations, bit flips and overwritten
//! runs of each.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbImage};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixtures_dir() -> std::path::PathBuf {
    let here = fixtures();
    if here.is_dir() {
        here
    } else {
        // Tests of the CLI package run with its manifest dir, one level down.
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }
}

fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x ^ y) * 3) as u8])
    })
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// `(name, bytes)` of every base file.
pub fn base_files() -> Vec<(String, Vec<u8>)> {
    let rgb = DynamicImage::ImageRgb8(picture(48, 36));
    let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(picture(40, 40)).to_rgba8());
    let grey16 = DynamicImage::ImageLuma16(rgb.to_luma16());
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&picture(64, 48))
        .unwrap();
    let mut grey_jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut grey_jpeg, 85)
        .encode_image(&rgb.to_luma8())
        .unwrap();
    let mut files = vec![
        ("rgb.png".to_string(), encode(rgb.clone(), ImageFormat::Png)),
        ("rgba.png".into(), encode(rgba.clone(), ImageFormat::Png)),
        ("grey16.png".into(), encode(grey16, ImageFormat::Png)),
        ("baseline.jpg".into(), jpeg),
        ("grey.jpg".into(), grey_jpeg),
        ("anim.gif".into(), encode(rgba.clone(), ImageFormat::Gif)),
        ("rgb.bmp".into(), encode(rgb.clone(), ImageFormat::Bmp)),
        ("rgb.tif".into(), encode(rgb.clone(), ImageFormat::Tiff)),
        ("lossless.webp".into(), encode(rgba, ImageFormat::WebP)),
    ];
    // JPEG XL is decoded in every build; HEIC and AVIF only with `--features heif` (else they
    // are refused before any decoder runs).
    for name in [
        "progressive.jpg",
        "odd/tiled_planar.tif",
        // Read by our own code (src/preprocess/quirks.rs), not the `image` crate's.
        "odd/grey4.tif",
        // TIFF variants read by src/preprocess/tiff.rs: JPEG tiles, an LZW palette, CIELab,
        // RGBA planes in tiles, BigTIFF, Group 3 fax, LSB-first Group 4.
        "tiff/jpeg_ycbcr_tiles.tif",
        "tiff/palette8_lzw.tif",
        "tiff/lab.tif",
        "tiff/planar_tiled_rgba.tif",
        "tiff/bigtiff_lzw.tif",
        "tiff/fax_g3.tif",
        "tiff/fax_g4_lsb_first.tif",
        "odd/os2v2.bmp",
        "odd/no_palette.gif",
        "formats/photo.jxl",
        "formats/photo.heic",
        "formats/irot1.avif",
        "formats/preview.dng",
        "formats/preview.nef",
        // Sensor data alone: developed by LibRaw with the `libraw` feature.
        "formats/sensor.dng",
        // Full EXIF (dates, GPS, camera) in JPEG, WebP and HEIC, and JPEG XL's compressed box:
        // the metadata reader gets the same damage as the decoders.
        "exif/lisbon.jpg",
        "exif/tokyo.webp",
        "exif/phone.heic",
        "formats/orient6.jxl",
    ] {
        let bytes = std::fs::read(fixtures_dir().join(name)).unwrap();
        files.push((name.replace('/', "_"), bytes));
    }
    files
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `per_kind` truncations, bit flips and overwritten runs of `bytes`, deterministically (half of
/// the flips and runs land in the first 256 bytes, where the headers are).
pub fn mutations(bytes: &[u8], per_kind: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(3 * per_kind);
    let len = bytes.len();
    for k in 0..per_kind {
        let cut = (len * (k + 1) / (per_kind + 1)).min(len - 1);
        out.push((format!("cut{cut}"), bytes[..cut].to_vec()));
    }
    let position = |rng: &mut Rng| {
        if rng.next().is_multiple_of(2) {
            rng.below(len.min(256))
        } else {
            rng.below(len)
        }
    };
    for _ in 0..per_kind {
        let at = position(&mut rng);
        let bit = rng.below(8);
        let mut b = bytes.to_vec();
        b[at] ^= 1 << bit;
        out.push((format!("flip{at}.{bit}"), b));
    }
    for _ in 0..per_kind {
        let at = position(&mut rng);
        let n = 1 + rng.below(16);
        let mut b = bytes.to_vec();
        for x in b.iter_mut().skip(at).take(n) {
            *x = rng.next() as u8;
        }
        out.push((format!("run{at}+{n}"), b));
    }
    out
}
