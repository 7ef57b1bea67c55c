//! The storage trait ([`crate::store::collection::Collection`]) over this machine's store: files
//! catalogued under `/SOURCE/PATH` in the sled catalog, written with the same commits the
//! indexer makes, published as the same views, searched by the same [`SearchIndex`] that
//! `clipsearch search` uses. It is what the storage suite runs beside Milvus.

use std::path::Path;

use super::publish::publish;
use super::search::SearchIndex;
use crate::error::{Error, Result};
use crate::model::ModelIdentity;
use crate::store::collection::{check_claim, key_of, Collection, Found, Item, Scope};

/// Today's local store behind the trait: files are catalogued under `/SOURCE/PATH`, so the
/// views, the graph and the exact scan serve collections fed by several sources unchanged.
pub struct LocalCollection {
    dir: std::path::PathBuf,
    store: crate::store::Store,
    /// The view searched last, kept while no newer one is published.
    index: std::sync::Mutex<Option<SearchIndex>>,
    /// Written since the last publication (a replaced vector changes no count).
    dirty: std::sync::atomic::AtomicBool,
}

impl LocalCollection {
    /// Opens (creating) the local collection in `dir`. It is that directory's one writer.
    pub fn open(dir: &Path) -> Result<Self> {
        let store = crate::store::Store::open(dir, None)?;
        // Whether readers see all of it (once here: counting sled's files is a full scan).
        let stale = match crate::store::view::read_manifest(dir)? {
            None => store.file_count() > 0,
            Some(v) => v.count != store.file_count() || store.max_id()? != v.max_id,
        };
        Ok(LocalCollection {
            dir: dir.to_path_buf(),
            store,
            index: std::sync::Mutex::new(None),
            dirty: std::sync::atomic::AtomicBool::new(stale),
        })
    }

    /// Publishes a view when readers would not see everything written (no fsync: that is
    /// `flush`'s).
    fn publish_if_stale(&self) -> Result<()> {
        if self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            publish(&self.store)?;
        }
        Ok(())
    }

    fn catalog_path(source: &str, path: &str) -> std::path::PathBuf {
        format!("/{source}/{}", path.trim_start_matches('/')).into()
    }

    fn split(catalog: &Path) -> (String, String) {
        let s = catalog.to_string_lossy();
        let rest = s.trim_start_matches('/');
        match rest.split_once('/') {
            Some((source, path)) => (source.to_string(), format!("/{path}")),
            None => (rest.to_string(), String::new()),
        }
    }
}

impl Collection for LocalCollection {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn model(&self) -> Result<Option<ModelIdentity>> {
        self.store.model()
    }

    fn claim(&self, model: &ModelIdentity) -> Result<()> {
        match self.store.model()? {
            Some(m) => check_claim(&self.location(), &m, model),
            None => self.store.set_model(model),
        }
    }

    fn upsert(&self, items: &[Item]) -> Result<()> {
        let mut entries = Vec::with_capacity(items.len());
        for it in items {
            let path = Self::catalog_path(&it.source, &it.path);
            let bytes = crate::store::f32_to_bytes(&it.vector);
            // A new id even for a file already held: a view's rows are immutable per id (the
            // next publication copies an id's vector from the previous view).
            let id = self.store.new_id()?;
            entries.push(crate::store::NewEntry {
                record: crate::store::FileRecord {
                    id,
                    size: 0,
                    mtime_ns: 0,
                    hash: crate::store::content_hash(&bytes),
                    width: 0,
                    height: 0,
                    raw: None,
                    meta: it.meta.clone(),
                },
                path,
                embedding: Some(it.vector.clone()),
            });
        }
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        self.store.commit(&entries)
    }

    fn remove(&self, files: &[(String, String)]) -> Result<()> {
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        for (source, path) in files {
            self.store.remove_file(&Self::catalog_path(source, path))?;
        }
        self.store.collect_garbage()?;
        self.store.flush()
    }

    fn search(&self, query: &[f32], k: usize, scope: &Scope) -> Result<Vec<Found>> {
        self.with_index(|index| Ok(Self::search_in(index, query, k, scope)))
            .map(Option::unwrap_or_default)
    }

    fn count(&self) -> Result<usize> {
        Ok(self.store.file_count())
    }

    fn files(&self) -> Result<Vec<(String, String)>> {
        self.store
            .files()
            .map(|f| f.map(|(p, _)| Self::split(&p)))
            .collect()
    }

