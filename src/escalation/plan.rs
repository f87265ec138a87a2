//! Who a step targets and how each person is reached: the decisions the engine executes and
//! the dry run `pagerbox simulate` prints.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::incident::{Channel, Severity, Urgency};
use crate::schedule::{OverridesBySchedule, Schedule};

use super::state::{add, next_action, Action, EscalationState, Event};
use super::{default_rules, NotificationRule, Policy, Route};

/// How to reach one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// User id.
    pub id: String,
    /// E.164 number for SMS and voice; `None` means those channels are skipped.
    pub phone: Option<String>,
    /// Email address; `None` means email is skipped.
    pub email: Option<String>,
    /// The person's rules; for an urgency they have no rule for, [`default_rules`] apply.
    pub rules: Vec<NotificationRule>,
}

impl Contact {
    /// Whether the person has an address for `channel`.
    pub fn reachable_by(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms | Channel::Voice => self.phone.is_some(),
            Channel::Email => self.email.is_some(),
        }
    }
}

/// Everything escalation needs to resolve ids: people and schedules.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    contacts: HashMap<String, Contact>,
    schedules: HashMap<String, Schedule>,
    /// The channels a transport serves and the fall-through order, when known: the dry run then
    /// moves pages off channels that are off, as the engine does ([`on_served_channels`]).
    channels: Option<(Vec<Channel>, Vec<Channel>)>,
}

impl Directory {
    /// A directory of these people and schedules (later duplicates replace earlier ones; config
    /// validation rejects duplicates before this).
    pub fn new(contacts: Vec<Contact>, schedules: Vec<Schedule>) -> Self {
        Directory {
            contacts: contacts.into_iter().map(|c| (c.id.clone(), c)).collect(),
            schedules: schedules.into_iter().map(|s| (s.id.clone(), s)).collect(),
            channels: None,
        }
    }

    /// The same directory, knowing which channels are `served` and the fall-through `order`.
    pub fn with_channels(mut self, served: Vec<Channel>, order: Vec<Channel>) -> Self {
        self.channels = Some((served, order));
        self
    }

    /// The person with this id.
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.get(id)
    }

    /// The schedule with this id.
    pub fn schedule(&self, id: &str) -> Option<&Schedule> {
        self.schedules.get(id)
    }
}

/// One person a step pages, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// User id.
    pub user: String,
    /// `"schedule primary"` (on call there) or `"user"` (named in the step).
    pub via: String,
}

/// Who step `step_index` of `policy` pages at instant `at`: each schedule's on-call person at
/// that moment (schedules first, in order), then the named users; each person once, with the
/// first reason. A schedule with nobody on call, or an unknown schedule, contributes nobody
/// (the plan reports it). An index past the end gives nobody.
pub fn step_targets(
    policy: &Policy,
    step_index: usize,
    at: DateTime<Utc>,
    directory: &Directory,
    overrides: &OverridesBySchedule,
) -> Vec<Target> {
    let Some(step) = policy.steps.get(step_index) else {
        return Vec::new();
    };
    let mut out: Vec<Target> = Vec::new();
    let mut push = |user: &str, via: String| {
        if !out.iter().any(|t| t.user == user) {
            out.push(Target {
                user: user.to_string(),
                via,
            });
        }
    };
    for id in &step.schedules {
        let Some(schedule) = directory.schedule(id) else {
            continue;
        };
        let rt = overrides.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(user) = schedule.user_at(at, rt) {
            push(user, format!("schedule {id}"));
        }
    }
    for user in &step.users {
        push(user, "user".to_string());
    }
    out
}

/// When and how a targeted person is reached: their rules for `urgency` (or the defaults for
/// that urgency if they have none), offset from `step_started_at`, in time order. Low urgency
/// never calls: voice rules are dropped. Channels the person has no address for are dropped.
pub fn pages_for_user(
    contact: &Contact,
    urgency: Urgency,
    step_started_at: DateTime<Utc>,
) -> Vec<(Channel, DateTime<Utc>)> {
    let own: Vec<NotificationRule> = contact
        .rules
        .iter()
        .filter(|r| r.urgency == urgency)
        .copied()
        .collect();
    let rules = if own.is_empty() {
        default_rules()
            .into_iter()
            .filter(|r| r.urgency == urgency)
            .collect()
    } else {
        own
    };
    let mut out: Vec<(Channel, DateTime<Utc>)> = rules
        .iter()
        .filter(|r| !(urgency == Urgency::Low && r.channel == Channel::Voice))
        .filter(|r| contact.reachable_by(r.channel))
        .map(|r| (r.channel, add(step_started_at, r.after)))
        .collect();
    out.sort_by_key(|&(channel, at)| (at, channel));
    out.dedup();
    out
}

