//! The task that watches whether the modem can page, and the prepaid credit.
//!
//! Inputs: the modem's health watch (Down or Degraded with a reason: no SIM, PIN, not
//! registered, modem not answering, weak signal by the driver's own threshold), a status query
//! every `check_interval` for the signal against `[selftest] min_signal_dbm`, and a USSD
//! balance check every `credit_interval`. An impairment goes through [`Hysteresis`] (raised
//! after `grace`, resolved after `recover`) into the incident [`MODEM_KEY`] and the panel's
//! fault flag; low credit into [`CREDIT_KEY`]. Runs only while `[selftest]` is configured.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::credit::parse_amount;
use super::hysteresis::{Hysteresis, Transition};
use super::{set_incident, SelftestConfig, CREDIT_KEY, MODEM_KEY};
use crate::clock::Clock;
use crate::config::Config;
use crate::incident::Severity;
use crate::modem::{Health, HealthState, Modem, ModemError};
use crate::store::Store;

/// Never look less often than this while a problem is pending (grace/recover running).
const MIN_TICK: Duration = Duration::from_millis(200);
/// Longest wait for the modem's status: during a voice page the modem task serves other
/// requests only after the call, and the monitor must keep watching health meanwhile.
const STATUS_WAIT: Duration = Duration::from_secs(3);

/// The credit, or why it is unknown.
pub type CreditResult = Result<(f64, String), CreditError>;

/// Why a credit check found no balance. Reported, never an incident: the next check may work.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    /// The USSD request failed in the modem (its error kept as the source).
    #[error(transparent)]
    Modem(#[from] ModemError),
    /// The network answered the USSD request with something other than an answer.
    #[error("USSD {code}: {status}")]
    NotAnswered { code: String, status: String },
    /// The answer holds nothing `credit_pattern` matches.
    #[error("no amount in the answer {0:?}")]
    NoAmount(String),
    /// The modem did not take the request in time (it serves a voice page first).
    #[error("the modem is busy (a call in progress?)")]
    Busy,
}

/// Asks the network for the balance with `code` and reads it with the configured pattern.
/// `Ok((amount, answer text))`.
pub async fn check_credit(modem: &Modem, code: &str, st: &SelftestConfig) -> CreditResult {
    let a = modem.ussd(code, st.ussd_timeout).await?;
    if !a.status.answered() {
        return Err(CreditError::NotAnswered {
            code: code.to_string(),
            status: a.status.describe().to_string(),
        });
    }
    let text = a.text.unwrap_or_default();
    match parse_amount(&text, &st.credit_pattern) {
        Some(v) => Ok((v, text)),
        None => Err(CreditError::NoAmount(text)),
    }
}

/// What a credit check means.
#[derive(Debug, Clone, PartialEq)]
pub enum CreditVerdict {
    /// At or above the minimum (or no minimum).
    Fine(f64),
    /// Below the minimum: an incident.
    Low { amount: f64, min: f64 },
    /// Could not be read: reported, not an incident (the next check may work).
    Unknown(String),
}

/// Judges a credit check against `min`.
pub fn credit_verdict(res: &CreditResult, min: Option<f64>) -> CreditVerdict {
    match (res, min) {
        (Ok((v, _)), Some(m)) if *v < m => CreditVerdict::Low { amount: *v, min: m },
        (Ok((v, _)), _) => CreditVerdict::Fine(*v),
        (Err(e), _) => CreditVerdict::Unknown(e.to_string()),
    }
}

impl CreditVerdict {
    /// For the step's detail and logs.
    pub fn describe(&self) -> String {
        match self {
            CreditVerdict::Fine(v) => format!("balance {v}"),
            CreditVerdict::Low { amount, min } => format!("balance {amount}, below {min}"),
            CreditVerdict::Unknown(e) => format!("unknown: {e}"),
        }
    }

    /// Raises or resolves [`CREDIT_KEY`]; an unknown credit changes nothing.
    pub async fn apply(
        &self,
        store: &Store,
        config: &Config,
    ) -> Result<(), crate::store::StoreError> {
        match self {
            CreditVerdict::Fine(_) => set_incident(store, config, CREDIT_KEY, None).await,
            CreditVerdict::Low { amount, min } => {
                set_incident(
                    store,
                    config,
                    CREDIT_KEY,
                    Some((
                        format!(
                            "Prepaid credit of the paging SIM is low: {amount} (minimum {min})"
                        ),
                        Severity::Warning,
                        serde_json::json!({ "balance": amount, "minimum": min }),
                    )),
                )
                .await
            }
            CreditVerdict::Unknown(_) => Ok(()),
        }
    }
}

/// What the monitor needs.
pub struct Deps {
    pub store: Store,
    pub config: watch::Receiver<Arc<Config>>,
    pub modem: Modem,
    pub health: watch::Receiver<Health>,
    pub clock: Arc<dyn Clock>,
    /// Set while [`MODEM_KEY`] is raised; the panel shows it as paging impaired.
    pub fault: watch::Sender<bool>,
    pub shutdown: CancellationToken,
}

/// How soon a modem incident the store did not take is tried again.
const RETRY_INCIDENT: Duration = Duration::from_secs(5);

/// Opens (`Raise`) or resolves the modem incident; `false`, logged, when the store refused.
async fn modem_incident(
    d: &Deps,
    config: &Config,
    t: &Transition,
    since: impl serde::Serialize,
) -> bool {
    let r = match t {
        Transition::Raise(reason) => {
            set_incident(
                &d.store,
                config,
                MODEM_KEY,
                Some((
                    format!("Paging by modem impaired: {reason}"),
                    Severity::Critical,
                    serde_json::json!({ "reason": reason, "since": since }),
                )),
            )
            .await
        }
        Transition::Resolve => set_incident(&d.store, config, MODEM_KEY, None).await,
    };
    match r {
        Ok(_) => true,
        Err(e) => {
            error!(error = %e, change = ?t, "cannot record the modem incident; trying again");
            false
        }
    }
}

