//! The storage trait: a collection of embeddings with the files they came from, as every
//! backend keeps it. Two implementations: [`LocalCollection`] (this crate's sled catalog,
//! published views and HNSW graph, in one directory) and Milvus (`clipsearch-milvus`, for
//! collections that outgrow one machine). One test suite runs against both
//! (`tests/collection.rs`).
//!
//! Files are named by a *source* (the machine or root label that indexed them) and their path
//! on it, so that results say where a file lives when many machines feed one collection.
//! Writes are idempotent upserts keyed by (source, path): repeating a batch after a crash
//! leaves the same collection, never duplicates. Vectors are unit length and scored by dot
//! product (cosine).

use std::path::Path;

use crate::error::{Error, Result};
use crate::metadata::{Filter, PhotoMeta};
use crate::model::ModelIdentity;

/// One file's embedding, as it goes into a collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub source: String,
    pub path: String,
    pub vector: Vec<f32>,
    /// When, where and with what it was taken (None: never read).
    pub meta: Option<PhotoMeta>,
}

/// A search result.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub source: String,
    pub path: String,
    /// Cosine similarity to the query (0 for files selected by scope alone).
    pub score: f32,
    pub meta: Option<PhotoMeta>,
}

/// Which files a search may return.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    /// Only files from this source.
    pub source: Option<String>,
    /// Only paths starting with this prefix (a folder, ending in `/`).
    pub prefix: Option<String>,
    /// Only files whose metadata passes (capture time, place, camera, format).
    pub filter: Filter,
}

impl Scope {
    /// Whether a file is in scope (what every backend computes, some on the server).
    pub fn contains(&self, source: &str, path: &str, meta: Option<&PhotoMeta>) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self.prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && (self.filter.is_empty() || self.filter.matches_meta(meta))
    }
}

/// A stable key for a file: the same on every machine and every run, unique across sources
/// (64 bits of SHA-256; Milvus's primary keys are signed, so the top bit is cleared).
pub fn key_of(source: &str, path: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    let d = h.finalize();
    (u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) >> 1) as i64
}

/// A collection of embeddings. Implementations are cheap to share across threads; every call
/// blocks until the backend has answered.
pub trait Collection: Send + Sync {
    /// Where it is, for messages (`/path/to/index`, `milvus://host:19530/photos`).
    fn location(&self) -> String;
    /// The model its vectors were embedded with; None while empty and unclaimed.
    fn model(&self) -> Result<Option<ModelIdentity>>;
    /// Records `model` for an unclaimed collection; refuses another model than the recorded
    /// one, as a local index does.
    fn claim(&self, model: &ModelIdentity) -> Result<()>;
    /// Inserts or replaces these files.
    fn upsert(&self, items: &[Item]) -> Result<()>;
    /// Removes these (source, path) files; absent ones are ignored.
    fn remove(&self, files: &[(String, String)]) -> Result<()>;
    /// The best `k` files in `scope`, best first.
    fn search(&self, query: &[f32], k: usize, scope: &Scope) -> Result<Vec<Found>>;
    /// Files held.
    fn count(&self) -> Result<usize>;
    /// Every (source, path) held.
    fn files(&self) -> Result<Vec<(String, String)>>;
    /// Every file in `scope`, with its metadata, in no order (a listing by date sorts them).
    fn select(&self, scope: &Scope) -> Result<Vec<Found>>;
    /// Every file in `scope` with its vector (whole-collection work: near-duplicates). Holds
    /// them all in memory: 2 KiB per file at 512 dimensions.
    fn items(&self, scope: &Scope) -> Result<Vec<Item>>;
    /// The files held under these keys ([`key_of`]), with their vectors; absent keys are
    /// left out.
    fn get(&self, keys: &[i64]) -> Result<Vec<Item>>;
    /// Makes everything written so far durable and visible to every reader.
    fn flush(&self) -> Result<()>;
    /// An id of this life of the collection, new each time it is created, so that a
    /// machine's record of what it pushed is known to describe this collection and not one
    /// dropped since (None: a backend whose data cannot vanish behind its one writer, as the
    /// local store's).
    fn incarnation(&self) -> Result<Option<String>> {
        Ok(None)
    }
    /// Files held from `source`: the cheap check of a machine's record on every push.
    fn count_source(&self, source: &str) -> Result<usize> {
        let scope = Scope {
            source: Some(source.to_string()),
            ..Scope::default()
        };
        Ok(self.select(&scope)?.len())
    }
}

