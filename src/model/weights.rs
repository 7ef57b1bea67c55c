//! Checks a checkpoint's tensors against what `config.json` implies before candle sees them.
//!
//! candle's `VarBuilder` reports a missing tensor only when a layer asks for it, and its CLIP
//! vision embeddings replace a missing `class_embedding` with random values. Checking the whole
//! inventory up front turns every such case into an error that names the key.

use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;

use super::config::ClipConfig;
use super::family::Family;
use crate::error::{Error, Result};

/// Which towers a caller needs: a text query should not pay for the vision weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Towers {
    Text,
    Image,
    Both,
}

impl Towers {
    pub fn text(self) -> bool {
        matches!(self, Towers::Text | Towers::Both)
    }
    pub fn image(self) -> bool {
        matches!(self, Towers::Image | Towers::Both)
    }
}

fn encoder_tensors(
    out: &mut Vec<(String, Vec<usize>)>,
    prefix: &str,
    layers: usize,
    h: usize,
    mlp: usize,
) {
    for i in 0..layers {
        let p = format!("{prefix}.encoder.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            out.push((format!("{p}.self_attn.{proj}.weight"), vec![h, h]));
            out.push((format!("{p}.self_attn.{proj}.bias"), vec![h]));
        }
        for ln in ["layer_norm1", "layer_norm2"] {
            out.push((format!("{p}.{ln}.weight"), vec![h]));
            out.push((format!("{p}.{ln}.bias"), vec![h]));
        }
        out.push((format!("{p}.mlp.fc1.weight"), vec![mlp, h]));
        out.push((format!("{p}.mlp.fc1.bias"), vec![mlp]));
        out.push((format!("{p}.mlp.fc2.weight"), vec![h, mlp]));
        out.push((format!("{p}.mlp.fc2.bias"), vec![h]));
    }
}

/// Every tensor the selected towers read, with the shape the config implies.
pub fn expected_tensors(c: &ClipConfig, towers: Towers) -> Vec<(String, Vec<usize>)> {
    if let Family::Siglip(_) = c.family {
        return siglip_tensors(c, towers);
    }
    let mut out = Vec::new();
    if let (true, Some(hf)) = (towers.text(), &c.hf_text) {
        // A Hugging Face tower: its embedding and the projection are checked here, the rest by
        // name as the tower is built (candle names a missing tensor).
        let (w, dim) = (c.text.hidden_size, c.projection_dim);
        out.push((
            "text.transformer.embeddings.word_embeddings.weight".into(),
            vec![c.text.vocab_size, w],
        ));
        match hf.projection {
            super::hf_text::HfProjection::Mlp => {
                out.push(("text.proj.0.weight".into(), vec![(w + dim) / 2, w]));
                out.push(("text.proj.2.weight".into(), vec![dim, (w + dim) / 2]));
            }
            super::hf_text::HfProjection::Linear => {
                out.push(("text.proj.weight".into(), vec![dim, w]));
            }
        }
    } else if towers.text() {
        let t = &c.text;
        let h = t.hidden_size;
        out.push((
            "text_model.embeddings.token_embedding.weight".into(),
            vec![t.vocab_size, h],
        ));
        out.push((
            "text_model.embeddings.position_embedding.weight".into(),
            vec![t.max_position_embeddings, h],
        ));
        encoder_tensors(
            &mut out,
            "text_model",
            t.num_hidden_layers,
            h,
            t.intermediate_size,
        );
        out.push(("text_model.final_layer_norm.weight".into(), vec![h]));
        out.push(("text_model.final_layer_norm.bias".into(), vec![h]));
        out.push(("text_projection.weight".into(), vec![c.projection_dim, h]));
    }
    if towers.image() && c.timm_vision.is_some() {
        // A timm tower (MobileCLIP's FastViT): its stem and head here, the rest by name as the
        // tower is built; the head's output is the embedding.
        out.push(("visual.trunk.head.fc.bias".into(), vec![c.projection_dim]));
    } else if towers.image() {
        let v = &c.vision;
        let h = v.hidden_size;
        let positions = (v.image_size / v.patch_size).pow(2) + 1;
        out.push(("vision_model.embeddings.class_embedding".into(), vec![h]));
        out.push((
            "vision_model.embeddings.patch_embedding.weight".into(),
            vec![h, v.num_channels, v.patch_size, v.patch_size],
        ));
        out.push((
            "vision_model.embeddings.position_embedding.weight".into(),
            vec![positions, h],
        ));
        out.push(("vision_model.pre_layrnorm.weight".into(), vec![h]));
        out.push(("vision_model.pre_layrnorm.bias".into(), vec![h]));
        encoder_tensors(
            &mut out,
            "vision_model",
            v.num_hidden_layers,
            h,
            v.intermediate_size,
        );
        out.push(("vision_model.post_layernorm.weight".into(), vec![h]));
        out.push(("vision_model.post_layernorm.bias".into(), vec![h]));
        out.push(("visual_projection.weight".into(), vec![c.projection_dim, h]));
    }
    out
}

