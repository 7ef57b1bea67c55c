//! Searching a shared collection (Milvus, through the storage trait) instead of a local index:
//! the same query expressions, embedded with the collection's model, the results naming the
//! source (machine or root label) each file lives on.

use clipsearch::store::collection::{Collection, Scope};

use crate::embedder::Embedder;
use crate::expr::{Item, Term};
use crate::{expr, Error, Match, SearchOptions};

pub struct RemoteSearcher {
    collection: Box<dyn Collection>,
    embedder: Embedder,
}

impl RemoteSearcher {
    /// Opens a searcher on `collection`; `model` as for a local index (None: the model the
    /// collection records).
    pub fn open(collection: Box<dyn Collection>, model: Option<&str>) -> Result<Self, Error> {
        let identity = collection.model()?.ok_or_else(|| {
            clipsearch::Error::Index(format!(
                "the collection {} is empty: index into it first (`clipsearch index DIR... \
                 --index {}`)",
                collection.location(),
                collection.location()
            ))
        })?;
        Ok(RemoteSearcher {
            embedder: Embedder::new(identity, model),
            collection,
        })
    }

    /// The normalised query vector of an expression (images are embedded from their files).
    pub fn embed_terms(&mut self, terms: &[Term]) -> Result<Vec<f32>, Error> {
        let mut parts = Vec::with_capacity(terms.len());
        for t in terms {
            let v = match &t.item {
                Item::Text(s) => self.embedder.embed_text(s)?,
                Item::Image(p) => self.embedder.embed_file(p)?,
            };
            parts.push((t.weight, v));
        }
        Ok(expr::combine(&parts))
    }

    /// An image file's embedding.
    pub fn embed_image(&mut self, path: &std::path::Path) -> Result<Vec<f32>, Error> {
        self.embedder.embed_file(path)
    }

    /// The files most similar to `query`. `opts.under` is a path prefix on every source;
    /// metadata filters are not available on a shared collection yet.
    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        if !opts.filter.is_empty() || opts.sort != clipsearch::metadata::SortOrder::Score {
            return Err(clipsearch::Error::Index(format!(
                "filters and date order are not available on a shared collection ({}) yet: \
                 search without them, or search a local index",
                self.collection.location()
            ))
            .into());
        }
        let scope = Scope {
            source: None,
            prefix: opts.under.as_ref().map(|d| {
                let mut p = d.to_string_lossy().into_owned();
                if !p.ends_with('/') {
                    p.push('/');
                }
                p
            }),
        };
        let found = self.collection.search(query, opts.top, &scope)?;
        Ok(found
            .into_iter()
            .filter(|f| opts.threshold.is_none_or(|t| f.score >= t))
            .map(|f| Match {
                path: f.path.into(),
                score: Some(f.score),
                raw: None,
                taken: None,
                place: None,
                camera: None,
                source: Some(f.source),
                id: 0,
            })
            .collect())
    }
}
