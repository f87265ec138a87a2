//! UDP intake: one datagram, one alert, for shell scripts and Nagios-style notification commands
//! (`echo "critical disk-db1 /var is 97% full" | nc -u -w1 127.0.0.1 5140`).
//!
//! UDP has no answer, so a bad datagram can only be counted and logged; logging is rate-limited
//! so a flood of junk cannot fill the journal. Datagrams are handled concurrently up to a bound;
//! past it the receive loop waits, leaving the backlog in the kernel's socket buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::formats::{self, Datagram};
use super::{Intake, IntakeStats};
use crate::incident::Actor;
use crate::metrics::{AlertOutcome, AlertSource};

/// Datagrams being stored at once.
const IN_FLIGHT: usize = 256;
/// At most one junk warning per this interval; the rest are counted.
const JUNK_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Receives datagrams on `socket` until `shutdown`.
pub async fn serve(socket: UdpSocket, intake: Intake, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; 65_536];
    let mut last_junk_log: Option<Instant> = None;
    let mut junk_since_log = 0u64;
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
        let parsed = formats::parse_datagram(&buf[..n]);
        let datagram = match parsed {
            Ok(d) => d,
            Err(e) => {
                let total = IntakeStats::bump(&intake.stats.udp_junk);
                intake.metrics.alert(AlertSource::Udp, AlertOutcome::Junk);
                junk_since_log += 1;
                if last_junk_log.is_none_or(|t| t.elapsed() >= JUNK_LOG_INTERVAL) {
                    tracing::warn!(%peer, error = %e, bytes = n, junk_total = total, suppressed = junk_since_log - 1, "udp datagram ignored");
                    last_junk_log = Some(Instant::now());
                    junk_since_log = 0;
                }
                continue;
            }
        };
        let alert = match datagram {
            Datagram::Alert(a) => a,
            Datagram::Heartbeat(id) => {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                ping_heartbeat(&intake, id, peer, permit);
                continue;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let intake = intake.clone();
        tokio::spawn(async move {
            let input = intake.route(alert, Actor::new(peer.ip().to_string(), "udp"));
            match intake.store.apply_alert(input).await {
                Ok(o) => {
                    IntakeStats::bump(&intake.stats.accepted);
                    intake.metrics.alert(AlertSource::Udp, AlertOutcome::of(&o));
                }
                Err(e) => {
                    IntakeStats::bump(&intake.stats.store_failures);
                    intake
                        .metrics
                        .alert(AlertSource::Udp, AlertOutcome::StoreFailure);
                    tracing::error!(error = %e, %peer, "udp alert could not be stored and is lost (UDP cannot ask the sender to retry)");
                }
            }
            drop(permit);
        });
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
            Ok(_) => {
                IntakeStats::bump(&intake.stats.accepted);
            }
            Err(crate::heartbeat::Error::Unknown(id)) => {
                IntakeStats::bump(&intake.stats.udp_junk);
                tracing::warn!(%peer, heartbeat = %id, "udp ping for a heartbeat monitor that is not configured");
            }
            Err(e) => {
                IntakeStats::bump(&intake.stats.store_failures);
                tracing::error!(error = %e, %peer, "udp heartbeat ping could not be stored");
            }
        }
        drop(permit);
    });
}
