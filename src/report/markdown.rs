//! A [`Report`] as a Markdown document people paste into a ticket or wiki and then complete.
//!
//! Pure: no I/O, no clock. Alert text is untrusted (any monitoring system can send any summary),
//! so every piece of it goes through [`escape`]: a `|` cannot split a table cell, a newline cannot
//! start a heading or end a table, and `<`/`>` cannot smuggle HTML into a renderer.

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Report;

/// Renders `report`: title, facts table, timeline, pages, people, then the sections for people to
/// fill in (root cause, impact, follow-ups).
pub fn render(report: &Report) -> String {
    let tz: Tz = report.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let i = &report.incident;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Incident #{}: {}", i.id, escape(&i.summary));
    let _ = writeln!(w);
    facts(w, report, tz);
    timeline(w, report, tz);
    pages(w, report, tz);
    people(w, report, tz);
    to_fill_in(w, report);
    out
}

/// The facts table: state, where the alert came from, and how long each step took.
fn facts(w: &mut String, report: &Report, tz: Tz) {
    let i = &report.incident;
    let _ = writeln!(w, "| | |");
    let _ = writeln!(w, "|---|---|");
    let opt = |s: &Option<String>| s.as_deref().map(escape).unwrap_or_else(|| "-".into());
    let rows: Vec<(&str, String)> = vec![
        ("Status", i.status.to_string()),
        ("Severity", i.severity.to_string()),
        ("Service", opt(&i.service)),
        ("Source", opt(&i.source)),
        ("Route", opt(&i.route)),
        ("Dedup key", format!("`{}`", code(&i.dedup_key))),
        ("First seen", time(i.first_seen, tz)),
        ("Last alert", time(i.last_seen, tz)),
        ("Acknowledged", transition(i.acknowledged.as_ref(), tz)),
        ("Resolved", transition(i.resolved.as_ref(), tz)),
        (
            "Time to acknowledge",
            report
                .time_to_acknowledge
                .map(duration)
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "Time to resolve",
            report
                .time_to_resolve
                .map(duration)
                .unwrap_or_else(|| "-".into()),
        ),
        ("Alerts", i.alert_count.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(w, "| {k} | {v} |");
    }
}

/// `## Timeline`: every event in order, with who did it and how.
fn timeline(w: &mut String, report: &Report, tz: Tz) {
    let _ = writeln!(w, "\n## Timeline\n");
    if report.timeline.is_empty() {
        let _ = writeln!(w, "_No events._");
    }
    for e in &report.timeline {
        let who = match (&e.actor, &e.via) {
            (Some(a), Some(v)) => format!(" ({} via {})", escape(a), escape(v)),
            (Some(a), None) => format!(" ({})", escape(a)),
            _ => String::new(),
        };
        let _ = writeln!(
            w,
            "- {} **{}**{who}: {}",
            time(e.at, tz),
            escape(e.kind.as_str()),
            escape(&e.message)
        );
    }
}

/// `## Pages`: one row per page, with the evidence that it arrived (or why not).
fn pages(w: &mut String, report: &Report, tz: Tz) {
    let _ = writeln!(w, "\n## Pages\n");
    if report.pages.is_empty() {
        let _ = writeln!(w, "_Nobody was paged._");
    } else {
        let _ = writeln!(
            w,
            "| # | Kind | To | Channel | Address | State | Attempts | Sent | Delivered | Evidence |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
        for row in &report.pages {
            let p = &row.page;
            let to = match &p.user_id {
                Some(id) => person(id, row.user_name.as_deref()),
                None => "-".into(),
            };
            let mut evidence = Vec::new();
            if let Some(r) = &p.reference {
                evidence.push(format!("reference {}", escape(r)));
            }
            if let Some(e) = &p.last_error {
                evidence.push(format!("last error: {}", escape(e)));
            }
            let _ = writeln!(
                w,
                "| {} | {} | {to} | {} | {} | {} | {} | {} | {} | {} |",
                p.id,
                escape(p.kind.as_str()),
                escape(&p.channel),
                escape(&p.address),
                escape(p.state.as_str()),
                p.attempts,
                p.sent_at.map(|t| time(t, tz)).unwrap_or_else(|| "-".into()),
                p.delivered_at
                    .map(|t| time(t, tz))
                    .unwrap_or_else(|| "-".into()),
                if evidence.is_empty() {
                    "-".into()
                } else {
                    evidence.join("; ")
                },
            );
        }
    }
}

/// `## People`: who was paged and who answered.
fn people(w: &mut String, report: &Report, tz: Tz) {
    let _ = writeln!(w, "\n## People\n");
    let _ = writeln!(w, "Paged:\n");
    if report.people.paged.is_empty() {
        let _ = writeln!(w, "- nobody");
    }
    for p in &report.people.paged {
        let _ = writeln!(
            w,
            "- {}: {} page(s), {} sent, via {}",
            person(&p.user_id, p.name.as_deref()),
            p.pages,
            p.sent,
            escape(&p.channels.join(", "))
        );
    }
    let _ = writeln!(w, "\nAnswered:\n");
    if report.people.answered.is_empty() {
        let _ = writeln!(w, "- nobody yet");
    }
    for a in &report.people.answered {
        let _ = writeln!(
            w,
            "- {} by {} via {} at {}",
            escape(&a.action),
            person(&a.by, a.name.as_deref()),
            escape(&a.via),
            time(a.at, tz)
        );
    }
}

/// The sections people complete after the incident, and the footer.
fn to_fill_in(w: &mut String, report: &Report) {
    let _ = writeln!(w, "\n## Root cause\n");
    let _ = writeln!(
        w,
        "_What caused it? Why did it happen then? What made it possible?_"
    );
    let _ = writeln!(w, "\n## Impact\n");
    let _ = writeln!(w, "_Who or what was affected, for how long, how badly?_");
    let _ = writeln!(w, "\n## Follow-ups\n");
    let _ = writeln!(w, "- [ ] _Action, owner, due date_");
    let _ = writeln!(
        w,
        "\n---\nGenerated by pagerbox at {}.",
        report.generated_at.format("%Y-%m-%dT%H:%M:%SZ")
    );
}

/// `alice (Alice Example)`, or just the id when the name adds nothing.
fn person(id: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if n != id => format!("{} ({})", escape(id), escape(n)),
        _ => escape(id),
    }
}

/// `TIME by WHO via PATH`, or `-` when it has not happened.
fn transition(t: Option<&crate::incident::Transition>, tz: Tz) -> String {
    t.map(|t| {
        format!(
            "{} by {} via {}",
            time(t.at, tz),
            escape(&t.by),
            escape(&t.via)
        )
    })
    .unwrap_or_else(|| "-".into())
}

/// Untrusted text made safe inside a Markdown line or table cell: line breaks and tabs become
/// spaces, Markdown punctuation is backslash-escaped, `&`, `<` and `>` become entities.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\r' | '\n' | '\t' | '\u{2028}' | '\u{2029}' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text for inside a code span: one line, no backticks, and no `|` (GitHub splits table cells
/// on `|` even inside code spans).
fn code(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '`' | '|' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// `2026-11-22T03:00:00Z (04:00:00 CET)`: ISO UTC, and the wall time in the daemon's zone.
pub fn time(at: DateTime<Utc>, tz: Tz) -> String {
    let utc = at.format("%Y-%m-%dT%H:%M:%SZ");
    if tz == chrono_tz::UTC {
        utc.to_string()
    } else {
        format!("{utc} ({})", at.with_timezone(&tz).format("%H:%M:%S %Z"))
    }
}

/// `45s`, `3m 05s`, `2h 07m`, `3d 04h`: precise enough for a review, short enough for a table.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, incident, page, t};
    use super::super::{build, Report};
    use super::*;
    use crate::incident::TimelineEvent;

    fn report() -> Report {
        let timeline = vec![
            TimelineEvent {
                id: 1,
                at: t(0),
                kind: crate::incident::EventKind::Triggered.into(),
                actor: Some("api".into()),
                via: Some("http".into()),
                message: "CRIT disk | full\n# now".into(),
                data: serde_json::Value::Null,
            },
            TimelineEvent {
                id: 2,
                at: t(3),
                kind: crate::incident::EventKind::Acknowledged.into(),
                actor: Some("alice".into()),
                via: Some("sms".into()),
                message: "acknowledged by alice via sms".into(),
                data: serde_json::Value::Null,
            },
        ];
        build(
            incident(),
            timeline,
            &[page(1, "alice", "sms", "delivered")],
            &config(),
            t(60),
        )
    }

    #[test]
    fn sections_in_order_and_facts_filled_in() {
        let md = render(&report());
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            headings,
            [
                "# Incident #7: disk \\| full now",
                "## Timeline",
                "## Pages",
                "## People",
                "## Root cause",
                "## Impact",
                "## Follow-ups"
            ]
        );
        assert!(md.contains("| Time to acknowledge | 3m 00s |"), "{md}");
        assert!(md.contains("| Time to resolve | 45m 00s |"), "{md}");
        assert!(md.contains("| Severity | critical |"), "{md}");
        assert!(md.contains("| Dedup key | `disk'db1` |"), "{md}");
        // UTC and the daemon's zone (Berlin is UTC+1 in November).
        assert!(
            md.contains("| First seen | 2026-11-22T03:00:00Z (04:00:00 CET) |"),
            "{md}"
        );
        assert!(
            md.contains("- 2026-11-22T03:03:00Z (04:03:00 CET) **acknowledged** (alice via sms)")
        );
        // The page row: who, masked number, state and evidence.
        let row = md
            .lines()
            .find(|l| l.starts_with("| 1 | page |"))
            .expect("the page row");
        assert!(row.contains("alice (Alice A)"), "{row}");
        assert!(row.contains("+\\*\\*\\*\\*\\*\\*\\*\\*\\*\\*011"), "{row}");
        assert!(!row.contains("4915100000011"), "{row}");
        assert!(
            row.contains("| delivered |") && row.contains("reference 17"),
            "{row}"
        );
        assert!(md.contains("- acknowledged by alice (Alice A) via sms at"));
        assert!(md.contains("- resolved by bob via cli at"));
    }

    #[test]
    fn every_table_row_has_the_same_number_of_cells_despite_hostile_text() {
        let mut r = report();
        r.incident.service = Some("a|b\n| x | y |".into());
        r.pages[0].page.last_error = Some("CMS ERROR | 500\nnext".into());
        let md = render(&r);
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let counts: Vec<usize> = table
                .lines()
                .map(|l| l.replace("\\|", "").matches('|').count())
                .collect();
            assert!(counts.windows(2).all(|w| w[0] == w[1]), "{table}");
        }
        assert!(md.contains("a\\|b \\| x \\| y \\|"), "{md}");
    }

    #[test]
    fn escape_vectors() {
        assert_eq!(escape("a|b"), "a\\|b");
        assert_eq!(escape("line1\nline2\r\n"), "line1 line2  ");
        assert_eq!(escape("<script>&"), "&lt;script&gt;&amp;");
        assert_eq!(
            escape("*bold* _x_ [l](u) `c`"),
            "\\*bold\\* \\_x\\_ \\[l\\](u) \\`c\\`"
        );
        assert_eq!(escape("# not a heading"), "\\# not a heading");
        assert_eq!(escape("bell\u{7}"), "bell");
    }

    #[test]
    fn duration_vectors() {
        let d = Duration::from_secs;
        assert_eq!(duration(d(0)), "0s");
        assert_eq!(duration(d(59)), "59s");
        assert_eq!(duration(d(65)), "1m 05s");
        assert_eq!(duration(d(3600 + 7 * 60 + 5)), "1h 07m");
        assert_eq!(duration(d(3 * 86400 + 4 * 3600)), "3d 04h");
    }

    #[test]
    fn utc_zone_shows_one_time() {
        assert_eq!(time(t(0), chrono_tz::UTC), "2026-11-22T03:00:00Z");
    }
}
