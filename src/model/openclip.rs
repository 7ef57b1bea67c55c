//! Checkpoints in OpenCLIP's own layout (<https://github.com/mlfoundations/open_clip>, Ilharco et
//! al., 2021; Cherti et al., 2023, "Reproducible scaling laws for contrastive language-image
//! learning"): `open_clip_config.json` + `open_clip_model.safetensors`, as
//! `open_clip.push_to_hf_hub` writes them, e.g. `laion/CLIP-ViT-B-32-laion2B-s34B-b79K` or
//! DataComp's `ViT-B-32-256` that rclip uses.
//!
//! The architecture of OpenCLIP's ViT CLIPs is CLIP's, so the checkpoint is read into the same
//! towers ([`super::clip_tower`]) under transformers' names: `in_proj_weight` splits into the
//! query, key and value projections, `c_fc`/`c_proj` are the MLP, and the two projection
//! matrices (used as `x @ proj`) are transposed into linear layers. The configuration says
//! GELU or quick-GELU, and its `preprocess_cfg` gives the input's mean, standard deviation,
//! filter and resize mode. torchvision's centre crop rounds its offsets (half to even) where
//! transformers floors them.
//!
//! Variants this does not implement (ResNet and timm towers, Hugging Face text towers,
//! attentional pooling, layer scale, other pooling or projection types) are refused with the
//! key named, never computed wrongly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{safetensors::MmapedSafetensors, DType, Device, Tensor};
use serde_json::{Map, Value};

use super::activation::ClipActivation;
use super::config::{ClipConfig, TextConfig, VisionConfig};
use super::family::{ClipParams, Family};
use super::hf_text::{known_config, HfProjection, HfTextConfig};
use super::weights::Towers;
use crate::error::{Error, Result};
use crate::preprocess::{resample::Filter, PreprocessConfig};

/// Whether a safetensors file holds OpenCLIP's names.
pub fn is_openclip(st: &MmapedSafetensors) -> bool {
    st.get("visual.conv1.weight").is_ok()
        || st.get("token_embedding.weight").is_ok()
        || st.get("text.token_embedding.weight").is_ok()
}

struct Cfg<'a> {
    path: &'a Path,
    section: &'static str,
    map: &'a Map<String, Value>,
}

impl Cfg<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            key: format!("{}{key}", self.section),
            reason: reason.into(),
        }
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| self.err(key, format!("expected a positive integer, found {v}"))),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    /// Refuses a key whose value is other than its default (absent, null, false, or `allowed`).
    fn only_default(&self, key: &str, allowed: &[&str]) -> Result<()> {
        match self.map.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
            Some(v) => Err(Error::Unsupported {
                key: format!("{}{key}", self.section),
                value: format!("{v} (OpenCLIP's ViT CLIPs are implemented, not this variant)"),
            }),
        }
    }

    fn section(&self, key: &'static str) -> Result<Cfg<'_>> {
        match self.map.get(key) {
            Some(Value::Object(map)) => Ok(Cfg {
                path: self.path,
                section: key,
                map,
            }),
            _ => Err(self.err(key, "expected an object")),
        }
    }
}

