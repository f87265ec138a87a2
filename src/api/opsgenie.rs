//! The Opsgenie-compatible Alert API: `POST /v2/alerts`, `POST /v2/alerts/{identifier}/
//! acknowledge|close|notes` and `GET /v2/alerts/requests/{requestId}`, so that anything that
//! talks to Opsgenie (Alertmanager's `opsgenie_configs`, Grafana, the Opsgenie SDKs, scripts)
//! can be pointed at pagerbox by changing only its API URL.
//!
//! Answers follow <https://docs.opsgenie.com/docs/alert-api>: 202
//! `{"result":"Request will be processed","took":0.302,"requestId":"..."}` for every write, and
//! errors as `{"message":...,"took":...,"requestId":...}` (422 with an `errors` map for a body
//! that fails validation, 400 for one that is not JSON, 401 for a missing or unknown key). As
//! everywhere in pagerbox, 202 is given only after the store has committed, and a store that
//! cannot commit is answered 503 with `Retry-After` (Opsgenie clients retry 5xx).
//!
//! Like Opsgenie, acknowledge/close/notes on an alert that does not exist are still answered 202;
//! the request status says "Alert does not exist".
//!
//! Authentication: `Authorization: GenieKey <key>` is the credential (Opsgenie clients cannot
//! send a bearer token). See [`GenieAuth`].

// Helpers return `Result<_, Response>` so handlers can return an answer early.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::respond;
use crate::intake::formats::opsgenie::{self as og, AlertRef, OpsgenieError};
use crate::intake::{record_note, secret_matches, Intake};
use crate::metrics::{AlertOutcome as Counted, AlertSource};

/// How `/metrics` labels requests to these endpoints.
const SOURCE: AlertSource = AlertSource::Opsgenie;
use crate::incident::{Actor, Incident, IncidentId, Status};
use crate::store::requests::{self, RequestOutcome};
use crate::store::{queries, AlertOutcome, StoreError, Tx};

/// The Opsgenie Alert API routes, merged into the main router by [`super::router`].
pub fn routes() -> Router<Intake> {
    Router::new()
        .route("/v2/alerts", post(create))
        .route("/v2/alerts/requests/:request_id", get(request_status))
        .route(
            "/v2/alerts/:identifier/acknowledge",
            action(Act::Acknowledge),
        )
        .route("/v2/alerts/:identifier/close", action(Act::Close))
        .route("/v2/alerts/:identifier/notes", action(Act::AddNote))
        .route(
            "/v2/heartbeats/:name/ping",
            get(heartbeat_ping)
                .post(heartbeat_ping)
                .put(heartbeat_ping)
                .patch(heartbeat_ping),
        )
}

/// `GET|POST|PUT|PATCH /v2/heartbeats/{name}/ping` (Opsgenie Heartbeat API, "Ping Heartbeat
/// Request": https://docs.opsgenie.com/docs/heartbeat-api; the methods beyond GET/POST per
/// https://docs.opsgenie.com/docs/migration-guide-to-heartbeat-api-v2): pings the
/// `[[heartbeats]]` monitor with that id. Answers Opsgenie's 202
/// `{"result":"PONG - Heartbeat received","took":...,"requestId":...}` after the ping is
/// committed. Opsgenie answers 202 even for a name it does not know (it checks later); pagerbox
/// answers 404 in Opsgenie's error shape instead, so a sender pointed at a name nobody
/// configured finds out at once rather than never being watched.
async fn heartbeat_ping(
    auth: GenieAuth,
    State(intake): State<Intake>,
    Path(name): Path<String>,
) -> Response {
    let config = intake.config.borrow().clone();
    match crate::heartbeat::ping(&intake.store, &config, &name, "opsgenie").await {
        Ok(_) => auth.answer(
            StatusCode::ACCEPTED,
            "PONG - Heartbeat received",
            &new_request_id(),
        ),
        Err(crate::heartbeat::Error::Unknown(_)) => error(
            StatusCode::NOT_FOUND,
            format!("No heartbeat monitor named {name:?} is configured ([[heartbeats]] id)"),
            None,
            auth.started,
        ),
        Err(crate::heartbeat::Error::Store(e)) => store_failure(&intake, e, auth.started),
    }
}

