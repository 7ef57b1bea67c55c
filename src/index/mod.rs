//! Nearest-neighbour search over normalised embeddings, where the score is the dot product
//! (cosine similarity), as qdrant does it.
//!
//! Two implementations of one trait, [`NearestNeighbours`]: [`ExactIndex`] scans every vector
//! (exact, and faster than any graph below a few tens of thousands of vectors, with no build
//! cost) and [`HnswIndex`] (hnsw_rs) for large collections. [`SearchIndex`] is what queries use:
//! a published view (see [`crate::store::view`]), through its graph where it has one and
//! exactly for the files the graph does not cover. [`publish`] is how the writer makes one.

mod exact;
mod hnsw;
mod pairs;
mod publish;
mod search;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams, UnitCosine};
pub use pairs::pairs_above;
pub use publish::{publish, GraphPolicy};
pub use search::{SearchIndex, FILTERED_SCAN_ROWS, HNSW_THRESHOLD};

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub id: u64,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// Top-k search by cosine similarity.
pub trait NearestNeighbours: Send + Sync {
    /// The best `k` points accepted by `keep`, best first.
    fn search(&self, query: &[f32], k: usize, keep: &(dyn Fn(u64) -> bool + Sync)) -> Vec<Hit>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps the best `k` hits, best first; ties broken by id for stable output.
pub(crate) fn top_k(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(k);
    hits
}
