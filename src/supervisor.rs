//! Liveness of the long-lived tasks: who is essential, who has shown progress lately.
//!
//! A paging box that crashes is restarted by systemd in seconds; a box whose sender task died,
//! or whose modem driver waits forever, looks healthy and pages nobody. So every long-lived task
//! runs under the [`Supervisor`]: it keeps each task's handle, and when an essential task ends or
//! panics before shutdown it says which and why and asks the daemon to exit non-zero, so that
//! systemd restarts it (a restart resumes every page from SQLite).
//!
//! Ending is not the only way to stop paging: a task can also hang. Each essential task therefore
//! feeds a [`Heartbeat`] from its own loop (once per iteration, and at least every half of its
//! bound while idle, by bounding its idle wait). A stuck task cannot feed it, because the beat
//! comes from the very loop that is stuck. The systemd watchdog is fed only while no heartbeat is
//! late, and `/healthz` names the late ones.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Niceness of threads whose work is for people and scrapers (status page, reports, stats,
/// `/metrics`): under contention a nice-10 thread gets about a tenth of the CPU a nice-0 thread
/// gets, yet all of an idle core, so such work yields to the paging path without starving.
pub const READS_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`READS_NICE`] (on Linux niceness is per
/// thread). A failure is logged and changes nothing else.
pub fn yield_to_paging() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux,
        // `who` 0 with PRIO_PROCESS is the calling thread.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, READS_NICE) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            tracing::warn!(error = %e, "cannot lower a reads thread's priority");
        }
    }
}

/// A task's proof of progress: the loop calls [`Heartbeat::beat`]; the supervisor reads
/// [`Heartbeat::late`]. Cheap to clone; clones share one clock.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    inner: Arc<HeartbeatInner>,
}

#[derive(Debug)]
struct HeartbeatInner {
    name: &'static str,
    bound: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last beat.
    last_ms: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat named `name` that is late when no beat came within `bound`. Counts as fed now.
    pub fn new(name: &'static str, bound: Duration) -> Heartbeat {
        Heartbeat {
            inner: Arc::new(HeartbeatInner {
                name,
                bound,
                epoch: Instant::now(),
                last_ms: AtomicU64::new(0),
            }),
        }
    }

    /// A heartbeat nobody watches, for code run outside the daemon (tests, CLI tools).
    pub fn detached(name: &'static str) -> Heartbeat {
        Heartbeat::new(name, Duration::MAX)
    }

    /// Records progress now. Call it from the task's own loop, never from a timer beside it.
    ///
    /// In builds with fault points, the point `task.panic.<name>` makes the task panic here, in
    /// its own loop, so the tests can prove that a dead task is noticed.
    pub fn beat(&self) {
        if crate::fault::ENABLED && crate::fault::armed(&format!("task.panic.{}", self.name())) {
            panic!("fault point task.panic.{} fired", self.name());
        }
        let ms = u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.inner.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The task's name, as logs and `/healthz` show it.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// How long an idle loop may wait before it must beat: half the bound, so one slow
    /// iteration is not reported late.
    pub fn idle_bound(&self) -> Duration {
        self.inner.bound / 2
    }

    /// Time since the last beat.
    pub fn since(&self) -> Duration {
        let last = Duration::from_millis(self.inner.last_ms.load(Ordering::Relaxed));
        self.inner.epoch.elapsed().saturating_sub(last)
    }

    /// `Some(silence)` when the last beat is older than the bound.
    pub fn late(&self) -> Option<Duration> {
        let since = self.since();
        (since > self.inner.bound).then_some(since)
    }
}

/// A task that is late, for `/healthz` and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Late {
    pub task: &'static str,
    pub silent_seconds: u64,
}

/// The registry of heartbeats the watchdog and `/healthz` look at. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    beats: Arc<Mutex<Vec<Heartbeat>>>,
}

impl Liveness {
    /// Registers a new heartbeat and returns it for the task to feed.
    pub fn register(&self, name: &'static str, bound: Duration) -> Heartbeat {
        let hb = Heartbeat::new(name, bound);
        self.beats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hb.clone());
        hb
    }

    /// Every registered task that is late now.
    pub fn late(&self) -> Vec<Late> {
        self.beats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|h| {
                h.late().map(|d| Late {
                    task: h.name(),
                    silent_seconds: d.as_secs(),
                })
            })
            .collect()
    }
}

/// A panic's message, as `panic!` was given it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "with a non-text payload".into())
}

/// Whether the daemon can live without a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Paging depends on it: when it ends before shutdown, the daemon exits non-zero.
    Essential,
    /// A convenience (memory trimming, a test control socket): its end is logged, nothing more.
    Auxiliary,
}

/// Why an essential task is gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("essential task {task} {why}")]
pub struct TaskEnded {
    pub task: &'static str,
    pub why: String,
}