/// The model of an `open_clip_config.json` (`model_cfg`), in transformers' terms.
pub fn config(path: &Path, root: &Map<String, Value>) -> Result<ClipConfig> {
    let top = Cfg {
        path,
        section: "",
        map: root,
    };
    let m = top.section("model_cfg")?;
    let v = m.section("vision_cfg")?;
    let t = m.section("text_cfg")?;
    let timm_vision = timm_vision(&v)?;
    for key in [
        "attentional_pool",
        "no_ln_pre",
        "final_ln_after_pool",
        "ls_init_value",
        "output_tokens",
        "act_kwargs",
        "norm_kwargs",
        "patch_dropout",
    ] {
        v.only_default(key, &[])?;
    }
    v.only_default("pool_type", &["tok"])?;
    v.only_default("pos_embed_type", &["learnable"])?;
    let hf_text = hf_text(path, &t)?;
    if hf_text.is_none() {
        for key in ["embed_cls", "proj_bias", "ls_init_value"] {
            t.only_default(key, &[])?;
        }
        t.only_default("pool_type", &["argmax"])?;
        t.only_default("proj_type", &["linear"])?;
    }
    if v.map.get("layers").is_some_and(|l| l.is_array()) {
        return Err(Error::Unsupported {
            key: "vision_cfg.layers".into(),
            value: "a list (OpenCLIP's ResNet towers are not implemented)".into(),
        });
    }
    let image_size = match v.map.get("image_size") {
        Some(Value::Array(a)) if a.len() == 2 && a[0] == a[1] => a[0]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| v.err("image_size", "expected integers"))?,
        Some(Value::Array(_)) => {
            return Err(v.err("image_size", "only square inputs are implemented"));
        }
        _ => v.usize("image_size", 224)?,
    };
    let width = v.usize("width", 768)?;
    let head_width = v.usize("head_width", 64)?;
    let vision = VisionConfig {
        hidden_size: width,
        intermediate_size: (width as f64 * v.f64("mlp_ratio", 4.0)?) as usize,
        num_hidden_layers: v.usize("layers", 12)?,
        num_attention_heads: width / head_width,
        num_channels: 3,
        image_size,
        patch_size: v.usize("patch_size", 16)?,
    };
    // A Hugging Face tower's dimensions are its own configuration's.
    let hf = |key: &str| {
        hf_text
            .as_ref()
            .and_then(|h| h.config[key].as_u64())
            .map(|n| n as usize)
    };
    let tw = hf("hidden_size").map_or_else(|| t.usize("width", 512), Ok)?;
    let text = TextConfig {
        vocab_size: hf("vocab_size").map_or_else(|| t.usize("vocab_size", 49408), Ok)?,
        hidden_size: tw,
        intermediate_size: (tw as f64 * t.f64("mlp_ratio", 4.0)?) as usize,
        num_hidden_layers: t.usize("layers", 12)?,
        num_attention_heads: hf("num_attention_heads").map_or_else(|| t.usize("heads", 8), Ok)?,
        max_position_embeddings: t.usize("context_length", 77)?,
    };
    if !width.is_multiple_of(head_width) {
        return Err(v.err("head_width", "does not divide width"));
    }
    if !tw.is_multiple_of(text.num_attention_heads) {
        return Err(t.err("heads", "does not divide width"));
    }
    if !image_size.is_multiple_of(vision.patch_size) {
        return Err(v.err("patch_size", "does not divide image_size"));
    }
    let act = match m.map.get("quick_gelu").and_then(Value::as_bool) {
        Some(true) => ClipActivation::QuickGelu,
        _ => ClipActivation::Gelu,
    };
    let mut config = ClipConfig {
        text,
        vision,
        projection_dim: m.usize("embed_dim", 512)?,
        // OpenCLIP initialises the scale at ln(1/0.07), as CLIP; checkpoints carry their own.
        logit_scale_init_value: (1.0f32 / 0.07).ln(),
        family: Family::Clip(ClipParams {
            text_act: act,
            vision_act: act,
            text_eps: 1e-5,
            vision_eps: 1e-5,
            text_causal: !matches!(t.map.get("no_causal_mask"), Some(Value::Bool(true))),
        }),
        preprocess: None,
        hf_text,
        timm_vision,
    };
    config.preprocess = Some(preprocess(&top, image_size)?);
    Ok(config)
}

/// A timm image tower (`vision_cfg.timm_model_name`): MobileCLIP's FastViT MCi, average-pooled
/// and projected by its own head (`timm_pool: avg`, no `timm_proj`); its dimensions are read
/// from the weights when the tower is built.
fn timm_vision(v: &Cfg) -> Result<Option<String>> {
    let Some(name) = v.map.get("timm_model_name").and_then(Value::as_str) else {
        return Ok(None);
    };
    if !name.starts_with("fastvit_mci") || name == "fastvit_mci3" || name == "fastvit_mci4" {
        return Err(Error::Unsupported {
            key: "vision_cfg.timm_model_name".into(),
            value: format!(
                "{name} (MobileCLIP's FastViT MCi0-MCi2 towers are implemented: MobileCLIP S1 and \
                 S2, MobileCLIP2 S0 and S2)"
            ),
        });
    }
    v.only_default("timm_pool", &["avg"])?;
    v.only_default("timm_proj", &[])?;
    Ok(Some(name.to_string()))
}

