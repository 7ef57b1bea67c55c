//! Pillow's antialiased resize (`Image.resize(..., BICUBIC)`, or `BILINEAR` as SigLIP 2's
//! processors ask), reproduced to the bit.
//!
//! CLIP's reference preprocessing resizes with Pillow, so an embedding is only faithful if the
//! resized pixels are the same. Pillow's algorithm (libImaging/Resample.c) is separable:
//! a horizontal pass over the rows the vertical pass will read, then a vertical pass. The filter
//! is Keys' cubic with a = -0.5; when downscaling, its support is widened by the scale factor, which
//! is what makes it antialiased. Weights are normalised per output pixel in f64 and rounded to
//! 22-bit fixed point; each pass accumulates in i32 and rounds and clamps to u8. Off-the-shelf
//! resizers differ (fast_image_resize uses 16-bit weights and a vertical-first order: up to 8
//! grey levels away), hence this file.

use rayon::prelude::*;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const CHANNELS: usize = 3;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's triangle filter (`BILINEAR`), support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The resampling filters a `preprocessor_config.json` may name (`resample`: Pillow's codes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    /// Pillow's `BICUBIC` (3): Keys' cubic, a = -0.5, support 2 (CLIP, SigLIP).
    #[default]
    Bicubic,
    /// Pillow's `BILINEAR` (2): the triangle, support 1 (SigLIP 2).
    Bilinear,
}

impl Filter {
    /// The filter of Pillow's resample code, if implemented.
    pub fn from_pillow(code: u64) -> Option<Self> {
        match code {
            3 => Some(Filter::Bicubic),
            2 => Some(Filter::Bilinear),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Bicubic => 2.0,
            Filter::Bilinear => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bicubic => bicubic(x),
            Filter::Bilinear => triangle(x),
        }
    }
}

/// Which pass runs first when both are needed. Pillow ran the horizontal pass first until
/// Pillow 13 (python-pillow/Pillow#9549), which runs the vertical one first when the height
/// shrinks by more than twice as many pixels as the width; the order moves some pixels by one
/// grey level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassOrder {
    /// Pillow 12 and earlier: what CLIP indexes were built with (and the CLIP fixture's).
    #[default]
    HorizontalFirst,
    /// Pillow 13 and later.
    Pillow13,
}

impl PassOrder {
    fn vertical_first(self, w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
        let shrink = |from: usize, to: usize| from as i64 - to as i64;
        self == PassOrder::Pillow13 && out_h < h && shrink(h, out_h) > 2 * shrink(w, out_w)
    }
}

/// Per output pixel: the first input pixel read, how many are read, and their fixed-point weights.
struct Coefficients {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for (xx, row) in weights.chunks_exact_mut(ksize).enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero; negatives are clamped to 0 just after.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut total = 0.0;
        for (x, w) in k.iter_mut().enumerate().take(xmax) {
            // Pillow multiplies by the reciprocal (`ss`): dividing rounds differently, which
            // flips the fixed-point rounding of a weight now and then.
            *w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            total += *w;
        }
        for (x, out) in row.iter_mut().enumerate().take(xmax) {
            let w = if total != 0.0 { k[x] / total } else { k[x] };
            let f = w * (1u32 << PRECISION_BITS) as f64;
            *out = if w < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coefficients {
        ksize,
        bounds,
        weights,
    }
}

#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `src` (RGB, `w` x `h`, row-major, interleaved) to `out_w` x `out_h` with Pillow's
/// bicubic.
pub fn resize_rgb(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    resize_rgb_with(
        src,
        w,
        h,
        out_w,
        out_h,
        Filter::Bicubic,
        PassOrder::HorizontalFirst,
    )
}

/// As [`resize_rgb`], with the given filter and order of passes.
pub fn resize_rgb_with(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
    order: PassOrder,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * CHANNELS,
        "buffer does not match its dimensions"
    );
    assert!(out_w > 0 && out_h > 0 && w > 0 && h > 0, "empty image");
    let vert = coefficients(h, out_h, filter);
    let horiz = coefficients(w, out_w, filter);
    let need_h = out_w != w;
    let need_v = out_h != h;
    if !need_h && !need_v {
        return src.to_vec();
    }
    if !need_h {
        return vertical(src, w, &vert, 0);
    }
    if need_v && order.vertical_first(w, h, out_w, out_h) {
        let tmp = vertical(src, w, &vert, 0);
        return horizontal(&tmp, w, 0..out_h, out_w, &horiz);
    }
    // Only the rows that the vertical pass will read are resized horizontally.
    let (first, _) = vert.bounds[0];
    let (last_min, last_n) = vert.bounds[out_h - 1];
    let rows = if need_v {
        first..last_min + last_n
    } else {
        0..h
    };
    let tmp = horizontal(src, w, rows.clone(), out_w, &horiz);
    if need_v {
        vertical(&tmp, out_w, &vert, rows.start)
    } else {
        tmp
    }
}