/// Runs the long-lived tasks and notices when one ends: see the module docs.
///
/// Every task is spawned on one [`TaskTracker`], so shutdown waits for all of them; each is
/// watched by a small companion that awaits its `JoinHandle`, the only place where a panic can
/// be seen. The daemon awaits [`Supervisor::ended`] beside its signals.
#[derive(Clone)]
pub struct Supervisor {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    ended_tx: mpsc::UnboundedSender<TaskEnded>,
    liveness: Liveness,
}

/// The receiving side of [`Supervisor`]: essential tasks that ended.
pub struct Ended(mpsc::UnboundedReceiver<TaskEnded>);

impl Ended {
    /// Waits for the first essential task to end (forever if none does).
    pub async fn next(&mut self) -> TaskEnded {
        match self.0.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }
}

impl Supervisor {
    /// A supervisor whose tasks stop on `shutdown`.
    pub fn new(shutdown: CancellationToken) -> (Supervisor, Ended) {
        let (ended_tx, rx) = mpsc::unbounded_channel();
        (
            Supervisor {
                tracker: TaskTracker::new(),
                shutdown,
                ended_tx,
                liveness: Liveness::default(),
            },
            Ended(rx),
        )
    }

    /// The tracker every supervised task runs on (for work that spawns short-lived tasks of its
    /// own, which shutdown must also wait for).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// The heartbeats of the supervised tasks.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Registers a heartbeat for a task that is about to be spawned.
    pub fn heartbeat(&self, name: &'static str, bound: Duration) -> Heartbeat {
        self.liveness.register(name, bound)
    }

    /// Spawns a long-lived task named `name`. Its end before shutdown is logged with the reason
    /// (returned, or the panic's message) and, for an essential task, reported to the daemon.
    pub fn spawn<F>(&self, name: &'static str, role: Role, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = self.tracker.spawn(task);
        let shutdown = self.shutdown.clone();
        let ended = self.ended_tx.clone();
        self.tracker.spawn(async move {
            let why = match handle.await {
                Ok(()) => "returned".to_string(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(&*e.into_panic())),
                Err(_) => "was cancelled".to_string(),
            };
            if shutdown.is_cancelled() {
                if why.starts_with("panicked") {
                    // A panic is a bug whenever it happens (a sender recording its outcome in
                    // the grace period): say so at the level people read.
                    tracing::error!(task = name, %why, "a task panicked while stopping");
                } else {
                    tracing::debug!(task = name, %why, "task stopped");
                }
                return;
            }
            match role {
                Role::Essential => {
                    tracing::error!(task = name, %why, "an essential task ended before shutdown; pagerbox stops so that it is restarted");
                    let _ = ended.send(TaskEnded { task: name, why });
                }
                Role::Auxiliary => {
                    tracing::warn!(task = name, %why, "a task ended; paging is not affected");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_essential_task_that_panics_is_reported_with_its_message() {
        let shutdown = CancellationToken::new();
        let (sup, mut ended) = Supervisor::new(shutdown.clone());
        sup.spawn("doomed", Role::Essential, async { panic!("boom") });
        let e = tokio::time::timeout(Duration::from_secs(5), ended.next())
            .await
            .unwrap();
        assert_eq!(e.task, "doomed");
        assert_eq!(e.why, "panicked: boom");
    }

    #[tokio::test]
    async fn an_essential_task_that_returns_is_reported_an_auxiliary_one_is_not() {
        let shutdown = CancellationToken::new();
        let (sup, mut ended) = Supervisor::new(shutdown.clone());
        sup.spawn("aux", Role::Auxiliary, async {});
        sup.spawn("quitter", Role::Essential, async {
            tokio::time::sleep(Duration::from_millis(50)).await
        });
        let e = tokio::time::timeout(Duration::from_secs(5), ended.next())
            .await
            .unwrap();
        assert_eq!(e.task, "quitter");
        assert_eq!(e.why, "returned");
    }

    #[tokio::test]
    async fn tasks_that_end_at_shutdown_are_not_reported() {
        let shutdown = CancellationToken::new();
        let (sup, mut ended) = Supervisor::new(shutdown.clone());
        let s = shutdown.clone();
        sup.spawn(
            "worker",
            Role::Essential,
            async move { s.cancelled().await },
        );
        shutdown.cancel();
        sup.tracker().close();
        sup.tracker().wait().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(100), ended.next())
                .await
                .is_err()
        );
    }

    #[test]
    fn a_fed_heartbeat_is_not_late_and_a_starved_one_is() {
        let live = Liveness::default();
        let fast = live.register("fast", Duration::from_millis(20));
        let slow = live.register("slow", Duration::from_secs(60));
        assert!(live.late().is_empty());
        std::thread::sleep(Duration::from_millis(40));
        slow.beat();
        let late = live.late();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].task, "fast");
        fast.beat();
        assert!(live.late().is_empty());
    }

    #[test]
    fn detached_heartbeat_is_never_late() {
        let hb = Heartbeat::detached("cli");
        assert!(hb.late().is_none());
        assert!(hb.idle_bound() > Duration::from_secs(3600));
    }
}
