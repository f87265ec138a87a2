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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// Records progress now.
    pub fn beat(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