/// A Hugging Face text tower (`text_cfg.hf_model_name`): XLM-RoBERTa, mean-pooled, with its
/// configuration from the known ones or `text_config.json` beside the checkpoint.
fn hf_text(path: &Path, t: &Cfg) -> Result<Option<HfTextConfig>> {
    let Some(name) = t.map.get("hf_model_name").and_then(Value::as_str) else {
        return Ok(None);
    };
    t.only_default("hf_pooler_type", &["mean_pooler"])?;
    let projection = match t.map.get("hf_proj_type").and_then(Value::as_str) {
        None | Some("mlp") => HfProjection::Mlp,
        Some("linear") => HfProjection::Linear,
        Some(other) => {
            return Err(Error::Unsupported {
                key: "text_cfg.hf_proj_type".into(),
                value: other.into(),
            })
        }
    };
    let beside = path.with_file_name("text_config.json");
    let config: Value = match std::fs::read_to_string(&beside) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Config {
            path: beside.clone(),
            key: "(file)".into(),
            reason: format!("not valid JSON: {e}"),
        })?,
        Err(_) => known_config(name).ok_or_else(|| Error::Unsupported {
            key: "text_cfg.hf_model_name".into(),
            value: format!(
                "{name} (known: xlm-roberta-base, xlm-roberta-large; for another XLM-RoBERTa, \
                 put its config.json beside the checkpoint as text_config.json)"
            ),
        })?,
    };
    if config["model_type"].as_str() != Some("xlm-roberta") {
        return Err(Error::Unsupported {
            key: "text_cfg.hf_model_name".into(),
            value: format!(
                "{name}: a {} text tower (XLM-RoBERTa is implemented)",
                config["model_type"]
            ),
        });
    }
    Ok(Some(HfTextConfig {
        name: name.into(),
        config,
        projection,
    }))
}

/// `preprocess_cfg`, as open_clip's `image_transform` applies it: resize (the short side, or
/// the whole image to the square), centre crop with rounded offsets, normalise.
fn preprocess(top: &Cfg, image_size: usize) -> Result<PreprocessConfig> {
    let mut c = PreprocessConfig::clip_default(image_size);
    c.crop_round = true;
    c.pass_order = crate::preprocess::resample::PassOrder::Pillow13;
    let Some(Value::Object(map)) = top.map.get("preprocess_cfg") else {
        return Ok(c);
    };
    let p = Cfg {
        path: top.path,
        section: "preprocess_cfg.",
        map,
    };
    for (key, dst) in [("mean", &mut c.mean), ("std", &mut c.std)] {
        if let Some(v) = map.get(key) {
            let values: Vec<f32> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64().map(|f| f as f32))
                        .collect()
                })
                .unwrap_or_default();
            if values.len() != 3 {
                return Err(p.err(key, format!("expected three numbers, found {v}")));
            }
            dst.copy_from_slice(&values);
        }
    }
    c.filter = match map.get("interpolation").and_then(Value::as_str) {
        None | Some("bicubic") => Filter::Bicubic,
        Some("bilinear") => Filter::Bilinear,
        Some(other) => {
            return Err(Error::Unsupported {
                key: "preprocess_cfg.interpolation".into(),
                value: other.into(),
            })
        }
    };
    match map.get("resize_mode").and_then(Value::as_str) {
        None | Some("shortest") => {}
        Some("squash") => c.squash = true,
        Some(other) => {
            return Err(Error::Unsupported {
                key: "preprocess_cfg.resize_mode".into(),
                value: other.into(),
            })
        }
    }
    Ok(c)
}

