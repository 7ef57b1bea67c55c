//! The one interface every query goes through, whatever holds the vectors: a local index
//! ([`crate::local::LocalSearcher`]) or a shared collection ([`crate::shared::SharedSearcher`]).
//! The CLI and the server get a `Box<dyn Searcher>` from [`crate::target::Target`] and never ask
//! which one it is, as qdrant's collection asks `Shard::get` for a shard and speaks to local
//! and remote shards alike.

use std::path::{Path, PathBuf};

use clipsearch::store::FileRecord;
use serde_json::Value;

use crate::error::Error;
use crate::expr::{self, Item, Term};
use crate::results::{Match, SearchOptions};

/// Where the file of a result is, seen from this machine.
#[derive(Debug)]
pub enum FileAt {
    /// Here, with what was indexed of it (to check that it is unchanged before serving it).
    Here(PathBuf, Box<FileRecord>),
    /// In the collection, but on another machine (`source`): a server there shows it.
    Elsewhere { source: String, path: String },
    /// No file has this id.
    Unknown,
}

/// An open index or collection, ready to answer queries. Implementations embed queries with
/// the model the vectors came from, loading a tower only when a query needs it.
pub trait Searcher: Send {
    /// Where the vectors are, for messages (`/path/to/index`, `milvus://host:19530/photos`).
    fn location(&self) -> String;

    /// Picks up what was indexed since it was opened; true if it switched to newer results.
    fn refresh(&mut self) -> Result<bool, Error> {
        Ok(false)
    }

    /// A text's embedding.
    fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error>;

    /// An image file's embedding (an indexed, unchanged file's stored one where there is).
    fn embed_image(&mut self, path: &Path) -> Result<Vec<f32>, Error>;

    /// An image given as file contents (an upload); `name` is used in messages.
    fn embed_image_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error>;

    /// The normalised query vector of an expression: the weighted sum of its terms'
    /// embeddings.
    fn embed_terms(&mut self, terms: &[Term]) -> Result<Vec<f32>, Error> {
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

    /// The files most similar to `query` among those the options keep, best first (then in
    /// the options' order).
    fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Match>, Error>;

    /// The files the options keep, by capture time (oldest first unless `-date`): a query of
    /// filters alone.
    fn list(&self, opts: &SearchOptions) -> Result<Vec<Match>, Error>;

    /// Groups of two or more near-duplicates (cosine >= `threshold`) among the files the
    /// options keep (their filter and folder; not their limit or order), largest first.
    fn groups(&self, threshold: f32, opts: &SearchOptions) -> Result<Vec<Vec<Match>>, Error>;

    /// The stored embedding of a result's [`Match::id`].
    fn vector_of(&self, id: u64) -> Result<Option<Vec<f32>>, Error>;

    /// Everything held for one file, by its [`Match::id`]: record and metadata as JSON.
    fn describe(&mut self, id: u64) -> Result<Option<Value>, Error>;

    /// Everything held for one file of this machine, by its path (canonical).
    fn describe_path(&mut self, path: &Path) -> Result<Option<Value>, Error>;

    /// Where [`Searcher::describe_path`] looks, for the message that a file is not there.
    fn files_location(&self) -> String {
        self.location()
    }

    /// The file of a result, if this machine has it.
    fn file(&mut self, id: u64) -> Result<FileAt, Error>;

    /// Whether this machine can show the file of a result (a shared collection's results
    /// include other machines' files).
    fn serves(&self, m: &Match) -> bool;

    /// What the server's `/api/stats` says: files, model, location.
    fn stats(&self) -> Result<Value, Error>;
}
