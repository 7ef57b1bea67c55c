//! What the catalog records about a file ([`FileRecord`], [`FailedRecord`], content hashes,
//! path keys): the leaf that the database, segments and views share.
//!
//! How the catalog stores a [`FileRecord`] in sled: fixed-width fields first, then the RAW
//! companion's path and the photo metadata (JSON: small, optional, and the one part whose shape
//! grows). A third of the JSON record's size, which at a million files is most of the catalog.
//!
//! Layout: tag byte `1`, u64 id, u64 size, i64 mtime_ns, 16-byte hash, u32 width, u32 height
//! (little-endian), u32 RAW path length + 1 (0: none), the RAW path, then the metadata's JSON
//! (absent: never read). Records written before (format 3 and older) are JSON objects, whose
//! first byte is `{`; both are read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

pub(crate) fn path_key(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
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

const TAG: u8 = 1;
const FIXED: usize = 1 + 8 + 8 + 8 + 16 + 4 + 4 + 4;

pub(crate) fn encode(r: &FileRecord) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let raw = r.raw.as_ref().map(|p| p.as_os_str().as_bytes());
    let meta = r
        .meta
        .as_ref()
        .map(|m| serde_json::to_vec(m).unwrap_or_default());
    let mut out = Vec::with_capacity(FIXED + raw.map_or(0, <[u8]>::len) + 64);
    out.push(TAG);
    out.extend_from_slice(&r.id.to_le_bytes());
    out.extend_from_slice(&r.size.to_le_bytes());
    out.extend_from_slice(&r.mtime_ns.to_le_bytes());
    out.extend_from_slice(&r.hash);
    out.extend_from_slice(&r.width.to_le_bytes());
    out.extend_from_slice(&r.height.to_le_bytes());
    out.extend_from_slice(&raw.map_or(0, |b| b.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(raw.unwrap_or_default());
    out.extend_from_slice(meta.as_deref().unwrap_or_default());
    out
}

pub(crate) fn decode(b: &[u8]) -> Result<FileRecord, String> {
    use std::os::unix::ffi::OsStrExt;
    if b.first() == Some(&b'{') {
        return serde_json::from_slice(b).map_err(|e| e.to_string());
    }
    if b.len() < FIXED || b[0] != TAG {
        return Err("an unknown record encoding".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8"));
    let raw_len = u32_at(FIXED - 4) as usize;
    let meta_at = FIXED + raw_len.saturating_sub(1);
    if meta_at > b.len() {
        return Err("a truncated record".into());
    }
    let raw = (raw_len > 0).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&b[FIXED..meta_at])));
    let meta = match &b[meta_at..] {
        [] => None,
        json => Some(serde_json::from_slice(json).map_err(|e| e.to_string())?),
    };
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&b[25..41]);
    Ok(FileRecord {
        id: u64_at(1),
        size: u64_at(9),
        mtime_ns: u64_at(17) as i64,
        hash,
        width: u32_at(41),
        height: u32_at(45),
        raw,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::PhotoMeta;

    fn record(raw: Option<&str>, meta: Option<PhotoMeta>) -> FileRecord {
        FileRecord {
            id: 0x0102_0304_0506_0708,
            size: 123_456_789,
            mtime_ns: -5,
            hash: *b"0123456789abcdef",
            width: 4032,
            height: 3024,
            raw: raw.map(PathBuf::from),
            meta,
        }
    }

    #[test]
    fn records_round_trip_and_json_ones_still_read() {
        let meta = PhotoMeta {
            make: Some("Canon".into()),
            format: Some("jpeg".into()),
            ..Default::default()
        };
        for r in [
            record(None, None),
            record(Some("/p/IMG_1.CR2"), None),
            record(None, Some(PhotoMeta::default())),
            record(Some("/p/ü.dng"), Some(meta)),
        ] {
            let bytes = encode(&r);
            assert_eq!(decode(&bytes).unwrap(), r);
            let json = serde_json::to_vec(&r).unwrap();
            assert_eq!(decode(&json).unwrap(), r);
            assert!(
                bytes.len() < json.len(),
                "{} vs {}",
                bytes.len(),
                json.len()
            );
        }
        let bytes = encode(&record(Some("/p/x.CR2"), None));
        assert!(decode(&bytes[..FIXED + 2]).is_err());
        assert!(decode(&bytes[..10]).is_err());
        assert!(decode(b"\x07whatever-this-is-it-is-not-a-record-of-ours").is_err());
    }
}
