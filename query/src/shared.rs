//! Queries against a shared collection (Milvus, through the storage trait) that many machines
//! feed: the same query expressions, embedded with the collection's model, the results naming
//! the source (machine or root label) each file lives on.
//!
//! A shared collection holds every machine's files, but a machine can only read its own: it
//! shows the files of its own source (checked against its local catalog exactly as a local
//! index's files are), and names the others' as living elsewhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clipsearch::metadata::{PhotoMeta, SortOrder};
use clipsearch::store::collection::{key_of, Collection, Found, Item, Scope};
use clipsearch::store::view::{read_manifest, View};
use serde_json::{json, Value};

use crate::embedder::Embedder;
use crate::error::Error;
use crate::results::{by_date, Match, SearchOptions};
use crate::searcher::{FileAt, Searcher};
use crate::{dupes, info};

/// A shared collection seen from one of the machines that feed it.
pub struct SharedSearcher {
    collection: Arc<dyn Collection>,
    /// None while the collection is empty and unclaimed: nothing to embed queries for.
    embedder: Option<Embedder>,
    /// This machine's name in the collection (`index --source`).
    source: String,
    /// This machine's catalog (its local index of what it pushed): where its files are
    /// checked before they are shown.
    catalog: PathBuf,
    files: Option<CatalogFiles>,
}

/// The catalog's published view, with its files by their keys in the collection.
struct CatalogFiles {
    view: View,
    rows: HashMap<u64, usize>,
}

impl SharedSearcher {
    /// Opens `collection` for queries; `model` as for a local index (None: the model the
    /// collection records). An empty collection is refused.
    pub fn open(
        collection: Arc<dyn Collection>,
        model: Option<&str>,
        source: String,
        catalog: PathBuf,
    ) -> Result<Self, Error> {
        let searcher = Self::open_any(collection, model, source, catalog)?;
        if searcher.embedder.is_none() {
            return Err(Error::EmptyCollection(searcher.collection.location()));
        }
        Ok(searcher)
    }

    /// [`SharedSearcher::open`], an empty collection included (for reading records: `info`).
    pub fn open_any(
        collection: Arc<dyn Collection>,
        model: Option<&str>,
        source: String,
        catalog: PathBuf,
    ) -> Result<Self, Error> {
        let embedder = collection.model()?.map(|m| Embedder::new(m, model));
        Ok(SharedSearcher {
            collection,
            embedder,
            source,
            catalog,
            files: None,
        })
    }

    fn embedder(&mut self) -> Result<&mut Embedder, Error> {
        let location = self.collection.location();
        self.embedder
            .as_mut()
            .ok_or(Error::EmptyCollection(location))
    }

    /// A held file (vector and metadata), by its [`Match::id`] (its key in the collection).
    fn item_of(&self, id: u64) -> Result<Option<Item>, Error> {
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        Ok(self.collection.get(&[key])?.into_iter().next())
    }

    fn no_match(&self, opts: &SearchOptions) -> Error {
        let held = self
            .collection
            .count()
            .map(|n| format!(" (of {n} files in the collection)"))
            .unwrap_or_default();
        Error::NoMatch(format!("{}{held}", opts.filter.describe()))
    }

    /// The catalog's newest view (None before this machine indexed anything).
    fn catalog_files(&mut self) -> Result<Option<&CatalogFiles>, Error> {
        let newest = read_manifest(&self.catalog)?;
        let current = self.files.as_ref().map(|f| f.view.generation());
        match newest {
            None => self.files = None,
            Some(m) if Some(m.generation) != current => {
                let view = View::open(&self.catalog, m)?;
                let rows = (0..view.len())
                    .map(|r| {
                        let path = view.path(r).to_string_lossy();
                        (key_of(&self.source, &path) as u64, r)
                    })
                    .collect();
                self.files = Some(CatalogFiles { view, rows });
            }
            Some(_) => {}
        }
        Ok(self.files.as_ref())
    }
}

impl Searcher for SharedSearcher {
    fn location(&self) -> String {
        self.collection.location()
    }

    fn files_location(&self) -> String {
        format!(
            "{} (as a file of {})",
            self.collection.location(),
            self.source
        )
    }

    // A collection is asked afresh by every request, and the catalog on demand: nothing to
    // refresh.

    fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        self.embedder()?.embed_text(text)
    }

    /// Embedded from the file (this machine's stored vectors are the collection's).
    fn embed_image(&mut self, path: &Path) -> Result<Vec<f32>, Error> {
        self.embedder()?.embed_file(path)
    }

    fn embed_image_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        self.embedder()?.embed_bytes(name, bytes)
    }

    /// `opts.under` is a path prefix on every source, as a local index answers.
    fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let found = self.collection.search(query, opts.top, &scope(opts))?;
        if found.is_empty() && !opts.filter.is_empty() {
            return Err(self.no_match(opts));
        }
        let mut found: Vec<Found> = found
            .into_iter()
            .filter(|f| opts.threshold.is_none_or(|t| f.score >= t))
            .collect();
        if opts.sort != SortOrder::Score {
            by_date(&mut found, opts.sort, taken_ms);
        }
        Ok(found
            .into_iter()
            .map(|f| matched(f.source, f.path, Some(f.score), f.meta))
            .collect())
    }

    /// Reads every kept file's record (not its vector) from the collection.
    fn list(&self, opts: &SearchOptions) -> Result<Vec<Match>, Error> {
        let mut found = self.collection.select(&scope(opts))?;
        if found.is_empty() && !opts.filter.is_empty() {
            return Err(self.no_match(opts));
        }
        // Ties (and undated files) in path order, for a stable listing.
        found.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
        by_date(&mut found, opts.sort, taken_ms);
        Ok(found
            .into_iter()
            .take(opts.top)
            .map(|f| matched(f.source, f.path, None, f.meta))
            .collect())
    }

    /// Every machine's files (or those under `opts.under`). The vectors are fetched once
    /// (2 KiB a file at 512 dimensions) and compared here.
    fn groups(&self, threshold: f32, opts: &SearchOptions) -> Result<Vec<Vec<Match>>, Error> {
        let items = self.collection.items(&scope(opts))?;
        let dim = match self.collection.model()? {
            Some(m) => m.dim,
            None => return Ok(Vec::new()),
        };
        let mut set = clipsearch::store::vectors::VectorSet::new(dim);
        for (i, it) in items.iter().enumerate() {
            set.push(i as u64, &it.vector);
        }
        let pairs = clipsearch::index::pairs_above(&set, threshold)?
            .into_iter()
            .map(|(a, b, s)| (a as usize, b as usize, s));
        Ok(dupes::join(items.len(), pairs, |i, best| {
            let it = &items[i];
            matched(
                it.source.clone(),
                it.path.clone(),
                Some(best),
                it.meta.clone(),
            )
        }))
    }

    fn vector_of(&self, id: u64) -> Result<Option<Vec<f32>>, Error> {
        Ok(self.item_of(id)?.map(|it| it.vector))
    }

    /// This machine's files with their catalog record; others' with what the collection holds.
    fn describe(&mut self, id: u64) -> Result<Option<Value>, Error> {
        let source = self.source.clone();
        if let Some(f) = self.catalog_files()? {
            if let Some(&row) = f.rows.get(&id) {
                let mut v = info::describe(&f.view, row);
                v["source"] = json!(source);
                return Ok(Some(v));
            }
        }
        Ok(self
            .item_of(id)?
            .map(|it| info::describe_shared(&it.source, &it.path, it.meta.as_ref())))
    }

    /// The path as a file of this machine's source.
    fn describe_path(&mut self, path: &Path) -> Result<Option<Value>, Error> {
        let key = key_of(&self.source, &path.to_string_lossy());
        Ok(self
            .collection
            .get(&[key])?
            .into_iter()
            .next()
            .map(|it| info::describe_shared(&it.source, &it.path, it.meta.as_ref())))
    }

    fn file(&mut self, id: u64) -> Result<FileAt, Error> {
        if let Some(f) = self.catalog_files()? {
            if let Some(&row) = f.rows.get(&id) {
                return Ok(FileAt::Here(
                    f.view.path(row).to_path_buf(),
                    Box::new(f.view.record(row)),
                ));
            }
        }
        Ok(match self.item_of(id)? {
            Some(it) => FileAt::Elsewhere {
                source: it.source,
                path: it.path,
            },
            None => FileAt::Unknown,
        })
    }

    fn serves(&self, m: &Match) -> bool {
        m.source.as_deref() == Some(self.source.as_str())
    }

    fn stats(&self) -> Result<Value, Error> {
        let model = self.collection.model()?;
        Ok(json!({
            "files": self.collection.count()?,
            "model": model.as_ref().map(|m| &m.name),
            "dim": model.as_ref().map(|m| m.dim),
            "index": self.collection.location(),
            "source": self.source,
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
