//! Heartbeat monitors (dead-man's switches): something pings pagerbox regularly; when the pings
//! stop, pagerbox opens an incident.
//!
//! This module owns the watching of the monitors: the one task ([`run`]) that watches the
//! deadlines, and the ping path. The monitors' settings and the pure rules below live with the
//! `[[heartbeats]]` config (`config::heartbeat`, re-exported here), their state with its table
//! (`store::heartbeats`, written only through [`crate::store::Store::call`]). It does not own paging: a missed heartbeat becomes an
//! ordinary alert (dedup key `heartbeat:<id>`) applied through the store exactly as intake applies
//! one, on the route the monitor names, so escalation, grouping and acks work as for any alert.
//! HTTP and UDP pings arrive through intake, which calls [`ping`].
//!
//! The rules:
//! - A ping at `t` means "alive": the next is due by `t + interval + grace`. If an incident for
//!   the monitor is open, the ping resolves it (actor: the sender, via `heartbeat`).
//! - A monitor never pinged starts its clock when pagerbox first sees it in the config (first
//!   start, or the reload that added it); that instant is stored, so a restart does not reset it.
//! - When the deadline passes, ONE incident is triggered and the monitor is `late`; it stays late
//!   (no new incident) until the next ping. If someone resolves that incident without a ping
//!   having come, the monitor is watched again from the resolution: a job still dead a whole
//!   window later is reported again (the person may have taken the miss for a blip).
//! - Restarts. The watcher records when it last ran (at every wake-up, at least every
//!   [`ALIVE_TICK_MAX`], and at shutdown). On start, a monitor whose deadline is still ahead is
//!   fine. A deadline that passed while pagerbox was up stays due (the monitor fires now if it
//!   had not already). A deadline that passed while pagerbox was down depends on how long it was
//!   down: down for at most the interval means a ping may have been sent into the gap, so the
//!   monitor gets one more full window from the start (a restart is not a missed ping); down
//!   for longer than the interval means pings could not be watched for a whole interval, so the
//!   monitor fires at once, saying so, and its next ping resolves it ("a box that was down
//!   longer than the interval reports it"). After a crash the recorded instant can be up to one
//!   tick old, which can only make the downtime look longer (a fire, never a silent miss).
//! - Changing a monitor's interval or grace keeps its base (last ping or start) and moves the
//!   deadline by the difference. Monitors removed from the config are forgotten (their open
//!   incident, if any, is left for a person to resolve); one added back starts a fresh clock.
//!   Only the first pass after the daemon starts applies the restart rule; a monitor added by a
//!   later reload simply starts its clock then.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::incident::IncidentId;
use crate::store::{Store, StoreError};

pub use crate::config::heartbeat::{default_grace, resume, Heartbeat, Resume};
pub use crate::store::heartbeats::{HeartbeatStatus, State};

/// The longest the watcher sleeps without recording that it is alive. Shorter for monitors with
/// short intervals (half the shortest interval), so the downtime measured at restart is close.
pub const ALIVE_TICK_MAX: Duration = Duration::from_secs(60);
/// The shortest alive tick, whatever the intervals.
const ALIVE_TICK_MIN: Duration = Duration::from_millis(250);

/// What went wrong with a heartbeat request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No `[[heartbeats]]` entry has this id (a 404, not worth retrying).
    #[error("no heartbeat monitor {0:?} is configured")]
    Unknown(String),
    /// The store could not record it.
    #[error("heartbeat not recorded: {0}")]
    Store(#[from] StoreError),
}

impl Error {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unknown(_) => false,
            Error::Store(e) => e.is_retryable(),
        }
    }
}

/// The answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ping {
    /// The monitor pinged.
    pub heartbeat: String,
    /// The next ping is due by then.
    pub due_at: DateTime<Utc>,
    /// The incident this ping resolved, if the monitor was late.
    pub resolved_incident: Option<IncidentId>,
}

/// Records a ping for monitor `id` from `from` (an address or name, shown on the timeline of a
/// resolved incident). Answers once committed: the new deadline is on disk and, if the monitor
/// was late, its incident is resolved. Any HTTP handler or intake path can call it.
///
/// Fails with [`Error::Unknown`] for an id not in `config`, and with [`Error::Store`] when the
/// store cannot commit (retryable: the sender should ping again).
pub async fn ping(store: &Store, config: &Config, id: &str, from: &str) -> Result<Ping, Error> {
    let hb = config
        .heartbeats
        .iter()
        .find(|h| h.id == id)
        .cloned()
        .ok_or_else(|| Error::Unknown(id.to_string()))?;
    let from = from.to_string();
    let (due_at, resolved) = store.heartbeat_ping(hb, from).await?;
    if let Some(incident) = resolved {
        tracing::info!(heartbeat = %id, incident, "heartbeat ping resolved its incident");
    }
    Ok(Ping {
        heartbeat: id.to_string(),
        due_at,
        resolved_incident: resolved,
    })
}

/// The state of every configured monitor.
pub async fn list(store: &Store, config: Arc<Config>) -> Result<Vec<HeartbeatStatus>, StoreError> {
    store.heartbeats(config).await
}

/// How often the watcher records that it is alive, for this config.
fn alive_tick(config: &Config) -> Duration {
    config
        .heartbeats
        .iter()
        .map(|h| h.interval / 2)
        .min()
        .unwrap_or(ALIVE_TICK_MAX)
        .clamp(ALIVE_TICK_MIN, ALIVE_TICK_MAX)
}

/// The watcher: on start applies the restart rule, then sleeps until the earliest deadline (or
/// the alive tick, or a config reload), fires what is overdue, and repeats. Pings only move
/// deadlines later, so a wake-up that finds nothing due just sleeps again. Store failures are
/// logged and retried on the next tick. Records its last alive instant at shutdown.
pub async fn run(
    store: Store,
    mut config: watch::Receiver<Arc<Config>>,
    clock: Arc<dyn Clock>,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
) {
    let mut started = false;
    let mut steps = clock.steps();
    loop {
        beat.beat();
        let cfg = config.borrow_and_update().clone();
        let mut next: Option<DateTime<Utc>> = None;
        // Also with no monitors configured (once per start or reload): that forgets removed
        // monitors and ends the start-up pass, so monitors added later start fresh.
        let r = store.heartbeat_pass(cfg.clone(), !started).await;
        match r {
            Ok((_, n)) => {
                started = true;
                next = n;
            }
            Err(e) => {
                tracing::error!(error = %e, "heartbeat watcher cannot read or write the store; retrying");
            }
        }
        let tick = alive_tick(&cfg);
        let sleep = match next {
            Some(due) => (due - clock.now()).to_std().unwrap_or_default().min(tick),
            None => tick,
        };
        let watching = !cfg.heartbeats.is_empty();
        tokio::select! {
            _ = shutdown.cancelled() => {
                if watching && started {
                    if let Err(e) = store.heartbeat_watcher_alive().await {
                        tracing::warn!(error = %e, "heartbeat watcher cannot record its stop time");
                    }
                }
                return;
            }
            r = config.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(sleep), if watching || !started => {}
            // The clock jumped: the deadline may have passed.
            _ = steps.stepped(), if watching || !started => {}
            // Idle (no monitors): wake only to show the loop still turns.
            _ = tokio::time::sleep(beat.idle_bound()) => {}
        }
    }
}

#[cfg(test)]
mod tests;
