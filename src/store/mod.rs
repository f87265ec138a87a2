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

mod checkpoint;
mod error;
pub mod escalations;
pub mod events;
mod health;
pub(crate) mod heartbeats;
pub mod history;
pub mod kinds;
mod levels;
pub mod outbound;
pub mod outbox;
pub mod overrides;
pub mod pages;
// Pair hook: the pair's own rows and reads, only in builds with the `ha` feature.
#[cfg(feature = "ha")]
pub mod pair;
pub mod queries;
pub mod requests;
mod rewind;
pub mod selftest_runs;
pub mod silences;
pub mod standby;
pub use error::StoreError;
pub use health::{StoreFault, StoreFaults, WriteHealth};
pub use levels::Levels;
pub(crate) mod schema;

use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::incident::{Actor, Incident, IncidentId, Link, Severity, Status, TimelineEvent};

/// A time as the store keeps it: milliseconds since the Unix epoch, bound as a parameter
/// (never SQLite's own clock, so the injected clock rules every row).
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time back; a value out of range reads as the epoch rather than failing the row.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The open transaction a store job runs in, as [`Store::call`] and [`Store::read`] hand it to
/// their closure. Modules outside the store only pass it on to the store's typed operations
/// (so several of them commit together); they can neither open one nor run SQL through it,
/// because the connection inside and the methods that reach it are private to the store. That
/// keeps every statement in this module, beside the schema it depends on.
pub struct Tx<'a>(TxConn<'a>);

/// What a [`Tx`] runs its statements on.
enum TxConn<'a> {
    /// The transaction of a job on the writer or the reader thread.
    Job(&'a Connection),
    /// A unit test's own database, which the test holds for as long as it runs.
    #[cfg(test)]
    Owned(Connection),
}

impl<'a> Tx<'a> {
    /// The job's transaction, for the closure the store thread runs it with.
    fn job(conn: &'a Connection) -> Tx<'a> {
        Tx(TxConn::Job(conn))
    }

    /// A test database as a transaction, for unit tests of code that runs inside a store job.
    #[cfg(test)]
    pub(crate) fn owned(conn: Connection) -> Tx<'static> {
        Tx(TxConn::Owned(conn))
    }

    /// The connection the store's operations run their SQL on.
    fn conn(&self) -> &Connection {
        match &self.0 {
            TxConn::Job(c) => c,
            #[cfg(test)]
            TxConn::Owned(c) => c,
        }
    }

    /// A statement from the connection's cache (see [`Connection::prepare_cached`]).
    pub(in crate::store) fn prepare_cached(
        &self,
        sql: &str,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        self.conn().prepare_cached(sql)
    }

    /// Runs one statement (see [`Connection::execute`]).
    pub(in crate::store) fn execute<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> rusqlite::Result<usize> {
        self.conn().execute(sql, params)
    }

    /// The first row of a query (see [`Connection::query_row`]).
    pub(in crate::store) fn query_row<T, P, F>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.conn().query_row(sql, params, f)
    }

    /// The rowid of the last insert on this connection.
    pub(in crate::store) fn last_insert_rowid(&self) -> i64 {
        self.conn().last_insert_rowid()
    }
}

/// A migrated in-memory database for unit tests of code that runs inside a store job.
#[cfg(test)]
pub(crate) fn memory() -> Tx<'static> {
    let mut c = Connection::open_in_memory().expect("in-memory database");
    schema::migrate(&mut c).expect("migrations apply to a fresh database");
    Tx::owned(c)
}

