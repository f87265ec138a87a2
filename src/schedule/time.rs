//! Local time in a schedule's zone: the DST rule, shift lengths, restriction windows, and the
//! small string parsers the config module calls.
//!
//! Everything here is pure: no clock, no I/O. The one rule that makes schedules DST-correct is
//! [`local_to_utc`]; every handoff, restriction edge and config override goes through it, so a
//! local wall time means the same instant everywhere in pagerbox.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc, Weekday, WeekdaySet,
};
use chrono_tz::Tz;

use super::Error;

/// The instant a schedule-local wall time means.
///
/// - A wall time that exists once is that instant.
/// - An ambiguous wall time (it occurs twice when clocks fall back) is its **first** occurrence.
/// - A wall time that does not exist (it falls in the gap when clocks spring forward) is the
///   **first instant after the gap**: 02:30 on 2026-03-29 in Europe/Berlin is 03:00 CEST.
///
/// Never fails: every naive time maps to exactly one instant. The config module uses the same
/// rule for override `from`/`until`, so a config file and a handoff agree.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => first_instant_at_or_after(tz, local),
    }
}

/// `t + d`, saturating at the ends of time instead of panicking: evaluation near the extremes
/// (a `--at` far in the future) must not crash the daemon.
pub(crate) fn saturating_add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The wall time in `tz` at instant `at`.
/// Saturates at the ends of the representable range rather than panicking.
pub fn utc_to_local(tz: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    let offset = tz.offset_from_utc_datetime(&at.naive_utc()).fix();
    at.naive_utc()
        .checked_add_offset(offset)
        .unwrap_or(if offset.local_minus_utc() > 0 {
            NaiveDateTime::MAX
        } else {
            NaiveDateTime::MIN
        })
}

/// The smallest whole-second instant whose wall time is at or after `local`.
///
/// Used only for wall times in a DST gap. Zone offsets lie within -12h..+14h, so the answer lies
/// within 30 hours of `local` read as UTC; wall time only runs backwards at a fall-back, and no
/// zone has a fall-back within a day of a spring-forward, so a binary search is exact.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let reach = 30 * 3600;
    let base = local.and_utc().timestamp();
    let (mut lo, mut hi) = (base - reach, base + reach);
    let wall = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .map(|t| utc_to_local(tz, t))
            .unwrap_or(NaiveDateTime::MAX)
    };
    // Invariant: wall(lo) < local <= wall(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall(mid) >= local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How long one person holds a layer before it hands off to the next.
///
/// Every length counts on the schedule's local clock: a 09:00 daily handoff stays at 09:00 local
/// and a "12h" rotation started at 08:00 hands off at 08:00 and 20:00 local all year, so the
/// shift over a DST change lasts an hour less or more (23 or 25 hours for a day, 11 or 13 for
/// "12h"). That is what the people holding the shifts plan around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShiftLength {
    /// Hours on the schedule's local clock.
    Hours(NonZeroU32),
    /// Calendar days in the schedule's zone.
    Days(NonZeroU32),
    /// Calendar weeks (7 calendar days) in the schedule's zone.
    Weeks(NonZeroU32),
}

/// Longest shift accepted: ten years. Bounds the arithmetic; longer is a typo.
const MAX_SHIFT_HOURS: u64 = 10 * 366 * 24;

impl ShiftLength {
    /// One shift on the schedule's local clock: a handoff is the start's local time plus a
    /// whole number of these, so its length in elapsed time differs by the DST change a shift
    /// spans.
    pub fn local_step(self) -> Duration {
        match self {
            ShiftLength::Hours(h) => Duration::hours(i64::from(h.get())),
            ShiftLength::Days(d) => Duration::days(i64::from(d.get())),
            ShiftLength::Weeks(w) => Duration::weeks(i64::from(w.get())),
        }
    }
}

impl fmt::Display for ShiftLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShiftLength::Hours(n) => write!(f, "{n}h"),
            ShiftLength::Days(n) => write!(f, "{n}d"),
            ShiftLength::Weeks(n) => write!(f, "{n}w"),
        }
    }
}

impl FromStr for ShiftLength {
    type Err = Error;

    /// Parses `"12h"`, `"1d"`, `"2w"`, `"36h"`: a whole number >= 1 and a unit `h`, `d` or `w`,
    /// at most ten years. The error keeps the input and says what was expected.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::ShiftLength {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| bad("missing unit"))?;
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(bad("missing number"));
        }
        let n: u64 = num.parse().map_err(|_| bad("number too large"))?;
        let hours_per = match unit {
            "h" => 1,
            "d" => 24,
            "w" => 7 * 24,
            _ => return Err(bad("unknown unit")),
        };
        if n == 0 {
            return Err(bad("must be at least 1"));
        }
        if n.saturating_mul(hours_per) > MAX_SHIFT_HOURS {
            return Err(bad("longer than ten years"));
        }
        let n = NonZeroU32::new(n as u32).ok_or_else(|| bad("must be at least 1"))?;
        Ok(match unit {
            "h" => ShiftLength::Hours(n),
            "d" => ShiftLength::Days(n),
            _ => ShiftLength::Weeks(n),
        })
    }
}

