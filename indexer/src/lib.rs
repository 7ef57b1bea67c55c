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

pub mod pipeline;
pub mod publisher;
pub mod push;
mod reconcile;
mod upgrade;
pub mod walk;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clipsearch::model::ModelFiles;
use clipsearch::store::Store;
use serde::Serialize;

pub use clipsearch::Error;

/// How a run behaves.
#[derive(Clone, Debug)]
pub struct Options {
    pub roots: Vec<PathBuf>,
    /// Descend into hidden directories and index hidden files.
    pub hidden: bool,
    /// Images per model call.
    pub batch_size: usize,
    /// Threads that decode and preprocess while the model runs.
    pub decode_threads: usize,
    /// During a run, publish a view for readers at most this long after the last (see
    /// [`publisher`]).
    pub publish_interval: Duration,
}

impl Options {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Options {
            roots,
            hidden: false,
            // Measured on 69 real photos (median 4 MP), ViT-B/32, 2 cores: batch 8 with one
            // decoding thread per core ran at 6.4 images/s, against 5.1-6.1 for batch 16-32 or
            // a single decoding thread (`cargo bench -p clipsearch-cli --bench indexing`).
            batch_size: 8,
            decode_threads: cores.max(1),
            publish_interval: Duration::from_secs(30),
        }
    }
}

/// A file that could not be indexed.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub path: PathBuf,
    pub reason: String,
}

