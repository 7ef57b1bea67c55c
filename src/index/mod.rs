//! Nearest-neighbour search over normalised embeddings, where the score is the dot product
//! (cosine similarity), as qdrant does it.
//!
//! [`SearchIndex`] is what queries use: a published view (see [`crate::store::view`]), scanned
//! through its binary codes and rescored exactly when it is large, exactly when it is small;
//! it reads nothing whole on open, so a query process costs the same at any size. [`publish`]
//! is how the writer makes a view. Two in-memory implementations of one trait,
//! [`NearestNeighbours`], serve work on vector sets that are not views: [`ExactIndex`] and
//! [`HnswIndex`] (hnsw_rs's graph, which the scale benchmark races against the codes).

mod exact;
mod hnsw;
mod pairs;
mod publish;
mod search;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams, UnitCosine};
pub use pairs::pairs_above;
pub use publish::publish;
pub use search::{SearchIndex, EXACT_SCAN_ROWS, MIN_CODE_BITS, RESCORE_MIN, RESCORE_PER_RESULT};

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
