//! The self-test's rows: `selftest_runs` (one per run, steps as JSON), and the look at the
//! test SMS's outbox row. Plain functions run inside [`crate::store::Store::call`]; times are
//! bound, never read from SQLite's clock.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Run, Step, Trigger};
use crate::store::{from_ms, ms};

/// Stores a finished run; returns its id.
pub fn insert_run(conn: &Connection, run: &Run) -> rusqlite::Result<i64> {
    let steps = serde_json::to_string(&run.steps)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(
        "INSERT INTO selftest_runs (trigger, code, started_at, finished_at, ok, failed_step, steps) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        run.trigger.as_str(),
        run.code,
        ms(run.started_at),
        ms(run.finished_at),
        run.ok,
        run.failed_step,
        steps
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The newest runs first.
pub fn recent_runs(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Run>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, trigger, code, started_at, finished_at, ok, failed_step, steps \
         FROM selftest_runs ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let trigger: String = r.get(1)?;
        let steps: String = r.get(7)?;
        Ok(Run {
            id: r.get(0)?,
            trigger: if trigger == "schedule" {
                Trigger::Schedule
            } else {
                Trigger::Manual
            },
            code: r.get(2)?,
            started_at: from_ms(r.get(3)?),
            finished_at: from_ms(r.get(4)?),
            ok: r.get(5)?,
            failed_step: r.get(6)?,
            steps: serde_json::from_str::<Vec<Step>>(&steps).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// Where the test SMS's outbox row stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageState {
    /// `pending`, `sending`, `sent`, `delivered`, `failed`, `cancelled`.
    pub state: String,
    /// The `+CMGS` message reference(s), once sent.
    pub reference: Option<String>,
    /// The last failure, while retrying or after giving up.
    pub last_error: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
}

/// The state of outbox row `id`.
pub fn page_state(conn: &Connection, id: i64) -> rusqlite::Result<Option<PageState>> {
    conn.prepare_cached("SELECT state, reference, last_error, attempts FROM outbox WHERE id=?1")?
        .query_row([id], |r| {
            Ok(PageState {
                state: r.get(0)?,
                reference: r.get(1)?,
                last_error: r.get(2)?,
                attempts: r.get(3)?,
            })
        })
        .optional()
}

/// Withdraws a test SMS that is still waiting (the run gave up on it), so it does not go out
/// hours later when the modem is back. A row being sent right now is left alone.
pub fn withdraw_page(
    conn: &Connection,
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE outbox SET state='cancelled', last_error=?2, updated_at=?3 WHERE id=?1 AND state='pending'",
        params![id, reason, ms(now)],
    )?;
    Ok(n > 0)
}
