//! Formats beyond the `image` crate's usual six: JPEG XL against its reference decoder (`djxl`),
//! with orientation; the cheap extras (TGA, PNM, QOI, ICO) by round trip; and formats this build
//! cannot decode, reported with what would read them. Fixtures: `tests/fixtures/formats/`
//! (made by `make.sh` there with Debian's reference encoders).

use std::path::{Path, PathBuf};

use clipsearch::preprocess::decode::{decode_bytes, decode_file};
use clipsearch::Error;
use image::{DynamicImage, ImageFormat, RgbImage};

fn formats() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

/// Largest difference between two images of the same size, in levels.
fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

/// jxl-oxide against libjxl's `djxl`, for a lossy (XYB) image and for a recompressed JPEG with
/// EXIF orientation 6: within one level (observed: printed), and turned like `djxl` turns it.
#[test]
fn jpeg_xl_decodes_as_djxl_does_with_its_orientation() {
    for (jxl, want_dims) in [("photo.jxl", (96, 64)), ("orient6.jxl", (64, 96))] {
        let ours = decode_file(&formats().join(jxl)).unwrap();
        let reference = decode_file(&formats().join(format!("{jxl}.djxl.png"))).unwrap();
        assert_eq!(ours.dimensions(), want_dims, "{jxl}: orientation");
        let d = max_diff(&ours, &reference);
        eprintln!("{jxl}: max difference to djxl {d} levels");
        assert!(d <= 1, "{jxl}: {d} levels from djxl");
    }
}

#[test]
fn cheap_extra_formats_round_trip() {
    let img = RgbImage::from_fn(33, 21, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 11) as u8, 90])
    });
    for (format, name) in [
        (ImageFormat::Tga, "a.tga"),
        (ImageFormat::Pnm, "a.ppm"),
        (ImageFormat::Qoi, "a.qoi"),
        (ImageFormat::Ico, "a.ico"),
    ] {
        let mut bytes = Vec::new();
        // Icons are RGBA (an ICO's PNG must be); opaque here, so the RGB comes back as it was.
        let source = if format == ImageFormat::Ico {
            DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(img.clone()).to_rgba8())
        } else {
            DynamicImage::ImageRgb8(img.clone())
        };
        source
            .write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        let back =
            decode_bytes(Path::new(name), &bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(back, img, "{format:?}");
    }
}

#[test]
fn formats_this_build_cannot_decode_are_named_with_what_would_read_them() {
    let dng = {
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        b.resize(64, 0);
        b
    };
    let mut cases = Vec::new();
    if !cfg!(feature = "libraw") {
        cases.push((
            "IMG_0001.DNG".to_string(),
            dng,
            "camera RAW (DNG): it embeds no JPEG preview, and this build does not develop \
             sensor data"
                .to_string(),
        ));
    }
    if !cfg!(feature = "heif") {
        for name in ["photo.heic", "photo.avif"] {
            let kind = if name.ends_with("heic") {
                "HEIC"
            } else {
                "AVIF"
            };
            cases.push((
                name.to_string(),
                std::fs::read(formats().join(name)).unwrap(),
                format!("{kind}: this build has no {kind} support (build clipsearch with `--features heif`"),
            ));
        }
    }
    for (name, bytes, want) in cases {
        match decode_bytes(Path::new(&name), &bytes) {
            Err(Error::UnsupportedFormat { reason, .. }) => {
                assert!(reason.starts_with(&want), "{name}: {reason}")
            }
            other => panic!("{name}: {:?}", other.map(|i| i.dimensions())),
        }
    }
    // Not an image at all is still said so.
    let e = decode_bytes(Path::new("notes.jpg"), b"hello, world").unwrap_err();
    assert!(e.to_string().contains("not an image"), "{e}");
}

