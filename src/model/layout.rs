//! The memory layout linear-layer weights are kept in, chosen once per process for the CPU's
//! matrix multiply.
//!
//! A linear layer computes `x · Wᵀ` with `W` stored `[out, in]` as checkpoints hold it, so
//! candle's matmul receives `Wᵀ` as a column-major view. gemm's AVX2/FMA kernels handle that
//! view well; its AVX-512 kernels (gemm's `x86-v4` feature, the `avx512` feature here) do not:
//! on an AVX-512 machine they are 2-8x slower than the AVX2 ones for the shapes of a text query
//! or of one image (7 or 50 tokens) and for `k = 3072` (the MLP's second layer). Given `Wᵀ`
//! row-major instead (`[in, out]` contiguous), the AVX-512 kernels are faster than the AVX2
//! ones at every shape CLIP computes: 1.3-3.5x for text queries, about 2x for one image,
//! 1.7x for batches (`cargo bench -p clipsearch --bench matmul_layouts`).
//!
//! So where gemm will pick its AVX-512 kernels, each 2-D `*.weight` of a linear layer is copied
//! once at load into `[in, out]` order and handed to candle as the transposed view of that
//! copy (`Linear` transposes it back: a contiguous right operand). The values, and therefore
//! the results, are the same in either layout (the parity suites run in whichever this machine
//! chooses). Elsewhere (AVX2-only CPUs, builds without `avx512`, GPUs) nothing changes.

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};

/// Whether candle's CPU matmul runs gemm's AVX-512 kernels in this process.
pub fn avx512_matmul() -> bool {
    #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(all(feature = "avx512", target_arch = "x86_64")))]
    {
        false
    }
}

/// Whether a 2-D tensor named `key` is a linear layer's weight: named `*.weight`, and not an
/// embedding table (those are indexed by row, not multiplied).
fn is_linear_weight(key: &str) -> bool {
    key.ends_with(".weight") && !key.contains("embed")
}

/// `t` in the layout this process multiplies fastest: unchanged, or for a linear weight on a
/// CPU with AVX-512 the same `[out, in]` values over `[in, out]`-ordered memory.
pub(crate) fn for_matmul(key: &str, t: Tensor) -> candle_core::Result<Tensor> {
    if !is_linear_weight(key) {
        return Ok(t);
    }
    linear_weight(t)
}

/// A `[out, in]` weight, whatever it was called, in the layout this process multiplies fastest.
pub(crate) fn linear_weight(t: Tensor) -> candle_core::Result<Tensor> {
    if !t.device().is_cpu() || !avx512_matmul() || t.rank() != 2 {
        return Ok(t);
    }
    t.t()?.contiguous()?.t()
}

/// The linear weight `key` read from the checkpoint straight into the layout [`linear_weight`]
/// gives, where this process relays weights and the checkpoint stores it as 2-D f32; `None`
/// where it does not (the caller loads it as it is). One cache-blocked pass from the mapped
/// `[out, in]` bytes into `[in, out]` memory replaces candle's copy of the tensor followed by
/// its element-by-element strided copy, which together were a quarter of a text query's CPU
/// time on an AVX-512 CPU (ViT-B/32's text tower: 37 M weights copied twice).
pub(crate) fn load_linear_weight(
    st: &MmapedSafetensors,
    key: &str,
    device: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if !device.is_cpu() || !avx512_matmul() || !is_linear_weight(key) {
        return Ok(None);
    }
    let view = st.get(key)?;
    let &[out, inp] = view.shape() else {
        return Ok(None);
    };
    if candle_core::DType::try_from(view.dtype())? != candle_core::DType::F32
        || view.data().len() != out * inp * 4
    {
        return Ok(None);
    }
    let relaid = transpose_f32_le(view.data(), out, inp);
    Ok(Some(Tensor::from_vec(relaid, (inp, out), device)?.t()?))
}

