//! A damaged checkpoint must fail loudly, naming the tensor, never compute with random values.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use clipsearch::model::{ClipModel, ModelFiles, Towers};

fn copy_model_with(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "preprocessor_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load_err(dir: &Path, towers: Towers) -> String {
    let files = ModelFiles::local(dir).unwrap();
    match ClipModel::load(&files, towers) {
        Ok(_) => panic!("a damaged checkpoint loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_class_embedding_is_an_error_not_random_values() {
    let dir = copy_model_with(|t| {
        t.remove("vision_model.embeddings.class_embedding");
    });
    let msg = load_err(dir.path(), Towers::Image);
    assert!(
        msg.contains("vision_model.embeddings.class_embedding"),
        "{msg}"
    );
    assert!(msg.contains("missing"), "{msg}");
    // The text tower does not need it.
    let files = ModelFiles::local(dir.path()).unwrap();
    assert!(ClipModel::load(&files, Towers::Text).is_ok());
}

#[test]
fn wrong_shape_names_key_and_shapes() {
    let dir = copy_model_with(|t| {
        t.insert(
            "text_projection.weight".into(),
            Tensor::zeros((16, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let msg = load_err(dir.path(), Towers::Both);
    assert!(msg.contains("text_projection.weight"), "{msg}");
    assert!(
        msg.contains("[16, 32]") && msg.contains("[32, 32]"),
        "{msg}"
    );
}

#[test]
fn unsupported_activation_is_refused() {
    let dir = copy_model_with(|_| {});
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen("quick_gelu", "relu", 1);
    std::fs::write(&cfg, text).unwrap();
    let msg = load_err(dir.path(), Towers::Both);
    assert!(msg.contains("hidden_act") && msg.contains("relu"), "{msg}");
}

#[test]
fn the_exact_gelu_of_openclips_checkpoints_is_computed_not_ignored() {
    let dir = copy_model_with(|_| {});
    let cfg = dir.path().join("config.json");
    let original = std::fs::read_to_string(&cfg).unwrap();
    assert!(original.contains("quick_gelu"));
    std::fs::write(&cfg, original.replace("quick_gelu", "gelu")).unwrap();
    let gelu = ClipModel::load(&ModelFiles::local(dir.path()).unwrap(), Towers::Text).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let quick = ClipModel::load(&ModelFiles::local(&src).unwrap(), Towers::Text).unwrap();
    let a = gelu.text().unwrap().embed(&["a photo of a cat"]).unwrap();
    let b = quick.text().unwrap().embed(&["a photo of a cat"]).unwrap();
    let cos: f32 = a[0].iter().zip(&b[0]).map(|(x, y)| x * y).sum();
    // Close (the two activations differ by a few percent) but not the same function.
    assert!(cos > 0.9 && cos < 0.99999, "cosine {cos}");
}

/// A copy of the tiny model whose weights file is `edit`ed in place (bytes, same layout).
fn copy_model_bytes(edit: impl FnOnce(&mut Vec<u8>, &serde_json::Value)) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "preprocessor_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut bytes, &header);
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    dir
}

/// Byte range of a tensor's data in a safetensors file.
fn span(header: &serde_json::Value, bytes: &[u8], key: &str) -> std::ops::Range<usize> {
    let base = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let o = &header[key]["data_offsets"];
    base + o[0].as_u64().unwrap() as usize..base + o[1].as_u64().unwrap() as usize
}

/// Both edits below go unseen by the older, sampled fingerprint (checked: its value is the
/// same for all three copies), so this test fails against it.
#[test]
fn checkpoints_differing_in_one_tensor_or_one_weight_have_different_identities() {
    use clipsearch::model::ModelIdentity;
    let identity = |dir: &Path| ModelIdentity::of(&ModelFiles::local(dir).unwrap()).unwrap();
    let same = copy_model_bytes(|_, _| {});
    // One small tensor re-initialised (as a fine-tune of the last layer norm would).
    let tensor = copy_model_bytes(|b, h| {
        let r = span(h, b, "vision_model.post_layernorm.bias");
        for x in &mut b[r] {
            *x ^= 0x5a;
        }
    });
    // One float of the largest tensor, in its middle.
    let weight = copy_model_bytes(|b, h| {
        let key = h
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "__metadata__")
            .max_by_key(|k| span(h, b, k).len())
            .unwrap()
            .clone();
        let r = span(h, b, &key);
        let mid = r.start + (r.len() / 8) * 4;
        b[mid] ^= 1;
    });
    let base = identity(same.path());
    assert!(base.fingerprint.starts_with("v2-"), "{}", base.fingerprint);
    assert_eq!(
        identity(same.path()),
        base,
        "deterministic, and cached alike"
    );
    for (what, dir) in [("one tensor", &tensor), ("one weight", &weight)] {
        let other = identity(dir.path());
        assert_ne!(other.fingerprint, base.fingerprint, "{what} changed");
        assert!(!other.same_model(&base), "{what} changed");
    }
}

#[test]
fn an_index_recorded_with_the_older_sampled_fingerprint_still_opens_and_is_upgraded() {
    use clipsearch::model::ModelIdentity;
    use clipsearch::store::Store;
    let files =
        ModelFiles::local(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip"))
            .unwrap();
    let now = ModelIdentity::of(&files).unwrap();
    let mut old = now.clone();
    old.fingerprint = now.legacy_fingerprint.clone().unwrap();
    assert!(!old.fingerprint.starts_with("v2-"));
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Some(&old)).unwrap());
    let store = Store::open(dir.path(), Some(&now)).unwrap();
    assert_eq!(store.model().unwrap().unwrap().fingerprint, now.fingerprint);
    // Another model's legacy fingerprint is not taken for this one.
    let mut stranger = old.clone();
    stranger.fingerprint = "0123".repeat(16);
    assert!(!now.same_model(&stranger));
}
