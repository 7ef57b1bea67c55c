//! Publishing: the writer turns its sled catalog into a new view (see [`crate::store::view`])
//! and switches readers to it atomically.

use std::time::Instant;

use super::{HnswIndex, HnswParams};
use crate::error::Result;
use crate::store::view::{
    hnsw_basename, read_manifest, remove_unreferenced, sync_dir, view_file_name, write_manifest,
    write_view_file, GraphRef, View, ViewManifest, VIEW_FORMAT,
};
use crate::store::{FileRecord, Store};

/// What a publication does about the HNSW graph.
#[derive(Clone, Copy, Debug)]
pub enum GraphPolicy {
    /// Keep the previous view's graph as it is (new files are scanned exactly): the periodic
    /// publications during a run, whose cost must stay small.
    Keep,
    /// At or above `threshold` files, bring the graph up to date: extend the previous one with
    /// the files it lacks, or build one when there is none or too many of its points are gone.
    /// Below it, no graph.
    Update { threshold: usize },
}

/// Above this share of removed points still in the graph, it is rebuilt rather than extended.
const MAX_TOMBSTONE_SHARE: f64 = 0.1;

/// Publishes the catalog as a new view; returns its manifest (None for an index that never
/// recorded a model, which has nothing to publish).
pub fn publish(store: &Store, policy: GraphPolicy) -> Result<Option<ViewManifest>> {
    let t = Instant::now();
    let Some(model) = store.model()? else {
        return Ok(None);
    };
    let dir = store.path();
    let previous = read_manifest(dir).ok().flatten();
    let generation = store.new_id()?;
    let mut rows: Vec<(std::path::PathBuf, FileRecord)> = store.files().collect::<Result<_>>()?;
    rows.sort_unstable_by_key(|(_, r)| r.id);
    // A file's id never outlives its content (a changed file is committed under a new id), so
    // the vectors the previous view holds can be copied from its mapping instead of read back
    // out of sled one by one: at 100k files, most of a publication's cost.
    let earlier = previous
        .as_ref()
        .filter(|p| p.dim == model.dim)
        .and_then(|p| View::open(dir, p.clone()).ok());
    let (count, max_id) = write_view_file(dir, generation, model.dim, &rows, |r| {
        if let Some(v) = &earlier {
            if let Some(row) = v.row_of_id(r.id) {
                return Ok(Some(v.vector(row).to_vec()));
            }
        }
        store.embedding(&r.hash)
    })?;
    drop(earlier);
    drop(rows);
    let mut manifest = ViewManifest {
        format: VIEW_FORMAT,
        generation,
        file: view_file_name(generation),
        count,
        dim: model.dim,
        max_id,
        graph: None,
        model: model.clone(),
        failed: store.failure_count(),
        published_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    // The previous graph is reusable only for vectors of the same model.
    let previous_graph = previous
        .as_ref()
        .filter(|p| p.model.fingerprint == model.fingerprint && p.model == model)
        .and_then(|p| p.graph.clone())
        .filter(|g| g.files().iter().all(|f| dir.join(f).exists()));
    manifest.graph = match policy {
        GraphPolicy::Keep => previous_graph,
        GraphPolicy::Update { threshold } if count >= threshold.max(1) => {
            let view = View::open(dir, manifest.clone())?;
            Some(update_graph(store, &view, previous_graph, generation)?)
        }
        GraphPolicy::Update { .. } => None,
    };
    write_manifest(dir, &manifest)?;
    // Legacy pointer of format 1 (the snapshot in sled): gone once a view exists.
    if store.meta_get("snapshot")?.is_some() {
        store.meta_remove("snapshot")?;
    }
    let keep: Vec<&ViewManifest> = std::iter::once(&manifest)
        .chain(previous.as_ref())
        .collect();
    remove_unreferenced(dir, &keep);
    tracing::debug!(
        generation,
        count,
        ms = t.elapsed().as_millis() as u64,
        "view published"
    );
    Ok(Some(manifest))
}

/// The graph for `view`: the previous one as it is, extended, or a new one.
fn update_graph(
    store: &Store,
    view: &View,
    previous: Option<GraphRef>,
    generation: u64,
) -> Result<GraphRef> {
    let set = view.vectors();
    let max_id = set.ids.last().copied().unwrap_or(0);
    let t = Instant::now();
    if let Some(g) = previous {
        let covered = set.ids.partition_point(|&id| id <= g.max_id);
        let tombstones = g.points.saturating_sub(covered);
        if tombstones as f64 <= MAX_TOMBSTONE_SHARE * g.points.max(1) as f64 {
            if covered == set.len() {
                return Ok(g);
            }
            match HnswIndex::load(store.path(), &g.basename, HnswParams::default()) {
                Ok(index) => {
                    let new: Vec<usize> = (covered..set.len()).collect();
                    index.insert(set, &new);
                    tracing::info!(added = new.len(), tombstones, "HNSW graph extended");
                    let basename = dump(store, &index, generation)?;
                    return Ok(GraphRef {
                        basename,
                        max_id,
                        points: g.points + new.len(),
                    });
                }
                Err(e) => tracing::warn!("{e}: building a new graph"),
            }
        }
    }
    let index = HnswIndex::build(set, HnswParams::default());
    tracing::info!(
        points = set.len(),
        secs = t.elapsed().as_secs_f32(),
        "HNSW graph built"
    );
    let basename = dump(store, &index, generation)?;
    Ok(GraphRef {
        basename,
        max_id,
        points: set.len(),
    })
}

fn dump(store: &Store, index: &HnswIndex, generation: u64) -> Result<String> {
    let dir = store.path();
    let basename = index.dump_to(dir, &hnsw_basename(generation))?;
    // hnsw_rs writes in place without syncing: the files must be durable before a manifest
    // names them.
    for suffix in ["hnsw.graph", "hnsw.data"] {
        if let Ok(f) = std::fs::File::open(dir.join(format!("{basename}.{suffix}"))) {
            let _ = f.sync_all();
        }
    }
    sync_dir(dir);
    Ok(basename)
}
