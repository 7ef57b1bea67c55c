//! CLIP's two towers (Radford et al., 2021, <https://arxiv.org/abs/2103.00020>) as transformers'
//! `CLIPTextTransformer` and `CLIPVisionTransformer` compute them, with the activation and the
//! layer-norm epsilon the checkpoint names.
//!
//! candle-transformers' CLIP hard-codes quick-GELU, the activation of OpenAI's checkpoints; the
//! CLIPs trained since by LAION and DataComp with OpenCLIP (`laion/CLIP-ViT-*`, rclip's default
//! `ViT-B-32-256`) use the exact GELU. Both read the same Hugging Face weight names, so one
//! implementation serves every CLIP checkpoint, whichever layout it came in ([`super::openclip`]
//! renames OpenCLIP's).

use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::config::{ClipConfig, TextConfig, VisionConfig};
use super::family::ClipParams;
use crate::error::Result;

/// The MLP activation of a CLIP tower (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipActivation {
    /// `x * sigmoid(1.702 x)`: OpenAI's checkpoints.
    QuickGelu,
    /// The exact (erf) GELU: OpenCLIP's LAION and DataComp checkpoints.
    Gelu,
}

impl ClipActivation {
    /// The activation transformers calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(ClipActivation::QuickGelu),
            "gelu" => Some(ClipActivation::Gelu),
            _ => None,
        }
    }

    pub(crate) fn forward(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        if xs.device().is_cpu() && xs.dtype() == DType::F32 && xs.is_contiguous() {
            return xs.apply_op1_no_bwd(&self);
        }
        match self {
            ClipActivation::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702f64)?)?,
            ClipActivation::Gelu => xs.gelu_erf(),
        }
    }

    /// One value, with the arithmetic of the candle operations in `forward`'s fallback (affine,
    /// sigmoid, product; `gelu_erf`), so that both give the same bits.
    #[inline]
    fn value(self, v: f32) -> f32 {
        match self {
            ClipActivation::QuickGelu => {
                let s = ((-(v * 1.702f32 + 0.0)).exp() + 1.0).recip();
                v * s
            }
            ClipActivation::Gelu => {
                (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.) * 0.5 * v
            }
        }
    }
}

/// The MLP activation on the CPU in one pass over the hidden states, on every core: candle
/// computes quick-GELU as three single-threaded passes (6.9 ms for a batch of 8 images'
/// `8x50x3072` states here, longer than the matmul before it; `gelu_erf` 4.4 ms), about a fifth
/// of the image tower's time.
impl candle_core::CustomOp1 for ClipActivation {
    fn name(&self) -> &'static str {
        "clip-mlp-activation"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let src = contiguous_f32(self.name(), storage, layout)?;
        let mut out = vec![0f32; src.len()];
        // Chunks of 16 Ki values: enough work per task to amortise rayon's scheduling.
        out.par_chunks_mut(1 << 14)
            .zip(src.par_chunks(1 << 14))
            .for_each(|(out, src)| {
                for (o, &v) in out.iter_mut().zip(src) {
                    *o = self.value(v);
                }
            });
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// A custom operation's input as a slice: contiguous f32 on the CPU, or an error naming `op`.
pub(crate) fn contiguous_f32<'a>(
    op: &str,
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{op}: contiguous f32 input expected"),
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn new(vb: VarBuilder, h: usize, heads: usize) -> Result<Self> {
        let lin = |name: &str| candle_nn::linear(h, h, vb.pp(name));
        Ok(Attention {
            q: lin("q_proj")?,
            k: lin("k_proj")?,
            v: lin("v_proj")?,
            out: lin("out_proj")?,
            heads,
            scale: ((h / heads) as f64).powf(-0.5),
        })
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (b, n, h) = xs.dims3()?;
        let d = h / self.heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, n, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * self.heads, n, d))
        };
        let q = split((self.q.forward(xs)? * self.scale)?)?;
        let k = split(self.k.forward(xs)?)?;
        let v = split(self.v.forward(xs)?)?;
        let mut scores = q.matmul(&k.transpose(1, 2)?)?;
        if let Some(mask) = mask {
            scores = scores
                .reshape((b, self.heads, n, n))?
                .broadcast_add(mask)?
                .reshape((b * self.heads, n, n))?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .reshape((b, self.heads, n, d))?
            .transpose(1, 2)?
            .reshape((b, n, h))?;
        self.out.forward(&out)
    }
}

struct Layer {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: ClipActivation,
}

