//! `serve --watch DIR...`: keeps the index in step with the folders while serving. Changes
//! reported by the OS (notify: inotify, FSEvents, ...) are gathered until the folders have been
//! quiet for a moment, then the ordinary incremental indexer runs over the watched roots (new,
//! changed, moved and deleted files alike), and the searcher switches to the view it publishes.
//! Queries keep being answered from the previous view meanwhile.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use clipsearch_indexer::writer::Writer;
use notify::{RecursiveMode, Watcher};

use super::state::AppState;
use crate::error::Error;

/// How long the folders must stay quiet before an indexing run starts.
const QUIET: Duration = Duration::from_millis(700);

/// Starts watching `roots`; runs one indexing pass at once (to catch up with changes made
/// while nothing was watching), then one after every burst of changes.
pub(crate) fn start(
    state: Arc<AppState>,
    writer: Writer,
    roots: Vec<PathBuf>,
) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .map_err(|e| Error::Watch(format!("cannot watch folders: {e}")))?;
    for root in &roots {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| Error::Watch(format!("cannot watch {}: {e}", root.display())))?;
    }
    std::thread::Builder::new()
        .name("clipsearch-watch".into())
        .spawn(move || {
            let _watcher = watcher; // dropped (and unwatched) only when the thread ends
            let mut pending = true;
            loop {
                if pending {
                    reindex(&state, &writer, &roots);
                }
                // Wait for a change, then for quiet.
                match rx.recv() {
                    Ok(_) => pending = true,
                    Err(_) => return,
                }
                while rx.recv_timeout(QUIET).is_ok() {}
            }
        })
        .map_err(|e| Error::Watch(format!("cannot start the watcher: {e}")))?;
    Ok(())
}

fn reindex(state: &AppState, writer: &Writer, roots: &[PathBuf]) {
    let opts = clipsearch_indexer::Options::new(roots.to_vec());
    let progress = indicatif::ProgressBar::hidden();
    let stop = AtomicBool::new(false);
    let update = match writer.update(&opts, false, &progress, &stop) {
        Ok(u) => u,
        Err(e) => return tracing::error!("indexing the watched folders: {e}"),
    };
    let s = &update.summary;
    if s.indexed + s.moved + s.removed > 0 {
        tracing::info!(
            indexed = s.indexed,
            moved = s.moved,
            removed = s.removed,
            failed = s.failed,
            "index updated"
        );
    }
    // What could not be pushed stays marked unpushed: the next burst (or the next
    // `clipsearch index`) pushes it.
    match update.pushed {
        Some(Ok(r)) if r.pushed + r.removed > 0 => {
            tracing::info!(pushed = r.pushed, removed = r.removed, "collection updated")
        }
        Some(Err(e)) => {
            let at = writer
                .collection()
                .map(|c| c.location())
                .unwrap_or_default();
            tracing::error!("pushing to {at}: {e}")
        }
        _ => {}
    }
    let mut searcher = state
        .searcher
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Err(e) = searcher.refresh() {
        tracing::error!("reloading the search index: {e}");
    }
}
