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

/// Distances from `query` to the codes of `rows` (every row when None), in their order.
fn distances(codes: &[u64], query: &[u64], rows: Option<&[usize]>) -> Vec<u16> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has POPCNT, checked just above.
        return unsafe { distances_popcnt(codes, query, rows) };
    }
    distances_portable(codes, query, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn distances_popcnt(codes: &[u64], query: &[u64], rows: Option<&[usize]>) -> Vec<u16> {
    distances_portable(codes, query, rows)
}

/// Rows per parallel task: small enough to split a million rows over every core, large enough
/// that the task overhead is noise next to the scan.
const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn distances_portable(codes: &[u64], query: &[u64], rows: Option<&[usize]>) -> Vec<u16> {
    let w = query.len();
    match rows {
        None => codes
            .par_chunks(w * CHUNK)
            .flat_map_iter(|block| block.chunks_exact(w).map(|c| hamming(c, query) as u16))
            .collect(),
        Some(rows) => rows
            .par_chunks(CHUNK)
            .flat_map_iter(|chunk| {
                chunk
                    .iter()
                    .map(|&r| hamming(&codes[r * w..(r + 1) * w], query) as u16)
            })
            .collect(),
    }
}

/// The (at least) `n` rows nearest to `query` by Hamming distance among `rows` (every row
/// when None), in row order. Distances are small integers, so the cut-off comes from a
/// histogram instead of a heap or a sort: two passes over an array of u16s.
pub fn nearest(codes: &[u64], query: &[u64], rows: Option<&[usize]>, n: usize) -> Vec<usize> {
    let d = distances(codes, query, rows);
    let row = |i: usize| rows.map_or(i, |r| r[i]);
    if d.len() <= n {
        return (0..d.len()).map(row).collect();
    }
    let mut histogram = vec![0usize; 64 * query.len() + 1];
    for &x in &d {
        histogram[x as usize] += 1;
    }
    // The smallest distance at which `n` rows are in; every row at that distance is kept, so
    // that ties do not depend on row order.
    let mut seen = 0;
    let cutoff = histogram
        .iter()
        .position(|&c| {
            seen += c;
            seen >= n
        })
        .unwrap_or(histogram.len() - 1) as u16;
    d.iter()
        .enumerate()
        .filter(|(_, &x)| x <= cutoff)
        .map(|(i, _)| row(i))
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
        // Portable and POPCNT paths agree.
        assert_eq!(
            distances(&codes, &[5], None),
            distances_portable(&codes, &[5], None)
        );
    }
}
