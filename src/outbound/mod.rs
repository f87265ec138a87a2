//! Outbound notifications: Slack, Microsoft Teams and signed generic JSON webhooks, sent on
//! trigger, acknowledge and resolve, beside paging and never instead of it.
//!
//! What it owns: the `[[outbound]]` destinations ([`Destination`]), the bodies ([`payload`]),
//! the HTTP POST ([`client`]) and the tasks that send them ([`run`]). What it does not own: the
//! SQL that turns incident transitions into outbox rows and claims them
//! ([`crate::store::outbound`]), the outbox table and its crash recovery
//! ([`crate::store::outbox`]), or paging (`notify`).
//!
//! Why it cannot delay a page: its rows live in the outbox under their own channel (`webhook`),
//! which no paging sender claims and which is never on the SMS -> voice -> email fall-through
//! chain; each destination has its own task, and every POST runs on the blocking pool under a
//! hard timeout. Durability: the trigger/ack/resolve timeline event is committed with the
//! incident change; the fan-out turns it into rows and moves its cursor in one later transaction
//! (see the migration), so a crash loses nothing and repeats at most the one POST in flight.
//! When a receiver or the network is down the rows wait (FIFO per destination, retried with the
//! paging backoff or the receiver's `Retry-After`); past `max_queued` the oldest are dropped with
//! a timeline note. In a pair (`ha` build) each claimed row passes the pair's gate before its POST
//! (`ha::messages`), so the two boxes' copies are posted once.

pub mod client;
pub mod payload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::notify::sender::PairGate;
use crate::store::outbound::{self as queue, Claim, Outcome};
use crate::store::Store;
use client::Answer;

pub use crate::config::outbound::{
    Destination, Event, Kind, DEFAULT_MAX_QUEUED, DEFAULT_SIGNATURE_HEADER,
};

/// Header carrying the Unix time (seconds) that is part of the signed bytes.
pub const TIMESTAMP_HEADER: &str = "X-Pagerbox-Timestamp";
/// Longest a destination task sleeps without looking at its queue again.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How long the fan-out waits after a commit before it looks. A page is queued and claimed in the
/// few milliseconds after its alert commits; the fan-out's own transaction (an fsync on the one
/// store thread) waits until that is done, and commits of a storm are taken together.
/// Notifications are not latency-critical; pages are.
pub const FAN_OUT_DELAY: Duration = Duration::from_millis(250);

impl Destination {
    /// The headers for one POST of `body` at Unix time `timestamp`: the signature pair for
    /// generic webhooks, nothing extra for Slack and Teams.
    pub fn headers(&self, body: &str, timestamp: i64) -> Vec<(String, String)> {
        match (&self.kind, &self.secret) {
            (Kind::Webhook, Some(key)) => vec![
                (TIMESTAMP_HEADER.to_string(), timestamp.to_string()),
                (
                    self.signature_header.clone(),
                    format!(
                        "sha256={}",
                        payload::signature(key.expose().as_bytes(), timestamp, body.as_bytes())
                    ),
                ),
            ],
            _ => Vec::new(),
        }
    }
}

/// Runs outbound notifications until `shutdown`: the fan-out (on every commit, while any
/// destination is configured) and one sender task per destination, started and restarted as the
/// config changes. Cheap when nothing is configured: it only keeps the cursor at the end. In a
/// pair each notification passes the pair's gate first (`pair`), as pages do: both boxes queue
/// it from their own timelines, and the pair posts it once.
pub async fn run(
    store: Store,
    mut config: watch::Receiver<Arc<Config>>,
    tracker: TaskTracker,
    metrics: crate::metrics::Metrics,
    pair: PairGate,
    shutdown: CancellationToken,
) {
    let mut commits = store.commits();
    let mut workers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut current = config.borrow_and_update().clone();
    loop {
        for d in &current.outbound {
            let alive = workers.get(&d.id).is_some_and(|h| !h.is_finished());
            if !alive {
                let h = tracker.spawn(destination_task(
                    d.id.clone(),
                    store.clone(),
                    config.clone(),
                    metrics.clone(),
                    pair.clone(),
                    shutdown.clone(),
                ));
                workers.insert(d.id.clone(), h);
            }
        }
        let dests = Arc::new(current.outbound.clone());
        let r = store.outbound_fan_out(dests, payload::render).await;
        match r {
            Ok(n) if n > 0 => tracing::debug!(queued = n, "outbound notifications queued"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbound fan-out failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = commits.changed(), if !current.outbound.is_empty() => {
                if r.is_err() { return }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(FAN_OUT_DELAY) => {}
                }
                commits.borrow_and_update();
            }
            r = config.changed() => {
                if r.is_err() { return }
                current = config.borrow_and_update().clone();
            }
        }
    }
}

