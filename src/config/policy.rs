//! The configured shape of escalation: notification rules, policies and their steps, routes and
//! the alert facts they match on.

use std::time::Duration;

use crate::incident::{Channel, Severity, Urgency};

/// How one person is reached once targeted: on `channel`, `after` the step that targeted them
/// started, for incidents of `urgency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationRule {
    /// Which incidents the rule is for.
    pub urgency: Urgency,
    /// How to reach the person.
    pub channel: Channel,
    /// Delay after the step started.
    pub after: Duration,
}

/// The rules of a user who configured none (and, per urgency, of a user who configured none for
/// that urgency): high urgency SMS at once, a voice call after 2 minutes, email after 5; low
/// urgency email at once.
pub fn default_rules() -> Vec<NotificationRule> {
    let rule = |urgency, channel, minutes: u64| NotificationRule {
        urgency,
        channel,
        after: Duration::from_secs(60 * minutes),
    };
    vec![
        rule(Urgency::High, Channel::Sms, 0),
        rule(Urgency::High, Channel::Voice, 2),
        rule(Urgency::High, Channel::Email, 5),
        rule(Urgency::Low, Channel::Email, 0),
    ]
}

/// One step of a policy: everyone it names is targeted at once, then the policy waits `wait`
/// for an acknowledgement before the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// User ids paged directly.
    pub users: Vec<String>,
    /// Schedule ids; each means whoever is on call there when the step starts.
    pub schedules: Vec<String>,
    /// How long to wait for an acknowledgement before the next step.
    pub wait: Duration,
}

/// An escalation policy: `steps` in order, the whole run `repeat` times in total; after that the
/// incident stays open and is flagged unacknowledged-exhausted.
///
/// Invariants (checked by [`Policy::new`]): `repeat >= 1`, at least one step, every step names
/// at least one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The id routes refer to.
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// Total runs through the steps, at least 1.
    pub repeat: u32,
    /// The steps, first first.
    pub steps: Vec<Step>,
}

impl Policy {
    /// A checked policy.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        repeat: u32,
        steps: Vec<Step>,
    ) -> Result<Self, Error> {
        let id = id.into();
        if repeat == 0 {
            return Err(Error::ZeroRepeat { policy: id });
        }
        if steps.is_empty() {
            return Err(Error::NoSteps { policy: id });
        }
        if let Some(i) = steps
            .iter()
            .position(|s| s.users.is_empty() && s.schedules.is_empty())
        {
            return Err(Error::EmptyStep {
                policy: id,
                step: i + 1,
            });
        }
        Ok(Policy {
            id,
            name: name.into(),
            repeat,
            steps,
        })
    }

    /// Every schedule id any step names, each once, in order of first mention.
    pub fn schedule_ids(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for id in self.steps.iter().flat_map(|s| &s.schedules) {
            if !out.contains(&id.as_str()) {
                out.push(id);
            }
        }
        out
    }
}

/// Severity to urgency, per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrgencyMap {
    /// Indexed by severity, lowest first (info, warning, error, critical).
    by_severity: [Urgency; 4],
}

impl Default for UrgencyMap {
    /// critical and error are high urgency; warning and info low.
    fn default() -> Self {
        UrgencyMap {
            by_severity: [Urgency::Low, Urgency::Low, Urgency::High, Urgency::High],
        }
    }
}

impl UrgencyMap {
    fn index(severity: Severity) -> usize {
        match severity {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
            Severity::Critical => 3,
        }
    }

    /// The urgency of an alert of `severity`.
    pub fn urgency(&self, severity: Severity) -> Urgency {
        self.by_severity[Self::index(severity)]
    }

    /// Changes the urgency of one severity (the config sets the ones it names).
    pub fn set(&mut self, severity: Severity, urgency: Urgency) {
        self.by_severity[Self::index(severity)] = urgency;
    }
}

