//! Standby behind a cloud pager: a route (or the whole box) that receives the same alerts as
//! PagerDuty or Opsgenie and pages over the modem only when the cloud pager did not get someone
//! to acknowledge within the grace, or cannot be asked.
//!
//! What it owns: the `[standby]` settings ([`Settings`], [`StandbyConfig`]), the pure decision
//! ([`decide`]), the upstream HTTP calls ([`client`]), the task that asks the upstream about held
//! incidents ([`run`]) and the task that tells the upstream about acknowledgements made on the
//! box ([`push_acks`]), and the published [`Status`]. What it does not own: the hold itself,
//! which lives beside the escalation in SQLite (`store::standby`) and which the escalation engine
//! asks about before paging a first step; or the outbox rows' delivery machinery
//! (`outbound::queue`, reused as is).
//!
//! Why paging cannot wait on the network: the hold's end is written when the hold opens (first
//! sight plus the grace) and only ever moved earlier, so the engine pages when the grace ends
//! whatever this task is doing. The checks run in their own task, at most [`MAX_PARALLEL`] at a
//! time, each under the route's timeout on the blocking pool; intake and paging never wait for
//! them. Local acknowledgements go through the durable outbox (channel `webhook`, one queue per
//! route), so an upstream that is down gets them when it is back.

pub mod client;
pub mod decide;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::incident::IncidentId;
use crate::store::outbound::{self as queue, Claim};
use crate::store::standby as sql;
use crate::store::{Store, StoreError, Tx};
use decide::{Answer, Check, Decision, Facts, Mirror};

pub use crate::config::standby::{
    Settings, StandbyConfig, Upstream, DEFAULT_GRACE, DEFAULT_MAX_FAILURES, DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT, OPSGENIE_API, PAGERDUTY_API, PAGERDUTY_EVENTS,
};
pub use crate::health::{Reachability, Status};

/// Most checks in flight at once.
pub const MAX_PARALLEL: usize = 8;
/// The key asked about when nothing is held, to learn whether the upstream answers.
const PROBE_KEY: &str = "pagerbox-reachability-probe";
/// Longest the acknowledgement sender sleeps without looking at its queues again.
const ACK_IDLE: Duration = Duration::from_secs(30);
/// Most held incidents looked at per round (the rest are paged by their grace anyway).
const MAX_PER_ROUND: usize = 200;

impl Settings {
    /// What the engine needs to hold a first page.
    pub fn hold(&self) -> sql::Standby {
        sql::Standby {
            upstream: self.upstream,
            grace: self.grace,
        }
    }
}

/// Ends the hold of incident `id` now, saying `reason`, and makes its first step due at once
/// through the escalation state machine, in the caller's transaction: the commit wakes the
/// engine, which pages. Returns whether a hold was held.
fn end_hold(
    c: &Tx,
    config: &Config,
    id: IncidentId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !sql::release(c, id, reason, now)? {
        return Ok(false);
    }
    crate::escalation::engine::release(c, id, config, now)?;
    Ok(true)
}

/// The `standby` object of `/healthz`: `null` when no route is in standby.
pub fn status_json(s: &Status) -> Option<serde_json::Value> {
    s.enabled.then(|| {
        serde_json::json!({
            "upstream": s.reachability.as_str(),
            "unreachable_since": match s.reachability {
                Reachability::Unreachable { since } => Some(since),
                _ => None,
            },
            "last_success": s.last_success,
            "held": s.held,
            "grace_seconds": s.grace.as_secs(),
        })
    })
}

