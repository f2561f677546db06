//! `ApiError` and the one place errors become HTTP responses.
//!
//! Every error leaves as `{"error": "..."}` JSON with the documented status;
//! a refused mutation adds `id`, `status` and `currentVersion`. The match on
//! each enum has no catch-all arm, so a new variant forces a decision.

use std::convert::Infallible;

use serde_json::json;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::reply::Response;
use warp::Reply;

use crate::memory::MemoryError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("rate limit exceeded")]
    RateLimited { retry_after_ms: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl warp::reject::Reject for ApiError {}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn message(status: StatusCode, msg: impl Into<String>) -> Response {
    json_response(status, json!({ "error": msg.into() }))
}

impl ApiError {
    /// Render as a response.
    pub fn to_response(&self) -> Response {
        match self {
            ApiError::BadRequest(m) => message(StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => {
                let mut r = message(StatusCode::UNAUTHORIZED, m);
                r.headers_mut().insert(
                    "www-authenticate",
                    warp::http::HeaderValue::from_static("Bearer"),
                );
                r
            }
            ApiError::Forbidden(m) => message(StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => message(StatusCode::NOT_FOUND, m),
            ApiError::PayloadTooLarge(m) => message(StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::RateLimited { retry_after_ms } => {
                let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
                let secs = retry_after_ms.saturating_sub(now).div_ceil(1000).max(1);
                let mut r = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({ "error": "rate limit exceeded", "retryAfter": retry_after_ms }),
                );
                if let Ok(v) = warp::http::HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert("retry-after", v);
                }
                r
            }
            ApiError::Unavailable(m) => message(StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Memory(e) => memory_response(e),
        }
    }
}

fn memory_response(e: &MemoryError) -> Response {
    if let MemoryError::RateLimited { retry_after_ms } = e {
        return ApiError::RateLimited {
            retry_after_ms: *retry_after_ms,
        }
        .to_response();
    }
    let (status, body) = e.status_and_body();
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

/// Turn an operation's result into a JSON response.
pub fn reply<T: serde::Serialize>(r: Result<T, MemoryError>) -> Result<Response, Infallible> {
    Ok(match r {
        Ok(v) => warp::reply::json(&v).into_response(),
        Err(e) => memory_response(&e),
    })
}

/// The rejection handler: routing failures and errors raised by filters.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    if let Some(p) = err.find::<super::edge::Preflight>() {
        return Ok(p.response());
    }
    if let Some(e) = err.find::<ApiError>() {
        return Ok(e.to_response());
    }
    if err.is_not_found() {
        return Ok(message(StatusCode::NOT_FOUND, "not found"));
    }
    if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(message(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ));
    }
    if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        return Ok(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    if let Some(e) = err.find::<warp::reject::InvalidQuery>() {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            format!("invalid query string: {e}"),
        ));
    }
    if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        return Ok(message(StatusCode::BAD_REQUEST, e.to_string()));
    }
    if let Some(e) = err.find::<warp::reject::MissingHeader>() {
        return Ok(message(StatusCode::BAD_REQUEST, e.to_string()));
    }
    if let Some(e) = err.find::<warp::reject::LengthRequired>() {
        return Ok(message(StatusCode::LENGTH_REQUIRED, e.to_string()));
    }
    if let Some(e) = err.find::<warp::reject::UnsupportedMediaType>() {
        return Ok(message(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()));
    }
    tracing::error!(rejection = ?err, "unhandled rejection");
    Ok(message(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}
