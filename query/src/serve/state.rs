//! How a server runs ([`ServeOptions`]) and what every handler shares ([`AppState`]): a leaf
//! the router, the handlers, the guard and the watcher all use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::hosts::AllowedHosts;
use super::tls::TlsFiles;
use crate::searcher::Searcher;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: SocketAddr,
    /// Required on every request but the page: `Authorization: Bearer T`, or the cookie that
    /// opening `/?token=T` sets.
    pub token: Option<String>,
    /// The `Host` names the server answers (see [`guard`]).
    pub allowed_hosts: AllowedHosts,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Largest request body (uploaded images), bytes.
    pub max_upload: usize,
    /// Longest a request may take.
    pub timeout: Duration,
    /// Largest side of a thumbnail, pixels.
    pub thumbnail_size: u32,
    /// Folders to keep indexed while serving (`--watch`).
    pub watch: Vec<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 7878)),
            token: None,
            allowed_hosts: AllowedHosts::new([127, 0, 0, 1].into(), &[]),
            tls: None,
            max_upload: 32 << 20,
            timeout: Duration::from_secs(60),
            thumbnail_size: 320,
            watch: Vec::new(),
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub searcher: Mutex<Box<dyn Searcher>>,
    pub options: ServeOptions,
    pub thumbnails: PathBuf,
}
