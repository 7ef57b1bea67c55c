//! The JSON API: every handler answers JSON, errors included (`{"error": "..."}` with a status
//! that fits), and runs model or store work on the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) use super::api_error::ApiError;
use super::state::AppState;
use crate::error::Error;
use crate::results::{Match, SearchOptions};
use crate::searcher::Searcher;
use crate::{dupes, expr};
use clipsearch::metadata::filter::KEYS;
use clipsearch::metadata::{Filter, SortOrder};

/// Most results one request may ask for.
const MAX_RESULTS: usize = 1000;

/// Runs `f` on the blocking pool with the searcher locked (a panic there poisons nothing that
/// matters: the searcher holds caches only, so a poisoned lock is taken over).
pub(crate) async fn with_searcher<T: Send + 'static>(
    state: Arc<AppState>,
    f: impl FnOnce(&AppState, &mut dyn Searcher) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut searcher = state
            .searcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A newer view (an index run beside the server published one) is picked up here: one
        // small file read per request.
        if let Err(e) = searcher.refresh() {
            tracing::warn!("keeping the current view: {e}");
        }
        f(&state, searcher.as_mut())
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))?
}

pub(crate) fn no_id(id: u64) -> ApiError {
    ApiError::not_found(format!("no image with id {id} in the index"))
}

/// The stored embedding of an indexed file, by its id.
fn vector_of(searcher: &dyn Searcher, id: u64) -> Result<Vec<f32>, ApiError> {
    searcher.vector_of(id)?.ok_or_else(|| no_id(id))
}

/// Results as the API gives them: a shared collection's results name their machine
/// (`source`), and only this machine's files have a thumbnail and an image here.
fn results(hits: Vec<Match>, searcher: &dyn Searcher) -> Value {
    let list: Vec<Value> = hits
        .into_iter()
        .map(|m| {
            let here = searcher.serves(&m);
            let mut v = json!({
                "id": m.id,
                "path": m.path.to_string_lossy(),
                "raw": m.raw.as_ref().map(|r| r.to_string_lossy()),
                "score": m.score,
                "taken": m.taken,
                "place": m.place,
                "camera": m.camera,
                "thumbnail": here.then(|| format!("/thumb/{}", m.id)),
                "image": here.then(|| format!("/image/{}", m.id)),
            });
            if let Some(source) = &m.source {
                v["source"] = json!(source);
            }
            v
        })
        .collect();
    json!({ "results": list })
}

