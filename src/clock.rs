//! Wall-clock time behind a trait.
//!
//! Schedules change at local midnight and across DST, and escalation waits minutes; tests cannot
//! wait for either. Logic takes `now` from a [`Clock`] (or as an argument) and never calls
//! `Utc::now()` itself. Delays use `tokio::time`, which tests can pause.
//!
//! A task that sleeps until a wall-clock instant (an escalation step, a heartbeat deadline, a
//! page's retry) sleeps for the span it computed from `now`, and also wakes on the clock's
//! [`Steps`]: a test clock that jumps past the instant ends the sleep at once, where the span
//! computed before the jump would not. The system clock does jump (NTP steps it), but
//! [`SystemClock`] does not report its steps: each such loop bounds its sleep (at most a minute
//! or so, see the loop), so a real jump is noticed on the next wake instead of at once.
//!
//! The real binary runs on a test clock only in `fault-injection` builds started with
//! `PAGERBOX_TEST_CLOCK` (see [`from_env`]), so the end-to-end tests can move it with
//! `POST /v1/clock` instead of waiting for minutes to pass.

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Fires each time the clock is stepped. [`SystemClock`] never fires: it cannot see NTP's
    /// steps, which the loops' bounded sleeps catch instead.
    fn steps(&self) -> Steps {
        Steps(None)
    }
}

/// The steps of a clock, for a task to wait on beside its sleep (see the module docs).
#[derive(Debug)]
pub struct Steps(Option<watch::Receiver<()>>);

impl Steps {
    /// Returns after the clock was stepped since this was made or last returned; never, for a
    /// clock that does not report its steps.
    pub async fn stepped(&mut self) {
        if let Some(rx) = self.0.as_mut() {
            if rx.changed().await.is_ok() {
                return;
            }
        }
        std::future::pending().await
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        system_now()
    }
}

/// The system clock's reading. `Utc::now` panics when the clock is before 1970 (a board that
/// booted without a real-time clock and was set by hand, or a test with faketime); read here,
/// such a reading is an instant before the epoch like any other, and the clock step that
/// corrects it later is handled like any step.
pub fn system_now() -> DateTime<Utc> {
    from_system(std::time::SystemTime::now())
}

/// `t` as an instant, before the epoch too (saturating at chrono's range).
fn from_system(t: std::time::SystemTime) -> DateTime<Utc> {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => add(DateTime::<Utc>::UNIX_EPOCH, after),
        Err(before) => sub(DateTime::<Utc>::UNIX_EPOCH, before.duration()),
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
    steps: std::sync::Arc<watch::Sender<()>>,
}

#[cfg(any(test, feature = "testkit"))]
impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: std::sync::Arc::new(std::sync::Mutex::new(start)),
            steps: std::sync::Arc::new(watch::channel(()).0),
        }
    }

    /// Moves the clock to `t` (backwards too, to model an NTP step).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().expect("clock mutex poisoned") = t;
        self.steps.send_replace(());
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        {
            let mut now = self.now.lock().expect("clock mutex poisoned");
            *now = add_signed(*now, d);
        }
        self.steps.send_replace(());
    }
}

#[cfg(any(test, feature = "testkit"))]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }

    fn steps(&self) -> Steps {
        Steps(Some(self.steps.subscribe()))
    }
}

/// The real binary's test clock: the system clock plus an offset, so a daemon under test runs at
/// wall-clock speed and a test jumps it forward past a deadline instead of sleeping until it,
/// or steps it back as NTP would (`fault-injection` builds only).
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
pub struct SteppedClock {
    ahead: std::sync::Mutex<TimeDelta>,
    steps: watch::Sender<()>,
}

#[cfg(feature = "fault-injection")]
impl SteppedClock {
    /// A clock `ahead` of the system clock.
    pub fn new(ahead: TimeDelta) -> Self {
        Self {
            ahead: std::sync::Mutex::new(ahead),
            steps: watch::channel(()).0,
        }
    }

