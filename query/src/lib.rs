//! # clipsearch-query: answering queries against a clipsearch index
//!
//! A [`Searcher`] holds the published view of an index (see `clipsearch::store::view`) and its
//! search structure, and embeds queries with the index's own model, loading only the tower a
//! query needs: a text query never maps the vision weights, and a repeated text query is
//! answered from the index's query cache without loading any model at all. Queries are
//! [`expr`] expressions: texts and images, each weighted and signed, combined into one
//! normalised vector. A searcher never opens the writer's database, so searches run while an
//! index run is going on, in any number of processes.
//!
//! ```no_run
//! use clipsearch_query::{expr, SearchOptions, Searcher};
//! let mut searcher = Searcher::open("index".as_ref(), None)?;
//! let terms = expr::parse(&["dog on a beach".into(), "-".into(), "people".into()])?;
//! let query = searcher.embed_terms(&terms)?;
//! for m in searcher.search(&query, &SearchOptions::default())? {
//!     println!("{:.3} {}", m.score.unwrap_or(0.0), m.path.display());
//! }
//! # Ok::<(), clipsearch_query::Error>(())
//! ```

mod cache;
pub mod classify;
pub mod dupes;
pub mod embedder;
pub mod expr;
pub mod info;
pub mod remote;
#[cfg(feature = "serve")]
pub mod serve;

use std::path::{Path, PathBuf};

use clipsearch::index::SearchIndex;
use clipsearch::metadata::{Filter, SortOrder};
use clipsearch::store::view::View;
use clipsearch::store::Store;
use embedder::Embedder;

use cache::QueryCache;
use serde::Serialize;

use expr::{Item, Term};

/// Query errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] clipsearch::Error),
    #[error(transparent)]
    Parse(#[from] expr::ParseError),
    #[error("the index at {0} is empty: run `clipsearch index DIR...` first")]
    EmptyIndex(PathBuf),
    #[error(
        "the index at {0} is being built and its first run has not published results yet; \
         try again in a few seconds"
    )]
    NotPublishedYet(PathBuf),
    /// The filters keep no file; says what the index has, so the user can adjust them.
    #[error("no indexed file matches {0}")]
    NoMatch(String),
    #[error(
        "the index at {0} was built before clipsearch recorded photo metadata, so it cannot \
         filter by date, place, camera or format yet: run `clipsearch index DIR...` on its \
         folders once (it reads the metadata only: nothing is decoded or embedded again)"
    )]
    NoMetadata(PathBuf),
}

/// One result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Match {
    pub path: PathBuf,
    /// Cosine similarity to the query; None when files are listed by filters alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The camera RAW of the same shot beside the file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<PathBuf>,
    /// Capture time, ISO 8601 (with the UTC offset when the photo records it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    /// "Lisbon, Portugal".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// The machine or root label the file lives on (results of a shared collection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip)]
    pub id: u64,
}

impl Match {
    pub(crate) fn of(view: &View, row: usize, score: Option<f32>) -> Match {
        let mut m = Match::with_meta(view.id(row), view.path(row), score, view.meta(row));
        m.raw = view.raw(row).map(Path::to_path_buf);
        m
    }

    /// A result with what it shows of the photo's metadata (capture time, place, camera).
    pub(crate) fn with_meta(
        id: u64,
        path: impl Into<PathBuf>,
        score: Option<f32>,
        meta: Option<clipsearch::metadata::PhotoMeta>,
    ) -> Match {
        let meta = meta.as_ref();
        Match {
            path: path.into(),
            score,
            raw: None,
            taken: meta.and_then(|m| m.taken.as_ref()).map(|t| t.iso()),
            place: meta.and_then(|m| m.place.as_ref()).map(|p| p.label()),
            camera: meta.and_then(|m| m.camera()),
            source: None,
            id,
        }
    }
}

/// Filters, order and limits of a search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub top: usize,
    /// Minimum cosine similarity.
    pub threshold: Option<f32>,
    /// Only files inside this folder.
    pub under: Option<PathBuf>,
    /// Only files whose metadata passes.
    pub filter: Filter,
    /// The order of the results (the best `top` by score, then ordered).
    pub sort: SortOrder,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            top: 10,
            threshold: None,
            under: None,
            filter: Filter::default(),
            sort: SortOrder::Score,
        }
    }
}