/// Most jobs committed together.
pub const MAX_BATCH: usize = 512;
/// Jobs that may wait for the store thread before callers are told it is busy.
pub const QUEUE_CAPACITY: usize = 4096;
/// Reads that may wait for the read thread before callers are told it is busy. Reads come from
/// people and scrapers, not from paging, so a short queue that refuses early is kinder than one
/// that makes every page of the status page wait behind a long backlog.
pub const READ_QUEUE_CAPACITY: usize = 256;
/// How long a caller waits for room in the queue before giving up with [`StoreError::Busy`].
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// When nothing was written for this long, the writer makes a one-row probe write, so an idle
/// box notices a full disk or a read-only file before an alert needs the store.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10);

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
    /// A critical trigger with dedup key `key` for service `service`, on no route yet: the
    /// common start of the alerts unit tests apply, each setting what it is about.
    #[cfg(test)]
    pub(crate) fn test_trigger(key: &str, service: &str) -> AlertInput {
        AlertInput {
            action: AlertAction::Trigger,
            dedup_key: Some(key.into()),
            summary: format!("{service} down"),
            severity: Severity::Critical,
            source: None,
            service: Some(service.into()),
            details: serde_json::Value::Null,
            links: vec![],
            route: None,
            policy: None,
            pre_page_delay: Duration::ZERO,
            page: true,
            actor: Actor::new("t", "test"),
        }
    }

    /// The given dedup key, or one derived from source and summary: the first 16 hex digits of
    /// SHA-256 over `source \n summary`, so the same alert text from the same source dedups.
    /// An alert that names its service hashes `\n service` too: "disk full" for the database
    /// and "disk full" for the web team are two incidents on two routes, not one paging only
    /// whoever was first.
    pub fn dedup_key(&self) -> String {
        match &self.dedup_key {
            Some(k) if !k.is_empty() => k.clone(),
            _ => self.derived_key(true),
        }
    }

    /// The key an earlier version derived for this alert, from source and summary only, when it
    /// differs from today's (the alert has no key of its own and names a service): an incident
    /// opened under it before an upgrade is still this alert's.
    pub(crate) fn earlier_key(&self) -> Option<String> {
        let own = self.dedup_key.as_deref().is_some_and(|k| !k.is_empty());
        let service = self.service.as_deref().is_some_and(|s| !s.is_empty());
        (!own && service).then(|| self.derived_key(false))
    }

    fn derived_key(&self, with_service: bool) -> String {
        let mut h = Sha256::new();
        h.update(self.source.as_deref().unwrap_or("").as_bytes());
        h.update(b"\n");
        h.update(self.summary.as_bytes());
        if let Some(service) = self
            .service
            .as_deref()
            .filter(|s| with_service && !s.is_empty())
        {
            h.update(b"\n");
            h.update(service.as_bytes());
        }
        let digest = h.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("derived-{hex}")
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
    /// Whether the commit watchers must hear of this outcome: a repeat changed only the open
    /// incident's count and last-seen time, which no watcher acts on.
    fn wake(&self) -> Wake {
        match self {
            AlertOutcome::Repeated(_) => Wake::Nobody,
            _ => Wake::Watchers,
        }
    }

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
/// What a job's closure said: whether what it wrote concerns the commit watchers, or its own
/// error (the caller's reply is in the finisher).
type JobOutcome = Result<Wake, StoreError>;
/// What a read's closure said: `Ok` or its own error.
type ReadOutcome = Result<(), StoreError>;

/// Whether a job's rows are news for the tasks that wait on [`Store::commits`] (the escalation
/// engine, the senders, the panel, outbound): each of them reads the store when woken, so a
/// wake-up costs a round of queries on the writer. A repeat of an alert whose incident is
/// already open changes nothing any of them acts on (no page, no status, no open count), so a
/// batch of nothing but repeats commits without waking them; any other write in the same batch
/// wakes them as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Watchers,
    Nobody,
}
/// The connection and the batch's time, or why no transaction could be opened for the job.
type Ctx<'a> = Result<(&'a Connection, DateTime<Utc>), &'a StoreError>;

/// A write job's body: see [`Job`].
type RunJob = Box<dyn FnOnce(Ctx<'_>) -> (Finisher, JobOutcome) + Send>;
/// Sends a read's result to its caller.
type Answer = Box<dyn FnOnce() + Send>;
/// A read job's body: see [`Read`].
type RunRead = Box<dyn FnOnce(Ctx<'_>) -> (Answer, ReadOutcome) + Send>;

/// A write job: runs inside the open transaction (or learns that none could be opened) and
/// returns its finisher and its outcome.
struct Job {
    run: RunJob,
    /// Where the call came from, for the log line of a fault.
    caller: &'static Location<'static>,
}

/// A read job for the read thread: runs, and returns the answer to send once the thread has
/// noted its outcome.
struct Read {
    run: RunRead,
    caller: &'static Location<'static>,
}

/// Hears what the store thread measures: how long each commit took, and steps of the wall clock
/// back. The store only measures; what is done with the figures (the daemon's `/metrics`)
/// belongs to the caller, so the store does not depend on the metrics module. Called on the
/// store thread: it must not block.
pub trait StoreObserver: Send + 'static {
    /// One commit (or failed commit attempt) took `took`.
    fn commit_took(&self, took: Duration);
    /// The wall clock was found stepped back by `by`, and the pending times moved with it.
    fn clock_stepped_back(&self, by: Duration);
}

/// Handle to the store threads. Cheap to clone: one reference count, because intake clones the
/// handle (inside its shared state) several times for every request.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Handles>,
}

