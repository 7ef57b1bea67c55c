//! The query cache: a text query's embedding, kept from one search to the next so that a
//! repeated query loads no model at all.
//!
//! One small file per query under `<index>/query-cache/`, named by a hash of the model's
//! fingerprint and the text, written under a temporary name and renamed: any number of reader
//! processes share it without a lock (two writing the same query write the same bytes), and it
//! never touches the writer's database. The fingerprint in the name keeps a rebuilt index with
//! another model from reading the old model's vectors.

use std::path::{Path, PathBuf};

use clipsearch::model::ModelIdentity;
use clipsearch::store::{bytes_to_f32, f32_to_bytes};

/// Past this many entries the cache is emptied (a query costs one text-tower run to refill).
const MAX_ENTRIES: usize = 10_000;

pub(crate) struct QueryCache {
    dir: PathBuf,
    fingerprint: String,
    dim: usize,
}

impl QueryCache {
    pub(crate) fn new(index: &Path, model: &ModelIdentity) -> Self {
        QueryCache {
            dir: index.join("query-cache"),
            fingerprint: model.fingerprint.clone(),
            dim: model.dim,
        }
    }

    fn file(&self, text: &str) -> PathBuf {
        let mut key = Vec::with_capacity(self.fingerprint.len() + 1 + text.len());
        key.extend_from_slice(self.fingerprint.as_bytes());
        key.push(0);
        key.extend_from_slice(text.as_bytes());
        let name: String = clipsearch::store::content_hash(&key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(name)
    }

    pub(crate) fn get(&self, text: &str) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.file(text)).ok()?;
        (bytes.len() == 4 * self.dim).then(|| bytes_to_f32(&bytes))
    }

    /// Best effort: a cache that cannot be written costs only time.
    pub(crate) fn put(&self, text: &str, v: &[f32]) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let full = std::fs::read_dir(&self.dir)
            .map(|d| d.count() >= MAX_ENTRIES)
            .unwrap_or(false);
        if full {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::create_dir_all(&self.dir);
        }
        let path = self.file(text);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, f32_to_bytes(v)).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
