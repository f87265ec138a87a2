//! The HTTP API (axum): one file per resource, the shared answers in [`respond`], the status
//! page beside them, and the transport underneath.
//!
//! Answers follow one rule, because Alertmanager and PagerDuty clients retry 5xx and 429 but
//! give up on 4xx: a body that will never be accepted gets 4xx with a JSON error saying what is
//! wrong; anything that may work later (store busy, disk full, I/O error) gets 503, or 429 on
//! the PagerDuty endpoints, where clients expect it. 202 means committed to disk.
//!
//! - Resources: [`alerts`] (own JSON, PagerDuty Events v2, Alertmanager/Grafana), [`opsgenie`]
//!   and [`victorops`] (provider-compatible endpoints), [`incidents`] (list, show, acknowledge,
//!   resolve), [`reports`], [`silences`], [`oncall`] (schedules and overrides), [`heartbeats`],
//!   [`selftest`], [`metrics`] (`/metrics`), [`healthz`], `faults` and `clock` (test builds only), and the
//!   HTML [`status_page`].
//! - Shared: [`respond`] (JSON errors, the bearer token, store errors as answers), [`guard`]
//!   (who may write: the token, and refusing writes a web page could forge), [`exposure`]
//!   (masking numbers and addresses in reads made without the token).
//! - Transport: [`server`] (the accept loop, time limits, connection cap). It serves only this
//!   router, and its limits are the API's promises to its clients, so it lives here.
//!
//! What is not here: reading alert bodies (`intake::formats`), the UDP intake, and the
//! route-then-commit path every handler calls (`intake::Intake`).

pub mod alerts;
mod background;
pub mod exposure;
#[cfg(feature = "fault-injection")]
mod faults;
pub mod guard;
pub mod healthz;
pub mod heartbeats;
pub mod incidents;
pub mod metrics;
pub mod oncall;
pub mod opsgenie;
pub mod reports;
pub mod respond;
pub mod selftest;
pub mod server;
pub mod silences;
pub mod status_page;
pub mod victorops;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::intake::Intake;
use respond::error;

/// Builds the router with the body limit from config.
pub fn router(intake: Intake, max_body_bytes: usize) -> Router {
    let groups = alerts::Groups::default();
    let api = Router::new()
        .route("/healthz", get(healthz::healthz))
        .route(
            "/metrics",
            get(metrics::serve).layer(from_fn(background::behind_paging)),
        )
        .route("/v1/alerts", post(alerts::own_alert))
        .route("/v2/enqueue", post(alerts::pagerduty_event))
        .route("/v2/change/enqueue", post(alerts::pagerduty_change))
        .route(
            "/v1/integrations/alertmanager",
            alerts::group_route(max_body_bytes, &groups),
        )
        .route(
            "/v1/integrations/grafana",
            alerts::group_route(max_body_bytes, &groups),
        )
        .route("/v1/incidents", get(incidents::list_incidents))
        .route("/v1/incidents/:id", get(incidents::show_incident))
        .route(
            "/v1/incidents/:id/acknowledge",
            post(incidents::acknowledge),
        )
        .route("/v1/incidents/:id/resolve", post(incidents::resolve))
        .route(
            "/v1/incidents/:id/report",
            get(reports::incident_report).layer(from_fn(background::behind_paging)),
        )
        .route(
            "/v1/stats",
            get(reports::stats).layer(from_fn(background::behind_paging)),
        )
        .route("/v1/oncall", get(oncall::oncall))
        .route("/v1/schedules/:id", get(oncall::schedule))
        .route(
            "/v1/schedules/:id/overrides",
            get(oncall::list_overrides).post(oncall::add_override),
        )
        .route(
            "/v1/schedules/:id/overrides/:oid",
            axum::routing::delete(oncall::delete_override),
        )
        .merge(opsgenie::routes())
        .merge(victorops::routes())
        .route("/v1/silences", get(silences::list).post(silences::add))
        .route("/v1/silences/:id", axum::routing::delete(silences::delete))
        .route("/v1/silences/:id/expire", post(silences::expire))
        .route("/v1/heartbeats", get(heartbeats::list))
        .route(
            "/v1/heartbeats/:id",
            get(heartbeats::show).post(heartbeats::ping),
        )
        .route(
            "/v1/heartbeats/:id/ping",
            get(heartbeats::ping).post(heartbeats::ping),
        )
        .route("/v1/selftest", get(selftest::runs).post(selftest::run))
        .fallback(not_found);
    // Test builds only: arm or disarm a fault point (see `crate::fault`), step the test clock
    // (see `crate::clock::from_env`).
    #[cfg(feature = "fault-injection")]
    let api = api
        .route("/v1/faults", post(faults::faults))
        .route("/v1/clock", post(faults::clock));
    api.layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            intake.clone(),
            exposure::mask_unauthenticated,
        ))
        .layer(axum::middleware::from_fn_with_state(
            intake.clone(),
            guard::refuse_cross_site,
        ))
        .with_state(intake.clone())
        .merge(status_page::router(intake))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint", vec![])
}

/// Serves the API on `listener` until `shutdown` is cancelled, then finishes requests in flight.
/// The sockets get the time limits and connection cap in `limits` (see [`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    intake: Intake,
    max_body_bytes: usize,
    limits: server::Limits,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let metrics = intake.metrics.clone();
    let app = router(intake, max_body_bytes);
    server::serve(listener, app, limits, metrics, shutdown).await
}
