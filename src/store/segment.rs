//! Segments: the immutable files a published view is made of (see [`super::view`]). Each
//! holds the vectors, binary codes and catalog records of a run of file ids, in id order.
//!
//! `view-G.vec` layout (little-endian): a 64-byte header (magic `CLIPVIEW`, u32 version, u32
//! dim, u64 count, u64 length of the path strings, u64 length of the metadata section, u64
//! offset of the mean, u64 offset of the codes, u32 words per code), then `count x dim` f32
//! vectors, `count` u64 ids (ascending), `count` 64-byte records (u64 size, i64 mtime_ns,
//! 16-byte hash, u32 width, u32 height, u64 path offset, u32 path length, u32 RAW path
//! length plus 1 (0: none), u64 RAW path offset), `count` u32 row numbers in path order, and the path
//! bytes (RAW companions' paths after the files'), then (version 2 on) the photo-metadata
//! section ([`super::view_meta`]), and (version 3 on) the mean of the vectors and every row's
//! binary code ([`super::codes`]). Until view format 4 a view was one such file; it still
//! reads as a view of one segment.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codes;
use super::record::{dir_prefix, key_path_ref, path_key, FileRecord};
use super::vectors::VectorSet;
use super::view_meta::{self, MetaSection};
use crate::error::{Error, Result};
use crate::metadata::filter::RowFields;
use crate::metadata::{Filter, PhotoMeta};

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Version of the segment layout (the view file's before view format 4).
const SEGMENT_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"CLIPVIEW";
const HEADER: usize = 64;
const RECORD: usize = 64;

/// The segment file of `generation`.
pub fn segment_file_name(generation: u64) -> String {
    format!("view-{generation:016x}.vec")
}

/// Writes the segment file `name` from catalog rows in id order; `vector` gives each row's
/// embedding (None drops the row, which the catalog invariants rule out). Returns the number
/// of rows written and the highest id among them. The file is complete, fsynced and under its
/// final name on return, but in force only once a manifest names it.
pub(crate) fn write_segment(
    dir: &Path,
    name: &str,
    dim: usize,
    rows: &[(PathBuf, FileRecord)],
    mut vector: impl FnMut(&FileRecord) -> Result<Option<Vec<f32>>>,
) -> Result<(usize, Option<u64>)> {
    debug_assert!(rows.windows(2).all(|w| w[0].1.id < w[1].1.id));
    let path = dir.join(name);
    let tmp = path.with_extension("vec.tmp");
    // Read as well as written: the binary codes are computed from the vectors written first.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
    let e = io(&tmp);
    w.write_all(&[0u8; HEADER]).map_err(&e)?;
    let mut kept: Vec<&(PathBuf, FileRecord)> = Vec::with_capacity(rows.len());
    let mut buf = Vec::with_capacity(4 * dim);
    let mut sum = vec![0f64; dim];
    for row in rows {
        match vector(&row.1)? {
            Some(v) if v.len() == dim => {
                for (s, x) in sum.iter_mut().zip(&v) {
                    *s += *x as f64;
                }
                buf.clear();
                for x in &v {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf).map_err(&e)?;
                kept.push(row);
            }
            _ => tracing::warn!(path = %row.0.display(), "no embedding for a catalogued file"),
        }
    }
    for (_, r) in &kept {
        w.write_all(&r.id.to_le_bytes()).map_err(&e)?;
    }
    let keys: Vec<Vec<u8>> = kept.iter().map(|(p, _)| path_key(p)).collect();
    let raws: Vec<Option<Vec<u8>>> = kept
        .iter()
        .map(|(_, r)| r.raw.as_deref().map(path_key))
        .collect();
    let mut raw_offset: u64 = keys.iter().map(|k| k.len() as u64).sum();
    let mut offset = 0u64;
    for (((_, r), key), raw) in kept.iter().zip(&keys).zip(&raws) {
        let mut rec = [0u8; RECORD];
        if let Some(raw) = raw {
            rec[52..56].copy_from_slice(&(raw.len() as u32 + 1).to_le_bytes());
            rec[56..64].copy_from_slice(&raw_offset.to_le_bytes());
            raw_offset += raw.len() as u64;
        }
        rec[0..8].copy_from_slice(&r.size.to_le_bytes());
        rec[8..16].copy_from_slice(&r.mtime_ns.to_le_bytes());
        rec[16..32].copy_from_slice(&r.hash);
        rec[32..36].copy_from_slice(&r.width.to_le_bytes());
        rec[36..40].copy_from_slice(&r.height.to_le_bytes());
        rec[40..48].copy_from_slice(&offset.to_le_bytes());
        rec[48..52].copy_from_slice(&(key.len() as u32).to_le_bytes());
        w.write_all(&rec).map_err(&e)?;
        offset += key.len() as u64;
    }
    let mut by_path: Vec<u32> = (0..kept.len() as u32).collect();
    by_path.sort_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]));
    for row in by_path {
        w.write_all(&row.to_le_bytes()).map_err(&e)?;
    }
    for key in keys.iter().chain(raws.iter().flatten()) {
        w.write_all(key).map_err(&e)?;
    }
    let meta = view_meta::encode(kept.iter().map(|(_, r)| r));
    w.write_all(&meta).map_err(&e)?;
    let count = kept.len();
    let mean: Vec<f32> = sum
        .iter()
        .map(|s| (s / count.max(1) as f64) as f32)
        .collect();
    let meta_end =
        HEADER as u64 + (4 * count * dim) as u64 + (8 + RECORD as u64 + 4) * count as u64;
    let meta_end = meta_end + raw_offset + meta.len() as u64;
    let mean_at = meta_end.next_multiple_of(8);
    let codes_at = (mean_at + 4 * dim as u64).next_multiple_of(8);
    w.write_all(&vec![0u8; (mean_at - meta_end) as usize])
        .map_err(&e)?;
    for x in &mean {
        w.write_all(&x.to_le_bytes()).map_err(&e)?;
    }
    w.write_all(&vec![0u8; (codes_at - mean_at - 4 * dim as u64) as usize])
        .map_err(&e)?;
    w.flush().map_err(&e)?;
    let mut file = w
        .into_inner()
        .map_err(|err| Error::io(&tmp, err.into_error()))?;
    write_codes(file, &tmp, dim, count, &mean)?;
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(dim as u32).to_le_bytes());
    header[16..24].copy_from_slice(&(kept.len() as u64).to_le_bytes());
    header[24..32].copy_from_slice(&raw_offset.to_le_bytes());
    header[32..40].copy_from_slice(&(meta.len() as u64).to_le_bytes());
    header[40..48].copy_from_slice(&mean_at.to_le_bytes());
    header[48..56].copy_from_slice(&codes_at.to_le_bytes());
    header[56..60].copy_from_slice(&(codes::words(dim) as u32).to_le_bytes());
    file.seek(SeekFrom::Start(0)).map_err(&e)?;
    file.write_all(&header).map_err(&e)?;
    file.sync_all().map_err(&e)?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok((kept.len(), kept.last().map(|(_, r)| r.id)))
}

