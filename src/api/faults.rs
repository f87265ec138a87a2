//! `POST /v1/faults`: the fault points' switch (`crate::fault`), and `POST /v1/clock`: the test
//! clock's hand (`crate::clock::from_env`); compiled only into `fault-injection` builds.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::respond::{authorized_body, error};
use crate::intake::Intake;

/// `POST /v1/faults`: arms (or disarms) a fault point; only in `fault-injection` builds. Takes
/// the token like every write.
pub(super) async fn faults(
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

/// A request to step the test clock (`POST /v1/clock`).
#[derive(Debug, serde::Deserialize)]
struct ClockRequest {
    /// How far to jump forward, as a duration (`90s`, `5m`).
    advance: String,
}

/// `POST /v1/clock`: jumps the test clock forward and answers the new instant; 409 when the
/// daemon runs on the system clock (started without `PAGERBOX_TEST_CLOCK`). Takes the token like
/// every write.
pub(super) async fn clock(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let by = match serde_json::from_slice::<ClockRequest>(&body) {
        Ok(r) => match crate::config::parse_duration(&r.advance) {
            Ok(d) => d,
            Err(e) => return error(StatusCode::BAD_REQUEST, e, vec![]),
        },
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), vec![]),
    };
    match crate::clock::advance_test_clock(by) {
        Some(now) => {
            tracing::warn!(by = %humantime::format_duration(by), %now, "test clock stepped");
            (StatusCode::OK, Json(json!({ "now": now }))).into_response()
        }
        None => error(
            StatusCode::CONFLICT,
            "the daemon runs on the system clock (start it with PAGERBOX_TEST_CLOCK)",
            vec![],
        ),
    }
}
