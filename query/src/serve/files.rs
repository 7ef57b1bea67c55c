//! Thumbnails and originals, by index id only. A file is served only if it is in the catalog
//! under that id and its bytes still hash to the indexed content, so nothing outside the index
//! (a traversal, a symlink swapped in later, a file edited since) can come out.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use clipsearch::store::{content_hash, FileRecord};

use super::api::{no_id, with_searcher};
use super::api_error::ApiError;
use super::state::AppState;
use crate::searcher::{FileAt, Searcher};

/// The file's bytes, if they are still exactly what was indexed.
fn verified(path: &FsPath, rec: &FileRecord) -> Result<Vec<u8>, ApiError> {
    let changed = || {
        ApiError::new(
            StatusCode::GONE,
            "the file changed or disappeared since it was indexed: run `clipsearch index` again",
        )
    };
    let meta = std::fs::metadata(path).map_err(|_| changed())?;
    if !meta.is_file() || meta.len() != rec.size {
        return Err(changed());
    }
    let bytes = std::fs::read(path).map_err(|_| changed())?;
    if content_hash(&bytes) != rec.hash {
        return Err(changed());
    }
    Ok(bytes)
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file of `id`, if it is this machine's; another machine's file is named as such.
fn servable(
    searcher: &mut dyn Searcher,
    id: u64,
) -> Result<(std::path::PathBuf, clipsearch::store::FileRecord), ApiError> {
    match searcher.file(id)? {
        FileAt::Here(path, rec) => Ok((path, *rec)),
        FileAt::Elsewhere { source, path } => Err(ApiError::not_found(format!(
            "{source}:{path} lives on another machine: a server there shows it"
        ))),
        FileAt::Unknown => Err(no_id(id)),
    }
}

fn image_response(bytes: Vec<u8>, mime: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /thumb/{id}`: a JPEG no larger than the configured size, oriented as the original,
/// cached on disk beside the index by content (a moved file keeps its thumbnail).
pub(crate) async fn thumbnail(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    // Decoding is CPU work: it runs on the blocking pool (the searcher lock is not needed, but
    // holding it keeps thumbnail bursts from starving queries of the two cores).
    with_searcher(state, move |state, searcher| {
        let (path, rec) = servable(searcher, id)?;
        let size = state.options.thumbnail_size;
        let cached = state
            .thumbnails
            .join(format!("{}-{size}.jpg", hex(&rec.hash)));
        if let Ok(bytes) = std::fs::read(&cached) {
            return Ok(image_response(bytes, "image/jpeg"));
        }
        let bytes = verified(&path, &rec)?;
        let rgb = clipsearch::preprocess::decode::decode_bytes(&path, &bytes)?;
        // Longest side `size` (never enlarged), aspect kept.
        let (w, h) = rgb.dimensions();
        let long = w.max(h).max(size);
        let thumb =
            image::imageops::thumbnail(&rgb, (w * size / long).max(1), (h * size / long).max(1));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
            .encode_image(&thumb)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        // Best effort: a cache that cannot be written costs only time.
        if std::fs::create_dir_all(&state.thumbnails).is_ok() {
            let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &out).is_ok() {
                let _ = std::fs::rename(&tmp, &cached);
            }
        }
        Ok(image_response(out, "image/jpeg"))
    })
    .await
}

/// `GET /image/{id}`: the original file.
pub(crate) async fn original(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    with_searcher(state, move |_, searcher| {
        let (path, rec) = servable(searcher, id)?;
        let bytes = verified(&path, &rec)?;
        let mime = match image::guess_format(&bytes) {
            Ok(image::ImageFormat::Jpeg) => "image/jpeg",
            Ok(image::ImageFormat::Png) => "image/png",
            Ok(image::ImageFormat::WebP) => "image/webp",
            Ok(image::ImageFormat::Gif) => "image/gif",
            Ok(image::ImageFormat::Bmp) => "image/bmp",
            Ok(image::ImageFormat::Tiff) => "image/tiff",
            _ if bytes.starts_with(&[0xFF, 0x0A])
                || bytes.get(4..12) == Some(b"JXL \r\n\x87\n") =>
            {
                "image/jxl"
            }
            _ => "application/octet-stream",
        };
        Ok(image_response(bytes, mime))
    })
    .await
}
