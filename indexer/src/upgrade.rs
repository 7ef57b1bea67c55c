//! Completing an index built before metadata was recorded: the metadata of unchanged files
//! that lack it is read from the files (a JPEG's head, no decoding, no model) and stored in
//! their records, which keep their ids and embeddings.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clipsearch::store::Store;
use clipsearch::Error;
use rayon::prelude::*;

use crate::options::Options;
use crate::summary::Failure;

/// Reads and stores the metadata of `files`; returns how many were stored, and the files whose
/// metadata is damaged.
pub(crate) fn read_metadata(
    store: &Store,
    opts: &Options,
    files: Vec<(PathBuf, i64)>,
    progress: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<(usize, Vec<Failure>), Error> {
    progress.set_length(files.len() as u64);
    progress.set_position(0);
    progress.set_message("metadata");
    tracing::info!(files = files.len(), "reading metadata the index lacks");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.decode_threads.max(1))
        .build()
        .map_err(|e| Error::System(format!("cannot start reading threads: {e}")))?;
    let mut stored = 0;
    let mut warnings = Vec::new();
    // In chunks, so that a Ctrl-C stops within one and what was read is kept.
    for chunk in files.chunks(512) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let read: Vec<_> = pool.install(|| {
            chunk
                .par_iter()
                .map(|(path, mtime)| (path, clipsearch::metadata::read_file(path, *mtime)))
                .collect()
        });
        for (path, outcome) in read {
            match outcome {
                Ok(mut out) => {
                    if let Some(w) = out.warning.take() {
                        warnings.push(Failure {
                            path: path.clone(),
                            reason: w,
                        });
                    }
                    if store.set_meta(path, out.meta)? {
                        stored += 1;
                    }
                }
                // Gone or unreadable since the walk: the removal pass or the next run sees it.
                Err(e) => tracing::debug!(path = %path.display(), "metadata: {e}"),
            }
            progress.inc(1);
        }
    }
    store.flush()?;
    Ok((stored, warnings))
}
