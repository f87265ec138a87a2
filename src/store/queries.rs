//! The incident rules as SQL over one connection: every function takes `now` and runs inside the
//! caller's transaction, so the store task decides when to commit (group commit) and tests can run
//! them against an in-memory database at any instant.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::events::record;
use super::kinds::EventKind;
use super::Tx;
use super::{AlertAction, AlertInput, AlertOutcome, ChangeInput, ListFilter, StoreError};
use crate::incident::{
    Actor, Incident, IncidentId, Link, Severity, Status, TimelineEvent, TimelineKind, Transition,
};

pub use super::{from_ms, ms};

const INCIDENT_COLUMNS: &str = "id, dedup_key, status, severity, summary, source, service, route, \
     details, links, alert_count, first_seen, last_seen, acknowledged_at, acknowledged_by, \
     acknowledged_via, resolved_at, resolved_by, resolved_via";

fn incident_from_row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    let parse_err = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let status: String = r.get(2)?;
    let severity: String = r.get(3)?;
    let details: String = r.get(8)?;
    let links: String = r.get(9)?;
    let transition = |at: Option<i64>, by: Option<String>, via: Option<String>| {
        at.map(|at| Transition {
            at: from_ms(at),
            by: by.unwrap_or_default(),
            via: via.unwrap_or_default(),
        })
    };
    Ok(Incident {
        id: r.get(0)?,
        dedup_key: r.get(1)?,
        status: status
            .parse::<Status>()
            .map_err(|e| parse_err(2, e.to_string()))?,
        severity: severity
            .parse::<Severity>()
            .map_err(|e| parse_err(3, e.to_string()))?,
        summary: r.get(4)?,
        source: r.get(5)?,
        service: r.get(6)?,
        route: r.get(7)?,
        details: serde_json::from_str(&details).map_err(|e| parse_err(8, e.to_string()))?,
        links: serde_json::from_str::<Vec<Link>>(&links)
            .map_err(|e| parse_err(9, e.to_string()))?,
        alert_count: r.get(10)?,
        first_seen: from_ms(r.get(11)?),
        last_seen: from_ms(r.get(12)?),
        acknowledged: transition(r.get(13)?, r.get(14)?, r.get(15)?),
        resolved: transition(r.get(16)?, r.get(17)?, r.get(18)?),
    })
}

/// The incident with this id.
pub(crate) fn incident(conn: &Tx, id: IncidentId) -> rusqlite::Result<Option<Incident>> {
    conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
    ))?
    .query_row([id], incident_from_row)
    .optional()
}

/// The open incident with this dedup key, if any.
pub(crate) fn open_by_key(conn: &Tx, key: &str) -> rusqlite::Result<Option<Incident>> {
    conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE dedup_key = ?1 AND status <> 'resolved'"
    ))?
    .query_row([key], incident_from_row)
    .optional()
}

/// The open incident alert `a` (keyed `key`) belongs to: the one open under its key, else one
/// of its service opened under the key an earlier version derived for it (see
/// [`AlertInput::earlier_key`]), so an upgrade does not open and page a second incident for an
/// alert already open.
fn open_for(conn: &Tx, a: &AlertInput, key: &str) -> rusqlite::Result<Option<Incident>> {
    if let Some(open) = open_by_key(conn, key)? {
        return Ok(Some(open));
    }
    let Some(earlier) = a.earlier_key() else {
        return Ok(None);
    };
    Ok(open_by_key(conn, &earlier)?.filter(|i| i.service == a.service))
}

/// The most recent incident with this dedup key, open or not.
fn latest_by_key(conn: &Tx, key: &str) -> rusqlite::Result<Option<Incident>> {
    conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE dedup_key = ?1 ORDER BY id DESC LIMIT 1"
    ))?
    .query_row([key], incident_from_row)
    .optional()
}

