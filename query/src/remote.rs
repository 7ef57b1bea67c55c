//! Searching a shared collection (Milvus, through the storage trait) instead of a local index:
//! the same query expressions, embedded with the collection's model, the results naming the
//! source (machine or root label) each file lives on.

use clipsearch::store::collection::{key_of, Collection, Found, Item, Scope};

use crate::embedder::Embedder;
use crate::expr::{self, Term};
use crate::{Error, Match, SearchOptions};
use clipsearch::metadata::{PhotoMeta, SortOrder};

pub struct RemoteSearcher {
    collection: std::sync::Arc<dyn Collection>,
    embedder: Embedder,
}

impl RemoteSearcher {
    /// Opens a searcher on `collection`; `model` as for a local index (None: the model the
    /// collection records).
    pub fn open(
        collection: std::sync::Arc<dyn Collection>,
        model: Option<&str>,
    ) -> Result<Self, Error> {
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
                expr::Item::Text(s) => self.embedder.embed_text(s)?,
                expr::Item::Image(p) => self.embedder.embed_file(p)?,
            };
            parts.push((t.weight, v));
        }
        Ok(expr::combine(&parts))
    }

    /// An image file's embedding.
    pub fn embed_image(&mut self, path: &std::path::Path) -> Result<Vec<f32>, Error> {
        self.embedder.embed_file(path)
    }

    /// An image given as file contents (an upload); `name` is used in messages.
    pub fn embed_image_bytes(
        &mut self,
        name: &std::path::Path,
        bytes: &[u8],
    ) -> Result<Vec<f32>, Error> {
        self.embedder.embed_bytes(name, bytes)
    }

    /// The collection searched.
    pub fn collection(&self) -> &dyn Collection {
        self.collection.as_ref()
    }

    /// The model the collection's vectors come from.
    pub fn identity(&self) -> &clipsearch::model::ModelIdentity {
        self.embedder.identity()
    }

    /// A text's embedding.
    pub fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        self.embedder.embed_text(text)
    }

    /// A held file (vector and metadata), by its [`Match::id`] (its key in the collection).
    pub fn item_of(&self, id: u64) -> Result<Option<Item>, Error> {
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        Ok(self.collection.get(&[key])?.into_iter().next())
    }

    /// The files most similar to `query` among those the options keep (`opts.under` is a
    /// path prefix on every source), as a local index answers.
    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let found = self.collection.search(query, opts.top, &scope(opts))?;
        if found.is_empty() && !opts.filter.is_empty() {
            return Err(self.no_match(opts));
        }
        let mut found: Vec<Found> = found
            .into_iter()
            .filter(|f| opts.threshold.is_none_or(|t| f.score >= t))
            .collect();
        if opts.sort != SortOrder::Score {
            crate::by_date(&mut found, opts.sort, taken_ms);
        }
        Ok(found
            .into_iter()
            .map(|f| matched(f.source, f.path, Some(f.score), f.meta))
            .collect())
    }

    /// The files the options keep, by capture time (oldest first unless `-date`): a query of
    /// filters alone. Reads every kept file's record (not its vector) from the collection.
    pub fn list(&self, opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let mut found = self.collection.select(&scope(opts))?;
        if found.is_empty() && !opts.filter.is_empty() {
            return Err(self.no_match(opts));
        }
        // Ties (and undated files) in path order, for a stable listing.
        found.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
        crate::by_date(&mut found, opts.sort, taken_ms);
        Ok(found
            .into_iter()
            .take(opts.top)
            .map(|f| matched(f.source, f.path, None, f.meta))
            .collect())
    }

    fn no_match(&self, opts: &SearchOptions) -> Error {
        let held = self
            .collection
            .count()
            .map(|n| format!(" (of {n} files in the collection)"))
            .unwrap_or_default();
        Error::NoMatch(format!("{}{held}", opts.filter.describe()))
    }

    /// Near-duplicate groups among the collection's files (every machine's, or those under
    /// `opts.under`), as [`crate::dupes::groups`] finds them in a local index. The vectors
    /// are fetched once (2 KiB a file at 512 dimensions) and compared here.
    pub fn groups(&self, threshold: f32, opts: &SearchOptions) -> Result<Vec<Vec<Match>>, Error> {
        let items = self.collection.items(&scope(opts))?;
        let mut set = clipsearch::store::vectors::VectorSet::new(self.embedder.identity().dim);
        for (i, it) in items.iter().enumerate() {
            set.push(i as u64, &it.vector);
        }
        let pairs = clipsearch::index::pairs_above(&set, threshold)?
            .into_iter()
            .map(|(a, b, s)| (a as usize, b as usize, s));
        Ok(crate::dupes::join(items.len(), pairs, |i, best| {
            let it = &items[i];
            matched(
                it.source.clone(),
                it.path.clone(),
                Some(best),
                it.meta.clone(),
            )
        }))
    }
}

/// A result of a shared collection; its id is the file's key there.
fn matched(source: String, path: String, score: Option<f32>, meta: Option<PhotoMeta>) -> Match {
    let mut m = Match::with_meta(key_of(&source, &path) as u64, path, score, meta);
    m.source = Some(source);
    m
}

fn taken_ms(f: &Found) -> Option<i64> {
    let t = f.meta.as_ref()?.taken.as_ref()?;
    Some(clipsearch::metadata::filter::local_ms(&t.local))
}

/// The folder of `opts.under` as a path prefix on every source.
fn scope(opts: &SearchOptions) -> Scope {
    Scope {
        source: None,
        filter: opts.filter.clone(),
        prefix: opts.under.as_ref().map(|d| {
            let mut p = d.to_string_lossy().into_owned();
            if !p.ends_with('/') {
                p.push('/');
            }
            p
        }),
    }
}
