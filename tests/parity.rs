//! Parity with the Python reference (transformers `CLIPModel` + `CLIPImageProcessor`, Pillow),
//! on the tiny random CLIP in `tests/fixtures` (see its README for how the reference was made).
//!
//! Tolerances, each a small margin above what is observed (fp32 against fp32 with different
//! kernels; the values printed with `--nocapture`, observed on this project's machine):
//! - token ids: identical;
//! - text and image features, raw and normalised: max abs <= 1e-5 (observed <= 1.5e-6);
//! - logits: abs <= 2e-5 (observed <= 3.1e-6);
//! - preprocessing from decoded pixels and from PNG files: max abs <= 1e-6 (bit-exact resize);
//! - preprocessing from JPEG files: max abs <= 1e-6 (libjpeg, Pillow's own decoder, in every
//!   build; zune-jpeg, used before, differed by up to 0.0292, two grey levels);
//! - end-to-end embeddings from files: cosine >= 0.99999 (preprocessing is bit-exact; observed
//!   >= 0.99999994).

mod common;

use clipsearch::embedding::dot;
use clipsearch::model::ClipModel;
use clipsearch::preprocess::decode::decode_file;
use common::{assert_rows_within, fixtures, max_abs, Reference};

/// The images in row order (the CLIP reference lists them as objects with a `file`).
fn images(r: &Reference) -> Vec<String> {
    r.json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["file"].as_str().unwrap().to_string())
        .collect()
}

fn model() -> ClipModel {
    common::model("tiny-clip")
}

#[test]
fn token_ids_are_identical_for_every_text() {
    let r = Reference::load("clip");
    let m = model();
    let tok = m.text().unwrap();
    let unpadded: Vec<Vec<u32>> =
        serde_json::from_value(r.json["tokens_unpadded"].clone()).unwrap();
    let padded: Vec<Vec<i64>> = r.t("input_ids").to_vec2().unwrap();
    let texts = r.strings("texts");
    assert_eq!(texts.len(), 10);
    for (i, text) in texts.iter().enumerate() {
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids, unpadded[i], "text {i}: {text:?}");
        let prefix: Vec<u32> = padded[i][..ids.len()].iter().map(|&v| v as u32).collect();
        assert_eq!(ids, prefix, "text {i} vs padded input_ids");
        assert!(ids.len() <= 77);
        assert_eq!(*ids.last().unwrap(), 49407, "end token kept last");
    }
    assert_eq!(
        tok.encode(&texts[9]).unwrap().len(),
        77,
        "long caption truncated to 77"
    );
}

#[test]
fn text_features_match_reference() {
    let r = Reference::load("clip");
    let m = model();
    let text = m.text().unwrap();
    let texts = r.strings("texts");
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| text.encode(t).unwrap()).collect();
    // All ten together: mixed lengths are batched without padding.
    let ours = text.features_from_ids(&ids).unwrap();
    assert_rows_within(
        "text",
        &ours,
        &r.rows("text_features_raw"),
        FEATURES,
        &texts,
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let normed = text.embed(&refs).unwrap();
    for (i, (o, want)) in normed
        .iter()
        .zip(r.rows("text_embeds_normalized"))
        .enumerate()
    {
        eprintln!("normalised text {i}: max abs {:e}", max_abs(o, &want));
        assert!(max_abs(o, &want) <= FEATURES, "normalised text {i}");
        assert!((dot(o, o) - 1.0).abs() < 1e-5);
    }
}

#[test]
fn image_features_from_reference_pixels_match() {
    let r = Reference::load("clip");
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
    // Logits use the checkpoint's temperature.
    let texts = r.strings("texts");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = m.text().unwrap().embed(&refs).unwrap();
    let imgs = image.embed_pixels(&pixels).unwrap();
    let logits = r.rows("logits_per_image");
    for (i, img) in imgs.iter().enumerate() {
        for (j, txt) in t.iter().enumerate() {
            let ours = m.logit_scale() * dot(img, txt);
            eprintln!("logit [{i},{j}]: {:e}", (ours - logits[i][j]).abs());
            assert!((ours - logits[i][j]).abs() <= 2e-5, "logit [{i},{j}]");
        }
    }
}