/// A request that presented an accepted Opsgenie key; an axum extractor for any handler that
/// speaks Opsgenie's API (e.g. heartbeat pings at `/v2/heartbeats/{name}/ping`).
///
/// Accepted, in this order: a key listed in `[[opsgenie.keys]]` (its `routing_key` then selects
/// the route); the write token (`http.token_file`), as `GenieKey <token>` or `Bearer <token>`;
/// and, when neither keys nor a token are configured, any key or none (the presented key is then
/// the routing key, like a PagerDuty routing key). Anything else is rejected with Opsgenie's 401
/// answer before the body is read.
#[derive(Debug, Clone)]
pub struct GenieAuth {
    /// The routing key the key stands for (matched by `routes.match.routing_key`).
    pub routing_key: Option<String>,
    /// When the request arrived, for the `took` field of the answer.
    pub started: Instant,
}

impl GenieAuth {
    /// Checks the request's headers against the current config and token.
    pub fn check(intake: &Intake, headers: &HeaderMap) -> Result<GenieAuth, Response> {
        let started = Instant::now();
        let authorization = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let key = authorization.and_then(og::genie_key);
        let config = intake.config.borrow().clone();
        if let Some(k) = key {
            if let Some(found) = config
                .opsgenie
                .keys
                .iter()
                .find(|c| secret_matches(k, &c.key))
            {
                return Ok(GenieAuth {
                    routing_key: found.routing_key.clone(),
                    started,
                });
            }
        }
        if let Some(token) = intake.current_token() {
            let presented = key.or_else(|| authorization.and_then(super::respond::bearer_token));
            if presented.is_some_and(|p| secret_matches(p, &token)) {
                return Ok(GenieAuth {
                    routing_key: None,
                    started,
                });
            }
        } else if config.opsgenie.keys.is_empty() {
            return Ok(GenieAuth {
                routing_key: key.map(str::to_string),
                started,
            });
        }
        intake.metrics.alert(SOURCE, Counted::Unauthorized);
        Err(error(
            StatusCode::UNAUTHORIZED,
            "Could not authenticate: send Authorization: GenieKey <key> with a configured key",
            None,
            started,
        ))
    }

    /// Opsgenie's 202 answer for a request that was processed and committed.
    pub fn accepted(&self, request_id: &str) -> Response {
        self.answer(
            StatusCode::ACCEPTED,
            "Request will be processed",
            request_id,
        )
    }

    /// An answer in Opsgenie's success shape `{"result":...,"took":...,"requestId":...}`, e.g.
    /// `answer(StatusCode::ACCEPTED, "PING - Heartbeat received", &new_request_id())` for a
    /// heartbeat ping.
    pub fn answer(&self, status: StatusCode, result: &str, request_id: &str) -> Response {
        (
            status,
            Json(json!({
                "result": result,
                "took": took(self.started),
                "requestId": request_id,
            })),
        )
            .into_response()
    }
}

#[axum::async_trait]
impl FromRequestParts<Intake> for GenieAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, intake: &Intake) -> Result<Self, Response> {
        GenieAuth::check(intake, &parts.headers)
    }
}

/// Seconds since `started`, to the millisecond, as Opsgenie reports `took`.
fn took(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// A new request id in UUID v4 form, as Opsgenie's. It only has to be unique, not secret (the
/// status endpoint needs a key too).
pub fn new_request_id() -> String {
    let r = fastrand::u128(..);
    let r = (r & !(0xf << 76)) | (0x4 << 76);
    let r = (r & !(0x3 << 62)) | (0x2 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        r >> 96,
        (r >> 80) & 0xffff,
        (r >> 64) & 0xffff,
        (r >> 48) & 0xffff,
        r & 0xffff_ffff_ffff
    )
}

/// An answer in Opsgenie's error shape.
pub fn error(
    status: StatusCode,
    message: impl Into<String>,
    errors: Option<BTreeMap<String, String>>,
    started: Instant,
) -> Response {
    let mut body = json!({
        "message": message.into(),
        "took": took(started),
        "requestId": new_request_id(),
    });
    if let Some(errors) = errors {
        body["errors"] = json!(errors);
    }
    (status, Json(body)).into_response()
}

fn parse_error(intake: &Intake, e: OpsgenieError, started: Instant) -> Response {
    intake.metrics.alert(SOURCE, Counted::Rejected);
    match e {
        OpsgenieError::Json(m) => error(
            StatusCode::BAD_REQUEST,
            format!("Could not parse the request body: {m}"),
            None,
            started,
        ),
        OpsgenieError::Invalid(errors) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Request body is not processable. Please check the errors.",
            Some(errors),
            started,
        ),
    }
}

