//! The decode → embed → commit pipeline.
//!
//! Decoding runs on its own rayon pool: candle's matrix kernels use the global pool, and a
//! decoder blocked on a full channel must never hold a thread the model is waiting for. The
//! channel is bounded, so at most `2 x batch + decode threads` preprocessed images exist at once
//! (plus the batch being embedded): memory does not grow with the collection.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clipsearch::metadata::PhotoMeta;
use clipsearch::model::{ClipConfig, ClipModel, ModelFiles, Precision, Towers};
use clipsearch::preprocess::{PreprocessConfig, Preprocessor};
use clipsearch::store::{content_hash, ContentHash, FailedRecord, FileRecord, NewEntry, Store};
use clipsearch::Error;
use rayon::prelude::*;

use crate::publisher::Publisher;
use crate::walk::Found;
use crate::{Failure, Options};

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
    pub timings: crate::Timings,
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
    let mut outcome = Outcome::default();
    if work.is_empty() {
        return Ok(outcome);
    }
    let config = ClipConfig::from_file(&files.config())?;
    let pre_config =
        PreprocessConfig::from_file_or(&files.preprocessor(), config.default_preprocess())?;
    // The index says how its images were embedded (exact or fast mode); every run, and a
    // watcher's, must embed the same way.
    let (scaled, precision) = match store.model()? {
        Some(m) => (m.scaled_decode(), m.precision()),
        None => (false, Precision::F32),
    };
    let pre = if scaled {
        Preprocessor::fast(pre_config)
    } else {
        Preprocessor::new(pre_config)
    };
    let batch_size = opts.batch_size.max(1);
    progress.set_length(work.len() as u64);
    progress.set_position(0);
    progress.set_message("indexing");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.decode_threads.max(1))
        .thread_name(|i| format!("decode-{i}"))
        .start_handler(|_| lower_priority())
        .build()
        .map_err(|e| Error::Index(format!("cannot start decoding threads: {e}")))?;
    let (tx, rx) = crossbeam_channel::bounded::<Prepared>(2 * batch_size);
    let mut model: Option<ClipModel> = None;
    let decode_ns = std::sync::atomic::AtomicU64::new(0);
    let decode_ns = &decode_ns;
    let mut outcome_warnings = Vec::new();

    std::thread::scope(|scope| -> Result<(), Error> {
        let pre = &pre;
        scope.spawn(move || {
            pool.install(|| {
                work.into_par_iter().for_each_with(tx, |tx, found| {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let t = std::time::Instant::now();
                    let prepared = prepare(found, store, pre);
                    decode_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    let _ = tx.send(prepared);
                })
            })
        });
        let mut batch = Batch::new();
        let mut flush = |batch: &mut Batch,
                         model: &mut Option<ClipModel>,
                         outcome: &mut Outcome|
         -> Result<(), Error> {
            let mut entries = Vec::with_capacity(batch.len());
            if !batch.embed.is_empty() {
                let t = std::time::Instant::now();
                if model.is_none() {
                    progress.set_message("loading model");
                    *model = Some(ClipModel::load_with(files, Towers::Image, precision)?);
                    progress.set_message("indexing");
                }
                let image = model.as_ref().expect("loaded").image()?;
                let vectors = image.embed_pixels(&batch.pixels)?;
                outcome.timings.model_seconds += t.elapsed().as_secs_f64();
                outcome.embedded += vectors.len();
                for ((found, hash, dims, meta), v) in batch.embed.drain(..).zip(vectors) {
                    entries.push(entry(store, found, hash, dims, meta, Some(v))?);
                }
            }
            for e in &batch.ready {
                outcome.reused_hashes.push(e.record.hash);
            }
            entries.append(&mut batch.ready);
            let t = std::time::Instant::now();
            if !entries.is_empty() {
                store.commit(&entries)?;
                outcome.committed += entries.len();
            }
            outcome.timings.store_seconds += t.elapsed().as_secs_f64();
            publisher.committed(store, entries.len())?;
            let t = std::time::Instant::now();
            if !batch.failed.is_empty() {
                store.record_failures(&batch.failed)?;
                outcome
                    .failures
                    .extend(batch.failed.drain(..).map(|(path, f)| Failure {
                        path,
                        reason: f.reason,
                    }));
            }
            outcome.timings.store_seconds += t.elapsed().as_secs_f64();
            progress.inc(entries.len() as u64);
            batch.pixels.clear();
            batch.pending.clear();
            Ok(())
        };
        let mut warned = |found: &Found, meta: &mut Read| {
            if let Some(w) = meta.warning.take() {
                tracing::debug!(path = %found.path.display(), %w, "metadata");
                outcome_warnings.push(Failure {
                    path: found.path.clone(),
                    reason: w,
                });
            }
        };
        for item in rx.iter() {
            match item {
                Prepared::Embed {
                    found,
                    hash,
                    dims,
                    mut meta,
                    pixels,
                } => {
                    warned(&found, &mut meta);
                    if batch.pending.contains_key(&hash) {
                        // Same content as an image already in this batch: committed after it.
                        batch
                            .ready
                            .push(entry(store, found, hash, dims, meta.meta, None)?);
                    } else {
                        batch.pending.insert(hash, batch.embed.len());
                        batch.embed.push((found, hash, dims, meta.meta));
                        batch.pixels.extend_from_slice(&pixels);
                    }
                }
                Prepared::Reuse {
                    found,
                    hash,
                    dims,
                    mut meta,
                } => {
                    warned(&found, &mut meta);
                    batch
                        .ready
                        .push(entry(store, found, hash, dims, meta.meta, None)?);
                }
                Prepared::Failed {
                    found,
                    reason,
                    remember: false,
                } => {
                    progress.inc(1);
                    tracing::debug!(path = %found.path.display(), %reason, "not decodable here");
                    outcome.failures.push(Failure {
                        path: found.path,
                        reason,
                    });
                }
                Prepared::Failed { found, reason, .. } => {
                    progress.inc(1);
                    tracing::debug!(path = %found.path.display(), %reason, "skipped");
                    batch.failed.push((
                        found.path,
                        FailedRecord {
                            size: found.size,
                            mtime_ns: found.mtime_ns,
                            reason,
                        },
                    ));
                }
            }
            if batch.embed.len() >= batch_size || batch.ready.len() + batch.failed.len() >= 256 {
                flush(&mut batch, &mut model, &mut outcome)?;
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        flush(&mut batch, &mut model, &mut outcome)?;
        // Unblock decoders waiting on a full channel after an interruption.
        drop(rx);
        Ok(())
    })?;
    outcome.warnings = outcome_warnings;
    outcome.interrupted = stop.load(Ordering::Relaxed);
    outcome.timings.decode_cpu_seconds = decode_ns.load(Ordering::Relaxed) as f64 / 1e9;
    Ok(outcome)
}
