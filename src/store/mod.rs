//! The store: one thread owns the SQLite connection; everyone else holds a [`Store`] handle.
//!
//! Why one owner: SQLite wants one writer, and a page that was accepted must be on disk before
//! anyone is told so. Callers send a job over a bounded channel; the store thread takes every job
//! that is waiting (up to [`MAX_BATCH`]), runs them in one transaction, each inside its own
//! savepoint so one failing job cannot undo its neighbours, commits once, and only then answers
//! each caller. That is group commit: under load many alerts share one fsync, and an answer of
//! success always means "committed" (WAL with `synchronous=FULL`).
//!
//! The thread ends when the last handle is dropped, after finishing the batch in hand.

pub mod history;
pub mod outbox;
pub mod overrides;
pub mod queries;
pub mod requests;
pub use queries::{from_ms, ms};
pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::incident::{Actor, Incident, IncidentId, Link, Severity, Status, TimelineEvent};

/// Most jobs committed together.
pub const MAX_BATCH: usize = 512;
/// Jobs that may wait for the store thread before callers are told it is busy.
pub const QUEUE_CAPACITY: usize = 4096;
/// How long a caller waits for room in the queue before giving up with [`StoreError::Busy`].
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("commit failed, nothing was stored: {0}")]
    Commit(String),
    #[error("store queue is full")]
    Busy,
    #[error("store has stopped")]
    Closed,
    #[error("incident #{0} not found")]
    NotFound(IncidentId),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// True when trying again later may succeed (the caller should answer 503/429, not 4xx).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(_) | StoreError::Commit(_) | StoreError::Busy | StoreError::Closed
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

/// What an alert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertAction {
    Trigger,
    Acknowledge,
    Resolve,
}

/// An alert after intake has read it, whatever format it came in.
#[derive(Debug, Clone)]
pub struct AlertInput {
    pub action: AlertAction,
    /// `None` derives a key from source and summary.
    pub dedup_key: Option<String>,
    pub summary: String,
    pub severity: Severity,
    pub source: Option<String>,
    pub service: Option<String>,
    pub details: serde_json::Value,
    pub links: Vec<Link>,
    /// The route that matched, and its policy; `None` pages nobody (recorded on the timeline).
    pub route: Option<String>,
    pub policy: Option<String>,
    /// How long after the trigger the first step is due (flap damping).
    pub pre_page_delay: Duration,
    /// False records the incident without paging anyone.
    pub page: bool,
    /// Which integration sent it.
    pub actor: Actor,
}

impl AlertInput {
    /// The given dedup key, or one derived from source and summary: the first 16 hex digits of
    /// SHA-256 over `source \n summary`, so the same alert text from the same source dedups.
    pub fn dedup_key(&self) -> String {
        match &self.dedup_key {
            Some(k) if !k.is_empty() => k.clone(),
            _ => {
                let mut h = Sha256::new();
                h.update(self.source.as_deref().unwrap_or("").as_bytes());
                h.update(b"\n");
                h.update(self.summary.as_bytes());
                let digest = h.finalize();
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("derived-{hex}")
            }
        }
    }
}

/// What an alert did.
#[derive(Debug, Clone)]
pub enum AlertOutcome {
    /// A new incident was opened.
    Created(Incident),
    /// The key's open incident counted one more alert.
    Repeated(Incident),
    /// Acknowledge or resolve moved the incident on.
    Changed(Incident),
    /// Acknowledge or resolve found the incident already there (or resolved).
    Unchanged(Incident),
    /// Acknowledge or resolve for a key never seen.
    NotFound(String),
}

impl AlertOutcome {
    /// The incident the alert touched, if any.
    pub fn incident(&self) -> Option<&Incident> {
        match self {
            AlertOutcome::Created(i)
            | AlertOutcome::Repeated(i)
            | AlertOutcome::Changed(i)
            | AlertOutcome::Unchanged(i) => Some(i),
            AlertOutcome::NotFound(_) => None,
        }
    }
}

/// A change event (deploys, config pushes): kept for context, never paged.
#[derive(Debug, Clone)]
pub struct ChangeInput {
    pub summary: String,
    pub source: Option<String>,
    pub service: Option<String>,
    pub details: serde_json::Value,
    pub links: Vec<Link>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    Open,
    All,
}

/// Answers the caller once the commit outcome is known (`None` = committed).
type Finisher = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// Runs a job inside the open transaction (or learns that none could be opened) and returns its
/// finisher and whether it succeeded.
type Job =
    Box<dyn FnOnce(Result<(&Connection, DateTime<Utc>), &StoreError>) -> (Finisher, bool) + Send>;

