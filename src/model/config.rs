//! A checkpoint's configuration in transformers' terms, whichever file it was read from
//! ([`super::config_json`]: transformers' `config.json`; [`super::openclip`]: OpenCLIP's
//! `open_clip_config.json`): the towers' dimensions, the family, the preprocessing a
//! configuration carries, and what candle-transformers' SigLIP needs of it.
//!
//! Only the types: the parsers build them, and everything that runs a model reads them.

use super::family::{Family, SiglipParams};
use super::hf_text::HfTextConfig;
use crate::error::{Error, Result};
use crate::preprocess::PreprocessConfig;

/// The text tower's dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
}

/// The vision tower's dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
}

/// A whole model's configuration (CLIP's, or another [`Family`]'s in the same terms).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    /// Width of the shared embedding space.
    pub projection_dim: usize,
    pub logit_scale_init_value: f32,
    pub family: Family,
    /// Preprocessing the configuration itself carries (OpenCLIP's `preprocess_cfg`); else the
    /// family's defaults, under `preprocessor_config.json`.
    pub preprocess: Option<PreprocessConfig>,
    /// A Hugging Face text tower in place of CLIP's (OpenCLIP's multilingual models).
    pub hf_text: Option<HfTextConfig>,
    /// A timm image tower in place of CLIP's ViT (MobileCLIP's FastViT MCi), by timm's name.
    pub timm_vision: Option<String>,
}

impl ClipConfig {
    /// The family's default preprocessing for this tower's input size.
    pub fn default_preprocess(&self) -> PreprocessConfig {
        if let Some(p) = &self.preprocess {
            return p.clone();
        }
        match self.family {
            Family::Clip(_) => PreprocessConfig::clip_default(self.vision.image_size),
            Family::Siglip(_) => PreprocessConfig::siglip_default(self.vision.image_size),
        }
    }

    fn siglip_params(&self) -> Result<SiglipParams> {
        match self.family {
            Family::Siglip(p) => Ok(p),
            Family::Clip(_) => Err(Error::Misuse("not a SigLIP configuration".into())),
        }
    }

    pub(crate) fn candle_siglip_text(
        &self,
    ) -> Result<candle_transformers::models::siglip::TextConfig> {
        let p = self.siglip_params()?;
        let t = &self.text;
        Ok(candle_transformers::models::siglip::TextConfig {
            vocab_size: t.vocab_size,
            hidden_size: t.hidden_size,
            intermediate_size: t.intermediate_size,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            max_position_embeddings: t.max_position_embeddings,
            hidden_act: p.text_act,
            layer_norm_eps: p.text_eps,
            // Read by nothing in candle's model; the tokenizer pads.
            pad_token_id: 0,
            bos_token_id: 0,
            eos_token_id: 0,
        })
    }

    pub(crate) fn candle_siglip_vision(
        &self,
    ) -> Result<candle_transformers::models::siglip::VisionConfig> {
        let p = self.siglip_params()?;
        let v = &self.vision;
        Ok(candle_transformers::models::siglip::VisionConfig {
            hidden_size: v.hidden_size,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            num_channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
            hidden_act: p.vision_act,
            layer_norm_eps: p.vision_eps,
        })
    }
}