#[test]
fn preprocessing_of_decoded_pixels_is_exact() {
    let r = Reference::load("clip");
    let m = model();
    let pre = m.image().unwrap().preprocessor();
    for (i, file) in images(&r).iter().enumerate() {
        let rgb = r.t(&format!("decoded_rgb/{file}"));
        let (h, w, _) = rgb.dims3().unwrap();
        let bytes: Vec<u8> = rgb.flatten_all().unwrap().to_vec1().unwrap();
        let ours = pre.pixels_to_tensor_data(&bytes, w, h);
        let d = max_abs(&ours, &r.pixels("pixel_values", i));
        assert!(d <= 1e-6, "{file}: max abs {d}");
    }
}

#[test]
fn png_decoding_and_preprocessing_are_exact() {
    let r = Reference::load("clip");
    let m = model();
    let pre = m.image().unwrap().preprocessor();
    let dir = fixtures().join("reference/images");
    let mut checked = 0;
    for (i, file) in images(&r).iter().enumerate() {
        if !file.ends_with(".png") {
            continue;
        }
        let decoded = decode_file(&dir.join(file)).unwrap();
        let want: Vec<u8> = r
            .t(&format!("decoded_rgb/{file}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(decoded.as_raw() == &want, "{file}: decoded RGB differs");
        let d = max_abs(
            &pre.load_file(&dir.join(file)).unwrap(),
            &r.pixels("pixel_values", i),
        );
        assert!(d <= 1e-6, "{file}: max abs {d}");
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// JPEGs decode with libjpeg, as Pillow decodes them: to the level.
const JPEG_TOLERANCE: f32 = 1e-6;

/// Features, raw and normalised (observed max abs 1.43e-6).
const FEATURES: f32 = 1e-5;

#[test]
fn jpeg_preprocessing_matches_the_reference() {
    let r = Reference::load("clip");
    let m = model();
    let pre = m.image().unwrap().preprocessor();
    let dir = fixtures().join("reference/images");
    for (i, file) in images(&r).iter().enumerate() {
        if !file.ends_with(".jpg") || file.contains("exif") {
            continue;
        }
        let d = max_abs(
            &pre.load_file(&dir.join(file)).unwrap(),
            &r.pixels("pixel_values", i),
        );
        eprintln!("{file}: max abs {d}");
        assert!(d <= JPEG_TOLERANCE, "{file}: max abs {d}");
    }
    // The EXIF-rotated file: we honour Orientation=6, the reference's target for that is given.
    let ours = pre
        .load_file(&dir.join("chelsea_exif_orient6.jpg"))
        .unwrap();
    let d = max_abs(&ours, &r.pixels("pixel_values_exif_transposed", 0));
    eprintln!("EXIF orientation: max abs {d}");
    assert!(d <= JPEG_TOLERANCE, "EXIF orientation: max abs {d}");
}

#[test]
fn end_to_end_image_embeddings_from_files() {
    let r = Reference::load("clip");
    let m = model();
    let image = m.image().unwrap();
    let dir = fixtures().join("reference/images");
    let want = r.rows("image_embeds_normalized");
    for (i, file) in images(&r).iter().enumerate() {
        let ours = image.embed_file(&dir.join(file)).unwrap();
        let target = if file.contains("exif") {
            // The reference embeds the unrotated pixels; ours must equal the rotated target.
            image
                .embed_pixels(&r.pixels("pixel_values_exif_transposed", 0))
                .unwrap()
                .remove(0)
        } else {
            want[i].clone()
        };
        let cos = dot(&ours, &target);
        let bound = 0.99999;
        eprintln!("{file}: cosine {cos} (bound {bound})");
        assert!(cos >= bound, "{file}: cosine {cos} < {bound}");
    }
}