    fn select(&self, scope: &Scope) -> Result<Vec<Found>> {
        self.read_rows(scope, |view, row, (source, path)| Found {
            source,
            path,
            score: 0.0,
            meta: view.meta(row),
        })
    }

    fn items(&self, scope: &Scope) -> Result<Vec<Item>> {
        self.read_rows(scope, Self::item)
    }

    fn get(&self, keys: &[i64]) -> Result<Vec<Item>> {
        let wanted: std::collections::HashSet<i64> = keys.iter().copied().collect();
        // A scan: the local store is addressed by path; keys serve the shared collections.
        self.with_index(|index| {
            let view = index.view();
            Ok((0..view.len())
                .filter_map(|row| {
                    let file = Self::split(view.path(row));
                    wanted
                        .contains(&key_of(&file.0, &file.1))
                        .then(|| Self::item(view, row, file))
                })
                .collect())
        })
        .map(Option::unwrap_or_default)
    }

    fn flush(&self) -> Result<()> {
        self.store.flush()?;
        // And what readers see: a view is what searches read.
        self.publish_if_stale()
    }
}

impl LocalCollection {
    /// Runs `f` on the current view's search index (publishing first if writes are not yet
    /// visible); None while nothing is published.
    fn with_index<T>(&self, f: impl FnOnce(&SearchIndex) -> Result<T>) -> Result<Option<T>> {
        self.publish_if_stale()?;
        let generation = crate::store::view::read_manifest(&self.dir)?.map(|m| m.generation);
        let mut cached = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().map(|i| i.view().generation()) != generation {
            *cached = match SearchIndex::open(&self.dir) {
                Err(Error::NoView(_)) => return Ok(None),
                other => Some(other?),
            };
        }
        match cached.as_ref() {
            Some(index) => f(index).map(Some),
            None => Ok(None),
        }
    }

    /// `read(view, row, (source, path))` of every published file in `scope`.
    fn read_rows<T>(
        &self,
        scope: &Scope,
        read: impl Fn(&crate::store::view::View, usize, (String, String)) -> T,
    ) -> Result<Vec<T>> {
        self.with_index(|index| {
            let view = index.view();
            Ok(Self::rows_in(view, scope)
                .into_iter()
                .map(|row| read(view, row, Self::split(view.path(row))))
                .collect())
        })
        .map(Option::unwrap_or_default)
    }

    fn item(view: &crate::store::view::View, row: usize, (source, path): (String, String)) -> Item {
        Item {
            source,
            path,
            vector: view.vector(row).to_vec(),
            meta: view.meta(row),
        }
    }

    /// Whether a view row is in the scope's source and folder (its filter aside), read on the
    /// catalog path `/SOURCE/PATH` without allocating: the exact scan asks about every file.
    fn in_place<'a>(
        view: &'a crate::store::view::View,
        scope: &'a Scope,
    ) -> impl Fn(usize) -> bool + 'a {
        use std::os::unix::ffi::OsStrExt;
        let source = scope.source.as_ref().map(|s| format!("/{s}/"));
        let prefix = scope.prefix.as_deref().map(|p| p.trim_start_matches('/'));
        move |row| {
            let p = view.path(row).as_os_str().as_bytes();
            let Some(cut) = p.iter().skip(1).position(|&b| b == b'/').map(|i| i + 2) else {
                return false;
            };
            source.as_ref().is_none_or(|s| p.starts_with(s.as_bytes()))
                && prefix.is_none_or(|pre| p[cut..].starts_with(pre.as_bytes()))
        }
    }

    /// The rows in `scope`: the filter through the view's compiled metadata, then source and
    /// folder.
    fn rows_in(view: &crate::store::view::View, scope: &Scope) -> Vec<usize> {
        let in_place = Self::in_place(view, scope);
        let rows: Vec<usize> = if scope.filter.is_empty() {
            (0..view.len()).collect()
        } else {
            view.select(&scope.filter)
        };
        rows.into_iter().filter(|&r| in_place(r)).collect()
    }

    fn search_in(index: &SearchIndex, query: &[f32], k: usize, scope: &Scope) -> Vec<Found> {
        let view = index.view();
        let hits = if *scope == Scope::default() {
            index.search(query, k)
        } else {
            index.search_rows(query, k, &Self::rows_in(view, scope))
        };
        hits.into_iter()
            .filter_map(|h| {
                let row = view.row_of_id(h.id)?;
                let (source, path) = Self::split(view.path(row));
                Some(Found {
                    source,
                    path,
                    score: h.score,
                    meta: view.meta(row),
                })
            })
            .collect()
    }
}
