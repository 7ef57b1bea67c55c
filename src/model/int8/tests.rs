use super::*;

/// Whether the kernel can be tested on this CPU (`CLIPSEARCH_REQUIRE_VNNI=1`: it must).
fn testable() -> bool {
    crate::device::kernel_testable("vnni", available())
}

/// The ways a matrix is multiplied here: each kernel this CPU runs (AMX's under
/// `CLIPSEARCH_REQUIRE_AMX=1` must run) and, on every CPU with VNNI, the AMX task with its tile
/// instructions modelled in Rust (blocking, addressing and scaling tested without AMX).
#[derive(Clone, Copy, Debug)]
enum Way {
    Vnni,
    Amx,
    AmxModel,
    Avx2,
}

/// The ways this CPU multiplies `q` (the AVX2 kernel's wherever it has AVX2, VNNI's and AMX's
/// where it has those); at least one, or the test fails.
fn ways(q: &Int8Matrix) -> Vec<Way> {
    let mut ways = Vec::new();
    if crate::device::kernel_testable("avx2", avx2_available()) {
        ways.push(Way::Avx2);
    }
    if !testable() {
        assert!(!ways.is_empty(), "no int8 kernel runs on this CPU");
        return ways;
    }
    ways.push(Way::Vnni);
    if q.block >= 64 {
        ways.push(Way::AmxModel);
        if crate::device::kernel_testable("amx", amx_available()) {
            ways.push(Way::Amx);
        }
    }
    ways
}

fn multiply(q: &mut Int8Matrix, way: Way, x: &[f32], m: usize) -> Vec<f32> {
    match way {
        Way::Vnni | Way::Amx | Way::Avx2 => {
            q.kernel = match way {
                Way::Amx => Kernel::Amx,
                Way::Vnni => Kernel::Vnni,
                _ => Kernel::Avx2,
            };
            q.matmul(x, m)
        }
        Way::AmxModel => {
            let mut y = vec![0f32; m * q.n];
            let padded = m.next_multiple_of(amx::TILE_ROWS);
            let acts = Activations::quantize(x, m, padded, q.k, q.block, Kernel::Vnni);
            // SAFETY: callers check available(); the model needs no AMX; blocks are >= 64.
            unsafe { amx::matmul::<amx::Emulated>(q, &acts, m, &mut y) };
            y
        }
    }
}

/// The largest `|a - b|`, failing on a NaN or infinity on either side or a length mismatch
/// (`f32::max` would drop a NaN and pass it).
fn worst_difference(what: &str, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(!a.is_empty(), "{what}: empty");
    a.iter().zip(b).fold(0f32, |worst, (x, y)| {
        assert!(x.is_finite() && y.is_finite(), "{what}: {x} vs {y}");
        worst.max((x - y).abs())
    })
}

/// The largest magnitude, failing on a value that is not finite.
fn largest(what: &str, v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| {
        assert!(x.is_finite(), "{what}: {x}");
        m.max(x.abs())
    })
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
    for &(m, n, k) in &[
        (1, 64, 256),
        (5, 70, 96),
        (13, 128, 128),
        (50, 192, 64),
        (61, 96, 768),
        (7, 512, 3072),
        (33, 130, 256),
        (100, 64, 128),
    ] {
        let x = values(m * k, 1 + m as u64);
        let w: Vec<f32> = values(n * k, 7 + n as u64)
            .iter()
            .map(|v| v * 0.05)
            .collect();
        let bias = values(n, 3);
        let mut q = Int8Matrix::quantize(&w, n, k, Some(bias.clone())).unwrap();
        assert_eq!((q.out_dim(), q.in_dim()), (n, k));
        let scalar = q.matmul_reference(&x, m);
        let exact = f32_product(&x, &w, &bias, m, n, k);
        let scale = largest("f32 product", &exact);
        for way in ways(&q) {
            let ours = multiply(&mut q, way, &x, m);
            let what = format!("{way:?} {m}x{n}x{k}");
            // The same integers, summed in f32 block by block versus in f64: rounding only.
            let worst = worst_difference(&what, &ours, &scalar);
            assert!(
                worst <= 1e-5 * scale,
                "{what}: vs scalar {worst} (scale {scale})"
            );
            // 8-bit operands: within 2% of the largest output.
            let worst = worst_difference(&what, &ours, &exact);
            assert!(
                worst <= 0.02 * scale,
                "{what}: int8 vs f32 {worst} (scale {scale})"
            );
        }
    }
}