/// Moves the incidents' times after `now` `back` ms earlier after the wall clock was stepped back
/// (see `store::rewind`). They were stamped on the clock that ran ahead, and work still to do is
/// reckoned from them: a standby's hold ends a grace after the incident was first seen, a
/// heartbeat is watched again a window after its incident was resolved, flap damping counts
/// reopenings since a resolution. Left ahead, each of those would wait the size of the step
/// longer.
pub(super) fn rewind(conn: &Tx, back: i64, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let now = ms(now);
    let mut moved = 0;
    for sql in [
        "UPDATE incidents SET first_seen = first_seen - ?1 WHERE first_seen > ?2",
        "UPDATE incidents SET last_seen = last_seen - ?1 WHERE last_seen > ?2",
        "UPDATE incidents SET acknowledged_at = acknowledged_at - ?1 WHERE acknowledged_at > ?2",
        "UPDATE incidents SET resolved_at = resolved_at - ?1 WHERE resolved_at > ?2",
    ] {
        moved += conn.execute(sql, params![back, now])?;
    }
    Ok(moved)
}

/// Incidents, newest first.
pub(crate) fn list(conn: &Tx, filter: ListFilter, limit: usize) -> rusqlite::Result<Vec<Incident>> {
    let where_clause = match filter {
        ListFilter::Open => "WHERE status <> 'resolved'",
        ListFilter::All => "",
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents {where_clause} ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], incident_from_row)?;
    rows.collect()
}

