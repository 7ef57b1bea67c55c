//! Queries against a local index: the published view in force when it was opened (or last
//! refreshed), never the writer's database, so any number of searchers run beside an index
//! run, in any number of processes. A repeated text query is answered from the index's query
//! cache without loading any model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clipsearch::index::SearchIndex;
use clipsearch::metadata::SortOrder;
use clipsearch::store::view::View;
use clipsearch::store::Store;
use serde_json::{json, Value};

use crate::cache::QueryCache;
use crate::embedder::Embedder;
use crate::error::Error;
use crate::results::{by_date, Match, SearchOptions};
use crate::searcher::{FileAt, Searcher};
use crate::{dupes, info};

/// A local index open for queries.
pub struct LocalSearcher {
    dir: PathBuf,
    index: SearchIndex,
    cache: QueryCache,
    embedder: Embedder,
}

impl LocalSearcher {
    /// Opens the index at `dir` for queries. `model`: the checkpoint to embed queries with;
    /// None uses the one the index was built with. A model other than the index's is refused
    /// when it is loaded: its space is not the index's. An empty index is refused.
    pub fn open(dir: &Path, model: Option<&str>) -> Result<Self, Error> {
        let searcher = Self::open_any(dir, model)?;
        if searcher.index.is_empty() {
            return Err(Error::EmptyIndex(dir.to_path_buf()));
        }
        Ok(searcher)
    }

    /// [`LocalSearcher::open`], an empty index included (for reading records: `info`).
    pub fn open_any(dir: &Path, model: Option<&str>) -> Result<Self, Error> {
        let index = open_view(dir)?;
        let identity = index.view().model().clone();
        Ok(LocalSearcher {
            dir: dir.to_path_buf(),
            cache: QueryCache::new(dir, &identity),
            index,
            embedder: Embedder::new(identity, model),
        })
    }

    /// The view being searched.
    pub fn view(&self) -> &View {
        self.index.view()
    }

    /// The rows the options keep (sorted), or None when they keep every file.
    fn candidate_rows(&self, opts: &SearchOptions) -> Result<Option<Vec<usize>>, Error> {
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
            let mut under = view.rows_under(&dir);
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

impl Searcher for LocalSearcher {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    /// Switches to the newest published view, if a newer one exists. A view of another model
    /// (the index was rebuilt) drops the loaded towers.
    fn refresh(&mut self) -> Result<bool, Error> {
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

    /// From the query cache when it was asked before.
    fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        if let Some(v) = self.cache.get(text) {
            return Ok(v);
        }
        let v = self.embedder.embed_text(text)?;
        self.cache.put(text, &v);
        Ok(v)
    }

    /// An indexed file's stored embedding (no model run) while it is unchanged, else the file.
    fn embed_image(&mut self, path: &Path) -> Result<Vec<f32>, Error> {
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

    fn embed_image_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        self.embedder.embed_bytes(name, bytes)
    }

    fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
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

    fn list(&self, opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let view = self.index.view();
        let mut rows = self
            .candidate_rows(opts)?
            .unwrap_or_else(|| (0..view.len()).collect());
        by_date(&mut rows, opts.sort, |&r| view.taken_ms(r));
        Ok(rows
            .into_iter()
            .take(opts.top)
            .map(|r| Match::of(view, r, None))
            .collect())
    }

    /// Within a group, by path; each file's score is its best similarity to another member.
    fn groups(&self, threshold: f32, opts: &SearchOptions) -> Result<Vec<Vec<Match>>, Error> {
        let view = self.index.view();
        let selected = self.candidate_rows(opts)?;
        let rows: Vec<usize> = selected
            .clone()
            .unwrap_or_else(|| (0..view.len()).collect());
        // Pairs of file ids, over the view's vectors (mapped: no copy, when it is one segment
        // with nothing deleted) or the selected ones.
        let pairs = match &selected {
            None => clipsearch::index::pairs_above(&view.vectors(), threshold)?,
            Some(rows) => clipsearch::index::pairs_above(&view.select_vectors(rows), threshold)?,
        };
        let position: HashMap<usize, usize> =
            rows.iter().enumerate().map(|(i, &r)| (r, i)).collect();
        let row = |id: u64| {
            let r = view.row_of_id(id).expect("pairs come from the view");
            position[&r]
        };
        let pairs = pairs.into_iter().map(|(a, b, s)| (row(a), row(b), s));
        Ok(dupes::join(rows.len(), pairs, |i, best| {
            Match::of(view, rows[i], Some(best))
        }))
    }

    fn vector_of(&self, id: u64) -> Result<Option<Vec<f32>>, Error> {
        let view = self.index.view();
        Ok(view.row_of_id(id).map(|row| view.vector(row).to_vec()))
    }

    fn describe(&mut self, id: u64) -> Result<Option<Value>, Error> {
        let view = self.index.view();
        Ok(view.row_of_id(id).map(|row| info::describe(view, row)))
    }

    fn describe_path(&mut self, path: &Path) -> Result<Option<Value>, Error> {
        let view = self.index.view();
        Ok(view.row_of_path(path).map(|row| info::describe(view, row)))
    }

    fn file(&mut self, id: u64) -> Result<FileAt, Error> {
        let view = self.index.view();
        Ok(match view.row_of_id(id) {
            Some(row) => FileAt::Here(view.path(row).to_path_buf(), Box::new(view.record(row))),
            None => FileAt::Unknown,
        })
    }

    fn serves(&self, _: &Match) -> bool {
        true
    }

    fn stats(&self) -> Result<Value, Error> {
        let view = self.index.view();
        let m = view.manifest();
        Ok(json!({
            "files": view.len(),
            "failed": m.failed,
            "model": m.model.name,
            "dim": m.dim,
            "index": self.dir.to_string_lossy(),
            "generation": m.generation,
            "published_unix_ms": m.published_unix_ms,
        }))
    }
}

/// The view in force at `dir` (for [`LocalSearcher::open`], and readers that need no model:
/// `stats`). An index with a database but no view (written by a version that did not publish
/// views, or whose first run has not published yet) is published here when its database is
/// free, which takes one read of the catalog and no model; while a writer holds it, the reader
/// is told to come back in a moment.
pub fn open_view(dir: &Path) -> Result<SearchIndex, Error> {
    match SearchIndex::open(dir) {
        Err(clipsearch::Error::NoView(_)) => {}
        other => return Ok(other?),
    }
    if !dir.join("db").exists() {
        return Err(Error::NoIndex(dir.to_path_buf()));
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
