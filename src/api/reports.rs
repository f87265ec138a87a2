//! Review endpoints: `GET /v1/incidents/{id}/report` (a post-incident report in Markdown or
//! JSON) and `GET /v1/stats?since=30d` (on-call review numbers). Reads only, so, like the other
//! GETs, they need no token. The report's shape and rules live in [`crate::report`].

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::respond::{error, parse_id, store_error};
use crate::intake::Intake;
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
        .read(move |c, now| report::gather(c, id, &config, now))
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
        Err(e) => store_error(e),
    }
}

/// `?since=` of the stats: a duration back from now (`30d`) or an RFC 3339 time.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    since: Option<String>,
}

/// The period when `?since=` is not given.
pub const DEFAULT_STATS_SINCE: &str = "30d";
/// The longest period `/v1/stats` covers: a year of review plus a margin.
pub const MAX_STATS_DAYS: i64 = 400;
/// The most incidents one stats request reads: each costs a few small queries.
pub const MAX_STATS_INCIDENTS: usize = 20_000;
/// The most pages one stats request reads.
pub const MAX_STATS_PAGES: usize = 100_000;

/// `GET /v1/stats[?since=30d]`: incidents, TTA/TTR percentiles per service, pages per person and
/// out-of-hours pages, from `since` until now (the store's clock). 400 for a bad `since`, for one
/// more than [`MAX_STATS_DAYS`] back, and for a period holding more incidents or pages than a
/// request may read (the answer says the maximum).
///
/// The reads run on the store's read connection, so they never hold up a commit; the bounds keep
/// one request from occupying that connection (and the status page, `/metrics` and `/healthz`
/// behind it) for long: about 0.2 s for 5,000 incidents plus 0.8 s for 20,000 pages in a debug
/// build on x86.
pub async fn stats(State(intake): State<Intake>, Query(q): Query<StatsQuery>) -> Response {
    let config = intake.config.borrow().clone();
    let since = q.since.unwrap_or_else(|| DEFAULT_STATS_SINCE.to_string());
    let result = intake
        .store
        .read(move |c, now| {
            let since = match stats::parse_since(&since, now) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            if now.signed_duration_since(since) > chrono::Duration::days(MAX_STATS_DAYS) {
                return Ok(Err(format!(
                    "since reaches back more than the maximum of {MAX_STATS_DAYS} days"
                )));
            }
            let incidents = history::incidents_since(c, since, MAX_STATS_INCIDENTS + 1)?;
            if incidents.len() > MAX_STATS_INCIDENTS {
                return Ok(Err(format!(
                    "the period holds more than the maximum of {MAX_STATS_INCIDENTS} incidents \
                     a stats request reads; ask for a shorter since"
                )));
            }
            let pages = history::pages_since(c, since, MAX_STATS_PAGES + 1)?;
            if pages.len() > MAX_STATS_PAGES {
                return Ok(Err(format!(
                    "the period holds more than the maximum of {MAX_STATS_PAGES} pages \
                     a stats request reads; ask for a shorter since"
                )));
            }
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
        Err(e) => store_error(e),
    }
}
