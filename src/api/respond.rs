//! The answers every resource shares: pagerbox's JSON error, the bearer token, a body read
//! only after the token is checked, a store error turned into the answer that tells the
//! sender whether to retry (in pagerbox's shape or a provider's), and the count of an accepted
//! write.

// Helpers return `Result<_, Response>` so handlers can `?`-style early-return an answer; the
// Response is built once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
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
    bearer_token(
        headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?,
    )
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive (RFC
/// 7235 §2.1): senders that write `bearer` are refused with a 401 otherwise, and most of them
/// give up on a 4xx, dropping the alert.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then_some(token)
}

pub fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong token: send Authorization: Bearer <token>",
        vec![],
    )
}

/// Why a request's body could not be had.
pub enum BodyFailure {
    /// Over the configured size: it will never be accepted (413).
    TooLarge,
    /// It did not arrive within the body timeout, or the connection failed while sending it.
    /// Nothing is wrong with the alert itself, so the answer must invite a retry (a 4xx would
    /// make Alertmanager and most webhook senders drop it).
    Unread(String),
}

impl From<BytesRejection> for BodyFailure {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BodyFailure::TooLarge
        } else {
            BodyFailure::Unread(r.body_text())
        }
    }
}

pub fn body_rejection(r: BytesRejection) -> Response {
    match BodyFailure::from(r) {
        BodyFailure::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is too large",
            vec![],
        ),
        BodyFailure::Unread(m) => retry_later(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("request body not received, retry: {m}"),
            vec![],
        )),
    }
}

/// Adds the `Retry-After` every retryable answer carries.
pub fn retry_later(mut r: Response) -> Response {
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    r
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
    if let StoreError::NotFound(id) = e {
        return error(
            StatusCode::NOT_FOUND,
            format!("incident #{id} not found"),
            vec![],
        );
    }
    store_failure(
        &e,
        "request",
        |e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not stored, internal error: {e}"),
                vec![],
            )
        },
        |e| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored, retry later: {e}"),
                vec![],
            )
        },
    )
}

/// The answer to a write the store could not commit, in the caller's own error shape, logged
/// with `what` was not stored. A fault of ours fails the same way every time, so it is answered
/// by `fault` (a 500: a 503 would invite the sender to retry it forever; the store has logged
/// and counted it). Anything else is answered by `retry` (503, or the provider's own "slow
/// down") with `Retry-After`, so every API tells its senders the same wait.
pub fn store_failure(
    e: &StoreError,
    what: &'static str,
    fault: impl FnOnce(&StoreError) -> Response,
    retry: impl FnOnce(&StoreError) -> Response,
) -> Response {
    if !e.is_retryable() {
        tracing::error!(error = %e, what, "intake could not store a write: store fault");
        return fault(e);
    }
    tracing::error!(error = %e, what, "intake could not store a write; sender told to retry");
    retry_later(retry(e))
}

/// How long a sender is asked to wait before retrying a write the store could not commit. The
/// conditions answered this way pass within seconds (a lock held past the store's 1-2 s busy
/// timeout, a write queue full for a moment); 5 s outlasts them, so the sender's retry is likely
/// to be stored, while its alert still pages within seconds. It is also the first backoff of the
/// box's own pages.
const RETRY_AFTER_SECONDS: &str = "5";

pub fn parse_id(id: &str) -> Result<IncidentId, Response> {
    id.trim_start_matches('#').parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not an incident id"),
            vec![],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for v in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret ",
            " Bearer s3cret",
        ] {
            assert_eq!(bearer_token(v), Some("s3cret"), "{v:?}");
        }
        for v in [
            "Bearer",
            "Bearer ",
            "Basic s3cret",
            "Bearers3cret",
            "s3cret",
            "",
        ] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
