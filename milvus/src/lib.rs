//! # clipsearch-milvus: a collection of embeddings in Milvus
//!
//! [Milvus](https://milvus.io) is a distributed vector database (coordinators, query and data
//! nodes, object storage). This crate implements clipsearch's storage trait
//! ([`clipsearch::store::collection::Collection`]) on one Milvus collection, through the
//! official Rust SDK (`milvus-sdk-rust`, gRPC), so that many indexing machines can feed one
//! collection and any machine can search it.
//!
//! The collection's schema: `pk` (Int64 primary key: [`key_of`] the source and path, the same
//! on every machine, so writes are idempotent upserts), `source` (VarChar: the machine or root
//! label), `path` (VarChar), `vector` (FloatVector, unit length, inner product). Its property
//! `clipsearch.model` holds the model identity as JSON, so that another model is refused as a
//! local index refuses it. The vector index is HNSW (M 16, efConstruction 200; `?index=flat` in the
//! URL for exact search).
//!
//! Written for the documented Milvus API and tested against milvus-lite 3.2.2 (a pure-Python
//! server speaking the same gRPC API); where milvus-lite differs, this code takes the path that
//! works on both: indexes are created asynchronously and polled, and deletes go through a
//! filter expression (`pk in [...]`).
//!
//! ```no_run
//! use clipsearch::store::collection::{Collection, Scope};
//! let photos = clipsearch_milvus::MilvusCollection::connect("milvus://db.example:19530/photos")?;
//! let hits = photos.search(&[0.0; 512], 10, &Scope::default())?;
//! # Ok::<(), clipsearch::Error>(())
//! ```

mod fault;
mod load;
mod location;
mod meta;

pub use fault::Fault;
pub use location::{is_url, Location, TOKEN_ENV};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use clipsearch::model::ModelIdentity;
use clipsearch::store::collection::{check_claim, key_of, Collection, Found, Item, Scope};
use clipsearch::{Error, Result};
use milvus::v2 as sdk;
use milvus::v2::prelude::*;

/// The collection property that holds the model identity (JSON). Properties, not the
/// description: milvus-lite keeps the former only.
const MODEL_PROPERTY: &str = "clipsearch.model";
/// The collection property that names this life of the collection: a random id set when it
/// is created. Each machine's catalog records the one it pushed to; a collection dropped and
/// created again has another, so every machine knows to push all its files again.
const INCARNATION_PROPERTY: &str = "clipsearch.incarnation";
const MAX_PATH: u32 = 4096;
/// How long the first call may take to reach the server.
const CONNECT_WINDOW: Duration = Duration::from_secs(5);

/// A Milvus collection behind clipsearch's storage trait. Calls block (on a runtime of its
/// own), so it must not be used from inside an async task.
pub struct MilvusCollection {
    location: Location,
    client: ClientV2,
    runtime: tokio::runtime::Runtime,
    /// The collection was seen to exist: no need to ask again before every call (nothing but
    /// `drop_collection` removes it).
    seen: AtomicBool,
    /// Whether it has the metadata fields: 0 not known yet, 1 no (made by an older
    /// clipsearch), 2 yes.
    with_meta: AtomicU8,
}

fn sdk_err(location: &Location, what: &str, e: sdk::error::Error) -> Error {
    fault::error(location, what, &e)
}

/// The SDK's retry policy: transient failures retried with back-off for `window`.
fn retry_policy(window: Duration) -> RetryConfig {
    RetryConfig::new()
        .max_attempts(u32::MAX)
        .max_retry_timeout(window.max(Duration::from_millis(1)))
        .max_backoff(Duration::from_secs(2))
}

/// A fresh random id for a new collection (no dependency for 128 random bits: the standard
/// library's hasher keys are random per process, mixed with the clock and the process id).
fn new_incarnation() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