/// What every [`Store`] handle shares.
struct Handles {
    jobs: mpsc::Sender<Job>,
    reads: mpsc::Sender<Read>,
    commits: watch::Receiver<u64>,
    health: watch::Receiver<WriteHealth>,
    faults: watch::Receiver<StoreFaults>,
    /// The clock that stamps every row, so tasks that compare with stored times use the same.
    clock: Arc<dyn Clock>,
}

impl Store {
    /// The current instant on the store's clock: the one every task compares stored due times
    /// and leases with, so a test clock moves all of them together.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.clock.now()
    }

    /// The steps of the store's clock, for tasks that sleep until a stored due time.
    pub fn clock_steps(&self) -> crate::clock::Steps {
        self.shared.clock.steps()
    }

    /// Opens (creating if needed) the database at `path`, migrates it, and starts the store
    /// threads.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        Self::open_timed(path, clock, None)
    }

    /// Like [`Store::open`]; with `timer`, the store thread tells it how long every commit took
    /// (the daemon passes its `Metrics`, which keep `pagerbox_store_commit_seconds`: an atomic
    /// histogram, no lock, no extra work on failure).
    pub fn open_observed<T: StoreObserver>(
        path: &Path,
        clock: Arc<dyn Clock>,
        timer: Option<T>,
    ) -> Result<Store, StoreError> {
        Self::open_timed(
            path,
            clock,
            timer.map(|t| Box::new(t) as Box<dyn StoreObserver>),
        )
    }

    fn open_timed(
        path: &Path,
        clock: Arc<dyn Clock>,
        metrics: Option<Box<dyn StoreObserver>>,
    ) -> Result<Store, StoreError> {
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_path_buf(),
            source: Arc::from(e),
        };
        let sql_err = |e: rusqlite::Error| open_err(Box::new(e));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        }
        let mut conn = Connection::open(path).map_err(sql_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        // FULL: every commit is fsynced, so an answer of success survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql_err)?;
        conn.busy_timeout(Duration::from_secs(1)).map_err(sql_err)?;
        schema::migrate(&mut conn).map_err(sql_err)?;
        // The reader opens after the migration, so it never sees a half-made schema. Read-only
        // twice over: the open flag, and `query_only` so a write slipped into a read fails loudly
        // instead of taking the write lock behind the writer's back.
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sql_err)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(sql_err)?;
        // A WAL reader waits only while a checkpoint resets the log or the file is recovered.
        reader
            .busy_timeout(Duration::from_secs(2))
            .map_err(sql_err)?;
        let checkpoints = checkpoint::Checkpoints::start(&conn, path);
        Self::start(conn, reader, checkpoints, clock, metrics).map_err(|e| open_err(Box::new(e)))
    }

    fn start(
        conn: Connection,
        reader: Connection,
        checkpoints: Option<checkpoint::Checkpoints>,
        clock: Arc<dyn Clock>,
        metrics: Option<Box<dyn StoreObserver>>,
    ) -> std::io::Result<Store> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (read_tx, read_rx) = mpsc::channel(READ_QUEUE_CAPACITY);
        let (commit_tx, commit_rx) = watch::channel(0u64);
        let (health_tx, health_rx) = watch::channel(WriteHealth::Ok);
        let (faults_tx, faults_rx) = watch::channel(StoreFaults::default());
        let signals = Arc::new(health::Signals {
            commits: commit_tx,
            health: health_tx,
            faults: faults_tx,
        });
        let read_signals = signals.clone();
        let read_clock = clock.clone();
        std::thread::Builder::new()
            .name("pagerbox-store-read".into())
            .spawn(move || run_reads(reader, read_rx, read_clock, read_signals))?;
        let write_clock = clock.clone();
        std::thread::Builder::new()
            .name("pagerbox-store".into())
            .spawn(move || run(conn, rx, checkpoints, write_clock, signals, metrics))?;
        Ok(Store {
            shared: Arc::new(Handles {
                jobs: tx,
                reads: read_tx,
                commits: commit_rx,
                health: health_rx,
                faults: faults_rx,
                clock,
            }),
        })
    }

    /// A receiver that changes after every commit that wrote something; the escalation engine and
    /// the senders wait on it instead of polling.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.shared.commits.clone()
    }

    /// Whether the store can write (disk full, read-only or failing file, I/O errors), from the
    /// outcome of every batch that wrote and of the idle probe write. For `/healthz`: paging is
    /// impaired while this is [`WriteHealth::Failing`].
    pub fn write_health(&self) -> watch::Receiver<WriteHealth> {
        self.shared.health.clone()
    }

    /// The faults of ours (constraint, schema, misuse...) the store has met: how many, and the
    /// latest with when and where. For `/healthz` and the operator.
    pub fn faults(&self) -> watch::Receiver<StoreFaults> {
        self.shared.faults.clone()
    }

    /// Runs `f` on the store thread inside the next transaction and returns its result once that
    /// transaction has committed. Every reply is the truth about the caller's own job: `Ok` only
    /// after its rows are committed, an error only when none of them remain.
    #[track_caller]
    pub fn call<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>> + Send + '_
    where
        T: Send + 'static,
        F: FnOnce(&Tx, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, Location::caller(), |_| Wake::Watchers)
    }

    /// [`Store::call`], with `wake` deciding from the job's own result whether its rows wake the
    /// commit watchers (see [`Wake`]).
    async fn submit<T, F>(
        &self,
        f: F,
        caller: &'static Location<'static>,
        wake: fn(&T) -> Wake,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        if crate::fault::armed("store.busy") {
            return Err(StoreError::Busy);
        }
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |ctx: Ctx<'_>| {
            let result = match ctx {
                Ok((conn, now)) => f(&Tx::job(conn), now),
                Err(e) => Err(e.clone()),
            };
            let outcome = match &result {
                Ok(v) => Ok(wake(v)),
                Err(e) => Err(e.clone()),
            };
            let finisher: Finisher = Box::new(move |commit_err: Option<&StoreError>| {
                let _ = tx.send(match commit_err {
                    None => result,
                    Some(e) => Err(e.clone()),
                });
            });
            (finisher, outcome)
        });
        let job = Job { run, caller };
        enqueue(&self.shared.jobs, job).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the read thread, over its own read-only connection, and returns its result.
    ///
    /// For everything that only reads (reports, stats, metrics, the status page, `/healthz`,
    /// timelines): it never queues behind a group commit and never holds up a write. `f` sees a
    /// consistent snapshot of the last commit (one read transaction); a write in `f` fails. A
    /// read that decides a write must use [`Store::call`] instead, so nothing changes in between.
    #[track_caller]
    pub fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>> + Send + '_
    where
        T: Send + 'static,
        F: FnOnce(&Tx, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        let caller = Location::caller();
        async move {
            let (tx, rx) = oneshot::channel();
            let run = Box::new(move |ctx: Ctx<'_>| {
                let result = match ctx {
                    Ok((conn, now)) => f(&Tx::job(conn), now),
                    Err(e) => Err(e.clone()),
                };
                let outcome = match &result {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.clone()),
                };
                let answer: Answer = Box::new(move || {
                    let _ = tx.send(result);
                });
                (answer, outcome)
            });
            let read = Read { run, caller };
            enqueue(&self.shared.reads, read).await?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// A round trip through the writer thread: proves it still takes jobs (the watchdog and
    /// `/healthz` ask). Whether the file takes writes is [`Store::write_health`].
    #[track_caller]
    pub fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        self.call(|c, _| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
    }

    /// Applies an alert (trigger, acknowledge or resolve by dedup key). A repeat of an open
    /// incident's alert wakes no commit watcher (see [`Wake`]).
    #[track_caller]
    pub fn apply_alert(
        &self,
        alert: AlertInput,
    ) -> impl Future<Output = Result<AlertOutcome, StoreError>> + Send + '_ {
        self.submit(
            move |c, now| queries::apply_alert(c, &alert, now),
            Location::caller(),
            |o| o.wake(),
        )
    }

    /// Applies several alerts in one transaction: all are stored or none (an Alertmanager group).
    #[track_caller]
    pub fn apply_alerts(
        &self,
        alerts: Vec<AlertInput>,
    ) -> impl Future<Output = Result<Vec<AlertOutcome>, StoreError>> + Send + '_ {
        self.submit(
            move |c, now| {
                alerts
                    .iter()
                    .map(|a| queries::apply_alert(c, a, now))
                    .collect()
            },
            Location::caller(),
            |outcomes: &Vec<AlertOutcome>| {
                if outcomes.iter().all(|o| o.wake() == Wake::Nobody) {
                    Wake::Nobody
                } else {
                    Wake::Watchers
                }
            },
        )
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
            crate::store::events::record(
                c,
                Some(id),
                now,
                crate::store::kinds::EventKind::Note,
                Some(&actor),
                &text,
                None,
            )?;
            Ok(())
        })
        .await
    }

    /// Records a change event.
    pub async fn record_change(&self, change: ChangeInput) -> Result<i64, StoreError> {
        self.call(move |c, now| Ok(queries::record_change(c, &change, now)?))
            .await
    }

    /// One incident with its timeline (read connection).
    pub async fn incident(
        &self,
        id: IncidentId,
    ) -> Result<Option<(Incident, Vec<TimelineEvent>)>, StoreError> {
        self.read(move |c, _| {
            Ok(match queries::incident(c, id)? {
                None => None,
                Some(i) => Some((i, queries::timeline(c, id)?)),
            })
        })
        .await
    }

    /// The open incidents the panel shows. Runs on the writer, like every read that follows a
    /// commit notification, so it never sees a state older than the commit that woke it.
    pub async fn open_counts(&self) -> Result<queries::OpenCounts, StoreError> {
        self.call(|c, now| Ok(queries::open_counts(c, now)?)).await
    }

    /// Incidents, newest first (read connection).
    pub async fn incidents(
        &self,
        filter: ListFilter,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        self.read(move |c, _| Ok(queries::list(c, filter, limit)?))
            .await
    }
}

