//! CLIP written from differentiable tensor operations, for training.
//!
//! Same architecture and parameter names as Hugging Face's `CLIPModel` (Radford et al., 2021,
//! <https://arxiv.org/abs/2103.00020>), so a trained model saves as an ordinary checkpoint that
//! the engine's inference path ([`clipsearch::model::ClipModel`]) loads. Why not train
//! candle-transformers' CLIP directly: its layer norm is a fused kernel with no backward pass
//! (so most of the model would get no gradient), and it creates `logit_scale` and
//! `class_embedding` only when a checkpoint already holds them. Here the layer norm is spelled
//! out in elementary operations, every tensor is a [`Var`], and a test keeps this forward pass
//! numerically equal to the inference one.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{safetensors::MmapedSafetensors, DType, Device, Tensor, Var, D};
use clipsearch::model::weights::{expected_tensors, Towers};
use clipsearch::model::{ClipConfig, ModelFiles};
use clipsearch::preprocess::PreprocessConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::{Error, Result};

const LAYER_NORM_EPS: f64 = 1e-5;

/// A CLIP model whose every parameter is trainable.
pub struct TrainableClip {
    pub config: ClipConfig,
    params: BTreeMap<String, Var>,
    device: Device,
}

/// The standard deviation Hugging Face's `CLIPPreTrainedModel._init_weights` uses for `key`
/// (factor 1), or `None` for layer norms (ones and zeros) and biases (zeros).
fn init_std(c: &ClipConfig, key: &str) -> Option<f64> {
    if key.contains("norm") || key.ends_with(".bias") {
        return None;
    }
    let (width, layers) = if key.starts_with("text_model") || key == "text_projection.weight" {
        (c.text.hidden_size, c.text.num_hidden_layers)
    } else {
        (c.vision.hidden_size, c.vision.num_hidden_layers)
    };
    let w = width as f64;
    let std = if key.contains("token_embedding") || key.contains("patch_embedding") {
        0.02
    } else if key.contains("position_embedding") {
        if key.starts_with("text_model") {
            0.01
        } else {
            0.02
        }
    } else if key.contains("class_embedding") || key.contains("out_proj") {
        w.powf(-0.5)
    } else if key.contains("_proj.weight") && key.contains("self_attn") {
        w.powf(-0.5) * (2.0 * layers as f64).powf(-0.5)
    } else if key.contains("fc1") {
        (2.0 * w).powf(-0.5)
    } else if key.contains("fc2") {
        w.powf(-0.5) * (2.0 * layers as f64).powf(-0.5)
    } else {
        // text_projection, visual_projection
        w.powf(-0.5)
    };
    Some(std)
}

/// Training implements CLIP's towers and softmax loss; other families are refused by name rather
/// than failing on a missing tensor.
fn only_clip(config: &ClipConfig) -> Result<()> {
    if config.family
        != clipsearch::model::Family::Clip(clipsearch::model::family::ClipParams::OPENAI)
    {
        return Err(crate::Error::Data(format!(
            "training is implemented for OpenAI-style CLIP checkpoints (quick-GELU) only; this \
             one is {} with other arithmetic (not implemented for training)",
            config.family.name()
        )));
    }
    Ok(())
}

impl TrainableClip {
    /// A fresh model: normal weights as transformers initialises them, from a seeded generator
    /// (candle's CPU generator cannot be seeded), so that `--seed` makes runs repeatable.
    pub fn init(config: &ClipConfig, seed: u64, device: &Device) -> Result<Self> {
        only_clip(config)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = BTreeMap::new();
        for (key, shape) in expected_tensors(config, Towers::Both) {
            let n: usize = shape.iter().product();
            let t = match init_std(config, &key) {
                Some(std) => {
                    let normal = Normal::new(0f32, std as f32).expect("positive std");
                    let v: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
                    Tensor::from_vec(v, shape.as_slice(), device)?
                }
                None if key.contains("norm") && key.ends_with(".weight") => {
                    Tensor::ones(shape.as_slice(), DType::F32, device)?
                }
                None => Tensor::zeros(shape.as_slice(), DType::F32, device)?,
            };
            params.insert(key, Var::from_tensor(&t)?);
        }
        let scale = Tensor::new(&[config.logit_scale_init_value], device)?;
        params.insert("logit_scale".into(), Var::from_tensor(&scale)?);
        Ok(TrainableClip {
            config: config.clone(),
            params,
            device: device.clone(),
        })
    }

