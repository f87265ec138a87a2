//! Wall-clock time behind a trait.
//!
//! Schedules change at local midnight and across DST, and escalation waits minutes; tests cannot
//! wait for either. Logic takes `now` from a [`Clock`] (or as an argument) and never calls
//! `Utc::now()` itself. Delays use `tokio::time`, which tests can pause.

use chrono::{DateTime, TimeDelta, Utc};

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

/// A clock that only moves when told to; for tests (test builds only: `cfg(test)` or the
/// `testkit` feature).
///
/// A std mutex is right here: the critical section is a copy of eight bytes and is never held
/// across an `.await`.
#[cfg(any(test, feature = "testkit"))]
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: std::sync::Arc<std::sync::Mutex<DateTime<Utc>>>,
}

#[cfg(any(test, feature = "testkit"))]
impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: std::sync::Arc::new(std::sync::Mutex::new(start)),
        }
    }

    /// Moves the clock to `t` (backwards too, to model an NTP step).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().expect("clock mutex poisoned") = t;
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now = add_signed(*now, d);
    }
}

#[cfg(any(test, feature = "testkit"))]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}

// Checked time arithmetic.
//
// `DateTime + TimeDelta` panics on overflow, and a panic on the store thread stops every write
// after it. Spans come from requests, config and the database, so no code adds them with `+`:
// it calls one of these, which saturate at the ends of chrono's range (about ±262,000 years).
// A saturated instant is "never" in practice; inputs that can only mean nonsense are rejected
// where they are read (`pagerbox check`, a 400), so saturation is the last line, not the first.

/// `d` as a signed span, saturating at `TimeDelta::MAX` (`from_std` fails above ~292M years).
pub fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `t + d`, saturating at the end of time instead of overflowing.
pub fn add(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    t.checked_add_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at the beginning of time instead of overflowing.
pub fn sub(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    t.checked_sub_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t + d` for a signed span, saturating at whichever end of time it runs past.
pub fn add_signed(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < TimeDelta::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `t - d` for a signed span, saturating at whichever end of time it runs past.
pub fn sub_signed(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(if d < TimeDelta::zero() {
        DateTime::<Utc>::MAX_UTC
    } else {
        DateTime::<Utc>::MIN_UTC
    })
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

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
        let huge = std::time::Duration::from_secs(u64::MAX);
        assert_eq!(add(t0, huge), DateTime::<Utc>::MAX_UTC);
        assert_eq!(sub(t0, huge), DateTime::<Utc>::MIN_UTC);
        assert_eq!(add_signed(t0, TimeDelta::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(add_signed(t0, TimeDelta::MIN), DateTime::<Utc>::MIN_UTC);
        assert_eq!(sub_signed(t0, TimeDelta::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(sub_signed(t0, TimeDelta::MIN), DateTime::<Utc>::MAX_UTC);
        assert_eq!(delta(huge), TimeDelta::MAX);
        // In range, they are plain arithmetic.
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(add(t0, hour), t0 + TimeDelta::hours(1));
        assert_eq!(sub(t0, hour), t0 - TimeDelta::hours(1));
        // 300,000 years: the value that used to stop the store thread.
        let y300k = humantime::parse_duration("300000y").unwrap();
        assert_eq!(sub(t0, y300k), DateTime::<Utc>::MIN_UTC);
        assert_eq!(
            add(DateTime::<Utc>::MAX_UTC, hour),
            DateTime::<Utc>::MAX_UTC
        );
    }

    proptest::proptest! {
        /// Any instant chrono can hold, any span: never a panic, and the answer is the exact
        /// sum or the end of time it ran into.
        #[test]
        fn checked_sums_never_panic(
            t in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            secs in proptest::num::u64::ANY,
            nanos in 0u32..1_000_000_000,
            signed in proptest::num::i64::ANY,
        ) {
            let t = DateTime::<Utc>::from_timestamp(t, 0).unwrap();
            let d = std::time::Duration::new(secs, nanos);
            let up = add(t, d);
            let down = sub(t, d);
            proptest::prop_assert!(up >= t && down <= t);
            match t.checked_add_signed(delta(d)) {
                Some(exact) => proptest::prop_assert_eq!(up, exact),
                None => proptest::prop_assert_eq!(up, DateTime::<Utc>::MAX_UTC),
            }
            let s = TimeDelta::milliseconds(signed / 1_000);
            // Moves the way the span points, or stays put at an end of time.
            let (moved, back) = (add_signed(t, s), sub_signed(t, s));
            if moved != t {
                proptest::prop_assert_eq!(moved > t, s > TimeDelta::zero());
            }
            if back != t {
                proptest::prop_assert_eq!(back < t, s > TimeDelta::zero());
            }
        }

        /// Whatever text arrives where a duration is expected, parsing it and adding it to now
        /// is a value or a message, never a panic; what parses is at most ten years.
        #[test]
        fn any_duration_text_is_a_value_or_a_message(s in "\\PC{0,24}", n in proptest::num::u64::ANY, unit in "(ns|us|ms|s|m|h|d|w|M|y|years)") {
            let now = Utc::now();
            for text in [s.clone(), format!("{n}{unit}"), format!("-{n}{unit}"), format!("{n}.{n}{unit}")] {
                match crate::config::parse_duration(&text) {
                    Ok(d) => {
                        proptest::prop_assert!(d <= crate::config::MAX_DURATION);
                        proptest::prop_assert!(add(now, d) >= now);
                        proptest::prop_assert!(sub(now, d) <= now);
                    }
                    Err(m) => proptest::prop_assert!(!m.is_empty()),
                }
            }
        }
    }
}
