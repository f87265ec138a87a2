//! `POST /v1/faults`: the fault points' switch (`crate::fault`), compiled only into
//! `fault-injection` builds.

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
