//! Nearest-neighbour search over normalised embeddings, where the score is the dot product
//! (cosine similarity), as qdrant does it.
//!
//! [`SearchIndex`] is what queries use: a published view (see [`crate::store::view`]), scanned
//! through its binary codes and rescored exactly when it is large, exactly when it is small;
//! it reads nothing whole on open, so a query process costs the same at any size. [`publish`]
//! is how the writer makes a view, writing what changed (`crate::store::merge` rewrites full
//! segments in the background). Two in-memory implementations of one trait,
//! [`NearestNeighbours`], serve work on vector sets that are not views: [`ExactIndex`] and
//! [`HnswIndex`] (hnsw_rs's graph, which the scale benchmark races against the codes).

mod collection;
mod exact;
mod hit;
mod hnsw;
mod pairs;
mod publish;
mod search;

pub use crate::store::merge::{tail_rows, TAIL_ROWS};
pub use collection::LocalCollection;
pub use exact::ExactIndex;
pub use hit::{Hit, NearestNeighbours};
pub use hnsw::{HnswIndex, HnswParams, UnitCosine};
pub use pairs::pairs_above;
pub use publish::{publish, publish_and_settle};
pub use search::{SearchIndex, EXACT_SCAN_ROWS, MIN_CODE_BITS, RESCORE_MIN, RESCORE_PER_RESULT};
