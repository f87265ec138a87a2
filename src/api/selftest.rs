//! `/v1/selftest`: run a self-test of the paging path now (`POST`, write token), or list the
//! last runs (`GET`). The daemon owns the modem, so the CLI asks it here rather than opening
//! the port itself.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::respond::{bearer, error, store_error, unauthorized};
use crate::intake::Intake;

/// `POST /v1/selftest`: runs one now and answers with every step (200 whether it passed or
/// not: `ok` says). 503 without a modem, 429 when runs are queued already.
pub async fn run(State(intake): State<Intake>, headers: HeaderMap) -> Response {
    if !intake.token_ok(bearer(&headers)) {
        return unauthorized();
    }
    let Some(h) = intake.selftest.as_ref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no modem is configured: there is no paging path to test",
            vec![],
        );
    };
    match h.run_now().await {
        Ok(run) => Json(json!({ "run": run })).into_response(),
        Err(e @ crate::selftest::SelftestError::Busy) => {
            error(StatusCode::TOO_MANY_REQUESTS, e.to_string(), vec![])
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), vec![]),
    }
}

/// Query of `GET /v1/selftest`.
#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    limit: Option<usize>,
}

/// `GET /v1/selftest?limit=N`: the last runs, newest first.
pub async fn runs(State(intake): State<Intake>, Query(q): Query<RunsQuery>) -> Response {
    let limit = q.limit.unwrap_or(20).min(1000);
    match intake.store.selftest_runs(limit).await {
        Ok(runs) => Json(json!({ "runs": runs })).into_response(),
        Err(e) => store_error(e),
    }
}
