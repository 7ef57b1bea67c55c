//! [`Location`]: where a collection is (its `milvus://` URL, parsed; [`is_url`] tells one from
//! a directory), and [`TOKEN_ENV`], where the credentials to reach it come from.
//!
//! A leaf: it names no other module of the crate, so the crate root, which connects to the
//! location, and the failure messages (`fault.rs`), which name its URL and the token variable,
//! can both take them from here without using one another in a circle.

use clipsearch::{Error, Result};

/// The environment variable that holds the token (`user:password`, or an API key).
pub const TOKEN_ENV: &str = "CLIPSEARCH_MILVUS_TOKEN";

/// Whether `--index` names a Milvus collection rather than a local directory.
pub fn is_url(s: &str) -> bool {
    s.starts_with("milvus://") || s.starts_with("milvus+https://")
}

/// Where a collection is.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub collection: String,
    /// FLAT (exact) instead of HNSW.
    pub flat: bool,
}

impl Location {
    /// `milvus://HOST:PORT/COLLECTION[?index=flat]`, `milvus+https://...` for TLS.
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| {
            Error::Collection(format!(
                "`{url}` is not a Milvus collection URL ({why}): write \
                 milvus://HOST:PORT/COLLECTION, or milvus+https://... for TLS"
            ))
        };
        let (https, rest) = if let Some(r) = url.strip_prefix("milvus+https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("milvus://") {
            (false, r)
        } else {
            return Err(bad("no milvus:// scheme"));
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, collection) = rest.split_once('/').ok_or_else(|| bad("no collection"))?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
            None => (authority, 19530),
        };
        let collection = collection.trim_end_matches('/');
        let valid = !collection.is_empty()
            && collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !collection.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(bad(
                "a collection name is letters, digits and underscores, not starting with a digit",
            ));
        }
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let flat = match query {
            "" | "index=hnsw" => false,
            "index=flat" => true,
            other => return Err(bad(&format!("unknown option `{other}`"))),
        };
        Ok(Location {
            https,
            host: host.to_string(),
            port,
            collection: collection.to_string(),
            flat,
        })
    }

    pub fn url(&self) -> String {
        format!(
            "milvus{}://{}:{}/{}",
            if self.https { "+https" } else { "" },
            self.host,
            self.port,
            self.collection
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let l = Location::parse("milvus://127.0.0.1:19531/photos").unwrap();
        assert_eq!(
            (
                l.host.as_str(),
                l.port,
                l.collection.as_str(),
                l.https,
                l.flat
            ),
            ("127.0.0.1", 19531, "photos", false, false)
        );
        assert_eq!(l.url(), "milvus://127.0.0.1:19531/photos");
        let l = Location::parse("milvus+https://db.example/photos_2024?index=flat").unwrap();
        assert_eq!((l.port, l.https, l.flat), (19530, true, true));
        for bad in [
            "http://x/y",
            "milvus://x",
            "milvus://x:port/y",
            "milvus://x:1/9y",
            "milvus://x:1/a-b",
            "milvus://x:1/y?index=ivf",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert!(is_url("milvus://a/b") && !is_url("/home/me/index"));
    }
}
