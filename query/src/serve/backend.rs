//! What the server searches: a local index, or a shared collection (Milvus) that many machines
//! feed. Handlers speak to either through [`Backend`], so the API and the page are the same.
//!
//! A shared collection holds every machine's files, but a server can only read the files of
//! its own machine: it serves the thumbnails and originals of its own source (checked against
//! its local catalog exactly as a local index's files are), and marks the others' results as
//! living elsewhere (`thumbnail: null`, and their `source`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clipsearch::store::collection::key_of;
use clipsearch::store::view::{read_manifest, View};
use clipsearch::store::FileRecord;
use serde_json::{json, Value};

use super::api::ApiError;
use crate::remote::RemoteSearcher;
use crate::{dupes, Error, Match, SearchOptions, Searcher};

/// A shared collection seen from one of the machines that feed it.
pub struct Shared {
    pub remote: RemoteSearcher,
    /// This machine's name in the collection (`index --source`).
    pub source: String,
    /// This machine's catalog (its local index of what it pushed): where its files are
    /// checked before they are served.
    pub catalog: PathBuf,
    files: Option<CatalogFiles>,
}

/// The catalog's published view, with its files by their keys in the collection.
struct CatalogFiles {
    view: View,
    rows: HashMap<u64, usize>,
}

impl Shared {
    pub fn new(remote: RemoteSearcher, source: String, catalog: PathBuf) -> Self {
        Shared {
            remote,
            source,
            catalog,
            files: None,
        }
    }

    /// The catalog's newest view (None before this machine indexed anything).
    fn files(&mut self) -> Result<Option<&CatalogFiles>, Error> {
        let newest = read_manifest(&self.catalog)?;
        let current = self.files.as_ref().map(|f| f.view.generation());
        match newest {
            None => self.files = None,
            Some(m) if Some(m.generation) != current => {
                let view = View::open(&self.catalog, m)?;
                let rows = (0..view.len())
                    .map(|r| {
                        let path = view.path(r).to_string_lossy();
                        (key_of(&self.source, &path) as u64, r)
                    })
                    .collect();
                self.files = Some(CatalogFiles { view, rows });
            }
            Some(_) => {}
        }
        Ok(self.files.as_ref())
    }
}

/// The index or collection behind the server.
pub enum Backend {
    Local(Box<Searcher>),
    Shared(Box<Shared>),
}

fn no_id(id: u64) -> ApiError {
    ApiError::not_found(format!("no image with id {id} in the index"))
}

impl Backend {
    /// Picks up what was indexed since the last request.
    pub fn refresh(&mut self) -> Result<(), Error> {
        match self {
            Backend::Local(s) => s.refresh().map(|_| ()),
            // A collection is asked afresh by every request; the catalog on demand.
            Backend::Shared(_) => Ok(()),
        }
    }

    pub fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        match self {
            Backend::Local(s) => s.embed_text(text),
            Backend::Shared(s) => s.remote.embed_text(text),
        }
    }

    pub fn embed_image_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        match self {
            Backend::Local(s) => s.embed_image_bytes(name, bytes),
            Backend::Shared(s) => s.remote.embed_image_bytes(name, bytes),
        }
    }

    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        match self {
            Backend::Local(s) => s.search(query, opts),
            Backend::Shared(s) => s.remote.search(query, opts),
        }
    }

    /// Files by filters alone, by date.
    pub fn list(&self, opts: &SearchOptions) -> Result<Vec<Match>, ApiError> {
        match self {
            Backend::Local(s) => Ok(s.list(opts)?),
            Backend::Shared(s) => Ok(s.remote.list(opts)?),
        }
    }

    /// The stored embedding of a result's id.
    pub fn vector_of(&self, id: u64) -> Result<Vec<f32>, ApiError> {
        match self {
            Backend::Local(s) => {
                let view = s.view();
                view.row_of_id(id)
                    .map(|row| view.vector(row).to_vec())
                    .ok_or_else(|| no_id(id))
            }
            Backend::Shared(s) => s
                .remote
                .item_of(id)?
                .map(|it| it.vector)
                .ok_or_else(|| no_id(id)),
        }
    }

    pub fn dupes(&self, threshold: f32, opts: &SearchOptions) -> Result<Vec<Vec<Match>>, Error> {
        match self {
            Backend::Local(s) => dupes::groups(s, threshold, opts),
            Backend::Shared(s) => s.remote.groups(threshold, opts),
        }
    }

    /// Everything held for one file: its record and metadata where this machine has them.
    pub fn info(&mut self, id: u64) -> Result<Value, ApiError> {
        match self {
            Backend::Local(s) => {
                let view = s.view();
                let row = view.row_of_id(id).ok_or_else(|| no_id(id))?;
                Ok(crate::info::describe(view, row))
            }
            Backend::Shared(s) => {
                let source = s.source.clone();
                if let Some(f) = s.files()? {
                    if let Some(&row) = f.rows.get(&id) {
                        let mut v = crate::info::describe(&f.view, row);
                        v["source"] = json!(source);
                        return Ok(v);
                    }
                }
                let it = s.remote.item_of(id)?.ok_or_else(|| no_id(id))?;
                Ok(crate::info::describe_shared(
                    &it.source,
                    &it.path,
                    it.meta.as_ref(),
                ))
            }
        }
    }

    /// A file this server may read, with what was indexed of it; another machine's file is
    /// named as such.
    pub fn file(&mut self, id: u64) -> Result<(PathBuf, FileRecord), ApiError> {
        match self {
            Backend::Local(s) => {
                let view = s.view();
                let row = view.row_of_id(id).ok_or_else(|| no_id(id))?;
                Ok((view.path(row).to_path_buf(), view.record(row)))
            }
            Backend::Shared(s) => {
                if let Some(f) = s.files()? {
                    if let Some(&row) = f.rows.get(&id) {
                        return Ok((f.view.path(row).to_path_buf(), f.view.record(row)));
                    }
                }
                match s.remote.item_of(id)? {
                    Some(it) => Err(ApiError::not_found(format!(
                        "{}:{} lives on another machine: a server there shows it",
                        it.source, it.path
                    ))),
                    None => Err(no_id(id)),
                }
            }
        }
    }

    /// Whether this server can show the file of a result.
    pub fn serves(&self, m: &Match) -> bool {
        match self {
            Backend::Local(_) => true,
            Backend::Shared(s) => m.source.as_deref() == Some(s.source.as_str()),
        }
    }

    pub fn stats(&self) -> Result<Value, Error> {
        match self {
            Backend::Local(s) => {
                let view = s.view();
                let m = view.manifest();
                Ok(json!({
                    "files": view.len(),
                    "failed": m.failed,
                    "model": m.model.name,
                    "dim": m.dim,
                    "index": s.dir().to_string_lossy(),
                    "generation": m.generation,
                    "published_unix_ms": m.published_unix_ms,
                }))
            }
            Backend::Shared(s) => {
                let c = s.remote.collection();
                let model = s.remote.identity();
                Ok(json!({
                    "files": c.count()?,
                    "model": model.name,
                    "dim": model.dim,
                    "index": c.location(),
                    "source": s.source,
                }))
            }
        }
    }
}
