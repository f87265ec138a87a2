//! The levels a metrics scrape reports from the store: incidents by state and the outbox's
//! backlog, read together in one snapshot of the read connection.
//!
//! One read keeps a scrape from queueing behind a group commit or holding one up, and makes the
//! numbers agree with each other (they come from the same commit).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Tx;
use super::{outbox, Store, StoreError};
use crate::incident::{Channel, Status};

/// What the store contributes to `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    /// Incidents per state (states without incidents are absent).
    pub incidents: Vec<(Status, i64)>,
    /// Pages waiting or being sent on the served channels, and how long the oldest has waited.
    pub outbox: (i64, Option<Duration>),
    /// How long the oldest row in `sending` has been claimed, if any is.
    pub oldest_sending: Option<Duration>,
    /// Escalations a silence holds now ([`super::silences::held_count`]).
    pub held_by_silence: i64,
    /// Open incidents whose policy ran out ([`super::escalations::exhausted_open_count`]).
    pub exhausted: i64,
}

/// Incidents by state, outbox depth on `channels` (the ones a transport serves), and the age of
/// the oldest claimed row, as of `now`.
fn levels(conn: &Tx, channels: &[Channel], now: DateTime<Utc>) -> rusqlite::Result<Levels> {
    let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM incidents GROUP BY status")?;
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
    let age = |t: DateTime<Utc>| (now - t).to_std().unwrap_or_default();
    let (depth, oldest) = outbox::depth(conn, channels)?;
    let sending = outbox::oldest_sending(conn)?.map(age);
    Ok(Levels {
        incidents,
        outbox: (depth, oldest.map(age)),
        oldest_sending: sending,
        held_by_silence: super::silences::held_count(conn)?,
        exhausted: super::escalations::exhausted_open_count(conn)?,
    })
}

impl Store {
    /// The store's levels for a scrape (read connection); see [`Levels`].
    pub async fn levels(&self, channels: Vec<Channel>) -> Result<Levels, StoreError> {
        self.read(move |c, now| Ok(levels(c, &channels, now)?))
            .await
    }
}