/// Appends the binary codes of the vectors already written at the start of `file` (see
/// [`super::codes`]), read back through a mapping in blocks so that memory stays small.
fn write_codes(
    file: &std::fs::File,
    tmp: &Path,
    dim: usize,
    count: usize,
    mean: &[f32],
) -> Result<()> {
    use rayon::prelude::*;
    let e = io(tmp);
    // SAFETY: the temporary file is ours alone until it is renamed, and this part of it is
    // not written again.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(&e)?;
    let words = codes::words(dim);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    const BLOCK: usize = 16 * 1024;
    let mut out = vec![0u64; BLOCK * words];
    for start in (0..count).step_by(BLOCK) {
        let n = BLOCK.min(count - start);
        out[..n * words]
            .par_chunks_mut(words)
            .enumerate()
            .for_each(|(i, code)| {
                let at = HEADER + 4 * dim * (start + i);
                let v: Vec<f32> = map[at..at + 4 * dim]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
                    .collect();
                codes::encode(&v, mean, code);
            });
        for c in &out[..n * words] {
            w.write_all(&c.to_le_bytes()).map_err(&e)?;
        }
    }
    w.flush().map_err(&e)?;
    Ok(())
}

/// A view's binary codes: `words` u64s a row, taken against `mean`.
#[derive(Clone, Copy, Debug)]
pub struct Codes<'a> {
    pub mean: &'a [f32],
    pub codes: &'a [u64],
    pub words: usize,
}

/// One catalogued file, as a view holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewEntry<'a> {
    pub path: &'a Path,
    pub record: FileRecord,
}

