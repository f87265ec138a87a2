//! Escalation (contract placeholder until the `oncall` branch lands).

use std::time::Duration;

use crate::incident::{Channel, Severity, Urgency};

/// How a person is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRule {
    pub urgency: Urgency,
    pub channel: Channel,
    pub after: Duration,
}

/// Defaults.
pub fn default_rules() -> Vec<NotificationRule> {
    vec![
        NotificationRule {
            urgency: Urgency::High,
            channel: Channel::Sms,
            after: Duration::ZERO,
        },
        NotificationRule {
            urgency: Urgency::High,
            channel: Channel::Voice,
            after: Duration::from_secs(120),
        },
        NotificationRule {
            urgency: Urgency::High,
            channel: Channel::Email,
            after: Duration::from_secs(300),
        },
        NotificationRule {
            urgency: Urgency::Low,
            channel: Channel::Email,
            after: Duration::ZERO,
        },
    ]
}

/// A step.
#[derive(Debug, Clone)]
pub struct Step {
    pub users: Vec<String>,
    pub schedules: Vec<String>,
    pub wait: Duration,
}

/// A policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub name: String,
    pub repeat: u32,
    pub steps: Vec<Step>,
}

/// Route matcher.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub service: Option<String>,
    pub severity: Vec<Severity>,
    pub source: Option<String>,
    pub routing_key: Option<String>,
}

/// Severity to urgency.
#[derive(Debug, Clone)]
pub struct UrgencyMap([Urgency; 4]);

impl Default for UrgencyMap {
    fn default() -> Self {
        UrgencyMap([Urgency::Low, Urgency::Low, Urgency::High, Urgency::High])
    }
}

impl UrgencyMap {
    /// Sets one.
    pub fn set(&mut self, s: Severity, u: Urgency) {
        self.0[s as usize] = u;
    }
}

/// A route.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub policy: String,
    pub matcher: Option<RouteMatch>,
    pub ack_timeout: Option<Duration>,
    pub pre_page_delay: Duration,
    pub urgency: UrgencyMap,
    pub runbook: Option<String>,
    pub stakeholders: Vec<String>,
    pub missed_call_ack: bool,
    pub channels: Option<Vec<Channel>>,
}

/// Facts about an alert that routes match on.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    pub service: Option<&'a str>,
    pub severity: Severity,
    pub source: Option<&'a str>,
    pub routing_key: Option<&'a str>,
}

/// First matching route.
pub fn route_for<'r>(routes: &'r [Route], facts: &AlertFacts<'_>) -> Option<&'r Route> {
    routes.iter().find(|r| match &r.matcher {
        None => true,
        Some(m) => {
            m.service
                .as_deref()
                .is_none_or(|s| facts.service == Some(s))
                && (m.severity.is_empty() || m.severity.contains(&facts.severity))
                && m.source.as_deref().is_none_or(|s| facts.source == Some(s))
                && m.routing_key
                    .as_deref()
                    .is_none_or(|k| facts.routing_key == Some(k))
        }
    })
}
