//! The AMX micro-kernel (`tdpbusd`: Sapphire Rapids and later Xeons): the VNNI kernel's operands,
//! per-block scales and packed panels, multiplied in tile registers.
//!
//! One `tdpbusd` multiplies a 16 x 64 tile of activation bytes by a 64 x 16 tile of weights into
//! 16 x 16 integer sums: 16,384 products, where `vpdpbusd` does 64. Eight tile registers hold two
//! activation tiles, two weight tiles and the four sums of a 32 x 32 micro-tile. The packed panels
//! are already in the layout `tdpbusd` reads (four consecutive inputs of a column side by side):
//! a weight tile is 16 rows of a panel at a stride of 256 bytes, so nothing is repacked and the
//! two kernels share one quantized matrix.
//!
//! Scales are per block of inputs, so after each block the four sums leave the tiles
//! (`tilestored`, 4 KiB that stay in L1) and are scaled into f32 totals with AVX-512, as the VNNI
//! kernel does in registers. A task loops blocks outermost, so the block's activations (64 rows)
//! and weights (64 columns), 32 KiB together, are read from L1 by every micro-tile of the task.
//!
//! Linux gives a process the tiles' 8 KiB of register state only when it asks
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; without it the first tile instruction
//! is a SIGILL): [`permitted`] asks once, for the whole process. The tile configuration is per
//! thread, so each task loads it, and releases the tiles when done so that a thread switched
//! out between tasks has no tile state to save. The instructions are written as inline assembly:
//! Rust's AMX intrinsics are not stable.

use std::arch::asm;
use std::arch::x86_64::__cpuid_count;
use std::ops::Range;
use std::sync::OnceLock;

use super::operands::{for_each_task, Activations, Int8Matrix, SharedOut, PANEL};
use super::vnni;

/// Rows of a micro-tile: two activation tiles of 16.
pub(super) const TILE_ROWS: usize = 32;
/// Rows one task computes against one panel (in L1 with the panel's block of weights).
pub(super) const TASK_ROWS: usize = 2 * TILE_ROWS;

/// Whether the CPU has AMX-TILE and AMX-INT8 and Linux granted this process the tile state.
pub(super) fn permitted() -> bool {
    static PERMITTED: OnceLock<bool> = OnceLock::new();
    *PERMITTED.get_or_init(|| {
        // CPUID leaf 7, sub-leaf 0: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID leaf 7 exists on every x86-64 CPU with AVX-512 (checked by callers).
        let edx = unsafe { __cpuid_count(7, 0) }.edx;
        let has = edx & (3 << 24) == 3 << 24;
        let granted = has && request_tile_state();
        tracing::debug!(cpu_has_amx = has, granted, "int8 AMX tiles");
        granted
    })
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes reads integers and writes one u64 we own.
    let asked = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if asked != 0 {
        // Kernels before 5.16 have no such request (and no AMX support).
        return false;
    }
    let mut features: u64 = 0;
    // SAFETY: as above.
    let got = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut features as *mut u64,
        )
    };
    got == 0 && features & (1 << XFEATURE_XTILEDATA) != 0
}

/// Other systems have their own rules for the tile state; the VNNI kernel runs there.
#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// `ldtilecfg`'s 64 bytes: palette 1, every one of the 8 tiles 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// The four 16 x 16 sums of a micro-tile: rows 0-15 by columns 0-15, 0-15 by 16-31, 16-31 by
/// 0-15, 16-31 by 16-31.
#[repr(C, align(64))]
pub(super) struct Sums([[i32; 16]; 64]);

/// The tile instructions a task runs: the hardware's, or (in tests) a model of them in Rust that
/// reads and writes the same addresses, so that the task's blocking, addressing and scaling are
/// tested on any x86-64 CPU and only the few instructions below need AMX to be tested.
pub(super) trait Tiles {
    /// Before a task's first product (the tile configuration).
    unsafe fn begin();
    /// `steps` products of 64 inputs each: activation rows 0-15 and 16-31 from `a` (stride
    /// `k`) by 16-column weight tiles at `w` and `w + 64` (stride 256), the four sums stored to
    /// `sums` in the order of [`Sums`].
    unsafe fn products(a: *const u8, k: usize, w: *const i8, steps: usize, sums: &mut Sums);
    /// After a task's last product.
    unsafe fn end();
}

/// AMX itself.
pub(super) struct Hardware;