/// Moves `pages` (from [`pages_for_user`]) off channels nobody serves: a page on a channel
/// outside `served` (email disabled, no modem) goes to the person's next channel in `order`
/// (after its own, then from the start) that is served, allowed (`allowed`, e.g. the route's
/// channel list), and reaches them. When they already get a page on that channel from these
/// rules, the two are one page at the earlier time: the substitute would only repeat a later
/// page, and dropping it would delay the first page of the step to that later one. Low urgency
/// never calls. Returns the pages (time order) and the channels that could go nowhere at all.
pub fn on_served_channels(
    pages: &[(Channel, DateTime<Utc>)],
    contact: &Contact,
    urgency: Urgency,
    served: &[Channel],
    order: &[Channel],
    allowed: impl Fn(Channel) -> bool,
) -> (Vec<(Channel, DateTime<Utc>)>, Vec<Channel>) {
    let usable = |c: Channel| {
        served.contains(&c)
            && allowed(c)
            && contact.reachable_by(c)
            && !(urgency == Urgency::Low && c == Channel::Voice)
    };
    let mut out: Vec<(Channel, DateTime<Utc>)> = pages
        .iter()
        .copied()
        .filter(|(c, _)| served.contains(c))
        .collect();
    let mut lost = Vec::new();
    for &(c, at) in pages.iter().filter(|(c, _)| !served.contains(c)) {
        let after = order.iter().position(|x| *x == c).map_or(0, |p| p + 1);
        let next = order[after.min(order.len())..]
            .iter()
            .chain(order.iter())
            .copied()
            .find(|x| *x != c && usable(*x));
        match (
            next,
            next.and_then(|n| out.iter_mut().find(|(x, _)| *x == n)),
        ) {
            (Some(_), Some(planned)) => planned.1 = planned.1.min(at),
            (Some(n), None) => out.push((n, at)),
            (None, _) => lost.push(c),
        }
    }
    out.sort_by_key(|&(channel, at)| (at, channel));
    out.dedup();
    (out, lost)
}

/// One notification the plan expects to send if nobody acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedPage {
    /// When it goes out.
    pub at: DateTime<Utc>,
    /// Step index, 0-based.
    pub step: usize,
    /// Run, 0-based.
    pub round: u32,
    /// User id.
    pub user: String,
    /// How.
    pub channel: Channel,
    /// Why this person: `"schedule primary"` or `"user"`.
    pub via: String,
}

/// The whole dry run of an incident nobody acknowledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The urgency the route gives the severity.
    pub urgency: Urgency,
    /// Every page, in time order (ties in step order).
    pub pages: Vec<PlannedPage>,
    /// When the last step's wait ends and the incident is flagged exhausted.
    pub exhausted_at: DateTime<Utc>,
    /// Steps that reach nobody, people nobody can reach, unknown ids.
    pub warnings: Vec<String>,
}