/// Fast mode's resize, as Pillow's `resize(..., reducing_gap=2.0)` (what its `thumbnail()` uses):
/// first average `f` x `f` blocks, with `f` the largest integer that leaves the image at least
/// twice the target in both directions, then the bicubic above from the reduced image. For a
/// 14.7 MP photo that is one cheap pass over the pixels instead of a 53-tap filter over each row;
/// the pixels differ slightly from [`resize_rgb`]'s (bounded by `tests/fast_decode.rs`).
pub fn resize_rgb_reducing(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
    order: PassOrder,
) -> Vec<u8> {
    const GAP: usize = 2;
    let factor = (w / (out_w * GAP)).min(h / (out_h * GAP));
    if factor < 2 {
        return resize_rgb_with(src, w, h, out_w, out_h, filter, order);
    }
    let (reduced, rw, rh) = reduce(src, w, h, factor);
    resize_rgb_with(&reduced, rw, rh, out_w, out_h, filter, order)
}

/// Averages `f` x `f` blocks (Pillow's `Image.reduce`): the output is `ceil(w / f)` x
/// `ceil(h / f)`, and the blocks at the right and bottom edges average the pixels they have.
pub fn reduce(src: &[u8], w: usize, h: usize, f: usize) -> (Vec<u8>, usize, usize) {
    let (rw, rh) = (w.div_ceil(f), h.div_ceil(f));
    let mut out = vec![0u8; rw * rh * CHANNELS];
    out.par_chunks_mut(rw * CHANNELS)
        .enumerate()
        .for_each(|(yy, dst)| {
            let rows = yy * f..((yy + 1) * f).min(h);
            let mut acc = vec![0u32; rw * CHANNELS];
            for y in rows.clone() {
                let line = &src[y * w * CHANNELS..(y + 1) * w * CHANNELS];
                for (xx, block) in line.chunks(f * CHANNELS).enumerate() {
                    let a = &mut acc[xx * CHANNELS..(xx + 1) * CHANNELS];
                    for px in block.chunks_exact(CHANNELS) {
                        a[0] += px[0] as u32;
                        a[1] += px[1] as u32;
                        a[2] += px[2] as u32;
                    }
                }
            }
            for (xx, (d, a)) in dst
                .chunks_exact_mut(CHANNELS)
                .zip(acc.chunks_exact(CHANNELS))
                .enumerate()
            {
                let n = (rows.len() * (f.min(w - xx * f))) as u32;
                for c in 0..CHANNELS {
                    d[c] = ((a[c] + n / 2) / n) as u8;
                }
            }
        });
    (out, rw, rh)
}

fn horizontal(
    src: &[u8],
    w: usize,
    rows: std::ops::Range<usize>,
    out_w: usize,
    c: &Coefficients,
) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * out_w * CHANNELS];
    let row_len = w * CHANNELS;
    let avx2 = has_avx2();
    out.par_chunks_mut(out_w * CHANNELS)
        .enumerate()
        .for_each_init(
            || vec![0u8; row_len],
            |planes, (i, dst)| {
                let y = rows.start + i;
                let line = &src[y * row_len..(y + 1) * row_len];
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU has AVX2 (checked at run time).
                    unsafe { horizontal_row_avx2(line, planes, dst, c) };
                    return;
                }
                let _ = avx2;
                horizontal_row(line, planes, dst, c);
            },
        );
    out
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`horizontal_row`] compiled for AVX2: the dot products below vectorise 8 lanes wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_row_avx2(line: &[u8], planes: &mut [u8], dst: &mut [u8], c: &Coefficients) {
    horizontal_row(line, planes, dst, c)
}

