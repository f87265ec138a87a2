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

/// A request to step the test clock (`POST /v1/clock`): one of the two.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    /// How far to jump forward, as a duration (`90s`, `5m`).
    advance: Option<String>,
    /// How far to step back, as NTP does to a clock that ran ahead.
    back: Option<String>,
}

/// `POST /v1/clock`: steps the test clock forward (`advance`) or back (`back`) and answers the
/// new instant; 409 when the daemon runs on the system clock (started without
/// `PAGERBOX_TEST_CLOCK`). Takes the token like every write.
pub(super) async fn clock(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match authorized_body(&intake, &headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (text, forward) = match serde_json::from_slice::<ClockRequest>(&body) {
        Ok(ClockRequest {
            advance: Some(a),
            back: None,
        }) => (a, true),
        Ok(ClockRequest {
            advance: None,
            back: Some(b),
        }) => (b, false),
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give one of \"advance\" and \"back\"",
                vec![],
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), vec![]),
    };
    let by = match crate::config::parse_duration(&text) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e, vec![]),
    };
    let step = crate::clock::delta(by);
    let step = if forward { step } else { -step };
    match crate::clock::step_test_clock(step) {
        Some(now) => {
            tracing::warn!(by = %humantime::format_duration(by), forward, %now, "test clock stepped");
            (StatusCode::OK, Json(json!({ "now": now }))).into_response()
        }
        None => error(
            StatusCode::CONFLICT,
            "the daemon runs on the system clock (start it with PAGERBOX_TEST_CLOCK)",
            vec![],
        ),
    }
}
