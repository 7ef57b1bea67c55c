//! # clipsearch: the CLIP engine
//!
//! This crate is everything the indexer and the query side share: the CLIP model and its exact
//! preprocessing, the tokenizer, and (in later modules) the catalog store and the vector index.
//! It has no CLI concerns; errors are typed ([`Error`]) and the binary words them for people.
//!
//! Design, in one paragraph: a checkpoint directory in Hugging Face format is resolved
//! ([`model::resolve`]: local path or hub id), its `config.json` parsed by hand and its tensors
//! checked against it, then the text and/or vision towers of candle-transformers' CLIP are built
//! on one device ([`device::select`]). Images go through [`preprocess`], a bit-exact copy of
//! `CLIPImageProcessor` (Pillow's bicubic included), texts through [`tokenizer`] without padding.
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
