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

/// How deep an alert's `details` are kept. Every reader of an incident's JSON (the CLI, scripts,
/// the report) parses it with some nesting limit (serde_json's is 128, and an incident wraps its
/// details in a few levels of its own); an alert nested deeper than that would be taken but make
/// every listing that shows it unreadable. Real senders nest a handful of levels.
pub const DETAILS_DEPTH: usize = 32;

/// `value` with whatever lies deeper than `depth` levels replaced by a string saying so: the
/// alert is kept and paged, its absurd part shortened. Every way an alert enters the store goes
/// through it: [`route_alert`] here, and the pair's copy of the peer's alert.
pub fn bounded(value: Value, depth: usize) -> Value {
    match value {
        Value::Array(_) | Value::Object(_) if depth == 0 => {
            Value::String(format!("(cut: nested deeper than {DETAILS_DEPTH} levels)"))
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| bounded(v, depth - 1)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, bounded(v, depth - 1)))
                .collect(),
        ),
        other => other,
    }
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
        details: bounded(p.details, DETAILS_DEPTH),
        links: p.links,
        route: route.map(|r| r.id.clone()),
        policy: route.map(|r| r.policy.clone()),
        pre_page_delay: route.map(|r| r.pre_page_delay).unwrap_or_default(),
        page: true,
        actor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(Value::from(1), |v, _| Value::Array(vec![v]))
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn details_are_kept_to_a_depth_every_reader_can_parse() {
        let shallow = serde_json::json!({"labels": {"a": [1, {"b": 2}]}, "n": 3});
        assert_eq!(bounded(shallow.clone(), DETAILS_DEPTH), shallow);
        assert_eq!(
            bounded(nested(DETAILS_DEPTH), DETAILS_DEPTH),
            nested(DETAILS_DEPTH)
        );
        let cut = bounded(nested(120), DETAILS_DEPTH);
        assert_eq!(depth(&cut), DETAILS_DEPTH);
        assert!(
            cut.to_string().contains("nested deeper than 32 levels"),
            "{cut}"
        );
    }
}
