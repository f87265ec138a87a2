//! `GET /metrics`: reads the levels from their owners and answers with the exposition.
//!
//! The store levels (incidents by state, outbox depth) come from one `Store::read` on the read
//! connection, so a scrape never queues behind a group commit nor holds one up; the modem and paging health are the last values on their watch channels. If the store
//! cannot answer, the store levels are left out and the event metrics are still served, so a
//! scrape shows a failing store instead of failing itself.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::Snapshot;
use crate::incident::{Channel, Status};
use crate::intake::Intake;
use crate::store::{outbox, Store, StoreError};

/// The store's levels for a scrape.
type StoreLevels = (
    Vec<(Status, i64)>,
    (i64, Option<Duration>),
    Option<Duration>,
);

/// Incidents by state, outbox depth on the `channels` a transport serves with the oldest waiting
/// page's age, and how long the oldest `sending` row has been claimed, in one store read.
pub async fn store_levels(
    store: &Store,
    channels: Vec<Channel>,
) -> Result<StoreLevels, StoreError> {
    store
        .read(move |c, now| {
            let mut stmt =
                c.prepare_cached("SELECT status, count(*) FROM incidents GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut incidents = Vec::new();
            for row in rows {
                let (status, n) = row?;
                let status = match status.as_str() {
                    "triggered" => Status::Triggered,
                    "acknowledged" => Status::Acknowledged,
                    "resolved" => Status::Resolved,
                    _ => continue,
                };
                incidents.push((status, n));
            }
            let (depth, oldest) = outbox::depth(c, &channels)?;
            let age = oldest.map(|t| (now - t).to_std().unwrap_or_default());
            let sending =
                outbox::oldest_sending(c)?.map(|t| (now - t).to_std().unwrap_or_default());
            Ok((incidents, (depth, age), sending))
        })
        .await
}

/// Everything a scrape reports besides the event counters.
pub async fn snapshot(intake: &Intake) -> Snapshot {
    let paging = intake.paging.as_ref().map(|p| p.borrow().clone());
    let channels = paging.as_ref().map(|p| p.channels()).unwrap_or_default();
    let store = match store_levels(&intake.store, channels).await {
        Ok(x) => Some(x),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the store levels");
            None
        }
    };
    let (incidents, outbox, oldest_sending) = match store {
        Some((i, o, s)) => (Some(i), Some(o), Some(s)),
        None => (None, None, None),
    };
    Snapshot {
        incidents,
        outbox,
        oldest_sending,
        modem: intake.modem.as_ref().map(|m| m.borrow().clone()),
        paging,
        standby: intake.health.standby.as_ref().map(|s| s.borrow().clone()),
    }
}

/// The `GET /metrics` handler. Like every read of the API it needs no token.
pub async fn serve(State(intake): State<Intake>) -> Response {
    let snap = snapshot(&intake).await;
    let body = intake.metrics.encode(&snap);
    ([(CONTENT_TYPE, super::CONTENT_TYPE)], body).into_response()
}
