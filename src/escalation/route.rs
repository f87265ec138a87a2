//! Which route and policy an alert follows: the one step every intake path (HTTP, UDP, the
//! provider-compatible endpoints) and pagerbox's own alerts (self-test, SMS `PAGE`) share
//! between reading an alert and handing it to the store.

use serde_json::Value;

use crate::config::policy::{route_for, AlertFacts};
use crate::config::Config;
use crate::incident::{Actor, Link, Severity};
use crate::store::{AlertAction, AlertInput};

/// An alert read from any format, before routing.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedAlert {
    pub action: AlertAction,
    pub dedup_key: Option<String>,
    pub summary: String,
    pub severity: Severity,
    pub source: Option<String>,
    pub service: Option<String>,
    pub details: Value,
    pub links: Vec<Link>,
    /// PagerDuty routing key, if the format has one.
    pub routing_key: Option<String>,
}

/// Routes one alert with `config`: the first matching route gives the policy and pre-page delay.
pub fn route_alert(config: &Config, p: ParsedAlert, actor: Actor) -> AlertInput {
    let facts = AlertFacts {
        service: p.service.as_deref(),
        severity: p.severity,
        source: p.source.as_deref(),
        routing_key: p.routing_key.as_deref(),
    };
    let route = route_for(&config.routes, &facts);
    AlertInput {
        action: p.action,
        dedup_key: p.dedup_key,
        summary: p.summary,
        severity: p.severity,
        source: p.source,
        service: p.service,
        details: p.details,
        links: p.links,
        route: route.map(|r| r.id.clone()),
        policy: route.map(|r| r.policy.clone()),
        pre_page_delay: route.map(|r| r.pre_page_delay).unwrap_or_default(),
        page: true,
        actor,
    }
}
