//! The HTTP API (axum).
//!
//! Answers follow one rule, because Alertmanager and PagerDuty clients retry 5xx and 429 but
//! give up on 4xx: a body that will never be accepted gets 4xx with a JSON error saying what is
//! wrong; anything that may work later (store busy, disk full, I/O error) gets 503, or 429 on
//! the PagerDuty endpoints, where clients expect it. 202 means committed to disk.

// Helpers return `Result<_, Response>` so handlers can `?`-style early-return an answer; the
// Response is built once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::formats::{self, FormatError};
use super::{Intake, IntakeStats};
use crate::incident::{Actor, IncidentId};
use crate::metrics::{AlertOutcome as Counted, AlertSource};
use crate::store::{AlertAction, AlertOutcome, ListFilter, StoreError};

/// Builds the router with the body limit from config.
pub fn router(intake: Intake, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(super::metrics::serve))
        .route("/v1/alerts", post(own_alert))
        .route("/v2/enqueue", post(pagerduty_event))
        .route("/v2/change/enqueue", post(pagerduty_change))
        .route("/v1/integrations/alertmanager", post(alertmanager))
        .route("/v1/integrations/grafana", post(alertmanager))
        .route("/v1/incidents", get(list_incidents))
        .route("/v1/incidents/:id", get(show_incident))
        .route("/v1/incidents/:id/acknowledge", post(acknowledge))
        .route("/v1/incidents/:id/resolve", post(resolve))
        .route(
            "/v1/incidents/:id/report",
            get(super::reports::incident_report),
        )
        .route("/v1/stats", get(super::reports::stats))
        .route("/v1/oncall", get(super::oncall::oncall))
        .route("/v1/schedules/:id", get(super::oncall::schedule))
        .route(
            "/v1/schedules/:id/overrides",
            get(super::oncall::list_overrides).post(super::oncall::add_override),
        )
        .route(
            "/v1/schedules/:id/overrides/:oid",
            axum::routing::delete(super::oncall::delete_override),
        )
        .merge(super::opsgenie::routes())
        .merge(super::victorops::routes())
        .route(
            "/v1/silences",
            get(super::silences::list).post(super::silences::add),
        )
        .route(
            "/v1/silences/:id",
            axum::routing::delete(super::silences::delete),
        )
        .route("/v1/silences/:id/expire", post(super::silences::expire))
        .route("/v1/heartbeats", get(super::heartbeats::list))
        .route(
            "/v1/heartbeats/:id",
            get(super::heartbeats::show).post(super::heartbeats::ping),
        )
        .route(
            "/v1/heartbeats/:id/ping",
            get(super::heartbeats::ping).post(super::heartbeats::ping),
        )
        .route(
            "/v1/selftest",
            get(super::selftest::runs).post(super::selftest::run),
        )
        .fallback(not_found);
    // Test builds only: arm or disarm a fault point (see `crate::fault`).
    #[cfg(feature = "fault-injection")]
    let api = api.route("/v1/faults", post(faults));
    api.layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            intake.clone(),
            super::exposure::mask_unauthenticated,
        ))
        .layer(axum::middleware::from_fn_with_state(
            intake.clone(),
            super::guard::refuse_cross_site,
        ))
        .with_state(intake.clone())
        .merge(crate::status_page::router(intake))
}

/// `POST /v1/faults`: arms (or disarms) a fault point; only in `fault-injection` builds. Takes
/// the token like every write.
#[cfg(feature = "fault-injection")]
async fn faults(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match serde_json::from_slice::<crate::fault::FaultRequest>(&body) {
        Ok(r) if r.disarm => {
            crate::fault::disarm(&r.name);
            (StatusCode::OK, Json(json!({ "disarmed": r.name }))).into_response()
        }
        Ok(r) => {
            crate::fault::arm(&r.name, r.arming);
            (StatusCode::OK, Json(json!({ "armed": r.name }))).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string(), vec![]),
    }
}

/// A JSON error answer in pagerbox's own shape.
pub(super) fn error(
    status: StatusCode,
    message: impl Into<String>,
    errors: Vec<String>,
) -> Response {
    let mut body = json!({ "error": message.into() });
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    (status, Json(body)).into_response()
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub(super) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong token: send Authorization: Bearer <token>",
        vec![],
    )
}

