//! The on-disk index: a sled database holding the catalog of files, their embeddings and the
//! persisted search structure (see ARCHITECTURE.md for the format).
//!
//! Trees:
//! - `files`: path (bytes) → [`FileRecord`] ([`record`]'s encoding): the catalog; a file is
//!   indexed iff it is here.
//! - `ids`: file id (u64 big-endian) → path: resolves search hits; a removed file loses its id.
//!   A catalog entry that changes in any way gets a new id, so that a publication finds what
//!   changed as the ids above the last view's highest.
//! - `embeddings`: content hash (16 bytes) → where the vector is in the pending log
//!   ([`pending`]), for content not yet in a published segment. A publication moves them into
//!   its segment. (Format 3 stored the f32 vector itself here; such values are still read.)
//! - `located`: content hash → the id of a file whose segment row holds its vector. Vectors are
//!   keyed by content, so duplicates are embedded once and a moved file reuses its vector with
//!   no model run; once published they are kept only in the segments (one copy on disk).
//!   Invariant: every catalogued file's content is pending or located at a row that some
//!   segment of the view in force holds (deleted or not).
//! - `removals`: ids removed or replaced since the last publication (its deleted list's news).
//! - `refs`: content hash → how many catalogued files have it (u32 big-endian), so that a merge
//!   dropping the row that held a vector knows whether anyone still needs it.
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
pub mod merge;
mod pending;
mod record;
pub mod segment;
pub mod vectors;
pub mod view;
mod view_meta;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use record::{content_hash, dir_prefix, ContentHash, FailedRecord, FileRecord};
pub(crate) use record::{key_path, path_key};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::{Error, Result};
use crate::model::ModelIdentity;

/// Version of the on-disk format. An index of a newer format is refused; an older one is
/// migrated or rebuilt. Version 2: readers search published views (`view.json`) instead of a
/// snapshot pointer in sled; a version-1 index is published on first use. Version 3: catalog
/// records carry photo metadata; records without it are completed by the next index run, which
/// reads only metadata for them (no decoding, no model). Version 4: records in [`record`]'s
/// encoding, vectors kept in sled only until published (`located`); an older index keeps its
/// JSON records (both are read) and moves its vectors out at its next publication.
pub const FORMAT_VERSION: u32 = 4;

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
    located: sled::Tree,
    removals: sled::Tree,
    refs: sled::Tree,
    failed: sled::Tree,
    meta: sled::Tree,
    /// path → content hash of what was last pushed to a remote collection (Milvus), for
    /// indexes that are a machine's local catalog of one.
    pushed: sled::Tree,
    /// The view this writer published last, for vectors that are only in its segments.
    published: std::sync::Mutex<Option<std::sync::Arc<view::View>>>,
    /// The merge of segments running in the background, if any (see [`merge`]).
    merges: merge::Merges,
    /// Vectors not yet published.
    log: pending::PendingLog,
}

/// `meta` key set while the next publication must start the view afresh.
const REPUBLISH: &str = "republish";

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