/// Refuses `model` when the collection was claimed by another (the words a local index uses).
pub fn check_claim(location: &str, recorded: &ModelIdentity, model: &ModelIdentity) -> Result<()> {
    if recorded.same_model(model) && recorded.dim == model.dim {
        return Ok(());
    }
    Err(Error::Index(format!(
        "the collection {location} was built with model {} ({} dimensions), not {} ({} \
         dimensions): their embeddings are not comparable. Pass `--model {}` to use it, or \
         another collection",
        recorded.name, recorded.dim, model.name, model.dim, recorded.name
    )))
}

/// Today's local store behind the trait: files are catalogued under `/SOURCE/PATH`, so the
/// views, the graph and the exact scan serve collections fed by several sources unchanged.
pub struct LocalCollection {
    dir: std::path::PathBuf,
    store: super::Store,
    /// The view searched last, kept while no newer one is published.
    index: std::sync::Mutex<Option<crate::index::SearchIndex>>,
    /// Written since the last publication (a replaced vector changes no count).
    dirty: std::sync::atomic::AtomicBool,
}

impl LocalCollection {
    /// Opens (creating) the local collection in `dir`. It is that directory's one writer.
    pub fn open(dir: &Path) -> Result<Self> {
        let store = super::Store::open(dir, None)?;
        // Whether readers see all of it (once here: counting sled's files is a full scan).
        let stale = match super::view::read_manifest(dir)? {
            None => store.file_count() > 0,
            Some(v) => v.count != store.file_count() || store.max_id()? != v.max_id,
        };
        Ok(LocalCollection {
            dir: dir.to_path_buf(),
            store,
            index: std::sync::Mutex::new(None),
            dirty: std::sync::atomic::AtomicBool::new(stale),
        })
    }

    /// Publishes a view when readers would not see everything written (no fsync: that is
    /// `flush`'s).
    fn publish_if_stale(&self) -> Result<()> {
        if self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            crate::index::publish(&self.store)?;
        }
        Ok(())
    }

    fn catalog_path(source: &str, path: &str) -> std::path::PathBuf {
        format!("/{source}/{}", path.trim_start_matches('/')).into()
    }

    fn split(catalog: &Path) -> (String, String) {
        let s = catalog.to_string_lossy();
        let rest = s.trim_start_matches('/');
        match rest.split_once('/') {
            Some((source, path)) => (source.to_string(), format!("/{path}")),
            None => (rest.to_string(), String::new()),
        }
    }
}

impl Collection for LocalCollection {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn model(&self) -> Result<Option<ModelIdentity>> {
        self.store.model()
    }

    fn claim(&self, model: &ModelIdentity) -> Result<()> {
        match self.store.model()? {
            Some(m) => check_claim(&self.location(), &m, model),
            None => self.store.set_model(model),
        }
    }

    fn upsert(&self, items: &[Item]) -> Result<()> {
        let mut entries = Vec::with_capacity(items.len());
        for it in items {
            let path = Self::catalog_path(&it.source, &it.path);
            let bytes = super::f32_to_bytes(&it.vector);
            // A new id even for a file already held: a view's rows are immutable per id (the
            // next publication copies an id's vector from the previous view).
            let id = self.store.new_id()?;
            entries.push(super::NewEntry {
                record: super::FileRecord {
                    id,
                    size: 0,
                    mtime_ns: 0,
                    hash: super::content_hash(&bytes),
                    width: 0,
                    height: 0,
                    raw: None,
                    meta: it.meta.clone(),
                },
                path,
                embedding: Some(it.vector.clone()),
            });
        }
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        self.store.commit(&entries)
    }

    fn remove(&self, files: &[(String, String)]) -> Result<()> {
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        for (source, path) in files {
            self.store.remove_file(&Self::catalog_path(source, path))?;
        }
        self.store.collect_garbage()?;
        self.store.flush()
    }

    fn search(&self, query: &[f32], k: usize, scope: &Scope) -> Result<Vec<Found>> {
        self.with_index(|index| Ok(Self::search_in(index, query, k, scope)))
            .map(Option::unwrap_or_default)
    }

    fn count(&self) -> Result<usize> {
        Ok(self.store.file_count())
    }

    fn files(&self) -> Result<Vec<(String, String)>> {
        self.store
            .files()
            .map(|f| f.map(|(p, _)| Self::split(&p)))
            .collect()
    }

    fn select(&self, scope: &Scope) -> Result<Vec<Found>> {
        self.read_rows(scope, |view, row, (source, path)| Found {
            source,
            path,
            score: 0.0,
            meta: view.meta(row),
        })
    }

    fn items(&self, scope: &Scope) -> Result<Vec<Item>> {
        self.read_rows(scope, Self::item)
    }