fn body_rejection(r: BytesRejection) -> Response {
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
pub(super) fn authorized_body(
    intake: &Intake,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Response> {
    if !intake.token_ok(bearer(headers)) {
        return Err(unauthorized());
    }
    body.map_err(body_rejection)
}

/// Counts a refused alert request for `/metrics`: 401 as unauthorized, any other refusal (bad
/// body, too large) as rejected. Returns the answer unchanged.
fn refused(intake: &Intake, source: AlertSource, r: Response) -> Response {
    let outcome = if r.status() == StatusCode::UNAUTHORIZED {
        Counted::Unauthorized
    } else {
        Counted::Rejected
    };
    intake.metrics.alert(source, outcome);
    r
}

/// Counts `n` alerts the store could not take (a 404 for an unknown incident is not a failure).
fn count_store_error(intake: &Intake, source: AlertSource, e: &StoreError, n: u64) {
    if !matches!(e, StoreError::NotFound(_)) {
        intake.metrics.alerts(source, Counted::StoreFailure, n);
    }
}

fn format_error(stats: &IntakeStats, e: FormatError) -> Response {
    IntakeStats::bump(&stats.rejected);
    match e {
        FormatError::Json(m) => error(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {m}"),
            vec![],
        ),
        FormatError::Invalid(errs) => error(StatusCode::BAD_REQUEST, "invalid alert", errs),
    }
}

pub(super) fn store_error(stats: &IntakeStats, e: StoreError) -> Response {
    match e {
        StoreError::NotFound(id) => error(
            StatusCode::NOT_FOUND,
            format!("incident #{id} not found"),
            vec![],
        ),
        e if !e.is_retryable() => {
            IntakeStats::bump(&stats.store_failures);
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
            IntakeStats::bump(&stats.store_failures);
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

fn outcome_json(o: &AlertOutcome) -> Value {
    match o.incident() {
        Some(i) => json!({
            "incident_id": i.id,
            "dedup_key": i.dedup_key,
            "status": i.status,
            "alert_count": i.alert_count,
        }),
        None => json!({}),
    }
}

/// `GET /healthz`: 200 while pages can go out, 503 with the reasons when paging is impaired
/// (see [`crate::health`]); a channel down while others page is 200 "degraded".
async fn healthz(State(intake): State<Intake>) -> Response {
    let verdict = intake.health.verdict().await;
    let paging = intake.paging.as_ref().map(|p| p.borrow().clone());
    let channels = paging.as_ref().map(|p| p.channels()).unwrap_or_default();
    let outbox = intake
        .store
        .read(move |c, now| {
            let (n, oldest) = crate::store::outbox::depth(c, &channels)?;
            let sending = crate::store::outbox::oldest_sending(c)?;
            let nobody = crate::store::pages::nobody_reached(c)?;
            Ok((
                n,
                oldest.map(|t| (now - t).num_seconds()),
                sending.map(|t| (now - t).num_seconds()),
                nobody,
            ))
        })
        .await
        .ok();
    let faults = intake.store.faults().borrow().clone();
    let modem = intake.modem.as_ref().map(|m| {
        let h = m.borrow();
        json!({ "state": format!("{:?}", h.state).to_lowercase(), "reason": h.reason, "since": h.since })
    });
    let status = if verdict.impaired() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let store = verdict
        .problems
        .iter()
        .find_map(|p| match p {
            crate::health::Problem::StoreCannotWrite { error } => Some(error.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "ok".to_string());
    (
        status,
        Json(json!({
            "status": verdict.word(),
            "problems": verdict.problems,
            "degraded": verdict.degraded,
            "store": store,
            "store_faults": (faults.count > 0).then(|| json!({
                "count": faults.count,
                "last": faults.last.map(|f| json!({ "at": f.at, "caller": f.caller.to_string(), "error": f.error.to_string() })),
            })),
            "paging": paging.map(|p| json!({ "impaired": p.impaired(), "ready": p.ready, "down": p.down.iter().map(|(c, why)| json!({"channel": c, "reason": why})).collect::<Vec<_>>() })),
            "modem": modem,
            "standby": intake.health.standby.as_ref().map(|s| crate::standby::status_json(&s.borrow())),
            "outbox": outbox.as_ref().map(|(n, age, sending, _)| json!({ "pending": n, "oldest_seconds": age, "oldest_sending_seconds": sending })),
            // Open incidents whose paging reached nobody: the box works, but someone is not
            // being told about an alert.
            "nobody_paged": outbox.as_ref().map(|o| &o.3),
        })),
    )
        .into_response()
}

async fn own_alert(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return refused(&intake, AlertSource::Own, r),
    };
    let parsed = match formats::parse_own(&body) {
        Ok(p) => p,
        Err(e) => return refused(&intake, AlertSource::Own, format_error(&intake.stats, e)),
    };
    let input = intake.route(parsed, Actor::new("api", "http"));
    match intake.store.apply_alert(input).await {
        Ok(AlertOutcome::NotFound(key)) => {
            intake.metrics.alert(AlertSource::Own, Counted::Unmatched);
            error(
                StatusCode::NOT_FOUND,
                format!("no incident has dedup_key {key:?}"),
                vec![],
            )
        }
        Ok(o) => {
            IntakeStats::bump(&intake.stats.accepted);
            intake.metrics.alert(AlertSource::Own, Counted::of(&o));
            (StatusCode::ACCEPTED, Json(outcome_json(&o))).into_response()
        }
        Err(e) => {
            count_store_error(&intake, AlertSource::Own, &e, 1);
            store_error(&intake.stats, e)
        }
    }
}

fn pd_invalid(errors: Vec<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "status": "invalid event", "message": "Event object is invalid", "errors": errors })),
    )
        .into_response()
}

fn pd_throttle(e: &StoreError) -> Response {
    if !e.is_retryable() {
        tracing::error!(error = %e, "intake could not store a PagerDuty event: store fault");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "status": "internal error", "message": "The event was not stored because of an internal error.", "errors": [e.to_string()] })),
        )
            .into_response();
    }
    tracing::error!(error = %e, "intake could not store a PagerDuty event; sender told to retry");
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "status": "throttle event", "message": "Requests are arriving too quickly or the store is unavailable. Please retry later.", "errors": [e.to_string()] })),
    )
        .into_response();
    r.headers_mut()
        .insert("retry-after", "5".parse().expect("static header"));
    r
}

