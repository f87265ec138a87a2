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
//!   HTTP handlers in `intake::selftest`.
//!
//! What this module does not do: talk AT itself (it asks [`crate::modem::Modem`]), or send
//! pages (the outbox and its senders do; the test SMS is an ordinary outbox row).

pub mod credit;
pub mod hysteresis;
pub mod monitor;
pub mod render;
pub mod runner;
pub mod schedule;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, PhoneNumber};
use crate::incident::{Actor, Severity};
use crate::intake::formats::ParsedAlert;
use crate::store::{AlertAction, Store};

pub use runner::{spawn, Inbox, SelftestHandle};
pub use schedule::TestSchedule;

/// Dedup key of the incident raised while the modem cannot page.
pub const MODEM_KEY: &str = "selftest:modem";
/// Dedup key of the incident raised while the prepaid credit is below `credit_min`.
pub const CREDIT_KEY: &str = "selftest:credit";
/// Dedup key of the incident raised when a scheduled self-test fails.
pub const RUN_KEY: &str = "selftest:run";
/// The `service` of self-test incidents, for routes to match on.
pub const SERVICE: &str = "pagerbox";

/// Who the test SMS goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fixed number (a second SIM, or a person).
    Number(PhoneNumber),
    /// Whoever is on call on this schedule when the test runs.
    OnCall(String),
}

/// `[selftest]`, validated. Without the section nothing is monitored or scheduled, but a
/// self-test can still be run on demand (it then stops before the SMS step).
#[derive(Debug, Clone)]
pub struct SelftestConfig {
    /// The `[selftest]` section is present: monitor, and run the schedule.
    pub enabled: bool,
    /// When the scheduled test page is due; `None`: only on demand.
    pub schedule: Option<TestSchedule>,
    /// Who the test SMS goes to; `None`: no SMS step.
    pub target: Option<Target>,
    /// A second SIM that answers the test SMS; the loop closes when an SMS from it carries
    /// the test code within `reply_timeout`.
    pub expect_reply_from: Option<PhoneNumber>,
    /// How long to wait for that reply.
    pub reply_timeout: Duration,
    /// How long the test SMS may take from queueing to `+CMGS`.
    pub submit_timeout: Duration,
    /// How long to wait for the delivery report (when `modem.delivery_reports`).
    pub delivery_timeout: Duration,
    /// USSD code that answers with the prepaid balance, e.g. `*100#`.
    pub credit_ussd: Option<String>,
    /// Finds the amount in the answer (first capture group, or the whole match).
    pub credit_pattern: regex::Regex,
    /// Below this the credit is an incident; `None`: only reported.
    pub credit_min: Option<f64>,
    /// How often the monitor checks the credit.
    pub credit_interval: Duration,
    /// How long to wait for a USSD answer.
    pub ussd_timeout: Duration,
    /// A signal weaker than this counts as impaired.
    pub min_signal_dbm: i32,
    /// How long an impairment must last before it is raised.
    pub grace: Duration,
    /// How long health must hold before the incident is resolved.
    pub recover: Duration,
    /// How often the monitor looks (also at the signal, with one status query).
    pub check_interval: Duration,
}

impl Default for SelftestConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            schedule: None,
            target: None,
            expect_reply_from: None,
            reply_timeout: Duration::from_secs(300),
            submit_timeout: Duration::from_secs(180),
            delivery_timeout: Duration::from_secs(120),
            credit_ussd: None,
            credit_pattern: regex::Regex::new(credit::DEFAULT_PATTERN).expect("default pattern"),
            credit_min: None,
            credit_interval: Duration::from_secs(24 * 3600),
            ussd_timeout: Duration::from_secs(30),
            min_signal_dbm: -107,
            grace: Duration::from_secs(300),
            recover: Duration::from_secs(120),
            check_interval: Duration::from_secs(60),
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Stable id: `at`, `sim`, `registration`, `signal`, `credit`, `sms`, `delivered`, `reply`.
    pub id: String,
    /// What was checked, for people.
    pub name: String,
    /// `ok`, `failed` or `skipped`.
    pub outcome: Outcome,
    /// What was found (operator, dBm, balance, message reference, why it failed).
    pub detail: String,
    /// How long the step took.
    pub ms: u64,
    /// When it ended, counted from the start of the run.
    pub at_ms: u64,
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Checked and fine.
    Ok,
    /// Checked and not fine: the run fails.
    Failed,
    /// Not checked, because an earlier step failed.
    Skipped,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `POST /v1/selftest` / `pagerbox selftest`.
    Manual,
    /// `[selftest] schedule`.
    Schedule,
}

impl Trigger {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Store id (0 if it could not be stored).
    pub id: i64,
    /// What started it.
    pub trigger: Trigger,
    /// The code carried by the test SMS (and expected in the reply).
    pub code: String,
    /// When it started and ended.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Every step passed (skipped ones aside).
    pub ok: bool,
    /// The first failed step's id.
    pub failed_step: Option<String>,
    /// The steps in order.
    pub steps: Vec<Step>,
}

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
    let input = crate::intake::route_alert(config, parsed, Actor::new("selftest", "selftest"));
    store.apply_alert(input).await.map(|_| ())
}