/// The AMX task's blocking, addressing and scaling, with its tile instructions modelled in
/// Rust as the Intel SDM defines `tdpbusd`: on every x86-64 CPU, AVX2-only ones included, so
/// that only the instructions themselves wait for a CPU with AMX (where `Way::Amx` above runs
/// them against the same scalar product). Row counts that fill one, two and a half micro-tiles
/// and two tasks; partial panels; every block length AMX takes.
#[test]
fn amx_task_with_modelled_tiles_equals_scalar_product() {
    for &(m, n, k) in &[
        (1, 64, 256),
        (13, 128, 128),
        (50, 192, 64),
        (33, 130, 256),
        (100, 64, 768),
        (7, 512, 3072),
    ] {
        let x = values(m * k, 31 + m as u64);
        let w: Vec<f32> = values(n * k, 37 + n as u64)
            .iter()
            .map(|v| v * 0.05)
            .collect();
        let bias = values(n, 41);
        let q = Int8Matrix::quantize(&w, n, k, Some(bias)).unwrap();
        let padded = m.next_multiple_of(amx::TILE_ROWS);
        let mut acts = Activations::quantize_scalar(&x, m, k, q.block);
        acts.data.resize(padded * k, 128);
        acts.scales.resize(padded * (k / q.block), 0.0);
        let reference = q.matmul_reference(&x, m);
        let mut ours = vec![f32::NAN; m * n];
        for group in 0..padded.div_ceil(amx::TASK_ROWS) {
            for panel in 0..q.panels {
                let rows = group * amx::TASK_ROWS..padded.min((group + 1) * amx::TASK_ROWS);
                let mut totals = [[0f32; PANEL]; amx::TASK_ROWS];
                // SAFETY: the model needs no CPU feature; blocks are >= 64; rows are whole
                // micro-tiles within the padded activations.
                unsafe {
                    amx::accumulate::<amx::Emulated>(&q, &acts, rows.clone(), panel, &mut totals)
                };
                let width = PANEL.min(n - panel * PANEL);
                for row in rows.start..rows.end.min(m) {
                    let total = &totals[row - rows.start][..width];
                    for (c, t) in total.iter().enumerate() {
                        let j = panel * PANEL + c;
                        ours[row * n + j] = t + q.bias[j];
                    }
                }
            }
        }
        let what = format!("AMX model {m}x{n}x{k}");
        // Every output written (a NaN left means a row or column was missed), and equal to the
        // scalar product up to the f32 rounding of the block sums' accumulation.
        let scale = largest(&what, &reference);
        let worst = worst_difference(&what, &ours, &reference);
        assert!(
            worst <= 1e-5 * scale,
            "{what}: vs scalar {worst} (scale {scale})"
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
            let e = error(*g, x);
            assert!(e.is_finite(), "at {x}: {g}");
            worst = worst.max(e);
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
    let worst = worst_lane_error(-87.0..88.0, vnni::exp, |g, x| {
        ((g - x.exp()) / x.exp()).abs()
    });
    assert!(worst < 4.0 * f32::EPSILON, "relative error {worst}");
}

#[test]
fn vector_gelu_is_within_3e7_of_the_erf_gelu() {
    if !testable() {
        return;
    }
    let worst = worst_lane_error(-12.0..12.0, vnni::gelu, |g, x| {
        let erf = candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2);
        (g - 0.5 * x * (1.0 + erf)).abs() / x.abs().max(1.0)
    });
    // A&S's 1.5e-7 plus f32 rounding (observed 2.04e-7).
    assert!(worst < 3e-7, "error {worst}");
}

#[test]
fn activations_are_fused_as_computed_after_the_product() {
    let (m, n, k) = (11, 100, 256);
    let x = values(m * k, 21);
    let w: Vec<f32> = values(n * k, 22).iter().map(|v| v * 0.05).collect();
    let bias = values(n, 23);
    let plain = Int8Matrix::quantize(&w, n, k, Some(bias.clone())).unwrap();
    let before = plain.matmul_reference(&x, m);
    largest("before", &before);
    let quick_gelu = |v: f32| v * (1.0 / (1.0 + (-1.702 * v).exp()));
    let gelu = |v: f32| {
        0.5 * v * (1.0 + candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))
    };
    for (epilogue, f) in [
        (Epilogue::QuickGelu, &quick_gelu as &dyn Fn(f32) -> f32),
        (Epilogue::Gelu, &gelu),
    ] {
        let mut fused = Int8Matrix::quantize(&w, n, k, Some(bias.clone()))
            .unwrap()
            .with_epilogue(epilogue);
        let reference = fused.matmul_reference(&x, m);
        let scale = largest("reference", &reference);
        let mut negative = 0;
        for (&v, y) in before.iter().zip(&reference) {
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
        for way in ways(&fused) {
            let after = multiply(&mut fused, way, &x, m);
            let what = format!("{way:?} {epilogue:?}");
            let worst = worst_difference(&what, &after, &reference);
            assert!(worst <= 1e-5 * scale, "{what}: kernel vs scalar {worst}");
        }
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
        let vector = unsafe { vnni::quantize_weight_block(block, &mut a) };
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
    let (m, k) = (9, 256);
    let mut x = values(m * k, 11);
    x[..k].fill(0.0);
    let s = Activations::quantize_scalar(&x, m, k, 256);
    let mut kernels = Vec::new();
    if crate::device::kernel_testable("avx2", avx2_available()) {
        kernels.push(Kernel::Avx2);
    }
    if testable() {
        kernels.push(Kernel::Vnni);
    }
    assert!(!kernels.is_empty(), "no int8 kernel runs on this CPU");
    for kernel in kernels {
        let v = Activations::quantize(&x, m, m + 3, k, 256, kernel);
        assert_eq!(v.scales[..m], s.scales[..], "{kernel:?}");
        assert_eq!(v.data[..m * k], s.data[..], "{kernel:?}");
        assert!(
            v.data[..k].iter().all(|&q| q == 128),
            "{kernel:?}: zero row is not 128s"
        );
        assert_eq!(v.scales[0], 0.0);
        // Padding rows (the AMX kernel's whole micro-tiles) are zeros: 128s with a scale of 0.
        assert!(v.data[m * k..].iter().all(|&q| q == 128));
        assert_eq!(v.scales[m..], [0.0; 3]);
    }
}
