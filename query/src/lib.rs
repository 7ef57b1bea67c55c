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
//!     println!("{:.3} {}", m.score, m.path.display());
//! }
//! # Ok::<(), clipsearch_query::Error>(())
//! ```

mod cache;
pub mod classify;
pub mod dupes;
pub mod expr;
#[cfg(feature = "serve")]
pub mod serve;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clipsearch::index::SearchIndex;
use clipsearch::model::{resolve, ClipModel, ModelFiles, ModelIdentity, Towers};
use clipsearch::store::view::View;
use clipsearch::store::Store;

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
}

/// One result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Match {
    pub path: PathBuf,
    pub score: f32,
    /// The camera RAW of the same shot beside the file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<PathBuf>,
    #[serde(skip)]
    pub id: u64,
}

/// Filters and limits of a search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub top: usize,
    /// Minimum cosine similarity.
    pub threshold: Option<f32>,
    /// Only files inside this folder.
    pub under: Option<PathBuf>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            top: 10,
            threshold: None,
            under: None,
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
    model_files: Option<ModelFiles>,
    model_spec: String,
    identity: ModelIdentity,
    text: Option<ClipModel>,
    image: Option<ClipModel>,
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
        let model_spec = model
            .map(str::to_string)
            .unwrap_or_else(|| identity.name.clone());
        Ok(Searcher {
            dir: dir.to_path_buf(),
            cache: QueryCache::new(dir, &identity),
            index,
            model_files: None,
            model_spec,
            identity,
            text: None,
            image: None,
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
        if identity != self.identity {
            self.cache = QueryCache::new(&self.dir, &identity);
            if identity.fingerprint != self.identity.fingerprint {
                self.model_spec = identity.name.clone();
                self.model_files = None;
                self.text = None;
            }
            self.image = None;
            self.identity = identity;
        }
        Ok(true)
    }

    fn files(&mut self) -> Result<ModelFiles, Error> {
        if let Some(f) = &self.model_files {
            return Ok(f.clone());
        }
        let files = resolve(&self.model_spec)?;
        let id = ModelIdentity::of(&files)?;
        if !id.same_model(&self.identity) {
            return Err(clipsearch::Error::Index(format!(
                "--model {} is not the model this index was built with ({}): query with that \
                 model, or re-index with `clipsearch index --rebuild --model {}`",
                self.model_spec, self.identity.name, self.model_spec
            ))
            .into());
        }
        self.model_files = Some(files.clone());
        Ok(files)
    }

    /// Embeds a text, from the query cache when it was asked before.
    pub fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        if let Some(v) = self.cache.get(text) {
            return Ok(v);
        }
        if self.text.is_none() {
            let files = self.files()?;
            self.text = Some(ClipModel::load(&files, Towers::Text)?);
        }
        let encoder = self.text.as_ref().expect("loaded").text()?;
        // Warns if the query is longer than the model's context (it is then truncated).
        let v = encoder.embed(&[text])?.remove(0);
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
        Ok(self.image_model()?.image()?.embed_file(path)?)
    }

    /// Embeds an image given as file contents (an upload); `name` is used in messages.
    pub fn embed_image_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let encoder = self.image_model()?.image()?;
        let pixels = encoder.preprocessor().load_bytes(name, bytes)?;
        Ok(encoder.embed_pixels(&pixels)?.remove(0))
    }

    /// The image tower, loaded on first use, decoding the way the index's images were.
    fn image_model(&mut self) -> Result<&ClipModel, Error> {
        if self.image.is_none() {
            let files = self.files()?;
            let mut model = ClipModel::load_with(&files, Towers::Image, self.identity.precision())?;
            if self.identity.scaled_decode() {
                let config = model.image()?.preprocessor().config.clone();
                let fast = clipsearch::preprocess::Preprocessor::fast(config).decode;
                model.image_mut()?.set_decode(fast);
            }
            self.image = Some(model);
        }
        Ok(self.image.as_ref().expect("loaded"))
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

    /// The files most similar to `query`.
    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let view = self.index.view();
        let allowed: Option<HashSet<u64>> = opts.under.as_ref().map(|dir| {
            let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            view.rows_under(&dir).map(|row| view.id(row)).collect()
        });
        let keep = |id: u64| allowed.as_ref().map(|a| a.contains(&id)).unwrap_or(true);
        let hits = self.index.search(query, opts.top, &keep);
        Ok(hits
            .into_iter()
            .filter(|h| opts.threshold.is_none_or(|t| h.score >= t))
            .filter_map(|h| {
                let row = view.row_of_id(h.id)?;
                Some(Match {
                    path: view.path(row).to_path_buf(),
                    score: h.score,
                    raw: view.raw(row).map(Path::to_path_buf),
                    id: h.id,
                })
            })
            .collect())
    }
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
            clipsearch::index::publish(
                &store,
                clipsearch::index::GraphPolicy::Update {
                    threshold: clipsearch::index::HNSW_THRESHOLD,
                },
            )?;
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
