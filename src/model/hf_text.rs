//! Multilingual text towers: OpenCLIP models whose text side is a Hugging Face XLM-RoBERTa
//! (Conneau et al., 2020, <https://arxiv.org/abs/1911.02116>), e.g. LAION's
//! `xlm-roberta-base-ViT-B-32` (`laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k`) and
//! `xlm-roberta-large-ViT-H-14`, trained on LAION-5B's captions in 100+ languages, so that
//! "chien sur une plage" lands where "dog on a beach" does.
//!
//! As open_clip's `HFTextEncoder` computes it: XLM-RoBERTa's last hidden state, averaged over
//! the text's tokens (`mean_pooler`), then a projection into the image space (`mlp`: two linear
//! layers without bias around a GELU, the default; or `linear`). The transformer itself is
//! candle-transformers' XLM-RoBERTa. Texts run unpadded, each length in its own batch: with no
//! padding the attention mask and the pooling mask are all ones, which is what open_clip's masks
//! select from its padded input.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::xlm_roberta::{Config, XLMRobertaModel};
use serde_json::Value;

use crate::error::{Error, Result};

/// The projection from the text width to the embedding space (`hf_proj_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HfProjection {
    /// `Linear(width, (width + dim) / 2) -> GELU -> Linear(.., dim)`, no biases.
    Mlp,
    /// `Linear(width, dim)`, no bias.
    Linear,
}

/// What `open_clip_config.json` says of a Hugging Face text tower, with the tower's own
/// configuration (transformers' `config.json` of the named model).
#[derive(Clone, Debug, PartialEq)]
pub struct HfTextConfig {
    pub name: String,
    pub config: Value,
    pub projection: HfProjection,
}

impl HfTextConfig {
    fn parsed(&self) -> Result<Config> {
        // transformers writes only what differs from `XLMRobertaConfig`'s defaults (since v5,
        // not even the position embedding type): fill them in.
        let mut config = self.config.clone();
        if let Some(map) = config.as_object_mut() {
            let defaults = [
                ("position_embedding_type", serde_json::json!("absolute")),
                ("hidden_act", serde_json::json!("gelu")),
                ("layer_norm_eps", serde_json::json!(1e-12)),
                ("attention_probs_dropout_prob", serde_json::json!(0.1)),
                ("hidden_dropout_prob", serde_json::json!(0.1)),
                ("type_vocab_size", serde_json::json!(2)),
                ("max_position_embeddings", serde_json::json!(512)),
                ("intermediate_size", serde_json::json!(3072)),
                ("pad_token_id", serde_json::json!(1)),
            ];
            for (key, value) in defaults {
                map.entry(key).or_insert(value);
            }
        }
        if config["position_embedding_type"] != "absolute" {
            return Err(Error::Unsupported {
                key: "text_config.position_embedding_type".into(),
                value: config["position_embedding_type"].to_string(),
            });
        }
        serde_json::from_value(config).map_err(|e| Error::Unsupported {
            key: "text_cfg.hf_model_name".into(),
            value: format!(
                "{}: its configuration does not read as XLM-RoBERTa's: {e}",
                self.name
            ),
        })
    }

    /// The tower's width.
    pub fn width(&self) -> usize {
        self.config["hidden_size"].as_u64().unwrap_or(0) as usize
    }
}

/// transformers' configurations of the XLM-RoBERTa models OpenCLIP's multilingual CLIPs name
/// (FacebookAI/xlm-roberta-base and -large on the hub), so that a checkpoint naming one needs
/// nothing else.
pub fn known_config(name: &str) -> Option<Value> {
    let (hidden, layers, heads, mlp) = match name.rsplit('/').next()? {
        "xlm-roberta-base" => (768, 12, 12, 3072),
        "xlm-roberta-large" => (1024, 24, 16, 4096),
        _ => return None,
    };
    Some(serde_json::json!({
        "model_type": "xlm-roberta",
        "vocab_size": 250002,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": mlp,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "layer_norm_eps": 1e-5,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": "absolute",
    }))
}

/// The tower with its pooling and projection (`text.transformer.*`, `text.proj.*`).
pub struct HfTextTower {
    model: XLMRobertaModel,
    projection: Vec<Linear>,
    device: Device,
}

impl HfTextTower {
    /// `vb` is rooted at OpenCLIP's `text` module.
    pub fn new(vb: VarBuilder, c: &HfTextConfig, dim: usize) -> Result<Self> {
        let config = c.parsed()?;
        let model = XLMRobertaModel::new(&config, vb.pp("transformer"))?;
        let w = config.hidden_size;
        let projection = match c.projection {
            HfProjection::Mlp => {
                let hidden = (w + dim) / 2;
                vec![
                    candle_nn::linear_no_bias(w, hidden, vb.pp("proj.0"))?,
                    candle_nn::linear_no_bias(hidden, dim, vb.pp("proj.2"))?,
                ]
            }
            HfProjection::Linear => vec![candle_nn::linear_no_bias(w, dim, vb.pp("proj"))?],
        };
        Ok(HfTextTower {
            model,
            projection,
            device: vb.device().clone(),
        })
    }

    /// Unnormalised text features of sequences of one length, `[batch, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let ones = Tensor::ones(ids.dims(), DType::U32, &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(ids, &ones, &types, None, None, None)?;
        let mut x = hidden.mean(1)?;
        for (i, layer) in self.projection.iter().enumerate() {
            if i > 0 {
                x = x.gelu_erf()?;
            }
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}