impl MilvusCollection {
    /// Connects to the server of `url` (the collection need not exist yet). An unreachable
    /// server is an error naming the URL.
    pub fn connect(url: &str) -> Result<Self> {
        let location = Location::parse(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::System(format!("cannot start the Milvus client: {e}")))?;
        let scheme = if location.https { "https" } else { "http" };
        let mut config = ConnectConfig::new()
            .uri(format!("{scheme}://{}:{}", location.host, location.port))
            .connect_timeout(Duration::from_secs(5))
            .rpc_timeout(Duration::from_secs(60))
            // At start, a server that does not answer is said within seconds.
            .retry(retry_policy(CONNECT_WINDOW));
        if let Ok(token) = std::env::var(TOKEN_ENV) {
            config = config.token(token);
        }
        let url = location.url();
        let unreachable = |e: &dyn std::fmt::Display| Error::Remote {
            transient: true,
            message: format!(
                "cannot reach Milvus at {url} ({e}): is the server running and the address right? \
                 (a test server: `milvus-lite server --data-dir DIR --host 127.0.0.1 --port PORT`; \
                 a token goes in {TOKEN_ENV})"
            ),
        };
        let client = runtime
            .block_on(ClientV2::new(&config))
            .map_err(|e| unreachable(&e))?;
        let c = MilvusCollection {
            location,
            client,
            runtime,
            seen: AtomicBool::new(false),
            with_meta: AtomicU8::new(0),
        };
        // The client connects lazily: one call proves the server answers. Only a server that
        // does not answer is "unreachable"; one that answers and refuses says why.
        let req = HasCollectionRequest::builder()
            .collection_name(c.name())
            .build()
            .map_err(|e| c.fail("has_collection", e))?;
        match c.runtime.block_on(c.client.has_collection(req)) {
            Ok(r) => c.seen.store(r.exists(), Ordering::Relaxed),
            Err(e) if fault::classify(&e) == Fault::Lost => return Err(unreachable(&e)),
            Err(e) => return Err(c.fail("has_collection", e)),
        }
        c.client
            .set_retry_param(retry_policy(clipsearch::store::collection::retry_window()));
        Ok(c)
    }

    pub fn location_of(&self) -> &Location {
        &self.location
    }

    fn name(&self) -> &str {
        &self.location.collection
    }

    fn exists(&self) -> Result<bool> {
        if self.seen.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let req = HasCollectionRequest::builder()
            .collection_name(self.name())
            .build()
            .map_err(|e| self.fail("has_collection", e))?;
        let exists = self
            .runtime
            .block_on(self.client.has_collection(req))
            .map(|r| r.exists())
            .map_err(|e| self.fail("has_collection", e))?;
        self.seen.store(exists, Ordering::Relaxed);
        Ok(exists)
    }

    /// Creates the collection as clipsearch did before it kept photo metadata (no scalar
    /// metadata fields, no incarnation), to test that such collections keep working.
    #[doc(hidden)]
    pub fn create_without_metadata(&self, model: &ModelIdentity) -> Result<()> {
        self.create_with(model, false)
    }

    fn create(&self, model: &ModelIdentity) -> Result<()> {
        self.create_with(model, true)
    }

