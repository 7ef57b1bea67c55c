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
        // Segments large enough to choose from by their codes are chosen from together: each
        // segment's Hamming distances (taken against its own mean, so not comparable as they
        // stand) are put on one scale, the dot product they estimate, and one cut-off on it
        // picks the `want` candidates best in the whole view wherever they lie. A share per
        // segment instead rescores `want` plus a floor per segment, and a segment that holds
        // most of the answer still gives its best. Each segment also gives its own best `k`.
        let mut chosen: Vec<Chosen> = Vec::new();
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
            match seg
                .codes()
                .filter(|_| coded && n_s > RESCORE_PER_RESULT * k)
            {
                Some(c) => {
                    let mut code = vec![0u64; c.words];
                    codes::encode(query, c.mean, &mut code);
                    let distances = codes::distances(c.codes, &code, locals.as_deref());
                    let mut histogram = codes::Histogram::new(c.words);
                    histogram.add(&distances);
                    chosen.push(Chosen {
                        segment: seg,
                        rows: locals,
                        scores: estimated_scores(query, c.mean),
                        distances,
                        histogram,
                    });
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
        let bar = score_cutoff(&chosen, want);
        for c in chosen {
            // The largest distance whose estimate reaches the bar, and at least the own k best.
            let on_bar = c.scores.iter().take_while(|&&s| s >= bar).count();
            let cutoff = (on_bar.saturating_sub(1) as u16).max(c.histogram.cutoff(k));
            let candidates = codes::within(&c.distances, c.rows.as_deref(), cutoff);
            hits.extend(rescore(c.segment, query, k, &candidates));
        }
        top_k(hits, k)
    }
}

/// A segment searched through its codes: the distances of its rows and what they estimate.
struct Chosen<'v> {
    segment: &'v Segment,
    /// The rows the distances are of (every row when None).
    rows: Option<Vec<usize>>,
    distances: Vec<u16>,
    histogram: codes::Histogram,
    /// The dot product with the query that each Hamming distance estimates.
    scores: Vec<f32>,
}

/// The dot product of the query with a vector of the segment whose code is at each Hamming
/// distance from the query's: `q.v = q.m + (q-m).(v-m) + m.(v-m)`, the last term zero on average
/// over the segment, the middle one `|q-m| |v-m| cos(theta)` with `theta = pi d / bits` (sign
/// random projection's estimate) and `|v-m|^2 = 1 - |m|^2` on average for unit vectors. Rough
/// for a single row, but it puts the segments on one scale: a segment whose mean is near the
/// query (a folder of shots of it) ranks above one whose mean is not.
fn estimated_scores(query: &[f32], mean: &[f32]) -> Vec<f32> {
    let bits = mean.len();
    let qm = dot(query, mean);
    let mm = dot(mean, mean);
    let q_off = (dot(query, query) - 2.0 * qm + mm).max(0.0).sqrt();
    let v_off = (1.0 - mm).max(0.0).sqrt();
    let words = bits.div_ceil(64);
    (0..=64 * words)
        .map(|d| {
            let theta = std::f32::consts::PI * (d.min(bits) as f32) / bits as f32;
            qm + q_off * v_off * theta.cos()
        })
        .collect()
}

/// The estimated score at which the best `want` rows of all the chosen segments are in.
fn score_cutoff(chosen: &[Chosen], want: usize) -> f32 {
    let mut bins: Vec<(f32, usize)> = chosen
        .iter()
        .flat_map(|c| {
            c.scores
                .iter()
                .zip(c.histogram.counts())
                .filter(|(_, &n)| n > 0)
                .map(|(&s, &n)| (s, n))
        })
        .collect();
    bins.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut seen = 0;
    for (s, n) in bins {
        seen += n;
        if seen >= want {
            return s;
        }
    }
    f32::NEG_INFINITY
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
