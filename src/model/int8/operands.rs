//! The operands every int8 kernel reads, in the layouts they share: a weight matrix quantized and
//! packed in panels of 64 columns, activations quantized per row and block, and the output they
//! write. The kernels ([`super::vnni`], [`super::amx`], [`super::avx2`]) and the dispatch ([`super`]) use this
//! file; it uses none of them.

/// Columns of a packed panel: four vectors of 16 `i32` accumulators (VNNI), or four weight
/// tiles of 16 columns (AMX).
pub(super) const PANEL: usize = 64;

/// Which of our kernels multiplies a matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AMX tiles (`tdpbusd`), for input widths with blocks of 64 or more.
    Amx,
    /// AVX-512 VNNI (`vpdpbusd`).
    Vnni,
    /// AVX2 (`vpmaddubsw`), for CPUs without AVX-512.
    Avx2,
}

/// A weight matrix quantized and packed for the kernel. Multiplying needs [`super::available`].
pub struct Int8Matrix {
    /// Output columns (the checkpoint's rows) and inputs.
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) block: usize,
    pub(super) panels: usize,
    /// `[panel][k / 4][64 columns][4 inputs]`: one 64-byte load per column vector and 4 inputs.
    pub(super) packed: Vec<i8>,
    /// `[k / block][panels * 64]`: each block's scale per column (0 past `n`).
    pub(super) scales: Vec<f32>,
    /// `[k / block][panels * 64]`: 128 times each block's sum of quantized weights per column.
    pub(super) offsets: Vec<i32>,
    /// `[panels * 64]`: the bias, 0 where there is none and past `n`.
    pub(super) bias: Vec<f32>,
    /// Applied to each output as it is written (the MLP's activation after `fc1`).
    pub(super) epilogue: Epilogue,
    pub(super) kernel: Kernel,
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

impl Epilogue {
    /// The epilogue of one value, in scalar code: the reference the vector code is tested
    /// against, and what the AVX2 kernel stores (it has no vector `exp`).
    pub(super) fn apply(self, v: f32) -> f32 {
        match self {
            Epilogue::Identity => v,
            Epilogue::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
            Epilogue::Gelu => {
                let erf = candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2);
                0.5 * v * (1.0 + erf)
            }
        }
    }
}

/// Activations quantized per row and block, stored `+128` as `u8`.
pub(super) struct Activations {
    pub(super) data: Vec<u8>,
    /// `[m][k / block]`
    pub(super) scales: Vec<f32>,
}

/// A block's scale (`max |x| / 127`) and the factor that maps it onto -127..=127 (0 for a block
/// of zeros), as the vector code computes them.
pub(super) fn block_scale(x: &[f32]) -> (f32, f32) {
    let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
    (scale, if scale > 0.0 { 1.0 / scale } else { 0.0 })
}

/// The output buffer, written by tasks at disjoint positions.
pub(super) struct SharedOut(pub(super) *mut f32);
// SAFETY: tasks write disjoint elements (see `Int8Matrix::matmul`).
unsafe impl Sync for SharedOut {}

/// Where a micro-tile reads from: `acts` and `act_scales` at its first row; `panel`, `scales`
/// and `offsets` at its panel's first column.
pub(super) struct TileArgs {
    pub(super) acts: *const u8,
    pub(super) k: usize,
    pub(super) act_scales: *const f32,
    pub(super) blocks: usize,
    pub(super) block: usize,
    pub(super) panel: *const i8,
    pub(super) scales: *const f32,
    pub(super) offsets: *const i32,
    pub(super) width: usize,
}

/// Runs `task(rows, panel)` for every task of up to `task_rows` of the first `rows` rows by one
/// panel of the matrix, in parallel: each kernel's way of splitting a product across cores (a
/// task's rows reuse its panel's weights from cache; tasks write disjoint parts of the output).
pub(super) fn for_each_task(
    matrix: &Int8Matrix,
    rows: usize,
    task_rows: usize,
    task: impl Fn(std::ops::Range<usize>, usize) + Sync,
) {
    use rayon::prelude::*;
    let groups = rows.div_ceil(task_rows);
    (0..groups * matrix.panels).into_par_iter().for_each(|t| {
        let (group, panel) = (t / matrix.panels, t % matrix.panels);
        task(group * task_rows..rows.min((group + 1) * task_rows), panel);
    });
}
