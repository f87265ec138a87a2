//! Pure: when the scheduled test page is due. Three forms, written in `[selftest] schedule`:
//!
//! - `every <duration>`: e.g. `every 7d`, `every 30s` (humantime); counted from the previous run
//!   (or from daemon start), so it drifts with restarts but never bunches up;
//! - `daily HH:MM [Zone]`: every day at a local wall time;
//! - `weekly <Mon..Sun> HH:MM [Zone]`: once a week, e.g. `weekly Mon 10:00 Europe/Berlin`.
//!
//! The zone defaults to `daemon.time_zone`. Wall times are DST-safe through
//! [`crate::schedule::local_to_utc`]: a time that does not exist on the spring-forward day
//! runs at the first instant after the gap; a time that occurs twice runs once, at the first.
//! No I/O, no clock: `now` is an argument.

use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use crate::schedule::{local_to_utc, utc_to_local};

/// When scheduled test pages are due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestSchedule {
    /// Every interval after the previous run.
    Every(Duration),
    /// Daily at a local time.
    Daily { at: NaiveTime, tz: Tz },
    /// Weekly on a weekday at a local time.
    Weekly { day: Weekday, at: NaiveTime, tz: Tz },
}

/// Why a schedule text was refused; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; write \"every 7d\", \"daily 09:00\" or \"weekly Mon 10:00 Europe/Berlin\"")]
pub struct ScheduleError(pub String);

impl TestSchedule {
    /// Parses the config text; `default_tz` applies when no zone is written.
    pub fn parse(text: &str, default_tz: Tz) -> Result<TestSchedule, ScheduleError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let err = |m: String| Err(ScheduleError(m));
        match words.as_slice() {
            ["every", rest @ ..] if !rest.is_empty() => {
                let d = humantime::parse_duration(&rest.join(" ")).map_err(|e| {
                    ScheduleError(format!("bad interval {:?}: {e}", rest.join(" ")))
                })?;
                if d < Duration::from_secs(1) {
                    return err("the interval must be at least 1s".into());
                }
                if d > crate::config::MAX_CONFIG_DURATION {
                    return err("the interval must be at most a year".into());
                }
                Ok(TestSchedule::Every(d))
            }
            ["daily", time, zone @ ..] if zone.len() <= 1 => Ok(TestSchedule::Daily {
                at: parse_hhmm(time)?,
                tz: parse_zone(zone.first().copied(), default_tz)?,
            }),
            ["weekly", day, time, zone @ ..] if zone.len() <= 1 => Ok(TestSchedule::Weekly {
                day: day
                    .parse::<Weekday>()
                    .map_err(|_| ScheduleError(format!("unknown weekday {day:?}")))?,
                at: parse_hhmm(time)?,
                tz: parse_zone(zone.first().copied(), default_tz)?,
            }),
            _ => err(format!("cannot read schedule {text:?}")),
        }
    }

    /// The first run strictly after `after`. For `Every`, `after` is the previous run (or the
    /// start); for wall-time forms, any instant.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TestSchedule::Every(d) => crate::clock::add(after, *d),
            TestSchedule::Daily { at, tz } => next_wall(after, *tz, *at, |_| true),
            TestSchedule::Weekly { day, at, tz } => {
                next_wall(after, *tz, *at, |d| d.weekday() == *day)
            }
        }
    }
}

/// The first local `at` on a day `day_ok` accepts, strictly after `after`.
fn next_wall(
    after: DateTime<Utc>,
    tz: Tz,
    at: NaiveTime,
    day_ok: impl Fn(chrono::NaiveDate) -> bool,
) -> DateTime<Utc> {
    let today = utc_to_local(tz, after).date();
    // Yesterday too: a local time that maps into "today" UTC-wise after a DST shift.
    let mut day = today - Days::new(1);
    for _ in 0..16 {
        if day_ok(day) {
            let t = local_to_utc(tz, day.and_time(at));
            if t > after {
                return t;
            }
        }
        day = day + Days::new(1);
    }
    // Unreachable for valid weekdays (one matches within 8 days); keep a safe answer anyway.
    after + chrono::Duration::days(7)
}

fn parse_hhmm(s: &str) -> Result<NaiveTime, ScheduleError> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| ScheduleError(format!("bad time {s:?} (expected HH:MM)")))
}

fn parse_zone(s: Option<&str>, default: Tz) -> Result<Tz, ScheduleError> {
    match s {
        None => Ok(default),
        Some(z) => z
            .parse::<Tz>()
            .map_err(|_| ScheduleError(format!("unknown time zone {z:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            TestSchedule::parse("every 30s", BERLIN).unwrap(),
            TestSchedule::Every(Duration::from_secs(30))
        );
        assert_eq!(
            TestSchedule::parse("weekly Mon 10:00 Europe/Berlin", chrono_tz::UTC).unwrap(),
            TestSchedule::Weekly {
                day: Weekday::Mon,
                at: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                tz: BERLIN
            }
        );
        assert_eq!(
            TestSchedule::parse("daily 09:30", BERLIN).unwrap(),
            TestSchedule::Daily {
                at: NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
                tz: BERLIN
            }
        );
    }

    #[test]
    fn refuses_bad_text_with_a_reason() {
        for bad in [
            "weekly Funday 10:00",
            "daily 25:00",
            "every",
            "every 0s",
            "every 300000y",
            "every 584942417355y",
            "monthly 1 10:00",
            "daily 10:00 Mars/Olympus",
        ] {
            let e = TestSchedule::parse(bad, BERLIN).unwrap_err().to_string();
            assert!(e.contains("write \"every 7d\""), "{bad}: {e}");
        }
    }

    #[test]
    fn weekly_monday_ten_berlin_across_the_spring_dst_change() {
        let s = TestSchedule::parse("weekly Mon 10:00 Europe/Berlin", chrono_tz::UTC).unwrap();
        // Monday 2026-03-23 10:00 CET = 09:00 UTC.
        let first = s.next_after(utc(2026, 3, 20, 12, 0));
        assert_eq!(first, utc(2026, 3, 23, 9, 0));
        // Clocks go forward on Sunday 2026-03-29: the next Monday 10:00 CEST = 08:00 UTC.
        let second = s.next_after(first);
        assert_eq!(second, utc(2026, 3, 30, 8, 0));
        // Exactly at the run time: the next one is a week later.
        assert_eq!(s.next_after(second), utc(2026, 4, 6, 8, 0));
    }

    #[test]
    fn daily_time_in_the_spring_gap_runs_after_the_gap_and_autumn_runs_once() {
        let s = TestSchedule::parse("daily 02:30 Europe/Berlin", chrono_tz::UTC).unwrap();
        // 2026-03-29 02:30 does not exist in Berlin: 03:00 CEST = 01:00 UTC.
        assert_eq!(
            s.next_after(utc(2026, 3, 28, 12, 0)),
            utc(2026, 3, 29, 1, 0)
        );
        // 2026-10-25 02:30 happens twice: the first (CEST, 00:30 UTC) only.
        let first = s.next_after(utc(2026, 10, 24, 12, 0));
        assert_eq!(first, utc(2026, 10, 25, 0, 30));
        assert_eq!(s.next_after(first), utc(2026, 10, 26, 1, 30));
    }

    #[test]
    fn every_counts_from_the_previous_run() {
        let s = TestSchedule::Every(Duration::from_secs(7 * 86400));
        assert_eq!(s.next_after(utc(2026, 1, 1, 0, 0)), utc(2026, 1, 8, 0, 0));
    }
}
