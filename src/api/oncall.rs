//! On-call endpoints: who is on call, a schedule's shifts (JSON or iCalendar), and runtime
//! overrides (list, add, delete). Overrides are stored in SQLite and take effect in the next
//! escalation pass.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::respond::{bearer, error, store_error, unauthorized};
use crate::escalation::engine::runtime_overrides;
use crate::intake::Intake;
use crate::schedule::{parse_date_or_time, parse_time, OverridesBySchedule};
use crate::store::overrides;

pub(crate) async fn current_overrides(intake: &Intake) -> Result<OverridesBySchedule, Response> {
    let config = intake.config.borrow().clone();
    intake
        .store
        .read(move |c, now| runtime_overrides(c, &config, now))
        .await
        .map_err(store_error)
}

/// `GET /v1/oncall`: for each schedule, who is on call now, from which layer or override, until
/// when, and who is next.
pub async fn oncall(State(intake): State<Intake>) -> Response {
    let config = intake.config.borrow().clone();
    let rt = match current_overrides(&intake).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let now = intake.store.now();
    let list: Vec<_> = config
        .schedules
        .iter()
        .map(|s| {
            let (current, next) = now_and_next(s, &rt, now);
            json!({ "schedule": s.id, "name": s.name, "time_zone": s.tz.name(), "on_call": current, "next": next })
        })
        .collect();
    Json(json!({ "at": now, "schedules": list })).into_response()
}

/// Who is on call in `s` at `now` and who follows when that stretch ends (the answer of
/// `GET /v1/oncall` and the status page). `None` where nobody is on call.
pub fn now_and_next(
    s: &crate::schedule::Schedule,
    rt: &OverridesBySchedule,
    now: chrono::DateTime<Utc>,
) -> (
    Option<crate::schedule::OnCall>,
    Option<crate::schedule::OnCall>,
) {
    let o = rt.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
    let current = s.on_call(now, o);
    let next = current
        .as_ref()
        .and_then(|c| c.until)
        .and_then(|t| s.on_call(t, o));
    (current, next)
}

#[derive(Debug, Deserialize)]
pub struct ShiftQuery {
    from: Option<String>,
    days: Option<u32>,
    format: Option<String>,
}

/// `GET /v1/schedules/{id}[?from=DATE&days=N&format=ics]`: the final shifts after layering and
/// overrides.
pub async fn schedule(
    State(intake): State<Intake>,
    Path(id): Path<String>,
    Query(q): Query<ShiftQuery>,
) -> Response {
    let config = intake.config.borrow().clone();
    let Some(s) = config.schedules.iter().find(|s| s.id == id) else {
        return error(StatusCode::NOT_FOUND, format!("no schedule {id:?}"), vec![]);
    };
    let rt = match current_overrides(&intake).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let from = match q
        .from
        .as_deref()
        .map(|f| parse_date_or_time(f, s.tz))
        .transpose()
    {
        Ok(f) => f.unwrap_or_else(|| intake.store.now()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), vec![]),
    };
    // Local calendar days, as `pagerbox schedule` counts them offline.
    let to = crate::schedule::local_days_after(s.tz, from, q.days.unwrap_or(14).clamp(1, 366))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let o = rt.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
    let shifts = s.shifts(from, to, o);
    if q.format.as_deref() == Some("ics") {
        return (
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            crate::schedule::to_ics(s, &shifts),
        )
            .into_response();
    }
    Json(json!({ "schedule": s.id, "name": s.name, "time_zone": s.tz.name(), "from": from, "until": to, "shifts": shifts })).into_response()
}

/// `GET /v1/schedules/{id}/overrides`: runtime overrides not yet ended.
pub async fn list_overrides(State(intake): State<Intake>, Path(id): Path<String>) -> Response {
    if !intake.config.borrow().schedules.iter().any(|s| s.id == id) {
        return error(StatusCode::NOT_FOUND, format!("no schedule {id:?}"), vec![]);
    }
    match intake
        .store
        .read(move |c, now| Ok(overrides::list(c, &id, now)?))
        .await
    {
        Ok(list) => Json(json!({ "overrides": list })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOverride {
    user: String,
    /// RFC 3339, or local `YYYY-MM-DDTHH:MM` in the schedule's zone; default now.
    from: Option<String>,
    until: String,
    by: Option<String>,
}

/// `POST /v1/schedules/{id}/overrides` with `{"user":..., "from":..., "until":...}`.
pub async fn add_override(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !intake.token_ok(bearer(&headers)) {
        return unauthorized();
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), r.body_text(), vec![]),
    };
    let req: NewOverride = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON: {e}"),
                vec![],
            )
        }
    };
    let config = intake.config.borrow().clone();
    let Some(s) = config.schedules.iter().find(|s| s.id == id) else {
        return error(StatusCode::NOT_FOUND, format!("no schedule {id:?}"), vec![]);
    };
    if config.user(&req.user).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown user {:?}", req.user),
            vec![],
        );
    }
    let from = match req.from.as_deref().map(|f| parse_time(f, s.tz)).transpose() {
        Ok(f) => f.unwrap_or_else(|| intake.store.now()),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("from: {e}"), vec![]),
    };
    let until = match parse_time(&req.until, s.tz) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("until: {e}"), vec![]),
    };
    // Compared as stored, to the millisecond: a span shorter than that is empty there.
    if until.timestamp_millis() <= from.timestamp_millis() {
        return error(
            StatusCode::BAD_REQUEST,
            "until must be after from (by a millisecond at least)",
            vec![],
        );
    }
    // Cut like any actor's name: it is shown on the schedule and in every ONCALL answer.
    let by = crate::incident::Actor::new(req.by.unwrap_or_else(|| "api".into()), "api").who;
    let (user, schedule) = (req.user.clone(), id.clone());
    match intake.store.call(move |c, now| Ok(overrides::add(c, &schedule, &user, from, until, &by, now)?)).await {
        Ok(oid) => (StatusCode::CREATED, Json(json!({ "id": oid, "schedule": id, "user": req.user, "from": from, "until": until }))).into_response(),
        Err(e) => store_error(e),
    }
}

/// `DELETE /v1/schedules/{id}/overrides/{oid}`.
pub async fn delete_override(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path((id, oid)): Path<(String, i64)>,
) -> Response {
    if !intake.token_ok(bearer(&headers)) {
        return unauthorized();
    }
    let schedule = id.clone();
    match intake
        .store
        .call(move |c, now| Ok(overrides::delete(c, &schedule, oid, "api", now)?))
        .await
    {
        Ok(true) => Json(json!({ "deleted": oid })).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("schedule {id:?} has no override {oid}"),
            vec![],
        ),
        Err(e) => store_error(e),
    }
}
