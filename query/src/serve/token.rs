//! The server's token (`--token`): who may read the index, when it is not loopback-only.
//!
//! A token in a URL ends up in the browser's history, in proxies' logs and in `Referer`
//! headers, so the page never keeps it there: opening `/?token=T` once stores it in an
//! `HttpOnly; SameSite=Strict` cookie (`Secure` over TLS) and redirects to the same address
//! without it. The API then takes the cookie or `Authorization: Bearer T` (scripts); `?token=`
//! on an API URL still works for scripts written before, but nothing the server writes puts it
//! there. Tokens are compared through their SHA-256 digests, so that neither their bytes nor
//! their length show in response times, and they are never logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::api_error::ApiError;
use super::state::AppState;

/// The cookie the page's token is kept in.
const COOKIE: &str = "clipsearch_token";

/// Equal tokens, in time that depends on neither.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// What the cookie holds: the token's digest in hex, which any token (spaces, `;` and all)
/// turns into valid cookie characters; it opens the API as the token does.
fn cookie_value(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` in a request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_token(req: &Request) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// With `--token`, every API, thumbnail and image request must carry it.
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = state.options.token.as_deref() {
        let headers = req.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = bearer.is_some_and(|t| same(t, token))
            || cookie(headers, COOKIE).is_some_and(|c| same(c, &cookie_value(token)))
            || query_token(&req).is_some_and(|t| {
                let ok = same(&t, token);
                if ok {
                    warn_query_token_once();
                }
                ok
            });
        if !ok {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs its token: scripts send `Authorization: Bearer TOKEN`; in a \
                 browser, open the page once as /?token=TOKEN (it is then kept in a cookie)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn warn_query_token_once() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "a client sent the token in an API URL (?token=), where logs and histories keep it: \
             send `Authorization: Bearer` instead"
        );
    }
}

/// `GET /?token=T`: the token moves into a cookie and out of the address bar (a redirect to
/// the same address without it). `None` when the request has no `token` parameter.
pub(crate) fn login(state: &AppState, req: &Request) -> Option<Response> {
    let given = query_token(req)?;
    let rest: Vec<(String, String)> = form_urlencoded::parse(req.uri().query()?.as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut location = "/".to_string();
    if !rest.is_empty() {
        location.push('?');
        location.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish(),
        );
    }
    let Some(token) = state.options.token.as_deref() else {
        // No token needed: just a clean address.
        return Some(redirect(&location, None));
    };
    if !same(&given, token) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Html("<!doctype html><title>clipsearch</title><p>That is not this server's token. \
                      Open the page as <code>/?token=TOKEN</code> with the token it was started with."),
            )
                .into_response(),
        );
    }
    let secure = if state.options.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        cookie_value(token)
    );
    Some(redirect(&location, Some(cookie)))
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response();
    if let Some(c) = cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3creT"));
        assert!(!same("s3cret", "s3cret "));
        assert!(!same("", "s3cret"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; clipsearch_token=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1".parse().unwrap());
        h.append(header::COOKIE, "clipsearch_token=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&HeaderMap::new(), COOKIE), None);
    }
}
