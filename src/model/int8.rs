//! Int8 linear layers on AVX-512 VNNI: the matrix products of the fast image tower
//! (`clipsearch index --fast`) on CPUs that have `vpdpbusd`.
//!
//! Why a kernel of our own: candle 0.11's quantized product (`Q8_0` weights times activations
//! quantized to `Q8K`) spent a third of the int8 tower's time quantizing activations with a
//! scalar `roundf` per value, and its inner loop converts, rescales and accumulates in f32 after
//! every 32 products, one 16-column vector at a time. Here activations are quantized with vector
//! instructions, and a micro-tile of 6 rows by 64 columns keeps 24 integer accumulators in
//! registers for a whole block of inputs, so the loop is almost only `vpdpbusd`.
//!
//! The arithmetic, symmetric int8 in blocks along the input dimension (256 inputs where the width
//! allows, else 128, 64 or 32):
//! - each weight column and block has its own scale (`max |w| / 127`), computed once at load;
//! - each activation row and block has its own scale, computed per product;
//! - `vpdpbusd` multiplies unsigned by signed bytes, so activations are stored `+128` as `u8` and
//!   the `128 * sum(w)` this adds is taken back exactly from each block's integer sum;
//! - each block's integer sum is scaled by the two scales and accumulated in f32; the bias is
//!   added as the tile is written.
//!
//! The error is the rounding of both operands to 8 bits per block, at least as fine a grid as
//! candle's (`Q8K` activations are blocks of 256 too); the tower's cosine to f32 is bounded in
//! `tests/int8.rs`. Products within one block are exact integers (at most 256 * 255 * 127 in
//! magnitude), so the result does not depend on the order of the integer additions.

use rayon::prelude::*;

/// Columns of a packed panel: four vectors of 16 `i32` accumulators.
const PANEL: usize = 64;
/// Rows of a micro-tile: 6 x 4 accumulators plus the 4 weight vectors fit the 32 registers.
const TILE_ROWS: usize = 6;
/// Rows one task computes against one panel: 8 micro-tiles (the panel is reused from cache).
const TASK_ROWS: usize = 8 * TILE_ROWS;

/// Whether this CPU runs the kernel (AVX-512 F, BW and VNNI: Ice Lake and later Xeons, AMD Zen 4
/// and later) and the build has the `avx512` feature (default; without it the build is what an
/// AVX2-only CPU runs). Elsewhere the fast tower uses candle's quantized product.
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

/// The block length for an input width, if the width is a multiple of 32.
pub fn block_for(k: usize) -> Option<usize> {
    [256, 128, 64, 32]
        .into_iter()
        .find(|&b| k.is_multiple_of(b))
}

/// A weight matrix quantized and packed for the kernel. Multiplying needs [`available`].
pub struct Int8Matrix {
    /// Output columns (the checkpoint's rows) and inputs.
    n: usize,
    k: usize,
    block: usize,
    panels: usize,
    /// `[panel][k / 4][64 columns][4 inputs]`: one 64-byte load per column vector and 4 inputs.
    packed: Vec<i8>,
    /// `[k / block][panels * 64]`: each block's scale per column (0 past `n`).
    scales: Vec<f32>,
    /// `[k / block][panels * 64]`: 128 times each block's sum of quantized weights per column.
    offsets: Vec<i32>,
    /// `[panels * 64]`: the bias, 0 where there is none and past `n`.
    bias: Vec<f32>,
    /// Applied to each output as it is written (the MLP's activation after `fc1`).
    epilogue: Epilogue,
}