/// Results, or no results with the reason when the filters keep no file (a search, not a
/// failure: status 200).
fn answer(
    found: Result<Vec<Match>, Error>,
    searcher: &dyn Searcher,
) -> Result<Json<Value>, ApiError> {
    match found {
        Ok(hits) => Ok(Json(results(hits, searcher))),
        Err(Error::NoMatch(why)) => Ok(Json(
            json!({ "results": [], "message": format!("no indexed file matches {why}") }),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The filter and order parameters every query endpoint takes: `after`, `before`, `camera`,
/// `place`, `near`, `format` and `sort`, as on the command line.
fn filters(raw: Option<&str>) -> Result<(Filter, Option<SortOrder>), ApiError> {
    let mut filter = Filter::default();
    let mut sort = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k == "sort" {
            sort = Some(
                v.parse()
                    .map_err(|e: clipsearch::metadata::filter::FilterError| {
                        ApiError::bad_request(e.to_string())
                    })?,
            );
        } else if KEYS.contains(&k.as_ref()) && !v.trim().is_empty() {
            filter
                .set(&k, &v)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
    }
    Ok((filter, sort))
}

fn count(n: Option<usize>) -> usize {
    n.unwrap_or(24).clamp(1, MAX_RESULTS)
}

#[derive(Deserialize)]
pub(crate) struct SearchParams {
    q: Option<String>,
    n: Option<usize>,
    threshold: Option<f32>,
}

/// `GET /api/search?q=TEXT&n=K[&threshold=T][&after=..&before=..&camera=..&place=..&near=..
/// &format=..&sort=..]`; the filters may also be written inline in `q` (`dog after:2023`), and
/// `q` may be filters alone (files listed by date).
pub(crate) async fn search(
    State(state): State<Arc<AppState>>,
    params: Result<Query<SearchParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let (mut filter, mut sort) = filters(raw.as_deref())?;
    let text = expr::extract_inline(p.q.as_deref().unwrap_or(""), &mut filter, &mut sort)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if text.is_empty() && filter.is_empty() {
        return Err(ApiError::bad_request(
            "give the text to search for as ?q=... (or filters: after, before, camera, place, \
             near, format)",
        ));
    }
    let opts = SearchOptions {
        top: count(p.n),
        threshold: p.threshold,
        under: None,
        filter,
        sort: sort.unwrap_or_default(),
    };
    with_searcher(state, move |_, searcher| {
        if text.is_empty() {
            let listed = searcher.list(&opts)?;
            return answer(Ok(listed), searcher);
        }
        let v = searcher.embed_text(&text)?;
        answer(searcher.search(&v, &opts), searcher)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TermBody {
    text: Option<String>,
    id: Option<u64>,
    #[serde(default = "one")]
    weight: f32,
}

fn one() -> f32 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    terms: Vec<TermBody>,
    n: Option<usize>,
    threshold: Option<f32>,
}

/// `POST /api/query` with `{"terms": [{"text": "beach"}, {"id": 42, "weight": -0.5}], "n": 10}`:
/// the weighted sum of texts and indexed images, renormalised.
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    body: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    if body.terms.is_empty() {
        return Err(ApiError::bad_request("`terms` is empty"));
    }
    let (filter, sort) = filters(raw.as_deref())?;
    let opts = SearchOptions {
        top: count(body.n),
        threshold: body.threshold,
        under: None,
        filter,
        sort: sort.unwrap_or_default(),
    };
    with_searcher(state, move |_, searcher| {
        let mut parts = Vec::new();
        for t in &body.terms {
            if !t.weight.is_finite() {
                return Err(ApiError::bad_request("a weight must be a finite number"));
            }
            let v = match (&t.text, t.id) {
                (Some(text), None) if !text.trim().is_empty() => searcher.embed_text(text)?,
                (None, Some(id)) => vector_of(searcher, id)?,
                _ => {
                    return Err(ApiError::bad_request(
                        "each term needs exactly one of a non-empty `text` or an `id`",
                    ))
                }
            };
            parts.push((t.weight, v));
        }
        let v = expr::combine(&parts);
        if v.iter().all(|x| *x == 0.0) {
            return Err(ApiError::bad_request("the terms cancel out"));
        }
        answer(searcher.search(&v, &opts), searcher)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct CountParams {
    n: Option<usize>,
}

/// `GET /api/similar/{id}?n=K`: the images nearest to an indexed one (itself left out).
pub(crate) async fn similar_to_id(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
    params: Result<Query<CountParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let Query(p) = params?;
    let n = count(p.n);
    let (filter, sort) = filters(raw.as_deref())?;
    with_searcher(state, move |_, searcher| {
        let v = vector_of(searcher, id)?;
        let opts = SearchOptions {
            top: n + 1,
            filter,
            sort: sort.unwrap_or_default(),
            ..Default::default()
        };
        let found = searcher.search(&v, &opts).map(|mut hits| {
            hits.retain(|m| m.id != id);
            hits.truncate(n);
            hits
        });
        answer(found, searcher)
    })
    .await
}

/// `GET /api/info/{id}`: everything the index holds for one file.
pub(crate) async fn info(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    with_searcher(state, move |_, searcher| {
        Ok(Json(searcher.describe(id)?.ok_or_else(|| no_id(id))?))
    })
    .await
}

/// `POST /api/similar?n=K` with an image file as the body: reverse lookup of an upload.
pub(crate) async fn similar_to_upload(
    State(state): State<Arc<AppState>>,
    params: Result<Query<CountParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let (filter, sort) = filters(raw.as_deref())?;
    let body = body?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "send the image file as the request body",
        ));
    }
    let opts = SearchOptions {
        top: count(p.n),
        filter,
        sort: sort.unwrap_or_default(),
        ..Default::default()
    };
    with_searcher(state, move |_, searcher| {
        let v = searcher.embed_image_bytes(&PathBuf::from("upload"), &body)?;
        answer(searcher.search(&v, &opts), searcher)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct DupesParams {
    threshold: Option<f32>,
}

/// `GET /api/dupes?threshold=T`: groups of near-duplicates, largest first.
pub(crate) async fn dupes(
    State(state): State<Arc<AppState>>,
    params: Result<Query<DupesParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let (filter, _) = filters(raw.as_deref())?;
    let opts = SearchOptions {
        filter,
        ..Default::default()
    };
    let threshold = p.threshold.unwrap_or(dupes::DEFAULT_THRESHOLD);
    if !(-1.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad_request(
            "threshold is a cosine similarity, -1 to 1",
        ));
    }
    with_searcher(state, move |_, searcher| {
        let groups: Vec<Value> = searcher
            .groups(threshold, &opts)?
            .into_iter()
            .map(|g| results(g, searcher)["results"].clone())
            .collect();
        Ok(Json(json!({ "threshold": threshold, "groups": groups })))
    })
    .await
}

/// `GET /api/stats`
pub(crate) async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    with_searcher(state, move |_, searcher| Ok(Json(searcher.stats()?))).await
}

/// `GET /`: the search page (three files built in: no build step, no network; script and
/// style are files of their own so that the CSP needs no `'unsafe-inline'`). `/?token=T`
/// first moves the token into a cookie.
pub(crate) async fn page(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(login) = super::token::login(&state, &req) {
        return login;
    }
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(include_str!("page.html")),
    )
        .into_response()
}

/// `GET /page.js`
pub(crate) async fn page_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", include_str!("page.js"))
}

/// `GET /page.css`
pub(crate) async fn page_style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("page.css"))
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see GET / for the page, /api/search?q=... for search)")
}

pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
