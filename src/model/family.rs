//! Model families: which architecture a checkpoint's `config.json` describes.
//!
//! - CLIP (Radford et al., 2021, <https://arxiv.org/abs/2103.00020>): `model_type: clip`, e.g.
//!   [openai/clip-vit-base-patch32](https://huggingface.co/openai/clip-vit-base-patch32). Causal
//!   text tower pooled at the end token, class-token vision pooling, softmax over labels.
//! - SigLIP (Zhai et al., 2023, "Sigmoid Loss for Language Image Pre-Training",
//!   <https://arxiv.org/abs/2303.15343>) and the fixed-resolution SigLIP 2 models (Tschannen et
//!   al., 2025, <https://arxiv.org/abs/2502.14786>), `model_type: siglip`, e.g.
//!   [google/siglip2-base-patch16-224](https://huggingface.co/google/siglip2-base-patch16-224):
//!   bidirectional text tower over text padded to its full length and pooled at the last
//!   position, attention-pooling vision head, no crop, and a sigmoid with a learned bias per
//!   image-label pair instead of a softmax.

use candle_nn::Activation;

use super::activation::ClipActivation;

/// A family and what its arithmetic needs beyond the dimensions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Family {
    Clip(ClipParams),
    Siglip(SiglipParams),
}

/// CLIP's per-tower activation and layer-norm epsilon: OpenAI's checkpoints use quick-GELU,
/// OpenCLIP's (LAION, DataComp) the exact GELU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClipParams {
    pub text_act: ClipActivation,
    pub vision_act: ClipActivation,
    pub text_eps: f64,
    pub vision_eps: f64,
    /// CLIP's text transformer is causal; MobileCLIP's runs without the mask (over text padded
    /// to its context, as it was trained).
    pub text_causal: bool,
}

impl ClipParams {
    /// OpenAI's CLIP: quick-GELU, epsilon 1e-5.
    pub const OPENAI: ClipParams = ClipParams {
        text_act: ClipActivation::QuickGelu,
        vision_act: ClipActivation::QuickGelu,
        text_eps: 1e-5,
        vision_eps: 1e-5,
        text_causal: true,
    };
}

/// SigLIP's per-tower activation and layer-norm epsilon, read from `config.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiglipParams {
    pub text_act: Activation,
    pub vision_act: Activation,
    pub text_eps: f64,
    pub vision_eps: f64,
}

impl Family {
    /// The name indexes record and messages show.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Clip(_) => "clip",
            Family::Siglip(_) => "siglip",
        }
    }

    /// Whether `classify` scores labels independently (a sigmoid per label) rather than with
    /// a softmax over them.
    pub fn sigmoid_scores(&self) -> bool {
        matches!(self, Family::Siglip(_))
    }

    /// Whether this is a CLIP (of any activation).
    pub fn is_clip(&self) -> bool {
        matches!(self, Family::Clip(_))
    }

    /// The `model_type` values this build loads, for messages.
    pub const SUPPORTED: &'static str = "clip, siglip (SigLIP and fixed-resolution SigLIP 2)";
}
