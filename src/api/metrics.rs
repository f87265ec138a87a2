//! `GET /metrics`: reads the levels from their owners and answers with the exposition.
//!
//! The store levels (incidents by state, outbox depth) come from one read of the read
//! connection ([`crate::store::Store::levels`]), so a scrape never queues behind a group commit
//! nor holds one up; the modem and paging health are the last values on their watch channels.
//! If the store cannot answer, the store levels are left out and the event metrics are still
//! served, so a scrape shows a failing store instead of failing itself.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::intake::Intake;
use crate::metrics::Snapshot;

/// Everything a scrape reports besides the event counters.
pub async fn snapshot(intake: &Intake) -> Snapshot {
    let paging = intake.paging.as_ref().map(|p| p.borrow().clone());
    let channels = paging.as_ref().map(|p| p.channels()).unwrap_or_default();
    let store = match intake.store.levels(channels).await {
        Ok(x) => Some(x),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the store levels");
            None
        }
    };
    let (incidents, outbox, oldest_sending, held_by_silence, exhausted) = match store {
        Some(l) => (
            Some(l.incidents),
            Some(l.outbox),
            Some(l.oldest_sending),
            Some(l.held_by_silence),
            Some(l.exhausted),
        ),
        None => (None, None, None, None, None),
    };
    let impaired = crate::health::assess(&intake.health.facts_without_ping().await).impaired();
    Snapshot {
        impaired,
        incidents,
        outbox,
        oldest_sending,
        held_by_silence,
        exhausted,
        modem: intake.modem.as_ref().map(|m| m.borrow().clone()),
        paging,
        standby: intake.health.standby.as_ref().map(|s| s.borrow().clone()),
    }
}

/// The `GET /metrics` handler. Like every read of the API it needs no token.
pub async fn serve(State(intake): State<Intake>) -> Response {
    let snap = snapshot(&intake).await;
    let body = intake.metrics.encode(&snap);
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
