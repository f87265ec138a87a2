//! The wall clock stepped back (NTP correcting a clock that ran ahead, a Pi whose clock was set
//! by hand): every time the store keeps for work still to do was reckoned on the old clock, so
//! a step due in six minutes would go out six minutes plus the step later, and nothing would
//! say so. The store thread watches the clock it stamps rows with ([`WallWatch`], pure) and,
//! when it finds it went back, moves those times back by the same amount in one transaction
//! ([`rewind`]), logs it and counts it.
//!
//! What is not undone, on purpose:
//! - a step back to before [`PLAUSIBLE_FLOOR`]: a board without a real-time clock that lost its
//!   time reads 1970, and NTP will step it forward again; moving every pending time back 56
//!   years would make all of it due at once then (acks time out, holds end, steps skip ahead);
//! - a step across a restart: the watch starts from the clock at start, because a board that
//!   boots behind is the common case, not a clock that ran ahead;
//! - a forward step: it makes due work due sooner, and cannot be told from time that passed
//!   while nothing was written.
//!
//! Times people gave (silences, overrides) are left alone: they name wall-clock instants. A
//! silence started "for 2h" on the clock that ran ahead therefore starts later by the step.

use chrono::{DateTime, Duration, Utc};

use super::Tx;

/// How far the clock must go back before it counts as a step: less is left alone (NTP slews
/// small errors instead of stepping; a few seconds late is within every retry's slack).
pub const THRESHOLD: Duration = Duration::seconds(2);

/// The earliest instant a clock reading is believed (2026-01-01T00:00:00Z): a step back to before
/// it is a clock that lost its time, not one being corrected.
pub const PLAUSIBLE_FLOOR: DateTime<Utc> = match DateTime::from_timestamp(1_767_225_600, 0) {
    Some(t) => t,
    None => DateTime::<Utc>::UNIX_EPOCH,
};

/// What the watch says about a clock reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// In order (or back by less than [`THRESHOLD`]).
    InOrder,
    /// Back by this much to a plausible time: the pending times should move back with it.
    SteppedBack(Duration),
    /// Back by this much to before [`PLAUSIBLE_FLOOR`]: a clock that lost its time.
    Implausible(Duration),
}

/// The latest instant the store has seen on its clock; finds the clock going back.
#[derive(Debug, Clone, Copy)]
pub struct WallWatch {
    latest: DateTime<Utc>,
}

impl WallWatch {
    /// Starts from `latest`, the clock when the store thread started.
    pub fn new(latest: DateTime<Utc>) -> WallWatch {
        WallWatch { latest }
    }

    /// Looks at the clock reading `now`. A step back leaves the watch where it was until
    /// [`WallWatch::settle`] says it was dealt with, so a rewind that failed is found again at the
    /// next reading and tried again.
    pub fn observe(&mut self, now: DateTime<Utc>) -> Reading {
        let back = self.latest.signed_duration_since(now);
        if back <= THRESHOLD {
            self.latest = self.latest.max(now);
            Reading::InOrder
        } else if now < PLAUSIBLE_FLOOR {
            Reading::Implausible(back)
        } else {
            Reading::SteppedBack(back)
        }
    }

