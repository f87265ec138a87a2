//! Nobody silently unreachable: the warnings a config gets when some alert it accepts would page
//! nobody, found by dry-running every route's escalation for every severity.
//!
//! A config can be valid and still leave someone unpaged: a severity whose urgency reaches a user
//! with no rule, address or working channel for it; a schedule with nobody on call in the coming
//! weeks; a policy whose steps can all come up empty. None of these stops the daemon (the
//! incident is still recorded, and other alerts page fine), so they are warnings, not errors,
//! but they are printed by `pagerbox check` and logged at start and on every SIGHUP reload: the
//! box owner must hear of them before an alert at 3 a.m. does.
//!
//! The dry run is the escalation planner the engine itself follows ([`crate::escalation::plan`])
//! over the channels the box actually serves, so the warning and the real behaviour agree.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::escalation::engine::Plan;
use crate::incident::Severity;
use crate::schedule::OverridesBySchedule;

/// How far ahead schedules are searched for gaps: four weeks covers any weekly rotation and
/// the next holiday season's overrides.
pub const GAP_HORIZON_DAYS: i64 = 28;

/// Every way the config can leave someone unpaged, starting at `now` with the runtime
/// `overrides` in force: one line per problem, each saying what would happen.
pub fn unreachable(
    config: &Config,
    now: DateTime<Utc>,
    overrides: &OverridesBySchedule,
) -> Vec<String> {
    let plan = Plan::new(std::sync::Arc::new(config.clone()));
    let mut out = Vec::new();
    for (route, policy, runs) in dry_runs(config, &plan, now, overrides) {
        // The same problem for several severities is said once, naming them all.
        let mut problems: BTreeMap<String, Vec<Severity>> = BTreeMap::new();
        for (severity, dry) in runs {
            let mut found = dry.warnings.clone();
            if dry.pages.is_empty() {
                let urgency = match dry.urgency {
                    crate::incident::Urgency::High => "high",
                    crate::incident::Urgency::Low => "low",
                };
                found.push(format!(
                    "the escalation ends with nobody paged ({urgency} urgency)"
                ));
            }
            for p in found {
                problems.entry(p).or_default().push(severity);
            }
        }
        for (problem, severities) in problems {
            let names: Vec<&str> = severities.iter().map(|s| s.as_str()).collect();
            out.push(format!(
                "route {:?} (policy {:?}), {} alerts: {problem}",
                route.id,
                policy.id,
                names.join("/")
            ));
        }
    }
    let used = crate::escalation::schedules_used(&config.policies, &plan.directory);
    out.extend(crate::schedule::gap_warnings(
        &used,
        now,
        chrono::Duration::days(GAP_HORIZON_DAYS),
        overrides,
    ));
    out
}

/// The routes whose high-urgency alerts (critical and error, unless a route maps them lower)
/// would page nobody at all at `now`: one line per route, naming the severities. Unlike the
/// warnings of [`unreachable`] (a step that reaches nobody while another step pages someone, a
/// gap weeks ahead), each of these is an alert that matters and reaches no one now, so
/// `/healthz` names them (degraded) before such an alert arrives.
pub fn pages_nobody(
    config: &Config,
    now: DateTime<Utc>,
    overrides: &OverridesBySchedule,
) -> Vec<String> {
    let plan = Plan::new(std::sync::Arc::new(config.clone()));
    dry_runs(config, &plan, now, overrides)
        .into_iter()
        .filter_map(|(route, policy, runs)| {
            let nobody: Vec<&str> = runs
                .iter()
                .filter(|(_, dry)| {
                    dry.urgency == crate::incident::Urgency::High && dry.pages.is_empty()
                })
                .map(|(severity, _)| severity.as_str())
                .collect();
            (!nobody.is_empty()).then(|| {
                format!(
                    "route {:?} (policy {:?}): {} alerts would page nobody",
                    route.id,
                    policy.id,
                    nobody.join("/")
                )
            })
        })
        .collect()
}

/// How often [`watch`] looks again without a reload: schedules start, layers end and
/// overrides lapse with time alone.
const REACH_RECHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Keeps `tx` to the routes whose high-urgency alerts the config in force would page nobody for
/// (see [`pages_nobody`]): at start, after every reload, and hourly; a change is logged.
/// Each look is a dry run of every route (and a read of the runtime overrides from the
/// database file), done on a blocking thread.
pub async fn watch(
    mut config: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    tx: tokio::sync::watch::Sender<Vec<String>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut first = true;
    loop {
        let cfg = config.borrow_and_update().clone();
        let now = clock.now();
        let found = tokio::task::spawn_blocking(move || {
            let mut overrides = crate::store::overrides::in_force_at(&cfg.database_path(), now);
            let _ = crate::escalation::engine::known_users_only(&mut overrides, &cfg);
            pages_nobody(&cfg, now, &overrides)
        })
        .await;
        match found {
            Ok(list) => {
                tx.send_if_modified(|old| {
                    if *old == list {
                        return false;
                    }
                    // At start the daemon has just logged every warning of `unreachable`.
                    for w in list.iter().filter(|w| !old.contains(w) && !first) {
                        tracing::warn!("nobody would be paged: {w}");
                    }
                    *old = list;
                    true
                });
            }
            Err(e) => tracing::error!(error = %e, "cannot work out whom the config pages"),
        }
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = config.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(REACH_RECHECK) => {}
        }
    }
}

