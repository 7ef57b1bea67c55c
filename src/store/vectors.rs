//! Ids and vectors, row-major: built in memory, or mapped from a published view file.

use std::sync::Arc;

/// Vector storage: owned, or a window of a memory-mapped file shared by every set cut from it.
#[derive(Debug)]
enum Data {
    Owned(Vec<f32>),
    Mapped {
        map: Arc<memmap2::Mmap>,
        /// Byte offset of the first f32 (a multiple of 4 from a page-aligned mapping).
        offset: usize,
        /// Number of f32s.
        len: usize,
    },
}

impl Clone for Data {
    fn clone(&self) -> Self {
        match self {
            Data::Owned(v) => Data::Owned(v.clone()),
            // Sharing the mapping is free: the file is immutable once published.
            Data::Mapped { map, offset, len } => Data::Mapped {
                map: map.clone(),
                offset: *offset,
                len: *len,
            },
        }
    }
}

impl Data {
    fn as_slice(&self) -> &[f32] {
        match self {
            Data::Owned(v) => v,
            Data::Mapped { map, offset, len } => {
                let bytes = &map[*offset..*offset + len * 4];
                // SAFETY: the offset is a multiple of 4 from a page-aligned mapping, the length
                // was checked against the file size, and every bit pattern is a valid f32.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), *len) }
            }
        }
    }
}

/// Ids and vectors, row-major.
#[derive(Clone, Debug)]
pub struct VectorSet {
    pub dim: usize,
    pub ids: Vec<u64>,
    data: Data,
}

impl VectorSet {
    pub fn new(dim: usize) -> Self {
        VectorSet {
            dim,
            ids: Vec::new(),
            data: Data::Owned(Vec::new()),
        }
    }

    /// A set over `count x dim` f32s at byte `offset` of a mapping (checked by the caller).
    pub(crate) fn mapped(
        dim: usize,
        ids: Vec<u64>,
        map: Arc<memmap2::Mmap>,
        offset: usize,
    ) -> Self {
        let len = ids.len() * dim;
        assert!(offset.is_multiple_of(4) && offset + len * 4 <= map.len());
        VectorSet {
            dim,
            ids,
            data: Data::Mapped { map, offset, len },
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Appends a vector (to an in-memory set; a mapped one is copied first).
    pub fn push(&mut self, id: u64, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        if let Data::Mapped { .. } = self.data {
            self.data = Data::Owned(self.data.as_slice().to_vec());
        }
        if let Data::Owned(data) = &mut self.data {
            data.extend_from_slice(v);
        }
        self.ids.push(id);
    }
    /// All vectors, row-major.
    pub fn vectors(&self) -> &[f32] {
        self.data.as_slice()
    }
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors()[i * self.dim..(i + 1) * self.dim]
    }
    /// A copy of the given rows (for work on a filtered subset).
    pub fn select(&self, rows: &[usize]) -> VectorSet {
        let mut out = VectorSet::new(self.dim);
        for &r in rows {
            out.push(self.ids[r], self.vector(r));
        }
        out
    }
}