    fn get(&self, keys: &[i64]) -> Result<Vec<Item>> {
        let wanted: std::collections::HashSet<i64> = keys.iter().copied().collect();
        // A scan: the local store is addressed by path; keys serve the shared collections.
        self.with_index(|index| {
            let view = index.view();
            Ok((0..view.len())
                .filter_map(|row| {
                    let file = Self::split(view.path(row));
                    wanted
                        .contains(&key_of(&file.0, &file.1))
                        .then(|| Self::item(view, row, file))
                })
                .collect())
        })
        .map(Option::unwrap_or_default)
    }

    fn flush(&self) -> Result<()> {
        self.store.flush()?;
        // And what readers see: a view is what searches read.
        self.publish_if_stale()
    }
}

impl LocalCollection {
    /// Runs `f` on the current view's search index (publishing first if writes are not yet
    /// visible); None while nothing is published.
    fn with_index<T>(
        &self,
        f: impl FnOnce(&crate::index::SearchIndex) -> Result<T>,
    ) -> Result<Option<T>> {
        self.publish_if_stale()?;
        let generation = super::view::read_manifest(&self.dir)?.map(|m| m.generation);
        let mut cached = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().map(|i| i.view().generation()) != generation {
            *cached = match crate::index::SearchIndex::open(&self.dir) {
                Err(Error::NoView(_)) => return Ok(None),
                other => Some(other?),
            };
        }
        match cached.as_ref() {
            Some(index) => f(index).map(Some),
            None => Ok(None),
        }
    }

    /// `read(view, row, (source, path))` of every published file in `scope`.
    fn read_rows<T>(
        &self,
        scope: &Scope,
        read: impl Fn(&super::view::View, usize, (String, String)) -> T,
    ) -> Result<Vec<T>> {
        self.with_index(|index| {
            let view = index.view();
            Ok(Self::rows_in(view, scope)
                .into_iter()
                .map(|row| read(view, row, Self::split(view.path(row))))
                .collect())
        })
        .map(Option::unwrap_or_default)
    }

    fn item(view: &super::view::View, row: usize, (source, path): (String, String)) -> Item {
        Item {
            source,
            path,
            vector: view.vector(row).to_vec(),
            meta: view.meta(row),
        }
    }

    /// Whether a view row is in the scope's source and folder (its filter aside), read on the
    /// catalog path `/SOURCE/PATH` without allocating: the exact scan asks about every file.
    fn in_place<'a>(view: &'a super::view::View, scope: &'a Scope) -> impl Fn(usize) -> bool + 'a {
        use std::os::unix::ffi::OsStrExt;
        let source = scope.source.as_ref().map(|s| format!("/{s}/"));
        let prefix = scope.prefix.as_deref().map(|p| p.trim_start_matches('/'));
        move |row| {
            let p = view.path(row).as_os_str().as_bytes();
            let Some(cut) = p.iter().skip(1).position(|&b| b == b'/').map(|i| i + 2) else {
                return false;
            };
            source.as_ref().is_none_or(|s| p.starts_with(s.as_bytes()))
                && prefix.is_none_or(|pre| p[cut..].starts_with(pre.as_bytes()))
        }
    }

    /// The rows in `scope`: the filter through the view's compiled metadata, then source and
    /// folder.
    fn rows_in(view: &super::view::View, scope: &Scope) -> Vec<usize> {
        let in_place = Self::in_place(view, scope);
        let rows: Vec<usize> = if scope.filter.is_empty() {
            (0..view.len()).collect()
        } else {
            view.select(&scope.filter)
        };
        rows.into_iter().filter(|&r| in_place(r)).collect()
    }

    fn search_in(
        index: &crate::index::SearchIndex,
        query: &[f32],
        k: usize,
        scope: &Scope,
    ) -> Vec<Found> {
        let view = index.view();
        let hits = if *scope == Scope::default() {
            index.search(query, k)
        } else {
            index.search_rows(query, k, &Self::rows_in(view, scope))
        };
        hits.into_iter()
            .filter_map(|h| {
                let row = view.row_of_id(h.id)?;
                let (source, path) = Self::split(view.path(row));
                Some(Found {
                    source,
                    path,
                    score: h.score,
                    meta: view.meta(row),
                })
            })
            .collect()
    }
}

/// How long a remote collection's requests are retried while its server does not answer (a
/// restart takes a few seconds; a cluster's failover up to a minute):
/// `CLIPSEARCH_MILVUS_RETRY_SECONDS`, 30 s by default. Bounded in time, not in attempts, so
/// that a vanished server is reported within it whatever the back-off: the Milvus client's
/// own retries of each request and the push's retries of each batch share it.
pub fn retry_window() -> std::time::Duration {
    let secs = std::env::var("CLIPSEARCH_MILVUS_RETRY_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(30.0);
    std::time::Duration::from_secs_f64(secs)
}