/// One route, its policy, and the dry run of its escalation for each severity.
type DryRuns<'c> = (
    &'c crate::escalation::Route,
    &'c crate::escalation::Policy,
    Vec<(Severity, crate::escalation::plan::Plan)>,
);

/// Every route's escalation dry-run for every severity, most severe first (as people read
/// them); routes whose policy the config lacks are left out.
fn dry_runs<'c>(
    config: &'c Config,
    plan: &'c Plan,
    now: DateTime<Utc>,
    overrides: &OverridesBySchedule,
) -> Vec<DryRuns<'c>> {
    config
        .routes
        .iter()
        .filter_map(|route| {
            let policy = plan.policies.get(&route.policy)?;
            let runs = Severity::ALL
                .into_iter()
                .rev()
                .map(|severity| {
                    let dry = crate::escalation::plan(
                        policy,
                        route,
                        severity,
                        &plan.directory,
                        now,
                        overrides,
                    );
                    (severity, dry)
                })
                .collect();
            Some((route, policy, runs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, "t.toml", Path::new("/"))
            .unwrap()
            .config
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
    }

    const PEOPLE: &str = r#"
[[schedules]]
id = "primary"
time_zone = "UTC"
[[schedules.layers]]
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
[[policies.steps]]
schedules = ["primary"]
wait = "10m"

[[routes]]
id = "default"
policy = "default"
"#;

    /// High-urgency alerts that reach no one are named for `/healthz`; a low-urgency gap, or
    /// a step that reaches nobody while another pages someone, is left to the warnings.
    #[test]
    fn only_high_urgency_alerts_that_page_nobody_at_all_are_named() {
        let only_low = config(&format!(
            "[[users]]\nid = \"alice\"\nphone = \"+4915100000001\"\n\
             [[users.rules]]\nurgency = \"high\"\nchannel = \"sms\"\nafter = \"0s\"\n{PEOPLE}"
        ));
        assert!(!unreachable(&only_low, now(), &Default::default()).is_empty());
        assert_eq!(
            pages_nobody(&only_low, now(), &Default::default()),
            Vec::<String>::new()
        );
        // No phone, and email is off: nobody is paged for anything.
        let nobody = config(&format!(
            "[[users]]\nid = \"alice\"\nemail = \"alice@example.org\"\n{PEOPLE}"
        ));
        assert_eq!(
            pages_nobody(&nobody, now(), &Default::default()),
            ["route \"default\" (policy \"default\"): critical/error alerts would page nobody"]
        );
    }

    #[test]
    fn a_user_reachable_for_every_severity_gets_no_warning() {
        let c = config(&format!(
            "[[users]]\nid = \"alice\"\nphone = \"+4915100000001\"\n\
             [[users.rules]]\nurgency = \"high\"\nchannel = \"sms\"\nafter = \"0s\"\n\
             [[users.rules]]\nurgency = \"low\"\nchannel = \"sms\"\nafter = \"0s\"\n{PEOPLE}"
        ));
        assert_eq!(
            unreachable(&c, now(), &Default::default()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn low_urgency_to_a_user_without_a_way_to_reach_them_is_named() {
        // Only an SMS rule for high urgency; low urgency falls back to email, and alice has no
        // email address (and no modem serves SMS here either).
        let c = config(&format!(
            "[[users]]\nid = \"alice\"\nphone = \"+4915100000001\"\n\
             [[users.rules]]\nurgency = \"high\"\nchannel = \"sms\"\nafter = \"0s\"\n{PEOPLE}"
        ));
        let w = unreachable(&c, now(), &Default::default());
        assert!(
            w.iter().any(|l| l
                .starts_with("route \"default\" (policy \"default\"), warning/info alerts:")
                && l.contains("alice cannot be reached")),
            "{w:#?}"
        );
        assert!(
            w.iter().any(|l| l.contains(
                "warning/info alerts: the escalation ends with nobody paged (low urgency)"
            )),
            "{w:#?}"
        );
    }

    #[test]
    fn a_schedule_gap_in_the_coming_weeks_is_named() {
        let c = config(&format!(
            "[[users]]\nid = \"alice\"\nphone = \"+4915100000001\"\n{}",
            PEOPLE.replace(
                "start = \"2026-01-05T09:00\"",
                "start = \"2026-01-05T09:00\"\nrestrictions = [\"Mon-Fri 09:00-18:00\"]"
            )
        ));
        let w = unreachable(&c, now(), &Default::default());
        assert!(
            w.iter()
                .any(|l| l.starts_with("schedule \"primary\": nobody on call from")),
            "{w:#?}"
        );
    }
}

#[cfg(test)]
mod layer_names {
    use std::path::Path;

    use crate::config::Config;
    use crate::schedule::Source;

    #[test]
    fn an_unnamed_layer_reads_layer_1_not_layer_layer_1() {
        let c = Config::parse(
            "[[users]]\nid = \"a\"\nphone = \"+4915100000001\"\n[[schedules]]\nid = \"s\"\n\
             [[schedules.layers]]\nusers = [\"a\"]\nshift = \"1w\"\nstart = \"2026-01-05T09:00\"\n",
            "t.toml",
            Path::new("/"),
        )
        .unwrap()
        .config;
        let name = c.schedules[0].layers[0].name.clone();
        assert_eq!(Source::Layer(name).to_string(), "layer 1");
    }
}
