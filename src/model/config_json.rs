//! `config.json` of a Hugging Face CLIP or SigLIP checkpoint, parsed by hand: candle's CLIP config has no
//! serde support, and published checkpoints use two layouts. Older transformers releases wrote
//! `text_config_dict` / `vision_config_dict` holding the values that override the defaults (and
//! sometimes a stale `text_config` beside it); newer ones write complete `text_config` /
//! `vision_config`. We mirror `transformers.CLIPConfig`: start from the defaults, apply
//! `*_config`, then `*_config_dict` on top.
//!
//! [`ClipConfig::from_file`] reads either layout of a checkpoint: this one, or OpenCLIP's
//! (`model_cfg`), which [`super::openclip`] parses.

use std::path::Path;

use serde_json::{Map, Value};

use super::activation::ClipActivation;
use super::config::{ClipConfig, TextConfig, VisionConfig};
use super::family::{ClipParams, Family, SiglipParams};
use crate::error::{Error, Result};

struct Fields<'a> {
    path: &'a Path,
    section: &'static str,
    merged: Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            key: format!("{}{key}", self.section),
            reason: reason.into(),
        }
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.merged.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(n as usize),
                _ => Err(self.err(key, format!("expected a positive integer, found {v}"))),
            },
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.merged.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    /// The tower's activation, as transformers names it (`hidden_act`).
    fn activation(&self, default: &str) -> Result<candle_nn::Activation> {
        let name = match self.merged.get("hidden_act") {
            None | Some(Value::Null) => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(self.err("hidden_act", format!("expected a name, found {v}"))),
        };
        match name.as_str() {
            "gelu_pytorch_tanh" => Ok(candle_nn::Activation::GeluPytorchTanh),
            "gelu" => Ok(candle_nn::Activation::Gelu),
            _ => Err(Error::Unsupported {
                key: format!("{}hidden_act", self.section),
                value: name,
            }),
        }
    }

    /// A CLIP tower's activation (transformers' default: quick_gelu); anything but quick_gelu
    /// and gelu would silently compute a different function, so it is refused with the key
    /// named.
    fn clip_activation(&self) -> Result<ClipActivation> {
        let name = match self.merged.get("hidden_act") {
            None | Some(Value::Null) => "quick_gelu".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(self.err("hidden_act", format!("expected a name, found {v}"))),
        };
        ClipActivation::from_name(&name).ok_or_else(|| Error::Unsupported {
            key: format!("{}hidden_act", self.section),
            value: name,
        })
    }
}

fn section<'a>(
    path: &'a Path,
    root: &Map<String, Value>,
    name: &'static str,
    label: &'static str,
) -> Result<Fields<'a>> {
    let mut merged = Map::new();
    for key in [name.to_string(), format!("{name}_dict")] {
        match root.get(&key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => merged.extend(m.clone()),
            Some(other) => {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    key,
                    reason: format!("expected an object, found {other}"),
                })
            }
        }
    }
    Ok(Fields {
        path,
        section: label,
        merged,
    })
}

/// What both towers' arithmetic needs of their sizes, in every family: heads that divide the
/// width, patches that tile the image. Errors name the section's key.
fn check_shapes(t: &Fields, v: &Fields, text: &TextConfig, vision: &VisionConfig) -> Result<()> {
    if !text.hidden_size.is_multiple_of(text.num_attention_heads) {
        return Err(t.err("num_attention_heads", "does not divide hidden_size"));
    }
    if !vision
        .hidden_size
        .is_multiple_of(vision.num_attention_heads)
    {
        return Err(v.err("num_attention_heads", "does not divide hidden_size"));
    }
    if !vision.image_size.is_multiple_of(vision.patch_size) {
        return Err(v.err("patch_size", "does not divide image_size"));
    }
    Ok(())
}

