//! What went wrong with a Milvus server, in clipsearch's words.
//!
//! The SDK reports transport failures, server statuses and its own retry accounting
//! ("RPC retry exhausted after 75 attempts: gRPC error: status: Unavailable ..."); a user
//! needs to know which of a few things happened and what to do about it. Each failure is
//! sorted into a [`Fault`] by its gRPC status or Milvus error code (reason text as a fallback,
//! for servers that only fill the legacy code), and every message names the collection's URL.

use clipsearch::Error;
use milvus::v2::error::Error as SdkError;

use crate::location::{Location, TOKEN_ENV};

/// The classes of failure a shared collection meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The server stopped answering (down, restarting, network gone) for longer than the
    /// retry window.
    Lost,
    /// The server holds the collection but has released it from memory (after a restart, or
    /// to free memory): it must be loaded before searches and queries.
    Released,
    /// The collection is gone (dropped, or the server's data lost).
    Dropped,
    /// The server refuses writes: out of quota, memory or disk, or rate-limited.
    Quota,
    /// The server refused the credentials.
    Denied,
    /// Anything else: the SDK's own words.
    Other,
}

/// Milvus's error codes (`pkg/util/merr`): memory limit, disk limit, rate limit, quota.
const QUOTA_CODES: [i32; 4] = [3, 7, 8, 9];
const COLLECTION_NOT_FOUND: i32 = 100;
const COLLECTION_NOT_LOADED: i32 = 101;
/// The legacy codes of the same: `CollectionNotExists`, `RateLimit`, `ForceDeny`,
/// `DiskQuotaExhausted`, `MemoryQuotaExhausted`.
const LEGACY_NOT_FOUND: i32 = 4;
const LEGACY_QUOTA: [i32; 4] = [49, 48, 53, 54];

/// Which class `e` is.
pub fn classify(e: &SdkError) -> Fault {
    use tonic::Code;
    match e {
        SdkError::RetryExhausted { source, .. } => classify(source),
        SdkError::Timeout(_) | SdkError::Cancelled(_) => Fault::Lost,
        SdkError::Grpc(status) => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                Fault::Lost
            }
            Code::Unauthenticated | Code::PermissionDenied => Fault::Denied,
            Code::ResourceExhausted => Fault::Quota,
            // A connection reset mid-call surfaces as Unknown with a transport message.
            Code::Unknown if transport(status.message()) => Fault::Lost,
            _ => Fault::Other,
        },
        SdkError::Server(s) => {
            let reason = s.reason().to_ascii_lowercase();
            if s.code() == COLLECTION_NOT_LOADED
                || reason.contains("not loaded")
                || reason.contains("state 'released'")
            {
                Fault::Released
            } else if s.code() == COLLECTION_NOT_FOUND
                || s.legacy_code() == LEGACY_NOT_FOUND
                || (reason.contains("collection") && reason.contains("not exist"))
                || reason.contains("collection not found")
            {
                Fault::Dropped
            } else if QUOTA_CODES.contains(&s.code())
                || LEGACY_QUOTA.contains(&s.legacy_code())
                || [
                    "quota",
                    "disk",
                    "memory limit",
                    "rate limit",
                    "deny to write",
                ]
                .iter()
                .any(|w| reason.contains(w))
            {
                Fault::Quota
            } else {
                Fault::Other
            }
        }
        _ => Fault::Other,
    }
}

fn transport(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["transport", "connection", "broken pipe", "reset", "refused"]
        .iter()
        .any(|w| m.contains(w))
}

