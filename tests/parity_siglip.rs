//! Parity with the Python reference for the SigLIP family (transformers 5.24 `SiglipModel`,
//! `SiglipImageProcessorPil`, `GemmaTokenizer`, PyTorch 2.15, Pillow 12) on the tiny random
//! SigLIP 2-style checkpoint in `tests/fixtures/tiny-siglip`, written with its reference outputs
//! by `tools/fixtures/make_tiny_siglip.py`.
//!
//! Tolerances (the issue's, with what is observed on this project's machine, printed with
//! `--nocapture`):
//! - token ids: identical, padded to the model's 64 positions as SigLIP was trained;
//! - preprocessing (bilinear resize to the square, no crop, mean/std 0.5) from PNG and JPEG
//!   files: max abs <= 1e-6 (bit-exact resize and libjpeg decoding);
//! - text and image features: max abs <= 2e-5 (observed below 2e-6);
//! - logits (`exp(scale) * cos + bias`) <= 1e-4, sigmoid probabilities <= 1e-5;
//! - end-to-end file embeddings: cosine >= 0.99999 (observed >= 0.99999976).

mod common;

use clipsearch::embedding::{dot, normalize};
use clipsearch::model::{ClipModel, Family};
use common::{assert_rows_within, fixtures, max_abs, Reference};

/// About 10x the largest deviation observed (AMD EPYC Zen 2, AVX2, and earlier on Zen 5 with
/// AVX-512: 1.4e-6 at most): a real departure from the reference shows, rounding does not.
const FEATURES: f32 = 2e-5;
const PIXELS: f32 = 1e-6;
/// Logits are features scaled by exp(scale) (about 10 here), so their bound stays 1e-4.
const LOGITS: f32 = 1e-4;

fn model() -> ClipModel {
    common::model("tiny-siglip")
}

#[test]
fn the_family_is_read_from_the_checkpoint() {
    let m = model();
    assert!(
        matches!(m.config.family, Family::Siglip(_)),
        "{:?}",
        m.config.family
    );
    assert_eq!(m.identity.family, "siglip");
    assert_eq!(m.dim(), 48);
    let pre = &m.image().unwrap().preprocessor().config;
    assert!(pre.squash, "SigLIP resizes to the square without a crop");
    assert_eq!(pre.mean, [0.5; 3]);
}

#[test]
fn token_ids_are_identical_and_padded_to_the_context() {
    let r = Reference::load("siglip");
    let m = model();
    let text = m.text().unwrap();
    let want: Vec<Vec<i64>> = r.t("input_ids").to_vec2().unwrap();
    let texts = r.strings("texts");
    assert_eq!(texts.len(), 10);
    for (i, t) in texts.iter().enumerate() {
        let (ids, truncated) = text.encode_checked(t).unwrap();
        let want: Vec<u32> = want[i].iter().map(|&v| v as u32).collect();
        assert_eq!(ids, want, "text {i}: {t:?}");
        assert_eq!(ids.len(), 64);
        assert_eq!(truncated, i == 9, "text {i}: truncation reported");
    }
    // The non-ASCII texts go through byte fallback, not <unk> (id 3).
    let japanese = text.encode(&texts[7]).unwrap();
    assert!(!japanese.contains(&3), "{japanese:?}");
}

#[test]
fn text_features_match_the_reference() {
    let r = Reference::load("siglip");
    let m = model();
    let text = m.text().unwrap();
    let texts = r.strings("texts");
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| text.encode(t).unwrap()).collect();
    let ours = text.features_from_ids(&ids).unwrap();
    let masked = r.rows("text_features_masked");
    for (i, (o, want)) in ours.iter().zip(r.rows("text_features_raw")).enumerate() {
        let d = max_abs(o, &want);
        eprintln!("text {i}: max abs {d:e}");
        assert!(d <= FEATURES, "text {i} ({:?}): max abs {d}", texts[i]);
        // SigLIP reads the padding unmasked, as it was trained: the masked variant is another
        // function, and this comparison tells them apart (the long text has no padding).
        if i != 9 {
            let m = max_abs(o, &masked[i]);
            assert!(m > 1e-2, "text {i}: masked and unmasked agree ({m})");
        }
    }
}

#[test]
fn image_features_and_logits_match_the_reference() {
    let r = Reference::load("siglip");
    let m = model();
    let image = m.image().unwrap();
    let pixels: Vec<f32> = r
        .t("pixel_values")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let ours = image.features_from_pixels(&pixels).unwrap();
    assert_rows_within("image", &ours, &r.rows("image_features_raw"), FEATURES, &[]);
    let texts = r.strings("texts");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = m.text().unwrap().embed(&refs).unwrap();
    let imgs = image.embed_pixels(&pixels).unwrap();
    let (logits, probs) = (r.rows("logits_per_image"), r.rows("probs_per_image"));
    let scoring = m.scoring();
    assert!(scoring.sigmoid);
    for (i, img) in imgs.iter().enumerate() {
        let cos: Vec<f32> = t.iter().map(|txt| dot(img, txt)).collect();
        let (l, p) = (scoring.logits(&cos), scoring.probabilities(&cos));
        for j in 0..t.len() {
            assert!((l[j] - logits[i][j]).abs() <= LOGITS, "logit [{i},{j}]");
            assert!((p[j] - probs[i][j]).abs() <= 1e-5, "probability [{i},{j}]");
        }
    }
}

#[test]
fn preprocessing_from_files_is_exact() {
    let r = Reference::load("siglip");
    let m = model();
    let pre = m.image().unwrap().preprocessor();
    let dir = fixtures().join("reference/images");
    for (i, file) in r.strings("images").iter().enumerate() {
        let ours = pre.load_file(&dir.join(file)).unwrap();
        let (key, row) = if file.contains("exif") {
            // We honour EXIF orientation; the reference's upright pixels are the target.
            ("pixel_values_exif_transposed", 0)
        } else {
            ("pixel_values", i)
        };
        let d = max_abs(&ours, &r.pixels(key, row));
        eprintln!("{file}: max abs {d:e}");
        assert!(d <= PIXELS, "{file}: max abs {d}");
    }
}

#[test]
fn end_to_end_file_embeddings() {
    let r = Reference::load("siglip");
    let m = model();
    let image = m.image().unwrap();
    let dir = fixtures().join("reference/images");
    let want = r.rows("image_features_raw");
    for (i, file) in r.strings("images").iter().enumerate() {
        let ours = image.embed_file(&dir.join(file)).unwrap();
        let mut target = if file.contains("exif") {
            image
                .features_from_pixels(&r.pixels("pixel_values_exif_transposed", 0))
                .unwrap()
                .remove(0)
        } else {
            want[i].clone()
        };
        normalize(&mut target);
        let cos = dot(&ours, &target);
        eprintln!("{file}: cosine {cos}");
        assert!(cos >= 0.99999, "{file}: cosine {cos}");
    }
}
