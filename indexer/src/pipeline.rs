//! The decode → embed → commit pipeline.
//!
//! Decoding runs on its own rayon pool: candle's matrix kernels use the global pool, and a
//! decoder blocked on a full channel must never hold a thread the model is waiting for. The
//! channel is bounded, so at most `2 x batch + decode threads` preprocessed images exist at once
//! (plus the batch being embedded): memory does not grow with the collection.
//!
//! The two stages meet at that channel: `decode` turns each file into a `Prepared` on the pool,
//! and the model thread's `Committer` gathers them into batches, embeds the new content and
//! commits each batch.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use clipsearch::metadata::PhotoMeta;
use clipsearch::model::{ClipConfig, ClipModel, ModelFiles, Precision, Towers};
use clipsearch::preprocess::{PreprocessConfig, Preprocessor};
use clipsearch::store::{content_hash, ContentHash, FailedRecord, FileRecord, NewEntry, Store};
use clipsearch::Error;
use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;

use crate::options::Options;
use crate::publisher::Publisher;
use crate::summary::Failure;
use crate::walk::Found;

/// A file after the decode stage.
enum Prepared {
    /// New content: to be embedded.
    Embed {
        found: Found,
        hash: ContentHash,
        dims: (u32, u32),
        meta: Read,
        pixels: Vec<f32>,
    },
    /// Content the index already holds.
    Reuse {
        found: Found,
        hash: ContentHash,
        dims: (u32, u32),
        meta: Read,
    },
    Failed {
        found: Found,
        reason: String,
        /// Remembered in the index (not retried until the file changes); false for a format
        /// this build cannot decode, which a build that can should pick up.
        remember: bool,
    },
}

type Read = clipsearch::metadata::ReadOutcome;

fn prepare(found: Found, store: &Store, pre: &Preprocessor) -> Prepared {
    let bytes = match std::fs::read(&found.path) {
        Ok(b) => b,
        Err(e) => {
            return Prepared::Failed {
                found,
                reason: format!("cannot read: {e}"),
                remember: true,
            }
        }
    };
    let hash = content_hash(&bytes);
    // From the bytes already in memory: no second read of the file.
    let meta = clipsearch::metadata::read(&found.path, &bytes, found.mtime_ns);
    if let Ok(true) = store.has_embedding(&hash) {
        // Header parsing is decoder code too: a panic in it must not escape.
        let dims = clipsearch::preprocess::decode::contain_panics(&found.path, || {
            Ok(image::ImageReader::new(Cursor::new(&bytes))
                .with_guessed_format()
                .ok()
                .and_then(|r| r.into_dimensions().ok())
                .unwrap_or((0, 0)))
        })
        .unwrap_or((0, 0));
        return Prepared::Reuse {
            found,
            hash,
            dims,
            meta,
        };
    }
    match pre.decode(&found.path, &bytes) {
        Ok(rgb) => {
            let (w, h) = rgb.dimensions();
            let pixels = pre.pixels_to_tensor_data(rgb.as_raw(), w as usize, h as usize);
            Prepared::Embed {
                found,
                hash,
                dims: (w, h),
                meta,
                pixels,
            }
        }
        Err(e) => Prepared::Failed {
            remember: !matches!(e, Error::UnsupportedFormat { .. }),
            reason: match e {
                Error::Image { reason, .. } | Error::UnsupportedFormat { reason, .. } => reason,
                other => other.to_string(),
            },
            found,
        },
    }
}

/// What the pipeline did.
#[derive(Default)]
pub struct Outcome {
    /// Catalog entries written.
    pub committed: usize,
    pub embedded: usize,
    /// Hashes of files committed without a model run (candidates for "moved").
    pub reused_hashes: Vec<ContentHash>,
    pub failures: Vec<Failure>,
    /// Files indexed whose metadata is damaged (what could be read was kept).
    pub warnings: Vec<Failure>,
    pub interrupted: bool,
    pub timings: crate::summary::Timings,
}

