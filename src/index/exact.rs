//! Exact search: a dot product with every vector.

use rayon::prelude::*;

use super::hit::{top_k, Hit, NearestNeighbours};
use crate::embedding::dot;
use crate::store::vectors::VectorSet;

pub struct ExactIndex {
    pub set: VectorSet,
}

impl ExactIndex {
    pub fn new(set: VectorSet) -> Self {
        ExactIndex { set }
    }
}

impl NearestNeighbours for ExactIndex {
    fn search(&self, query: &[f32], k: usize, keep: &(dyn Fn(u64) -> bool + Sync)) -> Vec<Hit> {
        scan(&self.set, query, k, keep)
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// The best `k` of `set` accepted by `keep`, by a dot product with every vector, read front to
/// back on every core.
pub(crate) fn scan(
    set: &VectorSet,
    query: &[f32],
    k: usize,
    keep: &(dyn Fn(u64) -> bool + Sync),
) -> Vec<Hit> {
    if k == 0 || set.is_empty() {
        return Vec::new();
    }
    let dim = set.dim;
    // Per-chunk top-k, then a final merge: memory stays O(k x chunks), not O(n).
    let partial: Vec<Vec<Hit>> = set
        .vectors()
        .par_chunks(dim * 4096)
        .enumerate()
        .map(|(c, block)| {
            let hits = block
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, v)| (c * 4096 + i, v))
                .filter(|(i, _)| keep(set.ids[*i]))
                .map(|(i, v)| Hit {
                    id: set.ids[i],
                    score: dot(query, v),
                })
                .collect();
            top_k(hits, k)
        })
        .collect();
    top_k(partial.into_iter().flatten().collect(), k)
}