/// An open, immutable segment: the ids, vectors and catalog records of a run of files.
pub struct Segment {
    dim: usize,
    vectors: VectorSet,
    map: Option<Arc<memmap2::Mmap>>,
    records: usize,
    by_path: usize,
    strings: usize,
    /// None in a view of format 1, published before metadata was recorded.
    meta: Option<MetaSection>,
    /// Byte offsets of the mean and the codes, and words per code (format 3 on).
    codes: Option<(usize, usize, usize)>,
    /// The open file, for reads of scattered vectors that should not map pages (see
    /// [`View::read_vectors`]).
    file: Option<std::fs::File>,
}

impl Segment {
    /// Opens the segment `file` of `count` rows of `dim` dimensions. A missing file is an
    /// `Error::Io` of kind NotFound: a newer publication removed it, and the caller reads the
    /// manifest again.
    pub fn open(dir: &Path, file: &str, dim: usize, count: usize) -> Result<Segment> {
        let (expected_dim, expected_count) = (dim, count);
        let path = dir.join(file);
        let damaged = |why: &str| {
            Error::Store(format!(
                "the view {} is {why}; run `clipsearch index` to publish the index again",
                path.display()
            ))
        };
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        // SAFETY: view files are written once under a temporary name and never modified after
        // the rename; a later generation is a new file.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io(&path))?;
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(damaged("not a view file"));
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8"));
        let (dim, count, strings_len) = (u32_at(12) as usize, u64_at(16) as usize, u64_at(24));
        let version = u32_at(8);
        if !(1..=SEGMENT_VERSION).contains(&version)
            || dim != expected_dim
            || count != expected_count
        {
            return Err(damaged("inconsistent with view.json"));
        }
        let meta_len = if version >= 2 { u64_at(32) } else { 0 };
        let ids_at = HEADER + 4 * count * dim;
        let records = ids_at + 8 * count;
        let by_path = records + RECORD * count;
        let strings = by_path + 4 * count;
        let meta_at = strings as u64 + strings_len;
        let meta_end = meta_at.saturating_add(meta_len);
        // Format 3 appends the collection's mean and every row's binary code.
        let codes = if version >= 3 {
            let (mean_at, codes_at) = (u64_at(40), u64_at(48));
            let words = u32_at(56) as usize;
            let end = codes_at.saturating_add((8 * words * count) as u64);
            let fits = mean_at >= meta_end
                && mean_at.is_multiple_of(8)
                && codes_at >= mean_at + 4 * dim as u64
                && codes_at.is_multiple_of(8)
                && words == codes::words(dim)
                && map.len() as u64 == end;
            if !fits {
                return Err(damaged("truncated"));
            }
            Some((mean_at as usize, codes_at as usize, words))
        } else {
            if map.len() as u64 != meta_end {
                return Err(damaged("truncated"));
            }
            None
        };
        let meta = if version >= 2 {
            Some(
                MetaSection::parse(&map, meta_at as usize, meta_len as usize, count)
                    .ok_or_else(|| damaged("damaged (its metadata section)"))?,
            )
        } else {
            None
        };
        let ids: Vec<u64> = map[ids_at..records]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        if !ids.windows(2).all(|w| w[0] < w[1]) {
            return Err(damaged("out of order"));
        }
        let map = Arc::new(map);
        let vectors = VectorSet::mapped(dim, ids, map.clone(), HEADER);
        // Nothing else is read whole: paths and metadata are checked where they are read (a
        // damaged one reads as empty), so that opening costs the same at any size.
        let view = Segment {
            dim,
            vectors,
            map: Some(map),
            records,
            by_path,
            strings,
            meta,
            codes,
            file: Some(file),
        };
        Ok(view)
    }

