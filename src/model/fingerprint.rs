//! A checkpoint's fingerprint: what tells two models apart, so that an index never mixes the
//! embeddings of two spaces.
//!
//! Version 2 (`v2-` + hex) is SHA-256 over config.json, the preprocessing parameters and the
//! SHA-256 of the whole weights file, so any two checkpoints that differ in any weight differ.
//! Hashing a 600 MB checkpoint takes about a second, once: the digest is cached in
//! `$XDG_CACHE_HOME/clipsearch/weight-digests/`, keyed by the file's path, size, modification
//! time and inode, so later runs pay a `stat`.
//!
//! Version 1 (bare hex) sampled 64 blocks of the weights; a change outside them went unseen.
//! Indexes recorded with it still open: [`ModelIdentity::same_model`] accepts a version-1
//! fingerprint that the same checkpoint produces, and the writer then records version 2.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::files::ModelFiles;
use super::identity::ModelIdentity;
use crate::error::{Error, Result};
use crate::preprocess::PreprocessConfig;

const V2: &str = "v2-";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The version-2 fingerprint.
pub(crate) fn fingerprint(files: &ModelFiles, pre: &PreprocessConfig) -> Result<String> {
    let mut h = Sha256::new();
    let config = std::fs::read(files.config()).map_err(|e| Error::io(files.config(), e))?;
    h.update(&config);
    h.update(pre.identity_text().as_bytes());
    h.update(weights_digest(&files.weights())?.as_bytes());
    Ok(format!("{V2}{}", hex(&h.finalize())))
}

/// The version-1 fingerprint (config, preprocessing, the weights' length and 64 evenly spaced
/// 4 KiB blocks), to recognise indexes that recorded it.
pub(crate) fn legacy_fingerprint(files: &ModelFiles, pre: &PreprocessConfig) -> Result<String> {
    let mut h = Sha256::new();
    let config = std::fs::read(files.config()).map_err(|e| Error::io(files.config(), e))?;
    h.update(&config);
    h.update(pre.identity_text().as_bytes());
    let path = files.weights();
    let mut f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
    h.update(len.to_le_bytes());
    let mut block = vec![0u8; 4096];
    for i in 0..64u64 {
        let at = len.saturating_sub(4096) * i / 63;
        f.seek(SeekFrom::Start(at))
            .map_err(|e| Error::io(&path, e))?;
        let n = f.read(&mut block).map_err(|e| Error::io(&path, e))?;
        h.update(&block[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn digest_cache(path: &Path, meta: &std::fs::Metadata) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let canonical = path.canonicalize().ok()?;
    let key = format!(
        "{}\0{}\0{}\0{}\0{}",
        canonical.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino()
    );
    let name = hex(&Sha256::digest(key.as_bytes())[..16]);
    Some(
        super::bundled::cache_root()
            .join("weight-digests")
            .join(name),
    )
}

/// SHA-256 of the whole weights file, from the cache when the file is unchanged.
fn weights_digest(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let cache = digest_cache(path, &meta);
    if let Some(d) = cache.as_ref().and_then(|c| std::fs::read_to_string(c).ok()) {
        if d.len() == 64 {
            return Ok(d);
        }
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let digest = hex(&h.finalize());
    // Best effort: without a cache the next run hashes again.
    if let Some(c) = cache {
        if c.parent()
            .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
        {
            let tmp = c.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &digest).is_ok() {
                let _ = std::fs::rename(&tmp, &c);
            }
        }
    }
    Ok(digest)
}

impl ModelIdentity {
    /// Whether `recorded` (read from an index) names the same checkpoint as `self` (computed
    /// from the files): the same fingerprint, or the version-1 fingerprint this checkpoint
    /// produces.
    pub fn same_model(&self, recorded: &ModelIdentity) -> bool {
        self.fingerprint == recorded.fingerprint
            || (!recorded.fingerprint.starts_with(V2)
                && self.legacy_fingerprint.as_deref() == Some(recorded.fingerprint.as_str()))
    }
}
