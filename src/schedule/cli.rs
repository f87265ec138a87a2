//! `pagerbox oncall` and `pagerbox schedule`: clap arguments and pure renderers.
//!
//! The lead's CLI loads the config (and runtime overrides from the store) and calls
//! [`run_oncall`] / [`run_schedule`] with typed data and `now`; they return the text to print.
//! Nothing here reads files or the clock.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{
    format_local, local_days_after, parse_date_or_time, parse_time, to_ics, OverridesBySchedule,
    Schedule, Shift,
};

/// `pagerbox oncall [--at TIME] [--schedule ID]`: who is on call, from which layer or override,
/// until when.
#[derive(Debug, Clone, clap::Args)]
pub struct OncallArgs {
    /// The instant to ask about: RFC 3339, or local "YYYY-MM-DDTHH:MM" in the schedule's zone
    /// (the daemon's default zone when no --schedule is given). Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Only this schedule.
    #[arg(long, value_name = "ID")]
    pub schedule: Option<String>,
}

/// Output format of `pagerbox schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScheduleFormat {
    /// An aligned table in the schedule's local time.
    #[default]
    Table,
    /// An RFC 5545 iCalendar feed.
    Ics,
}

/// `pagerbox schedule ID [--from DATE] [--days N] [--format table|ics]`: the final shifts.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// The schedule id.
    pub id: String,
    /// First day shown: "YYYY-MM-DD" (local midnight) or a time as for --at. Default: now.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// How many local calendar days to show.
    #[arg(long, value_name = "N", default_value_t = 14)]
    pub days: u32,
    /// table or ics.
    #[arg(long, value_enum, default_value_t = ScheduleFormat::Table)]
    pub format: ScheduleFormat,
}

/// Runs `pagerbox oncall` on loaded data; returns the report to print.
pub fn run_oncall(
    args: &OncallArgs,
    schedules: &[Schedule],
    overrides: &OverridesBySchedule,
    default_tz: Tz,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let tz = match &args.schedule {
        Some(id) => find(schedules, id)?.tz,
        None => default_tz,
    };
    let at = match &args.at {
        Some(s) => parse_time(s, tz)?,
        None => now,
    };
    oncall_report(schedules, at, overrides, args.schedule.as_deref())
}

/// Runs `pagerbox schedule` on loaded data; returns the table or the iCalendar feed.
pub fn run_schedule(
    args: &ScheduleArgs,
    schedules: &[Schedule],
    overrides: &OverridesBySchedule,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let schedule = find(schedules, &args.id)?;
    let from = match &args.from {
        Some(s) => parse_date_or_time(s, schedule.tz)?,
        None => now,
    };
    let to = local_days_after(schedule.tz, from, args.days.max(1))
        .context("--days reaches past the end of time")?;
    let rt = overrides
        .get(&schedule.id)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let shifts = schedule.shifts(from, to, rt);
    Ok(match args.format {
        ScheduleFormat::Table => schedule_report(schedule, &shifts),
        ScheduleFormat::Ics => to_ics(schedule, &shifts),
    })
}

fn find<'a>(schedules: &'a [Schedule], id: &str) -> anyhow::Result<&'a Schedule> {
    schedules.iter().find(|s| s.id == id).with_context(|| {
        let known: Vec<&str> = schedules.iter().map(|s| s.id.as_str()).collect();
        format!("no schedule {id:?}; known: {}", known.join(", "))
    })
}

/// The `pagerbox oncall` table: one row per schedule (or only `filter`), times in each
/// schedule's zone. Fails only when `filter` names no schedule.
pub fn oncall_report(
    schedules: &[Schedule],
    at: DateTime<Utc>,
    overrides: &OverridesBySchedule,
    filter: Option<&str>,
) -> anyhow::Result<String> {
    let selected: Vec<&Schedule> = match filter {
        Some(id) => vec![find(schedules, id)?],
        None => schedules.iter().collect(),
    };
    if selected.is_empty() {
        bail!("no schedules configured");
    }
    let mut rows = Vec::new();
    for s in selected {
        let rt = overrides.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
        rows.push(match s.on_call(at, rt) {
            Some(o) => vec![
                s.id.clone(),
                o.user,
                o.source.to_string(),
                format_local(s.tz, o.from),
                o.until
                    .map(|u| format_local(s.tz, u))
                    .unwrap_or_else(|| "-".into()),
            ],
            None => {
                let next = s.next_handoff(at, rt);
                vec![
                    s.id.clone(),
                    "NOBODY".into(),
                    "gap".into(),
                    "-".into(),
                    next.map(|u| format_local(s.tz, u))
                        .unwrap_or_else(|| "-".into()),
                ]
            }
        });
    }
    Ok(format!(
        "on call at {}\n{}",
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        render_table(&["SCHEDULE", "ON CALL", "SOURCE", "SINCE", "UNTIL"], &rows)
    ))
}