/// PagerDuty-style auth: a bearer token, or the token given as `routing_key`.
fn pd_authorized(intake: &Intake, headers: &HeaderMap, routing_key: Option<&str>) -> bool {
    intake.token.borrow().is_none()
        || intake.token_ok(bearer(headers))
        || intake.token_ok(routing_key)
}

/// Checks PagerDuty-style auth before the event is validated, so that a caller without the
/// token learns nothing about what a valid event looks like: the `routing_key` is read from the
/// raw JSON, whatever else the body holds.
fn pd_authorized_raw(intake: &Intake, headers: &HeaderMap, body: &[u8]) -> bool {
    if intake.token.borrow().is_none() || intake.token_ok(bearer(headers)) {
        return true;
    }
    let routing_key = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("routing_key")?.as_str().map(str::to_string));
    intake.token_ok(routing_key.as_deref()) && routing_key.is_some()
}

fn pd_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Response> {
    body.map_err(|r| {
        let status = r.status();
        (status, Json(json!({ "status": "invalid event", "message": if status == StatusCode::PAYLOAD_TOO_LARGE { "Request body is too large" } else { "Cannot read request body" }, "errors": [r.body_text()] }))).into_response()
    })
}

async fn pagerduty_event(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const SOURCE: AlertSource = AlertSource::Pagerduty;
    let body = match pd_body(body) {
        Ok(b) => b,
        Err(r) => return refused(&intake, SOURCE, r),
    };
    if !pd_authorized_raw(&intake, &headers, &body) {
        return refused(&intake, SOURCE, unauthorized());
    }
    let parsed = match formats::parse_pagerduty(&body) {
        Ok(p) => p,
        Err(FormatError::Json(m)) => {
            IntakeStats::bump(&intake.stats.rejected);
            return refused(
                &intake,
                SOURCE,
                pd_invalid(vec![format!("malformed JSON: {m}")]),
            );
        }
        Err(FormatError::Invalid(errs)) => {
            IntakeStats::bump(&intake.stats.rejected);
            return refused(&intake, SOURCE, pd_invalid(errs));
        }
    };
    if !pd_authorized(&intake, &headers, parsed.routing_key.as_deref()) {
        return refused(&intake, SOURCE, unauthorized());
    }
    let input = intake.route(parsed, Actor::new("pagerduty-events", "pagerduty"));
    let key = input.dedup_key();
    match intake.store.apply_alert(input).await {
        Ok(o) => {
            IntakeStats::bump(&intake.stats.accepted);
            intake.metrics.alert(SOURCE, Counted::of(&o));
            let dedup_key = o.incident().map(|i| i.dedup_key.clone()).unwrap_or(key);
            (
                StatusCode::ACCEPTED,
                Json(json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key })),
            )
                .into_response()
        }
        Err(e) => {
            IntakeStats::bump(&intake.stats.store_failures);
            count_store_error(&intake, SOURCE, &e, 1);
            pd_throttle(&e)
        }
    }
}

