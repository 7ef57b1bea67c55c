//! `clipsearch serve`: the index and the model held in memory behind an HTTP API and a web page.
//!
//! Files are only ever addressed by their index id, never by a path from the request, and a
//! file is served only while its bytes still hash to what was indexed: a path traversal has
//! nothing to name, and an indexed file later replaced (say, by a symlink to a secret) is
//! refused. Bodies are capped, requests time-limited, and every handler turns failures into a
//! JSON error with a fitting status instead of panicking. The server binds to loopback unless
//! told otherwise, and anywhere else only with a bearer token. Loopback alone does not keep
//! other web sites out (DNS rebinding, cross-site forms): every request passes the [`guard`]
//! (host check, cross-site refusal, security headers) first, the token stays out of URLs
//! ([`token`]), and `--tls-cert`/`--tls-key` serve HTTPS on a LAN without a proxy ([`tls`]).
//!
//! Model work runs on tokio's blocking pool; the searcher (with its lazily loaded towers and
//! caches) sits behind one mutex, so concurrent queries queue for the CPU rather than race.
//! The server reads published views only: it never holds the index's database (unless it
//! indexes too, with `--watch`), and before each request it switches to a newer view if an
//! index run (its own watcher's, or a `clipsearch index` beside it) has published one.

mod api;
mod api_error;
mod files;
mod guard;
mod hosts;
mod state;
mod tls;
mod token;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::target::Target;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
pub use hosts::AllowedHosts;
use state::AppState;
pub use state::ServeOptions;
pub use tls::TlsFiles;

/// Refuses a non-loopback address without a token: an index of someone's photos must not be
/// readable by the whole network by accident.
pub fn check_exposure(opts: &ServeOptions) -> Result<(), Error> {
    if !opts.bind.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(Error::Refused(format!(
            "refusing to serve on {} without --token: anyone who can reach it could browse the \
             indexed photos. Pass --token SECRET (clients send `Authorization: Bearer SECRET`), \
             or bind to 127.0.0.1",
            opts.bind
        )));
    }
    Ok(())
}

/// The router, for tests and for [`serve`].
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.options.max_upload;
    let timeout = state.options.timeout;
    let protected = Router::new()
        .route("/api/search", get(api::search))
        .route("/api/query", post(api::query))
        .route("/api/similar/{id}", get(api::similar_to_id))
        .route("/api/similar", post(api::similar_to_upload))
        .route("/api/dupes", get(api::dupes))
        .route("/api/stats", get(api::stats))
        .route("/api/info/{id}", get(api::info))
        .route("/thumb/{id}", get(files::thumbnail))
        .route("/image/{id}", get(files::original))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            token::require_token,
        ));
    Router::new()
        .route("/", get(api::page))
        .route("/page.js", get(api::page_script))
        .route("/page.css", get(api::page_style))
        .merge(protected)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            api::panic_response,
        ))
        // Outermost: refusals come before any work, and every response (errors, timeouts and
        // caught panics included) carries the security headers.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// Serves `target` until Ctrl-C. `ready` is called with the bound address (port 0 picks a
/// free one) before the first request is accepted. With `options.watch`, the server also
/// indexes: it then holds the index's (or catalog's) database as its one writer.
pub fn serve(
    target: &Target,
    model: Option<&str>,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    check_exposure(&options)?;
    let (searcher, writer) = target.serving(model, !options.watch.is_empty())?;
    let dir = target.dir().to_path_buf();
    let state = Arc::new(AppState {
        searcher: Mutex::new(searcher),
        options: options.clone(),
        thumbnails: dir.join("thumbnails"),
    });
    if let Some(writer) = writer {
        watch::start(state.clone(), writer, options.watch.clone())?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Server(format!("cannot start the server: {e}")))?;
    runtime.block_on(async move {
        let listener = std::net::TcpListener::bind(options.bind).map_err(|e| {
            Error::Server(format!(
                "cannot listen on {}: {e} (is another server running there? pick one with --bind)",
                options.bind
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Server(e.to_string()))?;
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // For other commands that find the index busy: where to ask instead.
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join("server.json"),
            serde_json::json!({ "pid": std::process::id(), "url": format!("{scheme}://{addr}/") })
                .to_string(),
        );
        let app = router(state);
        let served = match &options.tls {
            Some(files) => tls::serve(listener, files, app, || ready(addr)).await,
            None => {
                let listener = listener
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(listener))
                    .map_err(|e| Error::Server(format!("cannot listen: {e}")))?;
                ready(addr);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await
                    .map_err(|e| Error::Server(format!("server failed: {e}")))
            }
        };
        let _ = std::fs::remove_file(dir.join("server.json"));
        served
    })
}