/// One row of the horizontal pass. The row is first split into one plane per channel so that
/// each output value is a dot product of contiguous bytes with the weights, which compilers
/// vectorise; integer sums do not depend on their order, so the result is Pillow's, bit for bit.
#[inline(always)]
fn horizontal_row(line: &[u8], planes: &mut [u8], dst: &mut [u8], c: &Coefficients) {
    let w = line.len() / CHANNELS;
    for (x, px) in line.chunks_exact(CHANNELS).enumerate() {
        for ch in 0..CHANNELS {
            planes[ch * w + x] = px[ch];
        }
    }
    let half = 1i32 << (PRECISION_BITS - 1);
    for (xx, px) in dst.chunks_exact_mut(CHANNELS).enumerate() {
        let (xmin, n) = c.bounds[xx];
        let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
        for (ch, out) in px.iter_mut().enumerate() {
            let taps = &planes[ch * w + xmin..ch * w + xmin + n];
            let sum: i32 = taps.iter().zip(k).map(|(&p, &wt)| p as i32 * wt).sum();
            *out = clip8(half + sum);
        }
    }
}

/// `offset` is the index of `src`'s first row in the coefficients' coordinates.
fn vertical(src: &[u8], w: usize, c: &Coefficients, offset: usize) -> Vec<u8> {
    let row_len = w * CHANNELS;
    let mut out = vec![0u8; c.bounds.len() * row_len];
    let avx2 = has_avx2();
    out.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(yy, dst)| {
            let (ymin, n) = c.bounds[yy];
            let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
            let rows = &src[(ymin - offset) * row_len..(ymin - offset + n) * row_len];
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 (checked at run time).
                unsafe { vertical_row_avx2(rows, k, dst) };
                return;
            }
            let _ = avx2;
            vertical_row(rows, k, dst);
        });
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_row_avx2(rows: &[u8], k: &[i32], dst: &mut [u8]) {
    vertical_row(rows, k, dst)
}

/// One output row of the vertical pass: the weighted sum of the input rows `rows` (one per
/// weight in `k`), accumulated across the whole row so that it vectorises.
#[inline(always)]
fn vertical_row(rows: &[u8], k: &[i32], dst: &mut [u8]) {
    let half = 1i32 << (PRECISION_BITS - 1);
    let mut acc = vec![half; dst.len()];
    for (line, &wt) in rows.chunks_exact(dst.len()).zip(k) {
        for (a, &p) in acc.iter_mut().zip(line) {
            *a += p as i32 * wt;
        }
    }
    for (d, a) in dst.iter_mut().zip(acc) {
        *d = clip8(a);
    }
}

