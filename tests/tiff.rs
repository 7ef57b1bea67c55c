//! TIFF variants that scanners, archives and photo editors write, against the pixels Pillow
//! reads from them (through libtiff), as transformers' `convert_rgb` hands them on. Fixtures:
//! `tests/fixtures/tiff/` (made by `make.py` there with Pillow 13.0 and libtiff's `tiffcp`).

use std::path::{Path, PathBuf};

use clipsearch::preprocess::decode::decode_file;

fn tiff() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiff")
}

/// Worst and mean difference in levels between our decode of `name` and Pillow's.
fn against_pillow(name: &str) -> (u8, f64) {
    let ours = decode_file(&tiff().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = image::open(tiff().join(format!("{name}.pillow.png")))
        .unwrap()
        .into_rgb8();
    assert_eq!(ours.dimensions(), want.dimensions(), "{name}");
    assert_eq!(ours.dimensions(), (72, 52), "{name}");
    let d: Vec<u8> = ours
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let mean = d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
    (*d.iter().max().unwrap(), mean)
}

/// The same samples as Pillow, to the level: libjpeg decodes JPEG-in-TIFF for both (YCbCr
/// converted by libjpeg), palettes take the colour map's high bytes, separate planes and BigTIFF
/// are only a different arrangement of the same bytes, and 1-bit faxes and LSB-first bits are
/// black or white.
#[test]
fn tiff_variants_decode_as_pillow_reads_them() {
    for name in [
        "jpeg_ycbcr_strips.tif",
        "jpeg_ycbcr_tiles.tif",
        "jpeg_rgb_strips.tif",
        "jpeg_cmyk.tif",
        "palette8.tif",
        "palette8_lzw.tif",
        "palette_pages.tif",
        "planar_tiled.tif",
        "planar_tiled_rgba.tif",
        "planar_strips.tif",
        "bigtiff.tif",
        "bigtiff_lzw.tif",
        "fax_g3.tif",
        "bits_lsb_first.tif",
        "fax_g4_lsb_first.tif",
    ] {
        let (worst, mean) = against_pillow(name);
        eprintln!("{name}: worst {worst}, mean {mean:.3} levels from Pillow");
        assert_eq!(worst, 0, "{name}: {worst} levels from Pillow (mean {mean})");
    }
}

/// CIELab: Pillow converts through LittleCMS's interpolated tables, we compute the same
/// transform (D50 Lab to sRGB) in floating point. Observed: worst 3 levels, mean 0.054.
#[test]
fn cielab_tiff_converts_to_srgb_as_pillow_does() {
    let (worst, mean) = against_pillow("lab.tif");
    eprintln!("lab.tif: worst {worst}, mean {mean:.3} levels from Pillow");
    assert!(worst <= 3 && mean <= 0.2, "worst {worst}, mean {mean}");
}
