//! The MLP activation of CLIP's towers (`hidden_act`): quick-GELU for OpenAI's checkpoints, the
//! exact GELU for OpenCLIP's LAION and DataComp ones, fused into one parallel pass over the
//! hidden states on the CPU.
//!
//! Its own module because the configuration names it ([`super::config`], [`super::openclip`]),
//! the family carries it ([`super::family`]) and both towers compute it ([`super::clip_tower`],
//! [`super::vision`]): a leaf that all of them use, instead of a type that the configuration
//! would borrow from the tower it configures.

use candle_core::{DType, Tensor};

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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