/// The error for `e`, met while doing `what` on the collection at `location`.
pub fn error(location: &Location, what: &str, e: &SdkError) -> Error {
    let url = location.url();
    let fault = classify(e);
    let message = match fault {
        Fault::Lost => format!(
            "lost Milvus at {url} during {what}: the server stopped answering ({e}). Is it \
             still running? Once it answers, run the same command again: nothing done so far \
             is lost"
        ),
        Fault::Released => return load_failed(location, what, e),
        Fault::Dropped => format!(
            "the collection {url} no longer exists on the server (dropped, or the server's data \
             was lost; during {what}): run `clipsearch index DIR... --index {url}` on each \
             machine to create it again and push every file"
        ),
        Fault::Quota => format!(
            "Milvus at {url} refused the {what}: the server is out of quota, memory or disk, or \
             limits the request rate ({e}). Free space or memory on the server or raise its \
             limits (`quotaAndLimits` in milvus.yaml), then run the same command again: what \
             was pushed is kept"
        ),
        Fault::Denied => format!(
            "Milvus at {url} refused the credentials for {what} ({e}): put `user:password` or \
             an API key in {}",
            TOKEN_ENV
        ),
        Fault::Other => format!("Milvus at {url}: {what} failed: {e}"),
    };
    Error::Remote {
        message,
        transient: fault == Fault::Lost,
    }
}

/// The error for a collection the server released and would not load.
pub fn load_failed(location: &Location, what: &str, e: &SdkError) -> Error {
    Error::Remote {
        message: format!(
            "the collection {} is released on the server and could not be loaded for {what} \
             ({e}): check the server's memory and query nodes, or load it by hand (pymilvus: \
             `MilvusClient(...).load_collection(\"{}\")`)",
            location.url(),
            location.collection
        ),
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvus::proto::common::Status;

    fn server(code: i32, legacy: i32, reason: &str) -> SdkError {
        #[allow(deprecated)]
        let status = Status {
            code,
            error_code: legacy,
            reason: reason.into(),
            ..Default::default()
        };
        SdkError::from(status)
    }

    fn message(e: &SdkError) -> String {
        let l = Location::parse("milvus://db.example:19530/photos").unwrap();
        error(&l, "upsert", e).to_string()
    }

    #[test]
    fn each_class_in_our_words() {
        let unavailable = SdkError::RetryExhausted {
            attempts: 75,
            source: Box::new(SdkError::Grpc(tonic::Status::unavailable(
                "tcp connect error",
            ))),
        };
        assert_eq!(classify(&unavailable), Fault::Lost);
        let m = message(&unavailable);
        assert!(
            m.starts_with("lost Milvus at milvus://db.example:19530/photos during upsert")
                && m.contains("run the same command again"),
            "{m}"
        );
        let released = server(
            101,
            0,
            "Collection 'photos' is in state 'released'; call load() before search/get/query",
        );
        assert_eq!(classify(&released), Fault::Released);
        assert!(message(&released).contains("is released on the server"));
        let dropped = server(100, 0, "collection 'photos' does not exist");
        assert_eq!(classify(&dropped), Fault::Dropped);
        assert!(message(&dropped)
            .contains("the collection milvus://db.example:19530/photos no longer exists"));
        for quota in [
            server(9, 0, "quota exceeded[reason=disk quota exceeded]"),
            server(7, 0, "disk limit exceeded"),
            server(0, 53, "deny to write"),
            server(3, 0, "memory limit exceeded"),
        ] {
            assert_eq!(classify(&quota), Fault::Quota, "{quota}");
            let m = message(&quota);
            assert!(
                m.contains("out of quota, memory or disk") && m.contains("quotaAndLimits"),
                "{m}"
            );
        }
        let denied = SdkError::Grpc(tonic::Status::unauthenticated("bad token"));
        assert!(message(&denied).contains(TOKEN_ENV));
        assert_eq!(classify(&server(1100, 0, "bad expression")), Fault::Other);
        // Only a lost server is worth retrying.
        let l = Location::parse("milvus://h:1/c").unwrap();
        assert!(matches!(
            error(&l, "x", &unavailable),
            Error::Remote {
                transient: true,
                ..
            }
        ));
        assert!(matches!(
            error(&l, "x", &dropped),
            Error::Remote {
                transient: false,
                ..
            }
        ));
    }
}
