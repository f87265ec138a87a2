//! `[selftest]`: who the test page goes to, when it is due, and the thresholds the modem
//! monitor and the credit check use. The tasks that act on it are `selftest`'s.

use std::time::Duration;

use super::test_schedule::TestSchedule;
use super::PhoneNumber;

/// The default credit pattern: the first number in the answer, with an optional minus sign and
/// decimal part.
pub const DEFAULT_CREDIT_PATTERN: &str = r"(-?\d+(?:[.,]\d+)*)";

/// Whether `code` is something a network takes as a USSD string: digits, `*` and `#`. Config
/// refuses any other `credit_ussd`, and the modem driver refuses to send one.
pub fn valid_ussd_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 40
        && code
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
}

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
            credit_pattern: regex::Regex::new(DEFAULT_CREDIT_PATTERN).expect("default pattern"),
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