    fn map(&self) -> &[u8] {
        self.map.as_deref().map(|m| &m[..]).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Every vector, rows in id order (shares the mapping).
    pub fn vectors(&self) -> &VectorSet {
        &self.vectors
    }

    pub fn id(&self, row: usize) -> u64 {
        self.vectors.ids[row]
    }

    pub fn vector(&self, row: usize) -> &[f32] {
        self.vectors.vector(row)
    }

    fn record_bytes(&self, row: usize) -> &[u8] {
        let at = self.records + row * RECORD;
        &self.map()[at..at + RECORD]
    }

    fn path_span(&self, row: usize) -> (usize, usize) {
        let r = self.record_bytes(row);
        let off = u64::from_le_bytes(r[40..48].try_into().expect("8")) as usize;
        let len = u32::from_le_bytes(r[48..52].try_into().expect("4")) as usize;
        (self.strings.saturating_add(off), len)
    }

    fn raw_span(&self, row: usize) -> Option<(usize, usize)> {
        let r = self.record_bytes(row);
        let len = u32::from_le_bytes(r[52..56].try_into().expect("4")) as usize;
        let off = u64::from_le_bytes(r[56..64].try_into().expect("8")) as usize;
        (len > 0).then(|| (self.strings.saturating_add(off), len - 1))
    }

    /// The camera RAW of the same shot, if the file has one beside it.
    pub fn raw(&self, row: usize) -> Option<&Path> {
        let (off, len) = self.raw_span(row)?;
        Some(key_path_ref(self.span(off, len)))
    }

    /// Bytes of the strings section; a span outside the file (a damaged view) reads as empty.
    fn span(&self, off: usize, len: usize) -> &[u8] {
        off.checked_add(len)
            .and_then(|end| self.map().get(off..end))
            .unwrap_or(&[])
    }

    fn path_bytes(&self, row: usize) -> &[u8] {
        let (off, len) = self.path_span(row);
        self.span(off, len)
    }

    /// The vectors of `rows`, row-major, read with `pread` rather than through the mapping: a
    /// fault on a mapped page maps its cached neighbours too (the kernel's fault-around, 64 KB),
    /// so rescoring thousands of scattered rows through the map would add hundreds of MB to the
    /// reader's resident set for 2 KB a row used.
    pub fn read_vectors(&self, rows: &[usize]) -> Vec<f32> {
        use std::os::unix::fs::FileExt;
        let dim = self.dim;
        let mut out = vec![0f32; rows.len() * dim];
        let Some(file) = &self.file else {
            for (o, &r) in out.chunks_exact_mut(dim).zip(rows) {
                o.copy_from_slice(self.vector(r));
            }
            return out;
        };
        let mut buf = vec![0u8; 4 * dim];
        for (o, &r) in out.chunks_exact_mut(dim).zip(rows) {
            let at = (HEADER + 4 * dim * r) as u64;
            if file.read_exact_at(&mut buf, at).is_ok() {
                for (x, b) in o.iter_mut().zip(buf.chunks_exact(4)) {
                    *x = f32::from_le_bytes(b.try_into().expect("4"));
                }
            } else {
                o.copy_from_slice(self.vector(r));
            }
        }
        out
    }

    /// Tells the kernel how a searcher reads the view. One that scans the codes reads its
    /// vectors a few scattered rows at a time (no readahead: a device's may be megabytes a
    /// fault, for 2 KB wanted) and the codes front to back and soon (read ahead in the
    /// background, so that a cold query waits for one sequential read instead of a fault per
    /// page); one that scans the vectors exactly reads them front to back. Not for a writer
    /// copying the vectors in order. Advice only: an error changes nothing but speed.
    pub fn advise_search(&self, uses_codes: bool) {
        let Some(map) = &self.map else {
            return;
        };
        let (n, dim) = (self.len(), self.dim);
        let vectors_len = 4 * n * dim;
        match self.codes {
            Some((_, codes_at, words)) if uses_codes => {
                let _ = map.advise_range(memmap2::Advice::Random, HEADER, vectors_len);
                let _ = map.advise_range(memmap2::Advice::Sequential, codes_at, 8 * words * n);
                let _ = map.advise_range(memmap2::Advice::WillNeed, codes_at, 8 * words * n);
            }
            _ => {
                let _ = map.advise_range(memmap2::Advice::Sequential, HEADER, vectors_len);
            }
        }
    }

    /// The binary codes of every row and the mean they were taken against (see
    /// [`super::codes`]); None in views published before format 3.
    pub fn codes(&self) -> Option<Codes<'_>> {
        let (mean_at, codes_at, words) = self.codes?;
        let map = self.map();
        let dim = self.dim;
        // SAFETY: both offsets are multiples of 8 in a page-aligned mapping and their extents
        // were checked against the file's length on open; any bits are valid f32s and u64s.
        let (mean, codes) = unsafe {
            (
                std::slice::from_raw_parts(map[mean_at..].as_ptr().cast::<f32>(), dim),
                std::slice::from_raw_parts(
                    map[codes_at..].as_ptr().cast::<u64>(),
                    words * self.len(),
                ),
            )
        };
        Some(Codes { mean, codes, words })
    }

