//! The incident timeline (`events`): every change, page and decision appended as one row, so
//! an incident's history can be read back in order. This file is the only writer of the table;
//! callers name what happened with an [`EventKind`], whose stored name has one mapping.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::kinds::EventKind;
use super::ms;
use super::Tx;
use crate::incident::{Actor, IncidentId};

/// Appends a timeline event of `kind`; returns its id.
pub fn record(
    conn: &Tx,
    incident: Option<IncidentId>,
    now: DateTime<Utc>,
    kind: EventKind,
    actor: Option<&Actor>,
    message: &str,
    data: Option<&serde_json::Value>,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO events (incident_id, at, kind, actor, via, message, data) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?
    .execute(params![
        incident,
        ms(now),
        kind.as_str(),
        actor.map(|a| a.who.as_str()),
        actor.map(|a| a.via.as_str()),
        message,
        data.map(|d| d.to_string()),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Moves timeline times after `now` `back` ms earlier after the wall clock was stepped back (see
/// `store::rewind`). Those rows were stamped on the clock that ran ahead, so this corrects them;
/// and the senders compare a page's planned time with the timeline ("already emailed in this
/// step"), which must not see the last hour's events as still to come.
pub(super) fn rewind(conn: &Tx, back: i64, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE events SET at = at - ?1 WHERE at > ?2",
        params![back, ms(now)],
    )
}
