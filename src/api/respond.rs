//! The answers every resource shares: pagerbox's JSON error, the bearer token, a body read
//! only after the token is checked, and a store error turned into the answer that tells the
//! sender whether to retry.

// Helpers return `Result<_, Response>` so handlers can `?`-style early-return an answer; the
// Response is built once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::incident::IncidentId;
use crate::intake::Intake;
use crate::store::StoreError;

/// A JSON error answer in pagerbox's own shape.
pub fn error(status: StatusCode, message: impl Into<String>, errors: Vec<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    (status, Json(body)).into_response()
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong token: send Authorization: Bearer <token>",
        vec![],
    )
}

pub fn body_rejection(r: BytesRejection) -> Response {
    let status = r.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body is too large".to_string()
    } else {
        r.body_text()
    };
    error(status, message, vec![])
}

/// The body of a write, once the token (if any) is checked: 401 before reading anything, then
/// 413 for an oversized body.
pub fn authorized_body(
    intake: &Intake,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Response> {
    if !intake.token_ok(bearer(headers)) {
        return Err(unauthorized());
    }
    body.map_err(body_rejection)
}

pub fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(id) => error(
            StatusCode::NOT_FOUND,
            format!("incident #{id} not found"),
            vec![],
        ),
        e if !e.is_retryable() => {
            // A fault of ours fails the same way every time: a 500 says so, where a 503 would
            // invite the sender to retry it forever. The store has logged and counted it.
            tracing::error!(error = %e, "intake request failed with a store fault");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not stored, internal error: {e}"),
                vec![],
            )
        }
        e => {
            tracing::error!(error = %e, "intake could not store an alert; sender told to retry");
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored, retry later: {e}"),
                vec![],
            );
            r.headers_mut()
                .insert("retry-after", "5".parse().expect("static header"));
            r
        }
    }
}

pub fn parse_id(id: &str) -> Result<IncidentId, Response> {
    id.trim_start_matches('#').parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not an incident id"),
            vec![],
        )
    })
}