impl Layer {
    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let xs = (self.attn.forward(&self.norm1.forward(xs)?, mask)? + xs)?;
        let hidden = self
            .act
            .forward(&self.fc1.forward(&self.norm2.forward(&xs)?)?)?;
        self.fc2.forward(&hidden)? + xs
    }
}

/// The pre-norm encoder both towers share (`*.encoder.layers.N`).
struct Encoder(Vec<Layer>);

impl Encoder {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vb: VarBuilder,
        layers: usize,
        h: usize,
        mlp: usize,
        heads: usize,
        act: ClipActivation,
        eps: f64,
    ) -> Result<Self> {
        let vb = vb.pp("encoder.layers");
        (0..layers)
            .map(|i| {
                let vb = vb.pp(i);
                Ok(Layer {
                    norm1: candle_nn::layer_norm(h, eps, vb.pp("layer_norm1"))?,
                    attn: Attention::new(vb.pp("self_attn"), h, heads)?,
                    norm2: candle_nn::layer_norm(h, eps, vb.pp("layer_norm2"))?,
                    fc1: candle_nn::linear(h, mlp, vb.pp("mlp.fc1"))?,
                    fc2: candle_nn::linear(mlp, h, vb.pp("mlp.fc2"))?,
                    act,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Encoder)
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut xs = xs.clone();
        for layer in &self.0 {
            xs = layer.forward(&xs, mask)?;
        }
        Ok(xs)
    }
}

/// The text tower up to the final layer norm (`text_model.*`): causal, so a sequence's hidden
/// state at its end token does not depend on anything after it (MobileCLIP's is not: it reads
/// its input padded to the context length).
pub struct ClipTextTower {
    token: candle_nn::Embedding,
    position: Tensor,
    encoder: Encoder,
    final_norm: LayerNorm,
    causal: bool,
}

impl ClipTextTower {
    pub fn new(vb: VarBuilder, c: &TextConfig, p: ClipParams) -> Result<Self> {
        let (act, eps, causal) = (p.text_act, p.text_eps, p.text_causal);
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        Ok(ClipTextTower {
            token: candle_nn::embedding(c.vocab_size, h, e.pp("token_embedding"))?,
            position: e.get((c.max_position_embeddings, h), "position_embedding.weight")?,
            encoder: Encoder::new(
                vb.clone(),
                c.num_hidden_layers,
                h,
                c.intermediate_size,
                c.num_attention_heads,
                act,
                eps,
            )?,
            final_norm: candle_nn::layer_norm(h, eps, vb.pp("final_layer_norm"))?,
            causal,
        })
    }

    /// Whether the tower is causal (CLIP's) or reads whole padded sequences (MobileCLIP's).
    pub fn causal(&self) -> bool {
        self.causal
    }

    /// Hidden states after the final layer norm, `[batch, tokens, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let xs = self
            .token
            .forward(ids)?
            .broadcast_add(&self.position.narrow(0, 0, n)?)?;
        let xs = if self.causal {
            let mask = causal_mask(n, ids.device())?.broadcast_as((b, 1, n, n))?;
            self.encoder.forward(&xs, Some(&mask))?
        } else {
            self.encoder.forward(&xs, None)?
        };
        self.final_norm.forward(&xs)
    }
}

fn causal_mask(n: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (n, n), device)
}

/// ViT's patch embedding, a convolution with stride equal to its kernel, computed as what it
/// is: each patch's pixels (channel, row, column: the kernel's order) times the kernel as a
/// `[hidden, channels x patch x patch]` matrix. candle's `conv2d` gets there through an
/// im2col copy and a product by the transposed kernel; this is 2.3x faster for a batch of 8
/// (4.3 against 9.9 ms here with AVX-512) and equal to it within float rounding.
pub(crate) struct PatchEmbedding {
    weight: Linear,
    patch: usize,
}

impl PatchEmbedding {
    /// From the convolution's `[hidden, channels, patch, patch]` kernel.
    pub(crate) fn new(kernel: Tensor) -> candle_core::Result<Self> {
        let (h, c, p, _) = kernel.dims4()?;
        let weight = super::layout::linear_weight(kernel.reshape((h, c * p * p))?)?;
        Ok(PatchEmbedding {
            weight: Linear::new(weight, None),
            patch: p,
        })
    }

