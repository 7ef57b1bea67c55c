//! DCT-scaled JPEG decoding (`clipsearch index --fast`) against exact decoding, on the real
//! photographs among the fixtures, with the tiny model (64 px input, so every fixture JPEG is at
//! least twice the target and takes the scaled path).
//!
//! Bound: cosine >= 0.995 between the embedding from exact decoding and from scaled decoding.

use std::path::Path;

use clipsearch::embedding::dot;
use clipsearch::model::{ClipModel, ModelFiles, Towers};
use clipsearch::preprocess::decode::{decode_bytes, decode_bytes_with, DecodeMode};
use clipsearch::preprocess::Preprocessor;

const BOUND: f32 = 0.995;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn scaled_decoding_stays_within_the_bound_and_really_scales() {
    let files = ModelFiles::local(&fixtures().join("tiny-clip")).unwrap();
    let model = ClipModel::load(&files, Towers::Image).unwrap();
    let image = model.image().unwrap();
    let exact = image.preprocessor().clone();
    let fast = Preprocessor::fast(exact.config.clone());
    let dir = fixtures().join("reference/images");
    for path in [
        dir.join("astronaut.jpg"),
        dir.join("chelsea.jpg"),
        dir.join("rocket.jpg"),
        dir.join("chelsea_exif_orient6.jpg"),
        // Progressive (Pillow's default script): at 1/8 only its DC scans are decoded.
        fixtures().join("progressive.jpg"),
    ] {
        let name = path.file_name().unwrap().to_string_lossy();
        let bytes = std::fs::read(&path).unwrap();
        let full = decode_bytes(&path, &bytes).unwrap();
        let small = decode_bytes_with(&path, &bytes, fast.decode).unwrap();
        assert!(
            small.width() < full.width() && small.height() < full.height(),
            "{name}: not scaled ({:?} vs {:?})",
            small.dimensions(),
            full.dimensions()
        );
        assert!(
            small.width().min(small.height()) >= 64,
            "{name}: below the model input"
        );
        // Orientation is applied on the scaled path too: same aspect as the exact decode.
        assert_eq!(
            small.width() > small.height(),
            full.width() > full.height(),
            "{name}: orientation"
        );
        let a = image
            .embed_pixels(&exact.load_file(&path).unwrap())
            .unwrap()
            .remove(0);
        let b = image
            .embed_pixels(&fast.load_file(&path).unwrap())
            .unwrap()
            .remove(0);
        let cos = dot(&a, &b);
        eprintln!(
            "{name}: {:?} -> {:?}, cosine {cos}",
            full.dimensions(),
            small.dimensions()
        );
        assert!(cos >= BOUND, "{name}: cosine {cos} < {BOUND}");
    }
}

#[test]
fn other_formats_and_small_jpegs_decode_exactly() {
    let dir = fixtures().join("reference/images");
    let png = dir.join("coffee.png");
    let bytes = std::fs::read(&png).unwrap();
    let mode = DecodeMode::Scaled { min_short: 64 };
    assert_eq!(
        decode_bytes_with(&png, &bytes, mode).unwrap(),
        decode_bytes(&png, &bytes).unwrap()
    );
    // 300 px short side < 2 x 224: no scaling for a ViT-B/32-sized target.
    let jpg = dir.join("chelsea.jpg");
    let bytes = std::fs::read(&jpg).unwrap();
    let mode = DecodeMode::Scaled { min_short: 224 };
    assert_eq!(
        decode_bytes_with(&jpg, &bytes, mode).unwrap(),
        decode_bytes(&jpg, &bytes).unwrap()
    );
    // A truncated JPEG is still refused.
    let e = decode_bytes_with(
        &jpg,
        &bytes[..bytes.len() / 2],
        DecodeMode::Scaled { min_short: 64 },
    );
    assert!(e.unwrap_err().to_string().contains("truncated"));
}