/// The timeline of one incident, oldest first.
pub(crate) fn timeline(conn: &Tx, id: IncidentId) -> rusqlite::Result<Vec<TimelineEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, kind, actor, via, message, data FROM events WHERE incident_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        let data: Option<String> = r.get(6)?;
        Ok(TimelineEvent {
            id: r.get(0)?,
            at: from_ms(r.get(1)?),
            kind: TimelineKind::from(r.get::<_, String>(2)?),
            actor: r.get(3)?,
            via: r.get(4)?,
            message: r.get(5)?,
            data: data
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}

/// How the timeline keeps repeats: at most one `repeated` row per window of this length of an
/// incident's life (counted from its first alert), written by the first repeat in the window.
pub const REPEAT_NOTE_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

/// Whether a repeat of `open` (already counted: `alert_count` and `last_seen` are this repeat's)
/// whose previous alert came at `previous` gets a timeline row.
///
/// The incident row always has the exact count and the last time seen; the timeline is for
/// people reading what happened, and a storm repeating one alert thousands of times a minute
/// would bury the acknowledgement and the pages under identical rows (and cost a row insert per
/// alert). So the timeline shows the first repeat, then the first repeat in each later
/// [`REPEAT_NOTE_WINDOW`] of the incident's life, each with the count so far and that alert's
/// summary: enough to see that the alert kept coming, when, and how often.
fn notes_repeat(open: &Incident, previous: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let window = |t: DateTime<Utc>| {
        (t - open.first_seen).num_milliseconds().max(0) / REPEAT_NOTE_WINDOW.num_milliseconds()
    };
    open.alert_count == 2 || window(now) > window(previous)
}

/// Applies one alert: trigger creates or bumps, acknowledge/resolve act on the open incident.
pub(crate) fn apply_alert(
    conn: &Tx,
    a: &AlertInput,
    now: DateTime<Utc>,
) -> Result<AlertOutcome, StoreError> {
    let key = a.dedup_key();
    match a.action {
        AlertAction::Trigger => match open_for(conn, a, &key)? {
            Some(open) => Ok(AlertOutcome::Repeated(repeat(conn, open, a, now)?)),
            None => Ok(AlertOutcome::Created(open_incident(conn, &key, a, now)?)),
        },
        AlertAction::Acknowledge | AlertAction::Resolve => {
            let Some(open) = open_for(conn, a, &key)? else {
                return Ok(match latest_by_key(conn, &key)? {
                    Some(inc) => AlertOutcome::Unchanged(inc),
                    None => AlertOutcome::NotFound(key),
                });
            };
            let to = if a.action == AlertAction::Resolve {
                Status::Resolved
            } else {
                Status::Acknowledged
            };
            let (inc, changed) = transition(conn, open.id, to, &a.actor, now)?;
            Ok(if changed {
                AlertOutcome::Changed(inc)
            } else {
                AlertOutcome::Unchanged(inc)
            })
        }
    }
}

/// A trigger for an incident that is open: the count and last-seen time on its row (one update,
/// always exact), and a timeline row only when [`notes_repeat`] says so.
fn repeat(
    conn: &Tx,
    mut open: Incident,
    a: &AlertInput,
    now: DateTime<Utc>,
) -> Result<Incident, StoreError> {
    conn.prepare_cached(
        "UPDATE incidents SET alert_count = alert_count + 1, last_seen = ?2 WHERE id = ?1",
    )?
    .execute(params![open.id, ms(now)])?;
    let previous = open.last_seen;
    open.alert_count += 1;
    open.last_seen = now;
    if notes_repeat(&open, previous, now) {
        record(
            conn,
            Some(open.id),
            now,
            EventKind::Repeated,
            Some(&a.actor),
            &format!(
                "alert repeated ({} in all): {}",
                open.alert_count, a.summary
            ),
            None,
        )?;
    }
    Ok(open)
}

/// A trigger with no open incident: the incident, its `triggered` (and maybe `flapping`) rows
/// and its paging state, in the caller's transaction, so an accepted incident always has an
/// escalation row or a timeline row saying why it has none.
fn open_incident(
    conn: &Tx,
    key: &str,
    a: &AlertInput,
    now: DateTime<Utc>,
) -> Result<Incident, StoreError> {
    conn.prepare_cached(
        "INSERT INTO incidents (dedup_key, status, severity, summary, source, service, route, \
         details, links, alert_count, first_seen, last_seen) \
         VALUES (?1,'triggered',?2,?3,?4,?5,?6,?7,?8,1,?9,?9)",
    )?
    .execute(params![
        key,
        a.severity.as_str(),
        a.summary,
        a.source,
        a.service,
        a.route,
        a.details.to_string(),
        serde_json::to_string(&a.links).unwrap_or_else(|_| "[]".into()),
        ms(now),
    ])?;
    let id = conn.last_insert_rowid();
    // Flap damping's other half: a key that keeps reopening is counted on the timeline.
    let reopened: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM incidents WHERE dedup_key=?1 AND status='resolved' AND resolved_at>=?2",
        )?
        .query_row(params![key, ms(crate::clock::sub(now, std::time::Duration::from_secs(3600)))], |r| r.get(0))?;
    record(
        conn,
        Some(id),
        now,
        EventKind::Triggered,
        Some(&a.actor),
        &format!("{} {}", a.severity.as_short(), a.summary),
        Some(&serde_json::json!({ "route": a.route, "policy": a.policy })),
    )?;
    if reopened > 0 {
        record(
            conn,
            Some(id),
            now,
            EventKind::Flapping,
            None,
            &format!(
                "key {key:?} reopened: {reopened} incident(s) with it resolved in the last hour"
            ),
            Some(&serde_json::json!({ "reopened_last_hour": reopened })),
        )?;
    }
    paging_state(conn, id, a, now)?;
    incident(conn, id)?.ok_or(StoreError::NotFound(id))
}

/// A new incident's paging state: its first escalation row when a policy pages it, otherwise
/// the timeline row that says why nobody is paged.
fn paging_state(
    conn: &Tx,
    id: IncidentId,
    a: &AlertInput,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let note = match (&a.policy, a.page) {
        (Some(policy), true) => {
            let start = super::escalations::EscalationRow::start(now, a.pre_page_delay);
            super::escalations::insert(conn, id, policy, &start, now)?;
            return Ok(());
        }
        (None, true) => {
            tracing::error!(
                incident = id,
                service = a.service.as_deref().unwrap_or(""),
                "NOBODY WILL BE PAGED for this incident: no route or policy matched its alert"
            );
            (
                EventKind::Unrouted,
                "no route or policy matched: nobody is paged",
            )
        }
        (_, false) => (EventKind::Recorded, "recorded without paging"),
    };
    record(conn, Some(id), now, note.0, None, note.1, None)?;
    Ok(())
}