/// Decodes one `path -> record` entry of the `files` tree.
fn decode_file(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(PathBuf, FileRecord)> {
    let (k, v) = item.map_err(store_err)?;
    Ok((key_path(&k), record::decode(&v).map_err(store_err)?))
}

/// Decodes one `path -> JSON record` entry of the `failed` tree.
fn decode_failure(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(PathBuf, FailedRecord)> {
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

/// sled's configuration for the database at `db`, with the storage parameters it was created
/// with (sled refuses to open a database with others), and for a new database clipsearch's:
/// log segments of 8 MiB rather than sled's 512 KiB, and zstd compression of the log. The
/// catalog's commits rewrite leaves all over its trees (content hashes are random keys), and
/// the log keeps much of what they replace until its segments are cleaned. Written as an index
/// run writes them, 100,000 files took 1,857 bytes a file with sled's defaults, 1,220 with
/// 8 MiB segments and 564 compressed too, for 2.8x the time in sled (still 0.2 ms a file;
/// `cargo bench -p clipsearch --bench sled_space`). An index created before either keeps what
/// it has. Anything that opens an index's database directly (tests, tools) must use this.
pub fn sled_config(db: &Path) -> sled::Config {
    // sled's `conf`: `key: value` lines, then a CRC (binary, hence the lossy decode).
    let conf = std::fs::read(db.join("conf")).ok();
    let conf = conf.as_deref().map(String::from_utf8_lossy);
    let stored = |key: &str| {
        conf.as_ref()?
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .map(|v| v.trim().to_string())
    };
    let segment_size = stored("segment_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEGMENT_SIZE);
    let compressed = stored("use_compression").is_none_or(|v| v.starts_with("true"));
    sled::Config::new()
        .path(db)
        .cache_capacity(64 << 20)
        .segment_size(segment_size)
        .use_compression(compressed)
        // zstd's fastest level: level 3 saved 1.5% more bytes (a trial of that benchmark).
        .compression_factor(1)
}

const SEGMENT_SIZE: usize = 8 << 20;

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
        let config = sled_config(&dir.join("db"));
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
            located: open("located")?,
            removals: open("removals")?,
            refs: open("refs")?,
            failed: open("failed")?,
            meta: open("meta")?,
            pushed: open("pushed")?,
            published: std::sync::Mutex::new(None),
            merges: merge::Merges::default(),
            log: pending::PendingLog::new(dir),
            db,
        };
        store.check_format()?;
        store.count_refs()?;
        if let Some(m) = model {
            store.check_model(m)?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's background merges of segments.
    pub(crate) fn merges(&self) -> &merge::Merges {
        &self.merges
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
                        // 1 -> 2 -> 3 -> 4 change nothing in sled itself: the view is
                        // published by the first writer (or reader) that finds none, records
                        // without metadata get it in the next index run, JSON records are
                        // still read, and the next publication moves the vectors out.
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

    /// Forgets every file and embedding and records `model` (for `--rebuild`). The next
    /// publication starts the view afresh.
    pub fn clear(&self, model: &ModelIdentity) -> Result<()> {
        self.merges.cancel();
        for t in [
            &self.files,
            &self.ids,
            &self.embeddings,
            &self.located,
            &self.removals,
            &self.refs,
            &self.failed,
            &self.pushed,
        ] {
            t.clear().map_err(store_err)?;
        }
        self.log.close();
        self.log.remove_all_but(None);
        self.meta.insert(REPUBLISH, &[1]).map_err(store_err)?;
        self.meta
            .insert("model", serde_json::to_vec(model).map_err(store_err)?)
            .map_err(store_err)?;
        self.flush()
    }

    /// Counts the files of each content once, for an index written before `refs` existed.
    fn count_refs(&self) -> Result<()> {
        if self.meta.contains_key("refs").map_err(store_err)? {
            return Ok(());
        }
        let mut counts: std::collections::HashMap<ContentHash, u32> = Default::default();
        for item in self.files() {
            *counts.entry(item?.1.hash).or_default() += 1;
        }
        self.refs.clear().map_err(store_err)?;
        let mut batch = sled::Batch::default();
        for (h, n) in counts {
            batch.insert(h.as_slice(), &n.to_be_bytes());
        }
        self.refs.apply_batch(batch).map_err(store_err)?;
        self.meta.insert("refs", &[1]).map_err(store_err)?;
        self.flush()
    }

    /// How many catalogued files have this content.
    pub(crate) fn refs(&self, hash: &ContentHash) -> Result<u32> {
        Ok(self
            .refs
            .get(hash)
            .map_err(store_err)?
            .map_or(0, |v| count_of(&v)))
    }

    /// Whether the next publication must write the view afresh rather than what changed.
    pub(crate) fn must_republish(&self) -> Result<bool> {
        self.meta.contains_key(REPUBLISH).map_err(store_err)
    }

    pub(crate) fn republished(&self) -> Result<()> {
        self.meta.remove(REPUBLISH).map_err(store_err)?;
        Ok(())
    }

    pub fn file(&self, path: &Path) -> Result<Option<FileRecord>> {
        match self.files.get(path_key(path)).map_err(store_err)? {
            None => Ok(None),
            Some(v) => record::decode(&v).map(Some).map_err(store_err),
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

    /// Whether the embedding of this content is stored (pending or in a published segment).
    pub fn has_embedding(&self, hash: &ContentHash) -> Result<bool> {
        Ok(self.embeddings.contains_key(hash).map_err(store_err)?
            || self.located.contains_key(hash).map_err(store_err)?)
    }

    pub fn embedding(&self, hash: &ContentHash) -> Result<Option<Vec<f32>>> {
        if let Some(v) = self.pending(hash)? {
            return Ok(Some(v));
        }
        let Some(id) = self.located(hash)? else {
            return Ok(None);
        };
        let view = self.published_view()?;
        Ok(view
            .as_ref()
            .and_then(|v| v.physical_vector(id))
            .map(<[f32]>::to_vec))
    }

    /// The embedding of this content if it is pending (not yet in a published segment).
    pub(crate) fn pending(&self, hash: &ContentHash) -> Result<Option<Vec<f32>>> {
        match self.embeddings.get(hash).map_err(store_err)? {
            None => Ok(None),
            Some(v) => self.pending_value(&v).map(Some),
        }
    }

    /// A value of the `embeddings` tree: a place in the pending log, or (format 3) the vector.
    fn pending_value(&self, v: &[u8]) -> Result<Vec<f32>> {
        match pending::Locator::decode(v) {
            Some(at) => self.log.read(&at),
            None => Ok(bytes_to_f32(v)),
        }
    }

    /// After a publication: deletes the pending logs whose vectors are all published, copying
    /// the few that are not (and any format 3 left in sled) into a fresh log when that frees
    /// space. Costs what stays pending, which a publication leaves near none.
    pub(crate) fn rotate_pending(&self) -> Result<()> {
        // sled must no longer name what is deleted below, even after a crash.
        self.flush()?;
        let entries: Vec<(sled::IVec, sled::IVec)> = self
            .embeddings
            .iter()
            .collect::<sled::Result<_>>()
            .map_err(store_err)?;
        let current = self.log.current();
        if entries.is_empty() {
            self.log.close();
            self.log.remove_all_but(None);
            return Ok(());
        }
        let mut live = 0u64;
        let mut elsewhere = false;
        for (_, v) in &entries {
            match pending::Locator::decode(v) {
                Some(at) if Some(at.generation) == current => live += 4 * at.len as u64,
                _ => elsewhere = true,
            }
        }
        if !elsewhere && 2 * live >= self.log.len() {
            self.log.remove_all_but(current);
            return Ok(());
        }
        let vectors: Vec<Vec<f32>> = entries
            .iter()
            .map(|(_, v)| self.pending_value(v))
            .collect::<Result<_>>()?;
        self.log.close();
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let at = self.log.append(&refs, || self.new_id())?;
        let mut batch = sled::Batch::default();
        for ((k, _), at) in entries.iter().zip(at) {
            batch.insert(k.clone(), at.encode().to_vec());
        }
        self.embeddings.apply_batch(batch).map_err(store_err)?;
        self.flush()?;
        self.log.remove_all_but(self.log.current());
        Ok(())
    }

    /// The id of a file whose segment row holds this content's vector.
    pub(crate) fn located(&self, hash: &ContentHash) -> Result<Option<u64>> {
        Ok(self
            .located
            .get(hash)
            .map_err(store_err)?
            .and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?))))
    }

    /// The view this writer published last (opened from the manifest on first use).
    pub(crate) fn published_view(&self) -> Result<Option<std::sync::Arc<view::View>>> {
        let mut held = self.published.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            if let Some(m) = view::read_manifest(&self.path)? {
                *held = Some(std::sync::Arc::new(view::View::open(&self.path, m)?));
            }
        }
        Ok(held.clone())
    }

    pub(crate) fn set_published_view(&self, v: Option<std::sync::Arc<view::View>>) {
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    /// Records where published vectors are (`located`), puts back to pending the vectors of
    /// rows a publication drops that files still need (`pending`), and forgets where the
    /// others were (`forget`: content no file has any more), then flushes.
    pub(crate) fn relocate(
        &self,
        located: &[(ContentHash, u64)],
        pending: &[(ContentHash, Vec<f32>)],
        forget: &[ContentHash],
    ) -> Result<()> {
        let mut to_pending = sled::Batch::default();
        let mut unlocate = sled::Batch::default();
        for h in forget {
            unlocate.remove(h.as_slice());
        }
        let vectors: Vec<&[f32]> = pending.iter().map(|(_, v)| v.as_slice()).collect();
        let at = self.log.append(&vectors, || self.new_id())?;
        for ((h, _), at) in pending.iter().zip(at) {
            to_pending.insert(h.as_slice(), at.encode().to_vec());
            unlocate.remove(h.as_slice());
        }
        self.embeddings.apply_batch(to_pending).map_err(store_err)?;
        self.located.apply_batch(unlocate).map_err(store_err)?;
        let mut locate = sled::Batch::default();
        for (h, id) in located {
            locate.insert(h.as_slice(), &id.to_be_bytes());
        }
        self.located.apply_batch(locate).map_err(store_err)?;
        self.flush()
    }

    /// How many vectors sled holds: those not yet published (and, after a crash between a
    /// publication and its clean-up, ones a segment holds too, until the next publication).
    pub fn pending_embeddings(&self) -> usize {
        self.embeddings.len()
    }

    /// Every pending content hash.
    pub(crate) fn pending_hashes(&self) -> Result<Vec<ContentHash>> {
        self.embeddings
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(store_err)?;
                k.as_ref().try_into().map_err(store_err)
            })
            .collect()
    }

    /// Drops pending vectors (now in a published segment).
    pub(crate) fn drop_pending(&self, hashes: &[ContentHash]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for h in hashes {
            batch.remove(h.as_slice());
        }
        self.embeddings.apply_batch(batch).map_err(store_err)
    }

    /// Ids removed or replaced since the last publication, ascending.
    pub(crate) fn removals(&self) -> Result<Vec<u64>> {
        self.removals
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(store_err)?;
                Ok(u64::from_be_bytes(
                    k.as_ref().try_into().map_err(store_err)?,
                ))
            })
            .collect()
    }

    /// Forgets removals that a published deleted list now holds.
    pub(crate) fn drop_removals(&self, ids: &[u64]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(&id.to_be_bytes());
        }
        self.removals.apply_batch(batch).map_err(store_err)
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

    /// Commits a batch of files atomically, then flushes. New vectors go to the pending log
    /// first (fsynced), so that the transaction that names them finds them there.
    pub fn commit(&self, entries: &[NewEntry]) -> Result<()> {
        let fresh: Vec<&[f32]> = entries
            .iter()
            .filter_map(|e| e.embedding.as_deref())
            .collect();
        let mut at = self.log.append(&fresh, || self.new_id())?.into_iter();
        let located: Vec<Option<[u8; 21]>> = entries
            .iter()
            .map(|e| {
                e.embedding
                    .as_ref()
                    .and_then(|_| at.next())
                    .map(|a| a.encode())
            })
            .collect();
        let res: std::result::Result<(), TransactionError<Error>> =
            (
                &self.files,
                &self.ids,
                &self.embeddings,
                &self.failed,
                &self.removals,
                &self.refs,
            )
                .transaction(|(files, ids, embeddings, failed, removals, refs)| {
                    let add = |h: &ContentHash, by: i64| -> sled::transaction::ConflictableTransactionResult<(), Error> {
                        let n = refs.get(h)?.map_or(0, |v| count_of(&v)) as i64 + by;
                        if n > 0 {
                            refs.insert(h.as_slice(), &(n as u32).to_be_bytes())?;
                        } else {
                            refs.remove(h.as_slice())?;
                        }
                        Ok(())
                    };
                    for (e, at) in entries.iter().zip(&located) {
                        let key = path_key(&e.path);
                        if let Some(old) = files.get(&key)? {
                            let old = record::decode(&old).map_err(|err| {
                                ConflictableTransactionError::Abort(store_err(err))
                            })?;
                            ids.remove(&old.id.to_be_bytes())?;
                            removals.insert(&old.id.to_be_bytes(), &[])?;
                            add(&old.hash, -1)?;
                        }
                        add(&e.record.hash, 1)?;
                        if let Some(at) = at {
                            embeddings.insert(&e.record.hash, at.as_slice())?;
                        }
                        ids.insert(&e.record.id.to_be_bytes(), key.clone())?;
                        files.insert(key.clone(), record::encode(&e.record))?;
                        failed.remove(key)?;
                    }
                    Ok(())
                });
        res.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => store_err(e),
        })?;
        self.flush()
    }

    /// Sets the RAW companion of an indexed file (keeping its embedding); true if it changed.
    pub fn set_raw(&self, path: &Path, raw: Option<&Path>) -> Result<bool> {
        let Some(mut rec) = self.file(path)? else {
            return Ok(false);
        };
        if rec.raw.as_deref() == raw {
            return Ok(false);
        }
        rec.raw = raw.map(Path::to_path_buf);
        self.replace(path, rec)?;
        Ok(true)
    }

    /// Sets the metadata of an indexed file (keeping its embedding).
    pub fn set_meta(&self, path: &Path, meta: crate::metadata::PhotoMeta) -> Result<bool> {
        let Some(mut rec) = self.file(path)? else {
            return Ok(false);
        };
        rec.meta = Some(meta);
        self.replace(path, rec)?;
        // A shared collection holds the file without this metadata: the next push sends it
        // again (same content, now with its metadata).
        self.pushed.remove(path_key(path)).map_err(store_err)?;
        Ok(true)
    }

    /// Stores a changed record of a catalogued file under a new id (see the `ids` tree), with
    /// the same content.
    fn replace(&self, path: &Path, mut rec: FileRecord) -> Result<()> {
        let old = rec.id;
        rec.id = self.new_id()?;
        self.commit(&[NewEntry {
            path: path.to_path_buf(),
            record: rec,
            embedding: None,
        }])?;
        debug_assert!(self.is_live(old).ok() == Some(false));
        Ok(())
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
        let rec = record::decode(&old).map_err(store_err)?;
        self.ids.remove(rec.id.to_be_bytes()).map_err(store_err)?;
        self.removals
            .insert(rec.id.to_be_bytes(), &[])
            .map_err(store_err)?;
        let n = self.refs(&rec.hash)?;
        if n > 1 {
            self.refs
                .insert(rec.hash, &(n - 1).to_be_bytes())
                .map_err(store_err)?;
        } else {
            self.refs.remove(rec.hash).map_err(store_err)?;
        }
        Ok(Some(rec))
    }

    /// Forgets embeddings no catalog entry refers to (pending ones are deleted; published
    /// ones go with the merge that drops their rows).
    pub fn collect_garbage(&self) -> Result<usize> {
        let mut removed = 0;
        for tree in [&self.embeddings, &self.located] {
            for item in tree.iter() {
                let (k, _) = item.map_err(store_err)?;
                if !self.refs.contains_key(&k).map_err(store_err)? {
                    tree.remove(k).map_err(store_err)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Every catalogued file, in path order.
    pub fn files(&self) -> impl Iterator<Item = Result<(PathBuf, FileRecord)>> + '_ {
        self.files.iter().map(decode_file)
    }

    /// Every file that failed, in path order.
    pub fn failures(&self) -> impl Iterator<Item = Result<(PathBuf, FailedRecord)>> + '_ {
        self.failed.iter().map(decode_failure)
    }

    /// Catalogued files under `dir` (a path prefix at a component boundary).
    pub fn files_under(
        &self,
        dir: &Path,
    ) -> impl Iterator<Item = Result<(PathBuf, FileRecord)>> + '_ {
        self.files.scan_prefix(dir_prefix(dir)).map(decode_file)
    }

    /// Failed files under `dir`.
    pub fn failures_under(
        &self,
        dir: &Path,
    ) -> impl Iterator<Item = Result<(PathBuf, FailedRecord)>> + '_ {
        self.failed.scan_prefix(dir_prefix(dir)).map(decode_failure)
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
        self.merges.cancel();
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

fn count_of(v: &[u8]) -> u32 {
    v.try_into().map(u32::from_be_bytes).unwrap_or(0)
}

pub fn f32_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