/// A weekly window in which a layer is on call; outside every window of a layer, the layer is
/// "restricted off" and lower layers show through.
///
/// A window opens on each day in `days` at `start` (schedule-local) and closes at `end` the same
/// day, or, when `end <= start`, at `end` the next day: `"Mon-Sun 22:00-06:00"` is every night,
/// and the night that starts on Friday belongs to Friday. `start == end` is a full 24 hours.
/// Both edges go through [`local_to_utc`], so a window is one unbroken stretch of instants even
/// across a DST change (a window whose whole span falls in a spring-forward gap is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    /// The days the window opens on.
    pub days: WeekdaySet,
    /// Local time the window opens.
    pub start: NaiveTime,
    /// Local time the window closes; `<= start` means the next day.
    pub end: NaiveTime,
}

impl Restriction {
    /// True when the window closes on the day after it opens.
    pub fn wraps(&self) -> bool {
        self.end <= self.start
    }

    /// The window that opens on local `date`, as instants, if `date` is one of the days.
    pub fn window_on(&self, tz: Tz, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days.contains(date.weekday()) {
            return None;
        }
        let open = local_to_utc(tz, date.and_time(self.start));
        let end_date = if self.wraps() { date.succ_opt()? } else { date };
        let close = local_to_utc(tz, end_date.and_time(self.end));
        Some((open, close))
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.days.iter(Weekday::Mon).map(day_name).collect();
        write!(
            f,
            "{} {}-{}",
            names.join(","),
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

impl FromStr for Restriction {
    type Err = Error;

    /// Parses `DAYS HH:MM-HH:MM`. DAYS is a comma-separated list of days and ranges of days
    /// (`Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`; a range may wrap: `Fri-Mon`). Day names are English,
    /// three letters or in full, any case. `24:00` is accepted as an end time (midnight).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| Error::Restriction {
            input: s.to_string(),
            reason,
        };
        let mut parts = s.split_whitespace();
        let (Some(days_part), Some(time_part), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected days, a space, and a time window".into()));
        };
        let mut days = WeekdaySet::EMPTY;
        for item in days_part.split(',') {
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (parse_day(a), parse_day(b)),
                None => (parse_day(item), parse_day(item)),
            };
            let (Some(first), Some(last)) = (first, last) else {
                return Err(bad(format!("unknown day or range {item:?}")));
            };
            let mut d = first;
            loop {
                days.insert(d);
                if d == last {
                    break;
                }
                d = d.succ();
            }
        }
        let Some((a, b)) = time_part.split_once('-') else {
            return Err(bad(format!("time window {time_part:?} is not HH:MM-HH:MM")));
        };
        let start = parse_hhmm(a, false).ok_or_else(|| bad(format!("bad start time {a:?}")))?;
        let end = parse_hhmm(b, true).ok_or_else(|| bad(format!("bad end time {b:?}")))?;
        Ok(Restriction { days, start, end })
    }
}

fn parse_day(s: &str) -> Option<Weekday> {
    if s.len() < 3 {
        return None;
    }
    s.parse::<Weekday>().ok()
}

fn parse_hhmm(s: &str, allow_24: bool) -> Option<NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if allow_24 && h == 24 && m == 0 {
        return Some(NaiveTime::MIN);
    }
    NaiveTime::from_hms_opt(h, m, 0)
}

/// The instant `days` local calendar days after `from` in `tz`: the same local time of day,
/// so a day across a DST change is 23 or 25 hours. `None` past the end of the calendar.
pub fn local_days_after(tz: Tz, from: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    utc_to_local(tz, from)
        .checked_add_signed(Duration::days(i64::from(days)))
        .map(|local| local_to_utc(tz, local))
}

/// Parses a CLI/API time: RFC 3339 (`2026-03-29T01:30:00Z`, `...+02:00`), or a local
/// `YYYY-MM-DDTHH:MM` (also with `:SS`, or a space instead of `T`) read in `tz` by the
/// [`local_to_utc`] rule.
pub fn parse_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, Error> {
    let t = s.trim();
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|dt| dt.with_timezone(&Utc))
        .or_else(|| parse_local(t).map(|local| local_to_utc(tz, local)))
        .filter(|at| YEARS.contains(&at.year()))
        .ok_or_else(|| Error::Time {
            input: s.to_string(),
        })
}

