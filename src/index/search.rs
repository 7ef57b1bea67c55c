//! The index queries use: a published view, searched through its HNSW graph (for the files the
//! graph covers) plus an exact scan of the rest, with removed files filtered out.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use super::{top_k, ExactIndex, Hit, HnswIndex, HnswParams, NearestNeighbours};
use crate::embedding::dot;
use crate::error::{Error, Result};
use crate::store::view::{read_manifest, View};

/// Collections at least this large get an HNSW graph; smaller ones are scanned exactly.
///
/// Measured on this project's 2-core reference machine at 100k x 512 (`benches/index.rs`): an
/// exact top-10 scan takes 21 ms, an HNSW search 8 ms; but building that graph takes 250-300 s,
/// the index's files grow from 206 MB to 490 MB (hnsw_rs keeps its own copy of the vectors), and
/// loading the graph takes 1.5-2.3 s against under a millisecond for the memory-mapped view. A
/// CLI query opens the view every time, so the exact scan wins on total latency well past 100k; the
/// graph pays off only for long-lived processes on larger collections. Exact search scales
/// linearly (~0.2 µs a vector): ~40 ms at 200k.
pub const HNSW_THRESHOLD: usize = 200_000;

/// A filtered search scans the files that pass exactly when they are at most 1/this of the
/// view (qdrant's rule), or at most [`FILTERED_SCAN_ROWS`], and always without a graph.
const FILTERED_SCAN_SHARE: usize = 5;

/// Up to this many passing files, scanning them beats the graph whatever their share. Measured
/// at 100k x 512 on this project's 2-core machine (`cargo bench -p clipsearch --bench index`):
/// a filter keeping 50% costs 4.3-4.5 ms scanned exactly against 13-17 ms through hnsw_rs's filtered
/// search (which must step over the neighbours the filter rejects), and the scan costs about
/// 0.09 us a row, so the graph wins only past some 150k passing files.
pub const FILTERED_SCAN_ROWS: usize = 150_000;

/// How often a reader reads the manifest again when the view it names vanished under it (a
/// writer published twice between the reader's read and its open).
const OPEN_ATTEMPTS: usize = 8;

pub struct SearchIndex {
    /// See [`FILTERED_SCAN_ROWS`]; settable for tests of the graph path on small views.
    filtered_scan_rows: usize,
    view: View,
    graph: Option<HnswIndex>,
    /// The view's files the graph does not cover (all of them without a graph), scanned exactly.
    tail: ExactIndex,
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
            let graph_ref = manifest.graph.clone();
            let view = match View::open(dir, manifest) {
                Ok(v) => v,
                Err(e) if vanished(&e) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let graph = match &graph_ref {
                None => None,
                Some(g) if g.files().iter().any(|f| !dir.join(f).exists()) => {
                    last = Some(Error::Index(format!("graph {} vanished", g.basename)));
                    continue;
                }
                Some(g) => match HnswIndex::load(dir, &g.basename, HnswParams::default()) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::warn!("{e}; searching exactly until the next index run");
                        None
                    }
                },
            };
            let covered = match (&graph, &graph_ref) {
                (Some(_), Some(g)) => view.vectors().ids.partition_point(|&id| id <= g.max_id),
                _ => 0,
            };
            let tail = ExactIndex::new(view.vectors().rows_from(covered));
            tracing::debug!(
                generation = view.generation(),
                files = view.len(),
                graph = covered,
                ms = t.elapsed().as_millis() as u64,
                "view opened"
            );
            return Ok(SearchIndex {
                filtered_scan_rows: FILTERED_SCAN_ROWS,
                view,
                graph,
                tail,
            });
        }
        Err(last.unwrap_or_else(|| Error::NoView(dir.to_path_buf())))
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// Sets how many passing files a filtered search scans exactly at most, whatever their
    /// share (default [`FILTERED_SCAN_ROWS`]).
    pub fn with_filtered_scan_rows(mut self, rows: usize) -> Self {
        self.filtered_scan_rows = rows;
        self
    }

    /// Files searchable.
    pub fn len(&self) -> usize {
        self.view.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best `k` of the view's `rows` (sorted, as [`View::select`] returns them), best first.
    /// A filter that keeps few files is answered by scanning just those (qdrant's full-scan
    /// threshold): exact, and cheaper than walking a graph whose neighbours mostly fail the
    /// filter; one that keeps very many goes through the graph with the filter applied.
    pub fn search_rows(&self, query: &[f32], k: usize, rows: &[usize]) -> Vec<Hit> {
        let view = &self.view;
        if self.graph.is_none()
            || rows.len() <= self.filtered_scan_rows
            || rows.len() * FILTERED_SCAN_SHARE <= view.len()
        {
            let hits: Vec<Hit> = rows
                .par_chunks(4096)
                .flat_map_iter(|chunk| {
                    let hits = chunk
                        .iter()
                        .map(|&r| Hit {
                            id: view.id(r),
                            score: dot(query, view.vector(r)),
                        })
                        .collect();
                    top_k(hits, k)
                })
                .collect();
            return top_k(hits, k);
        }
        let mut keep = vec![false; view.len()];
        for &r in rows {
            keep[r] = true;
        }
        self.search(query, k, &|id| view.row_of_id(id).is_some_and(|r| keep[r]))
    }

    /// The best `k` files accepted by `keep`, best first.
    pub fn search(&self, query: &[f32], k: usize, keep: &(dyn Fn(u64) -> bool + Sync)) -> Vec<Hit> {
        let mut hits = self.tail.search(query, k, keep);
        if let Some(g) = &self.graph {
            // The graph may still hold files removed since it was built: they are not in the
            // view, and never returned.
            let live = |id: u64| keep(id) && self.view.row_of_id(id).is_some();
            hits.extend(g.search(query, k, &live));
        }
        top_k(hits, k)
    }
}
