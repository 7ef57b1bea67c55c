//! Publishing: the writer turns what changed in its sled catalog into a new view (see
//! [`crate::store::view`]) and switches readers to it atomically.
//!
//! A publication costs what changed, not the library's size: the files committed since the
//! last one (their ids are above its highest, see the `ids` tree) are written with the small
//! tail segment into a new tail, and the removed ones go to the deleted list. Once the tail
//! holds [`tail_rows`] rows it is sealed and the next publication starts another; sealed segments
//! are merged in the background ([`crate::store::merge`]), dropping deleted rows, and a finished
//! merge is put in force by the next publication. A view is written afresh only for an index
//! without one, one of an older format, or one rebuilt with `--rebuild`.
//!
//! Vectors leave sled as they are published (see the `located` tree in [`crate::store`]), so
//! that the index keeps one copy of them: the segments.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::store::merge::tail_rows;
use crate::store::segment::{segment_file_name, write_segment, Segment};
use crate::store::view::{
    deleted_file_name, read_manifest, remove_unreferenced, write_deleted, write_manifest,
    DeletedRef, SegmentRef, View, ViewManifest, VIEW_FORMAT,
};
use crate::store::{ContentHash, FileRecord, Store};

/// Publishes what changed since the last view; returns the new manifest (None for an index
/// that never recorded a model, which has nothing to publish).
pub fn publish(store: &Store) -> Result<Option<ViewManifest>> {
    let t = Instant::now();
    let Some(model) = store.model()? else {
        return Ok(None);
    };
    let dir = store.path();
    let previous = read_manifest(dir).ok().flatten();
    let (earlier, damaged) = match previous.filter(|p| p.dim == model.dim) {
        Some(p) => match View::open_remains(dir, p) {
            Ok((v, damaged)) => (Some(v), damaged),
            Err(_) => (None, true),
        },
        None => (None, false),
    };
    if damaged {
        tracing::warn!(
            "part of the published view in {} is missing; publishing it afresh from what remains",
            dir.display()
        );
    }
    let same_model =
        |v: &View| serde_json::to_value(v.model()).ok() == serde_json::to_value(&model).ok();
    let incremental = match &earlier {
        Some(v) => {
            v.manifest().format >= 4 && same_model(v) && !damaged && !store.must_republish()?
        }
        None => false,
    };
    if !incremental {
        store.merges().cancel();
    }
    let generation = store.new_id()?;
    let removals = store.removals()?;
    let mut plan = Plan::default();
    match earlier.as_ref().filter(|_| incremental) {
        Some(v) => plan.incremental(store, v, &removals)?,
        None => plan.afresh(store, earlier.as_ref())?,
    }
    // The new tail (or the whole view), its vectors copied from the segments that hold them
    // or taken from sled's pending ones.
    let mut written: Vec<(ContentHash, u64)> = Vec::new();
    let mut lost: Vec<FileRecord> = Vec::new();
    if !plan.rows.is_empty() {
        let name = segment_file_name(generation);
        let (rows, max_id) = write_segment(dir, &name, model.dim, &plan.rows, |r| {
            if let Some(v) = earlier.as_ref().and_then(|v| v.physical_vector(r.id)) {
                return Ok(Some(v.to_vec()));
            }
            // An unreadable pending vector (its log damaged or deleted) is a lost one: the
            // file is embedded again by the next run, below.
            match store.pending(&r.hash) {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "a pending vector is unreadable"),
            }
            let found = store.located(&r.hash)?.and_then(|id| {
                earlier
                    .as_ref()
                    .and_then(|v| v.physical_vector(id))
                    .map(<[f32]>::to_vec)
            });
            if found.is_none() {
                lost.push(r.clone());
            }
            Ok(found)
        })?;
        written = plan
            .rows
            .iter()
            .filter(|(_, r)| !lost.iter().any(|l| l.id == r.id))
            .map(|(_, r)| (r.hash, r.id))
            .collect();
        if let Some(max_id) = max_id {
            plan.layout.push(SegmentRef {
                file: name,
                rows,
                max_id,
            });
        }
    }
    // Readers from here on see only the layout's segments: what the others held is dropped.
    let segments = plan
        .layout
        .iter()
        .map(|s| Segment::open(dir, &s.file, model.dim, s.rows))
        .collect::<Result<Vec<_>>>()?;
    let holds = |id: u64| {
        let s = plan.layout.partition_point(|r| r.max_id < id);
        segments
            .get(s)
            .is_some_and(|seg| seg.row_of_id(id).is_some())
    };
    let mut deleted: Vec<u64> = plan
        .deleted
        .iter()
        .copied()
        .filter(|&id| holds(id))
        .collect();
    deleted.sort_unstable();
    deleted.dedup();
    // Content whose vector only a dropped row held goes back to pending; content a written
    // row holds is located there unless it already is at a row that stays.
    let dropped: HashSet<u64> = plan.dropped.iter().map(|(id, _)| *id).collect();
    let deleted_set: HashSet<u64> = deleted.iter().copied().collect();
    let (mut to_pending, mut forget) = (Vec::new(), Vec::new());
    for (id, hash) in &plan.dropped {
        if store.located(hash)? == Some(*id) {
            match earlier.as_ref().and_then(|v| v.physical_vector(*id)) {
                Some(v) if store.refs(hash)? > 0 => to_pending.push((*hash, v.to_vec())),
                _ => forget.push(*hash),
            }
        }
    }
    let mut locate = Vec::new();
    for (hash, id) in written {
        let stays = |at: u64| !dropped.contains(&at) && !deleted_set.contains(&at) && holds(at);
        if !store.located(&hash)?.is_some_and(stays) {
            locate.push((hash, id));
        }
    }
    // A file whose vector is nowhere (its segment deleted by hand, say) leaves the catalog, so
    // that the next index run embeds it again instead of the view lacking it for good.
    for r in &lost {
        if let Some(path) = store.path_of(r.id)? {
            tracing::warn!(path = %path.display(), "its embedding is missing from the index; the next index run embeds it again");
            store.remove_file(&path)?;
        }
        if store.refs(&r.hash)? == 0 {
            forget.push(r.hash);
        }
    }
    store.relocate(&locate, &to_pending, &forget)?;
    let count = plan.layout.iter().map(|s| s.rows).sum::<usize>() - deleted.len();
    let deleted_ref = if deleted.is_empty() {
        None
    } else {
        let name = deleted_file_name(generation);
        write_deleted(dir, &name, &deleted)?;
        Some(DeletedRef {
            file: name,
            count: deleted.len(),
        })
    };
    let manifest = ViewManifest {
        format: VIEW_FORMAT,
        generation,
        file: String::new(),
        max_id: plan.layout.last().map(|s| s.max_id),
        segments: plan.layout.clone(),
        deleted: deleted_ref,
        count,
        dim: model.dim,
        graph: None,
        model: model.clone(),
        failed: store.failure_count(),
        published_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    write_manifest(dir, &manifest)?;
    // In force. What sled no longer needs goes: the removals the deleted list now holds, the
    // pending vectors a segment now holds, the legacy snapshot pointer of format 1.
    if !incremental {
        store.republished()?;
    }
    store.drop_removals(&removals)?;
    let mut published = Vec::new();
    for hash in store.pending_hashes()? {
        if store.located(&hash)?.is_some_and(holds) {
            published.push(hash);
        }
    }
    store.drop_pending(&published)?;
    store.rotate_pending()?;
    if store.meta_get("snapshot")?.is_some() {
        store.meta_remove("snapshot")?;
    }
    store.flush()?;
    drop(segments);
    drop(earlier);
    let view = Arc::new(View::open(dir, manifest.clone())?);
    store.set_published_view(Some(view.clone()));
    remove_unreferenced(dir, &[&manifest], &store.merges().output());
    store.merges().maybe_start(dir, store.new_id()?, &view);
    tracing::debug!(
        generation,
        count,
        segments = manifest.segments.len(),
        rows = plan.rows.len(),
        ms = t.elapsed().as_millis() as u64,
        "view published"
    );
    Ok(Some(manifest))
}

