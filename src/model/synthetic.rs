//! Random-weight checkpoints in Hugging Face layout, for benchmarks and tests that need a
//! model of a real model's shape (e.g. ViT-B/32) without downloading one. Speed does not depend
//! on the values of the weights; embeddings of such a model mean nothing.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::{ClipConfig, TextConfig, VisionConfig};
use super::weights::{expected_tensors, Towers};
use crate::error::{Error, Result};

impl ClipConfig {
    /// The dimensions of openai/clip-vit-base-patch32.
    pub fn vit_b32() -> Self {
        ClipConfig {
            text: TextConfig {
                vocab_size: 49408,
                hidden_size: 512,
                intermediate_size: 2048,
                num_hidden_layers: 12,
                num_attention_heads: 8,
                max_position_embeddings: 77,
            },
            vision: VisionConfig {
                hidden_size: 768,
                intermediate_size: 3072,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                num_channels: 3,
                image_size: 224,
                patch_size: 32,
            },
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
            family: super::family::Family::Clip(super::family::ClipParams::OPENAI),
            preprocess: None,
            hf_text: None,
            timm_vision: None,
        }
    }

    /// `config.json` in the current transformers layout.
    pub fn to_json(&self) -> serde_json::Value {
        let (t, v) = (&self.text, &self.vision);
        serde_json::json!({
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": self.logit_scale_init_value,
            "text_config": {
                "vocab_size": t.vocab_size, "hidden_size": t.hidden_size,
                "intermediate_size": t.intermediate_size, "num_hidden_layers": t.num_hidden_layers,
                "num_attention_heads": t.num_attention_heads,
                "max_position_embeddings": t.max_position_embeddings,
                "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
                "bos_token_id": 49406, "eos_token_id": 49407, "projection_dim": self.projection_dim,
            },
            "vision_config": {
                "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
                "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
                "num_channels": v.num_channels, "image_size": v.image_size, "patch_size": v.patch_size,
                "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": self.projection_dim,
            },
        })
    }
}

/// `n` values of N(0, 1), the same for the same `seed` on every machine and run (splitmix64,
/// Box-Muller): benchmark figures that depend on the weights (fast vs exact cosine) repeat.
fn normals(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        // 53 random bits in (0, 1].
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON
    };
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u, v) = (next(), next());
        let r = (-2.0 * u.ln()).sqrt();
        let a = std::f64::consts::TAU * v;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// A tensor's seed: its name's FNV-1a hash, so that each weight has its own stream.
fn seed_of(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Writes `config.json`, `model.safetensors` (N(0, 0.02) weights from a fixed seed per tensor,
/// unit layer norms) and a copy of `tokenizer` into `dir`.
pub fn write_random_checkpoint(dir: &Path, config: &ClipConfig, tokenizer: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        serde_json::to_string_pretty(&config.to_json()).expect("json"),
    )
    .map_err(|e| Error::io(&cfg, e))?;
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).map_err(|e| Error::io(tokenizer, e))?;
    let mut tensors = HashMap::new();
    for (key, shape) in expected_tensors(config, Towers::Both) {
        let t = if key.contains("norm") && key.ends_with(".weight") {
            Tensor::ones(shape.as_slice(), DType::F32, &Device::Cpu)?
        } else if key.contains("norm") && key.ends_with(".bias") {
            Tensor::zeros(shape.as_slice(), DType::F32, &Device::Cpu)?
        } else {
            let n = shape.iter().product();
            let values: Vec<f32> = normals(n, seed_of(&key)).iter().map(|x| x * 0.02).collect();
            Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?
        };
        tensors.insert(key, t);
    }
    tensors.insert(
        "logit_scale".into(),
        Tensor::new(config.logit_scale_init_value, &Device::Cpu)?,
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_repeat_and_look_normal() {
        let a = normals(100_001, seed_of("vision_model.x.weight"));
        assert_eq!(a, normals(100_001, seed_of("vision_model.x.weight")));
        assert_ne!(a[..10], normals(10, seed_of("vision_model.y.weight"))[..]);
        assert_eq!(a.len(), 100_001);
        assert!(a.iter().all(|x| x.is_finite()));
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {mean}, variance {var}"
        );
    }
}