impl Tiles for Hardware {
    #[inline(always)]
    unsafe fn begin() {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly));
    }

    #[inline(always)]
    unsafe fn products(a: *const u8, k: usize, w: *const i8, steps: usize, sums: &mut Sums) {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {k}*1]",
            "tileloadd tmm5, [{a16} + {k}*1]",
            "tileloadd tmm6, [{w} + {stride}*1]",
            "tileloadd tmm7, [{w} + {stride}*1 + 64]",
            "tdpbusd tmm0, tmm4, tmm6",
            "tdpbusd tmm1, tmm4, tmm7",
            "tdpbusd tmm2, tmm5, tmm6",
            "tdpbusd tmm3, tmm5, tmm7",
            "add {a}, 64",
            "add {a16}, 64",
            "add {w}, 4096",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{s} + {row}*1], tmm0",
            "tilestored [{s} + {row}*1 + 1024], tmm1",
            "tilestored [{s} + {row}*1 + 2048], tmm2",
            "tilestored [{s} + {row}*1 + 3072], tmm3",
            a = inout(reg) a => _,
            a16 = inout(reg) a.add(16 * k) => _,
            k = in(reg) k,
            w = inout(reg) w => _,
            stride = in(reg) 4 * PANEL,
            steps = inout(reg) steps => _,
            s = in(reg) sums.0.as_mut_ptr(),
            row = in(reg) 64usize,
            options(nostack),
        );
    }

    #[inline(always)]
    unsafe fn end() {
        asm!("tilerelease", options(nostack, nomem));
    }
}

/// `tdpbusd` as the Intel SDM defines it, on the addresses [`Hardware::products`] uses.
#[cfg(test)]
pub(super) struct Emulated;

#[cfg(test)]
impl Tiles for Emulated {
    unsafe fn begin() {}

    unsafe fn products(a: *const u8, k: usize, w: *const i8, steps: usize, sums: &mut Sums) {
        sums.0 = [[0; 16]; 64];
        for step in 0..steps {
            for tile in 0..4 {
                let (rows, cols) = ((tile / 2) * 16, (tile % 2) * 16);
                for i in 0..16 {
                    for j in 0..16 {
                        let mut sum = 0i32;
                        // Row `quad` of a weight tile holds 4 inputs of each of its 16 columns.
                        for quad in 0..16 {
                            for byte in 0..4 {
                                let x = *a.add((rows + i) * k + step * 64 + 4 * quad + byte);
                                let w =
                                    *w.add(step * 4096 + quad * 4 * PANEL + (cols + j) * 4 + byte);
                                sum += x as i32 * w as i32;
                            }
                        }
                        sums.0[tile * 16 + i][j] += sum;
                    }
                }
            }
        }
    }

    unsafe fn end() {}
}

/// The product of `m` rows of activations by the matrix into `y`, in tasks of [`TASK_ROWS`]
/// rows by one panel.
///
/// # Safety
/// AVX-512 F, BW and VNNI; for [`Hardware`], [`permitted`]; the matrix's block is a multiple of
/// 64; `acts` holds `m` rows padded with zero rows to a multiple of [`TILE_ROWS`]; `y` holds
/// `m` rows of the matrix's outputs.
pub(super) unsafe fn matmul<T: Tiles>(
    matrix: &Int8Matrix,
    acts: &Activations,
    m: usize,
    y: &mut [f32],
) {
    debug_assert_eq!(y.len(), m * matrix.n);
    let padded = m.next_multiple_of(TILE_ROWS);
    debug_assert!(acts.data.len() >= padded * matrix.k);
    let out = SharedOut(y.as_mut_ptr());
    for_each_task(matrix, padded, TASK_ROWS, |rows, panel| {
        // SAFETY: as the caller promised; tasks write disjoint rows and panels of `y`.
        unsafe { self::task::<T>(matrix, acts, rows, m, panel, &out) };
    });
}

/// Rows `rows` of the padded activations (whole micro-tiles) against one panel; rows below
/// `valid` are written to `out`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn task<T: Tiles>(
    m: &Int8Matrix,
    acts: &Activations,
    rows: Range<usize>,
    valid: usize,
    panel: usize,
    out: &SharedOut,
) {
    let mut totals = [[0f32; PANEL]; TASK_ROWS];
    T::begin();
    accumulate::<T>(m, acts, rows.clone(), panel, &mut totals);
    T::end();
    let cols = panel * PANEL..m.n.min((panel + 1) * PANEL);
    for (r, total) in totals[..rows.len()].iter().enumerate() {
        let row = rows.start + r;
        if row >= valid {
            break;
        }
        vnni::finish_row(
            total,
            m.bias.as_ptr().add(cols.start),
            out.0.add(row * m.n + cols.start),
            cols.len(),
            m.epilogue,
        );
    }
}

