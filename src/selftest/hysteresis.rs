//! Pure: when an impairment becomes an incident, and when it is over, without flapping.
//!
//! A problem must last `grace` before it is raised (a modem re-registering for a few seconds is
//! not worth a page), and health must hold for `recover` before it is resolved (a signal that
//! comes and goes raises one incident, not one per bounce). A short dip back into trouble while
//! recovering keeps the incident open and restarts the recovery wait.

use chrono::{DateTime, Utc};

/// What the caller should do after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The problem has lasted the grace period: raise it (with the current reason).
    Raise(String),
    /// Health has held for the recovery period: resolve.
    Resolve,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Healthy,
    Suspect { since: DateTime<Utc> },
    Impaired,
    Recovering { since: DateTime<Utc> },
}

/// The debouncer; feed it every observation with its time.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    grace: chrono::Duration,
    recover: chrono::Duration,
    state: State,
}

impl Hysteresis {
    /// A debouncer that starts healthy.
    pub fn new(grace: std::time::Duration, recover: std::time::Duration) -> Self {
        let d = |x| chrono::Duration::from_std(x).unwrap_or(chrono::Duration::zero());
        Self {
            grace: d(grace),
            recover: d(recover),
            state: State::Healthy,
        }
    }

    /// The grace and recovery periods it was made with.
    pub fn periods(&self) -> (std::time::Duration, std::time::Duration) {
        (
            self.grace.to_std().unwrap_or_default(),
            self.recover.to_std().unwrap_or_default(),
        )
    }

    /// Whether an incident is (or should be) open now.
    pub fn is_raised(&self) -> bool {
        matches!(self.state, State::Impaired | State::Recovering { .. })
    }

    /// One observation: `problem` is `Some(reason)` when paging is impaired now.
    pub fn observe(&mut self, problem: Option<&str>, now: DateTime<Utc>) -> Option<Transition> {
        match (&self.state, problem) {
            (State::Healthy, None) => None,
            (State::Healthy, Some(p)) => {
                self.state = State::Suspect { since: now };
                self.raise_if_due(now, p)
            }
            (State::Suspect { .. }, Some(p)) => self.raise_if_due(now, p),
            (State::Suspect { .. }, None) => {
                self.state = State::Healthy;
                None
            }
            (State::Impaired, Some(_)) => None,
            (State::Impaired, None) => {
                self.state = State::Recovering { since: now };
                self.resolve_if_due(now)
            }
            (State::Recovering { .. }, None) => self.resolve_if_due(now),
            (State::Recovering { .. }, Some(_)) => {
                self.state = State::Impaired;
                None
            }
        }
    }

    fn raise_if_due(&mut self, now: DateTime<Utc>, p: &str) -> Option<Transition> {
        let State::Suspect { since } = self.state else {
            return None;
        };
        if now - since >= self.grace {
            self.state = State::Impaired;
            Some(Transition::Raise(p.to_string()))
        } else {
            None
        }
    }

    fn resolve_if_due(&mut self, now: DateTime<Utc>) -> Option<Transition> {
        let State::Recovering { since } = self.state else {
            return None;
        };
        if now - since >= self.recover {
            self.state = State::Healthy;
            Some(Transition::Resolve)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn h() -> Hysteresis {
        Hysteresis::new(Duration::from_secs(300), Duration::from_secs(120))
    }

    #[test]
    fn a_short_outage_is_never_raised() {
        let mut h = h();
        assert_eq!(h.observe(Some("not registered"), t(0)), None);
        assert_eq!(h.observe(Some("not registered"), t(299)), None);
        assert_eq!(h.observe(None, t(300)), None);
        assert!(!h.is_raised());
        // A new problem starts a new grace period.
        assert_eq!(h.observe(Some("x"), t(400)), None);
        assert_eq!(h.observe(Some("x"), t(650)), None);
    }

    #[test]
    fn a_lasting_outage_is_raised_once_and_resolved_after_recovery_holds() {
        let mut h = h();
        h.observe(Some("SIM not inserted"), t(0));
        assert_eq!(
            h.observe(Some("SIM not inserted"), t(300)),
            Some(Transition::Raise("SIM not inserted".into()))
        );
        assert_eq!(h.observe(Some("SIM not inserted"), t(900)), None);
        assert_eq!(h.observe(None, t(1000)), None);
        assert!(h.is_raised());
        assert_eq!(h.observe(None, t(1119)), None);
        assert_eq!(h.observe(None, t(1120)), Some(Transition::Resolve));
        assert!(!h.is_raised());
    }

    #[test]
    fn flapping_during_recovery_keeps_one_incident_open() {
        let mut h = h();
        h.observe(Some("weak signal"), t(0));
        assert!(matches!(
            h.observe(Some("weak signal"), t(300)),
            Some(Transition::Raise(_))
        ));
        for i in 0..10 {
            let base = 400 + i * 100;
            assert_eq!(h.observe(None, t(base)), None);
            assert_eq!(h.observe(Some("weak signal"), t(base + 60)), None);
        }
        assert!(h.is_raised());
        assert_eq!(h.observe(None, t(2000)), None);
        assert_eq!(h.observe(None, t(2120)), Some(Transition::Resolve));
    }

    #[test]
    fn zero_grace_raises_at_once() {
        let mut h = Hysteresis::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(
            h.observe(Some("down"), t(0)),
            Some(Transition::Raise("down".into()))
        );
        assert_eq!(h.observe(None, t(1)), Some(Transition::Resolve));
    }
}
