//! Intake: alerts arrive over HTTP (axum) and UDP, in pagerbox's own JSON, PagerDuty Events v2,
//! Alertmanager/Grafana webhook form, Opsgenie's Alert API (`opsgenie`) or Splunk On-Call's REST
//! endpoint (`victorops`), and become incidents in the store.
//!
//! Intake owns parsing, authentication, routing (which policy an alert follows) and the answer
//! the sender gets. The contract with senders: a success answer (202) is given only after the
//! store has committed the incident and its timeline event; anything that might succeed later is
//! answered 5xx/429 so the sender retries; 4xx only for a body that will never be accepted.

pub mod formats;
pub mod udp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::{Config, Secret};
use crate::escalation::{route_alert, ParsedAlert};
use crate::incident::{Actor, IncidentId};
use crate::store::{AlertInput, Store, StoreError, Tx};

/// The request header with which `pagerbox send` names itself (`cli`): an alert it sends goes
/// to one box only, which a pair shares with the peer, unlike a source that lists both boxes.
pub const VIA_HEADER: &str = "x-pagerbox-via";

/// Counters intake keeps for its own log lines. What `/metrics` reports (alerts by source and
/// outcome) is counted by [`crate::metrics::Metrics`] instead, so nothing is counted twice.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Datagrams that were not an alert or a known heartbeat: the running total the UDP junk
    /// log line reports.
    pub udp_junk: AtomicU64,
}

impl IntakeStats {
    pub(crate) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// What every intake path shares: the store, the current config and the write token.
///
/// One reference count to clone: the HTTP layer clones its state for every middleware and
/// handler of every request, and cloning each field (a dozen channel ends and counters) and
/// dropping them again was a visible share of an alert's CPU time.
#[derive(Clone)]
pub struct Intake(Arc<IntakeParts>);

impl std::ops::Deref for Intake {
    type Target = IntakeParts;

    fn deref(&self) -> &IntakeParts {
        &self.0
    }
}

impl From<IntakeParts> for Intake {
    fn from(parts: IntakeParts) -> Intake {
        Intake(Arc::new(parts))
    }
}

/// The fields of [`Intake`].
pub struct IntakeParts {
    pub store: Store,
    pub config: watch::Receiver<Arc<Config>>,
    /// The write token now in force (`http.token_file`); replaced by a SIGHUP reload, so every
    /// check reads it through [`Intake::current_token`] rather than keeping a copy.
    pub token: watch::Receiver<Option<Arc<Secret>>>,
    pub stats: Arc<IntakeStats>,
    /// Whether paging works (for `/healthz`).
    pub paging: Option<watch::Receiver<crate::notify::sender::PagingHealth>>,
    /// The modem's health, when there is a modem.
    pub modem: Option<watch::Receiver<crate::modem::Health>>,
    /// Event counters for `/metrics`; intake counts alerts by source and outcome.
    pub metrics: crate::metrics::Metrics,
    /// Runs self-tests of the paging path, when there is a modem.
    pub selftest: Option<crate::selftest::SelftestHandle>,
    /// Where `/healthz` reads whether paging works (the same verdict the LED shows).
    pub health: crate::health::Sources,
}

impl Intake {
    /// Chooses the route and policy for a parsed alert and turns it into a store input.
    pub fn route(&self, p: ParsedAlert, actor: Actor) -> AlertInput {
        let config = self.config.borrow().clone();
        route_alert(&config, p, actor)
    }

    /// The write token now in force, if one is configured.
    pub fn current_token(&self) -> Option<Arc<Secret>> {
        self.token.borrow().clone()
    }

    /// True if `presented` is the configured write token (or no token is configured).
    /// Compares digests so the time taken does not depend on how much of the token matched.
    pub fn token_ok(&self, presented: Option<&str>) -> bool {
        match &self.current_token() {
            None => true,
            Some(t) => match presented {
                None => false,
                Some(p) => Sha256::digest(p.as_bytes()) == Sha256::digest(t.expose().as_bytes()),
            },
        }
    }
}

/// Reads the write token `config` names (`http.token_file`), for [`publish_token`]. A reload
/// whose token file cannot be read is refused as a whole, so the old token stays in force
/// rather than the API falling open.
pub fn read_token(config: &Config) -> std::io::Result<Option<Arc<Secret>>> {
    Ok(config.read_token()?.map(Arc::new))
}

/// Puts `token` in force for every intake path; returns true when it differs from the token in
/// force before (then every status page session, being derived from the token, has ended).
pub fn publish_token(tx: &watch::Sender<Option<Arc<Secret>>>, token: Option<Arc<Secret>>) -> bool {
    tx.send_if_modified(|current| {
        let same = match (current.as_deref(), token.as_deref()) {
            (None, None) => true,
            (Some(a), Some(b)) => secret_matches(a.expose(), b),
            _ => false,
        };
        if !same {
            *current = token;
        }
        !same
    })
}

/// True if `presented` is `secret`. Compares digests so the time taken does not depend on how
/// much of the secret matched (the provider-compatible intakes use it for their API keys).
pub(crate) fn secret_matches(presented: &str, secret: &Secret) -> bool {
    Sha256::digest(presented.as_bytes()) == Sha256::digest(secret.expose().as_bytes())
}

/// A note that came with an alert or an action (Opsgenie's `note`, Splunk On-Call's `ack_msg`
/// or `state_message`) on incident `id`'s timeline, as said by `actor`, in the store job that
/// applies the alert, so both commit together.
pub(crate) fn record_note(
    conn: &Tx,
    id: IncidentId,
    actor: &Actor,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    crate::store::events::record(
        conn,
        Some(id),
        now,
        crate::store::kinds::EventKind::Note,
        Some(actor),
        note,
        None,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Option<Arc<Secret>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, s).unwrap();
        Some(Arc::new(crate::config::read_secret(&p).unwrap()))
    }

    #[test]
    fn publishing_a_token_says_whether_it_changed() {
        let (tx, rx) = watch::channel(secret("a"));
        assert!(!publish_token(&tx, secret("a")), "same token");
        assert!(publish_token(&tx, secret("b")));
        assert_eq!(rx.borrow().as_ref().unwrap().expose(), "b");
        assert!(publish_token(&tx, None), "token removed");
        assert!(rx.borrow().is_none());
        assert!(!publish_token(&tx, None));
        assert!(publish_token(&tx, secret("c")), "token added");
    }
}