/// HEIC and AVIF through libheif against the reference decoders: libheif's own `heif-convert`
/// (which applies `irot`), libavif's `avifdec`, and for HEIC also ffmpeg's HEVC decoder, which
/// shares no code with libheif's (libde265). Bounds in levels, worst and mean over the pixels:
/// heif-convert observed 0 for HEIC and 0 for the rotated AVIF; avifdec 1 (its YUV to RGB
/// conversion rounds differently); ffmpeg worst 2, mean 0.65 (swscale upsamples the chroma with
/// its own filter: a decode that read the stream wrongly is tens of levels off).
#[cfg(feature = "heif")]
#[test]
fn heic_and_avif_decode_as_the_reference_decoders_do_with_their_rotation() {
    for (file, reference, dims, worst, mean) in [
        ("photo.heic", "photo.heic.ref.png", (96, 64), 1, 0.5),
        ("photo.heic", "photo.heic.ffmpeg.png", (96, 64), 2, 1.0),
        ("photo.avif", "photo.avif.avifdec.png", (96, 64), 1, 0.5),
        ("irot1.avif", "irot1.avif.ref.png", (64, 96), 1, 0.5),
    ] {
        let ours = decode_file(&formats().join(file)).unwrap();
        let want = decode_file(&formats().join(reference)).unwrap();
        assert_eq!(ours.dimensions(), dims, "{file}: rotation");
        assert_eq!(want.dimensions(), dims, "{reference}");
        let d = max_diff(&ours, &want);
        let m = mean_diff(&ours, &want);
        eprintln!("{file}: to {reference}: worst {d}, mean {m:.3} levels");
        assert!(d <= worst, "{file}: {d} levels from {reference}");
        assert!(m <= mean, "{file}: mean {m} levels from {reference}");
    }
}

#[cfg(feature = "heif")]
fn mean_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    let (a, b) = (a.as_raw(), b.as_raw());
    assert_eq!(a.len(), b.len());
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    sum as f64 / a.len() as f64
}

/// Camera RAW through its embedded preview: the largest one (the NEF-style file also holds a
/// small thumbnail), byte for byte the JPEG that exiftool extracts, turned by the container's
/// Orientation (DNG: 6, 90° clockwise; NEF: 8, 90° anticlockwise). A RAW whose only preview is
/// too small is refused with what to do.
#[test]
fn camera_raw_is_read_through_its_largest_preview_turned_by_the_container() {
    use image::metadata::Orientation;
    for (file, orientation) in [
        ("preview.dng", Orientation::Rotate90),
        ("preview.nef", Orientation::Rotate270),
    ] {
        let ours = decode_file(&formats().join(file)).unwrap();
        let preview = decode_file(&formats().join(format!("{file}.exiftool.jpg"))).unwrap();
        assert_eq!(preview.dimensions(), (512, 384));
        let mut want = DynamicImage::ImageRgb8(preview);
        want.apply_orientation(orientation);
        assert_eq!(ours, want.into_rgb8(), "{file}");
    }
    // Its only preview too small: developed with `libraw`, else refused with what to do.
    match decode_file(&formats().join("small.dng")) {
        Err(Error::UnsupportedFormat { reason, .. }) if !cfg!(feature = "libraw") => {
            assert!(
                reason.contains("largest embedded preview is 96x64, under 336 px")
                    && reason.contains("--features libraw"),
                "{reason}"
            )
        }
        // The fixture's "sensor" is 8x8 bytes of noise: LibRaw develops it, or says why not.
        other if cfg!(feature = "libraw") => match other {
            Ok(img) => {
                eprintln!("small.dng developed: {:?}", img.dimensions());
                assert!(img.width() > 0 && img.height() > 0, "an empty development");
            }
            Err(e) => {
                let e = e.to_string();
                eprintln!("small.dng: {e}");
                assert!(
                    e.contains("LibRaw") || e.contains("libraw"),
                    "says why: {e}"
                );
            }
        },
        other => panic!("{:?}", other.map(|i| i.dimensions())),
    }
}

/// Sensor data developed by LibRaw, against rawpy's development of the same file with the same
/// library (rawpy's wheel bundles a newer LibRaw than Debian's: within the levels stated).
#[cfg(feature = "libraw")]
#[test]
fn raw_without_a_preview_is_developed_as_rawpy_develops_it() {
    let ours = decode_file(&formats().join("sensor.dng")).unwrap();
    let want = decode_file(&formats().join("sensor.dng.rawpy.ppm")).unwrap();
    assert_eq!(ours.dimensions(), (64, 96), "turned by its orientation");
    let d = max_diff(&ours, &want);
    let mean = ours
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b) as f64)
        .sum::<f64>()
        / ours.as_raw().len() as f64;
    eprintln!("sensor.dng: max difference to rawpy {d} levels, mean {mean:.2}");
    assert!(d <= 1, "{d} levels from rawpy");
}

