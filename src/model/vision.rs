//! CLIP's vision tower (ViT, Dosovitskiy et al., 2020, <https://arxiv.org/abs/2010.11929>, as
//! CLIP uses it) with its linear layers in int8: the opt-in fast mode of `clipsearch index --fast`.
//!
//! The linear layers hold about 97% of the tower's arithmetic. Here their weights are quantized
//! to 8 bits and multiplied by activations quantized the same way, with integer dot products:
//! on CPUs with AVX-512 VNNI by our kernel ([`super::int8`]: blocks of 256 inputs, the
//! activation fused into `fc1`), 2.7x the f32 tower's speed and 2.3x candle's product here;
//! elsewhere by candle's `Q8_0` product (blocks of 32 weights sharing one f16 scale), about
//! twice f32 on AVX2 (`cargo bench --bench engine`, "image tower"). Everything else stays
//! f32 (patch embedding, layer norms, attention scores, softmax, residuals), so the error is the
//! rounding of weights and activations to 8 bits: a cosine to the f32 embedding above 0.99
//! (bounded in `tests/int8.rs`). Query and key/value projections are fused into one matrix, so
//! each layer makes three passes over its input instead of five.
//!
//! The layout follows transformers' `CLIPVisionTransformer` and reads the same Hugging Face
//! weights (`vision_model.*`, `visual_projection.weight`): embeddings (patch convolution, class
//! token, positions), `pre_layrnorm`, pre-norm encoder layers with the checkpoint's activation
//! (quick-GELU for OpenAI's, GELU for OpenCLIP's) in their MLPs, and the
//! class token through `post_layernorm` and the projection.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, D};
use candle_nn::{LayerNorm, VarBuilder};

use super::activation::ClipActivation;
use super::clip_tower::PatchEmbedding;
use super::config::VisionConfig;
use super::family::ClipParams;
use super::int8;
use crate::error::Result;

/// A linear layer whose weight is int8 when its input width allows (a multiple of 32): our
/// kernels on x86-64 CPUs with AMX, AVX-512 VNNI or AVX2 ([`int8`]), candle's `Q8_0` product
/// elsewhere; f32
/// when the width does not allow.
enum QLinear {
    Ours(int8::Int8Matrix),
    Candle {
        weight: QMatMul,
        bias: Option<Tensor>,
    },
}

/// Which integer product an int8 tower's linear layers run: what the fast-mode figures depend
/// on, so tests can hold the dispatch to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Product {
    /// Our AMX kernel ([`int8`]).
    Amx,
    /// Our AVX-512 VNNI kernel ([`int8`]).
    Vnni,
    /// Our AVX2 kernel ([`int8`]).
    Avx2,
    /// candle's `Q8_0` product.
    Candle,
}

impl QLinear {
    fn product(&self) -> Int8Product {
        match self {
            QLinear::Ours(m) => match m.kernel() {
                int8::Kernel::Amx => Int8Product::Amx,
                int8::Kernel::Vnni => Int8Product::Vnni,
                int8::Kernel::Avx2 => Int8Product::Avx2,
            },
            QLinear::Candle { .. } => Int8Product::Candle,
        }
    }

    fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        // `int8::kernel` honours CLIPSEARCH_INT8_KERNEL, for comparisons side by side.
        if int8::kernel().is_some() && int8::block_for(in_dim).is_some() {
            let w = weight.flatten_all()?.to_vec1::<f32>()?;
            let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?;
            let m = int8::Int8Matrix::quantize(&w, out_dim, in_dim, bias)
                .expect("block_for said the width is quantizable");
            return Ok(QLinear::Ours(m));
        }
        let weight = if in_dim % GgmlDType::Q8_0.block_size() == 0 {
            QMatMul::from_qtensor(QTensor::quantize(&weight, GgmlDType::Q8_0)?)?
        } else {
            QMatMul::Tensor(weight)
        };
        Ok(QLinear::Candle { weight, bias })
    }

    /// Fuses the MLP's activation into the product where our kernel runs; whether it did.
    fn fuse_activation(self, act: ClipActivation) -> (Self, bool) {
        let epilogue = match act {
            ClipActivation::QuickGelu => int8::Epilogue::QuickGelu,
            ClipActivation::Gelu => int8::Epilogue::Gelu,
        };
        match self {
            QLinear::Ours(m) => (QLinear::Ours(m.with_epilogue(epilogue)), true),
            other => (other, false),
        }
    }

    fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Self::new(
            vb.get((out_dim, in_dim), "weight")?,
            Some(vb.get(out_dim, "bias")?),
        )
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            QLinear::Ours(m) => Ok(x.apply_op1_no_bwd(m)?),
            QLinear::Candle { weight, bias } => {
                let y = weight.forward(x)?;
                Ok(match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }
}

fn layer_norm(vb: VarBuilder, dim: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(dim, "weight")?,
        vb.get(dim, "bias")?,
        eps,
    ))
}

