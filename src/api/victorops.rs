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

use crate::intake::formats::victorops::{self as vo, MessageType};
use crate::intake::formats::FormatError;
use crate::intake::{secret_matches, Intake};
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
    if !authorized(&intake, &api_key) {
        intake.metrics.alert(SOURCE, Counted::Unauthorized);
        return failure(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            intake.metrics.alert(SOURCE, Counted::Rejected);
            return failure(r.status(), r.body_text());
        }
    };
    let mut m = match vo::parse(&body, routing_key.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            intake.metrics.alert(SOURCE, Counted::Rejected);
            let message = match e {
                FormatError::Json(m) => format!("malformed JSON: {m}"),
                FormatError::Invalid(errs) => errs.join("; "),
            };
            return failure(StatusCode::BAD_REQUEST, message);
        }
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
        let a = m.alert;
        let key = entity_id.clone();
        intake
            .store
            .call(move |conn, now| {
                match queries::open_by_key(conn, &key)? {
                    Some(open) => {
                        let text = format!("INFO: {}", note.as_deref().unwrap_or(&a.summary));
                        crate::store::events::record(
                            conn,
                            Some(open.id),
                            now,
                            crate::store::kinds::EventKind::Note,
                            Some(&actor),
                            &text,
                            None,
                        )?;
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
    } else {
        let input = intake.route(m.alert, actor.clone());
        intake
            .store
            .call(move |conn, now| {
                let outcome = queries::apply_alert(conn, &input, now)?;
                if let (Some(note), Some(i), AlertAction::Acknowledge) =
                    (&note, outcome.incident(), input.action)
                {
                    crate::store::events::record(
                        conn,
                        Some(i.id),
                        now,
                        crate::store::kinds::EventKind::Note,
                        Some(&actor),
                        note,
                        None,
                    )?;
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

fn store_failure(e: StoreError) -> Response {
    if !e.is_retryable() {
        // A store fault fails the same way every time: not an invitation to retry.
        tracing::error!(error = %e, "intake could not store a Splunk On-Call alert: store fault");
        return failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not stored, internal error: {e}"),
        );
    }
    tracing::error!(error = %e, "intake could not store a Splunk On-Call alert; sender told to retry");
    let mut r = failure(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not stored, retry later: {e}"),
    );
    r.headers_mut()
        .insert("retry-after", "5".parse().expect("static header"));
    r
}
