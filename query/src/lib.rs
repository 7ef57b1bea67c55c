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
mod error;
pub mod expr;
pub mod info;
pub mod local;
mod results;
pub mod searcher;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shared;
mod stats;
pub mod target;

pub use error::Error;
pub use local::open_view;
pub use results::{Match, SearchOptions};
pub use searcher::{FileAt, Searcher};
pub use stats::{LocalStats, Stats};
pub use target::Target;
