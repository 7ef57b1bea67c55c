//! The query crate's errors: each says what failed and what to do, and the CLI maps each to
//! its exit code. A leaf, so that every module uses it without using the crate root.

use std::path::PathBuf;

use crate::expr;

/// Query errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] clipsearch::Error),
    #[error(transparent)]
    Parse(#[from] expr::ParseError),
    #[error("the index at {0} is empty: run `clipsearch index DIR...` first")]
    EmptyIndex(PathBuf),
    #[error("no index at {0}: build one with `clipsearch index DIR...` (or pass --index)")]
    NoIndex(PathBuf),
    #[error(
        "the collection {0} is empty: index into it first (`clipsearch index DIR... --index {0}`)"
    )]
    EmptyCollection(String),
    /// A `--model` whose embeddings are not comparable with the index's.
    #[error(
        "--model {given} is not the model this index was built with ({recorded}): query with \
         that model, or re-index with `clipsearch index --rebuild --model {given}`"
    )]
    WrongModel { given: String, recorded: String },
    /// The server will not start as asked: exposed without a token, a certificate or key that
    /// does not do.
    #[error("{0}")]
    Refused(String),
    /// The server could not start, listen, or keep serving.
    #[error("{0}")]
    Server(String),
    /// The folders of `serve --watch` cannot be watched.
    #[error("{0}")]
    Watch(String),
    #[error(
        "the index at {0} is being built and its first run has not published results yet; \
         try again in a few seconds"
    )]
    NotPublishedYet(PathBuf),
    /// The filters keep no file; says what the index has, so the user can adjust them.
    #[error("no indexed file matches {0}")]
    NoMatch(String),
    #[error(
        "the index at {0} was built before clipsearch recorded photo metadata, so it cannot \
         filter by date, place, camera or format yet: run `clipsearch index DIR...` on its \
         folders once (it reads the metadata only: nothing is decoded or embedded again)"
    )]
    NoMetadata(PathBuf),
}
