//! The one place that knows what an `--index` is. The CLI turns the value into a [`Target`]
//! once (a directory, or a shared collection it has connected to), and every command and the
//! server get from it what they need behind traits: a [`Searcher`] to query, a
//! [`Destination`] to index into, the [`Stats`] of what is held. Nothing outside this file
//! asks which kind of target it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clipsearch::store::collection::Collection;
use clipsearch::store::Store;
use clipsearch_indexer::writer::{Destination, PushTo, Writer};

use crate::error::Error;
use crate::local::LocalSearcher;
use crate::searcher::Searcher;
use crate::shared::SharedSearcher;
use crate::stats::Stats;

/// What `--index` names.
pub enum Target {
    /// A local index directory.
    Local(PathBuf),
    /// A shared collection, seen from one of the machines that feed it: `source` is this
    /// machine's name there and `catalog` its local catalog of what it indexed and pushed.
    Shared {
        collection: Arc<dyn Collection>,
        source: String,
        catalog: PathBuf,
    },
}

impl Target {
    /// The local directory behind it: the index, or this machine's catalog of the collection
    /// (where a server keeps thumbnails and says where it listens).
    pub fn dir(&self) -> &Path {
        match self {
            Target::Local(dir) => dir,
            Target::Shared { catalog, .. } => catalog,
        }
    }

    /// A searcher for queries; an empty index or collection is refused. `model`: the
    /// checkpoint to embed queries with (None: the one the vectors came from).
    pub fn searcher(&self, model: Option<&str>) -> Result<Box<dyn Searcher>, Error> {
        Ok(match self {
            Target::Local(dir) => Box::new(LocalSearcher::open(dir, model)?),
            Target::Shared {
                collection,
                source,
                catalog,
            } => Box::new(SharedSearcher::open(
                collection.clone(),
                model,
                source.clone(),
                catalog.clone(),
            )?),
        })
    }

    /// A searcher that reads records, an empty index or collection included (`info`).
    pub fn reader(&self) -> Result<Box<dyn Searcher>, Error> {
        Ok(match self {
            Target::Local(dir) => Box::new(LocalSearcher::open_any(dir, None)?),
            Target::Shared {
                collection,
                source,
                catalog,
            } => Box::new(SharedSearcher::open_any(
                collection.clone(),
                None,
                source.clone(),
                catalog.clone(),
            )?),
        })
    }

    /// Where an index run writes: the index, or the catalog that is pushed to the collection.
    pub fn destination(&self) -> Destination {
        match self {
            Target::Local(dir) => Destination {
                dir: dir.clone(),
                push: None,
            },
            Target::Shared {
                collection,
                source,
                catalog,
            } => Destination {
                dir: catalog.clone(),
                push: Some(PushTo {
                    collection: collection.clone(),
                    source: source.clone(),
                }),
            },
        }
    }

    /// For `serve`: the searcher, and with `watch` the writer that keeps what it searches up
    /// to date (the index, or the catalog it pushes to the collection from).
    pub fn serving(
        &self,
        model: Option<&str>,
        watch: bool,
    ) -> Result<(Box<dyn Searcher>, Option<Writer>), Error> {
        // A local index's writer first: a second writer is refused before anything else.
        let local_store = match self {
            Target::Local(dir) if watch => Some(Store::open_existing(dir)?),
            _ => None,
        };
        let searcher = self.searcher(model)?;
        if !watch {
            return Ok((searcher, None));
        }
        let recorded = match (&local_store, self) {
            (Some(store), _) => store.model()?,
            (None, Target::Shared { collection, .. }) => collection.model()?,
            (None, Target::Local(dir)) => return Err(Error::NoIndex(dir.clone())),
        };
        let identity = recorded.ok_or_else(|| Error::EmptyIndex(self.dir().to_path_buf()))?;
        let store = match local_store {
            Some(store) => store,
            None => Store::open(self.dir(), Some(&identity))?,
        };
        let files = clipsearch::model::resolve(model.unwrap_or(&identity.name))?;
        let writer = Writer::new(store, files, self.destination().push);
        Ok((searcher, Some(writer)))
    }

    /// What is held, read without a model (and, locally, from the published view: it answers
    /// while an index run is going on).
    pub fn stats(&self) -> Result<Stats, Error> {
        match self {
            Target::Local(dir) => Stats::of_local(dir),
            Target::Shared { collection, .. } => {
                let model = collection.model()?;
                Ok(Stats {
                    index: collection.location(),
                    files: collection.count()?,
                    dim: model.as_ref().map(|m| m.dim),
                    model: model.map(|m| m.name),
                    local: None,
                })
            }
        }
    }
}
