//! The self-test's history: `selftest_runs`, one row per run with its steps as JSON, so
//! `GET /v1/selftest` can show when the paging path last worked end to end. The test SMS itself
//! is an ordinary outbox row (see [`super::outbox`]). Times are bound, never read from SQLite's
//! clock.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::Tx;
use super::{from_ms, ms, Store, StoreError};

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Stable id: `at`, `sim`, `registration`, `signal`, `credit`, `sms`, `delivered`, `reply`.
    pub id: String,
    /// What was checked, for people.
    pub name: String,
    /// `ok`, `failed` or `skipped`.
    pub outcome: Outcome,
    /// What was found (operator, dBm, balance, message reference, why it failed).
    pub detail: String,
    /// How long the step took.
    pub ms: u64,
    /// When it ended, counted from the start of the run.
    pub at_ms: u64,
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Checked and fine.
    Ok,
    /// Checked and not fine: the run fails.
    Failed,
    /// Not checked, because an earlier step failed.
    Skipped,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `POST /v1/selftest` / `pagerbox selftest`.
    Manual,
    /// `[selftest] schedule`.
    Schedule,
}

impl Trigger {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Store id (0 if it could not be stored).
    pub id: i64,
    /// What started it.
    pub trigger: Trigger,
    /// The code carried by the test SMS (and expected in the reply).
    pub code: String,
    /// When it started and ended.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Every step passed (skipped ones aside).
    pub ok: bool,
    /// The first failed step's id.
    pub failed_step: Option<String>,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// Stores a finished run; returns its id.
fn insert_run(conn: &Tx, run: &Run) -> rusqlite::Result<i64> {
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
fn recent_runs(conn: &Tx, limit: usize) -> rusqlite::Result<Vec<Run>> {
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

impl Store {
    /// Stores a finished self-test run; returns its id.
    pub async fn record_selftest_run(&self, run: Run) -> Result<i64, StoreError> {
        self.call(move |c, _| Ok(insert_run(c, &run)?)).await
    }

    /// The newest `limit` self-test runs first (read connection).
    pub async fn selftest_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        self.read(move |c, _| Ok(recent_runs(c, limit)?)).await
    }
}
