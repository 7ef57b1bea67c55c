//! The storage trait: a collection of embeddings with the files they came from, as every
//! backend keeps it. Two implementations: `LocalCollection` (`crate::index::collection`: this
//! crate's sled catalog and published views, in one directory) and Milvus
//! (`clipsearch-milvus`, for collections that outgrow one machine). One test suite runs
//! against both (`milvus/tests/collection.rs`).
//!
//! Files are named by a *source* (the machine or root label that indexed them) and their path
//! on it, so that results say where a file lives when many machines feed one collection.
//! Writes are idempotent upserts keyed by (source, path): repeating a batch after a crash
//! leaves the same collection, never duplicates. Vectors are unit length and scored by dot
//! product (cosine).

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
    Err(Error::Incompatible(format!(
        "the collection {location} was built with model {} ({} dimensions), not {} ({} \
         dimensions): their embeddings are not comparable. Pass `--model {}` to use it, or \
         another collection",
        recorded.name, recorded.dim, model.name, model.dim, recorded.name
    )))
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
