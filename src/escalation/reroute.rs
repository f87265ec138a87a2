//! Incidents accepted while no route matched them are routed when a config that matches them
//! arrives (a reload, or a restart with a new file).
//!
//! An alert that matches no route is still recorded, with an "unrouted: nobody is paged" event
//! and no escalation row. Dropping it would lose the alert; paging it later is what the
//! operator meant by fixing the config. Only incidents that are still triggered and were recorded
//! as unrouted are taken: an acknowledged or resolved one needs nobody, and one recorded "without
//! paging" on purpose (a change event, `page = false`) stays that way.

use chrono::{DateTime, Utc};

use super::engine::row_of;
use super::{route_for, AlertFacts, EscalationState};
use crate::config::Config;
use crate::incident::IncidentId;
use crate::store::escalations;
use crate::store::events::record;
use crate::store::kinds::EventKind;
use crate::store::queries::incident;
use crate::store::{StoreError, Tx};

/// What one look at the unrouted incidents did.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rerouted {
    /// The incidents routed, with the route each took.
    pub routed: Vec<(IncidentId, String)>,
    /// Open incidents that still match no route: nobody is paged for them.
    pub left: Vec<IncidentId>,
}

/// Routes every open unrouted incident that a route of `config` now matches: sets its route,
/// starts its escalation (after the route's pre-page delay, counted from `now`) and notes it
/// on the timeline.
pub(crate) fn unrouted(
    conn: &Tx,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Rerouted, StoreError> {
    let ids = escalations::unrouted(conn)?;
    let mut out = Rerouted::default();
    for id in ids {
        let Some(inc) = incident(conn, id)? else {
            continue;
        };
        // The routing key of a PagerDuty event is not kept with the incident, so a route that
        // matches on it alone cannot pick the incident up here.
        let facts = AlertFacts {
            service: inc.service.as_deref(),
            severity: inc.severity,
            source: inc.source.as_deref(),
            routing_key: None,
        };
        let Some(route) = route_for(&config.routes, &facts) else {
            out.left.push(id);
            continue;
        };
        let start = EscalationState::start(now, route.pre_page_delay);
        escalations::route(conn, id, &route.id, &route.policy, &row_of(&start), now)?;
        record(
            conn,
            Some(id),
            now,
            EventKind::Routed,
            None,
            &format!(
                "the new config routes it: route {:?}, policy {:?}",
                route.id, route.policy
            ),
            Some(&serde_json::json!({ "route": route.id, "policy": route.policy })),
        )?;
        out.routed.push((id, route.id.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::incident::{Actor, Severity, Status};
    use crate::store::queries::{apply_alert, timeline, transition};
    use crate::store::{memory, AlertInput, AlertOutcome};

    const BASE: &str = r#"
[[users]]
id = "alice"
phone = "+4915100000011"
[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
"#;

    fn config(routes: &str) -> Config {
        Config::parse(&format!("{BASE}\n{routes}"), "t.toml", Path::new("/"))
            .unwrap()
            .config
    }

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(min)
    }

    /// An alert for `service` routed by `cfg` as intake does, stored at `now`.
    fn accept(c: &Tx, cfg: &Config, service: &str, page: bool, now: DateTime<Utc>) -> i64 {
        let facts = AlertFacts {
            service: Some(service),
            severity: Severity::Critical,
            source: None,
            routing_key: None,
        };
        let route = route_for(&cfg.routes, &facts);
        let a = AlertInput {
            route: route.map(|r| r.id.clone()),
            policy: route.map(|r| r.policy.clone()),
            pre_page_delay: route.map(|r| r.pre_page_delay).unwrap_or_default(),
            page,
            ..AlertInput::test_trigger(&format!("{service}-{page}"), service)
        };
        match apply_alert(c, &a, now).unwrap() {
            AlertOutcome::Created(i) => i.id,
            other => panic!("{other:?}"),
        }
    }

    fn escalation(c: &Tx, id: i64) -> Option<(String, DateTime<Utc>)> {
        escalations::of_incident(c, id)
            .unwrap()
            .map(|e| (e.policy, e.row.due.unwrap()))
    }

    #[test]
    fn a_matching_config_routes_what_was_unrouted_once() {
        let c = memory();
        let old = config("[[routes]]\nid = \"db\"\npolicy = \"p\"\nmatch = { service = \"db\" }\n");
        let web = accept(&c, &old, "web", true, t(0));
        let quiet = accept(&c, &old, "web-quiet", false, t(0));
        let acked = accept(&c, &old, "web-acked", true, t(0));
        transition(
            &c,
            acked,
            Status::Acknowledged,
            &Actor::new("alice", "sms"),
            t(0),
        )
        .unwrap();
        assert_eq!(escalation(&c, web), None);
        // The old config still matches nothing, and says so.
        let r = unrouted(&c, &old, t(1)).unwrap();
        assert!(r.routed.is_empty());
        assert_eq!(r.left, vec![web]);

        let new = config("[[routes]]\nid = \"all\"\npolicy = \"p\"\npre_page_delay = \"2m\"\n");
        let r = unrouted(&c, &new, t(5)).unwrap();
        assert_eq!(r.routed, vec![(web, "all".to_string())]);
        assert!(r.left.is_empty());
        assert_eq!(escalation(&c, web), Some(("p".into(), t(7))));
        let inc = incident(&c, web).unwrap().unwrap();
        assert_eq!(inc.route.as_deref(), Some("all"));
        let kinds: Vec<EventKind> = timeline(&c, web)
            .unwrap()
            .into_iter()
            .filter_map(|e| e.kind.known())
            .collect();
        assert_eq!(kinds.last(), Some(&EventKind::Routed), "{kinds:?}");
        // Recorded-without-paging and acknowledged incidents are left alone.
        assert_eq!(escalation(&c, quiet), None);
        assert_eq!(escalation(&c, acked), None);
        // A second reload routes nothing twice.
        assert_eq!(unrouted(&c, &new, t(6)).unwrap(), Rerouted::default());
    }
}
