//! What a query asks for and what it gets back: [`SearchOptions`] (filters, order, limits) and
//! [`Match`]es, the same from every searcher; ordering by capture time.

use std::path::{Path, PathBuf};

use clipsearch::metadata::{Filter, SortOrder};
use clipsearch::store::view::View;
use serde::Serialize;

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
