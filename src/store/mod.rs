//! The on-disk index: a sled database holding the catalog of files, their embeddings and the
//! persisted search structure (see ARCHITECTURE.md for the format).
//!
//! Trees:
//! - `files`: path (bytes) → [`FileRecord`] (JSON): the catalog; a file is indexed iff it is here.
//! - `ids`: file id (u64 big-endian) → path: resolves search hits; a removed file loses its id.
//! - `embeddings`: content hash (16 bytes) → f32 little-endian vector. Keyed by content, so
//!   duplicates are embedded once and a moved file reuses its vector with no model run.
//! - `failed`: path → [`FailedRecord`]: files that could not be indexed, with the reason, so that
//!   an unchanged bad file is not retried on every run.
//! - `meta`: format version, [`ModelIdentity`].
//!
//! sled admits one process at a time, so only the writer (an index run, `serve --watch`) opens
//! it. Readers search a published [`view`]: an immutable file beside the database holding every
//! live file's vector and catalog record, named by `view.json`. The writer publishes one
//! periodically during a run and at its end ([`crate::index::publish`]).
//!
//! Crash safety: each batch of new files is one multi-tree transaction (embedding, id and catalog
//! entry land together or not at all), followed by `flush()`: sled's durability point. A process
//! killed at any moment leaves a catalog that is a prefix of the run's work.

pub mod codes;
pub mod collection;
pub mod vectors;
pub mod view;
mod view_meta;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::{Error, Result};
use crate::model::ModelIdentity;

/// Version of the on-disk format. An index of a newer format is refused; an older one is
/// migrated or rebuilt. Version 2: readers search published views (`view.json`) instead of a
/// snapshot pointer in sled; a version-1 index is published on first use. Version 3: catalog
/// records carry photo metadata; records without it are completed by the next index run, which
/// reads only metadata for them (no decoding, no model).
pub const FORMAT_VERSION: u32 = 3;

/// 16 bytes of SHA-256 of a file's content.
pub type ContentHash = [u8; 16];

pub fn content_hash(bytes: &[u8]) -> ContentHash {
    use sha2::{Digest, Sha256};
    let full = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A file in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub id: u64,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    #[serde(with = "hex16")]
    pub hash: ContentHash,
    pub width: u32,
    pub height: u32,
    /// The camera RAW of the same shot beside this rendered image (same folder and name, RAW
    /// extension): indexed through this file, shown with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<PathBuf>,
    /// When, where and with what the photo was taken; None until read (an index of format 2
    /// or older: the next index run reads it, without decoding anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<crate::metadata::PhotoMeta>,
}

/// A file that could not be indexed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedRecord {
    pub size: u64,
    pub mtime_ns: i64,
    pub reason: String,
}

mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 16];
        if s.len() != 32 {
            return Err(serde::de::Error::custom("bad hash length"));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

/// A new or updated catalog entry with its embedding, committed together.
pub struct NewEntry {
    pub path: PathBuf,
    pub record: FileRecord,
    /// None when the embedding of this content is already stored (duplicate or moved file).
    pub embedding: Option<Vec<f32>>,
}

/// An open index.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    files: sled::Tree,
    ids: sled::Tree,
    embeddings: sled::Tree,
    failed: sled::Tree,
    meta: sled::Tree,
    /// path → content hash of what was last pushed to a remote collection (Milvus), for
    /// indexes that are a machine's local catalog of one.
    pushed: sled::Tree,
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

pub(crate) fn path_key(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

/// Decodes one `path -> JSON record` entry of the `files` or `failed` tree.
fn decode_record<T: serde::de::DeserializeOwned>(
    item: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<(PathBuf, T)> {
    let (k, v) = item.map_err(store_err)?;
    Ok((key_path(&k), serde_json::from_slice(&v).map_err(store_err)?))
}

/// Modification time in nanoseconds since the epoch, as the catalog records it.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `dir` as a key prefix that matches only paths inside it (`/a/b/`, never `/a/bc`).
pub fn dir_prefix(dir: &Path) -> Vec<u8> {
    let mut k = path_key(dir);
    if k.last() != Some(&b'/') {
        k.push(b'/');
    }
    k
}

pub(crate) fn key_path(k: &[u8]) -> PathBuf {
    key_path_ref(k).to_path_buf()
}

pub(crate) fn key_path_ref(k: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(k))
}

/// Whether opening sled failed because another handle holds its file lock. sled 0.34 reports
/// that as an `Other` error, "could not acquire lock on ...: ... WouldBlock" (its config.rs), not
/// as `WouldBlock` itself.
fn lock_held(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

/// Who holds an index, written beside the database so that a second process can say so.
#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    command: String,
}

impl Store {
    /// Opens an index that must already exist (queries never create one).
    pub fn open_existing(dir: &Path) -> Result<Self> {
        if !dir.join("db").exists() {
            return Err(Error::NoIndex(dir.to_path_buf()));
        }
        Self::open(dir, None)
    }

    /// Opens (creating if needed) the index at `dir`. `model` is checked against the index's
    /// recorded model; `None` skips the check (commands that use no model).
    pub fn open(dir: &Path, model: Option<&ModelIdentity>) -> Result<Self> {
        match Self::open_db(dir)? {
            Some(db) => Self::with_db(dir, db, model),
            None => Err(busy(dir)),
        }
    }

    /// Opens the existing index at `dir` if no other process holds it; None if one does.
    pub fn open_if_free(dir: &Path) -> Result<Option<Self>> {
        match Self::open_db(dir)? {
            Some(db) => Self::with_db(dir, db, None).map(Some),
            None => Ok(None),
        }
    }

    /// sled's database, or None while another process holds its lock.
    fn open_db(dir: &Path) -> Result<Option<sled::Db>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 << 20);
        let mut attempt = config.open();
        // sled releases its lock from a background thread once the last handle is gone: a
        // reopen right after a close (ours, or a holder that just exited and removed its
        // holder.json) can find it still held for a moment.
        // (Up to 10 s: on a loaded machine that thread can be slow to run.)
        for _ in 0..200 {
            match &attempt {
                Err(e)
                    if lock_held(e) && holder_pid(dir).is_none_or(|p| p == std::process::id()) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    attempt = config.open();
                }
                _ => break,
            }
        }
        match attempt {
            Ok(db) => Ok(Some(db)),
            Err(e) if lock_held(&e) => Ok(None),
            Err(other) => Err(Error::Store(format!(
                "cannot open the index at {}: {other}; if it is damaged, delete that folder \
                 and index again",
                dir.display()
            ))),
        }
    }

    fn with_db(dir: &Path, db: sled::Db, model: Option<&ModelIdentity>) -> Result<Self> {
        let holder = Holder {
            pid: std::process::id(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        };
        let _ = std::fs::write(
            dir.join("holder.json"),
            serde_json::to_vec(&holder).unwrap_or_default(),
        );
        let open = |name: &str| db.open_tree(name).map_err(store_err);
        let store = Store {
            path: dir.to_path_buf(),
            files: open("files")?,
            ids: open("ids")?,
            embeddings: open("embeddings")?,
            failed: open("failed")?,
            meta: open("meta")?,
            pushed: open("pushed")?,
            db,
        };
        store.check_format()?;
        if let Some(m) = model {
            store.check_model(m)?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_format(&self) -> Result<()> {
        match self.meta.get("format_version").map_err(store_err)? {
            None => {
                self.meta
                    .insert("format_version", &FORMAT_VERSION.to_le_bytes())
                    .map_err(store_err)?;
                Ok(())
            }
            Some(v) => {
                let v = u32::from_le_bytes(v.as_ref().try_into().map_err(store_err)?);
                if v > FORMAT_VERSION {
                    Err(Error::TooNew(format!(
                        "the index at {} has format version {v}, newer than this clipsearch \
                         understands ({FORMAT_VERSION}): upgrade clipsearch, or use another --index",
                        self.path.display()
                    )))
                } else {
                    if v < FORMAT_VERSION {
                        // 1 -> 2 -> 3 change nothing in sled itself: the view is published
                        // by the first writer (or reader) that finds none, and records
                        // without metadata get it in the next index run.
                        self.meta
                            .insert("format_version", &FORMAT_VERSION.to_le_bytes())
                            .map_err(store_err)?;
                    }
                    Ok(())
                }
            }
        }
    }

    /// The model recorded in the index, if any file was ever indexed.
    pub fn model(&self) -> Result<Option<ModelIdentity>> {
        match self.meta.get("model").map_err(store_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(store_err),
        }
    }

    fn check_model(&self, model: &ModelIdentity) -> Result<()> {
        let record = |m: &ModelIdentity| -> Result<()> {
            self.meta
                .insert("model", serde_json::to_vec(m).map_err(store_err)?)
                .map_err(store_err)?;
            Ok(())
        };
        match self.model()? {
            None => record(model),
            Some(m)
                if model.same_model(&m)
                    && m.dim == model.dim
                    && m.preprocess_version == model.preprocess_version
                    && m.decode == model.decode
                    && m.precision == model.precision =>
            {
                if m.fingerprint != model.fingerprint {
                    // Recorded by an older clipsearch (sampled fingerprint): now the full one.
                    record(model)?;
                }
                Ok(())
            }
            Some(m)
                if model.same_model(&m)
                    && (m.decode != model.decode || m.precision != model.precision) =>
            {
                let mode = |m: &ModelIdentity| {
                    format!("{} JPEG decoding, {} image tower", m.decode, m.precision)
                };
                let fast = m.is_fast_mode();
                Err(Error::Incompatible(format!(
                    "the index at {} was built in {} mode ({}), not {}: run with{} `--fast` \
                     to keep it consistent, or `--rebuild`",
                    self.path.display(),
                    if fast { "fast" } else { "exact" },
                    mode(&m),
                    mode(model),
                    if fast { "" } else { "out" }
                )))
            }
            Some(m) if model.same_model(&m) => Err(Error::Incompatible(format!(
                "the index at {} was built with an older image preprocessing (version {}, now {}): \
                 rebuild it with `clipsearch index --rebuild DIR...`",
                self.path.display(),
                m.preprocess_version,
                model.preprocess_version
            ))),
            Some(m) => Err(Error::Incompatible(format!(
                "the index at {} was built with model {} ({} dimensions), not {} ({} dimensions): \
                 their embeddings are not comparable. Pass `--model {}` to use this index, or \
                 `--index OTHER_DIR` for a separate index, or `clipsearch index --rebuild` to \
                 re-embed everything with the new model",
                self.path.display(),
                m.name,
                m.dim,
                model.name,
                model.dim,
                m.name
            ))),
        }
    }

    /// Records the model of an index that has none yet.
    pub fn set_model(&self, model: &ModelIdentity) -> Result<()> {
        self.meta
            .insert("model", serde_json::to_vec(model).map_err(store_err)?)
            .map_err(store_err)?;
        self.flush()
    }

    /// Forgets every file and embedding and records `model` (for `--rebuild`).
    pub fn clear(&self, model: &ModelIdentity) -> Result<()> {
        for t in [
            &self.files,
            &self.ids,
            &self.embeddings,
            &self.failed,
            &self.pushed,
        ] {
            t.clear().map_err(store_err)?;
        }
        self.meta
            .insert("model", serde_json::to_vec(model).map_err(store_err)?)
            .map_err(store_err)?;
        self.flush()
    }

    pub fn file(&self, path: &Path) -> Result<Option<FileRecord>> {
        match self.files.get(path_key(path)).map_err(store_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(store_err),
        }
    }

    pub fn failed(&self, path: &Path) -> Result<Option<FailedRecord>> {
        match self.failed.get(path_key(path)).map_err(store_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(store_err),
        }
    }

    pub fn path_of(&self, id: u64) -> Result<Option<PathBuf>> {
        Ok(self
            .ids
            .get(id.to_be_bytes())
            .map_err(store_err)?
            .map(|v| key_path(&v)))
    }

    pub fn has_embedding(&self, hash: &ContentHash) -> Result<bool> {
        self.embeddings.contains_key(hash).map_err(store_err)
    }

    pub fn embedding(&self, hash: &ContentHash) -> Result<Option<Vec<f32>>> {
        Ok(self
            .embeddings
            .get(hash)
            .map_err(store_err)?
            .map(|v| bytes_to_f32(&v)))
    }

    /// The embedding of an indexed file.
    pub fn embedding_of(&self, path: &Path) -> Result<Option<Vec<f32>>> {
        match self.file(path)? {
            None => Ok(None),
            Some(r) => self.embedding(&r.hash),
        }
    }

    /// A fresh file id, unique even across crashes.
    pub fn new_id(&self) -> Result<u64> {
        self.db.generate_id().map_err(store_err)
    }

    /// Commits a batch of files atomically, then flushes.
    pub fn commit(&self, entries: &[NewEntry]) -> Result<()> {
        let res: std::result::Result<(), TransactionError<Error>> =
            (&self.files, &self.ids, &self.embeddings, &self.failed).transaction(
                |(files, ids, embeddings, failed)| {
                    for e in entries {
                        let key = path_key(&e.path);
                        if let Some(old) = files.get(&key)? {
                            let old: FileRecord = serde_json::from_slice(&old).map_err(|err| {
                                ConflictableTransactionError::Abort(store_err(err))
                            })?;
                            ids.remove(&old.id.to_be_bytes())?;
                        }
                        if let Some(v) = &e.embedding {
                            embeddings.insert(&e.record.hash, f32_to_bytes(v))?;
                        }
                        ids.insert(&e.record.id.to_be_bytes(), key.clone())?;
                        let rec = serde_json::to_vec(&e.record)
                            .map_err(|err| ConflictableTransactionError::Abort(store_err(err)))?;
                        files.insert(key.clone(), rec)?;
                        failed.remove(key)?;
                    }
                    Ok(())
                },
            );
        res.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => store_err(e),
        })?;
        self.flush()
    }

    /// Sets the RAW companion of an indexed file (keeping its id and embedding); true if it
    /// changed.
    pub fn set_raw(&self, path: &Path, raw: Option<&Path>) -> Result<bool> {
        let Some(mut rec) = self.file(path)? else {
            return Ok(false);
        };
        if rec.raw.as_deref() == raw {
            return Ok(false);
        }
        rec.raw = raw.map(Path::to_path_buf);
        self.files
            .insert(path_key(path), serde_json::to_vec(&rec).map_err(store_err)?)
            .map_err(store_err)?;
        Ok(true)
    }

    /// Sets the metadata of an indexed file (keeping its id and embedding).
    pub fn set_meta(&self, path: &Path, meta: crate::metadata::PhotoMeta) -> Result<bool> {
        let Some(mut rec) = self.file(path)? else {
            return Ok(false);
        };
        rec.meta = Some(meta);
        self.files
            .insert(path_key(path), serde_json::to_vec(&rec).map_err(store_err)?)
            .map_err(store_err)?;
        // A shared collection holds the file without this metadata: the next push sends it
        // again (same content, now with its metadata).
        self.pushed.remove(path_key(path)).map_err(store_err)?;
        Ok(true)
    }

    /// Records files that could not be indexed (and drops any stale catalog entry for them).
    pub fn record_failures(&self, failures: &[(PathBuf, FailedRecord)]) -> Result<()> {
        for (path, rec) in failures {
            self.remove_file(path)?;
            self.failed
                .insert(path_key(path), serde_json::to_vec(rec).map_err(store_err)?)
                .map_err(store_err)?;
        }
        self.flush()
    }

    /// Removes a file from the catalog (its embedding stays while another file shares it;
    /// [`Store::collect_garbage`] drops orphans).
    pub fn remove_file(&self, path: &Path) -> Result<Option<FileRecord>> {
        let key = path_key(path);
        self.failed.remove(&key).map_err(store_err)?;
        let Some(old) = self.files.remove(&key).map_err(store_err)? else {
            return Ok(None);
        };
        let rec: FileRecord = serde_json::from_slice(&old).map_err(store_err)?;
        self.ids.remove(rec.id.to_be_bytes()).map_err(store_err)?;
        Ok(Some(rec))
    }

    /// Deletes embeddings no catalog entry refers to.
    pub fn collect_garbage(&self) -> Result<usize> {
        let mut live = std::collections::HashSet::new();
        for item in self.files.iter() {
            let (_, v) = item.map_err(store_err)?;
            let r: FileRecord = serde_json::from_slice(&v).map_err(store_err)?;
            live.insert(r.hash);
        }
        let mut removed = 0;
        for item in self.embeddings.iter() {
            let (k, _) = item.map_err(store_err)?;
            if !live.contains(k.as_ref()) {
                self.embeddings.remove(k).map_err(store_err)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every catalogued file, in path order.
    pub fn files(&self) -> impl Iterator<Item = Result<(PathBuf, FileRecord)>> + '_ {
        self.files.iter().map(decode_record)
    }

    /// Every file that failed, in path order.
    pub fn failures(&self) -> impl Iterator<Item = Result<(PathBuf, FailedRecord)>> + '_ {
        self.failed.iter().map(decode_record)
    }

    /// Catalogued files under `dir` (a path prefix at a component boundary).
    pub fn files_under(
        &self,
        dir: &Path,
    ) -> impl Iterator<Item = Result<(PathBuf, FileRecord)>> + '_ {
        self.files.scan_prefix(dir_prefix(dir)).map(decode_record)
    }

    /// Failed files under `dir`.
    pub fn failures_under(
        &self,
        dir: &Path,
    ) -> impl Iterator<Item = Result<(PathBuf, FailedRecord)>> + '_ {
        self.failed.scan_prefix(dir_prefix(dir)).map(decode_record)
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Files whose id is at least `start` (with `max_id + 1` of a view: the files committed
    /// after it). Ids start at 0.
    pub fn ids_from(&self, start: u64) -> impl Iterator<Item = Result<(u64, PathBuf)>> + '_ {
        self.ids.range(start.to_be_bytes()..).map(|item| {
            let (k, v) = item.map_err(store_err)?;
            let id = u64::from_be_bytes(k.as_ref().try_into().map_err(store_err)?);
            Ok((id, key_path(&v)))
        })
    }

    /// The highest live file id.
    pub fn max_id(&self) -> Result<Option<u64>> {
        match self.ids.last().map_err(store_err)? {
            None => Ok(None),
            Some((k, _)) => Ok(Some(u64::from_be_bytes(
                k.as_ref().try_into().map_err(store_err)?,
            ))),
        }
    }

    pub fn is_live(&self, id: u64) -> Result<bool> {
        self.ids.contains_key(id.to_be_bytes()).map_err(store_err)
    }

    pub(crate) fn meta_get(&self, key: &str) -> Result<Option<sled::IVec>> {
        self.meta.get(key).map_err(store_err)
    }

    pub(crate) fn meta_remove(&self, key: &str) -> Result<()> {
        self.meta.remove(key).map(|_| ()).map_err(store_err)
    }

    /// The content last pushed to the remote collection for `path`, if any.
    pub fn pushed(&self, path: &Path) -> Result<Option<ContentHash>> {
        Ok(self
            .pushed
            .get(path_key(path))
            .map_err(store_err)?
            .and_then(|v| v.as_ref().try_into().ok()))
    }

    /// Records what the remote collection now holds for these paths (None: nothing).
    pub fn set_pushed(&self, paths: &[(PathBuf, Option<ContentHash>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (p, h) in paths {
            match h {
                Some(h) => batch.insert(path_key(p), h.to_vec()),
                None => batch.remove(path_key(p)),
            }
        }
        self.pushed.apply_batch(batch).map_err(store_err)?;
        self.flush()
    }

    /// The incarnation of the shared collection that the `pushed` tree describes (see
    /// `Collection::incarnation`), if recorded.
    pub fn pushed_to(&self) -> Result<Option<String>> {
        Ok(self
            .meta_get("pushed_to")?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Starts a new record of what is pushed, to the collection of `incarnation`: forgets
    /// every mark first, then records the incarnation (a crash in between leaves marks
    /// forgotten under the old or no incarnation: the next push forgets them again).
    pub fn start_pushing_to(&self, incarnation: &str) -> Result<()> {
        self.pushed.clear().map_err(store_err)?;
        self.flush()?;
        self.meta
            .insert("pushed_to", incarnation.as_bytes())
            .map_err(store_err)?;
        self.flush()
    }

    /// How many files the remote collection holds from this machine, by its record.
    pub fn pushed_count(&self) -> usize {
        self.pushed.len()
    }

    /// Every path the remote collection holds, by this machine's record.
    pub fn pushed_paths(&self) -> impl Iterator<Item = Result<PathBuf>> + '_ {
        self.pushed
            .iter()
            .map(|item| item.map(|(k, _)| key_path(&k)).map_err(store_err))
    }

    /// Number of files that could not be indexed.
    pub fn failure_count(&self) -> usize {
        self.failed.len()
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(store_err)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.db.flush();
        let _ = std::fs::remove_file(self.path.join("holder.json"));
    }
}

fn holder_pid(dir: &Path) -> Option<u32> {
    let h: Holder = serde_json::from_slice(&std::fs::read(dir.join("holder.json")).ok()?).ok()?;
    Some(h.pid)
}

fn busy(dir: &Path) -> Error {
    let holder: Option<Holder> = std::fs::read(dir.join("holder.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let server: Option<serde_json::Value> = std::fs::read(dir.join("server.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let who = match &holder {
        Some(h) => format!("process {} (`{}`)", h.pid, h.command),
        None => "another process".to_string(),
    };
    let serving = server.filter(|s| {
        holder
            .as_ref()
            .is_some_and(|h| s["pid"].as_u64() == Some(h.pid as u64))
    });
    if let Some(url) = serving.as_ref().and_then(|s| s["url"].as_str()) {
        return Error::Busy(format!(
            "the index at {} is kept current by the server {who} ({url}), which is its one \
             writer: it indexes the folders it watches; stop it to index from here (searches \
             work either way)",
            dir.display()
        ));
    }
    Error::Busy(format!(
        "the index at {} is in use by {who}, and an index has one writer at a time. Wait for \
         it to finish (searches work meanwhile), or stop it (an interrupted index run resumes \
         next time), or pass a different --index",
        dir.display()
    ))
}

pub fn f32_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