/// Plans the escalation of an incident of `severity` on `route` (whose policy is `policy`)
/// triggered at `start`, assuming nobody acknowledges. It runs the same state machine as the
/// engine ([`next_action`]), so the dry run and the real thing agree on timing. Each step's
/// targets are resolved at the instant the step starts.
pub fn plan(
    policy: &Policy,
    route: &Route,
    severity: Severity,
    directory: &Directory,
    start: DateTime<Utc>,
    runtime_overrides: &OverridesBySchedule,
) -> Plan {
    let urgency = route.urgency.urgency(severity);
    let mut pages = Vec::new();
    let mut warnings = Vec::new();
    let mut state = EscalationState::start(start, route.pre_page_delay);
    let exhausted_at = loop {
        let Some(now) = state.due() else {
            break start;
        };
        let event = match next_action(&state, policy, now) {
            Action::Page { step, round, .. } => {
                let targets = step_targets(policy, step, now, directory, runtime_overrides);
                let label = format!("run {} step {}", round + 1, step + 1);
                if targets.is_empty() {
                    warnings.push(format!("{label}: nobody to page"));
                }
                for target in targets {
                    let Some(contact) = directory.contact(&target.user) else {
                        warnings.push(format!("{label}: unknown user {:?}", target.user));
                        continue;
                    };
                    let before = pages.len();
                    let mut wanted = pages_for_user(contact, urgency, now);
                    wanted.retain(|(c, _)| route.allows(*c));
                    if let Some((served, order)) = &directory.channels {
                        wanted =
                            on_served_channels(&wanted, contact, urgency, served, order, |c| {
                                route.allows(c)
                            })
                            .0;
                    }
                    for (channel, at) in wanted {
                        pages.push(PlannedPage {
                            at,
                            step,
                            round,
                            user: target.user.clone(),
                            channel,
                            via: target.via.clone(),
                        });
                    }
                    if pages.len() == before {
                        warnings.push(format!(
                            "{label}: {} cannot be reached (no rule, address, allowed or enabled channel)",
                            target.user
                        ));
                    }
                }
                Event::Paged {
                    step,
                    round,
                    at: now,
                }
            }
            Action::Exhaust => break now,
            // Only Page and Exhaust can be due while escalating from `start`.
            _ => break now,
        };
        match state.apply(event, policy) {
            Some(next) => state = next,
            None => break now,
        }
    };
    pages.sort_by_key(|p| (p.at, p.round, p.step));
    Plan {
        urgency,
        pages,
        exhausted_at,
        warnings,
    }
}