    /// The step found at `now` was dealt with (rewound, or judged implausible): count from `now`.
    pub fn settle(&mut self, now: DateTime<Utc>) {
        self.latest = now;
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
/// heartbeat deadlines, and the stamps they are reckoned from (the incidents' and the
/// timeline's). Each table's statements live with the table.
pub fn rewind(tx: &Tx, back: Duration, now: DateTime<Utc>) -> rusqlite::Result<Moved> {
    let back = back.num_milliseconds();
    let moved = Moved {
        escalations: super::escalations::rewind(tx, back, now)?,
        pages: super::outbox::rewind(tx, back, now)?,
        holds: super::standby::rewind(tx, back, now)?,
        heartbeats: super::heartbeats::rewind(tx, back, now)?,
    };
    super::events::rewind(tx, back, now)?;
    super::queries::rewind(tx, back, now)?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_step_back_past_the_threshold_counts_and_is_counted_once_settled() {
        let mut w = WallWatch::new(t("2026-03-29T03:00:00Z"));
        assert_eq!(w.observe(t("2026-03-29T03:04:00Z")), Reading::InOrder);
        // NTP-sized wobble and equal readings are not steps.
        assert_eq!(w.observe(t("2026-03-29T03:03:59Z")), Reading::InOrder);
        assert_eq!(w.observe(t("2026-03-29T03:04:00Z")), Reading::InOrder);
        let step = Reading::SteppedBack(Duration::hours(1));
        assert_eq!(w.observe(t("2026-03-29T02:04:00Z")), step);
        // Not settled (the rewind failed): found again, by what it is now.
        assert_eq!(
            w.observe(t("2026-03-29T02:04:30Z")),
            Reading::SteppedBack(Duration::minutes(59) + Duration::seconds(30))
        );
        w.settle(t("2026-03-29T02:04:30Z"));
        // Counted from there: time going on is no second step.
        assert_eq!(w.observe(t("2026-03-29T02:04:31Z")), Reading::InOrder);
        assert_eq!(w.observe(t("2026-03-29T02:10:00Z")), Reading::InOrder);
        // A step forward is left alone.
        assert_eq!(w.observe(t("2026-03-29T09:00:00Z")), Reading::InOrder);
        assert_eq!(
            w.observe(t("2026-03-29T08:59:57Z")),
            Reading::SteppedBack(Duration::seconds(3))
        );
    }

    /// Escalations: only pending times after now move, and only of escalations still waiting;
    /// the timeline's stamps after now move with them.
    #[test]
    fn rewind_moves_pending_escalation_times_and_late_timeline_stamps_only() {
        let c = crate::store::memory();
        let ms = |s: &str| super::super::ms(t(s));
        for id in 1..=3 {
            c.execute(
                "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen) \
                 VALUES (?1,?1,'triggered','critical','s',0,0)",
                [id],
            )
            .unwrap();
        }
        let esc = |id: i64, phase: &str, due: &str, since: &str| {
            c.execute(
                "INSERT INTO escalations (incident_id, policy, phase, due_at, since, updated_at) \
                 VALUES (?1, 'p', ?2, ?3, ?4, 0)",
                rusqlite::params![id, phase, ms(due), ms(since)],
            )
            .unwrap();
        };
        // Written on a clock an hour ahead; now reads 02:04.
        esc(
            1,
            "escalating",
            "2026-03-29T03:10:00Z",
            "2026-03-29T03:00:00Z",
        );
        esc(
            2,
            "escalating",
            "2026-03-29T02:00:00Z",
            "2026-03-29T01:50:00Z",
        );
        esc(
            3,
            "exhausted",
            "2026-03-29T03:30:00Z",
            "2026-03-29T03:00:00Z",
        );
        crate::store::events::record(
            &c,
            Some(1),
            t("2026-03-29T03:00:00Z"),
            crate::incident::EventKind::Note,
            None,
            "paged",
            None,
        )
        .unwrap();
        let now = t("2026-03-29T02:04:00Z");
        let moved = rewind(&c, Duration::hours(1), now).unwrap();
        assert_eq!(moved.escalations, 1);
        let row = |id: i64| -> (i64, i64) {
            c.query_row(
                "SELECT due_at, since FROM escalations WHERE incident_id=?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(
            row(1),
            (ms("2026-03-29T02:10:00Z"), ms("2026-03-29T02:00:00Z"))
        );
        assert_eq!(
            row(2),
            (ms("2026-03-29T02:00:00Z"), ms("2026-03-29T01:50:00Z"))
        );
        assert_eq!(
            row(3).0,
            ms("2026-03-29T03:30:00Z"),
            "exhausted waits for nothing"
        );
        let at: i64 = c
            .query_row("SELECT at FROM events WHERE incident_id=1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(at, ms("2026-03-29T02:00:00Z"));
    }

    /// The incidents' stamps after now move back too: a standby's hold and a heartbeat's
    /// re-arm are reckoned from them.
    #[test]
    fn rewind_moves_the_incidents_late_stamps() {
        let c = crate::store::memory();
        let ms = |s: &str| super::super::ms(t(s));
        let ahead = ms("2026-03-29T03:00:00Z");
        let before = ms("2026-03-29T01:00:00Z");
        c.execute(
            "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen,\
             acknowledged_at,resolved_at) VALUES (1,'a','resolved','critical','s',?1,?1,?1,?1), \
             (2,'b','triggered','critical','s',?2,?2,NULL,NULL)",
            [ahead, before],
        )
        .unwrap();
        rewind(&c, Duration::hours(1), t("2026-03-29T02:04:00Z")).unwrap();
        let stamps = |id: i64| -> Vec<Option<i64>> {
            c.query_row(
                "SELECT first_seen, last_seen, acknowledged_at, resolved_at FROM incidents WHERE id=?1",
                [id],
                |r| Ok(vec![r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
            )
            .unwrap()
        };
        let moved = Some(ms("2026-03-29T02:00:00Z"));
        assert_eq!(stamps(1), vec![moved; 4]);
        assert_eq!(stamps(2), vec![Some(before), Some(before), None, None]);
    }

    #[test]
    fn a_clock_that_lost_its_time_is_not_a_correction() {
        let mut w = WallWatch::new(t("2026-12-07T10:00:00Z"));
        assert!(matches!(
            w.observe(t("1970-01-01T00:00:10Z")),
            Reading::Implausible(_)
        ));
    }
}