    pub fn path(&self, row: usize) -> &Path {
        key_path_ref(self.path_bytes(row))
    }

    pub fn record(&self, row: usize) -> FileRecord {
        let r = self.record_bytes(row);
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&r[16..32]);
        FileRecord {
            id: self.id(row),
            size: u64::from_le_bytes(r[0..8].try_into().expect("8")),
            mtime_ns: i64::from_le_bytes(r[8..16].try_into().expect("8")),
            hash,
            width: u32::from_le_bytes(r[32..36].try_into().expect("4")),
            height: u32::from_le_bytes(r[36..40].try_into().expect("4")),
            raw: self.raw(row).map(Path::to_path_buf),
            meta: self.meta(row),
        }
    }

    /// The photo metadata of a row; None if it was never read (an index built by an older
    /// clipsearch, until its next index run).
    pub fn meta(&self, row: usize) -> Option<PhotoMeta> {
        self.meta.as_ref()?.meta(self.map(), row)
    }

    /// A row's capture time, wall-clock milliseconds (for ordering by date).
    pub fn taken_ms(&self, row: usize) -> Option<i64> {
        self.meta.as_ref()?.taken_ms(self.map(), row)
    }

    /// Whether the row's capture time was recorded by the camera (not the file's mtime).
    pub fn time_recorded(&self, row: usize) -> bool {
        self.meta.as_ref().is_some_and(|m| {
            m.time_source(self.map(), row)
                .is_some_and(|s| s.is_recorded())
        })
    }

    /// Whether a row's metadata was read (false in segments of format 1, and for files an
    /// older clipsearch indexed, until the next index run reads it).
    pub fn meta_read(&self, row: usize) -> bool {
        self.meta
            .as_ref()
            .is_some_and(|m| m.is_read(self.map(), row))
    }

    /// Whether `filter` keeps each row (every row for an empty filter; none of a segment of
    /// format 1, which has no metadata).
    pub fn matcher<'a>(&'a self, filter: &'a Filter) -> impl FnMut(usize) -> bool + 'a {
        let mut compiled = self.meta.as_ref().map(|m| (m, filter.compile(&m.dict)));
        let empty = filter.is_empty();
        move |row| {
            empty
                || compiled
                    .as_mut()
                    .is_some_and(|(m, c)| c.matches(&m.fields(self.map(), row)))
        }
    }

    /// The metadata fields of a row, as filters see them.
    pub fn fields(&self, row: usize) -> RowFields {
        self.meta
            .as_ref()
            .map(|m| m.fields(self.map(), row))
            .unwrap_or_default()
    }

    pub fn entry(&self, row: usize) -> ViewEntry<'_> {
        ViewEntry {
            path: self.path(row),
            record: self.record(row),
        }
    }

    /// The row of a live file id.
    pub fn row_of_id(&self, id: u64) -> Option<usize> {
        self.vectors.ids.binary_search(&id).ok()
    }

    /// The `k`-th row in path order.
    fn row_by_path(&self, k: usize) -> usize {
        let at = self.by_path + 4 * k;
        u32::from_le_bytes(self.map()[at..at + 4].try_into().expect("4")) as usize
    }

    /// The row of an indexed path.
    pub fn row_of_path(&self, path: &Path) -> Option<usize> {
        let key = path_key(path);
        let k = self.lower_bound(&key);
        (k < self.len() && self.path_bytes(self.row_by_path(k)) == key.as_slice())
            .then(|| self.row_by_path(k))
    }

    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.path_bytes(self.row_by_path(mid)) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Rows in path order.
    pub fn rows_by_path(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).map(|k| self.row_by_path(k))
    }

    /// Rows of the files inside `dir`, in path order.
    pub fn rows_under(&self, dir: &Path) -> impl Iterator<Item = usize> + '_ {
        let prefix = dir_prefix(dir);
        let start = self.lower_bound(&prefix);
        (start..self.len())
            .map(|k| self.row_by_path(k))
            .take_while(move |&row| self.path_bytes(row).starts_with(&prefix))
    }
}
