//! The escalation row of each incident that pages (`escalations`), and the shift notices the
//! engine has sent (`shift_notices`).
//!
//! What the values are is decided by the pure state machine (the escalation module's `state`); this
//! file only reads and writes them, as plain [`EscalationRow`]s, so the store does not depend on
//! the escalation module. The first row of an alert's incident ([`EscalationRow::start`]) is
//! written with the incident by [`super::queries::apply_alert`]; every later change goes through
//! [`save`] or [`route`], with a row the state machine computed.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::Tx;
use super::{from_ms, ms};
use crate::incident::IncidentId;

/// Where an escalation is, as stored in `escalations.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredPhase {
    Escalating,
    Acknowledged,
    Exhausted,
    Resolved,
}

impl StoredPhase {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredPhase::Escalating => "escalating",
            StoredPhase::Acknowledged => "acknowledged",
            StoredPhase::Exhausted => "exhausted",
            StoredPhase::Resolved => "resolved",
        }
    }

    /// The phase a stored name means. A name this version does not know reads as resolved: an
    /// escalation the engine cannot understand must not page, and it is never written back
    /// unless the engine moves it on.
    pub fn parse(s: &str) -> StoredPhase {
        match s {
            "escalating" => StoredPhase::Escalating,
            "acknowledged" => StoredPhase::Acknowledged,
            "exhausted" => StoredPhase::Exhausted,
            _ => StoredPhase::Resolved,
        }
    }
}

/// One escalation state as the table holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationRow {
    pub phase: StoredPhase,
    /// The next step and run (0-based); `None` when exhaustion comes next.
    pub next: Option<(usize, u32)>,
    /// Escalating: when the next thing is due. Acknowledged: when the ack times out.
    pub due: Option<DateTime<Utc>>,
    /// When the phase was set.
    pub since: DateTime<Utc>,
}

impl EscalationRow {
    /// The row of a new incident's escalation: step 1 of run 1, due after the route's pre-page
    /// delay. It is the stored form of the state machine's start (`EscalationState::start` in the
    /// escalation module, whose tests hold the two equal); the store writes it with the incident
    /// itself, in the alert's transaction, so an incident that pages always has its state.
    pub fn start(now: DateTime<Utc>, pre_page_delay: std::time::Duration) -> EscalationRow {
        EscalationRow {
            phase: StoredPhase::Escalating,
            next: Some((0, 0)),
            due: Some(crate::clock::add(now, pre_page_delay)),
            since: now,
        }
    }

    /// The state columns as bound: phase, next step, next run, due time, since.
    fn columns(&self) -> (&'static str, Option<i64>, i64, Option<i64>, i64) {
        let (step, round) = match self.next {
            Some((step, round)) => (Some(step as i64), round as i64),
            None => (None, 0),
        };
        (
            self.phase.as_str(),
            step,
            round,
            self.due.map(ms),
            ms(self.since),
        )
    }
}

/// An incident's escalation row with the columns around its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEscalation {
    pub incident_id: IncidentId,
    /// The policy it follows.
    pub policy: String,
    pub row: EscalationRow,
    /// The silence (key) holding the due step, if any (see [`super::silences::set_hold`]).
    pub silenced_by: Option<String>,
}

const COLUMNS: &str = "e.incident_id, e.policy, e.phase, e.next_step, e.next_round, e.due_at, \
                       e.since, e.silenced_by";

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredEscalation> {
    let phase: String = r.get(2)?;
    let step: Option<i64> = r.get(3)?;
    let round: i64 = r.get(4)?;
    let due: Option<i64> = r.get(5)?;
    Ok(StoredEscalation {
        incident_id: r.get(0)?,
        policy: r.get(1)?,
        row: EscalationRow {
            phase: StoredPhase::parse(&phase),
            next: step.map(|s| (s as usize, round as u32)),
            due: due.map(from_ms),
            since: from_ms(r.get(6)?),
        },
        silenced_by: r.get(7)?,
    })
}

/// Escalations that are due at `now`, or whose incident changed status since the engine last
/// looked; at most 1000 (the rest come in the next pass). Due ones first, earliest first: rows
/// with nothing due (an exhausted escalation of an acknowledged incident whose policy a reload
/// removed stays here until the policy is back or the incident is resolved) must never crowd
/// out a step that is due.
pub fn needing_attention(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<Vec<StoredEscalation>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} \
         FROM escalations e JOIN incidents i ON i.id = e.incident_id \
         WHERE (e.phase IN ('escalating','acknowledged') AND e.due_at <= ?1) \
            OR (e.phase = 'escalating' AND i.status <> 'triggered') \
            OR (e.phase = 'exhausted' AND i.status <> 'triggered') \
            OR (e.phase = 'acknowledged' AND i.status = 'resolved') \
         ORDER BY e.due_at IS NULL, e.due_at LIMIT 1000"
    ))?;
    let rows = stmt.query_map([ms(now)], from_row)?;
    rows.collect()
}

