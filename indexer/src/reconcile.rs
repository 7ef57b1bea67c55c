//! Whether a machine's record of what it pushed still describes the shared collection.
//!
//! The `pushed` tree is this machine's belief about the collection; servers break it behind
//! its back: a collection dropped and created again, a server's data lost, a restore from an
//! older backup. Syncthing's answer is an index id per device, and a peer whose id changed is
//! sent everything again; here the collection carries an incarnation (a random id set when it
//! is created, `Collection::incarnation`) and the catalog records the one its marks are about:
//! another one, or none, means every file is pushed again. A restore keeps the incarnation and
//! loses rows, so every push also compares this machine's row count in the collection with
//! its record (one count query), and on a difference (or `--verify`) compares key by key:
//! rows missing are pushed again, rows of this machine that its catalog no longer has are
//! removed.

use std::collections::HashSet;
use std::path::PathBuf;

use clipsearch::store::collection::{Collection, Scope};
use clipsearch::store::Store;
use clipsearch::Error;

/// What the check found.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Why files marked as pushed are pushed again ("new collection", "unrecorded": a
    /// catalog of an earlier release, "missing rows").
    pub reason: Option<&'static str>,
    /// Files marked as pushed that the collection lacks (or all, for a new collection).
    pub resent: usize,
    /// Rows of this source in the collection that the catalog does not have.
    pub stale: Vec<PathBuf>,
    /// Whether the collection was compared key by key.
    pub verified: bool,
}

/// Checks `store`'s record against `collection` (claimed already), unmarking what must be
/// pushed again; says what it found on stderr (above `progress`).
pub(crate) fn reconcile(
    store: &Store,
    collection: &dyn Collection,
    source: &str,
    verify: bool,
    progress: &indicatif::ProgressBar,
) -> Result<Reconciled, Error> {
    let mut found = Reconciled::default();
    let url = collection.location();
    let say = |line: String| progress.suspend(|| eprintln!("clipsearch: {line}"));
    if let Some(incarnation) = collection.incarnation()? {
        let recorded = store.pushed_to()?;
        if recorded.as_deref() != Some(incarnation.as_str()) {
            let marked = store.pushed_count();
            if marked > 0 {
                say(match recorded {
                    Some(_) => format!(
                        "the collection {url} is not the one this machine pushed its {marked} \
                         files to (it was dropped and created again, or the server's data was \
                         lost or replaced): pushing every file again"
                    ),
                    None => format!(
                        "this machine's catalog does not record which collection its {marked} \
                         files were pushed to (catalogs of earlier releases did not): pushing \
                         every file to {url} again, once"
                    ),
                });
                found.reason = Some(if recorded.is_some() {
                    "new collection"
                } else {
                    "unrecorded"
                });
                found.resent = marked;
            }
            store.start_pushing_to(&incarnation)?;
        }
    }
    let marked = store.pushed_count();
    if !verify {
        let held = collection.count_source(source)?;
        if held == marked {
            return Ok(found);
        }
        tracing::info!("{url} holds {held} files of {source}, this machine's record {marked}");
    }
    found.verified = true;
    let scope = Scope {
        source: Some(source.to_string()),
        ..Scope::default()
    };
    let held: HashSet<String> = collection
        .select(&scope)?
        .into_iter()
        .map(|f| f.path)
        .collect();
    let mut missing = Vec::new();
    let mut recorded = HashSet::new();
    for p in store.pushed_paths() {
        let p = p?;
        let name = p.to_string_lossy().into_owned();
        if !held.contains(&name) {
            missing.push((p, None));
        }
        recorded.insert(name);
    }
    for name in held.difference(&recorded) {
        // Held but not marked: pushed and not yet recorded (a crash), so pushed again anyway,
        // or a file this machine no longer has.
        let path = PathBuf::from(name);
        if store.file(&path)?.is_none() {
            found.stale.push(path);
        }
    }
    if !missing.is_empty() {
        say(format!(
            "the collection {url} lacks {} of the {marked} files this machine pushed (restored \
             from an older backup, or data lost on the server): pushing them again",
            missing.len()
        ));
        store.set_pushed(&missing)?;
        found.reason = found.reason.or(Some("missing rows"));
        found.resent += missing.len();
    }
    if !found.stale.is_empty() {
        say(format!(
            "the collection {url} holds {} files of {source} that this machine's catalog does \
             not have: removing them",
            found.stale.len()
        ));
    }
    Ok(found)
}