fn body_error(intake: &Intake, r: BytesRejection, started: Instant) -> Response {
    let failure = respond::BodyFailure::from(r);
    intake.metrics.alert(
        SOURCE,
        match failure {
            respond::BodyFailure::TooLarge => Counted::Rejected,
            respond::BodyFailure::Unread(_) => Counted::Unread,
        },
    );
    match failure {
        respond::BodyFailure::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body is too large".to_string(),
            None,
            started,
        ),
        respond::BodyFailure::Unread(m) => respond::retry_later(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Request body not received, retry later: {m}"),
            None,
            started,
        )),
    }
}

fn store_failure(intake: &Intake, e: StoreError, started: Instant) -> Response {
    intake.metrics.alert(SOURCE, Counted::StoreFailure);
    respond::store_failure(
        &e,
        "an Opsgenie request",
        |e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Not stored, internal error: {e}"),
                None,
                started,
            )
        },
        |e| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Not stored, retry later: {e}"),
                None,
                started,
            )
        },
    )
}

async fn create(
    auth: GenieAuth,
    State(intake): State<Intake>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_error(&intake, r, auth.started),
    };
    let c = match og::parse_create(&body) {
        Ok(c) => c,
        Err(e) => return parse_error(&intake, e, auth.started),
    };
    let mut parsed = c.alert;
    parsed.routing_key = auth.routing_key.clone();
    let actor = Actor::new(c.user.unwrap_or_else(|| "opsgenie".into()), "opsgenie");
    let mut input = intake.route(parsed, actor.clone());
    input.page = c.priority.pages();
    let note = c.note;
    let request_id = new_request_id();
    let rid = request_id.clone();
    let result = intake
        .store
        .call(move |conn, now| {
            let outcome = queries::apply_alert(conn, &input, now)?;
            let counted = Counted::of(&outcome);
            let incident = outcome.incident().cloned();
            if let (Some(note), Some(i)) = (&note, &incident) {
                record_note(conn, i.id, &actor, note, now)?;
            }
            let status = match outcome {
                AlertOutcome::Repeated(_) => "Alert deduplicated",
                _ => "Created alert",
            };
            requests::record(
                conn,
                now,
                &RequestOutcome {
                    request_id: rid,
                    action: "Create".into(),
                    success: incident.is_some(),
                    status: status.into(),
                    incident_id: incident.as_ref().map(|i| i.id),
                    alias: incident.map(|i| i.dedup_key),
                },
            )?;
            Ok(counted)
        })
        .await;
    stored(&intake, &auth, &request_id, result)
}

/// What a request on an existing alert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Acknowledge,
    Close,
    AddNote,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Act::Acknowledge => "Acknowledge",
            Act::Close => "Close",
            Act::AddNote => "AddNote",
        }
    }
}

/// `POST /v2/alerts/{identifier}/acknowledge|close|notes`: the route for `act`, all three read
/// the same parts of the request.
fn action(act: Act) -> MethodRouter<Intake> {
    post(
        move |auth: GenieAuth,
              State(intake): State<Intake>,
              Path(identifier): Path<String>,
              Query(query): Query<HashMap<String, String>>,
              body: Result<Bytes, BytesRejection>| {
            act_on(intake, auth, identifier, query, body, act)
        },
    )
}