/// TIFF variants the decoder lacks are named, with a way out.
#[test]
fn unsupported_tiff_variants_say_what_they_are() {
    // A plain 8x8 RGB TIFF, then the same header claiming other compressions / colour spaces.
    let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]));
    let mut tiff = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut tiff), ImageFormat::Tiff)
        .unwrap();
    let ifd = u32::from_le_bytes(tiff[4..8].try_into().unwrap()) as usize;
    let n = u16::from_le_bytes(tiff[ifd..ifd + 2].try_into().unwrap()) as usize;
    let set = |tiff: &[u8], tag: u16, value: u16| {
        let mut t = tiff.to_vec();
        let at = (0..n)
            .map(|i| ifd + 2 + 12 * i)
            .find(|&at| u16::from_le_bytes(t[at..at + 2].try_into().unwrap()) == tag)
            .expect("tag present");
        t[at + 8..at + 10].copy_from_slice(&value.to_le_bytes());
        t
    };
    for (tag, value, want) in [
        (
            259,
            6,
            "TIFF with old-style JPEG compression is not supported",
        ),
        (259, 34925, "TIFF with LZMA compression is not supported"),
        (262, 9, "TIFF in ICC or ITU L*a*b* colour is not supported"),
    ] {
        let e = decode_bytes(Path::new("x.tif"), &set(&tiff, tag, value)).unwrap_err();
        assert!(e.to_string().contains(want), "{tag}={value}: {e}");
    }
    assert!(decode_bytes(Path::new("x.tif"), &tiff).is_ok());
}

/// Variants the `image` crate refuses that Pillow reads: 2- and 4-bit grey TIFF (a ramp whose
/// values the fixture script states), and a BMP with an OS/2 2.x header (the same pixels as its
/// OS/2 1.x twin, which `image` reads itself); an RLE8 BMP; BMPs whose plane count is not 1.
#[test]
fn low_bit_grey_tiff_and_os2_bmp_decode_as_pillow_does() {
    let odd = formats().join("../odd");
    for bits in [2u32, 4] {
        let img = decode_file(&odd.join(format!("grey{bits}.tif"))).unwrap();
        assert_eq!(img.dimensions(), (16, 8));
        let max = (1 << bits) - 1;
        for x in 0..16u32 {
            let want = (x * max / 15 * 255 / max) as u8;
            assert_eq!(img.get_pixel(x, 3).0, [want; 3], "{bits}-bit, x = {x}");
        }
    }
    let v1 = decode_file(&odd.join("os2v1.bmp")).unwrap();
    let v2 = decode_file(&odd.join("os2v2.bmp")).unwrap();
    assert_eq!(v1.dimensions(), (8, 4));
    assert_eq!(v2, v1);
    // Bottom-up rows: the file's first row (y = 0 there) is the picture's last.
    assert_eq!(v1.get_pixel(2, 3).0, [100, 0, 60]);
    let rle = decode_file(&odd.join("rle8.bmp")).unwrap();
    assert_eq!(rle.get_pixel(0, 0).0, [180; 3]);
    // A plane count other than 1, which Pillow ignores (the `image` crate refuses the file):
    // the same pixels as the file that says 1, for a Windows and an OS/2 1.x header.
    for (name, at) in [("rle8.bmp", 26), ("os2v1.bmp", 22)] {
        let bytes = std::fs::read(odd.join(name)).unwrap();
        let want = decode_bytes(Path::new(name), &bytes).unwrap();
        for planes in [0u16, 3] {
            let mut b = bytes.clone();
            b[at..at + 2].copy_from_slice(&planes.to_le_bytes());
            let got = decode_bytes(Path::new(name), &b).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, want, "{name} with {planes} planes");
        }
    }
}

/// Files Pillow reads despite a defect: a GIF without any colour table (index i is grey i) and
/// a JPEG with stray bytes before a marker (libjpeg skips them: the same pixels as without).
#[test]
fn a_gif_without_palette_and_a_jpeg_with_stray_bytes_decode_as_pillow_does() {
    let odd = formats().join("../odd");
    let gif = decode_file(&odd.join("no_palette.gif")).unwrap();
    assert_eq!(gif.dimensions(), (16, 8));
    // Pillow stored the ramp as palette indices 0..15; without the palette, index x is grey x
    // (what Pillow itself reads back from this file).
    for x in 0..16u32 {
        assert_eq!(gif.get_pixel(x, 5).0, [x as u8; 3]);
    }
    let stray = decode_file(&odd.join("junk_before_sos.jpg")).unwrap();
    let clean = decode_file(&formats().join("../reference/images/chelsea.jpg")).unwrap();
    assert_eq!(stray, clean);
}
