//! The AVX-512 VNNI micro-kernel (`vpdpbusd`): 6 rows by 64 columns in registers, and the
//! vector quantization, activation and store code that the AMX kernel shares.

use std::arch::x86_64::*;
use std::ops::Range;

use super::operands::{
    for_each_task, Activations, Epilogue, Int8Matrix, SharedOut, TileArgs, PANEL,
};

/// Rows of a micro-tile: 6 x 4 accumulators plus the 4 weight vectors fit the 32 registers.
const TILE_ROWS: usize = 6;
/// Rows one task computes against one panel: 8 micro-tiles (the panel is reused from cache).
const TASK_ROWS: usize = 8 * TILE_ROWS;

/// The product of `m` rows of activations by the matrix into `y`, in tasks of [`TASK_ROWS`]
/// rows by one panel.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `acts` holds at least `m` rows; `y` holds `m` rows of outputs.
pub(super) unsafe fn matmul(matrix: &Int8Matrix, acts: &Activations, m: usize, y: &mut [f32]) {
    debug_assert_eq!(y.len(), m * matrix.n);
    let out = SharedOut(y.as_mut_ptr());
    for_each_task(matrix, m, TASK_ROWS, |rows, panel| {
        // SAFETY: as the caller promised; each task writes only its own rows' columns of its
        // own panel, so no two tasks write the same element of `y`.
        unsafe { self::task(matrix, acts, rows, panel, &out) };
    });
}

/// One panel's columns for a range of rows, a micro-tile at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn task(
    m: &Int8Matrix,
    acts: &Activations,
    rows: Range<usize>,
    panel: usize,
    out: &SharedOut,
) {
    let cols = panel * PANEL..m.n.min((panel + 1) * PANEL);
    let mut sums = [[0f32; PANEL]; TILE_ROWS];
    let mut i0 = rows.start;
    while i0 < rows.end {
        let r = TILE_ROWS.min(rows.end - i0);
        let args = TileArgs {
            acts: acts.data.as_ptr().add(i0 * m.k),
            k: m.k,
            act_scales: acts.scales.as_ptr().add(i0 * (m.k / m.block)),
            blocks: m.k / m.block,
            block: m.block,
            panel: m.packed.as_ptr().add(panel * PANEL * m.k),
            scales: m.scales.as_ptr().add(panel * PANEL),
            offsets: m.offsets.as_ptr().add(panel * PANEL),
            width: m.panels * PANEL,
        };
        match r {
            6 => tile::<6>(&args, &mut sums),
            5 => tile::<5>(&args, &mut sums),
            4 => tile::<4>(&args, &mut sums),
            3 => tile::<3>(&args, &mut sums),
            2 => tile::<2>(&args, &mut sums),
            _ => tile::<1>(&args, &mut sums),
        }
        let count = cols.len();
        for (i, row) in sums[..r].iter().enumerate() {
            finish_row(
                row,
                m.bias.as_ptr().add(cols.start),
                out.0.add((i0 + i) * m.n + cols.start),
                count,
                m.epilogue,
            );
        }
        i0 += r;
    }
}

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
