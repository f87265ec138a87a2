//! Review endpoints: `GET /v1/incidents/{id}/report` (a post-incident report in Markdown or
//! JSON) and `GET /v1/stats?since=30d` (on-call review numbers). Reads only, so, like the other
//! GETs, they need no token. The report's shape and rules live in [`crate::report`].

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::http::{error, parse_id, store_error};
use super::Intake;
use crate::report::{self, markdown, stats};
use crate::store::history;

/// `?format=` of the report.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
}

/// Whether the caller wants JSON: `?format=json` wins, then an `Accept` naming
/// `application/json`; Markdown otherwise.
fn wants_json(format: Option<&str>, headers: &HeaderMap) -> Result<bool, String> {
    match format {
        Some("json") => Ok(true),
        Some("markdown" | "md") => Ok(false),
        Some(other) => Err(format!("format {other:?} is not markdown or json")),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"))),
    }
}

/// `GET /v1/incidents/{id}/report[?format=json]`: 200 with `text/markdown` (or JSON), 404 for
/// an unknown incident, 503 when the store cannot answer.
pub async fn incident_report(
    State(intake): State<Intake>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let json = match wants_json(q.format.as_deref(), &headers) {
        Ok(j) => j,
        Err(e) => return error(StatusCode::BAD_REQUEST, e, vec![]),
    };
    let config = intake.config.borrow().clone();
    match intake
        .store
        .call(move |c, now| report::gather(c, id, &config, now))
        .await
    {
        Ok(Some(r)) if json => Json(r).into_response(),
        Ok(Some(r)) => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            markdown::render(&r),
        )
            .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("incident #{id} not found"),
            vec![],
        ),
        Err(e) => store_error(&intake.stats, e),
    }
}

/// `?since=` of the stats: a duration back from now (`30d`) or an RFC 3339 time.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    since: Option<String>,
}

/// The period when `?since=` is not given.
pub const DEFAULT_STATS_SINCE: &str = "30d";

/// `GET /v1/stats[?since=30d]`: incidents, TTA/TTR percentiles per service, pages per person and
/// out-of-hours pages, from `since` until now (the store's clock). 400 for a bad `since`.
///
/// The reads run as one store call, so commits queue behind them: measured at about 0.2 s for
/// 5,000 incidents plus 0.8 s for 20,000 pages (100,000 events) in a debug build on x86. A month
/// of a normal box is far below that; a very long `since` on a busy box delays intake that long.
pub async fn stats(State(intake): State<Intake>, Query(q): Query<StatsQuery>) -> Response {
    let config = intake.config.borrow().clone();
    let since = q.since.unwrap_or_else(|| DEFAULT_STATS_SINCE.to_string());
    let result = intake
        .store
        .call(move |c, now| {
            let since = match stats::parse_since(&since, now) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            let incidents = history::incidents_since(c, since)?;
            let pages = history::pages_since(c, since)?;
            let hours = stats::Windows {
                tz: config.daemon.time_zone,
                windows: config.daemon.business_hours.clone(),
            };
            Ok(Ok(stats::compute(&incidents, &pages, &hours, since, now)))
        })
        .await;
    match result {
        Ok(Ok(s)) => Json(s).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e, vec![]),
        Err(e) => store_error(&intake.stats, e),
    }
}
