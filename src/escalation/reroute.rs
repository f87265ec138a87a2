//! Incidents accepted while no route matched them are routed when a config that matches them
//! arrives (a reload, or a restart with a new file).
//!
//! An alert that matches no route is still recorded, with an "unrouted: nobody is paged" event
//! and no escalation row. Dropping it would lose the alert; paging it later is what the
//! operator meant by fixing the config. Only incidents that are still triggered and were recorded
//! as unrouted are taken: an acknowledged or resolved one needs nobody, and one recorded "without
//! paging" on purpose (a change event, `page = false`) stays that way.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::{route_for, AlertFacts};
use crate::config::Config;
use crate::incident::IncidentId;
use crate::store::events::record;
use crate::store::kinds::EventKind;
use crate::store::queries::incident;
use crate::store::{ms, StoreError};

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
    conn: &Connection,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Rerouted, StoreError> {
    let ids: Vec<IncidentId> = conn
        .prepare_cached(
            "SELECT i.id FROM incidents i WHERE i.status = 'triggered' AND i.route IS NULL \
             AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.incident_id = i.id) \
             AND EXISTS (SELECT 1 FROM events v WHERE v.incident_id = i.id AND v.kind = 'unrouted') \
             ORDER BY i.id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
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
        let due = crate::clock::add(now, route.pre_page_delay);
        // escalation::EscalationState::start: step 0 of run 0, due after the delay.
        conn.prepare_cached(
            "INSERT INTO escalations (incident_id, policy, phase, next_step, next_round, due_at, since, updated_at) \
             VALUES (?1, ?2, 'escalating', 0, 0, ?3, ?4, ?4)",
        )?
        .execute(params![id, route.policy, ms(due), ms(now)])?;
        conn.prepare_cached("UPDATE incidents SET route = ?2 WHERE id = ?1")?
            .execute(params![id, route.id])?;
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
    use crate::incident::{Actor, Severity};
    use crate::store::queries::apply_alert;
    use crate::store::schema::{migrate, MIGRATIONS};
    use crate::store::{AlertAction, AlertInput, AlertOutcome};

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
    fn accept(c: &Connection, cfg: &Config, service: &str, page: bool, now: DateTime<Utc>) -> i64 {
        let facts = AlertFacts {
            service: Some(service),
            severity: Severity::Critical,
            source: None,
            routing_key: None,
        };
        let route = route_for(&cfg.routes, &facts);
        let a = AlertInput {
            action: AlertAction::Trigger,
            dedup_key: Some(format!("{service}-{page}")),
            summary: format!("{service} down"),
            severity: Severity::Critical,
            source: None,
            service: Some(service.into()),
            details: serde_json::Value::Null,
            links: vec![],
            route: route.map(|r| r.id.clone()),
            policy: route.map(|r| r.policy.clone()),
            pre_page_delay: route.map(|r| r.pre_page_delay).unwrap_or_default(),
            page,
            actor: Actor::new("test", "api"),
        };
        match apply_alert(c, &a, now).unwrap() {
            AlertOutcome::Created(i) => i.id,
            other => panic!("{other:?}"),
        }
    }

    fn escalation(c: &Connection, id: i64) -> Option<(String, i64)> {
        c.query_row(
            "SELECT policy, due_at FROM escalations WHERE incident_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
    }

    #[test]
    fn a_matching_config_routes_what_was_unrouted_once() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), MIGRATIONS.len() as u32);
        let old = config("[[routes]]\nid = \"db\"\npolicy = \"p\"\nmatch = { service = \"db\" }\n");
        let web = accept(&c, &old, "web", true, t(0));
        let quiet = accept(&c, &old, "web-quiet", false, t(0));
        let acked = accept(&c, &old, "web-acked", true, t(0));
        c.execute(
            "UPDATE incidents SET status = 'acknowledged' WHERE id = ?1",
            [acked],
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
        assert_eq!(escalation(&c, web), Some(("p".into(), ms(t(7)))));
        let inc = incident(&c, web).unwrap().unwrap();
        assert_eq!(inc.route.as_deref(), Some("all"));
        let kinds: Vec<String> = c
            .prepare("SELECT kind FROM events WHERE incident_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([web], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("routed"),
            "{kinds:?}"
        );
        // Recorded-without-paging and acknowledged incidents are left alone.
        assert_eq!(escalation(&c, quiet), None);
        assert_eq!(escalation(&c, acked), None);
        // A second reload routes nothing twice.
        assert_eq!(unrouted(&c, &new, t(6)).unwrap(), Rerouted::default());
    }
}