/// Asks the upstream about held incidents every poll interval until `shutdown`, and publishes
/// [`Status`]. Each round: queue local acknowledgements for the upstream, read the held
/// incidents, check them (bounded, in parallel), and record each decision in the store.
pub async fn run(
    store: Store,
    mut config: watch::Receiver<Arc<Config>>,
    status: watch::Sender<Status>,
    clock: Arc<dyn Clock>,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
) {
    let mut current = config.borrow_and_update().clone();
    loop {
        beat.beat();
        let routes = current.standby.routes.clone();
        let poll = routes
            .values()
            .map(|s| s.poll_interval)
            .min()
            .unwrap_or(crate::escalation::engine::MAX_SLEEP)
            .min(beat.idle_bound());
        if !routes.is_empty() {
            round(&store, &current, &routes, &status, &clock, &beat, &shutdown).await;
        } else {
            status.send_if_modified(|s| {
                let was = s.enabled;
                *s = Status::default();
                was
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(poll) => {}
            r = config.changed() => {
                if r.is_err() { return }
                current = config.borrow_and_update().clone();
            }
        }
    }
}

// Long on purpose: one round in order (queue acks, check held incidents in parallel, record, publish).
async fn round(
    store: &Store,
    config: &Arc<Config>,
    routes: &BTreeMap<String, Settings>,
    status: &watch::Sender<Status>,
    clock: &Arc<dyn Clock>,
    beat: &crate::supervisor::Heartbeat,
    shutdown: &CancellationToken,
) {
    match store
        .call(|c, now| Ok(sql::queue_local_acks(c, now)?))
        .await
    {
        Ok(n) if n > 0 => {
            tracing::info!(count = n, "local acknowledgements queued for the upstream")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot queue local acknowledgements for the upstream; retrying")
        }
    }
    let held = match store
        .read(|c, now| Ok(sql::held(c, MAX_PER_ROUND, now)?))
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read held incidents; the grace still ends each hold");
            return;
        }
    };
    let mut checks = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    // A route with nothing held is still asked (about a key no incident has), so reachability
    // is known before an incident needs it and recovers after an outage.
    let mut probes = tokio::task::JoinSet::new();
    for (route, settings) in routes {
        if held.iter().any(|h| &h.route == route) {
            continue;
        }
        let settings = settings.clone();
        probes.spawn(async move { client::check(&settings, PROBE_KEY, None).await });
    }
    for h in held {
        let Some(settings) = routes.get(&h.route).cloned() else {
            continue;
        };
        while checks.len() >= MAX_PARALLEL {
            if let Some(Ok(r)) = checks.join_next().await {
                results.push(r);
            }
            // A round of many held incidents against a slow upstream outlasts the task's
            // liveness bound; each check that ends (within its timeout) shows it is moving.
            beat.beat();
        }
        checks.spawn(async move {
            let check = client::check(&settings, &h.dedup_key, Some(h.opened_at)).await;
            (h, settings, check)
        });
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = checks.join_next() => match r {
                Some(Ok(r)) => {
                    beat.beat();
                    results.push(r);
                }
                Some(Err(e)) => tracing::error!(error = %e, "a standby check task failed"),
                None => break,
            },
        }
    }
    let now = clock.now();
    let mut answered = None;
    let mut failed = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = probes.join_next() => match r {
                Some(Ok(c)) if c.reached() => answered = Some(now),
                Some(Ok(Check::Failed { error })) => {
                    tracing::debug!(%error, "reachability probe failed");
                    failed = true;
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    for (h, settings, check) in results {
        if check.reached() {
            answered = Some(now);
        } else {
            failed = true;
        }
        let failures = if check.is_failure() {
            h.failures.saturating_add(1)
        } else {
            0
        };
        if let Check::Failed { error } = &check {
            tracing::warn!(incident = h.incident_id, upstream = settings.upstream.as_str(), failures, %error, "standby check failed");
        }
        let id = h.incident_id;
        let config = config.clone();
        let paging = h.paging;
        let r = store
            .call(move |c, now| {
                if h.paging {
                    // Paging locally already: only the upstream's acknowledgement or resolve
                    // matters now, and it stops the local paging.
                    let mirror = match &check {
                        Check::Answered(Answer::Acknowledged { by }) => {
                            Mirror::Acknowledge { by: by.clone() }
                        }
                        Check::Answered(Answer::Resolved { by }) => {
                            Mirror::Resolve { by: by.clone() }
                        }
                        _ => {
                            sql::asked_while_paging(c, id, now)?;
                            return Ok(Decision::Hold);
                        }
                    };
                    // Acknowledged on the box meanwhile: nothing to mirror.
                    if !sql::mirror(c, id, settings.upstream, &mirror, now)? {
                        return Ok(Decision::Hold);
                    }
                    return Ok(Decision::Mirror(mirror));
                }
                let age = now
                    .signed_duration_since(h.opened_at)
                    .to_std()
                    .unwrap_or_default();
                let facts = Facts {
                    upstream: settings.upstream,
                    age,
                    grace: settings.grace,
                    last: Some(&check),
                    failures,
                    max_failures: settings.max_failures,
                };
                // What the page says if the engine ends the hold at the grace on this answer.
                let at_grace = match decide::decide(&Facts {
                    age: age.max(settings.grace),
                    ..facts.clone()
                }) {
                    Decision::Page(why) => Some(why.describe()),
                    _ => None,
                };
                sql::record_check(c, id, &check, failures, at_grace.as_deref(), now)?;
                let decision = decide::decide(&facts);
                match &decision {
                    Decision::Hold => {}
                    Decision::Page(why) => {
                        end_hold(c, &config, id, &why.describe(), now)?;
                    }
                    Decision::Mirror(m) => {
                        sql::mirror(c, id, settings.upstream, m, now)?;
                    }
                }
                Ok(decision)
            })
            .await;
        match r {
            Ok(Decision::Hold) => {}
            Ok(Decision::Page(why)) => {
                tracing::warn!(incident = id, reason = %why.describe(), "standby: paging locally")
            }
            Ok(Decision::Mirror(m)) if paging => {
                tracing::info!(incident = id, mirror = ?m, "standby: handled upstream after the box paged; local paging stops")
            }
            Ok(Decision::Mirror(m)) => {
                tracing::info!(incident = id, mirror = ?m, "standby: upstream handled it; nobody paged")
            }
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "cannot record a standby check; the grace still ends the hold")
            }
        }
    }
    let held = store
        .read(|c, _| Ok(sql::held_count(c)?))
        .await
        .unwrap_or(0);
    let grace = routes.values().map(|s| s.grace).min().unwrap_or_default();
    status.send_if_modified(|s| {
        let before = s.clone();
        s.enabled = true;
        s.held = held;
        s.grace = grace;
        if let Some(at) = answered {
            s.last_success = Some(at);
            if matches!(s.reachability, Reachability::Unreachable { .. }) {
                tracing::info!("the cloud pager answers again");
            }
            s.reachability = Reachability::Reachable;
        } else if failed && !matches!(s.reachability, Reachability::Unreachable { .. }) {
            tracing::warn!("the cloud pager cannot be reached: held pages go out when their grace ends, or after the configured failures");
            s.reachability = Reachability::Unreachable { since: now };
        }
        *s != before
    });
}

