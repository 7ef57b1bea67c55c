//! Background merges of sealed segments, in the manner of tantivy's and qdrant's segment
//! merges: the writer's publications stay as cheap as what changed, while a thread rewrites
//! full segments into larger ones and drops their deleted rows. A merge reads only immutable
//! segment files and writes a new one under a name no manifest uses yet; the next publication
//! puts it in force (or a cancelled one is left for the next publication to delete), so a
//! merge changes nothing readers see until then and a kill at any moment loses nothing.
//!
//! Policy (tiered): [`FACTOR`] consecutive sealed segments of one size tier (tier `t` holds
//! `TAIL_ROWS x FACTOR^t` rows up to `FACTOR` times that) merge into one of the next tier, the
//! lowest tier first; a segment whose deleted rows reach [`DEAD_SHARE`] of it is rewritten on
//! its own. Every row is rewritten about `log_FACTOR(files / TAIL_ROWS)` times over the
//! library's life, and a million files make at most a few segments per tier.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::record::{ContentHash, FileRecord};
use super::segment::{segment_file_name, write_segment};
use super::view::{SegmentRef, View};
use crate::error::{Error, Result};

/// A tail segment smaller than this is rewritten with the new files at each publication; at
/// this size it is sealed. At 512 dimensions 32,768 rows are 64 MB: a bound on what one
/// publication writes besides the new files, and, with [`FACTOR`], on how many segments a
/// search visits (a few per factor of four in size).
pub const TAIL_ROWS: usize = 32_768;

/// [`TAIL_ROWS`], or `CLIPSEARCH_SEGMENT_ROWS` when set (read once): a tuning knob, and how
/// tests reach many segments with few files.
pub fn tail_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        std::env::var("CLIPSEARCH_SEGMENT_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(TAIL_ROWS)
    })
}

/// Segments of one tier merged at once.
pub const FACTOR: usize = 4;
/// The share of deleted rows at which a sealed segment is rewritten without them.
pub const DEAD_SHARE: f64 = 0.25;

/// A merge in progress.
pub struct Merge {
    inputs: Vec<SegmentRef>,
    output: String,
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<Result<Merged>>,
}

/// A finished merge: the segment that replaces `inputs` (None when every row was deleted),
/// and the rows (id, content) it dropped.
pub(crate) struct Merged {
    inputs: Vec<SegmentRef>,
    output: Option<SegmentRef>,
    dropped: Vec<(u64, ContentHash)>,
}

impl Merged {
    /// Replaces the inputs in `layout` by the output, if they are all still there in a row
    /// (a layout written afresh meanwhile makes the merge moot: it is discarded).
    pub(crate) fn apply(self, layout: &mut Vec<SegmentRef>, dropped: &mut Vec<(u64, ContentHash)>) {
        let n = self.inputs.len();
        let Some(at) = layout.windows(n).position(|w| w == self.inputs.as_slice()) else {
            return;
        };
        layout.splice(at..at + n, self.output);
        dropped.extend(self.dropped);
    }
}

/// The writer's merge slot: at most one merge runs at a time.
#[derive(Default)]
pub struct Merges(std::sync::Mutex<Option<Merge>>);

impl Merges {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Merge>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the running merge reads `segment`.
    pub(crate) fn is_input(&self, segment: &SegmentRef) -> bool {
        self.slot()
            .as_ref()
            .is_some_and(|m| m.inputs.contains(segment))
    }

    /// The file the running merge writes (which a publication must not delete).
    pub(crate) fn output(&self) -> Vec<String> {
        self.slot().iter().map(|m| m.output.clone()).collect()
    }

