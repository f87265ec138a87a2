//! Incidents: `GET /v1/incidents` (open or all), `GET /v1/incidents/{id}` with its timeline, and
//! acknowledge/resolve by `POST`, which take the token like every write.

// Helpers return `Result<_, Response>` so handlers can `?`-style early-return an answer.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::respond::{bearer, body_rejection, error, parse_id, store_error, unauthorized};
use crate::incident::Actor;
use crate::intake::Intake;
use crate::store::{AlertAction, ListFilter};

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list_incidents(
    State(intake): State<Intake>,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = match q.status.as_deref() {
        None | Some("open") => ListFilter::Open,
        Some("all") => ListFilter::All,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("status {other:?} is not open or all"),
                vec![],
            )
        }
    };
    match intake
        .store
        .incidents(filter, q.limit.unwrap_or(100).min(10_000))
        .await
    {
        Ok(list) => Json(json!({ "incidents": list })).into_response(),
        Err(e) => store_error(e),
    }
}

pub(super) async fn show_incident(
    State(intake): State<Intake>,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match intake.store.incident(id).await {
        Ok(Some((incident, timeline))) => {
            Json(json!({ "incident": incident, "timeline": timeline })).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("incident #{id} not found"),
            vec![],
        ),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ByBody {
    by: Option<String>,
    via: Option<String>,
}

async fn transition(
    intake: Intake,
    headers: HeaderMap,
    id: String,
    body: Result<Bytes, BytesRejection>,
    action: AlertAction,
) -> Response {
    if !intake.token_ok(bearer(&headers)) {
        return unauthorized();
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_rejection(r),
    };
    let by: ByBody = if body.iter().all(u8::is_ascii_whitespace) {
        ByBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("malformed JSON: {e}"),
                    vec![],
                )
            }
        }
    };
    let via = match by.via.as_deref() {
        None => "http",
        Some("cli") => "cli",
        Some(_) => "http",
    };
    let actor = Actor::new(by.by.unwrap_or_else(|| "api".into()), via);
    let result = if action == AlertAction::Resolve {
        intake.store.resolve(id, actor).await
    } else {
        intake.store.acknowledge(id, actor).await
    };
    match result {
        Ok((incident, changed)) => (
            StatusCode::OK,
            Json(json!({ "incident_id": incident.id, "status": incident.status, "changed": changed, "incident": incident })),
        )
            .into_response(),
        Err(e) => store_error(e),
    }
}

pub(super) async fn acknowledge(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    transition(intake, headers, id, body, AlertAction::Acknowledge).await
}

pub(super) async fn resolve(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    transition(intake, headers, id, body, AlertAction::Resolve).await
}
