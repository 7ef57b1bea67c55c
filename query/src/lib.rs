//! # clipsearch-query: answering queries against a clipsearch index
//!
//! One way through: an `--index` value becomes a [`Target`] in one place ([`target`]), and
//! every query goes through the [`Searcher`] trait it opens, the same for a local index
//! ([`local`]: its published view, never the writer's database, so searches run beside an
//! index run in any number of processes) and for a shared collection ([`shared`]: Milvus,
//! through the engine's storage trait). A searcher embeds queries with the vectors' own model,
//! loading only the tower a query needs: a text query never maps the vision weights, and a
//! repeated text query is answered from the index's query cache without loading any model at
//! all. Queries are [`expr`] expressions: texts and images, each weighted and signed, combined
//! into one normalised vector.
//!
//! ```no_run
//! use clipsearch_query::{expr, SearchOptions, Searcher, Target};
//! let mut searcher = Target::Local("index".into()).searcher(None)?;
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
pub mod local;
pub mod searcher;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shared;
pub mod target;

use std::path::{Path, PathBuf};

use clipsearch::metadata::{Filter, SortOrder};
use clipsearch::store::view::View;
use serde::Serialize;

pub use local::open_view;
pub use searcher::{FileAt, Searcher};
pub use target::{Stats, Target};

/// Query errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] clipsearch::Error),
    #[error(transparent)]
    Parse(#[from] expr::ParseError),
    #[error("the index at {0} is empty: run `clipsearch index DIR...` first")]
    EmptyIndex(PathBuf),
    #[error("no index at {0}: build one with `clipsearch index DIR...` (or pass --index)")]
    NoIndex(PathBuf),
    #[error(
        "the collection {0} is empty: index into it first (`clipsearch index DIR... --index {0}`)"
    )]
    EmptyCollection(String),
    /// A `--model` whose embeddings are not comparable with the index's.
    #[error(
        "--model {given} is not the model this index was built with ({recorded}): query with \
         that model, or re-index with `clipsearch index --rebuild --model {given}`"
    )]
    WrongModel { given: String, recorded: String },
    /// The server will not start as asked: exposed without a token, a certificate or key that
    /// does not do.
    #[error("{0}")]
    Refused(String),
    /// The server could not start, listen, or keep serving.
    #[error("{0}")]
    Server(String),
    /// The folders of `serve --watch` cannot be watched.
    #[error("{0}")]
    Watch(String),
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
