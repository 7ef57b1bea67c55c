//! HNSW (Malkov & Yashunin) through hnsw_rs, on normalised vectors.
//!
//! The distance is `max(0, 1 - dot)`: hnsw_rs's own `DistDot` asserts `1 - dot >= 0` (without
//! its `simdeez_f` feature) and panics when f32 rounding makes the dot product of two unit
//! vectors exceed 1 by an ulp. Clamping keeps the metric's order and never panics.

use std::path::Path;

use hnsw_rs::prelude::{AnnT, Distance, Hnsw};

use super::hit::{top_k, Hit, NearestNeighbours};
use crate::embedding::dot;
use crate::error::{Error, Result};
use crate::store::vectors::VectorSet;

/// Cosine distance for unit vectors, clamped at 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Graph parameters; the defaults reach recall@10 >= 0.95 on clustered data (tested).
#[derive(Clone, Copy, Debug)]
pub struct HnswParams {
    pub max_connections: usize,
    pub ef_construction: usize,
    /// Search breadth; raised to at least `2k` per query.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_connections: 16,
            ef_construction: 200,
            ef_search: 96,
        }
    }
}

pub struct HnswIndex {
    graph: Hnsw<'static, f32, UnitCosine>,
    params: HnswParams,
}

const MAX_LAYERS: usize = 16;

impl HnswIndex {
    /// Builds a graph over `set` (ids are file ids), inserting in parallel.
    pub fn build(set: &VectorSet, params: HnswParams) -> Self {
        let graph = Hnsw::new(
            params.max_connections,
            set.len().max(1),
            MAX_LAYERS,
            params.ef_construction,
            UnitCosine,
        );
        let data: Vec<(&[f32], usize)> = (0..set.len())
            .map(|i| (set.vector(i), set.ids[i] as usize))
            .collect();
        graph.parallel_insert_slice(&data);
        HnswIndex { graph, params }
    }

    /// Writes the graph into `dir` as hnsw_rs's two dump files; returns the basename used.
    pub fn dump_to(&self, dir: &Path, basename: &str) -> Result<String> {
        self.graph
            .file_dump(dir, basename)
            .map_err(|e| Error::System(format!("cannot dump the HNSW graph: {e}")))
    }
}

impl NearestNeighbours for HnswIndex {
    fn search(&self, query: &[f32], k: usize, keep: &(dyn Fn(u64) -> bool + Sync)) -> Vec<Hit> {
        if k == 0 {
            return Vec::new();
        }
        let ef = self.params.ef_search.max(2 * k);
        let filter = |id: &usize| keep(*id as u64);
        let found = self.graph.search_filter(query, k, ef, Some(&filter));
        let hits = found
            .into_iter()
            .map(|n| Hit {
                id: n.d_id as u64,
                score: 1.0 - n.distance,
            })
            .collect();
        top_k(hits, k)
    }

    fn len(&self) -> usize {
        self.graph.get_nb_point()
    }
}