struct Batch {
    /// Images to embed, in order.
    embed: Vec<(Found, ContentHash, (u32, u32), PhotoMeta)>,
    pixels: Vec<f32>,
    /// Entries whose embedding is stored already or computed in this batch.
    ready: Vec<NewEntry>,
    failed: Vec<(PathBuf, FailedRecord)>,
    /// Hash → position in `embed`, so that duplicates inside a batch are embedded once.
    pending: HashMap<ContentHash, usize>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            embed: Vec::new(),
            pixels: Vec::new(),
            ready: Vec::new(),
            failed: Vec::new(),
            pending: HashMap::new(),
        }
    }
    fn len(&self) -> usize {
        self.embed.len() + self.ready.len() + self.failed.len()
    }
    /// A batch is full when the model has a batch's worth to embed, or when enough files that
    /// need no model (shared content, failures) have gathered: a run of those still commits,
    /// and shows progress, as it goes.
    fn is_full(&self, batch_size: usize) -> bool {
        self.embed.len() >= batch_size || self.ready.len() + self.failed.len() >= 256
    }
}

fn entry(
    store: &Store,
    found: Found,
    hash: ContentHash,
    dims: (u32, u32),
    meta: PhotoMeta,
    embedding: Option<Vec<f32>>,
) -> Result<NewEntry, Error> {
    Ok(NewEntry {
        record: FileRecord {
            id: store.new_id()?,
            size: found.size,
            mtime_ns: found.mtime_ns,
            hash,
            width: dims.0,
            height: dims.1,
            raw: found.raw,
            meta: Some(meta),
        },
        path: found.path,
        embedding,
    })
}

/// Decoding threads yield to the model's: the model's matrix products are split across every core
/// and wait for their slowest part, so a decoder holding a core stalls the whole product, while
/// a decoder that only fills the gaps (the model's single-threaded steps, the waits between
/// batches) costs the model nothing. `CLIPSEARCH_DECODE_NICE=0` leaves them at normal priority,
/// for comparing the two with `cargo bench -p clipsearch-cli --bench indexing`.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("CLIPSEARCH_DECODE_NICE").is_none_or(|v| v != "0") {
        // SAFETY: setpriority on the calling thread (Linux: `who` 0 with PRIO_PROCESS is the
        // calling thread); failure only leaves the priority as it was.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        }
    }
}

/// Runs the pipeline over `work`.
pub fn run(
    store: &Store,
    files: &ModelFiles,
    opts: &Options,
    work: Vec<Found>,
    progress: &indicatif::ProgressBar,
    stop: &AtomicBool,
    publisher: &mut Publisher,
) -> Result<Outcome, Error> {
    if work.is_empty() {
        return Ok(Outcome::default());
    }
    let (pre, precision) = embedding_mode(store, files)?;
    let batch_size = opts.batch_size.max(1);
    progress.set_length(work.len() as u64);
    progress.set_position(0);
    progress.set_message("indexing");
    let pool = decode_pool(opts.decode_threads)?;
    let (tx, rx) = crossbeam_channel::bounded::<Prepared>(2 * batch_size);
    let decode_ns = AtomicU64::new(0);
    let mut committer = Committer {
        store,
        embedder: Embedder {
            files,
            precision,
            model: None,
        },
        progress,
        publisher,
        batch_size,
        batch: Batch::new(),
        outcome: Outcome::default(),
    };
    std::thread::scope(|scope| -> Result<(), Error> {
        let (pre, decode_ns) = (&pre, &decode_ns);
        scope.spawn(move || decode(pool, work, tx, store, pre, stop, decode_ns));
        committer.consume(rx, stop)
    })?;
    let mut outcome = committer.outcome;
    outcome.interrupted = stop.load(Ordering::Relaxed);
    outcome.timings.decode_cpu_seconds = decode_ns.load(Ordering::Relaxed) as f64 / 1e9;
    Ok(outcome)
}

