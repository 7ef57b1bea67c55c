//! Binary codes: one bit per dimension, the sign of a vector's difference from the collection's
//! mean, so that the Hamming distance between two codes estimates the angle between the
//! centred vectors (Charikar's sign random projection, with the coordinate axes as the
//! projections). Scanning codes reads 1/32 of what an f32 scan reads (64 bytes a vector at
//! 512 dimensions), which is what lets a query over a million photos start, search and finish
//! in a fraction of a second from a cold page cache; the few hundred best by Hamming distance
//! are then rescored exactly from the f32 vectors (qdrant's binary quantization with
//! oversampling, usearch's `b1x8` with rescoring).
//!
//! Centring matters: CLIP's embeddings share a large common direction, and without it most
//! bits are the same for every photo.

use rayon::prelude::*;

/// Words of 64 bits a code of `dim` dimensions takes.
pub fn words(dim: usize) -> usize {
    dim.div_ceil(64)
}

/// The code of `v`: bit `i` set when `v[i] > mean[i]`.
pub fn encode(v: &[f32], mean: &[f32], out: &mut [u64]) {
    debug_assert_eq!(out.len(), words(v.len()));
    out.fill(0);
    for (i, (x, m)) in v.iter().zip(mean).enumerate() {
        if x > m {
            out[i / 64] |= 1 << (i % 64);
        }
    }
}

/// Hamming distance of two codes.
#[inline(always)]
fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Rows per parallel task: small enough to split a million rows over every core, large enough
/// that the task overhead is noise next to the scan.
const CHUNK: usize = 16 * 1024;

/// Distances from `query` to the codes of `rows` (every row when None), in their order.
pub fn distances(codes: &[u64], query: &[u64], rows: Option<&[usize]>) -> Vec<u16> {
    let w = query.len();
    let n = rows.map_or(codes.len() / w.max(1), <[usize]>::len);
    let mut out = vec![0u16; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        let start = c * CHUNK;
        match rows {
            None => block(&codes[start * w..(start + out.len()) * w], query, out),
            Some(rows) => gather(codes, query, &rows[start..start + out.len()], out),
        }
    });
    out
}