async fn act_on(
    intake: Intake,
    auth: GenieAuth,
    identifier: String,
    query: HashMap<String, String>,
    body: Result<Bytes, BytesRejection>,
    act: Act,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_error(&intake, r, auth.started),
    };
    let parsed = og::parse_action(&body, act == Act::AddNote).and_then(|b| {
        og::alert_ref(&identifier, query.get("identifierType").map(String::as_str)).map(|r| (b, r))
    });
    let (b, alert) = match parsed {
        Ok(x) => x,
        Err(e) => return parse_error(&intake, e, auth.started),
    };
    let actor = Actor::new(
        b.user.clone().unwrap_or_else(|| "opsgenie".into()),
        "opsgenie",
    );
    let request_id = new_request_id();
    let rid = request_id.clone();
    let result = intake
        .store
        .call(move |conn, now| {
            let id = match &alert {
                AlertRef::Alias(key) => requests::incident_by_key(conn, key)?,
                AlertRef::Incident(n) => queries::incident(conn, *n)?.map(|i| i.id),
                AlertRef::Unknown(_) => None,
            };
            let mut outcome = RequestOutcome {
                request_id: rid,
                action: act.name().into(),
                success: false,
                status: "Alert does not exist".into(),
                incident_id: id,
                alias: None,
            };
            if let Some(id) = id {
                let (incident, status) = apply(conn, id, act, &actor, now)?;
                if let Some(note) = &b.note {
                    record_note(conn, id, &actor, note, now)?;
                }
                outcome.success = true;
                outcome.status = status.into();
                outcome.alias = Some(incident.dedup_key);
            }
            requests::record(conn, now, &outcome)?;
            Ok(if outcome.success {
                Counted::Accepted
            } else {
                Counted::Unmatched
            })
        })
        .await;
    stored(&intake, &auth, &request_id, result)
}

/// Does `act` on incident `id`: the incident after it and the request status Opsgenie would
/// report (an alert already in the asked-for state is a success that changed nothing).
fn apply(
    conn: &Tx,
    id: IncidentId,
    act: Act,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(Incident, &'static str), StoreError> {
    Ok(match act {
        Act::Acknowledge => {
            let (i, changed) = queries::transition(conn, id, Status::Acknowledged, actor, now)?;
            let status = match (changed, i.status) {
                (true, _) => "Acknowledged",
                (false, Status::Resolved) => "Alert is already closed",
                (false, _) => "Alert is already acknowledged",
            };
            (i, status)
        }
        Act::Close => {
            let (i, changed) = queries::transition(conn, id, Status::Resolved, actor, now)?;
            let status = if changed {
                "Closed"
            } else {
                "Alert is already closed"
            };
            (i, status)
        }
        Act::AddNote => (
            queries::incident(conn, id)?.ok_or(StoreError::NotFound(id))?,
            "Added note",
        ),
    })
}

/// The answer to a write once the store has run it: 202 with its request id after the commit,
/// else the store failure.
fn stored(
    intake: &Intake,
    auth: &GenieAuth,
    request_id: &str,
    result: Result<Counted, StoreError>,
) -> Response {
    match result {
        Ok(counted) => {
            intake.metrics.alert(SOURCE, counted);
            auth.accepted(request_id)
        }
        Err(e) => store_failure(intake, e, auth.started),
    }
}

/// `GET /v2/alerts/requests/{requestId}`: what a request did, in the shape of Opsgenie's "Get
/// Request Status" (`alertId` is the incident number as a string).
async fn request_status(
    auth: GenieAuth,
    State(intake): State<Intake>,
    Path(request_id): Path<String>,
) -> Response {
    let found = intake
        .store
        .read(move |conn, _| Ok(requests::find(conn, &request_id)?))
        .await;
    match found {
        Ok(Some(r)) => {
            let o = r.outcome;
            let data: Value = json!({
                "success": o.success,
                "action": o.action,
                "processedAt": r.processed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "integrationId": "",
                "isSuccess": o.success,
                "status": o.status,
                "alertId": o.incident_id.map(|i| i.to_string()).unwrap_or_default(),
                "alias": o.alias.unwrap_or_default(),
            });
            (
                StatusCode::OK,
                Json(json!({ "data": data, "took": took(auth.started), "requestId": new_request_id() })),
            )
                .into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "Request not found: unknown requestId, or older than 7 days",
            None,
            auth.started,
        ),
        Err(e) => store_failure(&intake, e, auth.started),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuid_v4_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{a}"
        );
    }
}