/// What a route matches. Every field given must match; `None` and an empty `severity` list
/// match anything. Strings compare exactly (case-sensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    /// The alert's service.
    pub service: Option<String>,
    /// Any of these severities; empty means any.
    pub severity: Vec<Severity>,
    /// The alert's source (the monitoring system).
    pub source: Option<String>,
    /// A PagerDuty-style routing key.
    pub routing_key: Option<String>,
}

/// Which policy an alert follows, and how its pages behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Route id.
    pub id: String,
    /// Policy id.
    pub policy: String,
    /// `None` is the default route; it matches every alert and must come last.
    pub matcher: Option<RouteMatch>,
    /// An acknowledged incident not resolved within this time triggers again from step 1.
    pub ack_timeout: Option<Duration>,
    /// Wait this long before the first step (flap damping): resolving sooner pages nobody.
    pub pre_page_delay: Duration,
    /// Severity to urgency.
    pub urgency: UrgencyMap,
    /// Link put in pages.
    pub runbook: Option<String>,
    /// Who gets status messages (not part of escalation).
    pub stakeholders: Vec<String>,
    /// A missed call from a paged user counts as an acknowledgement.
    pub missed_call_ack: bool,
    /// When set, pages of this route use only these channels (a rule for another channel is
    /// skipped).
    pub channels: Option<Vec<Channel>>,
}

impl Route {
    /// True when the route takes an alert with these facts.
    pub fn matches(&self, facts: &AlertFacts<'_>) -> bool {
        let Some(m) = &self.matcher else {
            return true;
        };
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&m.service, facts.service)
            && eq(&m.source, facts.source)
            && eq(&m.routing_key, facts.routing_key)
            && (m.severity.is_empty() || m.severity.contains(&facts.severity))
    }

    /// Whether this route lets pages use `channel`.
    pub fn allows(&self, channel: Channel) -> bool {
        self.channels
            .as_ref()
            .is_none_or(|list| list.contains(&channel))
    }
}

/// The facts about an alert that routing looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertFacts<'a> {
    /// The alert's service, if it named one.
    pub service: Option<&'a str>,
    /// Its severity.
    pub severity: Severity,
    /// The sending system, if known.
    pub source: Option<&'a str>,
    /// A PagerDuty routing key, if given.
    pub routing_key: Option<&'a str>,
}

/// The route an alert follows: the first that matches. `None` when no route matches and there
/// is no default route (config validation warns of that; the incident is recorded as unrouted
/// and flagged as paging nobody).
pub fn route_for<'r>(routes: &'r [Route], facts: &AlertFacts<'_>) -> Option<&'r Route> {
    routes.iter().find(|r| r.matches(facts))
}

/// Checks route order: a default route (no `match`) must be the last, or later routes could
/// never match. Returns the first offending route.
pub fn check_routes(routes: &[Route]) -> Result<(), Error> {
    match routes.iter().position(|r| r.matcher.is_none()) {
        Some(i) if i + 1 < routes.len() => Err(Error::DefaultRouteNotLast {
            route: routes[i].id.clone(),
            shadowed: routes[i + 1].id.clone(),
        }),
        _ => Ok(()),
    }
}

