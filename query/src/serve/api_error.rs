//! An error as the API reports it: `{"error": "..."}` with a status that fits, from the
//! query crate's errors and axum's rejections. A leaf: the handlers, the guard and the token
//! check all answer with it.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::Error;

/// An error as the API reports it.
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Parse(_) => StatusCode::BAD_REQUEST,
            Error::NoMatch(_) => StatusCode::OK,
            Error::NoMetadata(_) => StatusCode::CONFLICT,
            Error::EmptyIndex(_) | Error::EmptyCollection(_) | Error::NoIndex(_) => {
                StatusCode::NOT_FOUND
            }
            Error::WrongModel { .. } => StatusCode::CONFLICT,
            Error::Refused(_) | Error::Server(_) | Error::Watch(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::NotPublishedYet(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Engine(clipsearch::Error::Image { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Engine(clipsearch::Error::UnsupportedFormat { .. }) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<clipsearch::Error> for ApiError {
    fn from(e: clipsearch::Error) -> Self {
        Error::Engine(e).into()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(format!("{}: ids are whole numbers", e.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                status,
                "the upload is larger than the server's --max-upload-mb",
            );
        }
        ApiError::new(status, e.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::new(e.status(), e.body_text())
    }
}