fn layer_norm(out: &mut Vec<(String, Vec<usize>)>, key: &str, h: usize) {
    out.push((format!("{key}.weight"), vec![h]));
    out.push((format!("{key}.bias"), vec![h]));
}

/// SigLIP's inventory: no class token or pre-norm, a biased patch embedding, the text head
/// (a biased linear layer) and the vision tower's attention-pooling head.
fn siglip_tensors(c: &ClipConfig, towers: Towers) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    if towers.text() {
        let t = &c.text;
        let h = t.hidden_size;
        out.push((
            "text_model.embeddings.token_embedding.weight".into(),
            vec![t.vocab_size, h],
        ));
        out.push((
            "text_model.embeddings.position_embedding.weight".into(),
            vec![t.max_position_embeddings, h],
        ));
        encoder_tensors(
            &mut out,
            "text_model",
            t.num_hidden_layers,
            h,
            t.intermediate_size,
        );
        layer_norm(&mut out, "text_model.final_layer_norm", h);
        out.push(("text_model.head.weight".into(), vec![c.projection_dim, h]));
        out.push(("text_model.head.bias".into(), vec![c.projection_dim]));
    }
    if towers.image() {
        let v = &c.vision;
        let h = v.hidden_size;
        let e = "vision_model.embeddings";
        out.push((
            format!("{e}.patch_embedding.weight"),
            vec![h, v.num_channels, v.patch_size, v.patch_size],
        ));
        out.push((format!("{e}.patch_embedding.bias"), vec![h]));
        out.push((
            format!("{e}.position_embedding.weight"),
            vec![(v.image_size / v.patch_size).pow(2), h],
        ));
        encoder_tensors(
            &mut out,
            "vision_model",
            v.num_hidden_layers,
            h,
            v.intermediate_size,
        );
        layer_norm(&mut out, "vision_model.post_layernorm", h);
        let p = "vision_model.head";
        out.push((format!("{p}.probe"), vec![1, 1, h]));
        out.push((format!("{p}.attention.in_proj_weight"), vec![3 * h, h]));
        out.push((format!("{p}.attention.in_proj_bias"), vec![3 * h]));
        out.push((format!("{p}.attention.out_proj.weight"), vec![h, h]));
        out.push((format!("{p}.attention.out_proj.bias"), vec![h]));
        layer_norm(&mut out, &format!("{p}.layernorm"), h);
        out.push((format!("{p}.mlp.fc1.weight"), vec![v.intermediate_size, h]));
        out.push((format!("{p}.mlp.fc1.bias"), vec![v.intermediate_size]));
        out.push((format!("{p}.mlp.fc2.weight"), vec![h, v.intermediate_size]));
        out.push((format!("{p}.mlp.fc2.bias"), vec![h]));
    }
    out
}

/// As [`check`], for tensors already loaded (and renamed: OpenCLIP's).
pub fn check_loaded(
    path: &Path,
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    c: &ClipConfig,
    towers: Towers,
) -> Result<()> {
    for (key, expected) in expected_tensors(c, towers) {
        let t = tensors.get(&key).ok_or_else(|| Error::MissingTensor {
            path: path.to_path_buf(),
            key: key.clone(),
        })?;
        if t.dims() != expected.as_slice() {
            return Err(Error::TensorShape {
                path: path.to_path_buf(),
                key,
                expected,
                found: t.dims().to_vec(),
            });
        }
    }
    Ok(())
}

/// Fails on the first tensor that is missing or of the wrong shape.
pub fn check(path: &Path, st: &MmapedSafetensors, c: &ClipConfig, towers: Towers) -> Result<()> {
    for (key, expected) in expected_tensors(c, towers) {
        let view = st.get(&key).map_err(|_| Error::MissingTensor {
            path: path.to_path_buf(),
            key: key.clone(),
        })?;
        if view.shape() != expected.as_slice() {
            return Err(Error::TensorShape {
                path: path.to_path_buf(),
                key,
                expected,
                found: view.shape().to_vec(),
            });
        }
    }
    Ok(())
}
