//! # clipsearch-query: answering queries against a clipsearch index
//!
//! A [`Searcher`] holds an open index and its search structure, and embeds queries with the
//! index's own model, loading only the tower a query needs: a text query never maps the vision
//! weights, and a repeated text query is answered from the index's query cache without loading
//! any model at all. Queries are [`expr`] expressions: texts and images, each weighted and
//! signed, combined into one normalised vector.
//!
//! ```no_run
//! use clipsearch::store::Store;
//! use clipsearch_query::{expr, SearchOptions, Searcher};
//! let store = Store::open_existing("index".as_ref())?;
//! let mut searcher = Searcher::new(&store, None)?;
//! let terms = expr::parse(&["dog on a beach".into(), "-".into(), "people".into()])?;
//! let query = searcher.embed_terms(&terms)?;
//! for m in searcher.search(&query, &SearchOptions::default())? {
//!     println!("{:.3} {}", m.score, m.path.display());
//! }
//! # Ok::<(), clipsearch_query::Error>(())
//! ```

pub mod classify;
pub mod dupes;
pub mod expr;
#[cfg(feature = "serve")]
pub mod serve;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clipsearch::index::SearchIndex;
use clipsearch::model::{resolve, ClipModel, ModelFiles, ModelIdentity, Towers};
use clipsearch::store::Store;
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
}

/// One result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Match {
    pub path: PathBuf,
    pub score: f32,
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

/// An open index ready to answer queries.
pub struct Searcher<'s> {
    store: &'s Store,
    index: SearchIndex,
    model_files: Option<ModelFiles>,
    model_spec: String,
    identity: ModelIdentity,
    text: Option<ClipModel>,
    image: Option<ClipModel>,
}

impl<'s> Searcher<'s> {
    /// `model`: the checkpoint to embed queries with; None uses the one the index was built
    /// with. A model other than the index's is refused: its space is not the index's.
    pub fn new(store: &'s Store, model: Option<&str>) -> Result<Self, Error> {
        let identity = store
            .model()?
            .filter(|_| store.file_count() > 0)
            .ok_or_else(|| Error::EmptyIndex(store.path().to_path_buf()))?;
        let index = SearchIndex::load(store)?;
        let model_spec = model
            .map(str::to_string)
            .unwrap_or_else(|| identity.name.clone());
        Ok(Searcher {
            store,
            index,
            model_files: None,
            model_spec,
            identity,
            text: None,
            image: None,
        })
    }

    pub fn store(&self) -> &Store {
        self.store
    }

    /// Picks up what was indexed since this searcher was made (a new snapshot, new files).
    pub fn reload(&mut self) -> Result<(), Error> {
        self.index = SearchIndex::load(self.store)?;
        Ok(())
    }

    fn files(&mut self) -> Result<ModelFiles, Error> {
        if let Some(f) = &self.model_files {
            return Ok(f.clone());
        }
        let files = resolve(&self.model_spec)?;
        let id = ModelIdentity::of(&files)?;
        if id.fingerprint != self.identity.fingerprint {
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
        if let Some(v) = self.store.cached_query(text)? {
            return Ok(v);
        }
        if self.text.is_none() {
            let files = self.files()?;
            self.text = Some(ClipModel::load(&files, Towers::Text)?);
        }
        let encoder = self.text.as_ref().expect("loaded").text()?;
        // Warns if the query is longer than the model's context (it is then truncated).
        let v = encoder.embed(&[text])?.remove(0);
        self.store.cache_query(text, &v)?;
        Ok(v)
    }

    /// Embeds an image: an indexed file's stored embedding (no model run), else the file.
    pub fn embed_image(&mut self, path: &Path) -> Result<Vec<f32>, Error> {
        if let Ok(canonical) = path.canonicalize() {
            if let Some(rec) = self.store.file(&canonical)? {
                let meta = std::fs::metadata(&canonical).ok();
                let fresh = meta
                    .map(|m| m.len() == rec.size && clipsearch::store::mtime_ns(&m) == rec.mtime_ns)
                    .unwrap_or(false);
                if fresh {
                    if let Some(v) = self.store.embedding(&rec.hash)? {
                        return Ok(v);
                    }
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
        let allowed: Option<HashSet<u64>> = match &opts.under {
            None => None,
            Some(dir) => {
                let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
                let mut ids = HashSet::new();
                for item in self.store.files_under(&dir) {
                    ids.insert(item?.1.id);
                }
                Some(ids)
            }
        };
        let keep = |id: u64| allowed.as_ref().map(|a| a.contains(&id)).unwrap_or(true);
        let hits = self.index.search(self.store, query, opts.top, &keep)?;
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            if opts.threshold.is_some_and(|t| h.score < t) {
                continue;
            }
            if let Some(path) = self.store.path_of(h.id)? {
                out.push(Match {
                    path,
                    score: h.score,
                    id: h.id,
                });
            }
        }
        Ok(out)
    }
}
