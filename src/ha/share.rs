//! Alerts that reach one box only, shared with the peer through etcd.
//!
//! HTTP alert sources list both boxes, but a UDP datagram, an SMS `PAGE` and `pagerbox send`
//! are addressed to one. Without a copy the peer would know nothing of such an incident, and
//! if the box that took it in died before its pages went out, nobody would page it. So each
//! incident such an alert opens here is written to etcd as the alert after routing (its dedup
//! key, text, severity, details, links and route), under the incident's pair-wide name; the
//! peer opens the same incident from it, and because the name in etcd carries this box's start,
//! both boxes compute the same page ids and claim the same pages.
//!
//! Applying a copy is idempotent by dedup key: a peer that already holds an open incident with
//! the key (the alert also came to it over HTTP, or the copy was applied before) changes
//! nothing, not even the alert count.
//!
//! Runtime overrides (HTTP API, SMS `TAKE`) are shared the same way: each box escalates with
//! its own on-call lookup, so an override made on one box must be in force on both, or the
//! boxes would page different people and their page ids would not meet. An override is named
//! pair-wide by what it is (schedule, person, from, until); a deletion writes the same key
//! again, marked deleted.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::coordinator::Coordinator;
use super::decide::shares_intake;
use super::etcd::PeerRecord;
use crate::config::policy::Route;
use crate::config::Config;
use crate::incident::{Actor, Incident, Link, Severity};
use crate::store::{pair as rows, AlertAction, AlertInput, Store};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// An alert as one box shares it with the other: what opened the incident, after routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedAlert {
    pub dedup_key: String,
    pub summary: String,
    pub severity: Severity,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub details: serde_json::Value,
    #[serde(default)]
    pub links: Vec<Link>,
    /// The route that matched on the box that took the alert in (both boxes run the same
    /// routes): the peer takes the policy and pre-page delay from its own copy of that route.
    #[serde(default)]
    pub route: Option<String>,
}

impl SharedAlert {
    /// The alert that opened `incident`.
    pub fn of(incident: &Incident) -> SharedAlert {
        SharedAlert {
            dedup_key: incident.dedup_key.clone(),
            summary: incident.summary.clone(),
            severity: incident.severity,
            source: incident.source.clone(),
            service: incident.service.clone(),
            details: incident.details.clone(),
            links: incident.links.clone(),
            route: incident.route.clone(),
        }
    }

    /// The store input that opens the same incident here, routed by the route's id in this
    /// box's `routes`. A route this box does not have leaves the incident unrouted (recorded and
    /// rerouted when a config that matches it is loaded), as a single box does with an alert no
    /// route matches.
    pub fn into_input(self, routes: &[Route], peer: &str) -> AlertInput {
        let route = self
            .route
            .as_deref()
            .and_then(|id| routes.iter().find(|r| r.id == id));
        AlertInput {
            action: AlertAction::Trigger,
            dedup_key: Some(self.dedup_key),
            summary: self.summary,
            severity: self.severity,
            source: self.source,
            service: self.service,
            details: crate::escalation::bounded(self.details, crate::escalation::DETAILS_DEPTH),
            links: self.links,
            route: route.map(|r| r.id.clone()),
            policy: route.map(|r| r.policy.clone()),
            pre_page_delay: route.map(|r| r.pre_page_delay).unwrap_or_default(),
            page: true,
            actor: Actor::new(peer, "pair"),
        }
    }
}

/// A runtime override as one box shares it with the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedOverride {
    pub schedule: String,
    pub user: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub deleted: bool,
}

