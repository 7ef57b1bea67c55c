//! Publishing: the writer turns its sled catalog into a new view (see [`crate::store::view`])
//! and switches readers to it atomically.

use std::time::Instant;

use crate::error::Result;
use crate::store::view::{
    read_manifest, remove_unreferenced, view_file_name, write_manifest, write_view_file, View,
    ViewManifest, VIEW_FORMAT,
};
use crate::store::{FileRecord, Store};

/// Publishes the catalog as a new view; returns its manifest (None for an index that never
/// recorded a model, which has nothing to publish).
pub fn publish(store: &Store) -> Result<Option<ViewManifest>> {
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
    let manifest = ViewManifest {
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
    write_manifest(dir, &manifest)?;
    // Legacy pointer of format 1 (the snapshot in sled): gone once a view exists.
    if store.meta_get("snapshot")?.is_some() {
        store.meta_remove("snapshot")?;
    }
    // The previous generation goes at once (and with it any HNSW graph an older clipsearch
    // published): a reader that holds it open keeps its mapped pages, and one that read the
    // old manifest but not yet the file finds it gone and reads the manifest again.
    remove_unreferenced(dir, &[&manifest]);
    tracing::debug!(
        generation,
        count,
        ms = t.elapsed().as_millis() as u64,
        "view published"
    );
    Ok(Some(manifest))
}