/// The `pagerbox schedule` table: one row per shift, times in the schedule's zone.
pub fn schedule_report(schedule: &Schedule, shifts: &[Shift]) -> String {
    let rows: Vec<Vec<String>> = shifts
        .iter()
        .map(|s| {
            vec![
                format_local(schedule.tz, s.from),
                format_local(schedule.tz, s.until),
                s.user.clone().unwrap_or_else(|| "NOBODY".into()),
                s.source
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "gap".into()),
            ]
        })
        .collect();
    format!(
        "schedule {} ({}, {})\n{}",
        schedule.id,
        schedule.name,
        schedule.tz.name(),
        render_table(&["FROM", "UNTIL", "ON CALL", "SOURCE"], &rows)
    )
}

/// Left-aligned columns separated by two spaces; widths in characters.
pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{cell:<w$}", w = *w);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{parse_local, Layer, Override, OverrideSource};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedules() -> Vec<Schedule> {
        let weekly = Layer::new(
            "weekly",
            vec!["alice".into(), "bob".into()],
            "1w".parse().unwrap(),
            parse_local("2026-01-05T09:00").unwrap(),
            vec![],
        )
        .unwrap();
        let business = Layer::new(
            "business hours",
            vec!["carol".into()],
            "1d".parse().unwrap(),
            parse_local("2026-01-05T09:00").unwrap(),
            vec!["Mon-Fri 09:00-18:00".parse().unwrap()],
        )
        .unwrap();
        vec![Schedule::new(
            "primary",
            "Primary on-call",
            chrono_tz::Europe::Berlin,
            vec![weekly, business],
            vec![],
        )
        .unwrap()]
    }

    #[test]
    fn oncall_table_names_user_source_and_local_times() {
        let args = OncallArgs {
            at: Some("2026-01-09T20:00".into()),
            schedule: Some("primary".into()),
        };
        let out = run_oncall(
            &args,
            &schedules(),
            &OverridesBySchedule::new(),
            chrono_tz::UTC,
            utc("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            out,
            "on call at 2026-01-09 19:00:00 UTC\n\
             SCHEDULE  ON CALL  SOURCE        SINCE                 UNTIL\n\
             primary   alice    layer weekly  2026-01-09 18:00 CET  2026-01-12 09:00 CET\n"
        );
        let err = oncall_report(
            &schedules(),
            utc("2026-01-09T20:00:00Z"),
            &OverridesBySchedule::new(),
            Some("nope"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("primary"), "{err}");
    }

    #[test]
    fn oncall_table_shows_runtime_override_and_gaps() {
        let mut rt = OverridesBySchedule::new();
        rt.insert(
            "primary".into(),
            vec![Override::new(
                Some(3),
                "dave",
                utc("2026-01-09T18:00:00Z"),
                utc("2026-01-09T22:00:00Z"),
                OverrideSource::Runtime,
            )
            .unwrap()],
        );
        let out = oncall_report(&schedules(), utc("2026-01-09T19:00:00Z"), &rt, None).unwrap();
        assert!(
            out.contains(
                "primary   dave     override #3  2026-01-09 19:00 CET  2026-01-09 23:00 CET"
            ),
            "{out}"
        );
        let out = oncall_report(&schedules(), utc("2026-01-01T00:00:00Z"), &rt, None).unwrap();
        assert!(
            out.contains("NOBODY   gap     -      2026-01-05 09:00 CET"),
            "{out}"
        );
    }

    #[test]
    fn schedule_table_and_ics_formats() {
        let mut args = ScheduleArgs {
            id: "primary".into(),
            from: Some("2026-01-09".into()),
            days: 1,
            format: ScheduleFormat::Table,
        };
        let rt = OverridesBySchedule::new();
        let out = run_schedule(&args, &schedules(), &rt, utc("2030-01-01T00:00:00Z")).unwrap();
        assert_eq!(
            out,
            "schedule primary (Primary on-call, Europe/Berlin)\n\
             FROM                  UNTIL                 ON CALL  SOURCE\n\
             2026-01-09 00:00 CET  2026-01-09 09:00 CET  alice    layer weekly\n\
             2026-01-09 09:00 CET  2026-01-09 18:00 CET  carol    layer business hours\n\
             2026-01-09 18:00 CET  2026-01-10 00:00 CET  alice    layer weekly\n"
        );
        args.format = ScheduleFormat::Ics;
        let out = run_schedule(&args, &schedules(), &rt, utc("2030-01-01T00:00:00Z")).unwrap();
        assert_eq!(out.matches("BEGIN:VEVENT").count(), 3);
    }
}
