//! Published views: the immutable picture of an index that every reader searches, so that
//! readers never touch sled (which admits one process) and never wait for the writer.
//!
//! A view is a list of [segments](super::segment) (immutable files, each holding a run of file
//! ids in ascending order, the runs disjoint and in order) and a list of deleted ids: files
//! removed or replaced since their segment was written, whose rows readers skip. The manifest
//! `view.json` names them, with the model identity, so a reader needs nothing else. A
//! publication writes only what changed: the new files go into the tail segment (rewritten
//! while it is small), the removed ones into the deleted list; full segments are merged in the
//! background ([`crate::index::publish`]), dropping deleted rows. Files are written under
//! temporary names, fsynced and renamed, then `view.json` is replaced the same way: that
//! rename is the commit point, so a reader sees the old view or the new one, never a mix, and a
//! writer killed at any moment leaves the last published view in force.
//!
//! Files no manifest names go with the publication that stops naming them: a reader that holds
//! one open keeps its mapped pages (Linux keeps an unlinked file's pages while they are
//! mapped), and one that read the old manifest but has not opened every file finds one gone and
//! reads the manifest again.
//!
//! `deleted-G.ids`: the deleted ids, ascending u64 little-endian, nothing else (its length is
//! in the manifest).

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::{path_key, FileRecord};
use super::segment::{Codes, Segment, ViewEntry};
use super::vectors::VectorSet;
use crate::error::{Error, Result};
use crate::metadata::filter::RowFields;
use crate::metadata::{Filter, PhotoMeta};
use crate::model::ModelIdentity;

/// Version of `view.json`. A newer one is refused; 1-3 (one view file, no deleted list) are
/// still read, as a view of one segment. Version 4: segments and a deleted list.
pub const VIEW_FORMAT: u32 = 4;
/// The manifest: the view in force.
pub const MANIFEST: &str = "view.json";

/// An HNSW graph that clipsearch before view format 3 published beside large views: not read
/// (searches scan the codes), and deleted by the next publication.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GraphRef {
    pub basename: String,
    pub max_id: u64,
    pub points: usize,
}

impl GraphRef {
    /// hnsw_rs's two dump files.
    pub fn files(&self) -> [String; 2] {
        [
            format!("{}.hnsw.graph", self.basename),
            format!("{}.hnsw.data", self.basename),
        ]
    }
}

/// One segment of a view: its file and how many rows it holds (deleted ones included).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SegmentRef {
    pub file: String,
    pub rows: usize,
    /// The highest file id in it (the lowest is above the previous segment's highest).
    pub max_id: u64,
}

/// The deleted list of a view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeletedRef {
    pub file: String,
    pub count: usize,
}

/// What `view.json` says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViewManifest {
    pub format: u32,
    pub generation: u64,
    /// The view file of formats 1-3 (one segment); empty since format 4, which lists
    /// `segments` (reading an older manifest fills them in from this).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(default)]
    pub segments: Vec<SegmentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<DeletedRef>,
    /// Live files: the segments' rows less the deleted ones.
    pub count: usize,
    pub dim: usize,
    /// The highest file id in the view (ids only grow: a file committed later has a larger one).
    pub max_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphRef>,
    /// The model every vector was embedded with (and queries must be).
    pub model: ModelIdentity,
    /// Files that could not be indexed, when the view was published.
    pub failed: usize,
    /// Milliseconds since the epoch.
    pub published_unix_ms: u64,
}

impl ViewManifest {
    /// Every file of the index directory this view needs.
    pub fn files(&self) -> Vec<String> {
        let mut out: Vec<String> = self.segments.iter().map(|s| s.file.clone()).collect();
        out.extend(self.deleted.iter().map(|d| d.file.clone()));
        if let Some(g) = &self.graph {
            out.extend(g.files());
        }
        out
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// The manifest in force, or None when nothing was ever published.
pub fn read_manifest(dir: &Path) -> Result<Option<ViewManifest>> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    // The format first, so that a newer manifest is refused by name rather than as damaged.
    let format = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["format"].as_u64());
    if let Some(f) = format.filter(|&f| f > VIEW_FORMAT as u64) {
        return Err(Error::TooNew(format!(
            "the index at {} was published in view format {f}, newer than this clipsearch \
             understands ({VIEW_FORMAT}): upgrade clipsearch, or use another --index",
            dir.display()
        )));
    }
    let mut m: ViewManifest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Store(format!(
            "{} is damaged ({e}); run `clipsearch index` to publish the index again",
            path.display()
        ))
    })?;
    if m.segments.is_empty() && !m.file.is_empty() {
        m.segments.push(SegmentRef {
            file: std::mem::take(&mut m.file),
            rows: m.count,
            max_id: m.max_id.unwrap_or(0),
        });
    }
    Ok(Some(m))
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `dir/name` atomically (temporary file, fsync, rename, fsync of the
/// directory).
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir);
    Ok(())
}