/// Hands `job` to a store thread: at once when the queue has room (the common case, which then
/// costs no timer), else waiting up to [`ENQUEUE_TIMEOUT`] for room before answering
/// [`StoreError::Busy`].
async fn enqueue<J>(queue: &mpsc::Sender<J>, job: J) -> Result<(), StoreError> {
    match queue.try_send(job) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Closed),
        Err(mpsc::error::TrySendError::Full(job)) => {
            match tokio::time::timeout(ENQUEUE_TIMEOUT, queue.send(job)).await {
                Err(_) => Err(StoreError::Busy),
                Ok(Err(_)) => Err(StoreError::Closed),
                Ok(Ok(())) => Ok(()),
            }
        }
    }
}

/// The store thread: take a batch, run it in one transaction, commit, answer; probe the disk
/// when idle.
fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    mut checkpoints: Option<checkpoint::Checkpoints>,
    clock: Arc<dyn Clock>,
    signals: Arc<health::Signals>,
    metrics: Option<Box<dyn StoreObserver>>,
) {
    // Every commit must be one of ours (the batch's, or the probe's). A statement that runs
    // after SQLite rolled the transaction back on its own (disk full, I/O error) would otherwise
    // autocommit; vetoed, it fails and leaves nothing behind.
    let allow_commit = Arc::new(AtomicBool::new(false));
    let gate = allow_commit.clone();
    conn.commit_hook(Some(move || !gate.load(Ordering::SeqCst)));
    let writer = Writer {
        allow_commit,
        signals,
        metrics,
    };
    // A timer for the idle wait; the thread stays a plain thread otherwise.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::error!(error = %e, "store thread has no timer: the idle probe write is off");
            None
        }
    };
    let mut batch: VecDeque<Job> = VecDeque::with_capacity(MAX_BATCH);
    let mut last_write = Instant::now();
    let mut wall = rewind::WallWatch::new(clock.now());
    loop {
        let Some(first) = next_job(&mut jobs, rt.as_ref(), last_write) else {
            break;
        };
        // Before any job reads or writes a time: a step back found now moves the pending
        // times first, so no job sees them still on the old clock.
        let now = clock.now();
        match wall.observe(now) {
            rewind::Reading::InOrder => {}
            rewind::Reading::SteppedBack(back) => {
                if writer.rewind(&mut conn, back, now) {
                    wall.settle(now);
                }
            }
            rewind::Reading::Implausible(back) => {
                tracing::error!(
                    back_seconds = back.num_milliseconds() as f64 / 1000.0,
                    %now,
                    "the wall clock went back to an implausible time (it lost its time?); pending times are left as they are, and pages due later wait until the clock is set again"
                );
                wall.settle(now);
            }
        }
        if let Some(first) = first {
            batch.push_back(first);
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push_back(job),
                    Err(_) => break,
                }
            }
            if writer.run_batch(&mut conn, &mut batch, now) {
                last_write = Instant::now();
                if let Some(c) = &mut checkpoints {
                    c.after_commit(&conn);
                }
            }
        }
        if last_write.elapsed() >= PROBE_INTERVAL {
            writer.probe(&mut conn, clock.now());
            last_write = Instant::now();
            if let Some(c) = &mut checkpoints {
                c.after_commit(&conn);
            }
        }
    }
}