/// The preprocessing and precision to embed with. The index says how its images were embedded
/// (exact or fast mode); every run, and a watcher's, must embed the same way.
fn embedding_mode(store: &Store, files: &ModelFiles) -> Result<(Preprocessor, Precision), Error> {
    let config = ClipConfig::from_file(&files.config())?;
    let pre_config =
        PreprocessConfig::from_file_or(&files.preprocessor(), config.default_preprocess())?;
    let (scaled, precision) = match store.model()? {
        Some(m) => (m.scaled_decode(), m.precision()),
        None => (false, Precision::F32),
    };
    let pre = if scaled {
        Preprocessor::fast(pre_config)
    } else {
        Preprocessor::new(pre_config)
    };
    Ok((pre, precision))
}

/// A pool of its own rather than rayon's global one, which the model's kernels use (see the
/// module comment).
fn decode_pool(threads: usize) -> Result<rayon::ThreadPool, Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("decode-{i}"))
        .start_handler(|_| lower_priority())
        .build()
        .map_err(|e| Error::System(format!("cannot start decoding threads: {e}")))
}

/// The decode stage: prepares `work` on `pool` and sends each file to the model thread. Once
/// `stop` is set the files left are skipped, not prepared.
fn decode(
    pool: rayon::ThreadPool,
    work: Vec<Found>,
    tx: Sender<Prepared>,
    store: &Store,
    pre: &Preprocessor,
    stop: &AtomicBool,
    decode_ns: &AtomicU64,
) {
    pool.install(|| {
        work.into_par_iter().for_each_with(tx, |tx, found| {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let t = Instant::now();
            let prepared = prepare(found, store, pre);
            decode_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            // A send fails only once the model thread has stopped taking (an error, or a
            // stop): the file is not wanted any more.
            let _ = tx.send(prepared);
        })
    })
}

/// The model, loaded when the first batch needs it: a run whose files all share stored
/// embeddings (moved or duplicated files) never pays for loading it.
struct Embedder<'a> {
    files: &'a ModelFiles,
    precision: Precision,
    model: Option<ClipModel>,
}

impl Embedder<'_> {
    fn embed(
        &mut self,
        pixels: &[f32],
        progress: &indicatif::ProgressBar,
    ) -> Result<Vec<Vec<f32>>, Error> {
        if self.model.is_none() {
            progress.set_message("loading model");
            self.model = Some(ClipModel::load_with(
                self.files,
                Towers::Image,
                self.precision,
            )?);
            progress.set_message("indexing");
        }
        let image = self.model.as_ref().expect("loaded").image()?;
        image.embed_pixels(pixels)
    }
}

/// The embed-and-commit stage, on the model thread: gathers prepared files into batches, embeds
/// the new content, commits each batch atomically and then records its failures.
struct Committer<'a> {
    store: &'a Store,
    embedder: Embedder<'a>,
    progress: &'a indicatif::ProgressBar,
    publisher: &'a mut Publisher,
    batch_size: usize,
    batch: Batch,
    outcome: Outcome,
}