    /// Steps the clock by `d` (back when negative) and wakes every task waiting on its steps.
    /// Returns the new instant.
    pub fn advance(&self, d: TimeDelta) -> DateTime<Utc> {
        {
            let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            *ahead = ahead.checked_add(&d).unwrap_or(TimeDelta::MAX);
        }
        self.steps.send_replace(());
        self.now()
    }
}

#[cfg(feature = "fault-injection")]
impl Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        add_signed(
            system_now(),
            *self.ahead.lock().unwrap_or_else(|p| p.into_inner()),
        )
    }

    fn steps(&self) -> Steps {
        Steps(Some(self.steps.subscribe()))
    }
}

#[cfg(feature = "fault-injection")]
static TEST_CLOCK: std::sync::OnceLock<std::sync::Arc<SteppedClock>> = std::sync::OnceLock::new();

/// The environment variable that puts a `fault-injection` build on the test clock.
pub const TEST_CLOCK_ENV: &str = "PAGERBOX_TEST_CLOCK";

/// The clock the daemon runs on: a [`SteppedClock`] when this is a `fault-injection` build
/// started with [`TEST_CLOCK_ENV`] (a duration such as `0s` or `90m`: how far ahead of the
/// system clock it starts, so a restarted daemon resumes where the test had moved it), else
/// `None` and the daemon uses the system clock. A value that does not parse is an error: a test
/// that asked for a test clock must not silently run on the system clock.
///
/// `parse` reads the value: the caller passes the config's duration parser, so the same ten-year
/// bound as `POST /v1/clock` applies (this module cannot call it: config depends on clock).
/// Another build that finds the variable set logs once that it ignores it.
pub fn from_env(
    parse: fn(&str) -> Result<std::time::Duration, String>,
) -> Result<Option<std::sync::Arc<dyn Clock>>, String> {
    let Ok(text) = std::env::var(TEST_CLOCK_ENV) else {
        return Ok(None);
    };
    #[cfg(feature = "fault-injection")]
    {
        let ahead = parse(&text).map_err(|e| format!("{TEST_CLOCK_ENV}={text}: {e}"))?;
        let clock = TEST_CLOCK
            .get_or_init(|| std::sync::Arc::new(SteppedClock::new(delta(ahead))))
            .clone();
        tracing::warn!(ahead = %text, "running on the test clock ({TEST_CLOCK_ENV})");
        Ok(Some(clock))
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = parse;
        tracing::warn!(
            value = %text,
            "{TEST_CLOCK_ENV} is set but ignored: this build has no test clock (it needs the \
             fault-injection feature); running on the system clock"
        );
        Ok(None)
    }
}

/// Steps the daemon's test clock by `d`, forward or back (`POST /v1/clock`); `None` when the
/// daemon runs on the system clock.
#[cfg(feature = "fault-injection")]
pub fn step_test_clock(d: TimeDelta) -> Option<DateTime<Utc>> {
    TEST_CLOCK.get().map(|c| c.advance(d))
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
    fn a_system_clock_before_1970_reads_as_an_instant_not_a_panic() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(
            from_system(UNIX_EPOCH - Duration::from_secs(120)),
            "1969-12-31T23:58:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            from_system(UNIX_EPOCH + Duration::from_millis(1_500)),
            "1970-01-01T00:00:01.5Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_ends_a_sleep_the_system_clock_does_not_report_one() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
        let c = ManualClock::new(t0);
        let mut steps = c.steps();
        let mover = c.clone();
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            mover.advance(chrono::Duration::hours(1));
        });
        tokio::select! {
            _ = steps.stepped() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => panic!("slept through the step"),
        }
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(5));
        let mut never = SystemClock.steps();
        let r = tokio::time::timeout(std::time::Duration::from_secs(3600), never.stepped()).await;
        assert!(r.is_err(), "the system clock does not report steps");
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn the_stepped_clock_runs_with_the_system_clock_plus_its_steps() {
        let c = SteppedClock::new(TimeDelta::hours(1));
        let mut steps = c.steps();
        let before = Utc::now();
        let t = c.advance(TimeDelta::minutes(30));
        assert!(t >= before + TimeDelta::minutes(90));
        assert!(t < Utc::now() + TimeDelta::minutes(91));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), steps.stepped())
                .await
                .expect("a step wakes its waiters");
        });
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