/// `rows x cols` little-endian f32s, transposed into `cols x rows`, a 16 x 16 tile at a time:
/// its 16 source rows and 16 destination rows (a cache line each) stay in L1 while it moves.
/// The former version, whole column strips (every row per strip) copied through a buffer,
/// compiled to a `memcpy` call per row piece: a fifth of a text query's CPU time in `perf`.
fn transpose_f32_le(data: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let mut out = vec![0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for r in r0..r1 {
                let src = &data[(r * cols + c0) * 4..(r * cols + c1) * 4];
                for (c, b) in (c0..c1).zip(src.chunks_exact(4)) {
                    out[c * rows + r] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};

    #[test]
    fn a_relaid_linear_weight_computes_the_same_values() {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        let x = Tensor::arange(0f32, 8.0, &dev)
            .unwrap()
            .reshape((2, 4))
            .unwrap();
        let relaid = for_matmul("mlp.fc1.weight", w.clone()).unwrap();
        assert_eq!(relaid.dims(), &[3, 4]);
        assert_eq!(
            relaid.to_vec2::<f32>().unwrap(),
            w.to_vec2::<f32>().unwrap()
        );
        let a = candle_nn::Linear::new(w, None).forward(&x).unwrap();
        let b = candle_nn::Linear::new(relaid.clone(), None)
            .forward(&x)
            .unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        if avx512_matmul() {
            // The transposed view of `[in, out]` memory: what `Linear` multiplies by is contiguous.
            assert!(!relaid.is_contiguous());
            assert!(relaid.t().unwrap().is_contiguous());
        } else {
            assert!(relaid.is_contiguous());
        }
    }

    #[test]
    fn embeddings_and_other_tensors_keep_their_layout() {
        let dev = Device::Cpu;
        let t = Tensor::zeros((5, 4), candle_core::DType::F32, &dev).unwrap();
        for key in [
            "text_model.embeddings.token_embedding.weight",
            "embeddings.word_embeddings.weight",
            "vision_model.embeddings.position_embedding.weight",
            "head.probe",
        ] {
            assert!(for_matmul(key, t.clone()).unwrap().is_contiguous(), "{key}");
        }
        let bias = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        assert!(for_matmul("mlp.fc1.bias", bias).unwrap().is_contiguous());
    }

    /// The weight read straight from the checkpoint is, value for value and stride for
    /// stride, what loading it and relaying it gives (odd shapes: partial tiles).
    #[test]
    fn a_weight_read_relaid_equals_one_loaded_then_relaid() {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let shapes = [(37usize, 70usize), (64, 32), (1, 5), (33, 1)];
        let tensors: std::collections::HashMap<String, Tensor> = shapes
            .iter()
            .map(|&(r, c)| {
                let v: Vec<f32> = (0..r * c).map(|i| (i as f32 * 0.61).sin()).collect();
                (
                    format!("l{r}x{c}.weight"),
                    Tensor::from_vec(v, (r, c), &dev).unwrap(),
                )
            })
            .collect();
        candle_core::safetensors::save(&tensors, &path).unwrap();
        // SAFETY: a file this test wrote and nothing modifies.
        let st = unsafe { MmapedSafetensors::new(&path) }.unwrap();
        for (key, t) in &tensors {
            let Some(read) = load_linear_weight(&st, key, &dev).unwrap() else {
                assert!(!avx512_matmul(), "{key}: not relaid on an AVX-512 CPU");
                continue;
            };
            let want = linear_weight(t.clone()).unwrap();
            assert_eq!(read.dims(), want.dims(), "{key}");
            // (A stride along a dimension of size 1 is never used.)
            let used = |t: &Tensor| -> Vec<usize> {
                t.dims()
                    .iter()
                    .zip(t.stride())
                    .filter(|(d, _)| **d > 1)
                    .map(|(_, s)| *s)
                    .collect()
            };
            assert_eq!(used(&read), used(&want), "{key}");
            assert_eq!(
                read.to_vec2::<f32>().unwrap(),
                t.to_vec2::<f32>().unwrap(),
                "{key}"
            );
        }
        // The transpose itself, on any CPU.
        let bytes: Vec<u8> = (0..6u8).flat_map(|i| (i as f32).to_le_bytes()).collect();
        assert_eq!(
            transpose_f32_le(&bytes, 2, 3),
            [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
    }
}