/// Sends one destination's queue, oldest first, one POST at a time. Ends when the destination
/// leaves the config (its rows stay queued for when it comes back) or at shutdown. A POST cut
/// short by shutdown leaves its row `sending`; it is sent again after the restart.
async fn destination_task(
    id: String,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    metrics: crate::metrics::Metrics,
    #[cfg_attr(not(feature = "ha"), allow(unused_variables))] pair: PairGate,
    shutdown: CancellationToken,
) {
    let mut commits = store.commits();
    let mut steps = store.clock_steps();
    loop {
        let Some(dest) = config
            .borrow()
            .outbound
            .iter()
            .find(|d| d.id == id)
            .cloned()
        else {
            tracing::info!(destination = %id, "outbound destination removed from the config");
            return;
        };
        let claim_id = id.clone();
        // The POST is bounded by the destination's timeout (plus the client's own second); the
        // lease covers that and recording the outcome.
        let lease = dest
            .timeout
            .saturating_add(crate::notify::sender::LEASE_MARGIN);
        let claim = store.outbound_claim(claim_id, lease).await;
        let wait = match claim {
            Ok(Claim::Row(row)) => {
                // Pair hook: the peer may post this notification, or may already have.
                #[cfg(feature = "ha")]
                let claimed = match &pair.0 {
                    Some(gate) => {
                        match gate.before_outbound(&store, &shutdown, &row, &dest).await {
                            crate::ha::pair::Pass::Send(claimed) => claimed.map(|c| (gate, c)),
                            crate::ha::pair::Pass::Handled => continue,
                        }
                    }
                    None => None,
                };
                let outcome = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    o = send(&dest, &row, &store) => o,
                };
                #[cfg(feature = "ha")]
                if let Some((gate, c)) = claimed {
                    gate.after_outbound(c, &outcome);
                }
                log(&dest, &row, &outcome);
                let what = format!("outbound {} to {}", row.event, row.destination);
                let recorded = crate::notify::sender::until_stored(&store, &shutdown, &what, {
                    let outcome = outcome.clone();
                    move |c, now| Ok(queue::finish(c, &row, &outcome, now)?)
                })
                .await;
                if recorded.is_some() {
                    // Counted once, however many tries the recording took.
                    metrics.outbound(&dest.id, dest.kind.as_str(), outcome_name(&outcome));
                }
                continue;
            }
            Ok(Claim::Wait(at)) => (at - store.now()).to_std().unwrap_or(Duration::ZERO),
            Ok(Claim::Idle) => MAX_IDLE,
            Err(e) => {
                tracing::warn!(destination = %id, error = %e, "cannot read the outbound queue; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait.min(MAX_IDLE)) => {}
            // The clock jumped: a retry may have come due.
            _ = steps.stepped() => {}
            r = commits.changed() => if r.is_err() { return },
        }
    }
}

/// One attempt: sign (generic), POST, and turn the answer into an outbox outcome.
async fn send(dest: &Destination, row: &queue::Row, store: &Store) -> Outcome {
    let now = store.now();
    let body = match dest.kind {
        Kind::Webhook => payload::stamp_sent_at(&row.body, now),
        _ => row.body.clone(),
    };
    let headers = dest.headers(&body, now.timestamp());
    let answer = client::post(dest.url.expose().to_string(), headers, body, dest.timeout).await;
    outcome(answer, row.attempts, store.now())
}

/// What an answer means for the row: sent, retry (after the paging backoff or the receiver's
/// `Retry-After`, whichever is longer), or failed.
pub fn outcome(answer: Answer, attempts: i64, now: chrono::DateTime<Utc>) -> Outcome {
    match answer {
        Answer::Ok { status } => Outcome::Sent {
            detail: format!("HTTP {status}"),
        },
        Answer::Retry { error, after } => {
            let wait = crate::notify::sender::backoff(attempts).max(after.unwrap_or_default());
            Outcome::Retry {
                error,
                retry_at: crate::clock::add(now, wait),
            }
        }
        Answer::Reject { error } => Outcome::Failed { error },
    }
}

/// The `outcome` label of `pagerbox_outbound_total`.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Sent { .. } => "sent",
        Outcome::Retry { .. } => "retry",
        Outcome::Failed { .. } => "failed",
    }
}

