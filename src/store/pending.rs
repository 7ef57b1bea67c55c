//! Vectors not yet published, in an append-only log beside sled (`pending-G.vec`), with sled's
//! `embeddings` tree holding only where each is (a [`Locator`]).
//!
//! Why not in sled: sled 0.34 does not give back the space of deleted values (its file stays at
//! its high-water mark), so vectors that pass through it on their way into segments left 5.8 GB
//! behind at a million 512-dimensional files, three times the vectors themselves. A log is
//! written once, fsynced before the sled transaction that names its entries (so a crash leaves at
//! worst unnamed bytes at its end), and deleted whole once a publication has moved its vectors
//! into a segment ([`PendingLog::rotate`]).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Where a pending vector is: the log's generation, the byte offset and the number of f32s.
/// Encoded as 21 bytes (tag `L`, u64 BE, u64 BE, u32 BE): never the length of a raw vector
/// (a multiple of 4), which is how format 3 stored them and how they are still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Locator {
    pub generation: u64,
    pub offset: u64,
    pub len: u32,
}

const ENCODED: usize = 21;

impl Locator {
    pub fn encode(&self) -> [u8; ENCODED] {
        let mut out = [0u8; ENCODED];
        out[0] = b'L';
        out[1..9].copy_from_slice(&self.generation.to_be_bytes());
        out[9..17].copy_from_slice(&self.offset.to_be_bytes());
        out[17..21].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// None for a raw vector (format 3).
    pub fn decode(b: &[u8]) -> Option<Locator> {
        (b.len() == ENCODED && b[0] == b'L').then(|| Locator {
            generation: u64::from_be_bytes(b[1..9].try_into().expect("8")),
            offset: u64::from_be_bytes(b[9..17].try_into().expect("8")),
            len: u32::from_be_bytes(b[17..21].try_into().expect("4")),
        })
    }
}

pub(crate) fn file_name(generation: u64) -> String {
    format!("pending-{generation:016x}.vec")
}

struct Current {
    generation: u64,
    file: std::fs::File,
    len: u64,
}

/// The writer's pending log.
pub(crate) struct PendingLog {
    dir: PathBuf,
    current: Mutex<Option<Current>>,
    readers: Mutex<HashMap<u64, std::fs::File>>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl PendingLog {
    pub fn new(dir: &Path) -> Self {
        PendingLog {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// The generation appends go to, if a log is open.
    pub fn current(&self) -> Option<u64> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.generation)
    }

    /// Appends `vectors` and fsyncs; `generation` names a new log when none is open.
    pub fn append(
        &self,
        vectors: &[&[f32]],
        generation: impl FnOnce() -> Result<u64>,
    ) -> Result<Vec<Locator>> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.is_none() {
            let generation = generation()?;
            let path = self.dir.join(file_name(generation));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            crate::store::view::sync_dir(&self.dir);
            *current = Some(Current {
                generation,
                file,
                len: 0,
            });
        }
        let c = current.as_mut().expect("opened above");
        let path = self.dir.join(file_name(c.generation));
        let mut bytes = Vec::with_capacity(vectors.iter().map(|v| 4 * v.len()).sum());
        let mut out = Vec::with_capacity(vectors.len());
        for v in vectors {
            out.push(Locator {
                generation: c.generation,
                offset: c.len + bytes.len() as u64,
                len: v.len() as u32,
            });
            for x in v.iter() {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        c.file.write_all(&bytes).map_err(io(&path))?;
        c.file.sync_data().map_err(io(&path))?;
        c.len += bytes.len() as u64;
        Ok(out)
    }

    pub fn read(&self, at: &Locator) -> Result<Vec<f32>> {
        let path = self.dir.join(file_name(at.generation));
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let file = match readers.entry(at.generation) {
            std::collections::hash_map::Entry::Occupied(f) => f.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(std::fs::File::open(&path).map_err(io(&path))?)
            }
        };
        let mut buf = vec![0u8; 4 * at.len as usize];
        file.read_exact_at(&mut buf, at.offset).map_err(io(&path))?;
        Ok(buf
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
            .collect())
    }

    /// The bytes the open log holds, named or not.
    pub fn len(&self) -> u64 {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.len)
    }

    /// Closes the open log: the next append starts a new one.
    pub fn close(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Deletes every log but `keep` (once sled names none of their entries).
    pub fn remove_all_but(&self, keep: Option<u64>) {
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g, _| Some(*g) == keep);
        let keep = keep.map(file_name);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("pending-") && Some(&name) != keep.as_ref() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
