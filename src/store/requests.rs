//! Outcomes of provider requests that are answered before anyone can see what they did.
//!
//! Opsgenie's Alert API answers create/acknowledge/close/add-note with 202 and a `requestId`, and
//! its clients (the SDKs, scripts) ask `GET /v2/alerts/requests/{requestId}` what became of it:
//! which alert was created, or "Alert does not exist". pagerbox processes the request before it
//! answers, so the outcome is written in the same transaction as the incident change and kept for
//! [`KEEP`]; older outcomes are pruned whenever a new one is written, so the table stays small.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::Tx;
use super::{from_ms, ms};
use crate::incident::IncidentId;

/// How long an outcome can be asked for.
pub const KEEP: chrono::Duration = chrono::Duration::days(7);

/// What one request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOutcome {
    /// The id given to the sender.
    pub request_id: String,
    /// The provider's name for the action (`Create`, `Acknowledge`, `Close`, `AddNote`).
    pub action: String,
    /// False when the request named no existing alert.
    pub success: bool,
    /// Words for a person: `Created alert`, `Alert does not exist`...
    pub status: String,
    /// The incident it touched.
    pub incident_id: Option<IncidentId>,
    /// That incident's dedup key.
    pub alias: Option<String>,
}

/// A stored outcome and when it was processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    pub outcome: RequestOutcome,
    pub processed_at: DateTime<Utc>,
}

/// Records an outcome (inside the caller's transaction) and prunes outcomes older than [`KEEP`].
pub fn record(conn: &Tx, now: DateTime<Utc>, o: &RequestOutcome) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM integration_requests WHERE at < ?1")?
        .execute([ms(now - KEEP)])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO integration_requests \
         (request_id, at, action, success, status, incident_id, alias) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?
    .execute(params![
        o.request_id,
        ms(now),
        o.action,
        o.success,
        o.status,
        o.incident_id,
        o.alias
    ])?;
    Ok(())
}

/// The outcome of `request_id`, if it is still kept.
pub fn find(conn: &Tx, request_id: &str) -> rusqlite::Result<Option<StoredRequest>> {
    conn.prepare_cached(
        "SELECT request_id, at, action, success, status, incident_id, alias \
         FROM integration_requests WHERE request_id = ?1",
    )?
    .query_row([request_id], |r| {
        Ok(StoredRequest {
            outcome: RequestOutcome {
                request_id: r.get(0)?,
                action: r.get(2)?,
                success: r.get(3)?,
                status: r.get(4)?,
                incident_id: r.get(5)?,
                alias: r.get(6)?,
            },
            processed_at: from_ms(r.get(1)?),
        })
    })
    .optional()
}

/// The incident a provider names by its dedup key: the open one, else the latest one (so a note
/// or a repeated close on a resolved alert still finds it).
pub fn incident_by_key(conn: &Tx, key: &str) -> rusqlite::Result<Option<IncidentId>> {
    conn.prepare_cached(
        "SELECT id FROM incidents WHERE dedup_key = ?1 \
         ORDER BY status = 'resolved', id DESC LIMIT 1",
    )?
    .query_row([key], |r| r.get(0))
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Actor, Severity};
    use crate::store::{queries, schema::migrate, AlertAction, AlertInput};
    use chrono::TimeZone;

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        Tx::owned(c)
    }

    fn outcome(id: &str) -> RequestOutcome {
        RequestOutcome {
            request_id: id.into(),
            action: "Create".into(),
            success: true,
            status: "Created alert".into(),
            incident_id: Some(1),
            alias: Some("k".into()),
        }
    }

    #[test]
    fn outcomes_are_found_until_they_are_pruned() {
        let c = db();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        record(&c, t0, &outcome("a")).unwrap();
        let found = find(&c, "a").unwrap().unwrap();
        assert_eq!(found.outcome, outcome("a"));
        assert_eq!(found.processed_at, t0);
        assert!(find(&c, "b").unwrap().is_none());
        // A week later, writing another outcome prunes the first.
        record(&c, t0 + KEEP + chrono::Duration::seconds(1), &outcome("b")).unwrap();
        assert!(find(&c, "a").unwrap().is_none());
        assert!(find(&c, "b").unwrap().is_some());
    }

    #[test]
    fn a_key_names_its_open_incident_before_older_resolved_ones() {
        let c = db();
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        let alert = |action| AlertInput {
            action,
            dedup_key: Some("k".into()),
            summary: "s".into(),
            severity: Severity::Error,
            source: None,
            service: None,
            details: serde_json::Value::Null,
            links: vec![],
            route: None,
            policy: None,
            pre_page_delay: std::time::Duration::ZERO,
            page: false,
            actor: Actor::new("t", "test"),
        };
        assert_eq!(incident_by_key(&c, "k").unwrap(), None);
        queries::apply_alert(&c, &alert(AlertAction::Trigger), now).unwrap();
        queries::apply_alert(&c, &alert(AlertAction::Resolve), now).unwrap();
        assert_eq!(
            incident_by_key(&c, "k").unwrap(),
            Some(1),
            "the latest, resolved"
        );
        queries::apply_alert(&c, &alert(AlertAction::Trigger), now).unwrap();
        assert_eq!(incident_by_key(&c, "k").unwrap(), Some(2), "the open one");
    }
}
