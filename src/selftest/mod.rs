//! Self-test of the paging path: is the modem able to page right now, and does a real page
//! get through?
//!
//! - [`monitor`]: a task that watches the modem's health (SIM, registration, signal) and, where
//!   configured, the prepaid credit by USSD; an impairment that lasts `grace` raises the incident
//!   `selftest:modem` (and the panel LED's fault blink), resolved once health holds for
//!   `recover` ([`hysteresis`]). Low credit raises `selftest:credit`. Incidents go through the
//!   configured routes like any alert (service `pagerbox`, source `selftest`), so e-mail still
//!   pages someone while the modem is down.
//! - [`runner`]: the task that runs a self-test, on demand (`POST /v1/selftest`, `pagerbox
//!   selftest`) or on `[selftest] schedule` ([`schedule`]): AT, SIM, registration, signal,
//!   credit, then a real test SMS through the durable outbox to `target`, its delivery report,
//!   and the reply from a second SIM (`expect_reply_from`) carrying the test code. Each run is
//!   stored with its steps and timings ([`crate::store::selftest_runs`]); a failed scheduled run raises
//!   `selftest:run`, the next good run resolves it.
//! - [`credit`]: pure: the balance in a USSD answer, by the configured pattern.
//! - [`render`]: the CLI's text form of a run. The `/v1/selftest` handlers live with the other
//!   HTTP handlers in `api::selftest`.
//!
//! What this module does not do: talk AT itself (it asks [`crate::modem::Modem`]), or send
//! pages (the outbox and its senders do; the test SMS is an ordinary outbox row).

pub mod credit;
pub mod hysteresis;
pub mod monitor;
pub mod render;
pub mod runner;

use crate::config::Config;
use crate::escalation::{route_alert, ParsedAlert};
use crate::incident::{Actor, Severity};
use crate::store::{AlertAction, Store};

pub use crate::config::selftest::{SelftestConfig, Target};
pub use crate::config::test_schedule::{self as schedule, TestSchedule};
pub use crate::store::selftest_runs::{Outcome, Run, Step, Trigger};
pub use runner::{spawn, Inbox, SelftestHandle};

/// Dedup key of the incident raised while the modem cannot page.
pub const MODEM_KEY: &str = "selftest:modem";
/// Dedup key of the incident raised while the prepaid credit is below `credit_min`.
pub const CREDIT_KEY: &str = "selftest:credit";
/// Dedup key of the incident raised when a scheduled self-test fails.
pub const RUN_KEY: &str = "selftest:run";
/// The `service` of self-test incidents, for routes to match on.
pub const SERVICE: &str = "pagerbox";

/// Errors of the self-test tasks and their handle.
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    /// The self-test task has stopped (shutdown).
    #[error("the self-test task has stopped")]
    Stopped,
    /// Too many runs are waiting already.
    #[error("a self-test is already running and others are queued; try again later")]
    Busy,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl SelftestError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Stopped => false,
            Self::Busy => true,
            Self::Store(e) => e.is_retryable(),
        }
    }
}

/// Triggers (`Some(summary)`) or resolves (`None`) a self-test incident through the routes.
/// A resolve for a key with no open incident is a no-op in the store.
pub async fn set_incident(
    store: &Store,
    config: &Config,
    key: &str,
    trigger: Option<(String, Severity, serde_json::Value)>,
) -> Result<(), crate::store::StoreError> {
    let (action, summary, severity, details) = match trigger {
        Some((s, sev, d)) => (AlertAction::Trigger, s, sev, d),
        None => (
            AlertAction::Resolve,
            "self-test: healthy again".to_string(),
            Severity::Info,
            serde_json::Value::Null,
        ),
    };
    let parsed = ParsedAlert {
        action,
        dedup_key: Some(key.to_string()),
        summary,
        severity,
        source: Some("selftest".into()),
        service: Some(SERVICE.into()),
        details,
        links: Vec::new(),
        routing_key: None,
    };
    let input = route_alert(config, parsed, Actor::new("selftest", "selftest"));
    store.apply_alert(input).await.map(|_| ())
}