    fn create_with(&self, model: &ModelIdentity, with_meta: bool) -> Result<()> {
        let l = &self.location;
        let err = |what: &'static str| move |e: sdk::error::Error| sdk_err(l, what, e);
        let schema = sdk::CollectionSchema::new()
            .add_field(
                sdk::FieldSchema::new()
                    .name("pk")
                    .data_type(sdk::DataType::Int64)
                    .primary_key(true),
            )
            .add_field(
                sdk::FieldSchema::new()
                    .name("source")
                    .data_type(sdk::DataType::VarChar)
                    .max_length(256),
            )
            .add_field(
                sdk::FieldSchema::new()
                    .name("path")
                    .data_type(sdk::DataType::VarChar)
                    .max_length(MAX_PATH),
            )
            .add_field(
                sdk::FieldSchema::new()
                    .name("vector")
                    .data_type(sdk::DataType::FloatVector)
                    .dimension(model.dim as u32),
            );
        let schema = if with_meta {
            meta::add_fields(schema)
        } else {
            schema
        };
        let identity = serde_json::to_string(model).map_err(|e| Error::System(e.to_string()))?;
        let mut properties = HashMap::from([(MODEL_PROPERTY.to_string(), identity)]);
        if with_meta {
            properties.insert(INCARNATION_PROPERTY.to_string(), new_incarnation());
        }
        let req = sdk::request::collection::CreateCollectionRequest::builder()
            .collection_name(self.name())
            .description("clipsearch: file embeddings")
            .properties(properties)
            .num_shards(1)
            .schema(schema)
            .consistency_level(sdk::ConsistencyLevel::Strong)
            .build()
            .map_err(err("create_collection"))?;
        self.runtime
            .block_on(self.client.create_collection(req))
            .map_err(err("create_collection"))?;
        let mut param = IndexParam::new()
            .field_name("vector")
            .index_name("vector")
            .metric_type(MetricType::Ip);
        param = if self.location.flat {
            param.index_type(IndexType::Flat)
        } else {
            param
                .index_type(IndexType::Hnsw)
                .extra_params(HashMap::from([
                    ("M".into(), "16".into()),
                    ("efConstruction".into(), "200".into()),
                ]))
        };
        // Asynchronously, then polled: milvus-lite cannot wait for an index server-side.
        let req = sdk::request::index::CreateIndexRequest::builder()
            .collection_name(self.name())
            .index_param(param)
            .sync(false)
            .build()
            .map_err(err("create_index"))?;
        self.runtime
            .block_on(self.client.create_index(req))
            .map_err(err("create_index"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let req = sdk::request::index::DescribeIndexRequest::builder()
                .collection_name(self.name())
                .index_name("vector")
                .build()
                .map_err(err("describe_index"))?;
            let ready = self
                .runtime
                .block_on(self.client.describe_index(req))
                .map(|r| !r.indexes().is_empty())
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(sdk_err(
                    l,
                    "create_index",
                    sdk::error::Error::Unexpected("the index did not appear in 60 s".into()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let req = sdk::request::collection::LoadCollectionRequest::builder()
            .collection_name(self.name())
            .build()
            .map_err(err("load_collection"))?;
        self.runtime
            .block_on(self.client.load_collection(req))
            .map_err(err("load_collection"))?;
        Ok(())
    }

    /// Drops the collection (for tests and `--rebuild`).
    pub fn drop_collection(&self) -> Result<()> {
        if !self.exists()? {
            return Ok(());
        }
        let req = DropCollectionRequest::builder()
            .collection_name(self.name())
            .build()
            .map_err(|e| self.fail("drop_collection", e))?;
        self.seen.store(false, Ordering::Relaxed);
        self.with_meta.store(0, Ordering::Relaxed);
        self.runtime
            .block_on(self.client.drop_collection(req))
            .map_err(|e| self.fail("drop_collection", e))
    }

    fn describe(&self) -> Result<DescribeCollectionResponse> {
        let req = sdk::request::collection::DescribeCollectionRequest::builder()
            .collection_name(self.name())
            .build()
            .map_err(|e| self.fail("describe_collection", e))?;
        let desc = self
            .runtime
            .block_on(self.client.describe_collection(req))
            .map_err(|e| self.fail("describe_collection", e))?;
        let has = desc
            .description()
            .get_schema()
            .get_fields()
            .iter()
            .any(|f| f.get_name() == meta::META);
        self.with_meta
            .store(if has { 2 } else { 1 }, Ordering::Relaxed);
        Ok(desc)
    }

    /// Whether the collection keeps photo metadata (one made by an older clipsearch does not).
    fn has_meta(&self) -> Result<bool> {
        match self.with_meta.load(Ordering::Relaxed) {
            0 => {
                if !self.exists()? {
                    return Ok(false);
                }
                self.describe()?;
                Ok(self.with_meta.load(Ordering::Relaxed) == 2)
            }
            v => Ok(v == 2),
        }
    }

    /// The fields a result reads: the metadata ones where the collection has them.
    fn output(&self, base: &[&'static str]) -> Result<Vec<&'static str>> {
        let mut fields = base.to_vec();
        if self.has_meta()? {
            fields.push(meta::META);
        }
        Ok(fields)
    }

    /// Refuses a metadata filter on a collection without metadata, saying what to do.
    fn check_filter(&self, scope: &Scope) -> Result<()> {
        if !scope.filter.is_empty() && !self.has_meta()? {
            return Err(Error::Collection(format!(
                "the collection {} was made by an older clipsearch that did not keep photo \
                 metadata in it, so it cannot filter by date, place, camera or format: index \
                 into a new collection (`--index milvus://HOST:PORT/NEW_NAME`) to have them",
                self.location.url()
            )));
        }
        Ok(())
    }

    fn require(&self) -> Result<()> {
        if self.exists()? {
            Ok(())
        } else {
            Err(Error::Collection(format!(
                "there is no collection at {}: index into it first (`clipsearch index DIR... \
                 --index {}`)",
                self.location.url(),
                self.location.url()
            )))
        }
    }
}

/// A Milvus string literal.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Milvus's largest top-k (and query page).
const MAX_TOPK: usize = 16_384;
/// How much longer HNSW's candidate list is for a search with a metadata filter (ef 3,072
/// for a top 10: 70 ms instead of 45 on milvus-lite at 100k; recall@10 >= 0.99 for a filter
/// keeping 1/60 of the files in the shared suite).
const FILTERED_EF: usize = 32;

/// An expression keeping (at least) the files of a scope ("" for everything).
fn expression(scope: &Scope) -> String {
    let mut filter = Vec::new();
    if let Some(s) = &scope.source {
        filter.push(format!("source == {}", quote(s)));
    }
    if let Some(p) = &scope.prefix {
        filter.push(format!("path like {}", quote(&format!("{p}%"))));
    }
    let m = meta::expression(&scope.filter);
    if !m.is_empty() {
        filter.push(m);
    }
    filter.join(" and ")
}

/// The file of a result row: source, path, metadata where the collection has it, and the
/// vector if it was asked for (empty otherwise).
fn item_of(
    row: &ResultRow<'_>,
    with_meta: bool,
    with_vector: bool,
) -> std::result::Result<Item, Box<sdk::error::Error>> {
    Ok(Item {
        source: row.get_str("source")?.to_string(),
        path: row.get_str("path")?.to_string(),
        vector: if with_vector {
            row.get_float_vector("vector")?.to_vec()
        } else {
            Vec::new()
        },
        meta: if with_meta {
            meta::parse(row.get_str(meta::META)?)
        } else {
            None
        },
    })
}

impl MilvusCollection {
    /// One vector search: the best `limit` files passing `expr`, best first; `ef` is HNSW's
    /// candidate list.
    fn search_once(
        &self,
        query: &[f32],
        limit: usize,
        expr: &str,
        ef: usize,
    ) -> Result<Vec<Found>> {
        let fields = self.output(&["source", "path"])?;
        let with_meta = fields.contains(&meta::META);
        let mut req = SearchRequest::builder()
            .collection_name(self.name())
            .vector_field("vector")
            .vectors(SearchVectors::Float(vec![query.to_vec()]))
            .output_fields(fields)
            .limit(limit as i64)
            .consistency_level(sdk::ConsistencyLevel::Strong);
        if !expr.is_empty() {
            req = req.filter(expr);
        }
        if !self.location.flat {
            req = req.extra_params(HashMap::from([("ef".into(), ef.to_string())]));
        }
        let l = &self.location;
        let e = |e| sdk_err(l, "search", e);
        let req = req.build().map_err(e)?;
        let response = self.read("search", || {
            self.runtime
                .block_on(self.client.search(req.clone()))
                .map_err(Box::new)
        })?;
        let mut out = Vec::new();
        for result in response.results().iter() {
            for row in result.rows().map_err(e)? {
                let it = item_of(&row, with_meta, false).map_err(|x| e(*x))?;
                out.push(Found {
                    source: it.source,
                    path: it.path,
                    score: row.get_f32("score").map_err(e)?,
                    meta: it.meta,
                });
            }
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(out)
    }

    /// Every file in `scope` (with its vector if `with_vector`), read in pages that stay under
    /// gRPC's 4 MiB messages, then checked against the scope itself (the expression keeps a
    /// superset).
    fn scoped(&self, scope: &Scope, with_vector: bool) -> Result<Vec<Item>> {
        self.check_filter(scope)?;
        let mut fields = self.output(&["source", "path"])?;
        let with_meta = fields.contains(&meta::META);
        // A record is a few hundred bytes; a vector 4 bytes a dimension more.
        let page_rows = if with_vector {
            fields.push("vector");
            let dim = self.model()?.map_or(512, |m| m.dim);
            (1_500_000 / (dim * 4 + 1024)).max(1) as i64
        } else {
            2_000
        };
        let expr = expression(scope);
        let items = self.query_all(
            page_rows,
            (!expr.is_empty()).then_some(expr),
            &fields,
            |row| item_of(row, with_meta, with_vector),
        )?;
        Ok(items
            .into_iter()
            .filter(|it| scope.contains(&it.source, &it.path, it.meta.as_ref()))
            .collect())
    }

    /// Every row that passes `filter`, as `each` reads it. Key ranges are split until each
    /// fits one query (Milvus caps a query's rows at 16,384): keys are uniform hashes, so
    /// halving converges fast. Query iterators would do this server-side, but milvus-lite does
    /// not support them.
    fn query_all<T>(
        &self,
        page_rows: i64,
        filter: Option<String>,
        fields: &[&str],
        each: impl Fn(&ResultRow<'_>) -> std::result::Result<T, Box<sdk::error::Error>>,
    ) -> Result<Vec<T>> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        let l = &self.location;
        let e = |e| sdk_err(l, "query", e);
        let mut out = Vec::new();
        let mut ranges = vec![(0i64, i64::MAX)];
        while let Some((lo, hi)) = ranges.pop() {
            let mut expr = format!("pk >= {lo} and pk < {hi}");
            if let Some(f) = &filter {
                expr = format!("{expr} and ({f})");
            }
            let req = QueryRequest::builder()
                .collection_name(self.name())
                .filter(expr)
                .output_fields(fields.iter().copied())
                .limit(page_rows)
                .consistency_level(sdk::ConsistencyLevel::Strong)
                .build()
                .map_err(e)?;
            let response = self.read("query", || {
                self.runtime
                    .block_on(self.client.query(req.clone()))
                    .map_err(Box::new)
            })?;
            let results = response.results();
            let rows = results.rows().map_err(e)?;
            let mut page = Vec::new();
            for row in rows {
                page.push(each(&row).map_err(|x| e(*x))?);
            }
            if page.len() as i64 >= page_rows && hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                ranges.push((lo, mid));
                ranges.push((mid, hi));
            } else {
                out.extend(page);
            }
        }
        Ok(out)
    }
}

impl MilvusCollection {
    /// Rows passing `filter` ("" for all).
    fn count_where(&self, filter: &str) -> Result<usize> {
        if !self.exists()? {
            return Ok(0);
        }
        let req = QueryRequest::builder()
            .collection_name(self.name())
            .filter(filter)
            .output_fields(["count(*)"])
            .consistency_level(sdk::ConsistencyLevel::Strong)
            .build()
            .map_err(|e| self.fail("count", e))?;
        let response = self.read("count", || {
            self.runtime
                .block_on(self.client.query(req.clone()))
                .map_err(Box::new)
        })?;
        let results = response.results();
        let mut rows = results.rows().map_err(|e| self.fail("count", e))?;
        let row = rows
            .next()
            .ok_or_else(|| self.fail("count", sdk::error::Error::Unexpected("no row".into())))?;
        row.get_i64("count(*)")
            .map(|n| n.max(0) as usize)
            .map_err(|e| self.fail("count", e))
    }

    /// The collection's incarnation ([`INCARNATION_PROPERTY`]); one made by an older
    /// clipsearch gets one now. Two machines doing so at once may each record their own
    /// before one overwrites the other: the loser pushes its files again once, which is
    /// idempotent.
    fn incarnation_of(&self) -> Result<Option<String>> {
        if !self.exists()? {
            return Ok(None);
        }
        let read = |desc: &DescribeCollectionResponse| {
            desc.description()
                .get_properties()
                .get(INCARNATION_PROPERTY)
                .cloned()
        };
        if let Some(id) = read(&self.describe()?) {
            return Ok(Some(id));
        }
        let req = AlterCollectionPropertiesRequest::builder()
            .collection_name(self.name())
            .property(INCARNATION_PROPERTY, new_incarnation())
            .build()
            .map_err(|e| self.fail("alter_collection_properties", e))?;
        self.runtime
            .block_on(self.client.alter_collection_properties(req))
            .map_err(|e| self.fail("alter_collection_properties", e))?;
        read(&self.describe()?).map(Some).ok_or_else(|| {
            Error::Collection(format!(
                "the server of {} does not keep collection properties, which clipsearch needs \
                 to know the collection is the one each machine pushed to",
                self.location.url()
            ))
        })
    }
}

impl Collection for MilvusCollection {
    fn location(&self) -> String {
        self.location.url()
    }

    fn model(&self) -> Result<Option<ModelIdentity>> {
        if !self.exists()? {
            return Ok(None);
        }
        let desc = self.describe()?;
        let recorded = desc.description().get_properties().get(MODEL_PROPERTY);
        match recorded.map(|json| serde_json::from_str::<ModelIdentity>(json)) {
            Some(Ok(m)) => Ok(Some(m)),
            _ => Err(Error::Incompatible(format!(
                "the collection {} exists but was not made by clipsearch (it has no \
                 `{MODEL_PROPERTY}` property): use another collection name",
                self.location.url()
            ))),
        }
    }

    fn claim(&self, model: &ModelIdentity) -> Result<()> {
        if let Some(m) = self.model()? {
            return check_claim(&self.location.url(), &m, model);
        }
        let Err(e) = self.create(model) else {
            return Ok(());
        };
        // Another machine may have created it at the same moment: then its model decides.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(m)) = self.model() {
                return check_claim(&self.location.url(), &m, model);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(e)
    }

    fn upsert(&self, items: &[Item]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let with_meta = self.has_meta()?;
        let rows: Vec<serde_json::Value> = items
            .iter()
            .map(|it| {
                let mut row = serde_json::Map::new();
                row.insert("pk".into(), key_of(&it.source, &it.path).into());
                row.insert("source".into(), it.source.clone().into());
                row.insert("path".into(), it.path.clone().into());
                row.insert("vector".into(), serde_json::json!(it.vector));
                if with_meta {
                    meta::row_fields(it.meta.as_ref(), &mut row);
                }
                serde_json::Value::Object(row)
            })
            .collect();
        let rows = InsertRequest::builder()
            .collection_name(self.name())
            .rows(rows)
            .build()
            .map_err(|e| self.fail("upsert", e))?;
        let req = UpsertRequest::builder()
            .insert(rows)
            .build()
            .map_err(|e| self.fail("upsert", e))?;
        self.runtime
            .block_on(self.client.upsert(req))
            .map(|_| ())
            .map_err(|e| self.fail("upsert", e))
    }

    fn remove(&self, files: &[(String, String)]) -> Result<()> {
        if files.is_empty() || !self.exists()? {
            return Ok(());
        }
        let keys: Vec<String> = files
            .iter()
            .map(|(s, p)| key_of(s, p).to_string())
            .collect();
        let req = DeleteRequest::builder()
            .collection_name(self.name())
            .filter(format!("pk in [{}]", keys.join(", ")))
            .build()
            .map_err(|e| self.fail("delete", e))?;
        self.runtime
            .block_on(self.client.delete(req))
            .map(|_| ())
            .map_err(|e| self.fail("delete", e))
    }

    fn search(&self, query: &[f32], k: usize, scope: &Scope) -> Result<Vec<Found>> {
        self.require()?;
        self.check_filter(scope)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        // The expression keeps a superset of the scope (see `meta`); the candidates are
        // checked here, and the search widened in the rare case too few passed.
        let expr = expression(scope);
        // A filter that keeps a fraction of the files leaves that fraction of the graph's
        // neighbours usable: HNSW's candidate list is longer for a filtered search, to keep
        // recall for selective filters (milvus-lite's FAISS HNSW filters during the walk; a
        // Milvus cluster also switches to brute force for very selective ones). Counting the
        // kept files to size it exactly would cost more than the search on milvus-lite.
        let widen = if scope.filter.is_empty() {
            1
        } else {
            FILTERED_EF
        };
        let mut limit = k.min(MAX_TOPK);
        loop {
            let ef = ((2 * limit).max(96) * widen).min(MAX_TOPK);
            let hits = self.search_once(query, limit, &expr, ef)?;
            let exhausted = hits.len() < limit || limit >= MAX_TOPK;
            let mut kept: Vec<Found> = hits
                .into_iter()
                .filter(|f| scope.contains(&f.source, &f.path, f.meta.as_ref()))
                .collect();
            if kept.len() >= k || exhausted {
                kept.truncate(k);
                return Ok(kept);
            }
            limit = (limit * 4).min(MAX_TOPK);
        }
    }

    fn count(&self) -> Result<usize> {
        // No filter: milvus-lite counts a filtered query row by row (seconds at 100k).
        self.count_where("")
    }

    fn count_source(&self, source: &str) -> Result<usize> {
        self.count_where(&format!("source == {}", quote(source)))
    }

    fn incarnation(&self) -> Result<Option<String>> {
        self.incarnation_of()
    }

    fn files(&self) -> Result<Vec<(String, String)>> {
        self.query_all(10_000, None, &["source", "path"], |row| {
            Ok((
                row.get_str("source")?.to_string(),
                row.get_str("path")?.to_string(),
            ))
        })
    }

    fn select(&self, scope: &Scope) -> Result<Vec<Found>> {
        Ok(self
            .scoped(scope, false)?
            .into_iter()
            .map(|it| Found {
                source: it.source,
                path: it.path,
                score: 0.0,
                meta: it.meta,
            })
            .collect())
    }

    fn items(&self, scope: &Scope) -> Result<Vec<Item>> {
        self.scoped(scope, true)
    }

    fn get(&self, keys: &[i64]) -> Result<Vec<Item>> {
        if keys.is_empty() || !self.exists()? {
            return Ok(Vec::new());
        }
        let fields = self.output(&["source", "path", "vector"])?;
        let with_meta = fields.contains(&meta::META);
        let mut out = Vec::new();
        // Expressions stay small: a few hundred keys each.
        for chunk in keys.chunks(256) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let l = &self.location;
            let e = |e| sdk_err(l, "query", e);
            let req = QueryRequest::builder()
                .collection_name(self.name())
                .filter(format!("pk in [{}]", list.join(", ")))
                .output_fields(fields.iter().copied())
                .limit(chunk.len() as i64)
                .consistency_level(sdk::ConsistencyLevel::Strong)
                .build()
                .map_err(e)?;
            let response = self.read("get", || {
                self.runtime
                    .block_on(self.client.query(req.clone()))
                    .map_err(Box::new)
            })?;
            for row in response.results().rows().map_err(e)? {
                out.push(item_of(&row, with_meta, true).map_err(|x| e(*x))?);
            }
        }
        Ok(out)
    }

    fn flush(&self) -> Result<()> {
        if !self.exists()? {
            return Ok(());
        }
        let req = FlushRequest::builder()
            .collection_names([self.name()])
            .build()
            .map_err(|e| self.fail("flush", e))?;
        self.runtime
            .block_on(self.client.flush(req))
            .map(|_| ())
            .map_err(|e| self.fail("flush", e))
    }
}

/// The key of a file (re-exported for tools that address files in a collection directly).
pub use clipsearch::store::collection::key_of as file_key;
