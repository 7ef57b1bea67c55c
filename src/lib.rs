//! # clipsearch: the CLIP engine
//!
//! This crate is everything the indexer and the query side share: the CLIP model and its exact
//! preprocessing, the tokenizer, photo metadata, the catalog store with its published views,
//! the search index over them, and the storage trait that Milvus implements too.
//! It has no CLI concerns; errors are typed ([`Error`]) and the binary words them for people.
//!
//! Design, in one paragraph: a checkpoint directory (transformers' or OpenCLIP's layout) is
//! resolved ([`model::resolve`]: local path or hub id), its configuration parsed by hand, its
//! family read from it ([`model::family`]: CLIP, SigLIP) and its tensors checked against it, then
//! the text and/or vision towers are built on one device ([`device::select`]). Images go through
//! [`preprocess`], a bit-exact copy of the family's image processor (Pillow's bicubic and
//! bilinear included), texts through [`tokenizer`] (padded only where the model was trained so).
//! Every embedding leaves the engine L2-normalised, so similarity is a dot product.
//!
//! ```no_run
//! use clipsearch::model::{resolve, ClipModel, Towers};
//! let files = resolve("openai/clip-vit-base-patch32")?;
//! let model = ClipModel::load(&files, Towers::Both)?;
//! let text = model.text()?.embed(&["a photo of a cat"])?;
//! let image = model.image()?.embed_file("cat.jpg".as_ref())?;
//! let cosine = clipsearch::embedding::dot(&text[0], &image);
//! # Ok::<(), clipsearch::Error>(())
//! ```

pub mod device;
pub mod embedding;
pub mod error;
pub mod index;
pub mod metadata;
pub mod model;
pub mod preprocess;
pub mod store;
pub mod tokenizer;

pub use error::{Error, Result};
