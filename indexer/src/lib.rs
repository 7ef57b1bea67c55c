//! # clipsearch-indexer: photo folders into a clipsearch index
//!
//! One run: walk the roots ([`walk`]); sort every image into unchanged (same path, size and
//! mtime: a stat, nothing more), previously failed and unchanged (not retried), or work; do the
//! work in a pipeline ([`pipeline`]); then drop the catalogued files under the roots that are
//! gone, and publish a new view for readers.
//!
//! Readers never wait for a run: they search the last published view, and a run publishes one
//! periodically while it works ([`publisher`]) and at its end, so a search during a long first
//! run sees what is done so far.
//!
//! The pipeline overlaps decoding with the model: a dedicated rayon pool reads, hashes, decodes
//! and preprocesses files and feeds a bounded channel; the model thread embeds them in batches
//! and commits each batch atomically. Content that the index already has (a moved, renamed or
//! duplicated file) is never decoded or embedded again. Memory is bounded by the channel, the
//! batch and the pool, whatever the collection size.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use clipsearch::model::{resolve, ModelIdentity};
//! use clipsearch::store::Store;
//! use clipsearch_indexer::{index, Options};
//! let files = resolve("openai/clip-vit-base-patch32")?;
//! let store = Store::open("index".as_ref(), Some(&ModelIdentity::of(&files)?))?;
//! let opts = Options::new(vec!["/home/me/Pictures".into()]);
//! let summary = index(&store, &files, &opts, &indicatif::ProgressBar::hidden(), &AtomicBool::new(false))?;
//! println!("{} new, {} unchanged", summary.indexed, summary.unchanged);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod options;
pub mod pipeline;
pub mod publisher;
pub mod push;
mod reconcile;
mod summary;
mod upgrade;
pub mod walk;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clipsearch::model::ModelFiles;
use clipsearch::store::{ContentHash, Store};

use publisher::Publisher;
use walk::Found;

pub use clipsearch::Error;
pub use options::Options;
pub use summary::{Failure, Summary, Timings};

/// Indexes `opts.roots` into `store` with the model in `model`.
pub fn index(
    store: &Store,
    model: &ModelFiles,
    opts: &Options,
    progress: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut plan = scan(store, opts, progress, &mut summary)?;

    if !plan.no_metadata.is_empty() {
        let files = std::mem::take(&mut plan.no_metadata);
        let (read, warnings) = upgrade::read_metadata(store, opts, files, progress, stop)?;
        summary.metadata_read = read;
        summary.warnings.extend(warnings);
    }

    let mut publisher = Publisher::new(opts.publish_interval);
    let work = std::mem::take(&mut plan.work);
    let outcome = pipeline::run(store, model, opts, work, progress, stop, &mut publisher)?;
    summary.warnings.extend(outcome.warnings.iter().cloned());
    summary.embedded = outcome.embedded;
    summary.failures.extend(outcome.failures.iter().cloned());
    summary.interrupted = outcome.interrupted;
    summary.timings = outcome.timings.clone();

    if !summary.interrupted {
        finish(
            store,
            &plan,
            &outcome,
            &mut summary,
            &mut publisher,
            progress,
        )?;
    } else {
        finish_stopped(store, &outcome, &mut summary, &mut publisher)?;
    }
    summary.timings.publish_seconds = publisher.seconds;
    summary.timings.publications = publisher.count;
    summary.failed = summary.failures.len();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The end of a run that went through all its work: drops what is gone, tells moved files from
/// added ones, and publishes whenever readers' view differs from the catalog.
fn finish(
    store: &Store,
    plan: &Plan,
    outcome: &pipeline::Outcome,
    summary: &mut Summary,
    publisher: &mut Publisher,
    progress: &indicatif::ProgressBar,
) -> Result<(), Error> {
    let gone = remove_gone(store, plan)?;
    summary.moved = count_moved(&outcome.reused_hashes, gone.hashes);
    summary.removed = gone.files - summary.moved;
    if gone.files > 0 {
        store.collect_garbage()?;
    }
    let changed = outcome.committed > 0
        || gone.files > 0
        || plan.raws_changed > 0
        || summary.metadata_read > 0;
    if changed || view_is_stale(store)? {
        progress.set_message("publishing");
        publisher.publish_final(store)?;
    }
    store.flush()?;
    summary.indexed = outcome.committed - summary.moved;
    Ok(())
}

/// The end of a stopped run: what was committed is published. Nothing is dropped, and no file
/// counts as moved: the files the run did not reach may be the new paths of gone ones, which
/// would reuse their stored embeddings.
fn finish_stopped(
    store: &Store,
    outcome: &pipeline::Outcome,
    summary: &mut Summary,
    publisher: &mut Publisher,
) -> Result<(), Error> {
    if outcome.committed > 0 || summary.metadata_read > 0 {
        publisher.publish(store)?;
    }
    summary.indexed = outcome.committed;
    Ok(())
}

/// Walks the roots and sorts what the walk found against the catalog.
fn scan(
    store: &Store,
    opts: &Options,
    progress: &indicatif::ProgressBar,
    summary: &mut Summary,
) -> Result<Plan, Error> {
    let roots = canonical_roots(&opts.roots)?;
    progress.set_message("scanning");
    let walked = walk::walk(
        &roots,
        opts.hidden,
        &|f| matches!(store.file(&f.path), Ok(Some(r)) if r.size == f.size && r.mtime_ns == f.mtime_ns),
    );
    plan(store, roots, walked, summary)
}

fn canonical_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    roots
        .iter()
        .map(|r| {
            r.canonicalize().map_err(|e| Error::Io {
                path: r.clone(),
                source: e,
            })
        })
        .collect()
}