/// The distances of a contiguous block of codes, with POPCNT where the CPU has it: the kernel
/// must be its own function for the instruction to be used (a closure handed to rayon is
/// compiled without the caller's target features).
fn block(codes: &[u64], query: &[u64], out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has POPCNT, checked just above.
        return unsafe { block_popcnt(codes, query, out) };
    }
    block_portable(codes, query, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn block_popcnt(codes: &[u64], query: &[u64], out: &mut [u16]) {
    block_portable(codes, query, out)
}

/// The distances of the codes of `rows`, as [`block`] computes them.
fn gather(codes: &[u64], query: &[u64], rows: &[usize], out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has POPCNT, checked just above.
        return unsafe { gather_popcnt(codes, query, rows, out) };
    }
    gather_portable(codes, query, rows, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn gather_popcnt(codes: &[u64], query: &[u64], rows: &[usize], out: &mut [u16]) {
    gather_portable(codes, query, rows, out)
}

#[inline(always)]
fn gather_portable(codes: &[u64], query: &[u64], rows: &[usize], out: &mut [u16]) {
    let w = query.len();
    for (o, &r) in out.iter_mut().zip(rows) {
        *o = hamming(&codes[r * w..(r + 1) * w], query) as u16;
    }
}

#[inline(always)]
fn block_portable(codes: &[u64], query: &[u64], out: &mut [u16]) {
    // ViT-B's 512 dimensions are 8 words: a fixed length lets the compiler unroll.
    if let Ok(q) = <&[u64; 8]>::try_from(query) {
        for (o, c) in out.iter_mut().zip(codes.chunks_exact(8)) {
            let mut d = 0;
            for i in 0..8 {
                d += (c[i] ^ q[i]).count_ones();
            }
            *o = d as u16;
        }
        return;
    }
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(query.len())) {
        *o = hamming(c, query) as u16;
    }
}

/// The (at least) `n` rows nearest to `query` by Hamming distance among `rows` (every row
/// when None), in row order. Distances are small integers, so the cut-off comes from a
/// histogram instead of a heap or a sort: two passes over an array of u16s.
pub fn nearest(codes: &[u64], query: &[u64], rows: Option<&[usize]>, n: usize) -> Vec<usize> {
    let d = distances(codes, query, rows);
    let mut histogram = Histogram::new(query.len());
    histogram.add(&d);
    within(&d, rows, histogram.cutoff(n))
}

/// How many rows are at each Hamming distance: what picks the cut-off of [`nearest`], and,
/// summed over a view's segments, one cut-off for all of them.
pub struct Histogram(Vec<usize>);

impl Histogram {
    /// An empty histogram for codes of `words` words.
    pub fn new(words: usize) -> Self {
        Histogram(vec![0; 64 * words + 1])
    }

    pub fn add(&mut self, distances: &[u16]) {
        for &x in distances {
            self.0[x as usize] += 1;
        }
    }

    /// How many rows are at each distance.
    pub fn counts(&self) -> &[usize] {
        &self.0
    }

    /// The smallest distance at which `n` rows are in (every distance when fewer are counted).
    /// Every row at that distance is kept, so that ties do not depend on row order.
    pub fn cutoff(&self, n: usize) -> u16 {
        let mut seen = 0;
        self.0
            .iter()
            .position(|&c| {
                seen += c;
                seen >= n
            })
            .unwrap_or(self.0.len() - 1) as u16
    }
}

/// The rows (of `rows`, or every row when None) whose distance in `d` is at most `cutoff`,
/// in row order.
pub fn within(d: &[u16], rows: Option<&[usize]>, cutoff: u16) -> Vec<usize> {
    d.iter()
        .enumerate()
        .filter(|(_, &x)| x <= cutoff)
        .map(|(i, _)| rows.map_or(i, |r| r[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_signs_against_the_mean() {
        let mean = vec![0.5f32; 70];
        let mut v = vec![0.0f32; 70];
        v[0] = 1.0;
        v[65] = 0.6;
        v[69] = 0.5; // not above: bit clear
        let mut code = vec![0u64; words(70)];
        encode(&v, &mean, &mut code);
        assert_eq!(code, vec![1, 1 << 1]);
    }

    #[test]
    fn nearest_keeps_every_row_tied_at_the_cutoff() {
        // Codes of one word: distances to 0 are the popcounts 0, 1, 1, 2, 3.
        let codes = [0u64, 1, 2, 3, 7];
        assert_eq!(nearest(&codes, &[0], None, 2), vec![0, 1, 2]);
        assert_eq!(nearest(&codes, &[0], None, 1), vec![0]);
        assert_eq!(nearest(&codes, &[0], Some(&[3, 4]), 1), vec![3]);
        assert_eq!(nearest(&codes, &[0], Some(&[4, 3]), 5), vec![4, 3]);
        // Portable and POPCNT paths agree, on one word and on eight.
        let mut fast = vec![0u16; 5];
        let mut slow = vec![0u16; 5];
        block(&codes, &[5], &mut fast);
        block_portable(&codes, &[5], &mut slow);
        assert_eq!(fast, slow);
        assert_eq!(fast, vec![2, 1, 3, 2, 1]);
        let wide: Vec<u64> = (0..40u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let q: Vec<u64> = wide[8..16].to_vec();
        let mut eight = vec![0u16; 5];
        block(&wide, &q, &mut eight);
        let expected: Vec<u16> = wide.chunks(8).map(|c| hamming(c, &q) as u16).collect();
        assert_eq!(eight, expected);
        assert_eq!(eight[1], 0);
        let mut picked = vec![0u16; 2];
        gather(&wide, &q, &[4, 1], &mut picked);
        assert_eq!(picked, vec![expected[4], 0]);
    }
}
