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
        .replacen("quick_gelu", "gelu", 1);
    std::fs::write(&cfg, text).unwrap();
    let msg = load_err(dir.path(), Towers::Both);
    assert!(msg.contains("hidden_act") && msg.contains("gelu"), "{msg}");
}
