//! UDP intake: one datagram, one alert, for shell scripts and Nagios-style notification commands
//! (`echo "critical disk-db1 /var is 97% full" | nc -u -w1 127.0.0.1 5140`).
//!
//! UDP has no answer, so a bad datagram can only be counted and logged; logging is rate-limited
//! so a flood of junk cannot fill the journal.
//!
//! When a write token is configured, a datagram carries it as its first word, `token=<token>`
//! (UDP has no headers); one without it is refused, or with `udp.unauthenticated =
//! "trigger-only"` may only trigger (never resolve, ack or ping a heartbeat, which could hide a
//! real problem). A wrong token is always refused.
//!
//! Datagrams for one alert key (or one heartbeat) are applied in the order they arrived: a
//! script that sends `critical k ...` and then `resolve k` must end with the incident resolved,
//! never with the resolve applied first and the trigger opening an incident nobody closes. Each
//! datagram goes to one of [`LANES`] queues chosen by its key; a lane applies its datagrams one
//! after another, lanes run side by side. When a lane is full the receive loop waits, leaving
//! the backlog in the kernel's socket buffer.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::formats::{self, Datagram};
use super::{Intake, IntakeStats};
use crate::escalation::ParsedAlert;
use crate::incident::Actor;
use crate::metrics::{AlertOutcome, AlertSource};

/// Queues that apply datagrams side by side; one key always uses the same queue.
const LANES: usize = 16;
/// Datagrams waiting in one lane before the receive loop waits for it.
const LANE_DEPTH: usize = 16;
/// At most one junk warning per this interval; the rest are counted.
const JUNK_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Receives datagrams on `socket` until `shutdown`, then waits (bounded) for the datagrams
/// still being stored.
pub async fn serve(socket: UdpSocket, intake: Intake, shutdown: CancellationToken) {
    let mut lanes = Vec::with_capacity(LANES);
    let mut running = JoinSet::new();
    // Which lane each task serves, to start it again if it dies.
    let mut lane_of_task = std::collections::HashMap::new();
    for lane in 0..LANES {
        let (tx, rx) = mpsc::channel(LANE_DEPTH);
        lanes.push(tx);
        let task = running.spawn(apply_in_order(intake.clone(), rx));
        lane_of_task.insert(task.id(), lane);
    }
    let mut buf = vec![0u8; 65_536];
    let mut junk = JunkLog::default();
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            // A lane ends only with its queue, which this loop holds: before shutdown that is
            // a panic. The datagrams it held are lost (said loudly); a new lane takes its place
            // and the other lanes go on, so one poisonous datagram cannot stop UDP intake.
            Some(ended) = running.join_next_with_id() => {
                let id = match &ended {
                    Ok((id, ())) => *id,
                    Err(e) => e.id(),
                };
                let Some(lane) = lane_of_task.remove(&id) else { continue };
                tracing::error!(lane, outcome = ?ended.err(), "a udp lane died; the datagrams it held are lost; starting it again");
                let (tx, rx) = mpsc::channel(LANE_DEPTH);
                lanes[lane] = tx;
                let task = running.spawn(apply_in_order(intake.clone(), rx));
                lane_of_task.insert(task.id(), lane);
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        let (presented, data) = split_token(&buf[..n]);
        let datagram = match formats::parse_datagram(data) {
            Ok(d) => d,
            Err(e) => {
                let total = IntakeStats::bump(&intake.stats.udp_junk);
                intake.metrics.alert(AlertSource::Udp, AlertOutcome::Junk);
                if let Some(suppressed) = junk.note() {
                    tracing::warn!(%peer, error = %e, bytes = n, junk_total = total, suppressed, "udp datagram ignored");
                }
                continue;
            }
        };
        if let Datagram::Heartbeat(id) = &datagram {
            if !intake
                .config
                .borrow()
                .heartbeats
                .iter()
                .any(|h| &h.id == id)
            {
                let total = IntakeStats::bump(&intake.stats.udp_junk);
                intake.metrics.alert(AlertSource::Udp, AlertOutcome::Junk);
                if let Some(suppressed) = junk.note() {
                    let shown: String = id.chars().take(64).collect();
                    tracing::warn!(%peer, heartbeat = %shown, junk_total = total, suppressed, "udp ping for a heartbeat monitor that is not configured");
                }
                continue;
            }
        }
        if !admitted(&intake, presented, &datagram) {
            intake
                .metrics
                .alert(AlertSource::Udp, AlertOutcome::Unauthorized);
            if let Some(suppressed) = junk.note() {
                tracing::warn!(%peer, token = if presented.is_some() { "wrong" } else { "missing" }, suppressed, "udp datagram without the write token refused (send token=<token> first, or see udp.unauthenticated)");
            }
            continue;
        }
        let lane = &lanes[lane_of(&datagram)];
        if matches!(datagram, Datagram::Heartbeat(_)) {
            // A ping is idempotent: with its lane full (pings flooding in faster than they
            // commit), one more says nothing the queued ones do not, and waiting for room would
            // stop this loop reading the socket, so alerts behind it would overflow the kernel's
            // buffer and be lost unseen.
            match lane.try_send((datagram, peer)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    intake
                        .metrics
                        .alert(AlertSource::Udp, AlertOutcome::Deduplicated);
                    if let Some(suppressed) = junk.note() {
                        tracing::warn!(%peer, suppressed, "udp heartbeat pings arrive faster than they are stored; the surplus is dropped (the monitor is pinged)");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::error!(%peer, "udp heartbeat ping lost: its lane died");
                }
            }
            continue;
        }
        let sent = tokio::select! {
            _ = shutdown.cancelled() => break,
            sent = lane.send((datagram, peer)) => sent,
        };
        if sent.is_err() {
            // The lane died after it was chosen; the loop above starts it again.
            tracing::error!(%peer, "udp datagram lost: its lane died");
        }
    }
    // Shutdown: close the lanes and let them finish what they hold, so an alert whose commit is
    // under way is committed before the process exits.
    drop(lanes);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while running.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!("udp alerts still being stored at shutdown");
    }
}