/// The f32 totals (before the bias) of rows `rows` against one panel: for each block, each
/// micro-tile's integer sums from the tiles, less the weights' offsets, times both scales.
/// The scaling is AVX-512 ([`scale_tile`]) where the CPU has it and plain Rust elsewhere, so that
/// the model of the tiles runs on any x86-64 CPU. (Left to the compiler, the loop stayed
/// scalar, one `vcvtsi2ss` and `vfmadd` per sum: eight times the tile products' own time.)
///
/// # Safety
/// As [`task`]'s, except that [`Emulated`] needs no CPU feature.
#[inline(always)]
pub(super) unsafe fn accumulate<T: Tiles>(
    m: &Int8Matrix,
    acts: &Activations,
    rows: Range<usize>,
    panel: usize,
    totals: &mut [[f32; PANEL]; TASK_ROWS],
) {
    debug_assert!(m.block.is_multiple_of(64) && rows.len().is_multiple_of(TILE_ROWS));
    debug_assert!(rows.len() <= TASK_ROWS && acts.data.len() >= rows.end * m.k);
    let blocks = m.k / m.block;
    let width = m.panels * PANEL;
    let mut sums = Sums([[0; 16]; 64]);
    // The model of the tiles runs on AVX2-only CPUs too, where the scaling is scalar.
    #[cfg(feature = "avx512")]
    let vector = std::arch::is_x86_feature_detected!("avx512f");
    for b in 0..blocks {
        // The panel's block `b`: inputs b * block.., 256 bytes per 4 inputs.
        let weights = m
            .packed
            .as_ptr()
            .add(panel * PANEL * m.k + b * m.block * PANEL);
        for t in 0..rows.len() / TILE_ROWS {
            let row0 = rows.start + t * TILE_ROWS;
            let a = acts.data.as_ptr().add(row0 * m.k + b * m.block);
            for half in 0..2 {
                T::products(a, m.k, weights.add(half * 32 * 4), m.block / 64, &mut sums);
                for (tile, sums) in sums.0.chunks_exact(16).enumerate() {
                    let col = half * 32 + (tile % 2) * 16;
                    let at = b * width + panel * PANEL + col;
                    let r0 = t * TILE_ROWS + (tile / 2) * 16;
                    let row_scales = |i: usize| acts.scales[(rows.start + r0 + i) * blocks + b];
                    let totals = &mut totals[r0..r0 + 16];
                    let (scale, offset) = (&m.scales[at..at + 16], &m.offsets[at..at + 16]);
                    #[cfg(feature = "avx512")]
                    if vector {
                        scale_tile(sums, offset, scale, row_scales, totals, col);
                        continue;
                    }
                    for (i, sum) in sums.iter().enumerate() {
                        let s = row_scales(i);
                        let total = &mut totals[i][col..col + 16];
                        let terms = sum.iter().zip(offset).zip(scale);
                        for (t, ((&sum, &offset), &scale)) in total.iter_mut().zip(terms) {
                            *t = ((sum - offset) as f32).mul_add(scale * s, *t);
                        }
                    }
                }
            }
        }
    }
}

/// One 16 x 16 tile of a block's integer sums into its rows' f32 totals at columns
/// `col..col + 16`: `total += (sum - offset) * scale * s`, a row at a time in one vector.
#[cfg(feature = "avx512")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn scale_tile(
    sums: &[[i32; 16]],
    offset: &[i32],
    scale: &[f32],
    row_scales: impl Fn(usize) -> f32,
    totals: &mut [[f32; PANEL]],
    col: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(sums.len() == 16 && totals.len() == 16 && offset.len() == 16);
    let offset = _mm512_loadu_si512(offset.as_ptr().cast());
    let scale = _mm512_loadu_ps(scale.as_ptr());
    for (i, (sum, total)) in sums.iter().zip(totals).enumerate() {
        let sum = _mm512_sub_epi32(_mm512_loadu_si512(sum.as_ptr().cast()), offset);
        let factor = _mm512_mul_ps(scale, _mm512_set1_ps(row_scales(i)));
        let at = total.as_mut_ptr().add(col);
        let t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), factor, _mm512_loadu_ps(at));
        _mm512_storeu_ps(at, t);
    }
}