/// The tensors the selected towers need, read from OpenCLIP's names into transformers' (f32, on
/// `device`).
pub fn tensors(
    st: &MmapedSafetensors,
    c: &ClipConfig,
    towers: Towers,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let path = Path::new("open_clip_model.safetensors");
    let load = |key: &str| -> Result<Tensor> {
        st.load(key, device)
            .map_err(|_| Error::MissingTensor {
                path: path.to_path_buf(),
                key: key.into(),
            })?
            .to_dtype(DType::F32)
            .map_err(Error::from)
    };
    let mut out = HashMap::new();
    let keep = |out: &mut HashMap<String, Tensor>, prefix: &str| -> Result<()> {
        for (key, _) in st.tensors() {
            if key.starts_with(prefix) {
                out.insert(key.clone(), load(&key)?);
            }
        }
        Ok(())
    };
    let blocks = |out: &mut HashMap<String, Tensor>, from: &str, to: &str, layers, h| {
        for i in 0..layers {
            let (f, t) = (
                format!("{from}.resblocks.{i}"),
                format!("{to}.encoder.layers.{i}"),
            );
            for (a, b) in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2")] {
                for p in ["weight", "bias"] {
                    out.insert(format!("{t}.{b}.{p}"), load(&format!("{f}.{a}.{p}"))?);
                }
            }
            let w = load(&format!("{f}.attn.in_proj_weight"))?;
            let b = load(&format!("{f}.attn.in_proj_bias"))?;
            for (j, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                let a = format!("{t}.self_attn.{name}");
                out.insert(format!("{a}.weight"), w.narrow(0, j * h, h)?.contiguous()?);
                out.insert(format!("{a}.bias"), b.narrow(0, j * h, h)?.contiguous()?);
            }
            for p in ["weight", "bias"] {
                let attn = format!("{t}.self_attn.out_proj.{p}");
                out.insert(attn, load(&format!("{f}.attn.out_proj.{p}"))?);
                out.insert(
                    format!("{t}.mlp.fc1.{p}"),
                    load(&format!("{f}.mlp.c_fc.{p}"))?,
                );
                out.insert(
                    format!("{t}.mlp.fc2.{p}"),
                    load(&format!("{f}.mlp.c_proj.{p}"))?,
                );
            }
        }
        Ok::<(), Error>(())
    };
    if towers.text() && c.hf_text.is_some() {
        // The Hugging Face tower keeps its names (`text.transformer.*`, `text.proj.*`).
        keep(&mut out, "text.")?;
    } else if towers.text() {
        // `custom_text` models (MobileCLIP) keep the text tower under `text.`.
        let custom = st.get("text.token_embedding.weight").is_ok();
        let at = |name: &str| {
            if custom {
                format!("text.{name}")
            } else {
                name.to_string()
            }
        };
        let t = "text_model";
        let e = format!("{t}.embeddings");
        out.insert(
            format!("{e}.token_embedding.weight"),
            load(&at("token_embedding.weight"))?,
        );
        out.insert(
            format!("{e}.position_embedding.weight"),
            load(&at("positional_embedding"))?,
        );
        blocks(
            &mut out,
            &at("transformer"),
            t,
            c.text.num_hidden_layers,
            c.text.hidden_size,
        )?;
        for p in ["weight", "bias"] {
            out.insert(
                format!("{t}.final_layer_norm.{p}"),
                load(&at(&format!("ln_final.{p}")))?,
            );
        }
        out.insert(
            "text_projection.weight".into(),
            load(&at("text_projection"))?.t()?.contiguous()?,
        );
    }
    if towers.image() && c.timm_vision.is_some() {
        // The timm tower keeps its names (`visual.trunk.*`).
        keep(&mut out, "visual.trunk.")?;
    } else if towers.image() {
        let v = "vision_model";
        let e = format!("{v}.embeddings");
        out.insert(
            format!("{e}.patch_embedding.weight"),
            load("visual.conv1.weight")?,
        );
        out.insert(
            format!("{e}.class_embedding"),
            load("visual.class_embedding")?,
        );
        out.insert(
            format!("{e}.position_embedding.weight"),
            load("visual.positional_embedding")?,
        );
        blocks(
            &mut out,
            "visual.transformer",
            v,
            c.vision.num_hidden_layers,
            c.vision.hidden_size,
        )?;
        for p in ["weight", "bias"] {
            out.insert(
                format!("{v}.pre_layrnorm.{p}"),
                load(&format!("visual.ln_pre.{p}"))?,
            );
            out.insert(
                format!("{v}.post_layernorm.{p}"),
                load(&format!("visual.ln_post.{p}"))?,
            );
        }
        out.insert(
            "visual_projection.weight".into(),
            load("visual.proj")?.t()?.contiguous()?,
        );
    }
    Ok(out)
}

/// MobileCLIP's FastViT MCi image tower with its head, from the weights under `visual.trunk`:
/// the stage depths, the stem's width and the MLP ratio are read from them (the published MCi0,
/// MCi1 and MCi2 differ only there), large-kernel activations as every MCi has them.
pub fn fastvit(
    config: &ClipConfig,
    vb: &candle_nn::VarBuilder,
) -> Result<candle_nn::Func<'static>> {
    use candle_transformers::models::fastvit;
    let trunk = vb.pp("visual.trunk");
    let missing = |key: &str| Error::MissingTensor {
        path: Path::new("open_clip_model.safetensors").to_path_buf(),
        key: format!("visual.trunk.{key}"),
    };
    let dims = |key: &str| -> Result<Vec<usize>> {
        trunk
            .get_unchecked_dtype(key, DType::F32)
            .map(|t| t.dims().to_vec())
            .map_err(|_| missing(key))
    };
    let in_channels = dims("stem.0.conv_kxk.0.conv.weight")?[0];
    let exp_ratio = dims("stages.0.blocks.0.mlp.fc1.weight")?[0] / in_channels;
    let mut blocks = [0usize; 4];
    for (i, n) in blocks.iter_mut().enumerate() {
        while trunk.contains_tensor(&format!("stages.{i}.blocks.{}.mlp.fc1.weight", *n)) {
            *n += 1;
        }
        if *n == 0 {
            return Err(missing(&format!("stages.{i}.blocks.0.mlp.fc1.weight")));
        }
    }
    let cfg = fastvit::Config {
        exp_ratio,
        in_channels,
        blocks,
        attn: trunk.contains_tensor("stages.3.blocks.0.token_mixer.qkv.weight"),
        lkc_use_act: true,
    };
    Ok(fastvit::fastvit(&cfg, config.projection_dim, trunk)?)
}
