//! Whether pages can go out right now, per channel: one task keeps the published
//! [`PagingHealth`] current for `/healthz`, `/metrics`, the status page, the LED and the logs.
//!
//! This task is the only publisher. The verdict is the transports' own readiness (see
//! [`super::sender::health`]); the task decides when to ask again (a modem health change, a
//! sender's [`Recheck`], every few seconds for email) and alone says loudly when paging becomes
//! impaired or recovers, so an impairment reported is always followed by its recovery line.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::sender::{PagingHealth, Transport};
use crate::modem::Health;

/// When the channels' own checks ([`Transport::probe`]) first run after start, and how often
/// after that: often enough that a broken email relay is known long before the modem fails,
/// seldom enough to be no load on the relay.
const FIRST_PROBE: Duration = Duration::from_secs(2);
const PROBE_EVERY: Duration = Duration::from_secs(3600);
/// How soon a channel whose check failed is checked again: a passing failure should not show
/// for the whole hour.
const PROBE_AGAIN: Duration = Duration::from_secs(300);

/// A sender's request to look at the transports again now (after an attempt, a readiness
/// change): the senders see a channel fail first, and `/healthz` should not lag them.
pub type Recheck = Arc<tokio::sync::Notify>;

/// The paging health watch, starting from the transports' readiness now.
pub fn channel(
    transports: &[Arc<dyn Transport>],
) -> (
    Arc<watch::Sender<PagingHealth>>,
    watch::Receiver<PagingHealth>,
) {
    let (tx, rx) = watch::channel(super::sender::health(transports));
    (Arc::new(tx), rx)
}

/// Keeps the published paging health current: recomputed when the modem's health changes, when
/// a sender asks (`recheck`), and every few seconds for the channels that have no watch of their
/// own (email).
pub async fn run(
    transports: Arc<Vec<Arc<dyn Transport>>>,
    mut modem: Option<watch::Receiver<Health>>,
    tx: Arc<watch::Sender<PagingHealth>>,
    recheck: Recheck,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
) {
    let mut said_impaired = false;
    let mut probes = tokio::task::JoinSet::new();
    let mut next_probe = tokio::time::Instant::now() + FIRST_PROBE;
    loop {
        beat.beat();
        let h = super::sender::health(&transports);
        tx.send_if_modified(|old| {
            if *old == h {
                return false;
            }
            if h.impaired() {
                tracing::error!(down = ?h.down, "paging impaired: no channel can send; pages are kept and retried");
                said_impaired = true;
            } else if said_impaired {
                // Only after an impairment that was reported: the first health at start is
                // not a recovery.
                tracing::info!(ready = ?h.ready, "paging restored");
                said_impaired = false;
            }
            *old = h;
            true
        });
        let modem_changed = async {
            match modem.as_mut() {
                Some(m) => m.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            alive = modem_changed => if !alive { modem = None },
            _ = recheck.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = tokio::time::sleep_until(next_probe) => {
                next_probe = tokio::time::Instant::now() + PROBE_EVERY;
                // Each check is bounded by its channel's own timeout and runs beside this loop,
                // which keeps publishing meanwhile.
                for t in transports.iter() {
                    if let Some(p) = t.probe() {
                        probes.spawn(p);
                    }
                }
            }
            Some(done) = probes.join_next(), if !probes.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a channel check failed to run");
                }
                if transports.iter().any(|t| t.health().is_err()) {
                    next_probe = next_probe.min(tokio::time::Instant::now() + PROBE_AGAIN);
                }
            }
        }
    }
}