    /// Loads a checkpoint to fine-tune (or to resume): every tensor of both towers plus
    /// `logit_scale`, as f32 variables.
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self> {
        let config = ClipConfig::from_file(&files.config())?;
        only_clip(&config)?;
        let path = files.weights();
        // SAFETY: read-only mapping of a file we never write while it is mapped.
        let st = unsafe { MmapedSafetensors::new(&path) }?;
        clipsearch::model::weights::check(&path, &st, &config, Towers::Both)?;
        let mut params = BTreeMap::new();
        for (key, _) in expected_tensors(&config, Towers::Both) {
            let t = st.load(&key, device)?.to_dtype(DType::F32)?;
            params.insert(key, Var::from_tensor(&t)?);
        }
        let scale = match st.load("logit_scale", device) {
            Ok(t) => t.to_dtype(DType::F32)?.flatten_all()?,
            Err(_) => Tensor::new(&[config.logit_scale_init_value], device)?,
        };
        params.insert("logit_scale".into(), Var::from_tensor(&scale)?);
        Ok(TrainableClip {
            config,
            params,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter, by its checkpoint name, in a fixed order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn num_parameters(&self) -> usize {
        self.params.values().map(|v| v.elem_count()).sum()
    }

    fn p(&self, key: &str) -> &Tensor {
        self.params
            .get(key)
            .unwrap_or_else(|| panic!("parameter {key} exists by construction"))
            .as_tensor()
    }

    /// The learned temperature parameter (before `exp`), shape `[1]`.
    pub fn logit_scale(&self) -> &Tensor {
        self.p("logit_scale")
    }

    /// Keeps the temperature parameter within `[0, max]`, as CLIP does after each update
    /// (so that `exp` stays within [1, e^max]); returns the new value.
    pub fn clamp_logit_scale(&self, max: f64) -> Result<Tensor> {
        let var = &self.params["logit_scale"];
        let clamped = var.clamp(0.0, max)?;
        var.set(&clamped)?;
        Ok(clamped)
    }

    /// Rows of `x` (`[n, in]`) through the linear layer `name`.
    fn linear(&self, x: &Tensor, name: &str, bias: bool) -> Result<Tensor> {
        let y = x.matmul(&self.p(&format!("{name}.weight")).t()?)?;
        Ok(if bias {
            y.broadcast_add(self.p(&format!("{name}.bias")))?
        } else {
            y
        })
    }

    /// Layer norm from elementary operations, so that it has a backward pass.
    fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(self.p(&format!("{name}.weight")))?
            .broadcast_add(self.p(&format!("{name}.bias")))?)
    }

    /// Multi-head self-attention over `x` = `[batch * len, width]`.
    fn attention(
        &self,
        x: &Tensor,
        (batch, len): (usize, usize),
        heads: usize,
        name: &str,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let width = x.dim(1)?;
        let head_dim = width / heads;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((batch, len, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let scale = (head_dim as f64).powf(-0.5);
        let q = split((self.linear(x, &format!("{name}.q_proj"), true)? * scale)?)?;
        let k = split(self.linear(x, &format!("{name}.k_proj"), true)?)?;
        let v = split(self.linear(x, &format!("{name}.v_proj"), true)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * len, width))?;
        self.linear(&out, &format!("{name}.out_proj"), true)
    }

    /// One pre-norm transformer block.
    fn block(
        &self,
        x: &Tensor,
        shape: (usize, usize),
        heads: usize,
        name: &str,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.layer_norm(x, &format!("{name}.layer_norm1"))?;
        let x = (x + self.attention(&h, shape, heads, &format!("{name}.self_attn"), mask)?)?;
        let h = self.layer_norm(&x, &format!("{name}.layer_norm2"))?;
        let h = self.linear(&h, &format!("{name}.mlp.fc1"), true)?;
        // quick_gelu, as CLIP was trained with: x * sigmoid(1.702 x).
        let h = (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?;
        let h = self.linear(&h, &format!("{name}.mlp.fc2"), true)?;
        Ok((x + h)?)
    }

    /// Unnormalised text features (`get_text_features`) of `ids` (`[batch, len]`, u32), read at
    /// each row's first end token `ends[row]`. Rows may be padded after their end token with
    /// anything: the causal mask keeps padding out of the pooled position.
    pub fn text_features(&self, ids: &Tensor, ends: &[usize]) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let c = &self.config.text;
        if len > c.max_position_embeddings {
            return Err(Error::Data(format!(
                "{len} tokens exceed the text tower's {} positions",
                c.max_position_embeddings
            )));
        }
        let tok = self
            .p("text_model.embeddings.token_embedding.weight")
            .embedding(&ids.flatten_all()?)?;
        let pos = self
            .p("text_model.embeddings.position_embedding.weight")
            .narrow(0, 0, len)?;
        let x = tok
            .reshape((batch, len, c.hidden_size))?
            .broadcast_add(&pos)?
            .reshape((batch * len, c.hidden_size))?;
        let mask: Vec<f32> = (0..len * len)
            .map(|i| {
                if i % len > i / len {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (len, len), &self.device)?;
        let mut x = x;
        for l in 0..c.num_hidden_layers {
            x = self.block(
                &x,
                (batch, len),
                c.num_attention_heads,
                &format!("text_model.encoder.layers.{l}"),
                Some(&mask),
            )?;
        }
        let rows: Vec<u32> = ends
            .iter()
            .enumerate()
            .map(|(b, &e)| (b * len + e) as u32)
            .collect();
        let rows = Tensor::from_vec(rows, batch, &self.device)?;
        let pooled = x.index_select(&rows, 0)?;
        let pooled = self.layer_norm(&pooled, "text_model.final_layer_norm")?;
        self.linear(&pooled, "text_projection", false)
    }

    /// Unnormalised image features (`get_image_features`) of preprocessed images
    /// (`[batch, channels, size, size]`).
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor> {
        let c = &self.config.vision;
        let (batch, ch, h, w) = pixels.dims4()?;
        let p = c.patch_size;
        let (gh, gw) = (h / p, w / p);
        // The patch embedding is a stride-p convolution: unfold the patches and multiply.
        let patches = pixels
            .reshape((batch * ch * gh, p, gw, p))?
            .transpose(1, 2)?
            .reshape((batch, ch, gh * gw, p * p))?
            .transpose(1, 2)?
            .reshape((batch * gh * gw, ch * p * p))?;
        let kernel = self
            .p("vision_model.embeddings.patch_embedding.weight")
            .reshape((c.hidden_size, ch * p * p))?;
        let embedded = patches
            .matmul(&kernel.t()?)?
            .reshape((batch, gh * gw, c.hidden_size))?;
        let class = self
            .p("vision_model.embeddings.class_embedding")
            .reshape((1, 1, c.hidden_size))?
            .broadcast_as((batch, 1, c.hidden_size))?;
        let len = gh * gw + 1;
        let x = Tensor::cat(&[&class, &embedded], 1)?
            .broadcast_add(self.p("vision_model.embeddings.position_embedding.weight"))?
            .reshape((batch * len, c.hidden_size))?;
        let mut x = self.layer_norm(&x, "vision_model.pre_layrnorm")?;
        for l in 0..c.num_hidden_layers {
            x = self.block(
                &x,
                (batch, len),
                c.num_attention_heads,
                &format!("vision_model.encoder.layers.{l}"),
                None,
            )?;
        }
        let cls = x
            .reshape((batch, len, c.hidden_size))?
            .narrow(1, 0, 1)?
            .squeeze(1)?;
        let pooled = self.layer_norm(&cls, "vision_model.post_layernorm")?;
        self.linear(&pooled, "visual_projection", false)
    }

    /// Writes a Hugging Face-format checkpoint: `config.json`, `model.safetensors` (in `dtype`;
    /// the engine converts to f32 on load), `tokenizer.json` and `preprocessor_config.json`.
    /// Files are written under temporary names and renamed, so a checkpoint is never half there.
    pub fn save(
        &self,
        dir: &Path,
        tokenizer: &Path,
        preprocess: &PreprocessConfig,
        dtype: DType,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let write = |name: &str, f: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
            let tmp = dir.join(format!(".{name}.tmp"));
            f(&tmp)?;
            std::fs::rename(&tmp, dir.join(name)).map_err(|e| Error::io(dir.join(name), e))
        };
        write("config.json", &|p| {
            let json = serde_json::to_string_pretty(&self.config.to_json()).expect("json");
            std::fs::write(p, json).map_err(|e| Error::io(p, e))
        })?;
        write("preprocessor_config.json", &|p| {
            let json = serde_json::to_string_pretty(&preprocess_json(preprocess)).expect("json");
            std::fs::write(p, json).map_err(|e| Error::io(p, e))
        })?;
        write("tokenizer.json", &|p| {
            std::fs::copy(tokenizer, p)
                .map(|_| ())
                .map_err(|e| Error::io(tokenizer, e))
        })?;
        write("model.safetensors", &|p| {
            let tensors = self
                .params
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(dtype)?)))
                .collect::<Result<std::collections::HashMap<_, _>>>()?;
            candle_core::safetensors::save(&tensors, p)?;
            Ok(())
        })?;
        Ok(())
    }

    /// The parameters as plain tensors (for checkpoints of the training state).
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Overwrites parameter values (shapes must match), e.g. when resuming.
    pub fn set(&self, values: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for (key, var) in &self.params {
            let t = values
                .get(key)
                .ok_or_else(|| Error::Data(format!("training state has no tensor {key}")))?;
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

/// `preprocessor_config.json` in transformers' current layout.
pub fn preprocess_json(p: &PreprocessConfig) -> serde_json::Value {
    serde_json::json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": true, "size": {"shortest_edge": p.shortest_edge}, "resample": 3,
        "do_center_crop": true, "crop_size": {"height": p.crop_height, "width": p.crop_width},
        "do_rescale": true, "rescale_factor": p.rescale_factor,
        "do_normalize": true, "image_mean": p.mean, "image_std": p.std,
        "do_convert_rgb": true,
    })
}