/// Where a run's time went. The stages overlap: decoding runs while the model does.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Reading, hashing, decoding and preprocessing, summed over the decoding threads.
    pub decode_cpu_seconds: f64,
    /// Loading the model and running it (wall time of the model thread).
    pub model_seconds: f64,
    /// Committing batches to the index (wall time).
    pub store_seconds: f64,
    /// Publishing views for readers, during the run and at its end.
    pub publish_seconds: f64,
    /// Views published.
    pub publications: usize,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Files added or updated (embedded, or sharing an already stored embedding).
    pub indexed: usize,
    /// Files already indexed with the same size and modification time.
    pub unchanged: usize,
    /// Files found under a new path whose content was indexed under a path now gone.
    pub moved: usize,
    /// Files gone from disk and dropped from the index.
    pub removed: usize,
    /// Files that could not be indexed (including unchanged ones that failed before).
    pub failed: usize,
    /// Indexed files whose metadata was read in this run without decoding them (an index
    /// built before metadata was recorded).
    pub metadata_read: usize,
    /// Images that went through the model in this run.
    pub embedded: usize,
    pub seconds: f64,
    /// The run was stopped (Ctrl-C) after committing its last batch.
    pub interrupted: bool,
    pub failures: Vec<Failure>,
    /// Files indexed, but whose metadata is damaged (what could be read is kept).
    pub warnings: Vec<Failure>,
    pub timings: Timings,
}

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
    let roots: Vec<PathBuf> = opts
        .roots
        .iter()
        .map(|r| {
            r.canonicalize().map_err(|e| Error::Io {
                path: r.clone(),
                source: e,
            })
        })
        .collect::<Result<_, _>>()?;

    progress.set_message("scanning");
    let walked = walk::walk(
        &roots,
        opts.hidden,
        &|f| matches!(store.file(&f.path), Ok(Some(r)) if r.size == f.size && r.mtime_ns == f.mtime_ns),
    );
    let mut raws_changed = 0;
    let mut work = Vec::new();
    let mut no_metadata = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::with_capacity(walked.images.len());
    for found in walked.images {
        seen.insert(found.path.clone());
        // The walk already looked this file up in the catalog.
        if found.unchanged {
            summary.unchanged += 1;
            // A RAW that appeared (or left) beside an unchanged rendered image.
            if store.set_raw(&found.path, found.raw.as_deref())? {
                raws_changed += 1;
            }
            if store.file(&found.path)?.is_some_and(|r| r.meta.is_none()) {
                no_metadata.push((found.path, found.mtime_ns));
            }
            continue;
        }
        if let Some(f) = store.failed(&found.path)? {
            if f.size == found.size && f.mtime_ns == found.mtime_ns {
                summary.failures.push(Failure {
                    path: found.path,
                    reason: f.reason,
                });
                continue;
            }
        }
        work.push(found);
    }
    for (path, reason) in &walked.errors {
        summary.failures.push(Failure {
            path: path.clone(),
            reason: reason.clone(),
        });
    }

    if !no_metadata.is_empty() {
        let (read, warnings) = upgrade::read_metadata(store, opts, no_metadata, progress, stop)?;
        summary.metadata_read = read;
        summary.warnings.extend(warnings);
    }

    let mut publisher = publisher::Publisher::new(opts.publish_interval);
    let outcome = pipeline::run(store, model, opts, work, progress, stop, &mut publisher)?;
    summary.warnings.extend(outcome.warnings.iter().cloned());
    summary.embedded = outcome.embedded;
    summary.failures.extend(outcome.failures);
    summary.interrupted = outcome.interrupted;
    summary.timings = outcome.timings.clone();

    if !summary.interrupted {
        // Files under the roots that the walk did not see are gone, except under directories
        // the walk could not read: an unmounted or unreadable folder must not empty the index.
        let unreadable: Vec<&PathBuf> = walked.errors.iter().map(|(p, _)| p).collect();
        let shielded = |p: &PathBuf| unreadable.iter().any(|u| p.starts_with(u));
        let mut removed_hashes: HashMap<[u8; 16], usize> = HashMap::new();
        let mut removed = 0;
        for root in &roots {
            let gone: Vec<(PathBuf, [u8; 16])> = store
                .files_under(root)
                .filter_map(|item| item.ok())
                .filter(|(p, _)| !seen.contains(p) && !shielded(p))
                .map(|(p, r)| (p, r.hash))
                .collect();
            for (path, hash) in gone {
                if store.remove_file(&path)?.is_some() {
                    *removed_hashes.entry(hash).or_default() += 1;
                    removed += 1;
                }
            }
            let stale: Vec<PathBuf> = store
                .failures_under(root)
                .filter_map(|item| item.ok())
                .filter(|(p, _)| !seen.contains(p) && !shielded(p))
                .map(|(p, _)| p)
                .collect();
            for path in stale {
                store.remove_file(&path)?;
            }
        }
        // A new path whose content left the index in this run was moved, not added.
        for hash in &outcome.reused_hashes {
            if let Some(n) = removed_hashes.get_mut(hash) {
                if *n > 0 {
                    *n -= 1;
                    summary.moved += 1;
                }
            }
        }
        summary.removed = removed - summary.moved;
        if removed > 0 {
            store.collect_garbage()?;
        }
        let changed =
            outcome.committed > 0 || removed > 0 || raws_changed > 0 || summary.metadata_read > 0;
        if changed || view_is_stale(store)? {
            progress.set_message("publishing");
            publisher.publish(store)?;
        }
        store.flush()?;
        summary.indexed = outcome.committed - summary.moved;
    } else {
        // Stopped: what was committed is published.
        if outcome.committed > 0 || summary.metadata_read > 0 {
            publisher.publish(store)?;
        }
        summary.indexed = outcome.committed;
    }
    summary.timings.publish_seconds = publisher.seconds;
    summary.timings.publications = publisher.count;
    summary.failed = summary.failures.len();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Whether readers see something other than the catalog: nothing published yet, or a view left
/// behind by a run that was killed, or published before failures were recorded or the model
/// changed (`--rebuild`).
fn view_is_stale(store: &Store) -> Result<bool, Error> {
    let Some(view) = clipsearch::store::view::read_manifest(store.path())? else {
        return Ok(store.model()?.is_some());
    };
    Ok(view.count != store.file_count()
        || view.failed != store.failure_count()
        || store.model()?.as_ref() != Some(&view.model)
        || store.max_id()? != view.max_id)
}