/// Sends queued local acknowledgements to each standby route's upstream, oldest first, until
/// `shutdown`. A failure is retried with the paging backoff (the row stays in the outbox, so a
/// restart resumes it); a refusal is recorded on the incident's timeline.
pub async fn push_acks(
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    status: watch::Sender<Status>,
    shutdown: CancellationToken,
) {
    let mut commits = store.commits();
    let mut steps = store.clock_steps();
    loop {
        let routes = config.borrow().standby.routes.clone();
        let mut wait = ACK_IDLE;
        for (route, settings) in &routes {
            let q = sql::ack_queue(route);
            let lease = settings
                .timeout
                .saturating_add(crate::notify::sender::LEASE_MARGIN);
            let claim = store
                .call(move |c, now| Ok(queue::claim(c, &q, now, lease)?))
                .await;
            match claim {
                Ok(Claim::Row(row)) => {
                    let answer = match ack_body(&row.body) {
                        Some((key, by)) => tokio::select! {
                            _ = shutdown.cancelled() => return,
                            a = client::acknowledge(settings, &key, &by) => a,
                        },
                        None => crate::outbound::client::Answer::Reject {
                            error: "the queued acknowledgement has no dedup key".into(),
                        },
                    };
                    let reached = !matches!(answer, crate::outbound::client::Answer::Retry { .. });
                    let outcome = crate::outbound::outcome(answer, row.attempts, store.now());
                    match &outcome {
                        queue::Outcome::Sent { .. } => tracing::info!(
                            incident = row.incident_id,
                            upstream = settings.upstream.as_str(),
                            "local acknowledgement sent upstream"
                        ),
                        queue::Outcome::Retry { error, .. } => {
                            tracing::warn!(incident = row.incident_id, upstream = settings.upstream.as_str(), attempt = row.attempts, %error, "cannot send a local acknowledgement upstream; will retry")
                        }
                        queue::Outcome::Failed { error } => {
                            tracing::error!(incident = row.incident_id, upstream = settings.upstream.as_str(), %error, "the upstream refused a local acknowledgement; it keeps escalating there")
                        }
                    }
                    if reached {
                        status.send_if_modified(|s| {
                            let was = s.reachability;
                            s.reachability = Reachability::Reachable;
                            was != s.reachability
                        });
                    }
                    let what = format!("upstream acknowledgement to {}", settings.upstream.name());
                    crate::notify::sender::until_stored(&store, &shutdown, &what, move |c, now| {
                        Ok(queue::finish(c, &row, &outcome, now)?)
                    })
                    .await;
                    wait = Duration::ZERO;
                }
                Ok(Claim::Wait(at)) => {
                    wait = wait.min((at - store.now()).to_std().unwrap_or(Duration::ZERO));
                }
                Ok(Claim::Idle) => {}
                Err(e) => {
                    tracing::warn!(route = %route, error = %e, "cannot read the upstream acknowledgement queue; retrying");
                    wait = wait.min(Duration::from_secs(1));
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            // The clock jumped: a retry may have come due.
            _ = steps.stepped() => {}
            r = commits.changed() => if r.is_err() { return },
        }
    }
}

/// The dedup key and the acknowledger from a queued row's body.
fn ack_body(body: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let key = v.get("dedup_key")?.as_str().filter(|k| !k.is_empty())?;
    let by = v
        .get("by")
        .and_then(|x| x.as_str())
        .filter(|b| !b.is_empty())
        .unwrap_or("pagerbox");
    Some((key.to_string(), by.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono::Utc;

    #[test]
    fn unreachable_longer_than_the_grace_is_impaired() {
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let mut s = Status {
            enabled: true,
            reachability: Reachability::Unreachable { since: t(0) },
            last_success: None,
            held: 2,
            grace: Duration::from_secs(300),
        };
        assert!(!s.impaired(t(300)));
        assert!(s.impaired(t(301)));
        s.reachability = Reachability::Reachable;
        assert!(!s.impaired(t(9999)));
        let j = status_json(&s).unwrap();
        assert_eq!(j["upstream"], "reachable");
        assert_eq!(j["held"], 2);
        assert!(status_json(&Status::default()).is_none());
    }

    const CONFIG: &str = r#"
[[users]]
id = "alice"
phone = "+4915100000001"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
wait = "10m"

[[routes]]
id = "db"
policy = "p"
"#;

    /// Ending a hold makes the held first step due at once, as the state machine moves it (the
    /// wait keeps its start).
    #[test]
    fn ending_a_hold_makes_the_held_first_step_due_now() {
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let config = Config::parse(CONFIG, "t.toml", std::path::Path::new("/"))
            .unwrap()
            .config;
        let c = crate::store::memory();
        let alert = crate::store::AlertInput {
            route: Some("db".into()),
            policy: Some("p".into()),
            pre_page_delay: Duration::from_secs(300),
            ..crate::store::AlertInput::test_trigger("k", "db")
        };
        let inc = crate::store::queries::apply_alert(&c, &alert, t(0))
            .unwrap()
            .incident()
            .cloned()
            .unwrap();
        let standby = sql::Standby {
            upstream: Upstream::PagerDuty,
            grace: Duration::from_secs(300),
        };
        sql::hold(&c, Some(standby), &inc, true, t(1)).unwrap();
        let row = |c: &Tx| {
            crate::store::escalations::of_incident(c, inc.id)
                .unwrap()
                .unwrap()
                .row
        };
        assert_eq!(row(&c).due, Some(t(300)));
        assert!(end_hold(&c, &config, inc.id, "PagerDuty unreachable", t(5)).unwrap());
        assert_eq!((row(&c).due, row(&c).since), (Some(t(5)), t(0)));
        // A second end before the engine paged leaves the step where it is: it is due already.
        end_hold(&c, &config, inc.id, "again", t(6)).unwrap();
        assert_eq!(row(&c).due, Some(t(5)));
    }

    #[test]
    fn queued_ack_bodies() {
        assert_eq!(
            ack_body(r#"{"dedup_key":"k","by":"alice"}"#),
            Some(("k".into(), "alice".into()))
        );
        assert_eq!(
            ack_body(r#"{"dedup_key":"k"}"#),
            Some(("k".into(), "pagerbox".into()))
        );
        assert_eq!(ack_body(r#"{"dedup_key":""}"#), None);
        assert_eq!(ack_body("garbage"), None);
    }
}
