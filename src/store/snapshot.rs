//! The search snapshot: every live file's id and vector laid out contiguously (one read at
//! query time instead of one sled lookup per file), plus the HNSW graph when the collection is
//! large enough to use one.
//!
//! hnsw_rs dumps only to files, so a dump goes through a temporary directory and its bytes are
//! stored in sled as chunks of at most [`CHUNK`] bytes under a new generation number. Only when
//! every chunk is written and flushed does the `snapshot` pointer in `meta` switch to the new
//! generation; the old generation is deleted afterwards. A crash at any point leaves either the
//! old or the new snapshot in force, never a mix.

use serde::{Deserialize, Serialize};

use super::{bytes_to_f32, f32_to_bytes, store_err, Store};
use crate::error::Result;

/// Largest value written to sled for a snapshot.
pub const CHUNK: usize = 4 << 20;

/// What the `snapshot` pointer records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotInfo {
    pub generation: u64,
    pub count: usize,
    pub dim: usize,
    /// Highest file id covered: files with larger ids were committed after it.
    pub max_id: u64,
    /// Whether an HNSW dump (`graph` and `data` parts) is stored.
    pub hnsw: bool,
}

/// Ids and vectors, row-major.
#[derive(Clone, Debug, Default)]
pub struct VectorSet {
    pub dim: usize,
    pub ids: Vec<u64>,
    pub vectors: Vec<f32>,
}

impl VectorSet {
    pub fn new(dim: usize) -> Self {
        VectorSet {
            dim,
            ..Default::default()
        }
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn push(&mut self, id: u64, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        self.ids.push(id);
        self.vectors.extend_from_slice(v);
    }
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Parts of a snapshot, each stored as its own chunk sequence.
#[derive(Clone, Copy)]
pub enum Part {
    Ids = b'i' as isize,
    Vectors = b'v' as isize,
    HnswGraph = b'g' as isize,
    HnswData = b'd' as isize,
}

fn key(generation: u64, part: Part, chunk: u32) -> Vec<u8> {
    let mut k = generation.to_be_bytes().to_vec();
    k.push(part as u8);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

impl Store {
    /// The snapshot in force, if any.
    pub fn snapshot_info(&self) -> Result<Option<SnapshotInfo>> {
        match self.meta_get("snapshot")? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(store_err),
        }
    }

    /// Reads one part of a generation.
    pub fn read_part(&self, generation: u64, part: Part) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let prefix = {
            let mut p = generation.to_be_bytes().to_vec();
            p.push(part as u8);
            p
        };
        for item in self.snapshots.scan_prefix(prefix) {
            let (_, v) = item.map_err(store_err)?;
            out.extend_from_slice(&v);
        }
        Ok(out)
    }

    /// Loads the ids and vectors of the snapshot in force.
    pub fn load_vectors(&self, info: &SnapshotInfo) -> Result<VectorSet> {
        let ids = self.read_part(info.generation, Part::Ids)?;
        let vectors = bytes_to_f32(&self.read_part(info.generation, Part::Vectors)?);
        let ids: Vec<u64> = ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        if ids.len() != info.count || vectors.len() != info.count * info.dim {
            return Err(crate::Error::Store(
                "the search snapshot is incomplete; run `clipsearch index` to rebuild it".into(),
            ));
        }
        Ok(VectorSet {
            dim: info.dim,
            ids,
            vectors,
        })
    }

    /// Writes a new snapshot generation and switches to it atomically.
    pub fn write_snapshot(
        &self,
        set: &VectorSet,
        hnsw: Option<(&[u8], &[u8])>,
    ) -> Result<SnapshotInfo> {
        let old = self.snapshot_info()?;
        let generation = self.new_id()?;
        let ids: Vec<u8> = set.ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        let mut parts: Vec<(Part, &[u8])> = vec![(Part::Ids, &ids)];
        let vectors = f32_to_bytes(&set.vectors);
        parts.push((Part::Vectors, &vectors));
        if let Some((graph, data)) = hnsw {
            parts.push((Part::HnswGraph, graph));
            parts.push((Part::HnswData, data));
        }
        for (part, bytes) in parts {
            for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
                self.snapshots
                    .insert(key(generation, part, i as u32), chunk)
                    .map_err(store_err)?;
            }
        }
        self.flush()?;
        let info = SnapshotInfo {
            generation,
            count: set.len(),
            dim: set.dim,
            max_id: set.ids.iter().copied().max().unwrap_or(0),
            hnsw: hnsw.is_some(),
        };
        self.meta_set("snapshot", &serde_json::to_vec(&info).map_err(store_err)?)?;
        self.flush()?;
        if let Some(old) = old {
            for item in self.snapshots.scan_prefix(old.generation.to_be_bytes()) {
                let (k, _) = item.map_err(store_err)?;
                self.snapshots.remove(k).map_err(store_err)?;
            }
        }
        // Leftovers of a generation written by a run that crashed before switching.
        for item in self.snapshots.iter() {
            let (k, _) = item.map_err(store_err)?;
            if k.len() >= 8 && u64::from_be_bytes(k[..8].try_into().expect("8")) != generation {
                self.snapshots.remove(k).map_err(store_err)?;
            }
        }
        self.flush()?;
        Ok(info)
    }
}
