//! Pushing a machine's local catalog to a shared collection (Milvus): many machines, one
//! collection.
//!
//! Each machine indexes its own folders into a local index as usual (incremental: a rerun
//! costs a `stat` per unchanged file), which is its catalog of what it has pushed: the `pushed`
//! tree records, per path, the content last upserted. A push upserts every catalogued file
//! whose content the collection lacks and removes every pushed file the catalog no longer
//! has, marking each batch only after the collection acknowledged it. Upserts are keyed by
//! (source, path), so a batch repeated after a crash (acknowledged but not yet marked) changes
//! nothing: a crash at any point is repaired by the next push, with nothing lost and nothing
//! duplicated. Before each push the record is checked against the collection
//! ([`crate::reconcile`]): a collection dropped, recreated or restored from a backup gets back
//! what it lost.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clipsearch::metadata::PhotoMeta;
use clipsearch::store::collection::{Collection, Item};
use clipsearch::store::{ContentHash, Store};
use clipsearch::Error;
use serde::Serialize;

/// Files per request (`CLIPSEARCH_PUSH_BATCH` overrides it).
const BATCH: usize = 256;

fn batch_size() -> usize {
    std::env::var("CLIPSEARCH_PUSH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(BATCH)
}

/// Fault injection for the crash tests: with `CLIPSEARCH_TEST_ABORT_PUSH=K`, the process
/// aborts (as `kill -9` would stop it) right after the collection acknowledged the K-th
/// upsert and before this machine recorded it: the worst moment for consistency.
fn abort_after(upserts: usize) {
    let k = std::env::var("CLIPSEARCH_TEST_ABORT_PUSH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if k == Some(upserts) {
        std::process::abort();
    }
}
/// Fault injection for the tests that kill the server mid-push: with
/// `CLIPSEARCH_TEST_PUSH_PAUSE_MS=N`, each batch is followed by a pause of N ms, so that a
/// push of a few dozen files lasts long enough to be interrupted.
fn pause_between_batches() {
    if let Some(ms) = std::env::var("CLIPSEARCH_TEST_PUSH_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}
/// Waits before the retries of a request that failed because the server did not answer;
/// the last one repeats until [`clipsearch::store::collection::retry_window`] has passed (then the push stops).
const BACKOFF: [Duration; 5] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(5),
];

/// What a push did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushSummary {
    /// Files upserted into the collection.
    pub pushed: usize,
    /// Files removed from it.
    pub removed: usize,
    /// Requests that failed and were retried.
    pub retries: usize,
    /// The files the collection holds from this source, by this machine's record.
    pub held: usize,
    /// Why files this machine had pushed were pushed again: "new collection" (dropped and
    /// created again: another incarnation), "unrecorded" (a catalog of an earlier release,
    /// which kept no incarnation) or "missing rows" (fewer rows than recorded, e.g. a restore
    /// from an older backup); null when the record held.
    pub reason: Option<&'static str>,
    /// Files pushed again for that reason (counted in `pushed` too).
    pub resent: usize,
    /// Whether the collection was compared with the record key by key (`--verify`, or the
    /// counts differed).
    pub verified: bool,
}

/// Runs `f`, retrying with back-off while it fails because the server does not answer,
/// for at most [`clipsearch::store::collection::retry_window`] (the error then says for how long); any other failure (a
/// dropped collection, a server out of quota) is returned at once, as retrying cannot mend it.
fn with_retries<T>(
    what: &str,
    retries: &mut usize,
    mut f: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let started = Instant::now();
    let window = clipsearch::store::collection::retry_window();
    for attempt in 0.. {
        let e = match f() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // The last attempt comes at the end of the window.
        let left = window.saturating_sub(started.elapsed());
        let wait = BACKOFF[attempt.min(BACKOFF.len() - 1)].min(left);
        match e {
            Error::Remote {
                message,
                transient: true,
            } if !left.is_zero() => {
                *retries += 1;
                tracing::warn!("{what}: the server does not answer; retrying in {wait:?}");
                tracing::debug!("{what} failed: {message}");
                std::thread::sleep(wait);
            }
            Error::Remote {
                message,
                transient: true,
            } => {
                return Err(Error::Remote {
                    message: format!(
                        "{message} (retried for {:.0} s)",
                        started.elapsed().as_secs_f64()
                    ),
                    transient: true,
                })
            }
            e => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Brings `collection` up to date with `store`'s catalog, as files of `source`.
pub fn push(
    store: &Store,
    collection: &dyn Collection,
    source: &str,
    progress: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<PushSummary, Error> {
    push_checked(store, collection, source, false, progress, stop)
}

/// [`push`], comparing the collection with this machine's record key by key first when
/// `verify` (`clipsearch index --verify`); otherwise only when the row counts differ.
pub fn push_checked(
    store: &Store,
    collection: &dyn Collection,
    source: &str,
    verify: bool,
    progress: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<PushSummary, Error> {
    let mut summary = PushSummary::default();
    if let Some(model) = store.model()? {
        collection.claim(&model)?;
    }
    let found = crate::reconcile::reconcile(store, collection, source, verify, progress)?;
    summary.reason = found.reason;
    summary.resent = found.resent;
    summary.verified = found.verified;
    let mut upserts: Vec<(PathBuf, ContentHash, Option<PhotoMeta>)> = Vec::new();
    let mut held = 0;
    for item in store.files() {
        let (path, rec) = item?;
        if store.pushed(&path)? == Some(rec.hash) {
            held += 1;
        } else {
            upserts.push((path, rec.hash, rec.meta));
        }
    }
    let mut removals: Vec<PathBuf> = found.stale;
    for p in store.pushed_paths() {
        let p = p?;
        if store.file(&p)?.is_none() {
            removals.push(p);
        }
    }
    let total = upserts.len() + removals.len();
    progress.set_length(total as u64);
    progress.set_position(0);
    progress.set_message("pushing");
    let lost = |done: usize, e: Error| match e {
        Error::Remote { message, transient } => Error::Remote {
            message: format!("{message} ({done} of {total} changes were pushed before that)"),
            transient,
        },
        e => Error::Collection(format!(
            "lost the collection {} after pushing {done} of {total} changes ({e}); what was \
             pushed is kept: run the same command again to push the rest",
            collection.location()
        )),
    };
    let name = |p: &PathBuf| p.to_string_lossy().into_owned();
    let (size, mut requests) = (batch_size(), 0);
    for batch in upserts.chunks(size) {
        if stop.load(Ordering::Relaxed) {
            return Ok(summary);
        }
        let mut items = Vec::with_capacity(batch.len());
        for (path, hash, meta) in batch {
            let Some(vector) = store.embedding(hash)? else {
                continue;
            };
            items.push(Item {
                source: source.to_string(),
                path: name(path),
                vector,
                meta: meta.clone(),
            });
        }
        with_retries("upsert", &mut summary.retries, || collection.upsert(&items))
            .map_err(|e| lost(summary.pushed + summary.removed, e))?;
        requests += 1;
        abort_after(requests);
        pause_between_batches();
        let marks: Vec<(PathBuf, Option<ContentHash>)> = batch
            .iter()
            .map(|(p, h, _)| (p.clone(), Some(*h)))
            .collect();
        store.set_pushed(&marks)?;
        summary.pushed += batch.len();
        progress.inc(batch.len() as u64);
    }
    for batch in removals.chunks(size) {
        if stop.load(Ordering::Relaxed) {
            return Ok(summary);
        }
        let files: Vec<(String, String)> = batch
            .iter()
            .map(|p| (source.to_string(), name(p)))
            .collect();
        with_retries("remove", &mut summary.retries, || collection.remove(&files))
            .map_err(|e| lost(summary.pushed + summary.removed, e))?;
        let marks: Vec<(PathBuf, Option<ContentHash>)> =
            batch.iter().map(|p| (p.clone(), None)).collect();
        store.set_pushed(&marks)?;
        summary.removed += batch.len();
        progress.inc(batch.len() as u64);
    }
    if total > 0 {
        with_retries("flush", &mut summary.retries, || collection.flush())
            .map_err(|e| lost(total, e))?;
    }
    summary.held = held + summary.pushed;
    Ok(summary)
}