/// The next job for the store thread: `Some(None)` when none came before the idle probe is
/// due, `None` when every handle is gone (the thread ends).
fn next_job(
    jobs: &mut mpsc::Receiver<Job>,
    rt: Option<&tokio::runtime::Runtime>,
    last_write: Instant,
) -> Option<Option<Job>> {
    match jobs.try_recv() {
        Ok(job) => Some(Some(job)),
        Err(mpsc::error::TryRecvError::Disconnected) => None,
        Err(mpsc::error::TryRecvError::Empty) => match rt {
            Some(rt) => {
                let wait = PROBE_INTERVAL.saturating_sub(last_write.elapsed());
                match rt.block_on(async { tokio::time::timeout(wait, jobs.recv()).await }) {
                    Ok(Some(job)) => Some(Some(job)),
                    Ok(None) => None,
                    Err(_) => Some(None),
                }
            }
            None => jobs.blocking_recv().map(Some),
        },
    }
}

/// What the store thread needs besides its connection.
struct Writer {
    /// Opens the commit hook's gate for our own commits only.
    allow_commit: Arc<AtomicBool>,
    signals: Arc<health::Signals>,
    metrics: Option<Box<dyn StoreObserver>>,
}

impl Writer {
    /// Runs `batch` and answers every job in it. Jobs share one transaction, each in its own
    /// savepoint. If a savepoint cannot be rolled back or released, or SQLite rolls the whole
    /// transaction back by itself (disk full, I/O error), the transaction is abandoned: every job
    /// that ran in it is told [`StoreError::Aborted`] (retryable, none of its rows remain) and the
    /// jobs not yet run go on in a fresh transaction. They never ran, so running them is safe, and
    /// a small alert queued behind one that overflowed the disk still gets its chance. Each round
    /// answers at least one job, so this ends.
    ///
    /// Returns true when a write outcome (commit or failure) was learnt, which makes the probe
    /// write unnecessary for a while.
    ///
    /// One function on purpose: the open transaction, the answers owed to the jobs that ran in
    /// it and the choice between commit and abandon are one piece of state, and each exit path
    /// must answer every one of those jobs exactly once; split up, that promise would be spread
    /// over several functions handing the same three things back and forth.
    fn run_batch(
        &self,
        conn: &mut Connection,
        batch: &mut VecDeque<Job>,
        now: DateTime<Utc>,
    ) -> bool {
        let mut learnt = false;
        while !batch.is_empty() {
            let changes_before = conn.total_changes();
            let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
                Ok(tx) => tx,
                Err(e) => {
                    let err = StoreError::Commit(Arc::new(e));
                    tracing::error!(error = %err, jobs = batch.len(), "store cannot begin a transaction");
                    self.signals.write_failed(&err, now);
                    for job in batch.drain(..) {
                        let (finish, _) = (job.run)(Err(&err));
                        finish(None);
                    }
                    return true;
                }
            };
            // Jobs that ran in this transaction, answered once its fate is known.
            let mut ran: Vec<Finisher> = Vec::with_capacity(batch.len());
            // A job that was told why it could not run (already holds its error).
            let mut refused: Option<Finisher> = None;
            let mut abort: Option<Arc<rusqlite::Error>> = None;
            // Whether a job that wrote rows asked for the commit watchers to be woken.
            let mut wake = false;
            while let Some(job) = batch.pop_front() {
                let changes_before_job = tx.total_changes();
                if let Err(e) = savepoint(&tx, "SAVEPOINT job") {
                    let e = Arc::new(e);
                    let (finish, _) = (job.run)(Err(&StoreError::Commit(e.clone())));
                    refused = Some(finish);
                    abort = Some(e);
                    break;
                }
                let (finish, outcome) = (job.run)(Ok((&tx, now)));
                ran.push(finish);
                match &outcome {
                    Err(e) => self.signals.job_failed(e, job.caller, now),
                    Ok(Wake::Watchers) => wake |= tx.total_changes() != changes_before_job,
                    Ok(Wake::Nobody) => {}
                }
                if let Err(e) = close_savepoint(&tx, &outcome) {
                    abort = Some(e);
                    break;
                }
            }
            if let Some(cause) = abort {
                let err = StoreError::Aborted(cause);
                tracing::error!(
                    error = %err,
                    rolled_back = ran.len(),
                    still_to_run = batch.len(),
                    "store abandoned a batch's transaction; its jobs are told to retry"
                );
                // Drop rolls back whatever is still open (nothing, if SQLite already did).
                drop(tx);
                self.signals.write_failed(&err, now);
                learnt = true;
                for f in ran {
                    f(Some(&err));
                }
                if let Some(f) = refused {
                    f(None);
                }
                continue;
            }
            // Only a batch that changed rows wakes the commit watchers: the engine, the senders
            // and the panel read the store when woken, and a read must not wake them again; nor
            // must a batch whose only writes are alert repeats (see [`Wake`]).
            let wrote = tx.total_changes() != changes_before;
            match self.commit(tx, wrote) {
                Ok(()) => {
                    if wrote {
                        self.signals.write_ok();
                        learnt = true;
                    }
                    if wake {
                        // Wake the watchers before answering, so a caller that acts on its answer
                        // never finds them still asleep on the old state.
                        self.signals.commits.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    for f in ran {
                        f(None);
                    }
                }
                Err(e) => {
                    let err = StoreError::Commit(Arc::new(e));
                    tracing::error!(error = %err, jobs = ran.len(), "store commit failed");
                    self.signals.write_failed(&err, now);
                    learnt = true;
                    for f in ran {
                        f(Some(&err));
                    }
                }
            }
            return learnt;
        }
        learnt
    }