/// The lane a datagram goes to: by its alert key (the explicit one, else the summary the
/// store derives the key from) or its heartbeat id, so datagrams that touch the same incident
/// or monitor keep their order.
fn lane_of(datagram: &Datagram) -> usize {
    let mut h = DefaultHasher::new();
    match datagram {
        Datagram::Alert(a) => match a.dedup_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => key.hash(&mut h),
            None => a.summary.hash(&mut h),
        },
        Datagram::Heartbeat(id) => id.hash(&mut h),
    }
    (h.finish() % LANES as u64) as usize
}

/// One lane: applies its datagrams one after another until the receive loop closes it.
async fn apply_in_order(intake: Intake, mut queue: mpsc::Receiver<(Datagram, SocketAddr)>) {
    while let Some((datagram, peer)) = queue.recv().await {
        if crate::fault::armed("udp.lane_panic") {
            panic!("fault injected: udp.lane_panic");
        }
        match datagram {
            Datagram::Alert(alert) => store_alert(&intake, alert, peer).await,
            Datagram::Heartbeat(id) => ping_heartbeat(&intake, id, peer).await,
        }
    }
}

/// Rate-limits the warnings about refused and unreadable datagrams: at most one per
/// [`JUNK_LOG_INTERVAL`], each saying how many were passed over since the last.
#[derive(Debug, Default)]
pub(crate) struct JunkLog {
    last: Option<Instant>,
    since_last: u64,
}

impl JunkLog {
    /// Counts one bad datagram; `Some(suppressed)` when a warning is due now, with how many
    /// bad datagrams went unlogged before this one.
    pub(crate) fn note(&mut self) -> Option<u64> {
        self.since_last += 1;
        if self.last.is_some_and(|t| t.elapsed() < JUNK_LOG_INTERVAL) {
            return None;
        }
        let suppressed = self.since_last - 1;
        self.last = Some(Instant::now());
        self.since_last = 0;
        Some(suppressed)
    }
}

