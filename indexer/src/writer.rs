//! Where an index run writes, and the one function that runs it: index the roots into the
//! local store, then, when the store is this machine's catalog of a shared collection, push
//! what changed. `clipsearch index` and `serve --watch` both call [`Writer::update`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clipsearch::model::{ModelFiles, ModelIdentity};
use clipsearch::store::collection::Collection;
use clipsearch::store::Store;
use clipsearch::Error;

use crate::index;
use crate::options::Options;
use crate::push::{push_checked, PushSummary};
use crate::summary::Summary;

/// A shared collection this machine feeds.
#[derive(Clone)]
pub struct PushTo {
    pub collection: Arc<dyn Collection>,
    /// This machine's name in the collection (`index --source`).
    pub source: String,
}

/// Where a run writes: a local index, or this machine's catalog of a shared collection,
/// which each run then pushes to.
#[derive(Clone)]
pub struct Destination {
    /// The local index, or the catalog.
    pub dir: PathBuf,
    pub push: Option<PushTo>,
}

impl Destination {
    /// The model to index with: the one named, else (without `rebuild`) the one the index or
    /// collection was built with, else `default`.
    pub fn model_spec(&self, named: Option<&str>, default: &str, rebuild: bool) -> String {
        if let Some(m) = named {
            return m.to_string();
        }
        if rebuild {
            return default.to_string();
        }
        let pushed = || {
            let c = &self.push.as_ref()?.collection;
            c.model().ok().flatten().map(|m| m.name)
        };
        recorded_model(&self.dir)
            .or_else(pushed)
            .unwrap_or_else(|| default.to_string())
    }

    /// Takes the store as its one writer for `identity` (forgetting what it held with
    /// `rebuild`), and claims the collection for the model before any work: another model is
    /// refused before hours are spent embedding for it.
    pub fn writer(
        &self,
        files: ModelFiles,
        identity: &ModelIdentity,
        rebuild: bool,
    ) -> Result<Writer, Error> {
        let store = if rebuild {
            let s = Store::open(&self.dir, None)?;
            s.clear(identity)?;
            s
        } else {
            Store::open(&self.dir, Some(identity))?
        };
        if let Some(p) = &self.push {
            p.collection.claim(identity)?;
        }
        Ok(Writer::new(store, files, self.push.clone()))
    }
}

/// The model an existing index was built with, read without taking its lock for long.
fn recorded_model(dir: &Path) -> Option<String> {
    if !dir.join("db").exists() {
        return None;
    }
    let store = Store::open(dir, None).ok()?;
    store.model().ok().flatten().map(|m| m.name)
}

/// An open store with its model, and the collection it feeds, if any.
pub struct Writer {
    store: Store,
    files: ModelFiles,
    push: Option<PushTo>,
}

/// What one update did.
#[derive(Debug)]
pub struct Update {
    pub summary: Summary,
    /// The push to the shared collection (None: a local index, or a run interrupted before it).
    pub pushed: Option<Result<PushSummary, Error>>,
}

impl Writer {
    pub fn new(store: Store, files: ModelFiles, push: Option<PushTo>) -> Self {
        Writer { store, files, push }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The collection pushed to, for messages.
    pub fn collection(&self) -> Option<&dyn Collection> {
        self.push.as_ref().map(|p| p.collection.as_ref())
    }

    /// Indexes `opts.roots`, then pushes what changed to the shared collection (comparing it
    /// with this machine's record key by key first with `verify`). A failed push is returned
    /// beside the indexing summary: what was indexed stays indexed and searchable here, and
    /// what could not be pushed stays marked unpushed for the next update.
    pub fn update(
        &self,
        opts: &Options,
        verify: bool,
        progress: &indicatif::ProgressBar,
        stop: &AtomicBool,
    ) -> Result<Update, Error> {
        let summary = index(&self.store, &self.files, opts, progress, stop)?;
        let pushed = match &self.push {
            Some(p) if !summary.interrupted => Some(push_checked(
                &self.store,
                p.collection.as_ref(),
                &p.source,
                verify,
                progress,
                stop,
            )),
            _ => None,
        };
        Ok(Update { summary, pushed })
    }
}
