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
    for route in &config.routes {
        let Some(policy) = plan.policies.get(&route.policy) else {
            continue;
        };
        // The same problem for several severities is said once, naming them all.
        let mut problems: BTreeMap<String, Vec<Severity>> = BTreeMap::new();
        // Most severe first, as people read them.
        for severity in Severity::ALL.into_iter().rev() {
            let dry =
                crate::escalation::plan(policy, route, severity, &plan.directory, now, overrides);
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
