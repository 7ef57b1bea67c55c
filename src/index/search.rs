//! The index queries use: a published view, searched through its binary codes (the best few
//! hundred by Hamming distance, rescored exactly) when it is large, exactly when it is small.
//!
//! Why not a graph: a CLI query is a new process, and hnsw_rs reads a whole graph on open
//! (2.9-3.2 s and 700 MB at 210,000 files, 20-60x the exact scan's total time), while a scan of
//! memory-mapped codes costs the same from the first query and reads 1/32 of the f32 vectors.
//! `cargo bench -p clipsearch-cli --bench scale` measures both (see docs/scale.md).

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use super::hit::{top_k, Hit};
use crate::embedding::dot;
use crate::error::{Error, Result};
use crate::store::codes;
use crate::store::segment::Segment;
use crate::store::view::{read_manifest, View};

/// Below this many candidate rows a search scans the f32 vectors exactly: the scan is cheap
/// (20k x 512 is 40 MB, a few milliseconds) and the codes would save nothing worth their
/// approximation.
pub const EXACT_SCAN_ROWS: usize = 20_000;

/// Codes of fewer bits than this say too little about the angle to choose candidates by (the
/// 64-dimensional demo model's 64 bits): such views are scanned exactly at any size.
pub const MIN_CODE_BITS: usize = 128;

/// Candidates rescored exactly per query: at least this many, and at least
/// [`RESCORE_PER_RESULT`] per result asked for. Measured at 1,000,000 x 512 on clustered data
/// (`cargo bench -p clipsearch-cli --bench scale`), recall@10 against the exact scan is 0.99+ with
/// 1,000; the rescoring reads one vector per candidate.
pub const RESCORE_MIN: usize = 1_000;
pub const RESCORE_PER_RESULT: usize = 40;

/// How often a reader reads the manifest again when the view it names vanished under it (a
/// writer published between the reader's read and its open).
const OPEN_ATTEMPTS: usize = 8;

pub struct SearchIndex {
    view: View,
    /// See [`EXACT_SCAN_ROWS`]; settable so that tests reach the codes on small views.
    exact_scan_rows: usize,
    rescore_min: usize,
}

fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl SearchIndex {
    /// Opens the view in force in the index directory `dir` (`Error::NoView` if none is).
    pub fn open(dir: &Path) -> Result<Self> {
        let t = Instant::now();
        let mut last = None;
        for _ in 0..OPEN_ATTEMPTS {
            let Some(manifest) = read_manifest(dir)? else {
                return Err(Error::NoView(dir.to_path_buf()));
            };
            let view = match View::open(dir, manifest) {
                Ok(v) => v,
                Err(e) if vanished(&e) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            tracing::debug!(
                generation = view.generation(),
                files = view.len(),
                ms = t.elapsed().as_millis() as u64,
                "view opened"
            );
            return Ok(SearchIndex::new(view));
        }
        Err(last.unwrap_or_else(|| Error::NoView(dir.to_path_buf())))
    }

    pub fn new(view: View) -> Self {
        let index = SearchIndex {
            view,
            exact_scan_rows: EXACT_SCAN_ROWS,
            rescore_min: RESCORE_MIN,
        };
        index.view.advise_search(index.uses_codes(index.len()));
        index
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// Sets below how many candidate rows a search scans exactly (default
    /// [`EXACT_SCAN_ROWS`]) and how many candidates the codes choose at least (default
    /// [`RESCORE_MIN`]).
    pub fn with_scan(mut self, exact_scan_rows: usize, rescore_min: usize) -> Self {
        self.exact_scan_rows = exact_scan_rows;
        self.rescore_min = rescore_min;
        self
    }

    /// Files searchable.
    pub fn len(&self) -> usize {
        self.view.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a search over `rows` candidates goes through the codes.
    pub fn uses_codes(&self, rows: usize) -> bool {
        rows >= self.exact_scan_rows
            && self
                .view
                .codes()
                .is_some_and(|c| c.mean.len() >= MIN_CODE_BITS)
    }

    /// The best `k` files, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        self.search_in(query, k, None)
    }

    /// The best `k` of the view's `rows` (as [`View::select`] returns them), best first.
    pub fn search_rows(&self, query: &[f32], k: usize, rows: &[usize]) -> Vec<Hit> {
        self.search_in(query, k, Some(rows))
    }

    fn search_in(&self, query: &[f32], k: usize, rows: Option<&[usize]>) -> Vec<Hit> {
        if k == 0 {
            return Vec::new();
        }
        let view = &self.view;
        let n = rows.map_or(view.len(), <[usize]>::len);
        let coded = self.uses_codes(n);
        let want = self.rescore_min.max(RESCORE_PER_RESULT * k);
        let mut sorted = rows.map(<[usize]>::to_vec);
        if let Some(r) = &mut sorted {
            r.sort_unstable();
        }
        let deleted = view.deleted();
        let mut hits = Vec::new();
        // Each segment on its own: its codes are taken against its own mean, and its share of
        // the candidates is its share of the rows (at least what `k` results need), so that a
        // view of a few large segments rescores about what one segment would.
        for p in view.parts() {
            let seg = p.segment;
            let locals: Option<Vec<usize>> = match &sorted {
                Some(r) => {
                    let from = r.partition_point(|&g| g < p.start);
                    let to = r.partition_point(|&g| g < p.start + p.len());
                    Some(r[from..to].iter().map(|&g| p.local(g - p.start)).collect())
                }
                None => p.live.map(|l| l.iter().map(|&r| r as usize).collect()),
            };
            let n_s = locals.as_ref().map_or(seg.len(), Vec::len);
            if n_s == 0 {
                continue;
            }
            let want_s = (want * n_s).div_ceil(n.max(1)).max(RESCORE_PER_RESULT * k);
            match seg.codes().filter(|_| coded && n_s > want_s) {
                Some(c) => {
                    let mut code = vec![0u64; c.words];
                    codes::encode(query, c.mean, &mut code);
                    let candidates = codes::nearest(c.codes, &code, locals.as_deref(), want_s);
                    hits.extend(rescore(seg, query, k, &candidates));
                }
                None => match (&sorted, locals) {
                    (None, _) => hits.extend(super::exact::scan(seg.vectors(), query, k, &|id| {
                        p.live.is_none() || deleted.binary_search(&id).is_err()
                    })),
                    (Some(_), Some(l)) => hits.extend(rescore(seg, query, k, &l)),
                    (Some(_), None) => unreachable!("a filter gives every segment its rows"),
                },
            }
        }
        top_k(hits, k)
    }
}

/// The best `k` of a segment's `rows` (scattered: candidates, or what a filter kept) by exact
/// dot product, their vectors read without mapping them (see [`Segment::read_vectors`]).
fn rescore(seg: &Segment, query: &[f32], k: usize, rows: &[usize]) -> Vec<Hit> {
    let dim = query.len();
    let hits: Vec<Hit> = rows
        .par_chunks(1024)
        .flat_map_iter(|chunk| {
            let vectors = seg.read_vectors(chunk);
            let hits = chunk
                .iter()
                .zip(vectors.chunks_exact(dim))
                .map(|(&r, v)| Hit {
                    id: seg.id(r),
                    score: dot(query, v),
                })
                .collect();
            top_k(hits, k)
        })
        .collect();
    top_k(hits, k)
}
