//! Heartbeat endpoints: pings (`POST /v1/heartbeats/{id}`, and `GET|POST
//! /v1/heartbeats/{id}/ping` for cron one-liners that can only GET) and the monitors' state.
//!
//! A ping is a write: it needs the bearer token when one is configured. Its body is read (within
//! the size limit) and ignored, so an Alertmanager webhook (the always-firing "Watchdog" alert)
//! can be pointed straight at it. The monitors themselves live in [`crate::heartbeat`].

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::respond::{authorized_body, error, store_error};
use crate::heartbeat;
use crate::intake::Intake;

/// Who pinged, for the timeline: the client's product name when it sends one.
fn sender(headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.chars().take(64).collect::<String>());
    match agent {
        Some(a) if !a.is_empty() => format!("http ({a})"),
        _ => "http".to_string(),
    }
}

/// `POST /v1/heartbeats/{id}` (and `/ping`): 202 once the ping is committed, 404 for an id not
/// configured, 503 when the store cannot take it (the sender pings again).
pub async fn ping(
    State(intake): State<Intake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = authorized_body(&intake, &headers, body) {
        return r;
    }
    let config = intake.config.borrow().clone();
    match heartbeat::ping(&intake.store, &config, &id, &sender(&headers)).await {
        Ok(p) => (StatusCode::ACCEPTED, Json(json!(p))).into_response(),
        Err(heartbeat::Error::Unknown(id)) => error(
            StatusCode::NOT_FOUND,
            format!("no heartbeat monitor {id:?} is configured"),
            vec![],
        ),
        Err(heartbeat::Error::Store(e)) => store_error(e),
    }
}

/// `GET /v1/heartbeats`: every configured monitor with its state.
pub async fn list(State(intake): State<Intake>) -> Response {
    let config = intake.config.borrow().clone();
    match heartbeat::list(&intake.store, config).await {
        Ok(list) => Json(json!({ "heartbeats": list })).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /v1/heartbeats/{id}`: one monitor's state.
pub async fn show(State(intake): State<Intake>, Path(id): Path<String>) -> Response {
    let config = intake.config.borrow().clone();
    match heartbeat::list(&intake.store, config).await {
        Ok(list) => match list.into_iter().find(|h| h.id == id) {
            Some(h) => Json(json!({ "heartbeat": h })).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                format!("no heartbeat monitor {id:?} is configured"),
                vec![],
            ),
        },
        Err(e) => store_error(e),
    }
}
