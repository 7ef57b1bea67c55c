//! Exit codes, so that scripts can tell failures apart:
//! 0 success; 1 an unexpected failure, or no file matched a query's filters (as grep says
//! "no match"); 2 bad usage (clap's convention); 3 the model cannot be
//! had or is not a usable CLIP checkpoint; 4 some inputs (images, queries) were bad;
//! 5 the index is missing, stale, of another model or busy.

use clipsearch::Error;

pub const OK: i32 = 0;
pub const FAILURE: i32 = 1;
/// A query's filters kept no file.
pub const NO_MATCH: i32 = 1;
pub const USAGE: i32 = 2;
pub const MODEL: i32 = 3;
pub const BAD_INPUT: i32 = 4;
pub const INDEX: i32 = 5;
/// Stopped by Ctrl-C (128 + SIGINT), with the work so far saved.
pub const INTERRUPTED: i32 = 130;

pub fn code_for(e: &anyhow::Error) -> i32 {
    let engine = match e.downcast_ref::<clipsearch_query::Error>() {
        Some(clipsearch_query::Error::Engine(inner)) => Some(inner),
        Some(clipsearch_query::Error::Parse(_)) => return USAGE,
        Some(
            clipsearch_query::Error::EmptyIndex(_)
            | clipsearch_query::Error::NoIndex(_)
            | clipsearch_query::Error::EmptyCollection(_)
            | clipsearch_query::Error::WrongModel { .. }
            | clipsearch_query::Error::NotPublishedYet(_)
            | clipsearch_query::Error::NoMetadata(_),
        ) => return INDEX,
        // (A server that will not start kept the index's code when these errors were split
        // out of one catch-all: scripts that test for 5 still work.)
        Some(
            clipsearch_query::Error::Refused(_)
            | clipsearch_query::Error::Server(_)
            | clipsearch_query::Error::Watch(_),
        ) => return INDEX,
        Some(clipsearch_query::Error::NoMatch(_)) => return NO_MATCH,
        None => match e.downcast_ref::<clipsearch_train::Error>() {
            Some(clipsearch_train::Error::Engine(inner)) => Some(inner),
            Some(clipsearch_train::Error::Data(_)) => return BAD_INPUT,
            Some(clipsearch_train::Error::Io { .. }) => return FAILURE,
            None => e.downcast_ref::<Error>(),
        },
    };
    match engine {
        Some(
            Error::ModelUnavailable(_)
            | Error::Config { .. }
            | Error::MissingTensor { .. }
            | Error::TensorShape { .. }
            | Error::Unsupported { .. }
            | Error::Tokenizer { .. },
        ) => MODEL,
        Some(Error::Image { .. } | Error::UnsupportedFormat { .. }) => BAD_INPUT,
        Some(
            Error::Store(_)
            | Error::NoIndex(_)
            | Error::Busy(_)
            | Error::TooNew(_)
            | Error::Incompatible(_)
            | Error::Collection(_)
            | Error::Remote { .. }
            | Error::NoView(_),
        ) => INDEX,
        // (These were one catch-all with the index's code before they were told apart;
        // scripts that test for 5 keep working.)
        Some(Error::System(_) | Error::Misuse(_)) => INDEX,
        _ => FAILURE,
    }
}

/// One line (or a short paragraph for actionable errors), with the cause chain.
pub fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