/// Handle to the store thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    commits: watch::Receiver<u64>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it, and starts the store
    /// thread.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        Self::open_observed(path, clock, None)
    }

    /// Like [`Store::open`]; with `metrics`, the store thread times every commit into
    /// `pagerbox_store_commit_seconds` (an atomic histogram: no lock, no extra work on failure).
    pub fn open_observed(
        path: &Path,
        clock: Arc<dyn Clock>,
        metrics: Option<crate::metrics::Metrics>,
    ) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // FULL: every commit is fsynced, so an answer of success survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(1))
            .map_err(open_err)?;
        schema::migrate(&mut conn).map_err(open_err)?;
        Ok(Self::start(conn, clock, metrics))
    }

    fn start(
        conn: Connection,
        clock: Arc<dyn Clock>,
        metrics: Option<crate::metrics::Metrics>,
    ) -> Store {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (commit_tx, commit_rx) = watch::channel(0u64);
        std::thread::Builder::new()
            .name("pagerbox-store".into())
            .spawn(move || run(conn, rx, clock, commit_tx, metrics))
            .expect("spawn store thread");
        Store {
            jobs: tx,
            commits: commit_rx,
        }
    }

    /// A receiver that changes after every commit that wrote something; the escalation engine and
    /// the senders wait on it instead of polling.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Runs `f` on the store thread inside the next transaction and returns its result once that
    /// transaction has committed.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let result = match ctx {
                Ok((conn, now)) => f(conn, now),
                Err(e) => Err(e.clone()),
            };
            let ok = result.is_ok();
            let finisher: Finisher = Box::new(move |commit_err: Option<&StoreError>| {
                let _ = tx.send(match commit_err {
                    None => result,
                    Some(e) => Err(e.clone()),
                });
            });
            (finisher, ok)
        });
        match tokio::time::timeout(ENQUEUE_TIMEOUT, self.jobs.send(job)).await {
            Err(_) => return Err(StoreError::Busy),
            Ok(Err(_)) => return Err(StoreError::Closed),
            Ok(Ok(())) => {}
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies an alert (trigger, acknowledge or resolve by dedup key).
    pub async fn apply_alert(&self, alert: AlertInput) -> Result<AlertOutcome, StoreError> {
        self.call(move |c, now| queries::apply_alert(c, &alert, now))
            .await
    }

    /// Applies several alerts in one transaction: all are stored or none (an Alertmanager group).
    pub async fn apply_alerts(
        &self,
        alerts: Vec<AlertInput>,
    ) -> Result<Vec<AlertOutcome>, StoreError> {
        self.call(move |c, now| {
            alerts
                .iter()
                .map(|a| queries::apply_alert(c, a, now))
                .collect()
        })
        .await
    }

    /// Acknowledges incident `id`. Returns it and whether it changed.
    pub async fn acknowledge(
        &self,
        id: IncidentId,
        actor: Actor,
    ) -> Result<(Incident, bool), StoreError> {
        self.call(move |c, now| queries::transition(c, id, Status::Acknowledged, &actor, now))
            .await
    }

    /// Resolves incident `id`. Returns it and whether it changed.
    pub async fn resolve(
        &self,
        id: IncidentId,
        actor: Actor,
    ) -> Result<(Incident, bool), StoreError> {
        self.call(move |c, now| queries::transition(c, id, Status::Resolved, &actor, now))
            .await
    }

    /// Adds a note to an incident's timeline.
    pub async fn add_note(
        &self,
        id: IncidentId,
        actor: Actor,
        text: String,
    ) -> Result<(), StoreError> {
        self.call(move |c, now| {
            queries::incident(c, id)?.ok_or(StoreError::NotFound(id))?;
            queries::event(c, Some(id), now, "note", Some(&actor), &text, None)?;
            Ok(())
        })
        .await
    }

    /// Records a change event.
    pub async fn record_change(&self, change: ChangeInput) -> Result<i64, StoreError> {
        self.call(move |c, now| Ok(queries::record_change(c, &change, now)?))
            .await
    }

    /// One incident with its timeline.
    pub async fn incident(
        &self,
        id: IncidentId,
    ) -> Result<Option<(Incident, Vec<TimelineEvent>)>, StoreError> {
        self.call(move |c, _| {
            Ok(match queries::incident(c, id)? {
                None => None,
                Some(i) => Some((i, queries::timeline(c, id)?)),
            })
        })
        .await
    }

    /// Incidents, newest first.
    pub async fn incidents(
        &self,
        filter: ListFilter,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        self.call(move |c, _| Ok(queries::list(c, filter, limit)?))
            .await
    }
}

/// The store thread: take a batch, run it in one transaction, commit, answer.
fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    clock: Arc<dyn Clock>,
    commits: watch::Sender<u64>,
    metrics: Option<crate::metrics::Metrics>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut finishers: Vec<Finisher> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = clock.now();
        let changes_before = conn.total_changes();
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let err = StoreError::Commit(e.to_string());
                tracing::error!(error = %err, jobs = batch.len(), "store cannot begin a transaction");
                for job in batch.drain(..) {
                    let (finish, _) = job(Err(&err));
                    finish(None);
                }
                continue;
            }
        };
        for job in batch.drain(..) {
            if let Err(e) = tx.execute_batch("SAVEPOINT job") {
                let err = StoreError::Sqlite(e.to_string());
                let (finish, _) = job(Err(&err));
                finishers.push(finish);
                continue;
            }
            let (finish, ok) = job(Ok((&tx, now)));
            if !ok {
                // Undo whatever the failed job wrote; its neighbours keep theirs.
                let _ = tx.execute_batch("ROLLBACK TO job");
            }
            let _ = tx.execute_batch("RELEASE job");
            finishers.push(finish);
        }
        // Only a batch that changed rows wakes the commit watchers: the engine, the senders and
        // the panel read the store when woken, and a read must not wake them again.
        let wrote = tx.total_changes() != changes_before;
        let commit_started = std::time::Instant::now();
        let committed = tx.commit();
        if let Some(m) = &metrics {
            m.store_commit(commit_started.elapsed());
        }
        match committed {
            Ok(()) => {
                // Wake the watchers before answering, so a caller that acts on its answer never
                // finds them still asleep on the old state.
                if wrote {
                    commits.send_modify(|n| *n = n.wrapping_add(1));
                }
                for f in finishers.drain(..) {
                    f(None);
                }
            }
            Err(e) => {
                let err = StoreError::Commit(e.to_string());
                tracing::error!(error = %err, jobs = finishers.len(), "store commit failed");
                for f in finishers.drain(..) {
                    f(Some(&err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