    /// The merge that finished, if one did (a failed one is logged and forgotten).
    pub(crate) fn take_finished(&self) -> Option<Merged> {
        let mut slot = self.slot();
        if !slot.as_ref()?.handle.is_finished() {
            return None;
        }
        let merge = slot.take()?;
        match merge.handle.join() {
            Ok(Ok(done)) => Some(done),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a background merge of segments failed; the segments stay as they were");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "a background merge of segments panicked; the segments stay as they were"
                );
                None
            }
        }
    }

    /// Waits for the running merge to finish; false if none runs.
    pub(crate) fn wait(&self) -> bool {
        let slot = self.slot();
        let Some(m) = slot.as_ref() else {
            return false;
        };
        while !m.handle.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    /// Stops the running merge (its output is left for the next publication to delete).
    pub fn cancel(&self) {
        let Some(m) = self.slot().take() else {
            return;
        };
        m.cancel.store(true, Ordering::Relaxed);
        let _ = m.handle.join();
    }

    /// Starts a merge of `view`'s segments in `dir` if the policy asks for one and none runs;
    /// `generation` names its output.
    pub(crate) fn maybe_start(&self, dir: &std::path::Path, generation: u64, view: &Arc<View>) {
        let mut slot = self.slot();
        if slot.is_some() {
            return;
        }
        let Some(range) = plan(view) else {
            return;
        };
        let inputs = view.manifest().segments[range.clone()].to_vec();
        let output = segment_file_name(generation);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = {
            let (view, dir, output, cancel) = (
                view.clone(),
                dir.to_path_buf(),
                output.clone(),
                cancel.clone(),
            );
            let inputs = inputs.clone();
            move || run(&view, range, inputs, &dir, &output, &cancel)
        };
        let handle = std::thread::Builder::new()
            .name("clipsearch-merge".into())
            .spawn(job);
        match handle {
            Ok(handle) => {
                tracing::debug!(segments = inputs.len(), %output, "merge started");
                *slot = Some(Merge {
                    inputs,
                    output,
                    cancel,
                    handle,
                });
            }
            Err(e) => tracing::warn!(error = %e, "could not start a merge of segments"),
        }
    }
}

/// The segments to merge next, if any (see the module's policy).
fn plan(view: &View) -> Option<Range<usize>> {
    let segs = &view.manifest().segments;
    let sealed = match segs.last() {
        Some(t) if t.rows < tail_rows() => segs.len() - 1,
        _ => segs.len(),
    };
    let mut dead = vec![0usize; sealed];
    for &id in view.deleted() {
        if let Some((s, _)) = view.physical(id) {
            if s < sealed {
                dead[s] += 1;
            }
        }
    }
    if let Some(s) =
        (0..sealed).find(|&s| dead[s] > 0 && dead[s] as f64 >= DEAD_SHARE * segs[s].rows as f64)
    {
        return Some(s..s + 1);
    }
    let tier = |rows: usize| {
        let (mut t, mut cap) = (0, tail_rows() * FACTOR);
        while rows >= cap {
            t += 1;
            cap = cap.saturating_mul(FACTOR);
        }
        t
    };
    (0..(sealed + 1).saturating_sub(FACTOR))
        .filter(|&i| {
            let t = tier(segs[i].rows);
            (i..i + FACTOR).all(|j| tier(segs[j].rows) == t)
        })
        .min_by_key(|&i| tier(segs[i].rows))
        .map(|i| i..i + FACTOR)
}

/// The merge itself: the live rows of `range`, in id order, into `output`.
fn run(
    view: &View,
    range: Range<usize>,
    inputs: Vec<SegmentRef>,
    dir: &std::path::Path,
    output: &str,
    cancel: &AtomicBool,
) -> Result<Merged> {
    let deleted = view.deleted();
    let mut rows: Vec<(PathBuf, FileRecord)> = Vec::new();
    let mut dropped = Vec::new();
    for seg in &view.segments()[range] {
        for row in 0..seg.len() {
            let e = seg.entry(row);
            if deleted.binary_search(&e.record.id).is_ok() {
                dropped.push((e.record.id, e.record.hash));
            } else {
                rows.push((e.path.to_path_buf(), e.record));
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Store("merge cancelled".into()));
        }
    }
    let (count, max_id) = write_segment(dir, output, view.dim(), &rows, |r| {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Store("merge cancelled".into()));
        }
        Ok(view.physical_vector(r.id).map(<[f32]>::to_vec))
    })?;
    Ok(Merged {
        inputs,
        output: max_id.map(|max_id| SegmentRef {
            file: output.to_string(),
            rows: count,
            max_id,
        }),
        dropped,
    })
}