/// An open index ready to answer queries: the published view in force when it was opened (or
/// last refreshed), never the writer's database, so any number of searchers run beside an index
/// run.
pub struct Searcher {
    dir: PathBuf,
    index: SearchIndex,
    cache: QueryCache,
    embedder: Embedder,
}

impl Searcher {
    /// Opens the index at `dir`. `model`: the checkpoint to embed queries with; None uses the
    /// one the index was built with. A model other than the index's is refused: its space is
    /// not the index's.
    pub fn open(dir: &Path, model: Option<&str>) -> Result<Self, Error> {
        let index = open_view(dir)?;
        if index.is_empty() {
            return Err(Error::EmptyIndex(dir.to_path_buf()));
        }
        let identity = index.view().model().clone();
        Ok(Searcher {
            dir: dir.to_path_buf(),
            cache: QueryCache::new(dir, &identity),
            index,
            embedder: Embedder::new(identity, model),
        })
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The view being searched.
    pub fn view(&self) -> &View {
        self.index.view()
    }

    /// Switches to the newest published view, if a newer one exists; true if it switched. A
    /// view of another model (the index was rebuilt) drops the loaded towers.
    pub fn refresh(&mut self) -> Result<bool, Error> {
        let newest = clipsearch::store::view::read_manifest(&self.dir)?;
        if newest.is_none_or(|m| m.generation == self.index.view().generation()) {
            return Ok(false);
        }
        self.index = SearchIndex::open(&self.dir)?;
        let identity = self.index.view().model().clone();
        if identity != *self.embedder.identity() {
            self.cache = QueryCache::new(&self.dir, &identity);
            self.embedder.set_identity(identity);
        }
        Ok(true)
    }

    /// Embeds a text, from the query cache when it was asked before.
    pub fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        if let Some(v) = self.cache.get(text) {
            return Ok(v);
        }
        let v = self.embedder.embed_text(text)?;
        self.cache.put(text, &v);
        Ok(v)
    }

    /// Embeds an image: an indexed file's stored embedding (no model run), else the file.
    pub fn embed_image(&mut self, path: &Path) -> Result<Vec<f32>, Error> {
        if let Ok(canonical) = path.canonicalize() {
            let view = self.index.view();
            if let Some(row) = view.row_of_path(&canonical) {
                let rec = view.record(row);
                let fresh = std::fs::metadata(&canonical)
                    .map(|m| m.len() == rec.size && clipsearch::store::mtime_ns(&m) == rec.mtime_ns)
                    .unwrap_or(false);
                if fresh {
                    return Ok(view.vector(row).to_vec());
                }
            }
        }
        self.embedder.embed_file(path)
    }