    /// `[batch, patches, hidden]` (patches row by row) of `[batch, channels, H, W]` pixels; as
    /// the convolution, a border narrower than a patch is ignored.
    pub(crate) fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, hh, ww) = pixels.dims4()?;
        let p = self.patch;
        let (gh, gw) = (hh / p, ww / p);
        let pixels = if gh * p != hh || gw * p != ww {
            pixels.narrow(2, 0, gh * p)?.narrow(3, 0, gw * p)?
        } else {
            pixels.clone()
        };
        let patches = pixels
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b, gh * gw, c * p * p))?;
        self.weight.forward(&patches)
    }
}

/// The vision tower with its projection (`vision_model.*`, `visual_projection`): patch
/// embedding, class token and positions, `pre_layrnorm`, the encoder, `post_layernorm` of the
/// class token, projection.
pub struct ClipVisionTower {
    patch: PatchEmbedding,
    class: Tensor,
    position: Tensor,
    pre_norm: LayerNorm,
    encoder: Encoder,
    post_norm: LayerNorm,
    projection: Linear,
}

impl ClipVisionTower {
    pub fn new(vb: VarBuilder, c: &ClipConfig, act: ClipActivation, eps: f64) -> Result<Self> {
        let v: &VisionConfig = &c.vision;
        let h = v.hidden_size;
        let positions = (v.image_size / v.patch_size).pow(2) + 1;
        let m = vb.pp("vision_model");
        let e = m.pp("embeddings");
        Ok(ClipVisionTower {
            patch: PatchEmbedding::new(e.get(
                (h, v.num_channels, v.patch_size, v.patch_size),
                "patch_embedding.weight",
            )?)?,
            class: e.get(h, "class_embedding")?,
            position: e.get((positions, h), "position_embedding.weight")?,
            pre_norm: candle_nn::layer_norm(h, eps, m.pp("pre_layrnorm"))?,
            encoder: Encoder::new(
                m.clone(),
                v.num_hidden_layers,
                h,
                v.intermediate_size,
                v.num_attention_heads,
                act,
                eps,
            )?,
            post_norm: candle_nn::layer_norm(h, eps, m.pp("post_layernorm"))?,
            projection: candle_nn::linear_no_bias(h, c.projection_dim, vb.pp("visual_projection"))?,
        })
    }

    /// Unnormalised image features (`get_image_features`) of `[batch, 3, H, W]` pixels.
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let b = pixels.dim(0)?;
        let patches = self.patch.forward(pixels)?;
        let h = patches.dim(D::Minus1)?;
        let class = self.class.reshape((1, 1, h))?.broadcast_as((b, 1, h))?;
        let xs = Tensor::cat(&[&class.to_dtype(DType::F32)?, &patches], 1)?
            .broadcast_add(&self.position)?;
        let xs = self.encoder.forward(&self.pre_norm.forward(&xs)?, None)?;
        let pooled = self.post_norm.forward(&xs.i((.., 0, ..))?)?;
        self.projection.forward(&pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fused_activation_gives_candles_bits() {
        let dev = Device::Cpu;
        // Values across the range hidden states take, zeros and extremes included, more than
        // one parallel chunk's worth.
        let xs = (Tensor::randn(0f32, 4.0, (3, 50, 400), &dev).unwrap() * 3.0).unwrap();
        let xs = Tensor::cat(
            &[
                &xs.flatten_all().unwrap(),
                &Tensor::new(&[0f32, -0.0, 80.0, -80.0, 1e-30, -1e-30], &dev).unwrap(),
            ],
            0,
        )
        .unwrap();
        for act in [ClipActivation::QuickGelu, ClipActivation::Gelu] {
            let fused = act.forward(&xs).unwrap().to_vec1::<f32>().unwrap();
            let candle = match act {
                ClipActivation::QuickGelu => {
                    (&xs * candle_nn::ops::sigmoid(&(&xs * 1.702f64).unwrap()).unwrap()).unwrap()
                }
                ClipActivation::Gelu => xs.gelu_erf().unwrap(),
            }
            .to_vec1::<f32>()
            .unwrap();
            assert_eq!(fused.len(), candle.len());
            for (i, (a, b)) in fused.iter().zip(&candle).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{act:?} at {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_strided_input_takes_candles_operations() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f32, 2.0, (4, 6), &dev).unwrap();
        let strided = xs.t().unwrap();
        for act in [ClipActivation::QuickGelu, ClipActivation::Gelu] {
            let a = act
                .forward(&strided)
                .unwrap()
                .t()
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let b = act.forward(&xs).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(a, b);
        }
    }
}
