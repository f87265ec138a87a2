//! `[[heartbeats]]`: a monitor's settings and the pure rules that follow from them alone (its
//! window, its incident's dedup key, the default grace, what a restart does to its deadline).
//! The watching task and the ping path are `heartbeat`'s; the stored state is the store's.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::incident::Severity;

/// One `[[heartbeats]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The id senders ping (`POST /v1/heartbeats/{id}`, UDP `heartbeat {id}`).
    pub id: String,
    /// How often the sender pings.
    pub interval: Duration,
    /// Slack after the interval before the ping counts as missed.
    pub grace: Duration,
    /// The route (by id) whose policy is paged when the heartbeat is missed.
    pub route: String,
    /// Summary of the incident; `None` says which heartbeat was missed.
    pub summary: Option<String>,
    /// Severity of the incident (default critical: a dead watchdog means blind monitoring).
    pub severity: Severity,
    /// Service of the incident (default: the heartbeat id).
    pub service: Option<String>,
}

impl Heartbeat {
    /// `interval + grace`: the longest a ping may take to arrive.
    pub fn window(&self) -> Duration {
        self.interval.saturating_add(self.grace)
    }

    /// The dedup key of the monitor's incident, so a miss opens one incident and a ping
    /// resolves exactly that one.
    pub fn dedup_key(&self) -> String {
        format!("heartbeat:{}", self.id)
    }
}

/// The grace used when the config gives none: a tenth of the interval, but at least 30 seconds
/// (or the interval itself, when that is shorter), for jitter of cron and network.
pub fn default_grace(interval: Duration) -> Duration {
    (interval / 10).max(interval.min(Duration::from_secs(30)))
}

/// What a restart does with a monitor that was `Ok` when pagerbox stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Leave the deadline as it is (ahead, or passed while pagerbox was up: the checker fires).
    Keep,
    /// The deadline passed during a short downtime: wait until this new deadline instead.
    Extend(DateTime<Utc>),
    /// Pagerbox was down longer than the interval: fire now.
    Fire {
        /// When pagerbox was last known running.
        down_since: DateTime<Utc>,
    },
}

/// The restart rule (see the `heartbeat` module doc), pure: `due_at` is the stored deadline, `alive_at` the
/// last instant the watcher was known to run (`None`: never), `now` the start.
pub fn resume(
    due_at: DateTime<Utc>,
    alive_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    hb: &Heartbeat,
) -> Resume {
    let Some(alive) = alive_at else {
        return Resume::Keep;
    };
    if due_at > now || due_at <= alive {
        return Resume::Keep;
    }
    let down = (now - alive).to_std().unwrap_or_default();
    if down <= hb.interval {
        Resume::Extend(crate::clock::add(now, hb.window()))
    } else {
        Resume::Fire { down_since: alive }
    }
}