    /// Embeds an image given as file contents (an upload); `name` is used in messages.
    pub fn embed_image_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        self.embedder.embed_bytes(name, bytes)
    }

    /// The normalised query vector of an expression.
    pub fn embed_terms(&mut self, terms: &[Term]) -> Result<Vec<f32>, Error> {
        let mut parts = Vec::with_capacity(terms.len());
        for t in terms {
            let v = match &t.item {
                Item::Text(s) => self.embed_text(s)?,
                Item::Image(p) => self.embed_image(p)?,
            };
            parts.push((t.weight, v));
        }
        Ok(expr::combine(&parts))
    }

    /// The files most similar to `query` among those the options keep.
    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let view = self.index.view();
        let hits = match self.candidate_rows(opts)? {
            None => self.index.search(query, opts.top),
            Some(rows) => self.index.search_rows(query, opts.top, &rows),
        };
        let mut matches: Vec<Match> = hits
            .into_iter()
            .filter(|h| opts.threshold.is_none_or(|t| h.score >= t))
            .filter_map(|h| Some(Match::of(view, view.row_of_id(h.id)?, Some(h.score))))
            .collect();
        if opts.sort != SortOrder::Score {
            by_date(&mut matches, opts.sort, |m| {
                view.row_of_id(m.id).and_then(|r| view.taken_ms(r))
            });
        }
        Ok(matches)
    }

    /// The files the options keep, by capture time (oldest first unless `-date`): a query of
    /// filters alone.
    pub fn list(&self, opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let view = self.index.view();
        let rows = self
            .candidate_rows(opts)?
            .unwrap_or_else(|| (0..view.len()).collect());
        let mut rows = rows;
        by_date(&mut rows, opts.sort, |&r| view.taken_ms(r));
        Ok(rows
            .into_iter()
            .take(opts.top)
            .map(|r| Match::of(view, r, None))
            .collect())
    }

    /// The rows the options keep (sorted), or None when they keep every file.
    pub(crate) fn candidate_rows(&self, opts: &SearchOptions) -> Result<Option<Vec<usize>>, Error> {
        let view = self.index.view();
        if opts.filter.is_empty() && opts.under.is_none() {
            return Ok(None);
        }
        let mut rows = if opts.filter.is_empty() {
            None
        } else {
            let unread = view.unread_metadata();
            if unread == view.len() {
                return Err(Error::NoMetadata(self.dir.clone()));
            }
            if unread > 0 {
                tracing::warn!(
                    "{unread} files of the index have no metadata yet: run `clipsearch index` \
                     on their folders to read it"
                );
            }
            Some(view.select(&opts.filter))
        };
        if let Some(dir) = &opts.under {
            let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            let mut under: Vec<usize> = view.rows_under(&dir).collect();
            under.sort_unstable();
            rows = Some(match rows {
                None => under,
                Some(r) => {
                    let inside: std::collections::HashSet<usize> = under.into_iter().collect();
                    r.into_iter().filter(|x| inside.contains(x)).collect()
                }
            });
        }
        let rows = rows.unwrap_or_default();
        if rows.is_empty() && !opts.filter.is_empty() {
            return Err(Error::NoMatch(self.no_match_message(opts)));
        }
        Ok(Some(rows))
    }

    /// "after 2030 (of 120 indexed files, 118 have a capture date, from 2009-05 to 2024-11; ...)"
    fn no_match_message(&self, opts: &SearchOptions) -> String {
        let c = info::coverage(self.index.view());
        let span = match (&c.first_month, &c.last_month) {
            (Some(a), Some(b)) => format!(", from {a} to {b}"),
            _ => String::new(),
        };
        let under = opts
            .under
            .as_ref()
            .map(|d| format!(" under {}", d.display()))
            .unwrap_or_default();
        format!(
            "{}{under} (of {} indexed files, {} have a capture date{span}, {} a GPS \
             position, {} a camera)",
            opts.filter.describe(),
            c.files,
            c.dated,
            c.with_gps,
            c.with_camera,
        )
    }
}

/// Orders `items` by capture time, newest first for `-date`, oldest first otherwise; undated
/// ones last either way, ties in their previous order (the sort is stable).
pub(crate) fn by_date<T>(items: &mut [T], sort: SortOrder, taken: impl Fn(&T) -> Option<i64>) {
    items.sort_by_cached_key(|item| {
        let t = taken(item);
        let key = match sort {
            SortOrder::DateDesc => t.map(|t| -t),
            _ => t,
        };
        (key.is_none(), key)
    });
}

/// The view in force at `dir` (for `Searcher::open`, and readers that need no model: `stats`).
/// An index with a database but no view (written by a version that
/// did not publish views, or whose first run has not published yet) is published here when its
/// database is free, which takes one read of the catalog and no model; while a writer holds it,
/// the reader is told to come back in a moment.
pub fn open_view(dir: &Path) -> Result<SearchIndex, Error> {
    match SearchIndex::open(dir) {
        Err(clipsearch::Error::NoView(_)) => {}
        other => return Ok(other?),
    }
    if !dir.join("db").exists() {
        return Err(clipsearch::Error::Index(format!(
            "no index at {}: build one with `clipsearch index DIR...` (or pass --index)",
            dir.display()
        ))
        .into());
    }
    match Store::open_if_free(dir)? {
        Some(store) => {
            clipsearch::index::publish(&store)?;
        }
        None => {
            // The writer may have published between our two looks.
            if let Ok(index) = SearchIndex::open(dir) {
                return Ok(index);
            }
            return Err(Error::NotPublishedYet(dir.to_path_buf()));
        }
    }
    match SearchIndex::open(dir) {
        Err(clipsearch::Error::NoView(_)) => Err(Error::EmptyIndex(dir.to_path_buf())),
        other => Ok(other?),
    }
}