impl ClipConfig {
    /// Reads `config.json` from a file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(path, &text)
    }

    /// Parses the text of a `config.json`; `path` only names the file in errors.
    pub fn from_json(path: &Path, json: &str) -> Result<Self> {
        let root: Value = serde_json::from_str(json).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            key: "(file)".into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(root) = root else {
            return Err(Error::Config {
                path: path.to_path_buf(),
                key: "(file)".into(),
                reason: "expected a JSON object".into(),
            });
        };
        if root.contains_key("model_cfg") {
            return super::openclip::config(path, &root);
        }
        match root.get("model_type").and_then(Value::as_str) {
            None | Some("clip") => {}
            Some("siglip") => return Self::siglip(path, &root),
            Some(t) => {
                return Err(Error::Unsupported {
                    key: "model_type".into(),
                    value: format!("{t} (this build loads {})", Family::SUPPORTED),
                })
            }
        }
        let top = Fields {
            path,
            section: "",
            merged: root.clone(),
        };
        let t = section(path, &root, "text_config", "text_config.")?;
        let v = section(path, &root, "vision_config", "vision_config.")?;
        let params = ClipParams {
            text_act: t.clip_activation()?,
            vision_act: v.clip_activation()?,
            text_eps: t.f64("layer_norm_eps", 1e-5)?,
            vision_eps: v.f64("layer_norm_eps", 1e-5)?,
            text_causal: true,
        };
        // Defaults are transformers' CLIPTextConfig / CLIPVisionConfig defaults (ViT-B/32).
        let text = TextConfig {
            vocab_size: t.usize("vocab_size", 49408)?,
            hidden_size: t.usize("hidden_size", 512)?,
            intermediate_size: t.usize("intermediate_size", 2048)?,
            num_hidden_layers: t.usize("num_hidden_layers", 12)?,
            num_attention_heads: t.usize("num_attention_heads", 8)?,
            max_position_embeddings: t.usize("max_position_embeddings", 77)?,
        };
        let vision = VisionConfig {
            hidden_size: v.usize("hidden_size", 768)?,
            intermediate_size: v.usize("intermediate_size", 3072)?,
            num_hidden_layers: v.usize("num_hidden_layers", 12)?,
            num_attention_heads: v.usize("num_attention_heads", 12)?,
            num_channels: v.usize("num_channels", 3)?,
            image_size: v.usize("image_size", 224)?,
            patch_size: v.usize("patch_size", 32)?,
        };
        check_shapes(&t, &v, &text, &vision)?;
        Ok(ClipConfig {
            text,
            vision,
            projection_dim: top.usize("projection_dim", 512)?,
            logit_scale_init_value: top.f64("logit_scale_init_value", 2.6592)? as f32,
            family: Family::Clip(params),
            preprocess: None,
            hf_text: None,
            timm_vision: None,
        })
    }

    /// A SigLIP `config.json` (transformers' `SiglipConfig`; its defaults are
    /// google/siglip-base-patch16-224's).
    fn siglip(path: &Path, root: &Map<String, Value>) -> Result<Self> {
        let t = section(path, root, "text_config", "text_config.")?;
        let v = section(path, root, "vision_config", "vision_config.")?;
        let text = TextConfig {
            vocab_size: t.usize("vocab_size", 32000)?,
            hidden_size: t.usize("hidden_size", 768)?,
            intermediate_size: t.usize("intermediate_size", 3072)?,
            num_hidden_layers: t.usize("num_hidden_layers", 12)?,
            num_attention_heads: t.usize("num_attention_heads", 12)?,
            max_position_embeddings: t.usize("max_position_embeddings", 64)?,
        };
        let vision = VisionConfig {
            hidden_size: v.usize("hidden_size", 768)?,
            intermediate_size: v.usize("intermediate_size", 3072)?,
            num_hidden_layers: v.usize("num_hidden_layers", 12)?,
            num_attention_heads: v.usize("num_attention_heads", 12)?,
            num_channels: v.usize("num_channels", 3)?,
            image_size: v.usize("image_size", 224)?,
            patch_size: v.usize("patch_size", 16)?,
        };
        check_shapes(&t, &v, &text, &vision)?;
        // The text head maps to `projection_size`; the image embedding is the attention-pooling
        // head's output, of the vision width. Every published SigLIP has all three equal.
        let projection = t.usize("projection_size", text.hidden_size)?;
        if projection != text.hidden_size || projection != vision.hidden_size {
            return Err(t.err(
                "projection_size",
                format!(
                    "{projection} with text width {} and vision width {}: only equal widths are \
                     implemented",
                    text.hidden_size, vision.hidden_size
                ),
            ));
        }
        if v.merged.get("vision_use_head").and_then(Value::as_bool) == Some(false) {
            return Err(Error::Unsupported {
                key: "vision_config.vision_use_head".into(),
                value: "false (a SigLIP without its pooling head has no image embedding)".into(),
            });
        }
        let params = SiglipParams {
            text_act: t.activation("gelu_pytorch_tanh")?,
            vision_act: v.activation("gelu_pytorch_tanh")?,
            text_eps: t.f64("layer_norm_eps", 1e-6)?,
            vision_eps: v.f64("layer_norm_eps", 1e-6)?,
        };
        Ok(ClipConfig {
            text,
            vision,
            projection_dim: projection,
            // SigLIP initialises log(10) for the scale and -10 for the bias; both are weights.
            logit_scale_init_value: 10f32.ln(),
            family: Family::Siglip(params),
            preprocess: None,
            hf_text: None,
            timm_vision: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClipConfig> {
        ClipConfig::from_json(Path::new("config.json"), json)
    }

    #[test]
    fn newer_layout_reads_every_dimension() {
        let c = parse(
            r#"{"model_type":"clip","projection_dim":768,
            "text_config":{"hidden_size":768,"intermediate_size":3072,"num_attention_heads":12,"num_hidden_layers":12,"hidden_act":"quick_gelu"},
            "vision_config":{"hidden_size":1024,"intermediate_size":4096,"num_attention_heads":16,"num_hidden_layers":24,"image_size":336,"patch_size":14}}"#,
        )
        .unwrap();
        assert_eq!(c.projection_dim, 768);
        assert_eq!(c.text.hidden_size, 768);
        assert_eq!(c.vision.image_size, 336);
        assert_eq!(c.vision.patch_size, 14);
        assert_eq!(c.vision.num_hidden_layers, 24);
    }

    #[test]
    fn older_dict_layout_overrides_stale_section() {
        // As in openai/clip-vit-large-patch14: `text_config_dict` holds the real values.
        let c = parse(
            r#"{"projection_dim":768,"text_config":{"hidden_size":512},"text_config_dict":{"hidden_size":768,"num_attention_heads":12,"projection_dim":768},
            "vision_config":null,"vision_config_dict":{"hidden_size":1024,"num_attention_heads":16,"num_hidden_layers":24,"patch_size":14,"intermediate_size":4096}}"#,
        )
        .unwrap();
        assert_eq!(c.text.hidden_size, 768);
        assert_eq!(c.text.num_attention_heads, 12);
        assert_eq!(c.vision.hidden_size, 1024);
        assert_eq!(c.vision.image_size, 224, "default applies when absent");
    }

    #[test]
    fn unsupported_activation_names_the_key() {
        let e = parse(r#"{"vision_config":{"hidden_act":"relu"}}"#).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("vision_config.hidden_act"), "{msg}");
        assert!(msg.contains("relu"), "{msg}");
        // OpenCLIP's LAION and DataComp checkpoints use the exact GELU.
        let c = parse(r#"{"vision_config":{"hidden_act":"gelu"}}"#).unwrap();
        let Family::Clip(p) = c.family else {
            panic!("{:?}", c.family)
        };
        assert_eq!(p.vision_act, ClipActivation::Gelu);
        assert_eq!(p.text_act, ClipActivation::QuickGelu);
    }

    #[test]
    fn bad_value_names_the_key() {
        let e = parse(r#"{"text_config":{"hidden_size":"wide"}}"#).unwrap_err();
        assert!(e.to_string().contains("text_config.hidden_size"), "{e}");
        let e = parse(r#"{"vision_config":{"image_size":100,"patch_size":32}}"#).unwrap_err();
        assert!(e.to_string().contains("vision_config.patch_size"), "{e}");
    }
}
