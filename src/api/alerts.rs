//! The alert endpoints: pagerbox's own JSON (`/v1/alerts`), PagerDuty Events v2 and change
//! events, and Alertmanager/Grafana webhooks.
//!
//! Answers follow one rule, because Alertmanager and PagerDuty clients retry 5xx and 429 but
//! give up on 4xx: a body that will never be accepted gets 4xx with a JSON error saying what is
//! wrong; anything that may work later (store busy, disk full, I/O error) gets 503, or 429 on
//! the PagerDuty endpoints, where clients expect it. 202 means committed to disk.

// Helpers return `Result<_, Response>` so handlers can `?`-style early-return an answer; the
// Response is built once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::respond::{
    authorized_body, bearer, error, retry_later, store_error, store_failure, unauthorized,
    BodyFailure,
};
use crate::incident::Actor;
use crate::intake::formats::{self, FormatError};
use crate::intake::Intake;
use crate::metrics::{AlertOutcome as Counted, AlertSource};
use crate::store::{AlertOutcome, StoreError};

/// Counts a refused alert request for `/metrics`: 401 as unauthorized, any other refusal (bad
/// body, too large) as rejected. Returns the answer unchanged. A refusal other than a missing
/// token is also warned about (at most once per 10 s): the sender drops what it is told will
/// never be accepted, so a whole Alertmanager group refused for one odd alert or for its size
/// must not be visible only as a counter.
fn refused(intake: &Intake, source: AlertSource, r: Response) -> Response {
    static WARNINGS: std::sync::Mutex<Option<crate::intake::udp::JunkLog>> =
        std::sync::Mutex::new(None);
    let outcome = match r.status() {
        StatusCode::UNAUTHORIZED => Counted::Unauthorized,
        // A body that did not arrive: answered retry-later (see `BodyFailure`).
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Counted::Unread,
        _ => Counted::Rejected,
    };
    intake.metrics.alert(source, outcome);
    if outcome == Counted::Rejected {
        let due = WARNINGS
            .lock()
            .map(|mut w| w.get_or_insert_with(Default::default).note())
            .unwrap_or(Some(0));
        if let Some(suppressed) = due {
            tracing::warn!(source = source.as_str(), status = r.status().as_u16(), suppressed, "alerts refused for good (the sender will not retry them); see the answer's error, or pagerbox_alerts_received_total{{outcome=\"rejected\"}}");
        }
    }
    r
}

/// Counts `n` alerts the store could not take (a 404 for an unknown incident is not a failure).
fn count_store_error(intake: &Intake, source: AlertSource, e: &StoreError, n: u64) {
    if !matches!(e, StoreError::NotFound(_)) {
        intake.metrics.alerts(source, Counted::StoreFailure, n);
    }
}

fn format_error(e: FormatError) -> Response {
    match e {
        FormatError::Json(m) => error(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {m}"),
            vec![],
        ),
        FormatError::Invalid(errs) => error(StatusCode::BAD_REQUEST, "invalid alert", errs),
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

/// Who sent an alert in pagerbox's own format: `pagerbox send` names itself (a pair shares
/// alerts sent to one box only with the peer), anything else is the HTTP API.
fn own_actor(headers: &HeaderMap) -> Actor {
    match headers.get(crate::intake::VIA_HEADER).map(|v| v.as_bytes()) {
        Some(b"cli") => Actor::new("cli", "cli"),
        _ => Actor::new("api", "http"),
    }
}

pub(super) async fn own_alert(
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
        Err(e) => return refused(&intake, AlertSource::Own, format_error(e)),
    };
    let input = intake.route(parsed, own_actor(&headers));
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
            intake.metrics.alert(AlertSource::Own, Counted::of(&o));
            (StatusCode::ACCEPTED, Json(outcome_json(&o))).into_response()
        }
        Err(e) => {
            count_store_error(&intake, AlertSource::Own, &e, 1);
            store_error(e)
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
    store_failure(
        e,
        "a PagerDuty event",
        |e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "status": "internal error", "message": "The event was not stored because of an internal error.", "errors": [e.to_string()] })),
            )
                .into_response()
        },
        |e| {
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "status": "throttle event", "message": "Requests are arriving too quickly or the store is unavailable. Please retry later.", "errors": [e.to_string()] })),
            )
                .into_response()
        },
    )
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
    body.map_err(|r| match BodyFailure::from(r) {
        BodyFailure::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "status": "invalid event", "message": "Request body is too large", "errors": ["request body is too large"] })),
        )
            .into_response(),
        // PagerDuty's clients retry a 429 after a pause, as they do for a store that is busy.
        BodyFailure::Unread(m) => retry_later(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "status": "throttle event", "message": "The request body was not received in time. Please retry.", "errors": [m] })),
            )
                .into_response(),
        ),
    })
}

pub(super) async fn pagerduty_event(
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
            return refused(
                &intake,
                SOURCE,
                pd_invalid(vec![format!("malformed JSON: {m}")]),
            );
        }
        Err(FormatError::Invalid(errs)) => {
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
            intake.metrics.alert(SOURCE, Counted::of(&o));
            let dedup_key = o.incident().map(|i| i.dedup_key.clone()).unwrap_or(key);
            (
                StatusCode::ACCEPTED,
                Json(json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key })),
            )
                .into_response()
        }
        Err(e) => {
            count_store_error(&intake, SOURCE, &e, 1);
            pd_throttle(&e)
        }
    }
}

pub(super) async fn pagerduty_change(
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

/// The largest Alertmanager or Grafana webhook body taken, whatever `http.max_body_bytes`
/// says (when that is smaller). Alertmanager sends a whole group in one body and gives up on a
/// 413 for good, again at every group interval: a storm of a few hundred alerts grouped by
/// `alertname` (about 1 KB each) would never page. 4 MiB holds about 4,000.
pub const GROUP_MAX_BYTES: usize = 4 * 1024 * 1024;

/// How many group bodies are read at once; the rest wait their turn. Bodies are read whole
/// before the token is checked, so this keeps what any number of connections can make the box
/// hold to a few of them.
const GROUPS_AT_ONCE: usize = 2;

/// The turns for reading a group body, shared by the Alertmanager and Grafana paths.
#[derive(Clone)]
pub(super) struct Groups(Arc<tokio::sync::Semaphore>);

impl Default for Groups {
    fn default() -> Self {
        Groups(Arc::new(tokio::sync::Semaphore::new(GROUPS_AT_ONCE)))
    }
}

/// The Alertmanager webhook handler with its own body limit and turns (see [`GROUP_MAX_BYTES`]).
pub(super) fn group_route<S: Clone + Send + Sync + 'static>(
    max_body_bytes: usize,
    groups: &Groups,
) -> axum::routing::MethodRouter<S>
where
    Intake: axum::extract::FromRef<S>,
{
    axum::routing::post(alertmanager)
        .layer(axum::extract::DefaultBodyLimit::max(
            max_body_bytes.max(GROUP_MAX_BYTES),
        ))
        .layer(axum::middleware::from_fn_with_state(
            groups.clone(),
            one_group_at_a_time,
        ))
}

/// Waits for a turn before the body is read.
async fn one_group_at_a_time(
    State(groups): State<Groups>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The semaphore is never closed, so a permit always comes.
    let _turn = groups.0.acquire().await;
    next.run(req).await
}

pub(super) async fn alertmanager(
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
        Err(e) => return refused(&intake, source, format_error(e)),
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
            store_error(e)
        }
    }
}