/// The schedules some policy pages, each once, for `pagerbox check`'s gap warnings.
pub fn schedules_used<'a>(policies: &[Policy], directory: &'a Directory) -> Vec<&'a Schedule> {
    let mut out: Vec<&Schedule> = Vec::new();
    for id in policies.iter().flat_map(|p| p.schedule_ids()) {
        if let Some(s) = directory.schedule(id) {
            if !out.iter().any(|o| o.id == s.id) {
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::escalation::{RouteMatch, Step, UrgencyMap};
    use crate::schedule::{parse_local, Layer, Override, OverrideSource};

    pub(crate) fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn min(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    /// The people, schedule, policy and routes of config/pagerbox.example.toml.
    pub(crate) fn example() -> (Directory, Policy, Vec<Route>) {
        let rule = |urgency, channel, m| NotificationRule {
            urgency,
            channel,
            after: min(m),
        };
        let contacts = vec![
            Contact {
                id: "alice".into(),
                phone: Some("+4915112345678".into()),
                email: Some("alice@example.org".into()),
                rules: vec![
                    rule(Urgency::High, Channel::Sms, 0),
                    rule(Urgency::High, Channel::Voice, 2),
                    rule(Urgency::Low, Channel::Email, 0),
                ],
            },
            Contact {
                id: "bob".into(),
                phone: Some("+4915187654321".into()),
                email: Some("bob@example.org".into()),
                rules: vec![],
            },
            Contact {
                id: "carol".into(),
                phone: Some("+12025550143".into()),
                email: None,
                rules: vec![],
            },
        ];
        let layers = vec![
            Layer::new(
                "weekly",
                vec!["alice".into(), "bob".into()],
                "1w".parse().unwrap(),
                parse_local("2026-01-05T09:00").unwrap(),
                vec![],
            )
            .unwrap(),
            Layer::new(
                "business hours",
                vec!["carol".into()],
                "1d".parse().unwrap(),
                parse_local("2026-01-05T09:00").unwrap(),
                vec!["Mon-Fri 09:00-18:00".parse().unwrap()],
            )
            .unwrap(),
        ];
        let schedule = Schedule::new(
            "primary",
            "Primary on-call",
            chrono_tz::Europe::Berlin,
            layers,
            vec![],
        )
        .unwrap();
        let policy = Policy::new(
            "default",
            "Default escalation",
            2,
            vec![
                Step {
                    users: vec![],
                    schedules: vec!["primary".into()],
                    wait: min(10),
                },
                Step {
                    users: vec!["carol".into()],
                    schedules: vec![],
                    wait: min(15),
                },
            ],
        )
        .unwrap();
        let base = Route {
            id: "default".into(),
            policy: "default".into(),
            matcher: None,
            ack_timeout: None,
            pre_page_delay: Duration::ZERO,
            urgency: UrgencyMap::default(),
            runbook: None,
            stakeholders: vec![],
            missed_call_ack: false,
            channels: None,
        };
        let routes = vec![
            Route {
                id: "database".into(),
                matcher: Some(RouteMatch {
                    service: Some("db".into()),
                    severity: vec![Severity::Critical, Severity::Error],
                    ..Default::default()
                }),
                ack_timeout: Some(min(30)),
                ..base.clone()
            },
            base,
        ];
        (Directory::new(contacts, vec![schedule]), policy, routes)
    }

    #[test]
    fn pages_follow_rules_defaults_and_urgency() {
        let (dir, _, _) = example();
        let t0 = utc("2026-01-09T20:00:00Z");
        let alice = dir.contact("alice").unwrap();
        let bob = dir.contact("bob").unwrap();
        let carol = dir.contact("carol").unwrap();
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        // alice's own high rules: SMS now, voice at +2 (no email rule for high).
        assert_eq!(
            pages_for_user(alice, Urgency::High, t0),
            vec![(Channel::Sms, at(0)), (Channel::Voice, at(2))]
        );
        // bob has no rules: the defaults.
        assert_eq!(
            pages_for_user(bob, Urgency::High, t0),
            vec![
                (Channel::Sms, at(0)),
                (Channel::Voice, at(2)),
                (Channel::Email, at(5))
            ]
        );
        assert_eq!(
            pages_for_user(bob, Urgency::Low, t0),
            vec![(Channel::Email, at(0))]
        );
        // carol has no email address: email is skipped, so low urgency reaches her not at all.
        assert_eq!(
            pages_for_user(carol, Urgency::High, t0),
            vec![(Channel::Sms, at(0)), (Channel::Voice, at(2))]
        );
        assert_eq!(pages_for_user(carol, Urgency::Low, t0), vec![]);
        // Low urgency never calls, even when a rule says so.
        let caller = Contact {
            rules: vec![
                NotificationRule {
                    urgency: Urgency::Low,
                    channel: Channel::Voice,
                    after: min(0),
                },
                NotificationRule {
                    urgency: Urgency::Low,
                    channel: Channel::Sms,
                    after: min(1),
                },
            ],
            ..bob.clone()
        };
        assert_eq!(
            pages_for_user(&caller, Urgency::Low, t0),
            vec![(Channel::Sms, at(1))]
        );
    }

    #[test]
    fn step_targets_resolve_schedules_at_the_instant_and_dedup() {
        let (dir, mut policy, _) = example();
        let none = OverridesBySchedule::new();
        // Fri 21:00 CET: alice's week; business hours over.
        let got = step_targets(&policy, 0, utc("2026-01-09T20:00:00Z"), &dir, &none);
        assert_eq!(
            got,
            vec![Target {
                user: "alice".into(),
                via: "schedule primary".into()
            }]
        );
        // Fri 10:00: carol (business hours) is on call.
        let got = step_targets(&policy, 0, utc("2026-01-09T09:00:00Z"), &dir, &none);
        assert_eq!(got[0].user, "carol");
        // A step naming carol directly and via the schedule pages her once, as the schedule.
        policy.steps[0].users.push("carol".into());
        let got = step_targets(&policy, 0, utc("2026-01-09T09:00:00Z"), &dir, &none);
        assert_eq!(
            got,
            vec![Target {
                user: "carol".into(),
                via: "schedule primary".into()
            }]
        );
        // A runtime override changes who the schedule means.
        let mut rt = OverridesBySchedule::new();
        rt.insert(
            "primary".into(),
            vec![Override::new(
                Some(1),
                "bob",
                utc("2026-01-09T19:00:00Z"),
                utc("2026-01-09T23:00:00Z"),
                OverrideSource::Runtime,
            )
            .unwrap()],
        );
        let got = step_targets(&policy, 0, utc("2026-01-09T20:00:00Z"), &dir, &rt);
        assert_eq!(got[0].user, "bob");
        assert!(step_targets(&policy, 9, utc("2026-01-09T20:00:00Z"), &dir, &rt).is_empty());
    }

    #[test]
    fn plan_lists_every_page_of_every_step_and_repeat() {
        let (dir, policy, routes) = example();
        let start = utc("2026-01-09T20:00:00Z");
        let plan = plan(
            &policy,
            &routes[0],
            Severity::Critical,
            &dir,
            start,
            &OverridesBySchedule::new(),
        );
        let got: Vec<(String, u32, usize, String, Channel)> = plan
            .pages
            .iter()
            .map(|p| {
                (
                    p.at.format("%H:%M").to_string(),
                    p.round,
                    p.step,
                    p.user.clone(),
                    p.channel,
                )
            })
            .collect();
        let row = |at: &str, round, step, user: &str, ch| {
            (at.to_string(), round, step, user.to_string(), ch)
        };
        assert_eq!(
            got,
            vec![
                row("20:00", 0, 0, "alice", Channel::Sms),
                row("20:02", 0, 0, "alice", Channel::Voice),
                row("20:10", 0, 1, "carol", Channel::Sms),
                row("20:12", 0, 1, "carol", Channel::Voice),
                row("20:25", 1, 0, "alice", Channel::Sms),
                row("20:27", 1, 0, "alice", Channel::Voice),
                row("20:35", 1, 1, "carol", Channel::Sms),
                row("20:37", 1, 1, "carol", Channel::Voice),
            ]
        );
        assert_eq!(plan.exhausted_at, utc("2026-01-09T20:50:00Z"));
        assert_eq!(plan.urgency, Urgency::High);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn plan_for_low_urgency_respects_route_channels_and_warns() {
        let (dir, policy, mut routes) = example();
        let start = utc("2026-01-09T20:00:00Z");
        routes[1].pre_page_delay = min(1);
        let plan = plan(
            &policy,
            &routes[1],
            Severity::Warning,
            &dir,
            start,
            &OverridesBySchedule::new(),
        );
        assert_eq!(plan.urgency, Urgency::Low);
        assert!(plan.pages.iter().all(|p| p.channel == Channel::Email));
        assert_eq!(
            plan.pages.len(),
            2,
            "alice by email in each run; carol has no email"
        );
        assert_eq!(
            plan.pages[0].at,
            utc("2026-01-09T20:01:00Z"),
            "after the pre-page delay"
        );
        assert_eq!(plan.exhausted_at, utc("2026-01-09T20:51:00Z"));
        assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("carol cannot be reached"));
        // A route limited to email drops SMS and voice even at high urgency.
        routes[1].channels = Some(vec![Channel::Email]);
        let plan = super::plan(
            &policy,
            &routes[1],
            Severity::Critical,
            &dir,
            start,
            &OverridesBySchedule::new(),
        );
        assert!(plan.pages.iter().all(|p| p.channel == Channel::Email));
    }

    #[test]
    fn the_dry_run_moves_pages_off_a_channel_that_is_off() {
        let (dir, policy, routes) = example();
        let dir = dir.with_channels(
            vec![Channel::Sms, Channel::Voice],
            vec![Channel::Sms, Channel::Voice, Channel::Email],
        );
        let plan = plan(
            &policy,
            &routes[1],
            Severity::Warning,
            &dir,
            utc("2026-01-09T20:00:00Z"),
            &OverridesBySchedule::new(),
        );
        assert_eq!(plan.urgency, Urgency::Low);
        assert!(!plan.pages.is_empty());
        assert!(
            plan.pages.iter().all(|p| p.channel == Channel::Sms),
            "low urgency by SMS instead of email, never a call: {:?}",
            plan.pages
        );
    }

    #[test]
    fn schedules_used_lists_each_once() {
        let (dir, policy, _) = example();
        let used = schedules_used(&[policy.clone(), policy], &dir);
        assert_eq!(
            used.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            vec!["primary"]
        );
    }
}