struct Layer {
    norm1: LayerNorm,
    /// Query (pre-scaled by 1/sqrt(head dim)), key and value projections stacked.
    qkv: QLinear,
    out: QLinear,
    norm2: LayerNorm,
    fc1: QLinear,
    fc2: QLinear,
    heads: usize,
    act: ClipActivation,
    /// Whether `fc1` applies the activation itself (on our kernel).
    fused_act: bool,
}

impl Layer {
    fn load(vb: VarBuilder, c: &VisionConfig, p: &ClipParams) -> Result<Self> {
        let h = c.hidden_size;
        let attn = vb.pp("self_attn");
        let scale = ((h / c.num_attention_heads) as f64).powf(-0.5);
        let (q, k, v) = (attn.pp("q_proj"), attn.pp("k_proj"), attn.pp("v_proj"));
        // transformers scales the query after adding its bias: scaling both is the same.
        let weight = Tensor::cat(
            &[
                (q.get((h, h), "weight")? * scale)?,
                k.get((h, h), "weight")?,
                v.get((h, h), "weight")?,
            ],
            0,
        )?;
        let bias = Tensor::cat(
            &[
                (q.get(h, "bias")? * scale)?,
                k.get(h, "bias")?,
                v.get(h, "bias")?,
            ],
            0,
        )?;
        let mlp = vb.pp("mlp");
        let fc1 = QLinear::load(&mlp.pp("fc1"), h, c.intermediate_size)?;
        let (fc1, fused_act) = fc1.fuse_activation(p.vision_act);
        Ok(Layer {
            norm1: layer_norm(vb.pp("layer_norm1"), h, p.vision_eps)?,
            qkv: QLinear::new(weight, Some(bias))?,
            out: QLinear::load(&attn.pp("out_proj"), h, h)?,
            norm2: layer_norm(vb.pp("layer_norm2"), h, p.vision_eps)?,
            fc1,
            fc2: QLinear::load(&mlp.pp("fc2"), c.intermediate_size, h)?,
            heads: c.num_attention_heads,
            act: p.vision_act,
            fused_act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / self.heads;
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        // (b, t, 3, heads, d) -> three (b * heads, t, d)
        let qkv = qkv
            .reshape((b, t, 3, self.heads, d))?
            .permute((2, 0, 3, 1, 4))?;
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv.get(i)?.contiguous()?.reshape((b * self.heads, t, d))?)
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended = probs
            .matmul(&v)?
            .reshape((b, self.heads, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h))?;
        let x = (x + self.out.forward(&attended)?)?;
        let hidden = self.fc1.forward(&self.norm2.forward(&x)?)?;
        let hidden = if self.fused_act {
            hidden
        } else {
            self.act.forward(&hidden)?
        };
        Ok((x + self.fc2.forward(&hidden)?)?)
    }
}

/// The vision tower and its projection, with int8 linear layers.
pub struct Int8VisionTower {
    patch_embedding: PatchEmbedding,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_norm: LayerNorm,
    layers: Vec<Layer>,
    post_norm: LayerNorm,
    projection: QLinear,
}

impl Int8VisionTower {
    /// Loads from a checkpoint's `VarBuilder` (root: the model, holding `vision_model` and
    /// `visual_projection`), quantizing as it goes.
    pub fn load(
        vb: VarBuilder,
        c: &VisionConfig,
        projection_dim: usize,
        p: &ClipParams,
    ) -> Result<Self> {
        let h = c.hidden_size;
        let vm = vb.pp("vision_model");
        let emb = vm.pp("embeddings");
        let positions = (c.image_size / c.patch_size).pow(2) + 1;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vm.pp("encoder.layers").pp(i.to_string()), c, p))
            .collect::<Result<_>>()?;
        Ok(Int8VisionTower {
            patch_embedding: PatchEmbedding::new(emb.get(
                (h, c.num_channels, c.patch_size, c.patch_size),
                "patch_embedding.weight",
            )?)?,
            class_embedding: emb.get(h, "class_embedding")?,
            position_embedding: emb.get((positions, h), "position_embedding.weight")?,
            pre_norm: layer_norm(vm.pp("pre_layrnorm"), h, p.vision_eps)?,
            layers,
            post_norm: layer_norm(vm.pp("post_layernorm"), h, p.vision_eps)?,
            projection: QLinear::new(
                vb.pp("visual_projection")
                    .get((projection_dim, h), "weight")?,
                None,
            )?,
        })
    }

    /// The product the encoder's layers run (the projection may differ: its width need not
    /// fit our kernel's blocks).
    pub fn product(&self) -> Int8Product {
        self.layers
            .first()
            .map_or(self.projection.product(), |l| l.fc2.product())
    }

    /// Unnormalised image features of a (batch, channels, height, width) tensor.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let patches = self
            .patch_embedding
            .forward(&pixels.to_dtype(DType::F32)?)?;
        let h = patches.dim(D::Minus1)?;
        let class = self.class_embedding.reshape((1, 1, h))?.repeat((b, 1, 1))?;
        let x = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        let mut x = self.pre_norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let pooled = self.post_norm.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        self.projection.forward(&pooled)
    }
}
