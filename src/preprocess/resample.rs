//! Pillow's antialiased bicubic resize (`Image.resize(..., BICUBIC)`), reproduced to the bit.
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

/// Per output pixel: the first input pixel read, how many are read, and their fixed-point weights.
struct Coefficients {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    const SUPPORT: f64 = 2.0;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
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
            *w = bicubic((x as f64 + xmin as f64 - center + 0.5) / filterscale);
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

/// Resizes `src` (RGB, `w` x `h`, row-major, interleaved) to `out_w` x `out_h`.
pub fn resize_rgb(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * CHANNELS,
        "buffer does not match its dimensions"
    );
    assert!(out_w > 0 && out_h > 0 && w > 0 && h > 0, "empty image");
    let vert = coefficients(h, out_h);
    let horiz = coefficients(w, out_w);
    let need_h = out_w != w;
    let need_v = out_h != h;
    if !need_h && !need_v {
        return src.to_vec();
    }
    if !need_h {
        return vertical(src, w, &vert, 0);
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

fn horizontal(
    src: &[u8],
    w: usize,
    rows: std::ops::Range<usize>,
    out_w: usize,
    c: &Coefficients,
) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * out_w * CHANNELS];
    let row_len = w * CHANNELS;
    out.par_chunks_mut(out_w * CHANNELS)
        .enumerate()
        .for_each(|(i, dst)| {
            let y = rows.start + i;
            let line = &src[y * row_len..(y + 1) * row_len];
            for (xx, px) in dst.chunks_exact_mut(CHANNELS).enumerate() {
                let (xmin, n) = c.bounds[xx];
                let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
                let taps = &line[xmin * CHANNELS..(xmin + n) * CHANNELS];
                let half = 1i32 << (PRECISION_BITS - 1);
                let (mut r, mut g, mut b) = (half, half, half);
                for (p, &wt) in taps.chunks_exact(CHANNELS).zip(k) {
                    r += p[0] as i32 * wt;
                    g += p[1] as i32 * wt;
                    b += p[2] as i32 * wt;
                }
                px[0] = clip8(r);
                px[1] = clip8(g);
                px[2] = clip8(b);
            }
        });
    out
}

/// `offset` is the index of `src`'s first row in the coefficients' coordinates.
fn vertical(src: &[u8], w: usize, c: &Coefficients, offset: usize) -> Vec<u8> {
    let row_len = w * CHANNELS;
    let mut out = vec![0u8; c.bounds.len() * row_len];
    out.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(yy, dst)| {
            let (ymin, n) = c.bounds[yy];
            let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
            let half = 1i32 << (PRECISION_BITS - 1);
            let mut acc = vec![half; row_len];
            for (j, &wt) in k.iter().enumerate() {
                let line = &src[(ymin - offset + j) * row_len..(ymin - offset + j + 1) * row_len];
                for (a, &p) in acc.iter_mut().zip(line) {
                    *a += p as i32 * wt;
                }
            }
            for (d, a) in dst.iter_mut().zip(acc) {
                *d = clip8(a);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(4000, 224), (451, 64), (64, 300), (7, 3)] {
            let c = coefficients(i, o);
            for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                let s: i64 = c.weights[xx * c.ksize..xx * c.ksize + n]
                    .iter()
                    .map(|&v| v as i64)
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                    "{i}->{o} at {xx}: {s}"
                );
            }
        }
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
