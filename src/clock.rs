//! Wall-clock time behind a trait.
//!
//! Schedules change at local midnight and across DST, and escalation waits minutes; tests cannot
//! wait for either. Logic takes `now` from a [`Clock`] (or as an argument) and never calls
//! `Utc::now()` itself. Delays use `tokio::time`, which tests can pause.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
///
/// A std mutex is right here: the critical section is a copy of eight bytes and is never held
/// across an `.await`.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `t` (backwards too, to model an NTP step).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().expect("clock mutex poisoned") = t;
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::minutes(90));
        assert_eq!(c.now(), t0 + chrono::Duration::minutes(90));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }
}
