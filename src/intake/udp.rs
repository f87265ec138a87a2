//! UDP intake: one datagram, one alert, for shell scripts and Nagios-style notification commands
//! (`echo "critical disk-db1 /var is 97% full" | nc -u -w1 127.0.0.1 5140`).
//!
//! UDP has no answer, so a bad datagram can only be counted and logged; logging is rate-limited
//! so a flood of junk cannot fill the journal.
//!
//! When a write token is configured, a datagram carries it as its first word, `token=<token>`
//! (UDP has no headers); one without it is refused, or with `udp.unauthenticated =
//! "trigger-only"` may only trigger (never resolve, ack or ping a heartbeat, which could hide a
//! real problem). A wrong token is always refused. Datagrams are handled concurrently up to a bound;
//! past it the receive loop waits, leaving the backlog in the kernel's socket buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::formats::{self, Datagram};
use super::{Intake, IntakeStats};
use crate::escalation::ParsedAlert;
use crate::incident::Actor;
use crate::metrics::{AlertOutcome, AlertSource};

/// Datagrams being stored at once.
const IN_FLIGHT: usize = 256;
/// At most one junk warning per this interval; the rest are counted.
const JUNK_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Receives datagrams on `socket` until `shutdown`, then waits (bounded) for the datagrams
/// still being stored.
pub async fn serve(socket: UdpSocket, intake: Intake, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; 65_536];
    let mut junk = JunkLog::default();
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
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
        if !admitted(&intake, presented, &datagram) {
            intake
                .metrics
                .alert(AlertSource::Udp, AlertOutcome::Unauthorized);
            if let Some(suppressed) = junk.note() {
                tracing::warn!(%peer, token = if presented.is_some() { "wrong" } else { "missing" }, suppressed, "udp datagram without the write token refused (send token=<token> first, or see udp.unauthenticated)");
            }
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        match datagram {
            Datagram::Alert(alert) => store_alert(&intake, alert, peer, permit),
            Datagram::Heartbeat(id) => ping_heartbeat(&intake, id, peer, permit),
        }
    }
    // Shutdown: the datagrams being stored hold permits; wait until every one is back, so an
    // alert whose commit is under way is committed before the process exits.
    if tokio::time::timeout(
        Duration::from_secs(10),
        permits.acquire_many(IN_FLIGHT as u32),
    )
    .await
    .is_err()
    {
        tracing::warn!("udp alerts still being stored at shutdown");
    }
}

/// Rate-limits the warnings about refused and unreadable datagrams: at most one per
/// [`JUNK_LOG_INTERVAL`], each saying how many were passed over since the last.
#[derive(Debug, Default)]
struct JunkLog {
    last: Option<Instant>,
    since_last: u64,
}

impl JunkLog {
    /// Counts one bad datagram; `Some(suppressed)` when a warning is due now, with how many
    /// bad datagrams went unlogged before this one.
    fn note(&mut self) -> Option<u64> {
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

/// Stores one alert in the background, holding one of the in-flight permits until the commit.
/// One that cannot be stored is lost: UDP cannot ask the sender to retry.
fn store_alert(
    intake: &Intake,
    alert: ParsedAlert,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let intake = intake.clone();
    tokio::spawn(async move {
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
        drop(permit);
    });
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

/// A `heartbeat ID` line: pings the monitor in the background, holding one of the in-flight
/// permits like an alert. An unknown id is counted as junk; a ping that cannot be stored is
/// lost (UDP has no answer), and the sender's next ping will do.
fn ping_heartbeat(
    intake: &Intake,
    id: String,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let intake = intake.clone();
    tokio::spawn(async move {
        let config = intake.config.borrow().clone();
        match crate::heartbeat::ping(&intake.store, &config, &id, &peer.ip().to_string()).await {
            Ok(_) => {}
            Err(crate::heartbeat::Error::Unknown(id)) => {
                IntakeStats::bump(&intake.stats.udp_junk);
                tracing::warn!(%peer, heartbeat = %id, "udp ping for a heartbeat monitor that is not configured");
            }
            Err(e) => {
                tracing::error!(error = %e, %peer, "udp heartbeat ping could not be stored");
            }
        }
        drop(permit);
    });
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