impl SharedOverride {
    /// The override's pair-wide key: a hash of what it is (schedule, person, span), the same
    /// on both boxes whatever its local row ids, and the same for its deletion.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for field in [
            self.schedule.as_bytes(),
            self.user.as_bytes(),
            &self.from.timestamp_millis().to_be_bytes(),
            &self.until.timestamp_millis().to_be_bytes(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Shares every incident opened here by an alert that reached this box only
/// ([`shares_intake`]) and every runtime override added or deleted here, from the timeline, as
/// it is committed.
pub async fn share_intake(store: Store, coordinator: Coordinator, shutdown: CancellationToken) {
    let mut cursor = loop {
        match store.read(|c, _| Ok(rows::last_event_id(c)?)).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::error!(error = %e, "pair: cannot read the timeline; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut override_cursor = cursor;
    let mut commits = store.commits();
    loop {
        override_cursor = share_overrides(&store, &coordinator, override_cursor).await;
        let after = cursor;
        match store
            .read(move |c, _| Ok(rows::local_triggers(c, after, 200)?))
            .await
        {
            Ok(list) => {
                for t in list {
                    cursor = t.event_id;
                    if !shares_intake(&t.via) {
                        continue;
                    }
                    let alert = match serde_json::to_string(&SharedAlert::of(&t.incident)) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::error!(incident = t.incident.id, error = %e, "pair: cannot encode an alert to share");
                            continue;
                        }
                    };
                    let identity = coordinator
                        .identity(
                            &t.incident.dedup_key,
                            t.incident.first_seen.timestamp_millis(),
                        )
                        .await;
                    tracing::info!(incident = t.incident.id, via = %t.via, %identity, "pair: sharing an alert only this box received");
                    coordinator.share(&identity, alert);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "pair: cannot read alerts taken in here; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = commits.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Shares the overrides added or deleted here after timeline entry `after`; returns the new
/// cursor.
async fn share_overrides(store: &Store, coordinator: &Coordinator, after: i64) -> i64 {
    let list = match store
        .read(move |c, _| Ok(rows::local_overrides(c, after, 200)?))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "pair: cannot read overrides made here; retrying");
            return after;
        }
    };
    let mut cursor = after;
    for o in list {
        cursor = o.event_id;
        let shared = SharedOverride {
            schedule: o.schedule,
            user: o.user,
            from: o.from,
            until: o.until,
            created_by: o.created_by,
            deleted: o.deleted,
        };
        match serde_json::to_string(&shared) {
            Ok(value) => {
                tracing::info!(schedule = %shared.schedule, user = %shared.user, deleted = shared.deleted, "pair: sharing an override made here");
                coordinator.share_override(shared.key(), value);
            }
            Err(e) => tracing::error!(error = %e, "pair: cannot encode an override to share"),
        }
    }
    cursor
}

/// Applies here an override the peer added or deleted.
pub async fn apply_override(store: &Store, rec: &PeerRecord) {
    let Some(o) = rec
        .alert
        .as_deref()
        .and_then(|o| serde_json::from_str::<SharedOverride>(o).ok())
    else {
        tracing::warn!(key = %rec.identity, "pair: the peer shared an override this box cannot read");
        return;
    };
    let by = rec.by.clone();
    let what = o.clone();
    let done = store
        .call(move |c, now| {
            Ok(rows::apply_peer_override(
                c,
                &o.schedule,
                &o.user,
                o.from,
                o.until,
                o.created_by.as_deref(),
                o.deleted,
                &by,
                now,
            )?)
        })
        .await;
    match done {
        Ok(true) => {
            tracing::info!(schedule = %what.schedule, user = %what.user, deleted = what.deleted, by = %rec.by, "pair: applied the peer's override")
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "pair: cannot apply the peer's override"),
    }
}

/// Opens here the incident of an alert that reached only the peer, unless an open incident
/// with its key is already here.
/// Returns `false` when the store refused for a passing reason (busy, a disk error): the record
/// is to be applied again later, not dropped (if the peer then died, nobody would hold it).
pub async fn apply_intake(
    store: &Store,
    config: &watch::Receiver<Arc<Config>>,
    rec: &PeerRecord,
) -> bool {
    let Some(alert) = rec
        .alert
        .as_deref()
        .and_then(|a| serde_json::from_str::<SharedAlert>(a).ok())
    else {
        tracing::warn!(incident = %rec.identity, "pair: the peer shared an alert this box cannot read");
        return true;
    };
    let key = alert.dedup_key.clone();
    match store
        .read({
            let key = key.clone();
            move |c, _| Ok(rows::open_with_key(c, &key)?)
        })
        .await
    {
        Ok(open) if !open.is_empty() => return true,
        Ok(_) => {}
        Err(e) => {
            // Opening it anyway is safe: a trigger for an open key only counts a repeat.
            tracing::warn!(error = %e, "pair: cannot look up the incident the peer shared");
        }
    }
    let routes = config.borrow().routes.clone();
    let input = alert.into_input(&routes, &rec.by);
    match store.apply_alert(input).await {
        Ok(o) => {
            tracing::info!(dedup_key = %key, by = %rec.by, incident = ?o.incident().map(|i| i.id), "pair: opened the incident of an alert the peer received");
            true
        }
        Err(e) => {
            tracing::error!(dedup_key = %key, error = %e, retry = e.is_retryable(), "pair: cannot open the incident the peer shared");
            !e.is_retryable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        Incident {
            id: 7,
            dedup_key: "disk-db1".into(),
            status: crate::incident::Status::Triggered,
            severity: Severity::Critical,
            summary: "/var is 97% full".into(),
            source: Some("sms:alice".into()),
            service: Some("db".into()),
            route: Some("default".into()),
            details: serde_json::json!({"raised_by": "alice"}),
            links: vec![Link {
                href: "https://wiki/disk".into(),
                text: None,
            }],
            alert_count: 3,
            first_seen: crate::clock::system_now(),
            last_seen: crate::clock::system_now(),
            acknowledged: None,
            resolved: None,
        }
    }

    #[test]
    fn a_shared_alert_reads_back_and_opens_the_same_incident() {
        let shared = SharedAlert::of(&incident());
        let text = serde_json::to_string(&shared).unwrap();
        let back: SharedAlert = serde_json::from_str(&text).unwrap();
        assert_eq!(back, shared);
        // No route with that id here: unrouted, recorded, paged once a config matches it.
        let input = back.into_input(&[], "a");
        assert_eq!(input.dedup_key(), "disk-db1");
        assert_eq!((input.route, input.policy), (None, None));
        assert_eq!(input.action, AlertAction::Trigger);
        assert!(input.page);
        assert_eq!(
            (input.actor.who.as_str(), input.actor.via.as_str()),
            ("a", "pair")
        );
        assert_eq!(input.severity, Severity::Critical);
        assert_eq!(input.details["raised_by"], "alice");
        assert_eq!(input.links.len(), 1);
    }

    #[test]
    fn an_older_or_newer_record_still_reads() {
        // Fields a later version adds are ignored; missing optional ones default.
        let text = r#"{"dedup_key":"k","summary":"s","severity":"warning","extra":1}"#;
        let a: SharedAlert = serde_json::from_str(text).unwrap();
        assert_eq!((a.route, a.source), (None, None));
    }

    #[test]
    fn an_override_and_its_deletion_share_one_key() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let o = SharedOverride {
            schedule: "primary".into(),
            user: "bob".into(),
            from: t(0),
            until: t(3600),
            created_by: Some("bob via sms".into()),
            deleted: false,
        };
        let gone = SharedOverride {
            deleted: true,
            created_by: None,
            ..o.clone()
        };
        assert_eq!(o.key(), gone.key());
        assert_eq!(o.key().len(), 32);
        for other in [
            SharedOverride {
                user: "alice".into(),
                ..o.clone()
            },
            SharedOverride {
                until: t(3601),
                ..o.clone()
            },
            SharedOverride {
                schedule: "db".into(),
                ..o.clone()
            },
        ] {
            assert_ne!(o.key(), other.key());
        }
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<SharedOverride>(&text).unwrap(), o);
    }
}