/// What is applied to each output value after the bias, before it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    Identity,
    /// `x * sigmoid(1.702 x)` with a vector `exp` (within a few ulp of `expf`): the activation
    /// of OpenAI's CLIPs, fused here to save a pass over the MLP's hidden states and the scalar
    /// `expf` that took a fifth of the tower's time.
    QuickGelu,
    /// The exact GELU, `x/2 (1 + erf(x / sqrt 2))`, with Abramowitz and Stegun's 7.1.26 for
    /// `erf` (absolute error below 1.5e-7, far under int8's rounding): OpenCLIP's LAION and
    /// DataComp checkpoints, whose scalar `erff` costs as much as quick-GELU's `expf`.
    Gelu,
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
        Some(Int8Matrix {
            n,
            k,
            block,
            panels,
            packed,
            scales,
            offsets,
            bias: padded_bias,
            epilogue: Epilogue::Identity,
        })
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
    /// `n`. Panics unless [`available`].
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert!(available(), "the int8 kernel needs AVX-512 VNNI");
        assert_eq!(x.len(), m * self.k, "input is not {m}x{}", self.k);
        let acts = Activations::quantize(x, m, self.k, self.block);
        let mut y = vec![0f32; m * self.n];
        let out = SharedOut(y.as_mut_ptr());
        let groups = m.div_ceil(TASK_ROWS);
        (0..groups * self.panels).into_par_iter().for_each(|task| {
            let (group, panel) = (task / self.panels, task % self.panels);
            let rows = group * TASK_ROWS..m.min((group + 1) * TASK_ROWS);
            // SAFETY: the kernel's features were checked above; each task writes only its own
            // rows' columns of its own panel, so no two tasks write the same element of `y`.
            unsafe { self.task(&acts, rows, panel, &out) };
        });
        y
    }

    /// One panel's columns for a range of rows, a micro-tile at a time.
    #[cfg(target_arch = "x86_64")]
    unsafe fn task(
        &self,
        acts: &Activations,
        rows: std::ops::Range<usize>,
        panel: usize,
        out: &SharedOut,
    ) {
        let cols = panel * PANEL..self.n.min((panel + 1) * PANEL);
        let mut tile = [[0f32; PANEL]; TILE_ROWS];
        let mut i0 = rows.start;
        while i0 < rows.end {
            let r = TILE_ROWS.min(rows.end - i0);
            let args = TileArgs {
                acts: acts.data.as_ptr().add(i0 * self.k),
                k: self.k,
                act_scales: acts.scales.as_ptr().add(i0 * (self.k / self.block)),
                blocks: self.k / self.block,
                block: self.block,
                panel: self.packed.as_ptr().add(panel * PANEL * self.k),
                scales: self.scales.as_ptr().add(panel * PANEL),
                offsets: self.offsets.as_ptr().add(panel * PANEL),
                width: self.panels * PANEL,
            };
            match r {
                6 => kernel::tile::<6>(&args, &mut tile),
                5 => kernel::tile::<5>(&args, &mut tile),
                4 => kernel::tile::<4>(&args, &mut tile),
                3 => kernel::tile::<3>(&args, &mut tile),
                2 => kernel::tile::<2>(&args, &mut tile),
                _ => kernel::tile::<1>(&args, &mut tile),
            }
            let count = cols.len();
            for (i, row) in tile[..r].iter().enumerate() {
                kernel::finish_row(
                    row,
                    self.bias.as_ptr().add(cols.start),
                    out.0.add((i0 + i) * self.n + cols.start),
                    count,
                    self.epilogue,
                );
            }
            i0 += r;
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn task(&self, _: &Activations, _: std::ops::Range<usize>, _: usize, _: &SharedOut) {
        unreachable!("available() is false off x86-64")
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
                let v = acc as f32 + self.bias[j];
                y[i * self.n + j] = match self.epilogue {
                    Epilogue::Identity => v,
                    Epilogue::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
                    Epilogue::Gelu => {
                        let erf =
                            candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2);
                        0.5 * v * (1.0 + erf)
                    }
                };
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

/// A block's scale (`max |x| / 127`) and the factor that maps it onto -127..=127 (0 for a block
/// of zeros), as the vector code computes them.
fn block_scale(x: &[f32]) -> (f32, f32) {
    let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
    (scale, if scale > 0.0 { 1.0 / scale } else { 0.0 })
}

/// One block of weights to i8: its scale, and the sum of its quantized values.
fn quantize_weights(w: &[f32], q: &mut [i8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features were just checked; blocks are multiples of 32 values.
        return unsafe { kernel::quantize_weight_block(w, q) };
    }
    let (scale, inv) = block_scale(w);
    let mut sum = 0;
    for (q, &v) in q.iter_mut().zip(w) {
        *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        sum += *q as i32;
    }
    (scale, sum)
}

/// Activations quantized per row and block, stored `+128` as `u8`.
struct Activations {
    data: Vec<u8>,
    /// `[m][k / block]`
    scales: Vec<f32>,
}

impl Activations {
    fn quantize(x: &[f32], m: usize, k: usize, block: usize) -> Self {
        let mut data = vec![0u8; m * k];
        let mut scales = vec![0f32; m * (k / block)];
        // Rows in tasks of about 64 Ki values: enough to amortise scheduling.
        let rows = (1usize << 16).div_ceil(k).max(1);
        data.par_chunks_mut(rows * k)
            .zip(scales.par_chunks_mut(rows * (k / block)))
            .zip(x.par_chunks(rows * k))
            .for_each(|((q, s), x)| {
                for ((q, s), x) in q.chunks_mut(block).zip(s).zip(x.chunks(block)) {
                    // SAFETY: `matmul` checked the CPU's features; blocks are multiples of 32.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        *s = kernel::quantize_block(x, q)
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

/// The output buffer, written by tasks at disjoint positions.
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint elements (see `Int8Matrix::matmul`).
unsafe impl Sync for SharedOut {}

/// Where a micro-tile reads from: `acts` and `act_scales` at its first row; `panel`, `scales`
/// and `offsets` at its panel's first column.
struct TileArgs {
    acts: *const u8,
    k: usize,
    act_scales: *const f32,
    blocks: usize,
    block: usize,
    panel: *const i8,
    scales: *const f32,
    offsets: *const i32,
    width: usize,
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use super::{Epilogue, TileArgs, PANEL, TILE_ROWS};
    use std::arch::x86_64::*;

    /// `R` rows by 64 columns into `out[..R]`, without the bias.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize>(a: &TileArgs, out: &mut [[f32; PANEL]; TILE_ROWS]) {
        let mut total = [[_mm512_setzero_ps(); 4]; R];
        for b in 0..a.blocks {
            let mut acc = [[_mm512_setzero_si512(); 4]; R];
            let mut w = a.panel.add(b * a.block * PANEL);
            let mut x = a.acts.add(b * a.block);
            for _ in 0..a.block / 4 {
                let w0 = _mm512_loadu_si512(w as *const _);
                let w1 = _mm512_loadu_si512(w.add(64) as *const _);
                let w2 = _mm512_loadu_si512(w.add(128) as *const _);
                let w3 = _mm512_loadu_si512(w.add(192) as *const _);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_epi32((x.add(r * a.k) as *const i32).read_unaligned());
                    acc[0] = _mm512_dpbusd_epi32(acc[0], v, w0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], v, w1);
                    acc[2] = _mm512_dpbusd_epi32(acc[2], v, w2);
                    acc[3] = _mm512_dpbusd_epi32(acc[3], v, w3);
                }
                w = w.add(4 * PANEL);
                x = x.add(4);
            }
            let at = b * a.width;
            let mut scale = [_mm512_setzero_ps(); 4];
            let mut offset = [_mm512_setzero_si512(); 4];
            for v in 0..4 {
                scale[v] = _mm512_loadu_ps(a.scales.add(at + 16 * v));
                offset[v] = _mm512_loadu_si512(a.offsets.add(at + 16 * v) as *const _);
            }
            for r in 0..R {
                let s = _mm512_set1_ps(*a.act_scales.add(r * a.blocks + b));
                for v in 0..4 {
                    let sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], offset[v]));
                    total[r][v] = _mm512_fmadd_ps(sum, _mm512_mul_ps(scale[v], s), total[r][v]);
                }
            }
        }
        for (out, total) in out.iter_mut().zip(&total) {
            for (v, t) in total.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), *t);
            }
        }
    }

    /// A row of a finished tile to the output: bias, epilogue, and the first `count` (<= 64)
    /// values stored.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn finish_row(
        row: &[f32; PANEL],
        bias: *const f32,
        dst: *mut f32,
        count: usize,
        epilogue: Epilogue,
    ) {
        for v in 0..4 {
            let left = count.saturating_sub(16 * v).min(16);
            if left == 0 {
                break;
            }
            let mut y = _mm512_add_ps(
                _mm512_loadu_ps(row.as_ptr().add(16 * v)),
                _mm512_loadu_ps(bias.add(16 * v)),
            );
            match epilogue {
                Epilogue::Identity => {}
                Epilogue::QuickGelu => {
                    let e = exp(_mm512_mul_ps(y, _mm512_set1_ps(-1.702)));
                    y = _mm512_div_ps(y, _mm512_add_ps(e, _mm512_set1_ps(1.0)));
                }
                Epilogue::Gelu => y = gelu(y),
            }
            let mask: __mmask16 = if left == 16 { 0xffff } else { (1 << left) - 1 };
            _mm512_mask_storeu_ps(dst.add(16 * v), mask, y);
        }
    }

    /// The exact GELU of 16 values. With `q = erfc(|x| / sqrt 2)` from A&S 7.1.26, GELU is
    /// `x/2 (2 - q)` for `x >= 0` and `x/2 q` below: no cancellation in the negative tail.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gelu(x: __m512) -> __m512 {
        let z = _mm512_mul_ps(
            _mm512_abs_ps(x),
            _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
        );
        let one = _mm512_set1_ps(1.0);
        let t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.327_591_1), one));
        let mut p = _mm512_set1_ps(1.061_405_4);
        for c in [-1.453_152_1, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
            p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
        }
        let q = _mm512_mul_ps(
            _mm512_mul_ps(p, t),
            exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))),
        );
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        let factor = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0), q), q);
        _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5)), factor)
    }

    /// `e^x` for 16 values: Cephes' `expf` (range reduction by ln 2 in two parts, a degree-6
    /// polynomial), scaled by `2^n` with `vscalefps`; inputs are clamped to +-88.38, where
    /// `expf` overflows or underflows anyway.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-88.376_26)),
            _mm512_set1_ps(88.376_26),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let p = _mm512_fmadd_ps(
            p,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        _mm512_scalef_ps(p, n)
    }

    /// One block of weights (a multiple of 16 values) to `i8`: its scale and the sum of the
    /// quantized values. Rounds as the scalar code (ties to even).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_weight_block(w: &[f32], q: &mut [i8]) -> (f32, i32) {
        let mut max = _mm512_setzero_ps();
        for c in w.chunks_exact(16) {
            max = _mm512_max_ps(max, _mm512_abs_ps(_mm512_loadu_ps(c.as_ptr())));
        }
        let scale = _mm512_reduce_max_ps(max) / 127.0;
        let inv = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        let mut sum = _mm512_setzero_si512();
        for (c, q) in w.chunks_exact(16).zip(q.chunks_exact_mut(16)) {
            let v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(c.as_ptr()), inv));
            let v = _mm512_max_epi32(
                _mm512_min_epi32(v, _mm512_set1_epi32(127)),
                _mm512_set1_epi32(-127),
            );
            sum = _mm512_add_epi32(sum, v);
            _mm_storeu_si128(q.as_mut_ptr() as *mut _, _mm512_cvtepi32_epi8(v));
        }
        (scale, _mm512_reduce_add_epi32(sum))
    }

    /// One block of activations (a multiple of 16 values) to `u8` (`+128`); returns its scale.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [u8]) -> f32 {
        debug_assert!(x.len().is_multiple_of(16) && q.len() == x.len());
        let mut max = _mm512_setzero_ps();
        for c in x.chunks_exact(16) {
            max = _mm512_max_ps(max, _mm512_abs_ps(_mm512_loadu_ps(c.as_ptr())));
        }
        let scale = _mm512_reduce_max_ps(max) / 127.0;
        let inv = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        for (c, q) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)) {
            // Round to nearest, ties to even (MXCSR's default), into -127..=127, then +128.
            let v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(c.as_ptr()), inv));
            let v = _mm512_add_epi32(
                _mm512_max_epi32(
                    _mm512_min_epi32(v, _mm512_set1_epi32(127)),
                    _mm512_set1_epi32(-127),
                ),
                _mm512_set1_epi32(128),
            );
            _mm_storeu_si128(q.as_mut_ptr() as *mut _, _mm512_cvtepi32_epi8(v));
        }
        scale
    }
}