/// Whether a datagram that `presented` a token (or none) may act: always without a configured
/// token; with one, when the token matches, or, with none presented and
/// `udp.unauthenticated = "trigger-only"`, when it only triggers.
fn admitted(intake: &Intake, presented: Option<&str>, datagram: &Datagram) -> bool {
    let Some(token) = intake.current_token() else {
        return true;
    };
    if presented.is_some_and(|p| super::secret_matches(p, &token)) {
        return true;
    }
    let trigger_only = presented.is_none()
        && intake.config.borrow().udp.unauthenticated
            == crate::config::UdpUnauthenticated::TriggerOnly;
    trigger_only
        && matches!(datagram, Datagram::Alert(a) if a.action == crate::store::AlertAction::Trigger)
}

/// Stores one alert. One that cannot be stored is lost: UDP cannot ask the sender to retry.
async fn store_alert(intake: &Intake, alert: ParsedAlert, peer: SocketAddr) {
    let input = intake.route(alert, Actor::new(peer.ip().to_string(), "udp"));
    match intake.store.apply_alert(input).await {
        Ok(o) => {
            intake.metrics.alert(AlertSource::Udp, AlertOutcome::of(&o));
        }
        Err(e) => {
            intake
                .metrics
                .alert(AlertSource::Udp, AlertOutcome::StoreFailure);
            tracing::error!(error = %e, %peer, "udp alert could not be stored and is lost (UDP cannot ask the sender to retry)");
        }
    }
}

/// Splits a leading `token=<token>` word off a datagram: the presented token (if any) and the
/// rest, which is parsed as usual.
fn split_token(data: &[u8]) -> (Option<&str>, &[u8]) {
    let trimmed = data.trim_ascii_start();
    let Some(after) = trimmed.strip_prefix(b"token=") else {
        return (None, data);
    };
    let end = after
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(after.len());
    match std::str::from_utf8(&after[..end]) {
        Ok(token) => (Some(token), &after[end..]),
        Err(_) => (Some(""), &after[end..]),
    }
}

/// A `heartbeat ID` line for a configured monitor. A ping that cannot be stored is lost (UDP has
/// no answer), and the sender's next ping will do. (Unknown ids never get here: the receive loop
/// counts them as junk.)
async fn ping_heartbeat(intake: &Intake, id: String, peer: SocketAddr) {
    let config = intake.config.borrow().clone();
    if let Err(e) =
        crate::heartbeat::ping(&intake.store, &config, &id, &peer.ip().to_string()).await
    {
        tracing::error!(error = %e, %peer, "udp heartbeat ping could not be stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_token_word_is_split_off() {
        assert_eq!(
            split_token(b"token=s3cret critical db1 down\n"),
            (Some("s3cret"), &b" critical db1 down\n"[..])
        );
        assert_eq!(
            split_token(b"token=s3cret {\"summary\":\"x\"}"),
            (Some("s3cret"), &b" {\"summary\":\"x\"}"[..])
        );
        assert_eq!(split_token(b"token="), (Some(""), &b""[..]));
        assert_eq!(
            split_token(b"critical db1 token=x"),
            (None, &b"critical db1 token=x"[..])
        );
        assert_eq!(split_token(b"token=\xff x"), (Some(""), &b" x"[..]));
    }

    #[test]
    fn junk_warnings_are_one_per_interval_and_count_what_they_passed_over() {
        let mut log = JunkLog::default();
        assert_eq!(log.note(), Some(0));
        assert_eq!(log.note(), None);
        assert_eq!(log.note(), None);
        log.last = Instant::now().checked_sub(JUNK_LOG_INTERVAL);
        assert_eq!(log.note(), Some(2));
        assert_eq!(log.note(), None);
    }
}