/// What can be wrong with escalation config. Each variant names the policy or route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `repeat = 0`.
    #[error(
        "policy {policy:?}: repeat must be at least 1 (the total number of runs through the steps)"
    )]
    ZeroRepeat { policy: String },
    /// No steps.
    #[error("policy {policy:?} has no steps; expected at least one [[policies.steps]]")]
    NoSteps { policy: String },
    /// A step with neither users nor schedules.
    #[error("policy {policy:?} step {step} names nobody; expected users or schedules")]
    EmptyStep { policy: String, step: usize },
    /// A default route (no `match`) before other routes, which could then never match.
    #[error("route {route:?} has no match (it is a default route) but route {shadowed:?} comes after it; the default route must come last")]
    DefaultRouteNotLast { route: String, shadowed: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn route(id: &str, matcher: Option<RouteMatch>) -> Route {
        Route {
            id: id.into(),
            policy: "default".into(),
            matcher,
            ack_timeout: None,
            pre_page_delay: Duration::ZERO,
            urgency: UrgencyMap::default(),
            runbook: None,
            stakeholders: vec![],
            missed_call_ack: false,
            channels: None,
        }
    }

    fn facts(service: Option<&'static str>, severity: Severity) -> AlertFacts<'static> {
        AlertFacts {
            service,
            severity,
            source: None,
            routing_key: None,
        }
    }

    #[test]
    fn first_matching_route_wins_and_default_catches_the_rest() {
        let routes = vec![
            route(
                "database",
                Some(RouteMatch {
                    service: Some("db".into()),
                    severity: vec![Severity::Critical, Severity::Error],
                    ..Default::default()
                }),
            ),
            route(
                "grafana",
                Some(RouteMatch {
                    source: Some("grafana".into()),
                    ..Default::default()
                }),
            ),
            route(
                "pd",
                Some(RouteMatch {
                    routing_key: Some("R0UT1NG".into()),
                    ..Default::default()
                }),
            ),
            route("default", None),
        ];
        check_routes(&routes).unwrap();
        let cases = [
            (facts(Some("db"), Severity::Critical), "database"),
            (facts(Some("db"), Severity::Error), "database"),
            (facts(Some("db"), Severity::Warning), "default"),
            (facts(Some("DB"), Severity::Critical), "default"),
            (facts(None, Severity::Critical), "default"),
            (
                AlertFacts {
                    source: Some("grafana"),
                    ..facts(Some("db"), Severity::Info)
                },
                "grafana",
            ),
            (
                AlertFacts {
                    source: Some("grafana"),
                    ..facts(Some("db"), Severity::Critical)
                },
                "database",
            ),
            (
                AlertFacts {
                    routing_key: Some("R0UT1NG"),
                    ..facts(None, Severity::Info)
                },
                "pd",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(
                route_for(&routes, &f).map(|r| r.id.as_str()),
                Some(want),
                "{f:?}"
            );
        }
        assert!(route_for(&routes[..1], &facts(None, Severity::Info)).is_none());
    }

    #[test]
    fn default_route_must_be_last() {
        let routes = vec![
            route("default", None),
            route("late", Some(RouteMatch::default())),
        ];
        let err = check_routes(&routes).unwrap_err().to_string();
        assert!(
            err.contains("\"default\"") && err.contains("\"late\""),
            "{err}"
        );
    }

    #[test]
    fn urgency_map_defaults_and_overrides() {
        let mut m = UrgencyMap::default();
        assert_eq!(m.urgency(Severity::Critical), Urgency::High);
        assert_eq!(m.urgency(Severity::Error), Urgency::High);
        assert_eq!(m.urgency(Severity::Warning), Urgency::Low);
        assert_eq!(m.urgency(Severity::Info), Urgency::Low);
        m.set(Severity::Warning, Urgency::High);
        assert_eq!(m.urgency(Severity::Warning), Urgency::High);
    }

    #[test]
    fn policy_new_checks_invariants() {
        let step = |users: &[&str]| Step {
            users: users.iter().map(|u| u.to_string()).collect(),
            schedules: vec![],
            wait: Duration::from_secs(600),
        };
        assert!(matches!(
            Policy::new("p", "p", 0, vec![step(&["a"])]),
            Err(Error::ZeroRepeat { .. })
        ));
        assert!(matches!(
            Policy::new("p", "p", 1, vec![]),
            Err(Error::NoSteps { .. })
        ));
        assert!(matches!(
            Policy::new("p", "p", 1, vec![step(&["a"]), step(&[])]),
            Err(Error::EmptyStep { step: 2, .. })
        ));
        let p = Policy::new(
            "p",
            "p",
            1,
            vec![
                Step {
                    schedules: vec!["a".into(), "b".into()],
                    ..step(&[])
                },
                Step {
                    schedules: vec!["b".into()],
                    ..step(&["x"])
                },
            ],
        )
        .unwrap();
        assert_eq!(p.schedule_ids(), vec!["a", "b"]);
    }
}
