//! `clipsearch serve`: the CLI face of clipsearch-query's HTTP server.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use clipsearch_query::serve::{serve, AllowedHosts, ServeOptions, TlsFiles};

use crate::args::{IndexArg, ModelArg, SharedArgs};
use crate::exit;

/// Arguments of `clipsearch serve`.
#[derive(Args)]
#[command(
    after_help = "API (JSON; errors are {\"error\": ...} with a fitting status):
  GET  /api/search?q=TEXT&n=K       text search: {\"results\": [{id, path, score, taken, place,
                                    camera, thumbnail, image}]}; `q` may hold inline filters
                                    (`dog after:2023`) or only filters (listed by date)
  POST /api/query                   {\"terms\": [{\"text\": \"beach\"}, {\"id\": 42, \"weight\": -0.5}], \"n\": 10}
  GET  /api/similar/ID?n=K          images like an indexed one
  POST /api/similar?n=K             images like the uploaded file (the request body)
  GET  /api/dupes?threshold=T       near-duplicate groups
  GET  /api/stats                   files, failures, model
  GET  /api/info/ID                 one file's record: taken, place, gps, camera, lens, ...
  GET  /thumb/ID, /image/ID         a thumbnail (JPEG, cached) or the original file
Every query endpoint (search, query, similar, dupes) takes the filters `after`, `before`,
`camera`, `place`, `near`, `format` and `sort` as parameters, as `clipsearch search` does.
Files are served by index id only, and only while they are unchanged since indexing.

With a shared collection (--index milvus://HOST:PORT/COLLECTION), the server searches every
machine's files; results carry their machine (`source`), and only this machine's files (its
--source, checked against its --catalog) have a thumbnail and an image here. --watch indexes
into the catalog and pushes to the collection, as `clipsearch index` does."
)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub bind: SocketAddr,
    /// Token every API, thumbnail and image request must carry: scripts send
    /// `Authorization: Bearer TOKEN`; in a browser, open the page once as `/?token=TOKEN` (the
    /// token then moves into an HttpOnly cookie and out of the address bar).
    #[arg(long, env = "CLIPSEARCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Also answer requests that name the server NAME (its `Host` header), e.g. a LAN name
    /// like `nas.local`; `.home.arpa` admits every subdomain, `*` turns the check off (behind
    /// a reverse proxy that checks). By default a loopback server answers only localhost,
    /// 127.0.0.1 and [::1], and any other only its addresses: other names are refused so that
    /// a web page cannot reach the server through DNS rebinding (repeatable).
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Serve HTTPS with this PEM certificate (chain) instead of HTTP; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Largest upload, in MiB.
    #[arg(long, default_value_t = 32)]
    pub max_upload_mb: usize,
    /// Keep these folders indexed while serving: new, changed, moved and deleted files are
    /// picked up within a second or so of the change (repeatable).
    #[arg(long, value_name = "DIR")]
    pub watch: Vec<std::path::PathBuf>,
    /// Longest a request may take, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub index: IndexArg,
    #[command(flatten)]
    pub shared: SharedArgs,
    #[command(flatten)]
    pub model: ModelArg,
}

pub fn run(args: ServeArgs) -> Result<i32> {
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    if let Some(files) = &tls {
        // A bad certificate is said before the model and index are loaded.
        files.config()?;
    }
    let options = ServeOptions {
        bind: args.bind,
        token: args.token.filter(|t| !t.is_empty()),
        allowed_hosts: AllowedHosts::new(args.bind.ip(), &args.allow_host),
        tls,
        max_upload: args.max_upload_mb << 20,
        timeout: Duration::from_secs(args.timeout.max(1)),
        watch: args.watch,
        ..Default::default()
    };
    clipsearch_query::serve::check_exposure(&options)?;
    let target = crate::target::open(&args.index, &args.shared)?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let login = if options.token.is_some() {
        " (open it once as /?token=YOUR_TOKEN)"
    } else {
        ""
    };
    serve(&target, args.model.model.as_deref(), options, |addr| {
        println!("serving {scheme}://{addr}/{login} (Ctrl-C to stop)");
        let _ = std::io::stdout().flush();
    })?;
    Ok(exit::OK)
}