/// Moves an incident to `to` (acknowledged or resolved). Returns the incident and whether it
/// changed. Acknowledging stops escalation; both cancel queued pages for the incident, and each
/// cancelled page is shown on the timeline.
pub(crate) fn transition(
    conn: &Tx,
    id: IncidentId,
    to: Status,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(Incident, bool), StoreError> {
    let inc = incident(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let changed = match (inc.status, to) {
        (Status::Triggered, Status::Acknowledged) => {
            conn.prepare_cached(
                "UPDATE incidents SET status='acknowledged', acknowledged_at=?2, acknowledged_by=?3, \
                 acknowledged_via=?4 WHERE id=?1",
            )?
            .execute(params![id, ms(now), actor.who, actor.via])?;
            true
        }
        (Status::Triggered | Status::Acknowledged, Status::Resolved) => {
            conn.prepare_cached(
                "UPDATE incidents SET status='resolved', resolved_at=?2, resolved_by=?3, resolved_via=?4 \
                 WHERE id=?1",
            )?
            .execute(params![id, ms(now), actor.who, actor.via])?;
            true
        }
        (Status::Acknowledged, Status::Triggered) => {
            conn.prepare_cached(
                "UPDATE incidents SET status='triggered', acknowledged_at=NULL, acknowledged_by=NULL, \
                 acknowledged_via=NULL WHERE id=?1",
            )?
            .execute([id])?;
            true
        }
        _ => false,
    };
    if changed {
        record(
            conn,
            Some(id),
            now,
            EventKind::of_status(to),
            Some(actor),
            &format!("{} by {} via {}", to, actor.who, actor.via),
            None,
        )?;
        // The escalation engine sees the new status in its next pass and moves the escalation
        // on (it alone knows the route's ack timeout); it never pages an incident that is not
        // triggered, so nothing is paged after this commit. Queued pages are cancelled here.
        if to != Status::Triggered {
            let cancelled = super::outbox::cancel_for_incident(conn, id, now)?;
            if cancelled > 0 {
                record(
                    conn,
                    Some(id),
                    now,
                    EventKind::Cancelled,
                    None,
                    &format!("{cancelled} queued page(s) cancelled: incident {to}"),
                    None,
                )?;
            }
        }
    }
    let inc = incident(conn, id)?.ok_or(StoreError::NotFound(id))?;
    Ok((inc, changed))
}

/// Records a PagerDuty-style change event.
pub(crate) fn record_change(
    conn: &Tx,
    c: &ChangeInput,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO changes (at, service, source, summary, details, links) VALUES (?1,?2,?3,?4,?5,?6)",
    )?
    .execute(params![
        ms(now),
        c.service,
        c.source,
        c.summary,
        c.details.to_string(),
        serde_json::to_string(&c.links).unwrap_or_else(|_| "[]".into())
    ])?;
    Ok(conn.last_insert_rowid())
}

/// How many incidents are open, and how long the oldest unacknowledged one has waited: what
/// the panel's LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenCounts {
    pub unacked: usize,
    pub acked: usize,
    /// Age of the oldest triggered incident at the time of the read.
    pub oldest_unacked_age: Option<std::time::Duration>,
}

/// Counts the open incidents (see [`OpenCounts`]) as of `now`.
pub(crate) fn open_counts(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<OpenCounts> {
    let (unacked, acked, oldest): (i64, i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT sum(status='triggered'), sum(status='acknowledged'), \
             min(CASE WHEN status='triggered' THEN first_seen END) \
             FROM incidents WHERE status<>'resolved'",
        )?
        .query_row([], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                r.get(2)?,
            ))
        })?;
    Ok(OpenCounts {
        unacked: unacked as usize,
        acked: acked as usize,
        oldest_unacked_age: oldest.and_then(|t| (now - from_ms(t)).to_std().ok()),
    })
}