async fn pagerduty_change(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const SOURCE: AlertSource = AlertSource::PagerdutyChange;
    let body = match pd_body(body) {
        Ok(b) => b,
        Err(r) => return refused(&intake, SOURCE, r),
    };
    if !pd_authorized_raw(&intake, &headers, &body) {
        return refused(&intake, SOURCE, unauthorized());
    }
    let (routing_key, change) = match formats::parse_pagerduty_change(&body) {
        Ok(x) => x,
        Err(FormatError::Json(m)) => {
            return refused(
                &intake,
                SOURCE,
                pd_invalid(vec![format!("malformed JSON: {m}")]),
            )
        }
        Err(FormatError::Invalid(errs)) => return refused(&intake, SOURCE, pd_invalid(errs)),
    };
    if !pd_authorized(&intake, &headers, routing_key.as_deref()) {
        return refused(&intake, SOURCE, unauthorized());
    }
    match intake.store.record_change(change).await {
        Ok(_) => {
            intake.metrics.alert(SOURCE, Counted::Accepted);
            (
                StatusCode::ACCEPTED,
                Json(json!({ "status": "success", "message": "Change event processed" })),
            )
                .into_response()
        }
        Err(e) => {
            count_store_error(&intake, SOURCE, &e, 1);
            pd_throttle(&e)
        }
    }
}

async fn alertmanager(
    State(intake): State<Intake>,
    path: axum::extract::MatchedPath,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Grafana posts the Alertmanager webhook format to its own path; counted apart.
    let source = if path.as_str().ends_with("/grafana") {
        AlertSource::Grafana
    } else {
        AlertSource::Alertmanager
    };
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return refused(&intake, source, r),
    };
    let alerts = match formats::parse_alertmanager(&body) {
        Ok(a) => a,
        Err(e) => return refused(&intake, source, format_error(&intake.stats, e)),
    };
    let inputs: Vec<_> = alerts
        .into_iter()
        .map(|a| intake.route(a, Actor::new("alertmanager", "alertmanager")))
        .collect();
    let n = inputs.len() as u64;
    // One transaction for the whole group: Alertmanager retries the group, so it must be stored
    // all or nothing.
    match intake.store.apply_alerts(inputs).await {
        Ok(outcomes) => {
            intake
                .stats
                .accepted
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            for o in &outcomes {
                intake.metrics.alert(source, Counted::of(o));
            }
            let list: Vec<Value> = outcomes.iter().map(outcome_json).collect();
            (
                StatusCode::ACCEPTED,
                Json(json!({ "status": "success", "alerts": list })),
            )
                .into_response()
        }
        Err(e) => {
            count_store_error(&intake, source, &e, n);
            store_error(&intake.stats, e)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list_incidents(State(intake): State<Intake>, Query(q): Query<ListQuery>) -> Response {
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
        Err(e) => store_error(&intake.stats, e),
    }
}

pub(super) fn parse_id(id: &str) -> Result<IncidentId, Response> {
    id.trim_start_matches('#').parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not an incident id"),
            vec![],
        )
    })
}

async fn show_incident(State(intake): State<Intake>, Path(id): Path<String>) -> Response {
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
        Err(e) => store_error(&intake.stats, e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByBody {
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
        Err(e) => store_error(&intake.stats, e),
    }
}

async fn acknowledge(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    transition(intake, headers, id, body, AlertAction::Acknowledge).await
}

async fn resolve(
    State(intake): State<Intake>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    transition(intake, headers, id, body, AlertAction::Resolve).await
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint", vec![])
}

/// Serves the API on `listener` until `shutdown` is cancelled, then finishes requests in flight.
/// The sockets get the time limits and connection cap in `limits` (see [`super::server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    intake: Intake,
    max_body_bytes: usize,
    limits: super::server::Limits,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let metrics = intake.metrics.clone();
    let app = router(intake, max_body_bytes);
    super::server::serve(listener, app, limits, metrics, shutdown).await
}
