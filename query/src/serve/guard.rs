//! Who may talk to the server at all, checked on every request before any handler runs.
//!
//! A server on loopback is not private from the browser on the same machine: any page the user
//! visits can point its own domain at 127.0.0.1 (DNS rebinding) and then read the API and the
//! photos through requests the browser considers same-origin, or post to the API from a form.
//! So, as Syncthing's GUI, Jupyter and Vite's dev server do:
//! - **Host check**: the `Host` header must name the server as the user reached it (loopback
//!   names and addresses for a loopback server; the bound address, or any IP literal when bound
//!   to every address; plus the names given with `--allow-host`). A rebinding page's requests
//!   carry its own domain, and an IP literal cannot be rebound.
//! - **Cross-site refusal**: a request a browser marks as coming from another site
//!   (`Sec-Fetch-Site`, or an `Origin` that is not the server's) is refused everywhere but on
//!   plain navigation to the page; a POST that carries the browser's cookie needs proof that the
//!   page sent it (same-origin headers, or the `X-Clipsearch` header the page sets and that no
//!   cross-site form can). Requests with none of these headers (curl, scripts) are not from a
//!   browser and pass, with the token where one is set.
//! - **Security headers** on every response, errors included: a CSP the page works under,
//!   no framing, no referrer, no sniffing, no embedding by other origins.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_error::ApiError;
use super::hosts::host_name;
use super::state::AppState;

/// The header the page sends with every API call: a custom header cannot be set on a
/// cross-site form post, and a cross-site `fetch` with it needs a CORS preflight that this
/// server never grants.
pub(crate) const PAGE_HEADER: &str = "x-clipsearch";

/// What the page needs and nothing more: its own script, style and images (thumbnails, plus
/// `data:`/`blob:` URLs), its own API; never framed, no plugins, no `<base>` tricks.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Most bytes of request headers a request may carry (hyper itself buffers up to ~400 KiB);
/// nothing this server takes comes near it, browsers send a few KiB.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// The check, then the headers: the middleware around every route.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = match refusal(&state, &req) {
        Some(refused) => refused.into_response(),
        None => next.run(req).await,
    };
    secure(response.headers_mut());
    response
}

/// Why `req` is refused, if it is.
fn refusal(state: &AppState, req: &Request) -> Option<ApiError> {
    let headers = req.headers();
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request's headers exceed {} KiB",
                MAX_HEADER_BYTES >> 10
            ),
        ));
    }
    let mut hosts_given = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts_given.next(), hosts_given.next()) else {
        return Some(ApiError::bad_request(
            "a request needs exactly one Host header",
        ));
    };
    let Ok(host) = host.to_str() else {
        return Some(ApiError::bad_request("the Host header is not text"));
    };
    let hosts = &state.options.allowed_hosts;
    if !hosts.admits(host) {
        let name = host_name(host).unwrap_or_else(|| host.to_string());
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this server does not answer requests for host {name:?} (it answers {}): if \
                 that is how you reach it, start it with --allow-host {name} (a DNS-rebinding \
                 page would send its own name, which is why others are refused)",
                hosts.describe()
            ),
        ));
    }
    let navigation = matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == "/";
    if navigation {
        return None;
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let site = headers.get("sec-fetch-site").and_then(|s| s.to_str().ok());
    let scheme = if state.options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let same_origin_by_origin =
        origin.map(|o| o.eq_ignore_ascii_case(&format!("{scheme}://{host}")));
    // `same-site` is refused too: other ports of localhost (any local dev server) are the
    // same site as this one.
    let same_origin_by_fetch = site.map(|s| s == "same-origin" || s == "none");
    if same_origin_by_origin == Some(false) || same_origin_by_fetch == Some(false) {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused (Origin {}, Sec-Fetch-Site {}): only the server's \
                 own page, or a client that is not a browser, may call it",
                origin.unwrap_or("none"),
                site.unwrap_or("none")
            ),
        ));
    }
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let from_page = same_origin_by_origin == Some(true)
        || same_origin_by_fetch == Some(true)
        || headers.contains_key(PAGE_HEADER);
    if unsafe_method && headers.contains_key(header::COOKIE) && !from_page {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "a browser's POST needs the page's own headers (Origin or X-Clipsearch): refused \
             as a possible cross-site form",
        ));
    }
    None
}

/// The headers every response carries.
fn secure(headers: &mut HeaderMap) {
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}