    /// Commits `tx` through the commit hook's gate, timing it. The `store.ioerr` and `store.full`
    /// fault points fail a commit that has changes the way SQLite would: rolled back, with its
    /// result code.
    fn commit(&self, tx: rusqlite::Transaction<'_>, wrote: bool) -> rusqlite::Result<()> {
        let injected = if !wrote {
            None
        } else if crate::fault::armed("store.ioerr") {
            Some(StoreError::simulated(
                rusqlite::ffi::SQLITE_IOERR_WRITE,
                "disk I/O error (fault point store.ioerr)",
            ))
        } else if crate::fault::armed("store.full") {
            Some(StoreError::simulated(
                rusqlite::ffi::SQLITE_FULL,
                "database or disk is full (fault point store.full)",
            ))
        } else {
            None
        };
        let started = Instant::now();
        let committed = match injected {
            Some(e) => {
                drop(tx);
                Err(e)
            }
            None => {
                self.allow_commit.store(true, Ordering::SeqCst);
                let r = tx.commit();
                self.allow_commit.store(false, Ordering::SeqCst);
                r
            }
        };
        if let Some(m) = &self.metrics {
            m.commit_took(started.elapsed());
        }
        committed
    }

    /// The wall clock went `back` since the last reading: moves every pending time back with it
    /// (see [`rewind`]), in its own transaction, and says so loudly: the box's clock was wrong
    /// before or is wrong now, and people reading timelines need to know. Returns whether the
    /// times moved (a failure is tried again at the next batch).
    fn rewind(&self, conn: &mut Connection, back: chrono::Duration, now: DateTime<Utc>) -> bool {
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let moved = rewind::rewind(&Tx::job(&tx), back, now)?;
                self.commit(tx, true)?;
                Ok(moved)
            });
        let seconds = back.num_milliseconds() as f64 / 1000.0;
        match result {
            Ok(moved) => {
                tracing::error!(
                    back_seconds = seconds,
                    now = %now,
                    escalations = moved.escalations,
                    pages = moved.pages,
                    holds = moved.holds,
                    heartbeats = moved.heartbeats,
                    "the wall clock was stepped back; pending escalation steps, pages, holds and heartbeat deadlines, and timeline times stamped on the clock that ran ahead, moved back with it so they keep their real delays"
                );
                self.signals.commits.send_modify(|n| *n = n.wrapping_add(1));
                if let Some(m) = &self.metrics {
                    m.clock_stepped_back(back.to_std().unwrap_or_default());
                }
                true
            }
            Err(e) => {
                let err = StoreError::Commit(Arc::new(e));
                tracing::error!(error = %err, back_seconds = seconds, "the wall clock was stepped back and the store could not move the pending times yet (trying again at the next write): escalation steps and pages are late by the step until it does");
                self.signals.write_failed(&err, now);
                false
            }
        }
    }

    /// A one-row write that proves the file still takes writes (or shows it does not).
    fn probe(&self, conn: &mut Connection, now: DateTime<Utc>) {
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                tx.execute("UPDATE store_probe SET at = ?1", [queries::ms(now)])?;
                self.commit(tx, true)
            });
        match result {
            Ok(()) => self.signals.write_ok(),
            Err(e) => {
                let err = StoreError::Commit(Arc::new(e));
                tracing::warn!(error = %err, "store probe write failed");
                self.signals.write_failed(&err, now);
            }
        }
    }
}