/// Runs until shutdown.
// Long on purpose: one tick loop; its state (hysteresis, last status query, next credit check) spans ticks.
pub async fn run(mut d: Deps) {
    let first = d.config.borrow().selftest.clone();
    let mut hyst = Hysteresis::new(first.grace, first.recover);
    let mut last_status: Option<Instant> = None;
    let mut weak: Option<String> = None;
    let mut next_credit = Instant::now();
    let mut health_alive = true;
    // The hysteresis says raise or resolve once: a change the store did not take (busy in an
    // alert storm, a disk error) is kept and tried again, or the incident that tells people the
    // modem is down would never be opened, or one opened would never be resolved.
    let mut owed: Option<Transition> = None;
    loop {
        let config = d.config.borrow().clone();
        let st = &config.selftest;
        // A reload may change the periods; take them over unless an incident is open (its
        // recovery keeps the periods it started with).
        if !hyst.is_raised() && hyst.periods() != (st.grace, st.recover) {
            hyst = Hysteresis::new(st.grace, st.recover);
        }
        let mut tick = st.check_interval;
        if !st.enabled && hyst.is_raised() {
            // Turned off while raised: nothing would ever resolve it, and the fault (503, the
            // LED) would stay on for a check that no longer runs.
            info!("self-test turned off; resolving the modem incident it raised");
            hyst = Hysteresis::new(st.grace, st.recover);
            d.fault.send_replace(false);
            owed = Some(Transition::Resolve);
        }
        if st.enabled {
            let health = d.health.borrow_and_update().clone();
            // The signal against our own threshold, by a status query now and then.
            if health.state == HealthState::Up
                && last_status.is_none_or(|t| t.elapsed() >= st.check_interval)
            {
                last_status = Some(Instant::now());
                weak = match tokio::time::timeout(STATUS_WAIT, d.modem.status()).await {
                    // Busy (a call in progress): keep what we knew.
                    Err(_) => weak,
                    Ok(Err(_)) => None,
                    Ok(Ok(s)) => match s.signal_dbm {
                        Some(dbm) if dbm < st.min_signal_dbm => Some(format!(
                            "weak signal ({dbm} dBm, below {} dBm)",
                            st.min_signal_dbm
                        )),
                        _ => None,
                    },
                };
            }
            let problem = match health.state {
                HealthState::Down | HealthState::Degraded => Some(health.reason.clone()),
                HealthState::Up => weak.clone(),
            };
            let now = d.clock.now();
            if let Some(t) = hyst.observe(problem.as_deref(), now) {
                match &t {
                    Transition::Raise(reason) => {
                        error!(reason = %reason, "paging by modem impaired; raising an incident")
                    }
                    Transition::Resolve => {
                        info!("paging by modem restored; resolving the incident")
                    }
                }
                owed = Some(t);
            }
            d.fault.send_if_modified(|f| {
                let raised = hyst.is_raised();
                let changed = *f != raised;
                *f = raised;
                changed
            });
            if problem.is_some() || hyst.is_raised() {
                tick = tick
                    .min((st.grace / 4).max(MIN_TICK))
                    .min((st.recover / 4).max(MIN_TICK));
            }
            if let Some(code) = st.credit_ussd.as_deref() {
                if health.state == HealthState::Up && Instant::now() >= next_credit {
                    let res = tokio::time::timeout(
                        st.ussd_timeout + STATUS_WAIT,
                        check_credit(&d.modem, code, st),
                    )
                    .await
                    .unwrap_or(Err(CreditError::Busy));
                    let verdict = super::monitor::credit_verdict(&res, st.credit_min);
                    match &verdict {
                        CreditVerdict::Unknown(e) => {
                            warn!(error = %e, "credit check failed; trying again later");
                            next_credit = Instant::now() + st.check_interval;
                        }
                        v => {
                            info!(credit = %v.describe(), "credit checked");
                            next_credit = Instant::now() + st.credit_interval;
                        }
                    }
                    if let Err(e) = verdict.apply(&d.store, &config).await {
                        error!(error = %e, "cannot record the credit incident");
                    }
                }
                tick = tick.min(
                    next_credit
                        .saturating_duration_since(Instant::now())
                        .max(MIN_TICK),
                );
            }
        }
        if let Some(t) = owed.take() {
            let since = d.health.borrow().since;
            if !modem_incident(&d, &config, &t, since).await {
                owed = Some(t);
                tick = tick.min(RETRY_INCIDENT);
            }
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => return,
            r = d.health.changed(), if health_alive => if r.is_err() { health_alive = false },
            r = d.config.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_verdicts() {
        let ok: CreditResult = Ok((12.5, "Balance 12.50".into()));
        assert_eq!(credit_verdict(&ok, Some(5.0)), CreditVerdict::Fine(12.5));
        assert_eq!(credit_verdict(&ok, None), CreditVerdict::Fine(12.5));
        assert_eq!(
            credit_verdict(&ok, Some(20.0)),
            CreditVerdict::Low {
                amount: 12.5,
                min: 20.0
            }
        );
        let bad: CreditResult = Err(CreditError::NotAnswered {
            code: "*100#".into(),
            status: "operation not supported".into(),
        });
        assert!(matches!(
            credit_verdict(&bad, Some(1.0)),
            CreditVerdict::Unknown(_)
        ));
    }
}
