//! The AVX2 kernel, for CPUs without AVX-512 (Haswell to Alder Lake, AMD Zen 1-3, the Celerons
//! and Pentiums of NAS boxes): the VNNI kernel's packed weights and block scales, multiplied with
//! `vpmaddubsw`, which has no `u8 x i8` dot product into `i32` of its own.
//!
//! `vpmaddubsw` multiplies unsigned by signed bytes and adds pairs into `i16` with saturation:
//! with our `+128` activations (up to 255) a pair can reach 2 * 255 * 127 and saturate. So the
//! activations are taken back to signed (`x ^ 0x80`), their magnitude is the unsigned operand and
//! their sign moves onto the weight (`vpsignb`): pairs are then at most 2 * 127 * 127 = 32,258,
//! exact in `i16`, and `vpmaddwd` by ones adds them into `i32`. The integer sums are the same as
//! the other kernels' (no offset to take back: the operands are signed), so all kernels agree up
//! to the order of the f32 additions. This is the trick of llama.cpp's AVX2 `Q8_0` dot product;
//! what this kernel adds over candle's use of it is the register tile (2 rows by 32 columns of
//! accumulators, each weight vector loaded once for both rows), activations quantized with
//! vector instructions, and no per-32-input conversion to f32.

use std::arch::x86_64::*;
use std::ops::Range;

use super::operands::{for_each_task, Activations, Int8Matrix, SharedOut, PANEL};

/// Rows of a micro-tile: 2 x 4 accumulators plus each row's two activation vectors fit the 16
/// registers (with 3 rows they spilled, and ran at a third of the speed).
const TILE_ROWS: usize = 2;
/// Rows one task computes against one panel (the panel is reused from cache).
const TASK_ROWS: usize = 24 * TILE_ROWS;

/// Whether this CPU has AVX2 and FMA.
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The product of `m` rows of activations by the matrix into `y`.
///
/// # Safety
/// [`available`]; `acts` holds at least `m` rows; `y` holds `m` rows of outputs.
pub(super) unsafe fn matmul(matrix: &Int8Matrix, acts: &Activations, m: usize, y: &mut [f32]) {
    debug_assert_eq!(y.len(), m * matrix.n);
    let out = SharedOut(y.as_mut_ptr());
    for_each_task(matrix, m, TASK_ROWS, |rows, panel| {
        // SAFETY: as the caller promised; each task writes only its own rows' columns of its
        // own panel.
        unsafe { self::task(matrix, acts, rows, panel, &out) };
    });
}

#[target_feature(enable = "avx2,fma")]
unsafe fn task(
    m: &Int8Matrix,
    acts: &Activations,
    rows: Range<usize>,
    panel: usize,
    out: &SharedOut,
) {
    let cols = panel * PANEL..m.n.min((panel + 1) * PANEL);
    let mut totals = [[0f32; PANEL]; TILE_ROWS];
    let mut i0 = rows.start;
    while i0 < rows.end {
        let r = TILE_ROWS.min(rows.end - i0);
        for half in 0..2 {
            match r {
                2 => tile::<2>(m, acts, i0, panel, half, &mut totals),
                _ => tile::<1>(m, acts, i0, panel, half, &mut totals),
            }
        }
        for (i, total) in totals[..r].iter().enumerate() {
            let dst = out.0.add((i0 + i) * m.n + cols.start);
            for (c, &t) in total[..cols.len()].iter().enumerate() {
                *dst.add(c) = m.epilogue.apply(t + m.bias[cols.start + c]);
            }
        }
        i0 += r;
    }
}

/// `R` rows from `row0` by the 32 columns of half `half` of a panel, into `totals[..R]`'s
/// columns of that half (without the bias).
// Registers indexed by row and vector across several arrays read more plainly with indices.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(
    m: &Int8Matrix,
    acts: &Activations,
    row0: usize,
    panel: usize,
    half: usize,
    totals: &mut [[f32; PANEL]; TILE_ROWS],
) {
    let blocks = m.k / m.block;
    let width = m.panels * PANEL;
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    let mut total = [[_mm256_setzero_ps(); 4]; R];
    for b in 0..blocks {
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        let mut w = m
            .packed
            .as_ptr()
            .add(panel * PANEL * m.k + b * m.block * PANEL + half * 128);
        let mut x = acts.data.as_ptr().add(row0 * m.k + b * m.block);
        for _ in 0..m.block / 4 {
            // Weights are loaded where used (from L1), not held: 8 accumulators, 2 x 2
            // activation vectors and the constants already fill the 16 registers, and spilled
            // accumulators would chain every step through the stack.
            let mut signed = [_mm256_setzero_si256(); R];
            let mut magnitude = [_mm256_setzero_si256(); R];
            for r in 0..R {
                let four = (x.add(r * m.k) as *const i32).read_unaligned();
                signed[r] = _mm256_xor_si256(_mm256_set1_epi32(four), flip);
                magnitude[r] = _mm256_abs_epi8(signed[r]);
            }
            for v in 0..4 {
                let wv = _mm256_loadu_si256(w.add(32 * v) as *const _);
                for r in 0..R {
                    let pairs = _mm256_maddubs_epi16(magnitude[r], _mm256_sign_epi8(wv, signed[r]));
                    acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(pairs, ones));
                }
            }
            w = w.add(4 * PANEL);
            x = x.add(4);
        }
        let at = b * width + panel * PANEL + half * 32;
        for (r, acc) in acc.iter().enumerate() {
            let s = _mm256_set1_ps(acts.scales[(row0 + r) * blocks + b]);
            for (v, &sum) in acc.iter().enumerate() {
                let scale = _mm256_mul_ps(_mm256_loadu_ps(m.scales.as_ptr().add(at + 8 * v)), s);
                total[r][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, total[r][v]);
            }
        }
    }
    for (dst, total) in totals.iter_mut().zip(&total) {
        for (v, t) in total.iter().enumerate() {
            _mm256_storeu_ps(dst.as_mut_ptr().add(half * 32 + 8 * v), *t);
        }
    }
}

/// One block of activations (a multiple of 32 values) to `u8` (`+128`), rounding as the other
/// kernels' quantizer (ties to even); returns its scale.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [u8]) -> f32 {
    debug_assert!(x.len().is_multiple_of(32) && q.len() == x.len());
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut max = _mm256_setzero_ps();
    for c in x.chunks_exact(8) {
        max = _mm256_max_ps(max, _mm256_and_ps(_mm256_loadu_ps(c.as_ptr()), abs));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), max);
    let scale = lanes.iter().fold(0f32, |m, &v| m.max(v)) / 127.0;
    let inv = _mm256_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
    let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
    // packs interleave the 128-bit lanes; this puts the 32 bytes back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (c, q) in x.chunks_exact(32).zip(q.chunks_exact_mut(32)) {
        let mut quad = [_mm256_setzero_si256(); 4];
        for (i, quad) in quad.iter_mut().enumerate() {
            let v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(c.as_ptr().add(8 * i)), inv));
            *quad = _mm256_max_epi32(_mm256_min_epi32(v, hi), lo);
        }
        let words = [
            _mm256_packs_epi32(quad[0], quad[1]),
            _mm256_packs_epi32(quad[2], quad[3]),
        ];
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words[0], words[1]), order);
        let bytes = _mm256_xor_si256(bytes, _mm256_set1_epi8(-128));
        _mm256_storeu_si256(q.as_mut_ptr() as *mut _, bytes);
    }
    scale
}
