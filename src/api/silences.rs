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
use chrono_tz::Tz;
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

/// A silence request whose every field was read and checked; what is left to decide needs the
/// store's `now` (the default start, and whether it is already over).
struct Checked {
    service: Option<String>,
    matchers: Vec<Matcher>,
    starts: Option<DateTime<Utc>>,
    end: End,
    comment: String,
    created_by: String,
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
    let checked = match check(req, tz) {
        Ok(c) => c,
        Err(errors) => return bad("invalid silence", errors),
    };
    let result = intake
        .store
        .add_silence(move |now| build(checked, now))
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

/// Reads every field of `req` (times local to `tz`), reporting every problem, not the first.
fn check(req: NewSilence, tz: Tz) -> Result<Checked, Vec<String>> {
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
    let end = read_end(req.ends_at.as_deref(), req.duration.as_deref(), tz)
        .map_err(|e| errors.push(e))
        .ok();
    if req.comment.trim().is_empty() {
        errors.push("comment is required: say why nobody should be paged".into());
    }
    match end {
        Some(end) if errors.is_empty() => Ok(Checked {
            service: req.service,
            matchers,
            starts,
            end,
            comment: req.comment.trim().to_string(),
            // Cut like any actor's name: it is shown with the silence everywhere it is listed.
            created_by: crate::incident::Actor::new(
                req.created_by.unwrap_or_else(|| "api".into()),
                "api",
            )
            .who,
        }),
        _ => Err(errors),
    }
}

/// When the silence ends: exactly one of `ends_at` (local to `tz`) and a positive `duration`.
fn read_end(ends_at: Option<&str>, duration: Option<&str>, tz: Tz) -> Result<End, String> {
    match (ends_at, duration) {
        (Some(_), Some(_)) => Err("give ends_at or duration, not both".into()),
        (None, None) => Err("ends_at or duration is required (e.g. \"duration\": \"2h\")".into()),
        (Some(t), None) => crate::schedule::parse_time(t, tz)
            .map(End::At)
            .map_err(|e| format!("ends_at: {e}")),
        (None, Some(d)) => match parse_duration(d) {
            Ok(d) if !d.is_zero() => Ok(End::After(crate::clock::delta(d))),
            Ok(_) => Err(format!(
                "duration: {d:?} is not a positive duration such as \"2h\" or \"30m\""
            )),
            Err(e) => Err(format!("duration: {e}")),
        },
    }
}

/// The silence `c` asks for, seen at `now`: it starts now unless told otherwise, and one that
/// would already be over is refused rather than stored.
fn build(c: Checked, now: DateTime<Utc>) -> Result<Silence, StoreError> {
    let starts_at = c.starts.unwrap_or(now);
    let ends_at = match c.end {
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
        c.service,
        c.matchers,
        starts_at,
        ends_at,
        c.comment,
    )
    .map_err(|e| StoreError::Invalid(e.to_string()))?;
    s.created_by = Some(c.created_by);
    Ok(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> NewSilence {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_end_is_a_time_or_a_positive_duration_never_both() {
        let tz = chrono_tz::UTC;
        assert!(read_end(Some("2030-01-01T00:00"), Some("2h"), tz).is_err());
        assert!(read_end(None, None, tz).is_err());
        assert!(read_end(None, Some("0s"), tz).is_err());
        assert!(matches!(
            read_end(None, Some("2h"), tz),
            Ok(End::After(d)) if d == chrono::Duration::hours(2)
        ));
        assert!(matches!(
            read_end(Some("2030-01-01T00:00"), None, tz),
            Ok(End::At(_))
        ));
    }

    #[test]
    fn every_problem_of_a_request_is_reported_at_once() {
        let errors = check(
            request(r#"{"starts_at":"soon","comment":" "}"#),
            chrono_tz::UTC,
        )
        .err()
        .unwrap();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("starts_at:"), "{errors:?}");
        assert!(
            errors[1].contains("ends_at or duration is required"),
            "{errors:?}"
        );
        assert!(errors[2].starts_with("comment is required"), "{errors:?}");
    }

    /// A name from outside is cut like an actor's: it is listed with the silence everywhere.
    #[test]
    fn a_long_creator_name_is_cut() {
        let body = format!(
            r#"{{"service":"db","duration":"2h","comment":"upgrade","created_by":"{}"}}"#,
            "x".repeat(10_000)
        );
        let c = check(request(&body), chrono_tz::UTC).unwrap();
        let s = build(c, crate::clock::system_now()).unwrap();
        let by = s.created_by.unwrap();
        assert_eq!(
            by,
            format!("{}...", "x".repeat(crate::incident::ACTOR_MAX_CHARS))
        );
    }

    #[test]
    fn a_silence_starts_at_now_and_one_already_over_is_refused() {
        let now = crate::clock::system_now();
        let c = check(
            request(r#"{"service":"db","duration":"2h","comment":"upgrade"}"#),
            chrono_tz::UTC,
        )
        .unwrap();
        let s = build(c, now).unwrap();
        assert_eq!(s.starts_at, now);
        assert_eq!(s.ends_at, now + chrono::Duration::hours(2));
        assert_eq!(s.created_by.as_deref(), Some("api"));

        let past = check(
            request(r#"{"service":"db","ends_at":"2001-01-01T00:00","comment":"old"}"#),
            chrono_tz::UTC,
        )
        .unwrap();
        assert!(matches!(build(past, now), Err(StoreError::Invalid(_))));
    }
}
