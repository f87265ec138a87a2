//! `pagerbox simulate`: the page timeline of an alert nobody acknowledges.
//!
//! The lead's CLI loads the config and calls [`run_simulate`] with typed data and `now`;
//! it returns the text to print. Nothing here reads files or the clock.

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::incident::Severity;
use crate::schedule::cli::render_table;
use crate::schedule::{format_local, parse_time, OverridesBySchedule};

use super::{plan, route_for, AlertFacts, Directory, Plan, Policy, Route};

/// `pagerbox simulate --service S --severity SEV [--at TIME]`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The alert's service.
    #[arg(long)]
    pub service: String,
    /// critical, error, warning or info.
    #[arg(long)]
    pub severity: Severity,
    /// The alert's source, for routes that match on it.
    #[arg(long)]
    pub source: Option<String>,
    /// A routing key, for routes that match on it.
    #[arg(long)]
    pub routing_key: Option<String>,
    /// When the alert arrives: RFC 3339, or local "YYYY-MM-DDTHH:MM" in the default zone.
    /// Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

/// Runs `pagerbox simulate` on loaded data. Fails when no route matches or the route names an
/// unknown policy (config validation normally prevents both). A route in `standby` shows its
/// hold, and the pages that follow if the cloud pager gets no acknowledgement in the grace.
#[allow(clippy::too_many_arguments)]
pub fn run_simulate(
    args: &SimulateArgs,
    routes: &[Route],
    policies: &[Policy],
    directory: &Directory,
    overrides: &OverridesBySchedule,
    standby: &crate::config::standby::StandbyConfig,
    tz: Tz,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let start = match &args.at {
        Some(s) => parse_time(s, tz)?,
        None => now,
    };
    let facts = AlertFacts {
        service: Some(args.service.as_str()),
        severity: args.severity,
        source: args.source.as_deref(),
        routing_key: args.routing_key.as_deref(),
    };
    let route = route_for(routes, &facts).context("no route matches this alert")?;
    let policy = policies
        .iter()
        .find(|p| p.id == route.policy)
        .with_context(|| {
            format!(
                "route {:?} names unknown policy {:?}",
                route.id, route.policy
            )
        })?;
    let held = standby.for_route(Some(&route.id));
    // The first step waits for the later of the pre-page delay and the grace.
    let paging_from = match held {
        Some(s) => crate::clock::add(start, s.grace.saturating_sub(route.pre_page_delay)),
        None => start,
    };
    let plan = plan(
        policy,
        route,
        args.severity,
        directory,
        paging_from,
        overrides,
    );
    let mut out = simulate_report(route, policy, args.severity, start, &plan, tz);
    if let Some(s) = held {
        let until = crate::clock::add(start, s.grace);
        let sooner = if s.max_failures > 0 {
            format!(" (or after {} failed checks in a row)", s.max_failures)
        } else {
            String::new()
        };
        let note = format!(
            "standby: held until {} (+{}m) while {} gets it acknowledged; acknowledged or resolved there: nobody is paged; still triggered, unknown or unreachable then{sooner}: the pages below\n",
            format_local(tz, until),
            (until - start).num_minutes(),
            s.upstream.name(),
        );
        let header_end = out.find('\n').map_or(0, |i| i + 1);
        out.insert_str(header_end, &note);
    }
    Ok(out)
}

