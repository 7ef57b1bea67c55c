//! What every index answers: [`Hit`]s, best first, and the trait of the in-memory indexes,
//! [`NearestNeighbours`]. A leaf, so that each index's file uses it and not the module root.

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