impl Committer<'_> {
    /// Takes prepared files until the decoders are done or `stop` is set, then commits what is
    /// left: an interrupted run keeps every file it prepared up to the stop.
    fn consume(&mut self, rx: Receiver<Prepared>, stop: &AtomicBool) -> Result<(), Error> {
        for item in rx.iter() {
            self.take(item)?;
            if self.batch.is_full(self.batch_size) {
                self.flush()?;
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.flush()?;
        // Unblock decoders waiting on a full channel after an interruption.
        drop(rx);
        Ok(())
    }

    /// Puts one prepared file in the batch.
    fn take(&mut self, item: Prepared) -> Result<(), Error> {
        match item {
            Prepared::Embed {
                found,
                hash,
                dims,
                mut meta,
                pixels,
            } => {
                self.warn(&found, &mut meta);
                if self.batch.pending.contains_key(&hash) {
                    // Same content as an image already in this batch: committed after it.
                    let entry = entry(self.store, found, hash, dims, meta.meta, None)?;
                    self.batch.ready.push(entry);
                } else {
                    self.batch.pending.insert(hash, self.batch.embed.len());
                    self.batch.embed.push((found, hash, dims, meta.meta));
                    self.batch.pixels.extend_from_slice(&pixels);
                }
            }
            Prepared::Reuse {
                found,
                hash,
                dims,
                mut meta,
            } => {
                self.warn(&found, &mut meta);
                let entry = entry(self.store, found, hash, dims, meta.meta, None)?;
                self.batch.ready.push(entry);
            }
            Prepared::Failed {
                found,
                reason,
                remember,
            } => self.fail(found, reason, remember),
        }
        Ok(())
    }

    /// Damaged metadata does not keep a file out of the index: what could be read is kept, and
    /// the file is reported.
    fn warn(&mut self, found: &Found, meta: &mut Read) {
        if let Some(w) = meta.warning.take() {
            tracing::debug!(path = %found.path.display(), %w, "metadata");
            self.outcome.warnings.push(Failure {
                path: found.path.clone(),
                reason: w,
            });
        }
    }

    fn fail(&mut self, found: Found, reason: String, remember: bool) {
        self.progress.inc(1);
        if !remember {
            tracing::debug!(path = %found.path.display(), %reason, "not decodable here");
            self.outcome.failures.push(Failure {
                path: found.path,
                reason,
            });
            return;
        }
        tracing::debug!(path = %found.path.display(), %reason, "skipped");
        self.batch.failed.push((
            found.path,
            FailedRecord {
                size: found.size,
                mtime_ns: found.mtime_ns,
                reason,
            },
        ));
    }

    /// Embeds and commits the batch, then records its failures; the publisher decides whether
    /// readers see it now.
    fn flush(&mut self) -> Result<(), Error> {
        let mut entries = self.embed_batch()?;
        for e in &self.batch.ready {
            self.outcome.reused_hashes.push(e.record.hash);
        }
        entries.append(&mut self.batch.ready);
        let t = Instant::now();
        if !entries.is_empty() {
            self.store.commit(&entries)?;
            self.outcome.committed += entries.len();
        }
        self.outcome.timings.store_seconds += t.elapsed().as_secs_f64();
        self.publisher.committed(self.store, entries.len())?;
        self.record_failures()?;
        self.progress.inc(entries.len() as u64);
        self.batch.pixels.clear();
        self.batch.pending.clear();
        Ok(())
    }

    /// Runs the model over the batch's new content; returns their entries, in batch order.
    fn embed_batch(&mut self) -> Result<Vec<NewEntry>, Error> {
        let mut entries = Vec::with_capacity(self.batch.len());
        if self.batch.embed.is_empty() {
            return Ok(entries);
        }
        let t = Instant::now();
        let vectors = self.embedder.embed(&self.batch.pixels, self.progress)?;
        self.outcome.timings.model_seconds += t.elapsed().as_secs_f64();
        self.outcome.embedded += vectors.len();
        for ((found, hash, dims, meta), v) in self.batch.embed.drain(..).zip(vectors) {
            entries.push(entry(self.store, found, hash, dims, meta, Some(v))?);
        }
        Ok(entries)
    }

    fn record_failures(&mut self) -> Result<(), Error> {
        let t = Instant::now();
        if !self.batch.failed.is_empty() {
            self.store.record_failures(&self.batch.failed)?;
            let failed = self.batch.failed.drain(..).map(|(path, f)| Failure {
                path,
                reason: f.reason,
            });
            self.outcome.failures.extend(failed);
        }
        self.outcome.timings.store_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }
}