#[cfg(test)]
mod tests {
    /// The AVX2 versions are the same source compiled for another target: they must give the
    /// same bytes (the parity tests exercise whichever this CPU picks).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_portable_loops_agree() {
        if !crate::device::kernel_testable("avx2", super::has_avx2()) {
            return;
        }
        let (w, out_w) = (997usize, 224usize);
        let line: Vec<u8> = (0..w * 3).map(|i| ((i * 7919) % 256) as u8).collect();
        let c = super::coefficients(w, out_w, Filter::Bicubic);
        let (mut planes, mut planes2) = (vec![0u8; w * 3], vec![0u8; w * 3]);
        let (mut a, mut b) = (vec![0u8; out_w * 3], vec![0u8; out_w * 3]);
        super::horizontal_row(&line, &mut planes, &mut a, &c);
        // SAFETY: AVX2 checked above.
        unsafe { super::horizontal_row_avx2(&line, &mut planes2, &mut b, &c) };
        assert_eq!(a, b);
        let k = &c.weights[..c.bounds[0].1];
        let rows: Vec<u8> = line.iter().cycle().take(k.len() * 300).copied().collect();
        let (mut a, mut b) = (vec![0u8; 300], vec![0u8; 300]);
        super::vertical_row(&rows, k, &mut a);
        // SAFETY: AVX2 checked above.
        unsafe { super::vertical_row_avx2(&rows, k, &mut b) };
        assert_eq!(a, b);
    }
    #[test]
    fn reduce_averages_blocks_and_edges() {
        // 5 x 3 image, factor 2: blocks of 2x2, then 1x2 at the right edge, 2x1 and 1x1 at the
        // bottom.
        let src: Vec<u8> = (0..15u8).flat_map(|v| [v * 10, v, 255 - v]).collect();
        let (out, w, h) = super::reduce(&src, 5, 3, 2);
        assert_eq!((w, h), (3, 2));
        let red = |x: usize, y: usize| out[(y * w + x) * 3];
        assert_eq!(red(0, 0), ((10 + 50 + 60) as f32 / 4.0).round() as u8); // 0, 10, 50, 60
        assert_eq!(red(2, 0), ((40 + 90) as f32 / 2.0).round() as u8);
        assert_eq!(red(0, 1), ((100 + 110) as f32 / 2.0).round() as u8);
        assert_eq!(red(2, 1), 140);
        assert_eq!(out[(w + 2) * 3 + 2], 255 - 14);
        // Small reductions are left to the exact filter.
        let img: Vec<u8> = (0..(40 * 30 * 3)).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            super::resize_rgb_reducing(
                &img,
                40,
                30,
                20,
                15,
                Filter::Bicubic,
                PassOrder::HorizontalFirst
            ),
            super::resize_rgb(&img, 40, 30, 20, 15)
        );
    }

    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(4000, 224), (451, 64), (64, 300), (7, 3)] {
            for filter in [Filter::Bicubic, Filter::Bilinear] {
                let c = coefficients(i, o, filter);
                for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                    let s: i64 = c.weights[xx * c.ksize..xx * c.ksize + n]
                        .iter()
                        .map(|&v| v as i64)
                        .sum();
                    assert!(
                        (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                        "{i}->{o} {filter:?} at {xx}: {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn pillow_13_runs_the_vertical_pass_first_when_the_height_shrinks_much_more() {
        // Boundaries observed with Pillow 13.0 on random images (which order reproduced it).
        let o = PassOrder::Pillow13;
        assert!(o.vertical_first(333, 871, 64, 64));
        assert!(!o.vertical_first(300, 451, 64, 64));
        assert!(
            !o.vertical_first(100, 300, 60, 220),
            "80 = 2 x 40: not more"
        );
        assert!(o.vertical_first(100, 301, 60, 220));
        assert!(!o.vertical_first(100, 100, 300, 150), "height grows");
        assert!(
            o.vertical_first(50, 60, 100, 50),
            "width grows, height shrinks"
        );
        assert!(!o.vertical_first(500, 500, 100, 50));
        assert!(!PassOrder::HorizontalFirst.vertical_first(333, 871, 64, 64));
        // The two orders differ somewhere on a textured image.
        let src: Vec<u8> = (0usize..333 * 871 * 3)
            .map(|i| ((i * 7919) % 251) as u8)
            .collect();
        let a = resize_rgb_with(
            &src,
            333,
            871,
            64,
            64,
            Filter::Bilinear,
            PassOrder::Pillow13,
        );
        let b = resize_rgb_with(
            &src,
            333,
            871,
            64,
            64,
            Filter::Bilinear,
            PassOrder::HorizontalFirst,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn flat_image_stays_flat() {
        let src = vec![77u8; 97 * 41 * 3];
        let out = resize_rgb(&src, 97, 41, 13, 29);
        assert_eq!(out.len(), 13 * 29 * 3);
        assert!(out.iter().all(|&v| v == 77));
    }

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|v| v as u8).collect();
        assert_eq!(resize_rgb(&src, 5, 4, 5, 4), src);
    }
}
