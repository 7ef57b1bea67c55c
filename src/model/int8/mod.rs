//! Int8 linear layers: the matrix products of the fast image tower (`clipsearch index --fast`),
//! with AMX tiles (`tdpbusd`) on CPUs that have them, AVX-512 VNNI (`vpdpbusd`) on the others
//! that have that, AVX2 (`vpmaddubsw`) on the rest of x86-64 since Haswell; elsewhere the tower
//! runs candle's quantized product ([`kernel`] chooses).
//!
//! Why a kernel of our own: candle 0.11's quantized product (`Q8_0` weights times activations
//! quantized to `Q8K`) spent a third of the int8 tower's time quantizing activations with a
//! scalar `roundf` per value, and its inner loop converts, rescales and accumulates in f32 after
//! every 32 products, one 16-column vector at a time. Here activations are quantized with vector
//! instructions, and a micro-tile keeps its integer accumulators in registers for a whole block of
//! inputs: 6 rows by 64 columns in 24 vector registers ([`vnni`]), 32 rows by 32 columns in four
//! tile registers ([`amx`], 256 times the products per instruction), or 2 rows by 32 columns in
//! 8 AVX2 registers ([`avx2`]).
//!
//! The arithmetic, symmetric int8 in blocks along the input dimension (256 inputs where the width
//! allows, else 128, 64 or 32), the same whichever kernel runs:
//! - each weight column and block has its own scale (`max |w| / 127`), computed once at load;
//! - each activation row and block has its own scale, computed per product;
//! - `vpdpbusd` and `tdpbusd` multiply unsigned by signed bytes, so activations are stored `+128`
//!   as `u8` and the `128 * sum(w)` this adds is taken back exactly from each block's integer sum;
//! - each block's integer sum is scaled by the two scales and accumulated in f32; the bias is
//!   added as the tile is written.
//!
//! The error is the rounding of both operands to 8 bits per block, at least as fine a grid as
//! candle's (`Q8K` activations are blocks of 256 too); the tower's cosine to f32 is bounded in
//! `tests/int8.rs`. Products within one block are exact integers (at most 256 * 255 * 127 in
//! magnitude), so the result does not depend on the order of the integer additions, and the
//! kernels differ only in the order of the f32 additions (tested against one scalar product).
//! AVX2 has no such unsigned-by-signed dot product into `i32`; [`avx2`] says how it gets the
//! same integers.

use rayon::prelude::*;

use operands::{block_scale, Activations, PANEL};
pub use operands::{Epilogue, Int8Matrix, Kernel};

/// Whether this CPU runs the VNNI kernel (AVX-512 F, BW and VNNI: Ice Lake and later Xeons, AMD
/// Zen 4 and later) and the build has the `avx512` feature (default; without it the build is what
/// an AVX2-only CPU runs). Every CPU with AMX has these too.
pub fn available() -> bool {
    #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(all(feature = "avx512", target_arch = "x86_64")))]
    {
        false
    }
}

/// Whether this CPU has AMX's int8 tiles (Sapphire Rapids and later Xeons) and the operating
/// system lets this process use them (Linux asks for a permission first; it is asked once).
pub fn amx_available() -> bool {
    #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
    {
        available() && amx::permitted()
    }
    #[cfg(not(all(feature = "avx512", target_arch = "x86_64")))]
    {
        false
    }
}

/// Whether this CPU runs the AVX2 kernel (AVX2 and FMA: Haswell and later, AMD Zen and later).
pub fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `kernel` runs on this CPU (AMX: for a matrix whose blocks are 64 inputs or more).
fn runs(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Amx => amx_available(),
        Kernel::Vnni => available(),
        Kernel::Avx2 => avx2_available(),
    }
}

/// The kernel the int8 tower runs here: AMX where the CPU has it, else VNNI, else AVX2; `None`
/// where none runs (candle's product then). `CLIPSEARCH_INT8_KERNEL` chooses for comparisons
/// side by side (`cargo bench --bench engine`): `candle`, or `amx`, `vnni`, `avx2` (that kernel
/// where it runs; the best one that does otherwise).
pub fn kernel() -> Option<Kernel> {
    let asked = match std::env::var("CLIPSEARCH_INT8_KERNEL").as_deref() {
        Ok("candle") => return None,
        Ok("vnni") => Some(Kernel::Vnni),
        Ok("avx2") => Some(Kernel::Avx2),
        _ => None,
    };
    asked
        .into_iter()
        .chain([Kernel::Amx, Kernel::Vnni, Kernel::Avx2])
        .find(|&k| runs(k))
}