/// The incident operations the senders run, each one store job.
impl super::Store {
    /// The incidents `ids` with their timelines, as the sender renders a page about them.
    /// Runs on the writer, right after the claim, so it sees the state the claim saw.
    pub async fn page_incidents(
        &self,
        ids: Vec<IncidentId>,
    ) -> Result<Vec<(Incident, Vec<TimelineEvent>)>, StoreError> {
        self.call(move |c, _| {
            let mut out = Vec::new();
            for id in ids {
                if let Some(i) = incident(c, id)? {
                    let t = timeline(c, id)?;
                    out.push((i, t));
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::migrate;
    use chrono::TimeZone;

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        Tx::owned(c)
    }

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    #[test]
    fn a_storm_of_repeats_counts_every_alert_and_notes_one_per_window() {
        let c = db();
        let first = apply_alert(&c, &alert(AlertAction::Trigger, "k"), t(0)).unwrap();
        let id = first.incident().unwrap().id;
        let at = |ms: i64| t(0) + chrono::Duration::milliseconds(ms);
        // 1000 repeats within the first minute, then one at 4 min (same window), one at 5 min
        // 30 s (next window) and two at 12 min (the window after).
        let mut stamps: Vec<DateTime<Utc>> = (1..=1000).map(|i| at(i * 50)).collect();
        stamps.extend([t(4), at(330_000), t(12), t(12)]);
        let mut last = None;
        for now in &stamps {
            let AlertOutcome::Repeated(inc) =
                apply_alert(&c, &alert(AlertAction::Trigger, "k"), *now).unwrap()
            else {
                panic!("expected a repeat")
            };
            last = Some(inc);
        }
        let stored = incident(&c, id).unwrap().unwrap();
        let answered = last.unwrap();
        assert_eq!(stored.alert_count, 1005);
        assert_eq!(stored.last_seen, t(12));
        // What the caller is told is the stored row, though it is not read back.
        assert_eq!(
            (answered.alert_count, answered.last_seen, answered.status),
            (stored.alert_count, stored.last_seen, stored.status)
        );
        let repeats: Vec<String> = timeline(&c, id)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "repeated")
            .map(|e| e.message)
            .collect();
        assert_eq!(
            repeats,
            [
                "alert repeated (2 in all): disk full",
                "alert repeated (1003 in all): disk full",
                "alert repeated (1004 in all): disk full",
            ]
        );
    }

    fn alert(action: AlertAction, key: &str) -> AlertInput {
        AlertInput {
            action,
            dedup_key: Some(key.into()),
            summary: "disk full".into(),
            severity: Severity::Critical,
            source: Some("db1".into()),
            service: Some("db".into()),
            details: serde_json::json!({"used": "97%"}),
            links: vec![],
            route: Some("r".into()),
            policy: Some("p".into()),
            pre_page_delay: std::time::Duration::ZERO,
            page: true,
            actor: Actor::new("test", "http"),
        }
    }

    #[test]
    fn trigger_repeat_ack_resolve_retrigger() {
        let c = db();
        let AlertOutcome::Created(a) =
            apply_alert(&c, &alert(AlertAction::Trigger, "k"), t(0)).unwrap()
        else {
            panic!("expected a new incident")
        };
        assert_eq!(a.status, Status::Triggered);
        let AlertOutcome::Repeated(b) =
            apply_alert(&c, &alert(AlertAction::Trigger, "k"), t(1)).unwrap()
        else {
            panic!("expected a repeat")
        };
        assert_eq!((b.id, b.alert_count, b.last_seen), (a.id, 2, t(1)));
        let AlertOutcome::Changed(acked) =
            apply_alert(&c, &alert(AlertAction::Acknowledge, "k"), t(2)).unwrap()
        else {
            panic!("expected ack")
        };
        assert_eq!(acked.status, Status::Acknowledged);
        assert_eq!(acked.acknowledged.as_ref().unwrap().by, "test");
        // A second ack changes nothing.
        assert!(matches!(
            apply_alert(&c, &alert(AlertAction::Acknowledge, "k"), t(3)).unwrap(),
            AlertOutcome::Unchanged(_)
        ));
        let AlertOutcome::Changed(res) =
            apply_alert(&c, &alert(AlertAction::Resolve, "k"), t(4)).unwrap()
        else {
            panic!("expected resolve")
        };
        assert_eq!(res.status, Status::Resolved);
        // After resolve, the same key opens a new incident.
        let AlertOutcome::Created(again) =
            apply_alert(&c, &alert(AlertAction::Trigger, "k"), t(5)).unwrap()
        else {
            panic!("expected a new incident")
        };
        assert_ne!(again.id, a.id);
        let kinds: Vec<String> = timeline(&c, a.id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind.to_string())
            .collect();
        assert_eq!(kinds, ["triggered", "repeated", "acknowledged", "resolved"]);
        let esc: String = c
            .query_row(
                "SELECT phase FROM escalations WHERE incident_id=?1",
                [a.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            esc, "escalating",
            "the engine, not the store, moves the escalation on"
        );
    }

    #[test]
    fn ack_of_unknown_key_is_not_found() {
        let c = db();
        assert!(matches!(
            apply_alert(&c, &alert(AlertAction::Acknowledge, "nope"), t(0)).unwrap(),
            AlertOutcome::NotFound(k) if k == "nope"
        ));
    }

    #[test]
    fn derived_key_is_stable_and_depends_on_source_summary_and_service() {
        let mut a = alert(AlertAction::Trigger, "x");
        a.dedup_key = None;
        a.service = None;
        let k1 = a.dedup_key();
        assert_eq!(k1, a.dedup_key());
        // Keys of alerts without a service are as they always were.
        assert_eq!(k1, "derived-a25cf543e7087fd0");
        a.source = Some("db2".into());
        let k2 = a.dedup_key();
        assert_ne!(k1, k2);
        // The same text for another team's service is another incident.
        a.service = Some("db".into());
        let db = a.dedup_key();
        a.service = Some("web".into());
        assert_ne!(db, a.dedup_key());
        assert_ne!(db, k2);
        a.service = Some(String::new());
        assert_eq!(a.dedup_key(), k2, "an empty service is none");
    }

    /// An incident opened by an earlier version, under the key derived without the service,
    /// still takes the same alert's repeats and its resolve.
    #[test]
    fn an_incident_opened_under_the_earlier_key_is_still_the_alerts() {
        let c = db();
        let mut a = alert(AlertAction::Trigger, "x");
        a.dedup_key = None;
        let earlier = a.earlier_key().unwrap();
        let opened = match apply_alert(
            &c,
            &{
                let mut e = a.clone();
                e.dedup_key = Some(earlier.clone());
                e
            },
            t(0),
        )
        .unwrap()
        {
            AlertOutcome::Created(i) => i,
            o => panic!("{o:?}"),
        };
        assert!(
            matches!(apply_alert(&c, &a, t(1)).unwrap(), AlertOutcome::Repeated(i) if i.id == opened.id)
        );
        // Another service's alert with the same text is not it.
        let mut web = a.clone();
        web.service = Some("web".into());
        assert!(matches!(
            apply_alert(&c, &web, t(2)).unwrap(),
            AlertOutcome::Created(_)
        ));
        let mut resolve = a.clone();
        resolve.action = AlertAction::Resolve;
        assert!(
            matches!(apply_alert(&c, &resolve, t(3)).unwrap(), AlertOutcome::Changed(i) if i.id == opened.id)
        );
    }

    #[test]
    fn acknowledge_cancels_queued_pages_and_says_so() {
        let c = db();
        let AlertOutcome::Created(a) =
            apply_alert(&c, &alert(AlertAction::Trigger, "k"), t(0)).unwrap()
        else {
            panic!()
        };
        c.execute(
            "INSERT INTO outbox (incident_id, channel, address, body, priority, due_at, state, created_at, updated_at, channel_since) \
             VALUES (?1,'sms','+491',  'x', 3, 0, 'pending', 0, 0, 0)",
            [a.id],
        )
        .unwrap();
        transition(
            &c,
            a.id,
            Status::Acknowledged,
            &Actor::new("alice", "sms"),
            t(1),
        )
        .unwrap();
        let state: String = c
            .query_row("SELECT state FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(state, "cancelled");
        let last = timeline(&c, a.id).unwrap().pop().unwrap();
        assert_eq!(last.kind, "cancelled");
    }
}
