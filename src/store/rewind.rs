//! The wall clock stepped back (NTP correcting a clock that ran ahead, a Pi whose clock was set
//! by hand): every time the store keeps for work still to do was reckoned on the old clock, so
//! a step due in six minutes would go out six minutes plus the step later, and nothing would
//! say so. The store thread watches the clock it stamps rows with ([`WallWatch`], pure) and,
//! when it finds it went back, moves those times back by the same amount in one transaction
//! ([`rewind`]), logs it and counts it.
//!
//! Only backward steps are undone. A forward step makes due work due sooner, which for a pager
//! is the safe side, and it cannot be told from time that passed while nothing was written.
//! Times people gave (silences, overrides) are left alone: they name wall-clock instants.

use chrono::{DateTime, Duration, Utc};

use super::Tx;

/// How far the clock must go back before it counts as a step: less is left alone (NTP slews
/// small errors instead of stepping; a few seconds late is within every retry's slack).
pub const THRESHOLD: Duration = Duration::seconds(2);

/// The latest instant the store has seen on its clock; finds the clock going back.
#[derive(Debug, Clone, Copy)]
pub struct WallWatch {
    latest: DateTime<Utc>,
}

impl WallWatch {
    /// Starts from `latest`, the last instant the store is known to have seen (the probe row's
    /// stamp from a previous run, so a step back across a restart is found too).
    pub fn new(latest: DateTime<Utc>) -> WallWatch {
        WallWatch { latest }
    }

    /// Looks at the clock reading `now`: returns how far it went back when that is more than
    /// [`THRESHOLD`] below the latest reading, and from then on counts from `now`.
    pub fn observe(&mut self, now: DateTime<Utc>) -> Option<Duration> {
        let back = self.latest.signed_duration_since(now);
        if back > THRESHOLD {
            self.latest = now;
            Some(back)
        } else {
            self.latest = self.latest.max(now);
            None
        }
    }
}

/// What [`rewind`] moved, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub escalations: usize,
    pub pages: usize,
    pub holds: usize,
    pub heartbeats: usize,
}

/// Moves every pending time the store keeps `back` earlier, where it lies after `now`: the
/// escalation steps and ack timeouts, queued pages, retries and leases, standby holds and
/// heartbeat deadlines. Each table's statements live with the table.
pub fn rewind(tx: &Tx, back: Duration, now: DateTime<Utc>) -> rusqlite::Result<Moved> {
    let back = back.num_milliseconds();
    Ok(Moved {
        escalations: super::escalations::rewind(tx, back, now)?,
        pages: super::outbox::rewind(tx, back, now)?,
        holds: super::standby::rewind(tx, back, now)?,
        heartbeats: super::heartbeats::rewind(tx, back, now)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_step_back_past_the_threshold_counts_and_is_counted_once() {
        let mut w = WallWatch::new(t("2026-03-29T03:00:00Z"));
        assert_eq!(w.observe(t("2026-03-29T03:04:00Z")), None);
        // NTP-sized wobble and equal readings are not steps.
        assert_eq!(w.observe(t("2026-03-29T03:03:59Z")), None);
        assert_eq!(w.observe(t("2026-03-29T03:04:00Z")), None);
        assert_eq!(
            w.observe(t("2026-03-29T02:04:00Z")),
            Some(Duration::hours(1))
        );
        // Counted from the new reading: time going on from there is no second step.
        assert_eq!(w.observe(t("2026-03-29T02:04:01Z")), None);
        assert_eq!(w.observe(t("2026-03-29T02:10:00Z")), None);
        // A step forward is left alone.
        assert_eq!(w.observe(t("2026-03-29T09:00:00Z")), None);
        assert_eq!(
            w.observe(t("2026-03-29T08:59:57Z")),
            Some(Duration::seconds(3))
        );
    }
}