/// The block length for an input width, if the width is a multiple of 32.
pub fn block_for(k: usize) -> Option<usize> {
    [256, 128, 64, 32]
        .into_iter()
        .find(|&b| k.is_multiple_of(b))
}

impl Int8Matrix {
    /// Quantizes a linear layer's weight, `[n, k]` row-major as checkpoints store it (output
    /// rows), and keeps its bias. `None` when `k` is not a multiple of 32.
    pub fn quantize(weight: &[f32], n: usize, k: usize, bias: Option<Vec<f32>>) -> Option<Self> {
        let block = block_for(k)?;
        assert_eq!(weight.len(), n * k, "weight is not {n}x{k}");
        let blocks = k / block;
        let panels = n.div_ceil(PANEL);
        let width = panels * PANEL;
        let mut quantized = vec![0i8; width * k];
        let per_column: Vec<Vec<(f32, i32)>> = quantized
            .par_chunks_mut(k)
            .zip(weight.par_chunks(k))
            .map(|(q, w)| {
                q.chunks_mut(block)
                    .zip(w.chunks(block))
                    .map(|(q, w)| quantize_weights(w, q))
                    .collect()
            })
            .collect();
        let mut scales = vec![0f32; blocks * width];
        let mut offsets = vec![0i32; blocks * width];
        for (j, column) in per_column.iter().enumerate() {
            for (b, &(scale, sum)) in column.iter().enumerate() {
                scales[b * width + j] = scale;
                offsets[b * width + j] = 128 * sum;
            }
        }
        let mut packed = vec![0i8; width * k];
        packed
            .par_chunks_mut(k * PANEL)
            .enumerate()
            .for_each(|(p, dst)| {
                for (step, dst) in dst.chunks_exact_mut(4 * PANEL).enumerate() {
                    for (c, dst) in dst.chunks_exact_mut(4).enumerate() {
                        let src = (p * PANEL + c) * k + 4 * step;
                        dst.copy_from_slice(&quantized[src..src + 4]);
                    }
                }
            });
        let mut padded_bias = vec![0f32; width];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias is not {n} long");
            padded_bias[..n].copy_from_slice(&b);
        }
        Some(
            Int8Matrix {
                n,
                k,
                block,
                panels,
                packed,
                scales,
                offsets,
                bias: padded_bias,
                epilogue: Epilogue::Identity,
                kernel: Kernel::Vnni,
            }
            .with_kernel(kernel().unwrap_or(Kernel::Avx2)),
        )
    }

    /// The same matrix multiplied by `kernel`, or where that does not run here, by the next of
    /// AMX, VNNI, AVX2 that does (AMX needs blocks of 64 inputs or more: a tile row is 64 bytes).
    pub fn with_kernel(mut self, kernel: Kernel) -> Self {
        let fits = |k: Kernel| runs(k) && (k != Kernel::Amx || self.block >= 64);
        self.kernel = [kernel, Kernel::Amx, Kernel::Vnni, Kernel::Avx2]
            .into_iter()
            .find(|&k| fits(k))
            .unwrap_or(kernel);
        self
    }

    /// The kernel that multiplies this matrix.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The same matrix with `epilogue` applied to its outputs.
    pub fn with_epilogue(mut self, epilogue: Epilogue) -> Self {
        self.epilogue = epilogue;
        self
    }

    pub fn out_dim(&self) -> usize {
        self.n
    }

    pub fn in_dim(&self) -> usize {
        self.k
    }

    /// `x` (`m` rows of `k`, row-major) times the weight's transpose plus the bias: `m` rows of
    /// `n`. Panics unless one of our kernels runs here ([`kernel`] is `Some`).
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert!(
            runs(self.kernel),
            "the int8 kernel {:?} does not run on this CPU",
            self.kernel
        );
        assert_eq!(x.len(), m * self.k, "input is not {m}x{}", self.k);
        let mut y = vec![0f32; m * self.n];
        match self.kernel {
            // SAFETY: the kernel's features were checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe {
                let acts = Activations::quantize(x, m, m, self.k, self.block, Kernel::Vnni);
                vnni::matmul(self, &acts, m, &mut y)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe {
                let acts = Activations::quantize(x, m, m, self.k, self.block, Kernel::Avx2);
                avx2::matmul(self, &acts, m, &mut y)
            },
            // SAFETY: `with_kernel` chose AMX only where it is available, with blocks of 64 or
            // more; tiles read whole micro-tiles, so the rows past `m` are zeros.
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => unsafe {
                let padded = m.next_multiple_of(amx::TILE_ROWS);
                let acts = Activations::quantize(x, m, padded, self.k, self.block, Kernel::Amx);
                amx::matmul::<amx::Hardware>(self, &acts, m, &mut y)
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("available() is false off x86-64"),
        }
        y
    }

    /// The same product computed one value at a time from the same quantized operands (for
    /// tests: the kernel must agree with it up to the order of the f32 additions).
    #[cfg(test)]
    fn matmul_reference(&self, x: &[f32], m: usize) -> Vec<f32> {
        let acts = Activations::quantize_scalar(x, m, self.k, self.block);
        let (width, blocks) = (self.panels * PANEL, self.k / self.block);
        let weight = |j: usize, kk: usize| -> i32 {
            let (p, c) = (j / PANEL, j % PANEL);
            self.packed[p * PANEL * self.k + (kk / 4) * 4 * PANEL + c * 4 + kk % 4] as i32
        };
        let mut y = vec![0f32; m * self.n];
        for i in 0..m {
            for j in 0..self.n {
                let mut acc = 0f64;
                for b in 0..blocks {
                    let mut sum = 0i32;
                    for kk in b * self.block..(b + 1) * self.block {
                        sum += (acts.data[i * self.k + kk] as i32 - 128) * weight(j, kk);
                    }
                    acc += sum as f64
                        * self.scales[b * width + j] as f64
                        * acts.scales[i * blocks + b] as f64;
                }
                y[i * self.n + j] = self.epilogue.apply(acc as f32 + self.bias[j]);
            }
        }
        y
    }
}