/// Publishes, then waits for background merges and publishes what they made, until none
/// runs: the end of an index run, which leaves the view compact.
pub fn publish_and_settle(store: &Store) -> Result<Option<ViewManifest>> {
    let mut manifest = publish(store)?;
    while store.merges().wait() {
        manifest = publish(store)?;
    }
    Ok(manifest)
}

/// What a publication writes: the segments it keeps, the rows of its new segment, the deleted
/// ids, and the rows (id, content) that the view stops holding.
#[derive(Default)]
struct Plan {
    layout: Vec<SegmentRef>,
    rows: Vec<(PathBuf, FileRecord)>,
    deleted: Vec<u64>,
    dropped: Vec<(u64, ContentHash)>,
}

impl Plan {
    /// The previous view's segments, a finished merge put in force, the tail rewritten with
    /// the new files.
    fn incremental(&mut self, store: &Store, v: &View, removals: &[u64]) -> Result<()> {
        self.layout = v.manifest().segments.clone();
        self.deleted = v.deleted().to_vec();
        self.deleted.extend(removals);
        if let Some(done) = store.merges().take_finished() {
            done.apply(&mut self.layout, &mut self.dropped);
        }
        let deleted: HashSet<u64> = self.deleted.iter().copied().collect();
        // The last segment is the tail while it is small (and not being merged); it must be
        // one of the view's own, whose rows are at hand.
        let tail = self
            .layout
            .last()
            .filter(|t| t.rows < tail_rows() && !store.merges().is_input(t));
        let tail_at = tail.and_then(|t| v.manifest().segments.iter().position(|r| r == t));
        if let Some(s) = tail_at {
            self.layout.pop();
            let seg = &v.segments()[s];
            for row in 0..seg.len() {
                let e = seg.entry(row);
                if deleted.contains(&e.record.id) {
                    self.dropped.push((e.record.id, e.record.hash));
                } else {
                    self.rows.push((e.path.to_path_buf(), e.record));
                }
            }
        }
        let start = v.manifest().max_id.map_or(0, |m| m + 1);
        for item in store.ids_from(start) {
            let (_, path) = item?;
            if let Some(r) = store.file(&path)? {
                self.rows.push((path, r));
            }
        }
        self.rows.sort_unstable_by_key(|(_, r)| r.id);
        Ok(())
    }

    /// One segment of every catalogued file; every row of the previous view that is not
    /// among them is dropped.
    fn afresh(&mut self, store: &Store, earlier: Option<&View>) -> Result<()> {
        self.rows = store.files().collect::<Result<_>>()?;
        self.rows.sort_unstable_by_key(|(_, r)| r.id);
        if let Some(v) = earlier {
            let kept: HashSet<u64> = self.rows.iter().map(|(_, r)| r.id).collect();
            for seg in v.segments() {
                for row in 0..seg.len() {
                    let id = seg.id(row);
                    if !kept.contains(&id) {
                        self.dropped.push((id, seg.record(row).hash));
                    }
                }
            }
        }
        Ok(())
    }
}
