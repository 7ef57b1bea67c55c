//! The engine's error type. Each variant carries what a user needs to act on it: the path, the
//! key, the expected and found values. The CLI turns these into one-line messages.

use std::path::PathBuf;

/// Errors raised by the engine library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image that cannot be decoded, is too large or is not an image at all.
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    /// An image in a format this build cannot decode (a build with a feature, or a later
    /// version, can): reported, but not remembered as a bad file.
    #[error("{path}: {reason}")]
    UnsupportedFormat { path: PathBuf, reason: String },
    /// `config.json` (or `preprocessor_config.json`) is missing a field or has a bad value.
    #[error("{path}: `{key}`: {reason}")]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("model weights {path}: tensor `{key}` is missing (is this a CLIP checkpoint in Hugging Face format?)")]
    MissingTensor { path: PathBuf, key: String },
    #[error("model weights {path}: tensor `{key}` has shape {found:?}, config.json implies {expected:?}")]
    TensorShape {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "{key} = {value:?} is not supported (this build loads CLIP and SigLIP checkpoints in \
         Hugging Face's layout: `clipsearch models` lists known-good ones)"
    )]
    Unsupported { key: String, value: String },
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    /// The model could not be found locally nor downloaded.
    #[error("{0}")]
    ModelUnavailable(String),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("index store: {0}")]
    Store(String),
    /// No index where one was expected.
    #[error("no index at {}: build one with `clipsearch index DIR...` (or pass --index)", .0.display())]
    NoIndex(PathBuf),
    /// Another process is the index's one writer (an index run, or a server that watches).
    #[error("{0}")]
    Busy(String),
    /// An index or view written by a newer clipsearch.
    #[error("{0}")]
    TooNew(String),
    /// An index or collection built for another model, mode or preprocessing than asked for:
    /// their embeddings are not comparable.
    #[error("{0}")]
    Incompatible(String),
    /// A shared collection that cannot be used as it is (missing, not clipsearch's, of an
    /// older layout), or a collection address that is not one.
    #[error("{0}")]
    Collection(String),
    /// The system refused what a run needs (threads, a runtime, a file written whole).
    #[error("{0}")]
    System(String),
    /// A call the engine's API does not allow (a tower that was not loaded, a buffer of the
    /// wrong size): a bug in the caller.
    #[error("{0}")]
    Misuse(String),
    /// A shared collection's server failed a request. `transient`: the server stopped
    /// answering, so trying again later may succeed; otherwise (collection dropped, out of
    /// quota, refused credentials) retrying cannot help and callers should stop at once.
    #[error("{message}")]
    Remote { message: String, transient: bool },
    /// The index has no published view yet: its first run has not got that far, or it was
    /// written by a version that did not publish views.
    #[error("the index at {} has no published view to search yet", .0.display())]
    NoView(PathBuf),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Image {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