/// Rolls a failed job back to its savepoint and releases it, and checks the transaction is still
/// open. An error means the batch's transaction cannot be trusted any more.
fn close_savepoint(tx: &Connection, outcome: &JobOutcome) -> Result<(), Arc<rusqlite::Error>> {
    let gone = || {
        Arc::new(StoreError::simulated(
            rusqlite::ffi::SQLITE_ABORT,
            "SQLite rolled the batch's transaction back",
        ))
    };
    if tx.is_autocommit() {
        // A statement in the job failed in a way that ended the whole transaction. Its own
        // error is the better cause to report, when it has one.
        return Err(match outcome {
            Err(StoreError::Sqlite(e)) | Err(StoreError::Commit(e)) => e.clone(),
            _ => gone(),
        });
    }
    if outcome.is_err() {
        // Undo whatever the failed job wrote; its neighbours keep theirs.
        savepoint(tx, "ROLLBACK TO job").map_err(Arc::new)?;
    }
    savepoint(tx, "RELEASE job").map_err(Arc::new)?;
    if tx.is_autocommit() {
        return Err(gone());
    }
    Ok(())
}

/// Runs one of the savepoint statements every job is wrapped in, from the connection's statement
/// cache: two of them per job, so parsing them anew each time was a visible part of a batch.
fn savepoint(tx: &Connection, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The read thread: one read transaction per read, over the read-only connection.
fn run_reads(
    mut conn: Connection,
    mut reads: mpsc::Receiver<Read>,
    clock: Arc<dyn Clock>,
    signals: Arc<health::Signals>,
) {
    // Its reads are for people and scrapers (reports, stats, the status page, `/metrics`) and
    // for tasks that poll; nothing on the paging path reads here, so it yields the CPU to it.
    crate::supervisor::yield_to_paging();
    while let Some(read) = reads.blocking_recv() {
        let now = clock.now();
        // Deferred: a snapshot of the last commit, taken at the first statement.
        let (answer, outcome) = match conn.transaction() {
            Ok(tx) => (read.run)(Ok((&tx, now))),
            Err(e) => {
                let err = StoreError::Sqlite(Arc::new(e));
                (read.run)(Err(&err))
            }
        };
        if let Err(e) = outcome {
            // A write attempted over the read connection is a fault of ours too.
            if e.is_fault() || e.sqlite_code() == Some(rusqlite::ErrorCode::ReadOnly) {
                signals.fault(&e, read.caller, now);
            }
        }
        answer();
    }
}

/// Longest one try at recording an outcome may take before it is tried again.
const RECORD_TRY_BOUND: Duration = Duration::from_secs(10);
/// Longest pause between tries at recording an outcome.
const RECORD_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs the store call `f` until it succeeds, or until `shutdown`: each try is bounded, a failed
/// one is logged loudly (`what` says what is at stake) and tried again after a growing pause
/// (100 ms doubling up to 5 s). For recording outcomes: a page that was sent but not recorded
/// would be sent again, and one that was not sent would sit in `sending` until its lease runs
/// out, so giving up after one failed call is never right. `f` must be safe to run again after
/// a try whose answer was lost (the outcome functions only apply to the attempt holding the row).
/// `None` at shutdown (the row then stays `sending` and is resumed after the restart), and for an
/// error of ours that no retry fixes (constraint, schema: logged by the store as a bug): the row
/// then stays `sending` until its lease runs out and is tried again, so even a bug delays a page
/// instead of losing it.
pub async fn until_stored<T, F>(
    store: &Store,
    shutdown: &tokio_util::sync::CancellationToken,
    what: &str,
    f: F,
) -> Option<T>
where
    T: Send + 'static,
    F: Fn(&Tx, DateTime<Utc>) -> Result<T, StoreError> + Clone + Send + 'static,
{
    let mut pause = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let err = match tokio::time::timeout(RECORD_TRY_BOUND, store.call(f.clone())).await {
            Ok(Ok(v)) => {
                if attempt > 1 {
                    tracing::info!(what, attempt, "recorded after the store failed");
                }
                return Some(v);
            }
            Ok(Err(e)) if !e.is_retryable() => {
                tracing::error!(what, attempt, error = %e, "cannot record, and retrying will not help; the claim's lease brings the page back");
                return None;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer from the store within {RECORD_TRY_BOUND:?}"),
        };
        tracing::error!(what, attempt, error = %err, retry_in_ms = pause.as_millis() as u64, "cannot record; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::error!(what, "shutting down before it was recorded; resumed after the restart");
                return None;
            }
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RECORD_BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests;