/// The years a time given to the box may fall in: those with a four-digit form, in which every
/// instant it keeps is written back out (RFC 3339, iCalendar). A year past 9999 (which `%Y`
/// reads from `+10000`, or an offset can reach from 9999-12-31) or before year 0 has none.
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// Parses a schedule-local `YYYY-MM-DDTHH:MM` (or with seconds, or a space for `T`): the shape
/// of a layer `start` and of config override times.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let t = s.trim();
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .filter(|local| YEARS.contains(&local.year()))
}

/// Parses a CLI date `YYYY-MM-DD`, or a full time as [`parse_time`] does; a bare date means
/// local midnight (by the [`local_to_utc`] rule) in `tz`.
pub fn parse_date_or_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, Error> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        if !YEARS.contains(&d.year()) {
            return Err(Error::Time {
                input: s.to_string(),
            });
        }
        return Ok(local_to_utc(tz, d.and_time(NaiveTime::MIN)));
    }
    parse_time(s, tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Australia, Europe, Pacific};

    fn local(s: &str) -> NaiveDateTime {
        parse_local(s).unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn local_to_utc_follows_the_dst_rule() {
        // (zone, local wall time, expected instant)
        let cases = [
            // Plain times.
            (Europe::Berlin, "2026-01-05T09:00", "2026-01-05T08:00:00Z"),
            (Europe::Berlin, "2026-07-01T09:00", "2026-07-01T07:00:00Z"),
            // Spring-forward gap 02:00->03:00: first instant after the gap (03:00 CEST).
            (Europe::Berlin, "2026-03-29T02:30", "2026-03-29T01:00:00Z"),
            (Europe::Berlin, "2026-03-29T02:00", "2026-03-29T01:00:00Z"),
            (Europe::Berlin, "2026-03-29T03:00", "2026-03-29T01:00:00Z"),
            // Fall-back: 02:30 happens twice; the first is CEST (+02:00).
            (Europe::Berlin, "2026-10-25T02:30", "2026-10-25T00:30:00Z"),
            (
                America::New_York,
                "2026-03-08T02:30",
                "2026-03-08T07:00:00Z",
            ),
            (
                America::New_York,
                "2026-11-01T01:30",
                "2026-11-01T05:30:00Z",
            ),
            // Southern hemisphere: back 2026-04-05 03:00->02:00, forward 2026-10-04 02:00->03:00.
            (
                Australia::Sydney,
                "2026-04-05T02:30",
                "2026-04-04T15:30:00Z",
            ),
            (
                Australia::Sydney,
                "2026-10-04T02:30",
                "2026-10-03T16:00:00Z",
            ),
            // Chatham: +13:45 -> +12:45 on 2026-04-05 03:45; forward 2026-09-27 02:45->03:45.
            (Pacific::Chatham, "2026-04-05T03:00", "2026-04-04T13:15:00Z"),
            (Pacific::Chatham, "2026-09-27T03:00", "2026-09-26T14:00:00Z"),
            (
                chrono_tz::Asia::Kolkata,
                "2026-03-29T02:30",
                "2026-03-28T21:00:00Z",
            ),
            (chrono_tz::UTC, "2026-03-29T02:30", "2026-03-29T02:30:00Z"),
        ];
        for (tz, l, want) in cases {
            assert_eq!(local_to_utc(tz, local(l)), utc(want), "{tz} {l}");
        }
    }

    #[test]
    fn shift_length_parses_units_and_rejects_with_reason() {
        let ok = [
            ("12h", ShiftLength::Hours(NonZeroU32::new(12).unwrap())),
            ("36h", ShiftLength::Hours(NonZeroU32::new(36).unwrap())),
            ("1d", ShiftLength::Days(NonZeroU32::new(1).unwrap())),
            ("1w", ShiftLength::Weeks(NonZeroU32::new(1).unwrap())),
            (" 2w ", ShiftLength::Weeks(NonZeroU32::new(2).unwrap())),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<ShiftLength>(), Ok(want), "{s}");
            assert_eq!(want.to_string().parse::<ShiftLength>(), Ok(want));
        }
        assert_eq!(
            "2w".parse::<ShiftLength>().unwrap().local_step(),
            Duration::days(14)
        );
        let bad = [
            ("0h", "at least 1"),
            ("h", "missing number"),
            ("12", "missing unit"),
            ("12m", "unknown unit"),
            ("1.5d", "unknown unit"),
            ("-1d", "missing number"),
            ("99999999999999999999h", "too large"),
            ("1000w", "ten years"),
        ];
        for (s, reason) in bad {
            let err = s.parse::<ShiftLength>().unwrap_err().to_string();
            assert!(err.contains(reason), "{s}: {err}");
            assert!(
                err.contains("\"12h\""),
                "error says what is expected: {err}"
            );
        }
    }

    #[test]
    fn restriction_parses_days_and_windows() {
        let r: Restriction = "Mon-Fri 09:00-18:00".parse().unwrap();
        assert_eq!(r.days.len(), 5);
        assert!(r.days.contains(Weekday::Fri) && !r.days.contains(Weekday::Sat));
        assert!(!r.wraps());
        assert_eq!(r.to_string(), "Mon,Tue,Wed,Thu,Fri 09:00-18:00");

        let r: Restriction = "Sat,Sun 10:00-14:00".parse().unwrap();
        assert_eq!(r.days, WeekdaySet::from_array([Weekday::Sat, Weekday::Sun]));

        let r: Restriction = "Mon-Sun 22:00-06:00".parse().unwrap();
        assert_eq!(r.days, WeekdaySet::ALL);
        assert!(r.wraps());

        let r: Restriction = "fri-mon 18:00-24:00".parse().unwrap();
        assert_eq!(r.days.len(), 4);
        assert!(r.wraps(), "24:00 is midnight of the next day");

        for bad in [
            "Mon-Fri",
            "Mon-Fri 9:00-18:00",
            "Mon-Fry 09:00-18:00",
            "Mon-Fri 09:00",
            "Mon-Fri 09:00-25:00",
            "Mon-Fri 24:00-06:00",
            "M 09:00-10:00",
            "Mon-Fri 09:00-18:00 extra",
        ] {
            let err = bad.parse::<Restriction>().unwrap_err().to_string();
            assert!(err.contains(bad), "keeps the input: {err}");
            assert!(
                err.contains("Mon-Fri 09:00-18:00"),
                "says what is expected: {err}"
            );
        }
    }

    #[test]
    fn restriction_window_is_unbroken_across_dst() {
        let r: Restriction = "Sun 01:30-05:00".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        let (open, close) = r.window_on(Europe::Berlin, d).unwrap();
        assert_eq!(open, utc("2026-10-24T23:30:00Z"));
        assert_eq!(close, utc("2026-10-25T04:00:00Z"));
        // A window entirely inside the spring-forward gap is empty.
        let r: Restriction = "Sun 02:00-02:59".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let (open, close) = r.window_on(Europe::Berlin, d).unwrap();
        assert_eq!(open, close);
        assert!(r.window_on(Europe::Berlin, d.succ_opt().unwrap()).is_none());
    }

    #[test]
    fn parse_time_reads_rfc3339_and_local() {
        let tz = Europe::Berlin;
        assert_eq!(
            parse_time("2026-03-29T01:30:00Z", tz).unwrap(),
            utc("2026-03-29T01:30:00Z")
        );
        assert_eq!(
            parse_time("2026-03-29T02:30", tz).unwrap(),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            parse_time("2026-07-01 12:00", tz).unwrap(),
            utc("2026-07-01T10:00:00Z")
        );
        assert_eq!(
            parse_date_or_time("2026-07-01", tz).unwrap(),
            utc("2026-06-30T22:00:00Z")
        );
        let err = parse_time("tomorrow", tz).unwrap_err().to_string();
        assert!(
            err.contains("tomorrow") && err.contains("RFC 3339"),
            "{err}"
        );
        // Only years with a four-digit form: `%Y` alone would read "+10000".
        assert!(parse_time("9999-12-31T12:00", tz).is_ok());
        assert!(parse_time("1970-01-01T00:00", tz).is_ok());
        for far in [
            "+10000-01-01T00:00",
            "9999-12-31T23:30:00-05:00",
            "-0001-01-01T00:00",
        ] {
            let err = parse_time(far, tz).unwrap_err().to_string();
            assert!(err.contains("0 to 9999"), "{far}: {err}");
        }
        assert!(parse_time("9999-12-31T23:30", America::New_York).is_err());
        assert!(parse_date_or_time("+10000-01-01", tz).is_err());
        assert!(parse_local("+10000-01-01T00:00").is_none());
    }

    #[test]
    fn a_local_day_across_fall_back_is_25_hours() {
        let tz = Europe::Berlin;
        let from = parse_date_or_time("2026-10-25", tz).unwrap();
        assert_eq!(
            local_days_after(tz, from, 1),
            Some(utc("2026-10-25T23:00:00Z"))
        );
        assert_eq!(
            local_days_after(tz, utc("2026-03-28T23:00:00Z"), 2),
            Some(utc("2026-03-30T22:00:00Z"))
        );
    }
}