/// Renders a plan: a header naming route, policy and urgency, one row per page with its local
/// time and minutes after the alert, then when the incident is flagged exhausted, then warnings.
pub fn simulate_report(
    route: &Route,
    policy: &Policy,
    severity: Severity,
    start: DateTime<Utc>,
    plan: &Plan,
    tz: Tz,
) -> String {
    let offset = |t: DateTime<Utc>| format!("+{}m", (t - start).num_minutes());
    let rows: Vec<Vec<String>> = plan
        .pages
        .iter()
        .map(|p| {
            vec![
                format_local(tz, p.at),
                offset(p.at),
                (p.round + 1).to_string(),
                (p.step + 1).to_string(),
                p.user.clone(),
                p.channel.to_string(),
                p.via.clone(),
            ]
        })
        .collect();
    let mut out = format!(
        "alert at {}: route {} -> policy {} ({} runs), severity {} -> {} urgency\n",
        format_local(tz, start),
        route.id,
        policy.id,
        policy.repeat,
        severity,
        match plan.urgency {
            crate::incident::Urgency::High => "high",
            crate::incident::Urgency::Low => "low",
        }
    );
    out.push_str(&render_table(
        &["TIME", "AFTER", "RUN", "STEP", "USER", "CHANNEL", "VIA"],
        &rows,
    ));
    out.push_str(&format!(
        "exhausted {} ({}): the incident stays open, flagged unacknowledged-exhausted\n",
        format_local(tz, plan.exhausted_at),
        offset(plan.exhausted_at)
    ));
    for w in &plan.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::plan::tests::{example, utc};

    #[test]
    fn simulate_prints_the_timeline_in_local_time() {
        let (dir, policy, routes) = example();
        let args = SimulateArgs {
            service: "db".into(),
            severity: Severity::Critical,
            source: None,
            routing_key: None,
            at: Some("2026-01-09T21:00".into()),
        };
        let out = run_simulate(
            &args,
            &routes,
            &[policy],
            &dir,
            &OverridesBySchedule::new(),
            &Default::default(),
            chrono_tz::Europe::Berlin,
            utc("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            out,
            "alert at 2026-01-09 21:00 CET: route database -> policy default (2 runs), severity critical -> high urgency\n\
             TIME                  AFTER  RUN  STEP  USER   CHANNEL  VIA\n\
             2026-01-09 21:00 CET  +0m    1    1     alice  sms      schedule primary\n\
             2026-01-09 21:02 CET  +2m    1    1     alice  voice    schedule primary\n\
             2026-01-09 21:10 CET  +10m   1    2     carol  sms      user\n\
             2026-01-09 21:12 CET  +12m   1    2     carol  voice    user\n\
             2026-01-09 21:25 CET  +25m   2    1     alice  sms      schedule primary\n\
             2026-01-09 21:27 CET  +27m   2    1     alice  voice    schedule primary\n\
             2026-01-09 21:35 CET  +35m   2    2     carol  sms      user\n\
             2026-01-09 21:37 CET  +37m   2    2     carol  voice    user\n\
             exhausted 2026-01-09 21:50 CET (+50m): the incident stays open, flagged unacknowledged-exhausted\n"
        );
    }

    #[test]
    fn simulate_shows_the_standby_hold() {
        let (dir, policy, routes) = example();
        let args = SimulateArgs {
            service: "db".into(),
            severity: Severity::Critical,
            source: None,
            routing_key: None,
            at: Some("2026-01-09T21:00".into()),
        };
        let mut standby = crate::config::standby::StandbyConfig::default();
        standby.routes.insert(
            "database".into(),
            crate::standby::Settings {
                upstream: crate::standby::Upstream::PagerDuty,
                base_url: crate::standby::PAGERDUTY_API.into(),
                events_url: crate::standby::PAGERDUTY_EVENTS.into(),
                key: crate::config::Secret::new("k"),
                routing_key: None,
                grace: std::time::Duration::from_secs(300),
                poll_interval: std::time::Duration::from_secs(30),
                timeout: std::time::Duration::from_secs(10),
                max_failures: 3,
            },
        );
        let out = run_simulate(
            &args,
            &routes,
            &[policy],
            &dir,
            &OverridesBySchedule::new(),
            &standby,
            chrono_tz::Europe::Berlin,
            utc("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "standby: held until 2026-01-09 21:05 CET (+5m) while PagerDuty gets it acknowledged; \
             acknowledged or resolved there: nobody is paged; still triggered, unknown or unreachable \
             then (or after 3 failed checks in a row): the pages below"
        );
        assert!(
            lines[3].starts_with("2026-01-09 21:05 CET  +5m    1    1     alice  sms"),
            "{out}"
        );
    }

    #[test]
    fn simulate_fails_clearly_without_a_route() {
        let (dir, policy, routes) = example();
        let args = SimulateArgs {
            service: "web".into(),
            severity: Severity::Info,
            source: None,
            routing_key: None,
            at: None,
        };
        let err = run_simulate(
            &args,
            &routes[..1],
            &[policy],
            &dir,
            &OverridesBySchedule::new(),
            &Default::default(),
            chrono_tz::UTC,
            utc("2026-01-09T20:00:00Z"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no route"), "{err}");
    }
}
