//! Decoding time per megapixel for each format, on one photo-like 4000x3000 picture encoded in
//! each (the encoders: the `image` crate's; `cjxl`, `heif-enc`, `avifenc` and `tiffcp` when on
//! PATH (Debian: libjxl-tools, libheif-examples, libavif-bin, libtiff-tools); a DNG wrapped
//! around the JPEG for camera RAW).
//! Median of 3 decodes, one thread, through the same entry point the indexer uses.
//! Run: `cargo bench -p clipsearch --bench formats` (add `--features heif,jpeg-simd` for those).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clipsearch::preprocess::decode::decode_bytes;
use image::{DynamicImage, ImageFormat, RgbImage};

const W: u32 = 4000;
const H: u32 = 3000;

fn picture() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        let (fx, fy) = (x as f32 / W as f32, y as f32 / H as f32);
        let n = ((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) >> 13) % 23;
        image::Rgb([
            (127.0 + 110.0 * (9.0 * fx + 4.0 * fy).sin()) as u8 + n as u8,
            (127.0 + 110.0 * (13.0 * fx * fy).cos()) as u8,
            (200.0 * (1.0 - fx * fy)) as u8 + (n / 2) as u8,
        ])
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// Runs an external encoder `tool ARGS... IN OUT` if it exists; the output's bytes.
fn external(
    tool: &str,
    before: &[&str],
    input: &Path,
    out: &Path,
    after: &[&str],
) -> Option<Vec<u8>> {
    let ok = Command::new(tool)
        .args(before)
        .arg(input)
        .args(after)
        .arg(out)
        .output()
        .ok()?
        .status
        .success();
    ok.then(|| std::fs::read(out).ok()).flatten()
}

/// A minimal DNG: IFD0 is the JPEG as a reduced-resolution image (see tests/fixtures/formats).
fn dng_around(jpeg: &[u8]) -> Vec<u8> {
    let mut d = b"II*\0".to_vec();
    let entries: [(u16, u16, u32, u32); 6] = [
        (254, 4, 1, 1),
        (256, 4, 1, W),
        (257, 4, 1, H),
        (259, 3, 1, 7),
        (273, 4, 1, 8),
        (279, 4, 1, jpeg.len() as u32),
    ];
    let ifd = 8 + jpeg.len() as u32 + (jpeg.len() as u32 % 2);
    d.extend_from_slice(&ifd.to_le_bytes());
    d.extend_from_slice(jpeg);
    if jpeg.len() % 2 == 1 {
        d.push(0);
    }
    d.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in entries {
        d.extend_from_slice(&tag.to_le_bytes());
        d.extend_from_slice(&kind.to_le_bytes());
        d.extend_from_slice(&count.to_le_bytes());
        d.extend_from_slice(&value.to_le_bytes());
    }
    d.extend_from_slice(&0u32.to_le_bytes());
    d
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let img = picture();
    let png = encode(&img, ImageFormat::Png);
    let png_path = tmp.path().join("in.png");
    std::fs::write(&png_path, &png).unwrap();
    let jpeg = {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    };
    let mut cases: Vec<(String, PathBuf, Vec<u8>)> = vec![
        ("JPEG (q90)".into(), "a.jpg".into(), jpeg.clone()),
        ("PNG".into(), "a.png".into(), png.clone()),
        (
            "WebP (lossless)".into(),
            "a.webp".into(),
            encode(&img, ImageFormat::WebP),
        ),
        (
            "TIFF".into(),
            "a.tif".into(),
            encode(&img, ImageFormat::Tiff),
        ),
        ("BMP".into(), "a.bmp".into(), encode(&img, ImageFormat::Bmp)),
        ("TGA".into(), "a.tga".into(), encode(&img, ImageFormat::Tga)),
        ("PNM".into(), "a.ppm".into(), encode(&img, ImageFormat::Pnm)),
        ("QOI".into(), "a.qoi".into(), encode(&img, ImageFormat::Qoi)),
        ("GIF".into(), "a.gif".into(), encode(&img, ImageFormat::Gif)),
        (
            "camera RAW (DNG, its JPEG preview)".into(),
            "a.dng".into(),
            dng_around(&jpeg),
        ),
    ];
    let jxl = tmp.path().join("a.jxl");
    match external("cjxl", &[], &png_path, &jxl, &["-d", "1.0"]) {
        Some(b) => cases.push(("JPEG XL (cjxl -d 1)".into(), "a.jxl".into(), b)),
        None => println!("no cjxl: JPEG XL left out"),
    }
    let heic = tmp.path().join("a.heic");
    match external("heif-enc", &["-q", "80"], &png_path, &heic, &["-o"]) {
        Some(b) => cases.push(("HEIC (heif-enc -q 80)".into(), "a.heic".into(), b)),
        None => println!("no heif-enc: HEIC left out"),
    }
    let avif = tmp.path().join("a.avif");
    match external("avifenc", &[], &png_path, &avif, &[]) {
        Some(b) => cases.push(("AVIF (avifenc)".into(), "a.avif".into(), b)),
        None => println!("no avifenc: AVIF left out"),
    }
    // TIFF variants read by src/preprocess/tiff.rs, written by libtiff's tiffcp (Debian:
    // libtiff-tools) from the plain TIFF.
    let tif = tmp.path().join("a.tif");
    std::fs::write(&tif, encode(&img, ImageFormat::Tiff)).unwrap();
    for (label, args) in [
        (
            "TIFF, JPEG in 256 px tiles (tiffcp -c jpeg:90 -t)",
            &["-c", "jpeg:90", "-t"][..],
        ),
        (
            "TIFF, separate planes in tiles (tiffcp -p separate -t)",
            &["-p", "separate", "-t"],
        ),
        ("BigTIFF, LZW (tiffcp -8 -c lzw)", &["-8", "-c", "lzw"]),
    ] {
        let out = tmp.path().join(format!("v{}.tif", cases.len()));
        match external("tiffcp", args, &tif, &out, &[]) {
            Some(b) => cases.push((label.into(), out.file_name().unwrap().into(), b)),
            None => println!("no tiffcp: {label} left out"),
        }
    }
    let mp = (W * H) as f64 / 1e6;
    println!("decoding a {W}x{H} picture ({mp:.0} MP), median of 3, one thread:");
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| {
            for (name, path, bytes) in &cases {
                let mut times = Vec::new();
                let mut outcome = String::new();
                for _ in 0..3 {
                    let t = Instant::now();
                    match decode_bytes(path, bytes) {
                        Ok(rgb) => assert_eq!(rgb.dimensions(), (W, H), "{name}"),
                        Err(e) => outcome = format!(" ({e})"),
                    }
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                times.sort_by(f64::total_cmp);
                println!(
                    "{name:38} {:7.1} ms  {:6.1} ms/MP  {:6.1} MB file{outcome}",
                    times[1],
                    times[1] / mp,
                    bytes.len() as f64 / 1e6
                );
            }
        });
}
