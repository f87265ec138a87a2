//! The iCalendar (RFC 5545) feed of a schedule's shifts, for people to subscribe to.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Schedule, Shift, Source};

/// Renders `shifts` of `schedule` as an RFC 5545 `VCALENDAR`: one `VEVENT` per shift (gaps too,
/// as "Nobody on call", because a gap is what people most need to see), times in UTC, lines
/// ending in CRLF and folded at 75 octets without splitting a UTF-8 character, text escaped.
///
/// The output is a pure function of its input: `UID` is built from the schedule id, the shift's
/// start and its user, so re-exporting the same shifts yields the same UIDs (calendar clients
/// update rather than duplicate), and `DTSTAMP` is the shift's start rather than the clock.
pub fn to_ics(schedule: &Schedule, shifts: &[Shift]) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//pagerbox//on-call schedule//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", escape_text(&schedule.name)),
        format!("X-WR-TIMEZONE:{}", schedule.tz.name()),
    ];
    for shift in shifts {
        let who = shift.user.as_deref().unwrap_or("nobody");
        let summary = match &shift.user {
            Some(u) => format!("On call: {u}"),
            None => "Nobody on call".to_string(),
        };
        let why = match &shift.source {
            Some(Source::Layer(name)) => format!("layer {name}"),
            Some(Source::Override(Some(id))) => format!("override #{id}"),
            Some(Source::Override(None)) => "override from the config".to_string(),
            None => "gap: no layer or override covers this time".to_string(),
        };
        lines.extend([
            "BEGIN:VEVENT".to_string(),
            format!(
                "UID:{}-{}-{}@pagerbox",
                uid_part(&schedule.id),
                stamp(shift.from),
                uid_part(who)
            ),
            format!("DTSTAMP:{}", stamp(shift.from)),
            format!("DTSTART:{}", stamp(shift.from)),
            format!("DTEND:{}", stamp(shift.until)),
            format!("SUMMARY:{}", escape_text(&summary)),
            format!(
                "DESCRIPTION:{}",
                escape_text(&format!("{} ({}): {}", schedule.name, schedule.id, why))
            ),
            "TRANSP:TRANSPARENT".to_string(),
            "END:VEVENT".to_string(),
        ]);
    }
    lines.push("END:VCALENDAR".to_string());
    let mut out = String::new();
    for line in lines {
        fold_into(&mut out, &line);
    }
    out
}

/// `20260105T080000Z`, the UTC form of DATE-TIME.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Keeps ids safe inside a UID (no spaces or `@`).
fn uid_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// RFC 5545 §3.3.11 TEXT escaping.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// RFC 5545 §3.1: lines of at most 75 octets; a continuation starts with one space.
fn fold_into(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    let _ = write!(out, "\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{parse_local, Layer, Override, OverrideSource};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedule(name: &str) -> Schedule {
        let layer = Layer::new(
            "weekly",
            vec!["alice".into(), "bob".into()],
            "1w".parse().unwrap(),
            parse_local("2026-01-05T09:00").unwrap(),
            vec![],
        )
        .unwrap();
        Schedule::new(
            "primary",
            name,
            chrono_tz::Europe::Berlin,
            vec![layer],
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn feed_has_one_event_per_shift_in_utc_with_crlf() {
        let s = schedule("Primary on-call");
        let over = Override::new(
            Some(7),
            "carol",
            utc("2026-01-13T00:00:00Z"),
            utc("2026-01-14T00:00:00Z"),
            OverrideSource::Runtime,
        )
        .unwrap();
        let shifts = s.shifts(
            utc("2026-01-05T00:00:00Z"),
            utc("2026-01-20T00:00:00Z"),
            &[over],
        );
        let ics = to_ics(&s, &shifts);
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(ics.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"));
        assert!(
            !ics.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), shifts.len());
        // gap, alice, bob, carol (override), bob, ... each a separate event
        assert!(ics.contains("SUMMARY:Nobody on call\r\n"));
        assert!(ics.contains(
            "UID:primary-20260105T080000Z-alice@pagerbox\r\nDTSTAMP:20260105T080000Z\r\nDTSTART:20260105T080000Z\r\nDTEND:20260112T080000Z\r\nSUMMARY:On call: alice\r\n"
        ));
        assert!(ics.contains(
            "DTSTART:20260113T000000Z\r\nDTEND:20260114T000000Z\r\nSUMMARY:On call: carol\r\n"
        ));
        assert!(ics.contains("override #7"));
        assert_eq!(ics, to_ics(&s, &shifts), "stable output, stable UIDs");
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let s = schedule(
            "Bereitschaft für die Datenbank-Plattform, Standort München; Zweitbesetzung ÄÖÜ äöü",
        );
        let shifts = s.shifts(
            utc("2026-01-05T08:00:00Z"),
            utc("2026-01-06T00:00:00Z"),
            &[],
        );
        let ics = to_ics(&s, &shifts);
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
        }
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains(
            "X-WR-CALNAME:Bereitschaft für die Datenbank-Plattform\\, Standort München\\; Zweitbesetzung ÄÖÜ äöü\r\n"
        ));
        assert!(ics.contains("\r\n "), "something was folded");
    }
}