/// Replaces the manifest atomically.
pub(crate) fn write_manifest(dir: &Path, manifest: &ViewManifest) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Store(e.to_string()))?;
    write_atomically(dir, MANIFEST, &bytes)
}

/// The name of the deleted list of `generation`.
pub fn deleted_file_name(generation: u64) -> String {
    format!("deleted-{generation:016x}.ids")
}

/// Writes a deleted list (ascending ids).
pub(crate) fn write_deleted(dir: &Path, name: &str, ids: &[u64]) -> Result<()> {
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    write_atomically(dir, name, &bytes)
}

fn read_deleted(dir: &Path, d: &DeletedRef) -> Result<Vec<u64>> {
    let path = dir.join(&d.file);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let ids: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
        .collect();
    if bytes.len() != 8 * d.count || !ids.windows(2).all(|w| w[0] < w[1]) {
        return Err(Error::Store(format!(
            "{} is damaged; run `clipsearch index` to publish the index again",
            path.display()
        )));
    }
    Ok(ids)
}

/// Deletes the segment, deleted-list and graph files (and leftovers of interrupted
/// publications, and snapshots of the oldest format) that none of `keep`'s manifests needs,
/// except `also` (a merge's output being written).
pub(crate) fn remove_unreferenced(dir: &Path, keep: &[&ViewManifest], also: &[String]) {
    let mut needed: std::collections::HashSet<String> =
        keep.iter().flat_map(|m| m.files()).collect();
    for a in also {
        needed.insert(a.clone());
        needed.insert(format!("{a}.tmp"));
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = ["view-", "hnsw-", "snapshot-", "deleted-"]
            .iter()
            .any(|p| name.starts_with(p));
        if ours && !needed.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// One segment as a view sees it: the global rows its live rows take.
pub struct Part<'a> {
    pub segment: &'a Segment,
    /// The global row of its first live row.
    pub start: usize,
    /// Its live rows, when some are deleted (None: every row is live).
    pub live: Option<&'a [u32]>,
}

impl Part<'_> {
    /// Live rows.
    pub fn len(&self) -> usize {
        self.live.map_or(self.segment.len(), <[u32]>::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment row of its `i`-th live row.
    pub fn local(&self, i: usize) -> usize {
        self.live.map_or(i, |l| l[i] as usize)
    }
}

/// An open, immutable view: every live file's id, vector and catalog record. Rows are
/// numbered `0..len()` over the live files, in id order.
pub struct View {
    manifest: ViewManifest,
    segments: Vec<Segment>,
    /// Global row of each segment's first live row, and the total last.
    starts: Vec<usize>,
    live: Vec<Option<Vec<u32>>>,
    deleted: Vec<u64>,
}

impl View {
    /// Opens the view `manifest` names. A missing file is an `Error::Io` of kind NotFound:
    /// a newer publication removed it, and the caller reads the manifest again.
    pub fn open(dir: &Path, manifest: ViewManifest) -> Result<View> {
        let view = View::open_parts(dir, manifest)?;
        if view.len() != view.manifest.count {
            return Err(Error::Store(format!(
                "the view in {} is inconsistent with view.json ({} files, {} found); run \
                 `clipsearch index` to publish the index again",
                dir.display(),
                view.manifest.count,
                view.len()
            )));
        }
        Ok(view)
    }

    /// The segments and deleted list `manifest` names, opened, without checking its count.
    fn open_parts(dir: &Path, manifest: ViewManifest) -> Result<View> {
        let segments = manifest
            .segments
            .iter()
            .map(|s| Segment::open(dir, &s.file, manifest.dim, s.rows))
            .collect::<Result<Vec<_>>>()?;
        let deleted = match &manifest.deleted {
            Some(d) => read_deleted(dir, d)?,
            None => Vec::new(),
        };
        let mut view = View {
            manifest,
            segments,
            starts: Vec::new(),
            live: Vec::new(),
            deleted,
        };
        let mut dead: Vec<Vec<u32>> = vec![Vec::new(); view.segments.len()];
        for &id in &view.deleted {
            if let Some((s, row)) = view.physical(id) {
                dead[s].push(row as u32);
            }
        }
        let mut start = 0;
        for (segment, mut dead) in view.segments.iter().zip(dead) {
            view.starts.push(start);
            if dead.is_empty() {
                view.live.push(None);
                start += segment.len();
            } else {
                dead.sort_unstable();
                let live: Vec<u32> = (0..segment.len() as u32)
                    .filter(|r| dead.binary_search(r).is_err())
                    .collect();
                start += live.len();
                view.live.push(Some(live));
            }
        }
        view.starts.push(start);
        Ok(view)
    }

    /// Opens what remains of the view `manifest` names, for the writer: segments whose files
    /// are gone (deleted by hand, a damaged disk) are left out, and so is the deleted list if
    /// it is; true in the second place when anything was. The writer then publishes afresh.
    pub fn open_remains(dir: &Path, mut manifest: ViewManifest) -> Result<(View, bool)> {
        let before = (manifest.segments.len(), manifest.deleted.is_some());
        manifest
            .segments
            .retain(|s| Segment::open(dir, &s.file, manifest.dim, s.rows).is_ok());
        if manifest
            .deleted
            .as_ref()
            .is_some_and(|d| read_deleted(dir, d).is_err())
        {
            manifest.deleted = None;
        }
        let damaged = before != (manifest.segments.len(), manifest.deleted.is_some());
        if damaged {
            let mut probe = View::open_parts(dir, manifest)?;
            probe.manifest.count = probe.len();
            return Ok((probe, true));
        }
        Ok((View::open(dir, manifest)?, false))
    }

    pub fn manifest(&self) -> &ViewManifest {
        &self.manifest
    }

    pub fn model(&self) -> &ModelIdentity {
        &self.manifest.model
    }

    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Live files.
    pub fn len(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segments, as global rows see them.
    pub fn parts(&self) -> impl Iterator<Item = Part<'_>> {
        self.segments.iter().enumerate().map(|(s, segment)| Part {
            segment,
            start: self.starts[s],
            live: self.live[s].as_deref(),
        })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The ids deleted since their segments were written (ascending).
    pub fn deleted(&self) -> &[u64] {
        &self.deleted
    }

    /// The segment and segment row that hold `id`, deleted or not.
    pub fn physical(&self, id: u64) -> Option<(usize, usize)> {
        let s = self.manifest.segments.partition_point(|r| r.max_id < id);
        let row = self.segments.get(s)?.row_of_id(id)?;
        Some((s, row))
    }

    /// The stored vector of `id`, deleted or not (the writer reuses vectors by content).
    pub fn physical_vector(&self, id: u64) -> Option<&[f32]> {
        let (s, row) = self.physical(id)?;
        Some(self.segments[s].vector(row))
    }

    fn at(&self, row: usize) -> (&Segment, usize) {
        let s = self.starts.partition_point(|&x| x <= row) - 1;
        let i = row - self.starts[s];
        let local = self.live[s].as_ref().map_or(i, |l| l[i] as usize);
        (&self.segments[s], local)
    }

    /// The global row of segment `s`'s row `local`, if it is live.
    fn global(&self, s: usize, local: usize) -> Option<usize> {
        match &self.live[s] {
            None => Some(self.starts[s] + local),
            Some(l) => l
                .binary_search(&(local as u32))
                .ok()
                .map(|i| self.starts[s] + i),
        }
    }

    pub fn id(&self, row: usize) -> u64 {
        let (s, r) = self.at(row);
        s.id(r)
    }

    pub fn vector(&self, row: usize) -> &[f32] {
        let (s, r) = self.at(row);
        s.vector(r)
    }

    /// Every live vector: the segment's own mapping when the view is one segment with nothing
    /// deleted, a copy otherwise.
    pub fn vectors(&self) -> Cow<'_, VectorSet> {
        match (self.segments.as_slice(), self.deleted.is_empty()) {
            ([one], true) => Cow::Borrowed(one.vectors()),
            _ => Cow::Owned(self.select_vectors(&(0..self.len()).collect::<Vec<_>>())),
        }
    }

    /// A copy of the vectors of `rows`.
    pub fn select_vectors(&self, rows: &[usize]) -> VectorSet {
        let mut out = VectorSet::new(self.dim());
        for &r in rows {
            out.push(self.id(r), self.vector(r));
        }
        out
    }

    /// The vectors of `rows`, row-major, read without mapping them (see
    /// [`Segment::read_vectors`]).
    pub fn read_vectors(&self, rows: &[usize]) -> Vec<f32> {
        let dim = self.dim();
        let mut out = Vec::with_capacity(rows.len() * dim);
        for &r in rows {
            let (s, local) = self.at(r);
            out.extend(s.read_vectors(&[local]));
        }
        out
    }

    /// Tells the kernel how a searcher reads each segment (see [`Segment::advise_search`]).
    pub fn advise_search(&self, uses_codes: bool) {
        for s in &self.segments {
            s.advise_search(uses_codes);
        }
    }

    /// The binary codes of the first segment (None without segments or before format 3):
    /// what a search compares the codes' width against.
    pub fn codes(&self) -> Option<Codes<'_>> {
        let mut all = self.segments.iter().map(Segment::codes);
        let first = all.next()??;
        all.all(|c| c.is_some()).then_some(first)
    }

    pub fn path(&self, row: usize) -> &Path {
        let (s, r) = self.at(row);
        s.path(r)
    }

    pub fn raw(&self, row: usize) -> Option<&Path> {
        let (s, r) = self.at(row);
        s.raw(r)
    }

    pub fn record(&self, row: usize) -> FileRecord {
        let (s, r) = self.at(row);
        s.record(r)
    }

    pub fn meta(&self, row: usize) -> Option<PhotoMeta> {
        let (s, r) = self.at(row);
        s.meta(r)
    }

    pub fn taken_ms(&self, row: usize) -> Option<i64> {
        let (s, r) = self.at(row);
        s.taken_ms(r)
    }

    pub fn time_recorded(&self, row: usize) -> bool {
        let (s, r) = self.at(row);
        s.time_recorded(r)
    }

    pub fn fields(&self, row: usize) -> RowFields {
        let (s, r) = self.at(row);
        s.fields(r)
    }

    pub fn entry(&self, row: usize) -> ViewEntry<'_> {
        let (s, r) = self.at(row);
        s.entry(r)
    }

    /// Files whose metadata was never read.
    pub fn unread_metadata(&self) -> usize {
        self.parts()
            .map(|p| {
                (0..p.len())
                    .filter(|&i| !p.segment.meta_read(p.local(i)))
                    .count()
            })
            .sum()
    }

    /// The rows `filter` keeps, in row order (every row for an empty filter).
    pub fn select(&self, filter: &Filter) -> Vec<usize> {
        if filter.is_empty() {
            return (0..self.len()).collect();
        }
        let mut out = Vec::new();
        for p in self.parts() {
            let mut keep = p.segment.matcher(filter);
            out.extend(
                (0..p.len())
                    .filter(|&i| keep(p.local(i)))
                    .map(|i| p.start + i),
            );
        }
        out
    }

    /// The row of a live file id.
    pub fn row_of_id(&self, id: u64) -> Option<usize> {
        let (s, local) = self.physical(id)?;
        self.global(s, local)
    }

    /// The row of an indexed path.
    pub fn row_of_path(&self, path: &Path) -> Option<usize> {
        self.segments.iter().enumerate().rev().find_map(|(s, seg)| {
            seg.row_of_path(path)
                .and_then(|local| self.global(s, local))
        })
    }

    /// Rows in path order.
    pub fn rows_by_path(&self) -> Vec<usize> {
        self.merge_by_path(|s, seg| Box::new(seg.rows_by_path().map(move |r| (s, r))))
    }

    /// Rows of the files inside `dir`, in path order.
    pub fn rows_under(&self, dir: &Path) -> Vec<usize> {
        self.merge_by_path(|s, seg| Box::new(seg.rows_under(dir).map(move |r| (s, r))))
    }

    /// The live rows each segment yields in path order, merged into one path order.
    fn merge_by_path<'a>(
        &'a self,
        rows: impl Fn(usize, &'a Segment) -> Box<dyn Iterator<Item = (usize, usize)> + 'a>,
    ) -> Vec<usize> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut sources: Vec<_> = self
            .segments
            .iter()
            .enumerate()
            .map(|(s, seg)| {
                rows(s, seg).filter_map(move |(s, local)| Some((self.global(s, local)?, s, local)))
            })
            .collect();
        let key = |s: usize, local: usize| path_key(self.segments[s].path(local));
        let mut heap = BinaryHeap::new();
        for (i, src) in sources.iter_mut().enumerate() {
            if let Some((g, s, local)) = src.next() {
                heap.push(Reverse((key(s, local), i, g)));
            }
        }
        let mut out = Vec::new();
        while let Some(Reverse((_, i, g))) = heap.pop() {
            out.push(g);
            if let Some((g, s, local)) = sources[i].next() {
                heap.push(Reverse((key(s, local), i, g)));
            }
        }
        out
    }
}
