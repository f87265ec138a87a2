//! Silence endpoints: add a runtime silence, list silences (runtime and the config's maintenance
//! windows), expire one early. Silences are kept in SQLite (`crate::store::silences`); the
//! escalation engine reads them in its next pass (each write here commits and so wakes it).
//!
//! Writes need the write token (401 otherwise); a silence that can never be valid (bad matcher,
//! no condition, a window that ends before it starts or is already over) is 400 with a message
//! that says what is wrong.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::respond::{authorized_body, error, store_error};
use crate::config::parse_duration;
use crate::intake::Intake;
use crate::silence::{Matcher, Silence, SilenceId};
use crate::store::StoreError;

/// How long ended silences stay in `GET /v1/silences` by default.
const RECENT: chrono::Duration = chrono::Duration::hours(24);

/// The body of `POST /v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    service: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    /// RFC 3339, or local `YYYY-MM-DDTHH:MM` in `daemon.time_zone`; default now.
    starts_at: Option<String>,
    /// RFC 3339 or local; give this or `duration`.
    ends_at: Option<String>,
    /// A duration such as `2h` (from `starts_at`); give this or `ends_at`.
    duration: Option<String>,
    /// Why nobody should be paged; required, but checked with the other fields (a missing one is
    /// a named requirement, not "malformed JSON").
    #[serde(default)]
    comment: String,
    created_by: Option<String>,
}

/// When a silence ends: at a time, or a duration after it starts.
enum End {
    At(DateTime<Utc>),
    After(chrono::Duration),
}

fn bad(message: impl Into<String>, errors: Vec<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message, errors)
}

/// `POST /v1/silences`: `{"service":"db","matchers":["env=prod"],"duration":"2h","comment":"..."}`.
pub async fn add(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: NewSilence = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("malformed JSON: {e}"), vec![]),
    };
    let tz = intake.config.borrow().daemon.time_zone;
    let mut errors = Vec::new();
    let mut matchers = Vec::new();
    for m in &req.matchers {
        match Matcher::parse(m) {
            Ok(m) => matchers.push(m),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let starts = match req
        .starts_at
        .as_deref()
        .map(|s| crate::schedule::parse_time(s, tz))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            errors.push(format!("starts_at: {e}"));
            None
        }
    };
    let end = match (req.ends_at.as_deref(), req.duration.as_deref()) {
        (Some(_), Some(_)) => {
            errors.push("give ends_at or duration, not both".into());
            None
        }
        (None, None) => {
            errors.push("ends_at or duration is required (e.g. \"duration\": \"2h\")".into());
            None
        }
        (Some(t), None) => match crate::schedule::parse_time(t, tz) {
            Ok(t) => Some(End::At(t)),
            Err(e) => {
                errors.push(format!("ends_at: {e}"));
                None
            }
        },
        (None, Some(d)) => match parse_duration(d) {
            Ok(d) if !d.is_zero() => Some(End::After(crate::clock::delta(d))),
            Ok(_) => {
                errors.push(format!(
                    "duration: {d:?} is not a positive duration such as \"2h\" or \"30m\""
                ));
                None
            }
            Err(e) => {
                errors.push(format!("duration: {e}"));
                None
            }
        },
    };
    if req.comment.trim().is_empty() {
        errors.push("comment is required: say why nobody should be paged".into());
    }
    let Some(end) = end else {
        return bad("invalid silence", errors);
    };
    if !errors.is_empty() {
        return bad("invalid silence", errors);
    }
    let (service, comment, by) = (
        req.service,
        req.comment.trim().to_string(),
        req.created_by.unwrap_or_else(|| "api".into()),
    );
    let result = intake
        .store
        .add_silence(move |now| {
            let starts_at = starts.unwrap_or(now);
            let ends_at = match end {
                End::At(t) => t,
                End::After(d) => crate::clock::add_signed(starts_at, d),
            };
            if ends_at <= now {
                return Err(StoreError::Invalid(format!(
                    "the silence would already be over (ends {ends_at})"
                )));
            }
            let mut s = Silence::new(
                SilenceId::Runtime(0),
                service,
                matchers,
                starts_at,
                ends_at,
                comment,
            )
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
            s.created_by = Some(by);
            Ok(s)
        })
        .await;
    match result {
        Ok(s) => {
            tracing::info!(silence = %s.silence.id, until = %s.silence.ends_at, "silence added");
            (StatusCode::CREATED, Json(s)).into_response()
        }
        Err(StoreError::Invalid(m)) => bad("invalid silence", vec![m]),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Keep silences that ended up to this long ago (default 24h).
    recent: Option<String>,
}

/// `GET /v1/silences[?recent=24h]`: runtime silences and config windows that are pending,
/// active, or ended within `recent`; runtime ones newest first, then the config's.
pub async fn list(State(intake): State<Intake>, Query(q): Query<ListQuery>) -> Response {
    let recent = match q.recent.as_deref().map(parse_duration) {
        None => RECENT,
        Some(Ok(d)) => crate::clock::delta(d),
        Some(Err(e)) => return bad(format!("recent: {e}"), vec![]),
    };
    let config = intake.config.borrow().clone();
    let result = intake.store.silences(recent, config).await;
    match result {
        Ok(list) => Json(json!({ "silences": list })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireBody {
    by: Option<String>,
}

/// `POST /v1/silences/{id}/expire` and `DELETE /v1/silences/{id}`: end a runtime silence now.
/// Incidents it held page in the engine's next pass. Config windows cannot be expired here
/// (409): the config is their source of truth.
pub async fn expire(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let by: ExpireBody = if body.iter().all(u8::is_ascii_whitespace) {
        ExpireBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return bad(format!("malformed JSON: {e}"), vec![]),
        }
    };
    let Some(n) = SilenceId::parse_runtime(&id) else {
        if intake
            .config
            .borrow()
            .silences
            .iter()
            .any(|s| s.id == SilenceId::Config(id.clone()))
        {
            return error(
                StatusCode::CONFLICT,
                format!("{id:?} is a maintenance window from the config; edit the config and reload to change it"),
                vec![],
            );
        }
        return error(StatusCode::NOT_FOUND, format!("no silence {id:?}"), vec![]);
    };
    let who = by.by.unwrap_or_else(|| "api".into());
    match intake.store.expire_silence(n, who).await {
        Ok(Some((s, changed))) => {
            if changed {
                tracing::info!(silence = %s.silence.id, "silence expired");
            }
            Json(json!({ "silence": s, "changed": changed })).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no silence #{n}"), vec![]),
        Err(e) => store_error(e),
    }
}

/// `DELETE /v1/silences/{id}`: the same as expiring it (silences are kept for the list).
pub async fn delete(
    state: State<Intake>,
    headers: HeaderMap,
    id: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    expire(state, headers, id, body).await
}
