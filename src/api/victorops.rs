//! The Splunk On-Call (VictorOps) compatible REST endpoint:
//! `POST /integrations/generic/20131114/alert/{api_key}/{routing_key}`, so that anything that
//! posts to Splunk On-Call's REST endpoint (Alertmanager's `victorops_configs`, Grafana, scripts)
//! can be pointed at pagerbox by changing only the URL's host.
//!
//! Answers follow the REST Endpoint Integration Guide
//! (<https://help.victorops.com/knowledge-base/rest-endpoint-integration-guide/>): 200
//! `{"result":"success","entity_id":"..."}` once the store has committed; failures as
//! `{"result":"failure","message":"..."}`: 400 for a body that will never be accepted, 401 for
//! a wrong `api_key`, 503 with `Retry-After` when the store cannot commit (senders retry 5xx).
//!
//! The `api_key` path segment is the credential: `[victorops] api_key_file` if set, else the
//! write token if one is configured, else anything. The `routing_key` segment selects the route
//! (`routes.match.routing_key`), as in Splunk On-Call.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::respond;
use crate::escalation::ParsedAlert;
use crate::intake::formats::victorops::{self as vo, MessageType, VictorOpsAlert};
use crate::intake::formats::FormatError;
use crate::intake::{record_note, secret_matches, Intake};
use crate::metrics::{AlertOutcome as Counted, AlertSource};

/// How `/metrics` labels requests to this endpoint.
const SOURCE: AlertSource = AlertSource::Victorops;
use crate::incident::Actor;
use crate::store::{queries, AlertAction, ChangeInput, StoreError};

/// The REST endpoint routes, merged into the main router by [`super::router`]. The
/// variant without a routing key routes by the alert's other facts only.
pub fn routes() -> Router<Intake> {
    Router::new()
        .route(
            "/integrations/generic/20131114/alert/:api_key/:routing_key",
            post(alert_with_route),
        )
        .route(
            "/integrations/generic/20131114/alert/:api_key",
            post(alert_without_route),
        )
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "result": "failure", "message": message.into() })),
    )
        .into_response()
}

/// True if `api_key` may post: see the module doc.
fn authorized(intake: &Intake, api_key: &str) -> bool {
    let config = intake.config.borrow().clone();
    match (&config.victorops.api_key, intake.current_token()) {
        (Some(k), _) => secret_matches(api_key, k),
        (None, Some(t)) => secret_matches(api_key, &t),
        (None, None) => true,
    }
}

/// An entity id for a message that had none ("a random name will be assigned", says the guide).
fn assigned_entity_id() -> String {
    format!("pagerbox-{:016x}", fastrand::u64(..))
}

async fn alert_with_route(
    State(intake): State<Intake>,
    Path((api_key, routing_key)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    alert(intake, api_key, Some(routing_key), body).await
}

async fn alert_without_route(
    State(intake): State<Intake>,
    Path(api_key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    alert(intake, api_key, None, body).await
}

async fn alert(
    intake: Intake,
    api_key: String,
    routing_key: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut m = match read_message(&intake, &api_key, routing_key.as_deref(), body) {
        Ok(m) => m,
        Err(answer) => return answer,
    };
    let entity_id = m
        .alert
        .dedup_key
        .get_or_insert_with(assigned_entity_id)
        .clone();
    let who = m
        .ack_author
        .clone()
        .or_else(|| m.alert.source.clone())
        .unwrap_or_else(|| "victorops".into());
    let actor = Actor::new(who, "victorops");
    let note = m.note.take();
    let result = if m.message_type == MessageType::Info {
        store_info(&intake, m.alert, entity_id.clone(), actor, note).await
    } else {
        let input = intake.route(m.alert, actor.clone());
        intake
            .store
            .call(move |conn, now| {
                let outcome = queries::apply_alert(conn, &input, now)?;
                if let (Some(note), Some(i), AlertAction::Acknowledge) =
                    (&note, outcome.incident(), input.action)
                {
                    record_note(conn, i.id, &actor, note, now)?;
                }
                Ok(Counted::of(&outcome))
            })
            .await
    };
    match result {
        Ok(counted) => {
            intake.metrics.alert(SOURCE, counted);
            (
                StatusCode::OK,
                Json(json!({ "result": "success", "entity_id": entity_id })),
            )
                .into_response()
        }
        Err(e) => {
            intake.metrics.alert(SOURCE, Counted::StoreFailure);
            store_failure(e)
        }
    }
}

/// The message a request carries, once its key is accepted and its body read and parsed; else
/// the failure answer (counted as unauthorized or rejected).
// The answer is built once per request, so its size in the `Err` does not matter.
#[allow(clippy::result_large_err)]
fn read_message(
    intake: &Intake,
    api_key: &str,
    routing_key: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<VictorOpsAlert, Response> {
    if !authorized(intake, api_key) {
        intake.metrics.alert(SOURCE, Counted::Unauthorized);
        return Err(failure(StatusCode::UNAUTHORIZED, "Invalid API key"));
    }
    let body = body.map_err(|r| match respond::BodyFailure::from(r) {
        respond::BodyFailure::TooLarge => {
            intake.metrics.alert(SOURCE, Counted::Rejected);
            failure(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
        }
        respond::BodyFailure::Unread(m) => {
            intake.metrics.alert(SOURCE, Counted::Unread);
            respond::retry_later(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("request body not received, retry later: {m}"),
            ))
        }
    })?;
    vo::parse(&body, routing_key).map_err(|e| {
        intake.metrics.alert(SOURCE, Counted::Rejected);
        let message = match e {
            FormatError::Json(m) => format!("malformed JSON: {m}"),
            FormatError::Invalid(errs) => errs.join("; "),
        };
        failure(StatusCode::BAD_REQUEST, message)
    })
}

/// An INFO message: a note on the open incident with entity id `key`, or, with none open, a
/// change record (it pages nobody either way).
async fn store_info(
    intake: &Intake,
    a: ParsedAlert,
    key: String,
    actor: Actor,
    note: Option<String>,
) -> Result<Counted, StoreError> {
    intake
        .store
        .call(move |conn, now| {
            match queries::open_by_key(conn, &key)? {
                Some(open) => {
                    let text = format!("INFO: {}", note.as_deref().unwrap_or(&a.summary));
                    record_note(conn, open.id, &actor, &text, now)?;
                }
                None => {
                    let mut details = a.details;
                    details["entity_id"] = json!(key);
                    queries::record_change(
                        conn,
                        &ChangeInput {
                            summary: a.summary,
                            source: a.source,
                            service: a.service,
                            details,
                            links: a.links,
                        },
                        now,
                    )?;
                }
            }
            Ok(Counted::Accepted)
        })
        .await
}

fn store_failure(e: StoreError) -> Response {
    respond::store_failure(
        &e,
        "a Splunk On-Call alert",
        |e| {
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not stored, internal error: {e}"),
            )
        },
        |e| {
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored, retry later: {e}"),
            )
        },
    )
}