/// As a candle operation on `(..., k)` f32 tensors: the product over the last dimension.
impl candle_core::CustomOp1 for Int8Matrix {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = super::activation::contiguous_f32(self.name(), storage, layout)?;
        let mut dims = layout.shape().dims().to_vec();
        if dims.last() != Some(&self.k) {
            candle_core::bail!("int8-linear: input {dims:?} is not (..., {})", self.k)
        }
        let y = self.matmul(x, x.len() / self.k);
        *dims.last_mut().expect("checked") = self.n;
        Ok((candle_core::CpuStorage::F32(y), dims.into()))
    }
}

/// One block of weights to i8: its scale, and the sum of its quantized values.
fn quantize_weights(w: &[f32], q: &mut [i8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features were just checked; blocks are multiples of 32 values.
        return unsafe { vnni::quantize_weight_block(w, q) };
    }
    let (scale, inv) = block_scale(w);
    let mut sum = 0;
    for (q, &v) in q.iter_mut().zip(w) {
        *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        sum += *q as i32;
    }
    (scale, sum)
}

impl Activations {
    /// `m` rows of `x`, followed by zero rows up to `padded` (128s with a scale of 0), with the
    /// vector code of `kernel`'s CPU feature (the same rounding whichever).
    fn quantize(
        x: &[f32],
        m: usize,
        padded: usize,
        k: usize,
        block: usize,
        kernel: Kernel,
    ) -> Self {
        let mut data = vec![128u8; padded * k];
        let mut scales = vec![0f32; padded * (k / block)];
        // Rows in tasks of about 64 Ki values: enough to amortise scheduling.
        let rows = (1usize << 16).div_ceil(k).max(1);
        data[..m * k]
            .par_chunks_mut(rows * k)
            .zip(scales[..m * (k / block)].par_chunks_mut(rows * (k / block)))
            .zip(x.par_chunks(rows * k))
            .for_each(|((q, s), x)| {
                for ((q, s), x) in q.chunks_mut(block).zip(s).zip(x.chunks(block)) {
                    // SAFETY: `matmul` checked the kernel's CPU features; blocks are multiples
                    // of 32.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        *s = match kernel {
                            Kernel::Avx2 => avx2::quantize_block(x, q),
                            Kernel::Amx | Kernel::Vnni => vnni::quantize_block(x, q),
                        }
                    };
                }
            });
        Activations { data, scales }
    }

    /// The same rounding, one value at a time (ties to even, as the vector conversion).
    #[cfg(test)]
    fn quantize_scalar(x: &[f32], m: usize, k: usize, block: usize) -> Self {
        let mut data = vec![0u8; m * k];
        let mut scales = vec![0f32; m * (k / block)];
        for ((q, s), x) in data.chunks_mut(block).zip(&mut scales).zip(x.chunks(block)) {
            let inv;
            (*s, inv) = block_scale(x);
            for (q, &v) in q.iter_mut().zip(x) {
                *q = ((v * inv).round_ties_even() as i32 + 128) as u8;
            }
        }
        Activations { data, scales }
    }
}

mod operands;

#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(target_arch = "x86_64")]
mod amx;

#[cfg(target_arch = "x86_64")]
mod avx2;

// The kernels are x86-64 code; so are their tests.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
