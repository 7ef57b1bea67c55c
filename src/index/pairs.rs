//! All pairs of vectors at or above a cosine threshold, for near-duplicate detection.
//!
//! One query per vector against the index would cost n full scans for an exact index (35 min
//! at 100k). Instead, blocks of rows are multiplied against the whole matrix with candle's
//! matrix multiply (a tuned GEMM), which visits each pair once at several times the speed of
//! dot products one by one.

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::store::vectors::VectorSet;

/// Rows per block: a block's scores take `ROWS x n x 4` bytes (100 MB at n = 100k).
const ROWS: usize = 256;

/// Every pair `(id_a, id_b, cosine)` with `a` before `b` in `set` and cosine >= `threshold`.
pub fn pairs_above(set: &VectorSet, threshold: f32) -> Result<Vec<(u64, u64, f32)>> {
    let n = set.len();
    let mut out = Vec::new();
    if n < 2 {
        return Ok(out);
    }
    let all = Tensor::from_slice(set.vectors(), (n, set.dim), &Device::Cpu)?;
    let all_t = all.t()?.contiguous()?;
    for start in (0..n).step_by(ROWS) {
        let rows = ROWS.min(n - start);
        let block = all.narrow(0, start, rows)?;
        // Only columns from `start` on: pairs with earlier rows were seen in earlier blocks.
        let cols = n - start;
        let right = all_t.narrow(1, start, cols)?;
        let scores = block.matmul(&right)?.flatten_all()?.to_vec1::<f32>()?;
        for (r, row) in scores.chunks_exact(cols).enumerate() {
            let i = start + r;
            for (c, &s) in row.iter().enumerate().skip(r + 1) {
                if s >= threshold {
                    out.push((set.ids[i], set.ids[start + c], s));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::{dot, normalize};

    #[test]
    fn finds_exactly_the_pairs_a_naive_scan_finds() {
        let mut set = VectorSet::new(8);
        let mut s = 12345u64;
        for i in 0..600u64 {
            let mut v: Vec<f32> = (0..8)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            normalize(&mut v);
            set.push(i, &v);
        }
        let got = pairs_above(&set, 0.9).unwrap();
        let mut want = std::collections::HashMap::new();
        for i in 0..set.len() {
            for j in i + 1..set.len() {
                let s = dot(set.vector(i), set.vector(j));
                if s >= 0.9 {
                    want.insert((set.ids[i], set.ids[j]), s);
                }
            }
        }
        assert!(want.len() > 10, "{} pairs", want.len());
        // The same pairs, with the same scores: float summation order differs between the GEMM
        // and the dot product by ulps, so only a pair within 1e-5 of the threshold may fall on
        // the other side.
        let naive = |a: u64, b: u64| dot(set.vector(a as usize), set.vector(b as usize));
        let near = |s: f32| (s - 0.9).abs() < 1e-5;
        for &(a, b, s) in &got {
            match want.get(&(a, b)) {
                Some(w) => assert!((s - w).abs() < 1e-5, "({a},{b}): {s} vs {w}"),
                None => assert!(near(naive(a, b)), "({a},{b}) is not a pair"),
            }
        }
        let found: std::collections::HashSet<(u64, u64)> =
            got.iter().map(|&(a, b, _)| (a, b)).collect();
        for (&(a, b), &w) in &want {
            assert!(
                found.contains(&(a, b)) || near(w),
                "({a},{b}) at {w} missed"
            );
        }
        assert!(got.iter().all(|&(a, b, s)| a < b && s >= 0.9));
    }
}