/// What the walk found, sorted against the catalog.
struct Plan {
    /// The roots walked, canonical.
    roots: Vec<PathBuf>,
    /// New and changed files, for the pipeline.
    work: Vec<Found>,
    /// Unchanged files whose records lack metadata, with their mtimes.
    no_metadata: Vec<(PathBuf, i64)>,
    /// Every image the walk saw: a catalogued file under the roots that is not here is gone.
    seen: HashSet<PathBuf>,
    /// What the walk could not read: nothing under these counts as gone.
    unreadable: Vec<PathBuf>,
    /// Unchanged files whose RAW appeared or left.
    raws_changed: usize,
}

/// Sorts the walk's images into unchanged, failed before and unchanged, and work; counts the
/// unchanged ones, and reports the failed ones and what the walk could not read, in `summary`.
fn plan(
    store: &Store,
    roots: Vec<PathBuf>,
    walked: walk::Walk,
    summary: &mut Summary,
) -> Result<Plan, Error> {
    let mut plan = Plan {
        roots,
        work: Vec::new(),
        no_metadata: Vec::new(),
        seen: HashSet::with_capacity(walked.images.len()),
        unreadable: Vec::new(),
        raws_changed: 0,
    };
    for found in walked.images {
        plan.seen.insert(found.path.clone());
        // The walk already looked this file up in the catalog.
        if found.unchanged {
            summary.unchanged += 1;
            plan.unchanged(store, found)?;
        } else if let Some(reason) = failed_before(store, &found)? {
            summary.failures.push(Failure {
                path: found.path,
                reason,
            });
        } else {
            plan.work.push(found);
        }
    }
    for (path, reason) in &walked.errors {
        summary.failures.push(Failure {
            path: path.clone(),
            reason: reason.clone(),
        });
    }
    plan.unreadable = walked.errors.into_iter().map(|(p, _)| p).collect();
    Ok(plan)
}

impl Plan {
    /// An unchanged file is not read, but its record may still need what this run can give it.
    fn unchanged(&mut self, store: &Store, found: Found) -> Result<(), Error> {
        // A RAW that appeared (or left) beside an unchanged rendered image.
        if store.set_raw(&found.path, found.raw.as_deref())? {
            self.raws_changed += 1;
        }
        if store.file(&found.path)?.is_some_and(|r| r.meta.is_none()) {
            self.no_metadata.push((found.path, found.mtime_ns));
        }
        Ok(())
    }
}

/// Why `found` failed in an earlier run, if it has not changed since: it is not retried until
/// it does.
fn failed_before(store: &Store, found: &Found) -> Result<Option<String>, Error> {
    Ok(store
        .failed(&found.path)?
        .filter(|f| f.size == found.size && f.mtime_ns == found.mtime_ns)
        .map(|f| f.reason))
}

/// The catalogued files a run dropped.
struct Gone {
    files: usize,
    /// How many of them held each content.
    hashes: HashMap<ContentHash, usize>,
}

/// Drops the catalogued files, and the recorded failures, under the roots that the walk did
/// not see.
fn remove_gone(store: &Store, plan: &Plan) -> Result<Gone, Error> {
    // Except under directories the walk could not read: an unmounted or unreadable folder must
    // not empty the index.
    let shielded = |p: &PathBuf| plan.unreadable.iter().any(|u| p.starts_with(u));
    let is_gone = |p: &PathBuf| !plan.seen.contains(p) && !shielded(p);
    let mut gone = Gone {
        files: 0,
        hashes: HashMap::new(),
    };
    for root in &plan.roots {
        let files: Vec<(PathBuf, ContentHash)> = store
            .files_under(root)
            .filter_map(|item| item.ok())
            .filter(|(p, _)| is_gone(p))
            .map(|(p, r)| (p, r.hash))
            .collect();
        for (path, hash) in files {
            if store.remove_file(&path)?.is_some() {
                *gone.hashes.entry(hash).or_default() += 1;
                gone.files += 1;
            }
        }
        let stale: Vec<PathBuf> = store
            .failures_under(root)
            .filter_map(|item| item.ok())
            .filter(|(p, _)| is_gone(p))
            .map(|(p, _)| p)
            .collect();
        for path in stale {
            store.remove_file(&path)?;
        }
    }
    Ok(gone)
}

/// How many of the files committed with stored content were moved rather than added: a new
/// path whose content left the index in this run was moved, once per copy that left.
fn count_moved(reused: &[ContentHash], mut gone: HashMap<ContentHash, usize>) -> usize {
    let mut moved = 0;
    for hash in reused {
        if let Some(n) = gone.get_mut(hash) {
            if *n > 0 {
                *n -= 1;
                moved += 1;
            }
        }
    }
    moved
}

/// Whether readers see something other than the catalog: nothing published yet, or a view left
/// behind by a run that was killed, or published before failures were recorded or the model
/// changed (`--rebuild`).
fn view_is_stale(store: &Store) -> Result<bool, Error> {
    let Some(view) = clipsearch::store::view::read_manifest(store.path())? else {
        return Ok(store.model()?.is_some());
    };
    // An older view format is published again (since format 4 the vectors leave sled).
    Ok(view.format < clipsearch::store::view::VIEW_FORMAT
        || view.count != store.file_count()
        || view.failed != store.failure_count()
        || store.model()?.as_ref() != Some(&view.model)
        || store.max_id()? != view.max_id)
}