fn log(dest: &Destination, row: &queue::Row, o: &Outcome) {
    let (kind, id) = (dest.kind.as_str(), &dest.id);
    match o {
        Outcome::Sent { .. } => {
            tracing::info!(destination = %id, kind, incident = row.incident_id, event = %row.event, attempt = row.attempts, "outbound notification sent")
        }
        Outcome::Retry { error, .. } => {
            tracing::warn!(destination = %id, kind, incident = row.incident_id, attempt = row.attempts, %error, "outbound notification failed; will retry")
        }
        Outcome::Failed { error } => {
            tracing::warn!(destination = %id, kind, incident = row.incident_id, %error, "outbound notification refused; not retried")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use chrono::TimeZone;

    fn webhook() -> Destination {
        Destination {
            id: "w".into(),
            kind: Kind::Webhook,
            url: Secret::new("https://example.invalid/hook"),
            secret: Some(Secret::new("Jefe")),
            signature_header: DEFAULT_SIGNATURE_HEADER.into(),
            routes: vec!["db".into()],
            events: vec![Event::Trigger],
            max_queued: 5,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn headers_carry_timestamp_and_signature() {
        let d = webhook();
        let h = d.headers("{}", 1_700_000_000);
        assert_eq!(h[0], (TIMESTAMP_HEADER.into(), "1700000000".into()));
        assert_eq!(h[1].0, "X-Pagerbox-Signature");
        assert_eq!(
            h[1].1,
            format!(
                "sha256={}",
                payload::signature(b"Jefe", 1_700_000_000, b"{}")
            )
        );
        let mut slack = d.clone();
        slack.kind = Kind::Slack;
        assert!(slack.headers("{}", 1).is_empty());
    }

    #[test]
    fn route_filter() {
        let mut d = webhook();
        assert!(d.wants_route(Some("db")));
        assert!(!d.wants_route(Some("web")));
        assert!(!d.wants_route(None));
        d.routes.clear();
        assert!(d.wants_route(None));
    }

    #[test]
    fn retry_after_beats_a_shorter_backoff() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let o = outcome(
            Answer::Retry {
                error: "HTTP 429".into(),
                after: Some(Duration::from_secs(600)),
            },
            1,
            now,
        );
        match o {
            Outcome::Retry { retry_at, .. } => {
                assert_eq!(retry_at - now, chrono::Duration::seconds(600))
            }
            other => panic!("{other:?}"),
        }
        let o = outcome(
            Answer::Retry {
                error: "x".into(),
                after: None,
            },
            1,
            now,
        );
        let Outcome::Retry { retry_at, .. } = o else {
            panic!()
        };
        let wait = (retry_at - now).num_milliseconds();
        assert!((5000..6000).contains(&wait), "{wait}");
        assert!(matches!(
            outcome(
                Answer::Reject {
                    error: "HTTP 404".into()
                },
                1,
                now
            ),
            Outcome::Failed { .. }
        ));
    }
}
