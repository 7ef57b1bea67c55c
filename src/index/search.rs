//! The index queries use: the persisted snapshot (exact or HNSW) plus an exact scan of files
//! committed after it, with results checked against the catalog.

use std::time::Instant;

use super::{top_k, ExactIndex, Hit, HnswIndex, HnswParams, NearestNeighbours};
use crate::error::Result;
use crate::store::snapshot::{SnapshotInfo, VectorSet};
use crate::store::Store;

/// Collections at least this large get an HNSW graph; smaller ones are scanned exactly.
///
/// Measured on this project's 2-core reference machine at 100k x 512 (`benches/index.rs`): an
/// exact top-10 scan takes 21 ms, an HNSW search 8 ms; but building that graph takes 250-300 s,
/// the snapshot grows from 206 MB to 490 MB (hnsw_rs keeps its own copy of the vectors), and
/// loading it takes 1.5-2.3 s against 0.2 ms for the memory-mapped exact snapshot. A CLI query
/// loads the snapshot every time, so the exact scan wins on total latency well past 100k; the
/// graph pays off only for long-lived processes on larger collections. Exact search scales
/// linearly (~0.2 µs a vector): ~40 ms at 200k.
pub const HNSW_THRESHOLD: usize = 200_000;

pub struct SearchIndex {
    snapshot: Option<Box<dyn NearestNeighbours>>,
    /// Files committed after the snapshot (an interrupted run), scanned exactly.
    delta: ExactIndex,
}

impl SearchIndex {
    /// Loads the snapshot in force and the files committed after it.
    pub fn load(store: &Store) -> Result<Self> {
        let t = Instant::now();
        let info = store.snapshot_info()?;
        let dim = match (&info, store.model()?) {
            (Some(i), _) => i.dim,
            (None, Some(m)) => m.dim,
            (None, None) => 0,
        };
        let snapshot: Option<Box<dyn NearestNeighbours>> = match &info {
            None => None,
            Some(info) => Some(load_snapshot(store, info)?),
        };
        let mut delta = VectorSet::new(dim);
        // Everything when there is no snapshot yet (ids start at 0), else what came after it.
        let start = info.as_ref().map(|i| i.first_uncovered()).unwrap_or(0);
        for item in store.ids_from(start) {
            let (id, path) = item?;
            if let Some(rec) = store.file(&path)? {
                if let Some(v) = store.embedding(&rec.hash)? {
                    delta.push(id, &v);
                }
            }
        }
        tracing::debug!(
            snapshot = info.as_ref().map(|i| i.count).unwrap_or(0),
            delta = delta.len(),
            ms = t.elapsed().as_millis() as u64,
            "search index loaded"
        );
        Ok(SearchIndex {
            snapshot,
            delta: ExactIndex::new(delta),
        })
    }

    /// Vectors searchable (removed files not subtracted until the next snapshot).
    pub fn len(&self) -> usize {
        self.snapshot.as_ref().map(|s| s.len()).unwrap_or(0) + self.delta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best `k` live files accepted by `keep`, best first.
    pub fn search(
        &self,
        store: &Store,
        query: &[f32],
        k: usize,
        keep: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<Vec<Hit>> {
        let total = self.len();
        let mut want = k.saturating_add(16);
        loop {
            let mut hits = self.delta.search(query, want, keep);
            if let Some(s) = &self.snapshot {
                hits.extend(s.search(query, want, keep));
            }
            let fetched = hits.len();
            let mut live = Vec::with_capacity(hits.len());
            for h in top_k(hits, usize::MAX) {
                // A file removed after the snapshot was taken stays in it until the next one.
                if store.is_live(h.id)? {
                    live.push(h);
                }
            }
            if live.len() >= k || fetched < want || want >= total {
                live.truncate(k);
                return Ok(live);
            }
            want = want.saturating_mul(4);
        }
    }
}

fn load_snapshot(store: &Store, info: &SnapshotInfo) -> Result<Box<dyn NearestNeighbours>> {
    if let Some(basename) = &info.hnsw {
        match HnswIndex::load(store.path(), basename, HnswParams::default()) {
            Ok(h) => return Ok(Box::new(h)),
            Err(e) => tracing::warn!("{e}; searching exactly until the next index run rebuilds it"),
        }
    }
    Ok(Box::new(ExactIndex::new(store.load_vectors(info)?)))
}

/// Above this share of removed points still in the graph, it is rebuilt rather than extended.
const MAX_TOMBSTONE_SHARE: f64 = 0.1;

/// The previous snapshot's graph extended with the points it lacks, when that is cheaper than a
/// rebuild and leaves few removed points behind (they are filtered at query time).
fn extend_previous(store: &Store, set: &VectorSet) -> Option<HnswIndex> {
    let info = store.snapshot_info().ok()??;
    let basename = info.hnsw.as_ref()?;
    if info.dim != set.dim {
        return None;
    }
    let old = store.load_vectors(&info).ok()?;
    let live: std::collections::HashSet<u64> = set.ids.iter().copied().collect();
    let tombstones = old.ids.iter().filter(|id| !live.contains(id)).count();
    if tombstones as f64 > MAX_TOMBSTONE_SHARE * old.len().max(1) as f64 {
        return None;
    }
    let index = HnswIndex::load(store.path(), basename, HnswParams::default()).ok()?;
    let known: std::collections::HashSet<u64> = old.ids.iter().copied().collect();
    let new: Vec<usize> = (0..set.len())
        .filter(|&i| !known.contains(&set.ids[i]))
        .collect();
    index.insert(set, &new);
    tracing::info!(added = new.len(), tombstones, "HNSW graph extended");
    Some(index)
}

/// Writes a new snapshot of every catalogued file (with an HNSW graph at or above
/// `hnsw_threshold` files) and switches to it.
pub fn rebuild_snapshot(store: &Store, dim: usize, hnsw_threshold: usize) -> Result<SnapshotInfo> {
    let mut set = VectorSet::new(dim);
    for item in store.files() {
        let (_, rec) = item?;
        if let Some(v) = store.embedding(&rec.hash)? {
            set.push(rec.id, &v);
        }
    }
    let graph = if set.len() >= hnsw_threshold {
        let t = Instant::now();
        let graph = match extend_previous(store, &set) {
            Some(g) => g,
            None => HnswIndex::build(&set, HnswParams::default()),
        };
        tracing::info!(
            points = set.len(),
            secs = t.elapsed().as_secs_f32(),
            "HNSW ready"
        );
        Some(graph)
    } else {
        None
    };
    let dump = graph
        .as_ref()
        .map(|g| move |dir: &std::path::Path, name: &str| g.dump_to(dir, name));
    store.write_snapshot(
        &set,
        dump.as_ref()
            .map(|f| f as &crate::store::snapshot::HnswDump),
    )
}
