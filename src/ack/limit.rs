//! Per-sender rate limit for SMS commands: a sliding window of accepted commands per number.
//!
//! Why: every command costs an outgoing SMS reply, and a phone stuck in an auto-reply loop (or a
//! person hammering `STATUS`) must not drain the SIM's credit or crowd out pages in the outbox.
//! The limiter is plain data owned by the ack task; it takes `now` as an argument (no clock)
//! and forgets a sender once their window is empty, so it holds at most one entry per configured
//! user who wrote recently.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::PhoneNumber;

/// Commands accepted per sender per [`DEFAULT_WINDOW`].
pub const DEFAULT_LIMIT: usize = 10;
/// The sliding window of the rate limit.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10 * 60);

/// What [`Limiter::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; it was counted.
    Allowed,
    /// Over the limit, and the first message over it since the sender was last allowed: log it.
    FirstRefused,
    /// Over the limit again: ignore quietly (already logged).
    Refused,
}

/// Sliding-window limiter keyed by sender number.
#[derive(Debug)]
pub struct Limiter {
    limit: usize,
    window: chrono::Duration,
    seen: HashMap<PhoneNumber, Sender>,
}

#[derive(Debug, Default)]
struct Sender {
    accepted: VecDeque<DateTime<Utc>>,
    warned: bool,
}

impl Limiter {
    /// At most `limit` commands per sender within any `window`. A `limit` of 0 refuses all.
    pub fn new(limit: usize, window: Duration) -> Limiter {
        Limiter {
            limit,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            seen: HashMap::new(),
        }
    }

    /// Counts a command from `from` at `now` if the sender is under the limit. A clock that went
    /// backwards only makes the window look fuller, never emptier, until it catches up.
    pub fn check(&mut self, from: &PhoneNumber, now: DateTime<Utc>) -> Verdict {
        let start = now.checked_sub_signed(self.window).unwrap_or(now);
        self.seen.retain(|_, s| {
            while s.accepted.front().is_some_and(|t| *t <= start) {
                s.accepted.pop_front();
            }
            !s.accepted.is_empty() || s.warned
        });
        let s = self.seen.entry(from.clone()).or_default();
        if s.accepted.len() < self.limit {
            s.accepted.push_back(now);
            s.warned = false;
            return Verdict::Allowed;
        }
        if s.warned {
            Verdict::Refused
        } else {
            s.warned = true;
            Verdict::FirstRefused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(sec: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::seconds(sec)
    }

    fn num(s: &str) -> PhoneNumber {
        PhoneNumber::parse_e164(s).unwrap()
    }

    #[test]
    fn allows_up_to_the_limit_then_refuses_logging_once() {
        let mut l = Limiter::new(3, Duration::from_secs(600));
        let a = num("+4915100000001");
        for i in 0..3 {
            assert_eq!(l.check(&a, t(i)), Verdict::Allowed);
        }
        assert_eq!(l.check(&a, t(10)), Verdict::FirstRefused);
        assert_eq!(l.check(&a, t(11)), Verdict::Refused);
        // Another sender has their own budget.
        assert_eq!(l.check(&num("+4915100000002"), t(12)), Verdict::Allowed);
        // The oldest leaves the window at t(600): one more is allowed, and a refusal after that
        // is logged again.
        assert_eq!(l.check(&a, t(600)), Verdict::Allowed);
        assert_eq!(l.check(&a, t(600)), Verdict::FirstRefused);
        assert_eq!(l.check(&a, t(601)), Verdict::Allowed);
    }

    #[test]
    fn forgets_quiet_senders() {
        let mut l = Limiter::new(2, Duration::from_secs(60));
        l.check(&num("+4915100000001"), t(0));
        l.check(&num("+4915100000002"), t(0));
        l.check(&num("+4915100000003"), t(120));
        assert_eq!(l.seen.len(), 1);
    }
}