/// The escalation of incident `id`, if it has one.
pub fn of_incident(conn: &Tx, id: IncidentId) -> rusqlite::Result<Option<StoredEscalation>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM escalations e WHERE e.incident_id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()
}

/// Persists the escalation state of incident `id` (which already has a row).
pub fn save(
    conn: &Tx,
    id: IncidentId,
    policy: &str,
    row: &EscalationRow,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let (phase, step, round, due, since) = row.columns();
    conn.prepare_cached(
        "UPDATE escalations SET policy=?2, phase=?3, next_step=?4, next_round=?5, due_at=?6, since=?7, updated_at=?8 \
         WHERE incident_id=?1",
    )?
    .execute(params![id, policy, phase, step, round, due, since, ms(now)])?;
    Ok(())
}

/// The earliest instant an escalating or acknowledged escalation becomes due.
pub fn next_due(conn: &Tx) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached(
            "SELECT min(due_at) FROM escalations WHERE phase IN ('escalating','acknowledged')",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(t.map(from_ms))
}

/// Open incidents recorded as unrouted that still have no escalation: the ones a config that
/// now routes them may start paging for. Oldest first.
pub fn unrouted(conn: &Tx) -> rusqlite::Result<Vec<IncidentId>> {
    conn.prepare_cached(
        "SELECT i.id FROM incidents i WHERE i.status = 'triggered' AND i.route IS NULL \
         AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.incident_id = i.id) \
         AND EXISTS (SELECT 1 FROM events v WHERE v.incident_id = i.id AND v.kind = 'unrouted') \
         ORDER BY i.id",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

/// Starts the escalation of incident `id` (which has none yet) with `row`.
pub(super) fn insert(
    conn: &Tx,
    id: IncidentId,
    policy: &str,
    row: &EscalationRow,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let (phase, step, round, due, since) = row.columns();
    conn.prepare_cached(
        "INSERT INTO escalations (incident_id, policy, phase, next_step, next_round, due_at, since, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![id, policy, phase, step, round, due, since, ms(now)])?;
    Ok(())
}

/// Gives an unrouted incident its route and starts its escalation with `row`, together: an
/// incident with a route always has its paging state.
pub fn route(
    conn: &Tx,
    id: IncidentId,
    route: &str,
    policy: &str,
    row: &EscalationRow,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    insert(conn, id, policy, row, now)?;
    conn.prepare_cached("UPDATE incidents SET route = ?2 WHERE id = ?1")?
        .execute(params![id, route])?;
    Ok(())
}

/// Remembers that the shift of `user` on `schedule` starting at `shift_from` was announced.
/// Returns false when it already was (each shift start is announced once).
pub fn note_shift_notice(
    conn: &Tx,
    schedule: &str,
    user: &str,
    shift_from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let fresh = conn
        .prepare_cached("INSERT OR IGNORE INTO shift_notices (schedule_id, user_id, shift_from, sent_at) VALUES (?1,?2,?3,?4)")?
        .execute(params![schedule, user, ms(shift_from), ms(now)])?;
    Ok(fresh > 0)
}

/// Open incidents whose policy ran out without an acknowledgement: nobody will be paged for them
/// again unless someone acts, so `/metrics` shows how many there are.
pub fn exhausted_open_count(conn: &Tx) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM escalations e JOIN incidents i ON i.id = e.incident_id \
         WHERE e.phase = 'exhausted' AND i.status = 'triggered'",
    )?
    .query_row([], |r| r.get(0))
}

/// Moves the pending times of open escalations `back` ms earlier after the wall clock was stepped
/// back (see `store::rewind`): a step due in six minutes stays due in six minutes of real time,
/// instead of an hour late when the clock went back an hour. Only times after `now` move.
pub(super) fn rewind(conn: &Tx, back: i64, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let moved = conn.execute(
        "UPDATE escalations SET due_at = due_at - ?1 \
         WHERE phase IN ('escalating','acknowledged') AND due_at > ?2",
        params![back, ms(now)],
    )?;
    conn.execute(
        "UPDATE escalations SET since = since - ?1 WHERE since > ?2",
        params![back, ms(now)],
    )?;
    Ok(moved)
}