// The kernel is x86-64 code; so are its tests.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Whether the kernel can be tested on this CPU (`CLIPSEARCH_REQUIRE_VNNI=1`: it must).
    fn testable() -> bool {
        crate::device::kernel_testable("vnni", available())
    }

    /// Deterministic values with a spread of magnitudes, some large (as activations' outliers).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                if i % 97 == 0 {
                    u * 20.0
                } else {
                    u
                }
            })
            .collect()
    }

    fn f32_product(x: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|kk| x[i * k + kk] as f64 * w[j * k + kk] as f64)
                    .sum();
                y[i * n + j] = dot as f32 + bias[j];
            }
        }
        y
    }

    #[test]
    fn blocks_follow_the_width() {
        assert_eq!(block_for(768), Some(256));
        assert_eq!(block_for(3072), Some(256));
        assert_eq!(block_for(128), Some(128));
        assert_eq!(block_for(64), Some(64));
        assert_eq!(block_for(96), Some(32));
        assert_eq!(block_for(100), None);
        assert!(Int8Matrix::quantize(&[0.0; 100], 1, 100, None).is_none());
    }

    /// Every row count a micro-tile can have, more than one task of rows, a partial panel, every
    /// block length: the kernel equals the scalar product of the same quantized operands (up to
    /// f32 rounding of the block sums' accumulation), and both are near the f32 product.
    #[test]
    fn kernel_equals_scalar_product_and_is_near_f32() {
        if !testable() {
            return;
        }
        for &(m, n, k) in &[
            (1, 64, 256),
            (5, 70, 96),
            (13, 128, 128),
            (50, 192, 64),
            (61, 96, 768),
            (7, 512, 3072),
        ] {
            let x = values(m * k, 1 + m as u64);
            let w: Vec<f32> = values(n * k, 7 + n as u64)
                .iter()
                .map(|v| v * 0.05)
                .collect();
            let bias = values(n, 3);
            let q = Int8Matrix::quantize(&w, n, k, Some(bias.clone())).unwrap();
            assert_eq!((q.out_dim(), q.in_dim()), (n, k));
            let ours = q.matmul(&x, m);
            let scalar = q.matmul_reference(&x, m);
            let exact = f32_product(&x, &w, &bias, m, n, k);
            let scale = exact.iter().fold(0f32, |a, v| a.max(v.abs()));
            let mut worst_kernel = 0f32;
            let mut worst_f32 = 0f32;
            for ((a, b), e) in ours.iter().zip(&scalar).zip(&exact) {
                worst_kernel = worst_kernel.max((a - b).abs());
                worst_f32 = worst_f32.max((a - e).abs());
            }
            // The same integers, summed in f32 block by block versus in f64: rounding only.
            assert!(
                worst_kernel <= 1e-5 * scale,
                "{m}x{n}x{k}: kernel vs scalar {worst_kernel} (scale {scale})"
            );
            // 8-bit operands: within 2% of the largest output.
            assert!(
                worst_f32 <= 0.02 * scale,
                "{m}x{n}x{k}: int8 vs f32 {worst_f32} (scale {scale})"
            );
        }
    }

    /// The largest `error(vector, scalar, x)` of a 16-lane function over `range`, sampled densely.
    fn worst_lane_error(
        range: std::ops::Range<f32>,
        vector: unsafe fn(std::arch::x86_64::__m512) -> std::arch::x86_64::__m512,
        error: impl Fn(f32, f32) -> f32,
    ) -> f32 {
        use std::arch::x86_64::*;
        let mut worst = 0f32;
        let mut x = range.start;
        while x < range.end {
            let xs: [f32; 16] = std::array::from_fn(|i| x + i as f32 * 0.0003);
            let mut got = [0f32; 16];
            // SAFETY: callers check available().
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), vector(_mm512_loadu_ps(xs.as_ptr()))) };
            for (g, x) in got.iter().zip(xs) {
                worst = worst.max(error(*g, x));
            }
            x += 0.0051;
        }
        worst
    }

    #[test]
    fn vector_exp_is_within_a_few_ulp_of_expf() {
        if !testable() {
            return;
        }
        let worst = worst_lane_error(-87.0..88.0, kernel::exp, |g, x| {
            ((g - x.exp()) / x.exp()).abs()
        });
        assert!(worst < 4.0 * f32::EPSILON, "relative error {worst}");
    }

    #[test]
    fn vector_gelu_is_within_3e7_of_the_erf_gelu() {
        if !testable() {
            return;
        }
        let worst = worst_lane_error(-12.0..12.0, kernel::gelu, |g, x| {
            let erf = candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2);
            (g - 0.5 * x * (1.0 + erf)).abs() / x.abs().max(1.0)
        });
        // A&S's 1.5e-7 plus f32 rounding (observed 2.04e-7).
        assert!(worst < 3e-7, "error {worst}");
    }

    #[test]
    fn activations_are_fused_as_computed_after_the_product() {
        if !testable() {
            return;
        }
        let (m, n, k) = (11, 100, 256);
        let x = values(m * k, 21);
        let w: Vec<f32> = values(n * k, 22).iter().map(|v| v * 0.05).collect();
        let bias = values(n, 23);
        let plain = Int8Matrix::quantize(&w, n, k, Some(bias.clone())).unwrap();
        let before = plain.matmul(&x, m);
        let quick_gelu = |v: f32| v * (1.0 / (1.0 + (-1.702 * v).exp()));
        let gelu = |v: f32| {
            0.5 * v * (1.0 + candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))
        };
        for (epilogue, f) in [
            (Epilogue::QuickGelu, &quick_gelu as &dyn Fn(f32) -> f32),
            (Epilogue::Gelu, &gelu),
        ] {
            let fused = Int8Matrix::quantize(&w, n, k, Some(bias.clone()))
                .unwrap()
                .with_epilogue(epilogue);
            let after = fused.matmul(&x, m);
            let scale = after.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (a, b) in after.iter().zip(fused.matmul_reference(&x, m)) {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{epilogue:?}: kernel {a} vs scalar {b}"
                );
            }
            let mut negative = 0;
            for (&v, y) in before.iter().zip(&after) {
                let want = f(v);
                assert!(
                    (y - want).abs() <= 1e-6 * (1.0 + v.abs()),
                    "{epilogue:?} of {v}: {y} vs {want}"
                );
                negative += (v < -1.0) as usize;
            }
            assert!(
                negative > 0,
                "no large negative inputs: the test is too easy"
            );
        }
    }

    #[test]
    fn weights_round_as_the_scalar_code() {
        if !testable() {
            return;
        }
        let w = values(4 * 256, 5);
        for block in w.chunks(256) {
            let (mut a, mut b) = (vec![0i8; 256], vec![0i8; 256]);
            // SAFETY: available() was checked.
            let vector = unsafe { kernel::quantize_weight_block(block, &mut a) };
            let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let mut sum = 0;
            for (q, &v) in b.iter_mut().zip(block) {
                *q = (v * (1.0 / (max / 127.0))).round_ties_even() as i8;
                sum += *q as i32;
            }
            assert_eq!(vector, (max / 127.0, sum));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn activations_round_as_the_scalar_code_and_keep_zero_rows() {
        if !testable() {
            return;
        }
        let (m, k) = (9, 256);
        let mut x = values(m * k, 11);
        x[..k].fill(0.0);
        let v = Activations::quantize(&x, m, k, 256);
        let s = Activations::quantize_scalar(&x, m, k, 256);
        assert_eq!(v.scales, s.scales);
        assert_eq!(v.data, s.data);
        assert!(
            v.data[..k].iter().all(|&q| q == 128),
            "zero row is not 128s"
        );
        assert_eq!(v.scales[0], 0.0);
    }
}
