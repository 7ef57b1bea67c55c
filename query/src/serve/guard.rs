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

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::ApiError;
use super::AppState;

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

/// The `Host` values a server answers.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    bind: IpAddr,
    /// Lower-cased names from `--allow-host`; one that starts with `.` admits its subdomains.
    names: Vec<String>,
    /// `--allow-host '*'`: no check (behind a reverse proxy that does its own).
    any: bool,
}

impl AllowedHosts {
    pub fn new(bind: IpAddr, allow: &[String]) -> Self {
        let names: Vec<String> = allow
            .iter()
            .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        AllowedHosts {
            bind,
            any: names.iter().any(|n| n == "*"),
            names,
        }
    }

    /// Whether a request whose `Host` header is `host` (`name[:port]`) is for this server.
    pub fn admits(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(name) = host_name(host) else {
            return false;
        };
        if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse() {
            let ip: IpAddr = ip;
            return if self.bind.is_unspecified() {
                // Every address of the machine; an address cannot be rebound, so any will do.
                true
            } else if self.bind.is_loopback() {
                ip.is_loopback()
            } else {
                ip == self.bind
            };
        }
        if name == "localhost" && (self.bind.is_loopback() || self.bind.is_unspecified()) {
            return true;
        }
        self.names
            .iter()
            .any(|n| *n == name || (n.starts_with('.') && name.ends_with(n.as_str())))
    }

    /// What the server answers, for the refusal's message.
    fn describe(&self) -> String {
        let mut known = if self.bind.is_unspecified() {
            vec![
                "localhost".to_string(),
                "this machine's addresses".to_string(),
            ]
        } else if self.bind.is_loopback() {
            vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
        } else {
            vec![bracketed(self.bind)]
        };
        known.extend(self.names.iter().cloned());
        known.join(", ")
    }
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The host part of a `Host` header, lower-cased, without its port; `None` if it is no valid
/// authority (or carries user information, which a `Host` never does).
fn host_name(host: &str) -> Option<String> {
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    let port = &authority.as_str()[authority.host().len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok());
    if authority.as_str().contains('@') || !port_ok {
        return None;
    }
    Some(authority.host().to_ascii_lowercase())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bind: &str, allow: &[&str]) -> AllowedHosts {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(bind.parse().unwrap(), &allow)
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_only() {
        let h = hosts("127.0.0.1", &[]);
        for ok in [
            "localhost",
            "localhost:7878",
            "LocalHost:1",
            "127.0.0.1",
            "127.0.0.1:7878",
            "[::1]:7878",
            "[::1]",
        ] {
            assert!(h.admits(ok), "{ok}");
        }
        for refused in [
            "evil.example.com",
            "evil.example.com:7878",
            "localhost.evil.com",
            "evil.localhost",
            "192.168.1.5:7878",
            "",
            "a b",
            "user@localhost",
            "localhost:notaport",
        ] {
            assert!(!h.admits(refused), "{refused}");
        }
    }

    #[test]
    fn names_can_be_allowed_and_the_check_turned_off() {
        let h = hosts("127.0.0.1", &["photos.lan", ".home.arpa"]);
        assert!(h.admits("Photos.LAN:7878"));
        assert!(h.admits("nas.home.arpa"));
        assert!(!h.admits("home.arpa.evil.com"));
        assert!(!h.admits("evil.example.com"));
        assert!(hosts("127.0.0.1", &["*"]).admits("anything.example"));
    }

    #[test]
    fn other_binds_answer_their_address() {
        let h = hosts("192.168.1.5", &[]);
        assert!(h.admits("192.168.1.5:7878"));
        assert!(!h.admits("192.168.1.6:7878"));
        assert!(!h.admits("localhost"));
        assert!(!h.admits("evil.example.com"));
        let every = hosts("0.0.0.0", &[]);
        assert!(every.admits("10.1.2.3:7878"));
        assert!(every.admits("[fe80::1]:7878"));
        assert!(every.admits("localhost:7878"));
        assert!(!every.admits("evil.example.com:7878"));
        assert!(hosts("::", &[]).admits("192.168.1.5"));
    }
}
