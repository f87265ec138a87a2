//! Read-only queries over what already happened, for post-incident reports and on-call stats.
//!
//! The outbox row says where a page stands now; the timeline says when it got there. A report
//! needs both: when the page was first handed to the network (`page-sent`) and when the handset
//! confirmed it (`page-delivered`, from the SMS status report). These functions join the two and
//! never write, so they can run in any transaction (or a read-only connection).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

use super::kinds::{EventKind, OutboxState, PageKind};
use super::Tx;
use super::{from_ms, ms};
use crate::incident::{Incident, IncidentId};

/// One outbox row with its delivery evidence, as a report shows it.
///
/// `address` is the raw phone number or email address as stored: whoever renders it for people
/// must mask it (see `report::mask_address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRecord {
    /// Outbox row id.
    pub id: i64,
    /// A page, a digest, a status update, a reply or an outbound notification.
    pub kind: PageKind,
    /// The incident the row is about (`None` for digests: see the report's own incident).
    pub incident_id: Option<IncidentId>,
    pub user_id: Option<String>,
    /// The channel the row is on now (`sms`, `voice`, `email`): after a fallback, the last one.
    pub channel: String,
    pub address: String,
    pub state: OutboxState,
    /// The modem message reference(s) of an SMS, or the SMTP/call evidence the sender kept.
    pub reference: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// First time it was handed over (the first `page-sent` event), if it was.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the delivery report said it reached the handset, if one did.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl PageRecord {
    /// True when the page reached the network or the mail relay (sent or delivered).
    pub fn was_sent(&self) -> bool {
        self.state.was_sent() || self.sent_at.is_some()
    }
}

const PAGE_COLUMNS: &str = "o.id, o.kind, o.incident_id, o.user_id, o.channel, o.address, \
    o.state, o.reference, o.attempts, o.last_error, o.created_at, o.updated_at";

fn page_from_row(r: &Row<'_>) -> rusqlite::Result<PageRecord> {
    Ok(PageRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        incident_id: r.get(2)?,
        user_id: r.get(3)?,
        channel: r.get(4)?,
        address: r.get(5)?,
        state: r.get(6)?,
        reference: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        created_at: from_ms(r.get(10)?),
        updated_at: from_ms(r.get(11)?),
        sent_at: None,
        delivered_at: None,
    })
}

/// First `page-sent` and first `page-delivered` time (ms) per outbox id.
type Evidence = HashMap<i64, (Option<i64>, Option<i64>)>;

/// The [`Evidence`] from the events `events_sql` selects (`outbox_id, kind, at` rows).
fn evidence(conn: &Tx, events_sql: &str, param: i64) -> rusqlite::Result<Evidence> {
    let mut out = Evidence::new();
    let mut stmt = conn.prepare_cached(events_sql)?;
    let rows = stmt.query_map([param], |r| {
        Ok((
            r.get::<_, Option<i64>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (Some(id), kind, at) = row? else { continue };
        let e = out.entry(id).or_default();
        let slot = if EventKind::parse(&kind) == Some(EventKind::PageSent) {
            &mut e.0
        } else {
            &mut e.1
        };
        *slot = Some(slot.map_or(at, |t| t.min(at)));
    }
    Ok(out)
}

fn attach(pages: &mut [PageRecord], ev: &Evidence) {
    for p in pages {
        if let Some((sent, delivered)) = ev.get(&p.id) {
            p.sent_at = sent.map(from_ms);
            p.delivered_at = delivered.map(from_ms);
        }
    }
}

/// Every outbox row about incident `id`: its own pages and status updates, and the digests that
/// listed it. Oldest first.
pub fn pages_for_incident(conn: &Tx, id: IncidentId) -> rusqlite::Result<Vec<PageRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PAGE_COLUMNS} FROM outbox o WHERE o.incident_id = ?1 \
         OR o.id IN (SELECT outbox_id FROM outbox_items WHERE incident_id = ?1) ORDER BY o.id"
    ))?;
    let mut pages: Vec<PageRecord> = stmt
        .query_map([id], page_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let ev = evidence(
        conn,
        "SELECT json_extract(data, '$.outbox_id'), kind, at FROM events \
         WHERE incident_id = ?1 AND kind IN ('page-sent', 'page-delivered')",
        id,
    )?;
    attach(&mut pages, &ev);
    Ok(pages)
}

/// Incidents first seen at or after `since`, oldest first, at most `limit`.
pub fn incidents_since(
    conn: &Tx,
    since: DateTime<Utc>,
    limit: usize,
) -> rusqlite::Result<Vec<Incident>> {
    let ids: Vec<IncidentId> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM incidents WHERE first_seen >= ?1 ORDER BY id LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![ms(since), limit], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(i) = super::queries::incident(conn, id)? {
            out.push(i);
        }
    }
    Ok(out)
}

/// At most `limit` pages to people (kinds `page` and `digest`) created at or after `since`, with
/// their evidence.
/// Oldest first.
pub fn pages_since(
    conn: &Tx,
    since: DateTime<Utc>,
    limit: usize,
) -> rusqlite::Result<Vec<PageRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PAGE_COLUMNS} FROM outbox o \
         WHERE o.created_at >= ?1 AND o.kind IN ('page', 'digest') ORDER BY o.id LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut pages: Vec<PageRecord> = stmt
        .query_map(params![ms(since), limit], page_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    // Events of a page come after its row was created, so the same lower bound finds them all.
    let ev = evidence(
        conn,
        "SELECT json_extract(data, '$.outbox_id'), kind, at FROM events \
         WHERE at >= ?1 AND kind IN ('page-sent', 'page-delivered')",
        ms(since),
    )?;
    attach(&mut pages, &ev);
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Actor, Channel, Severity};
    use crate::store::outbox::{self, Attempt, NewPage, PageKind};
    use crate::store::schema::migrate;
    use crate::store::{AlertAction, AlertInput};
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    #[test]
    fn a_page_carries_its_sent_and_delivered_times_and_digests_count() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let c = Tx::owned(c);
        let input = AlertInput {
            action: AlertAction::Trigger,
            dedup_key: Some("k".into()),
            summary: "disk".into(),
            severity: Severity::Critical,
            source: None,
            service: Some("db".into()),
            details: serde_json::Value::Null,
            links: vec![],
            route: None,
            policy: None,
            pre_page_delay: std::time::Duration::ZERO,
            page: false,
            actor: Actor::new("t", "http"),
        };
        let inc = crate::store::queries::apply_alert(&c, &input, t(0))
            .unwrap()
            .incident()
            .unwrap()
            .id;
        let new = |kind, incident_id| NewPage {
            kind,
            incident_id,
            user_id: Some("alice".into()),
            channel: Channel::Sms,
            address: "+4915100000011".into(),
            subject: None,
            body: "x".into(),
            priority: 3,
            due_at: t(0),
        };
        let id = outbox::enqueue(&c, &new(PageKind::Page, Some(inc)), t(0)).unwrap();
        let digest = outbox::enqueue(&c, &new(PageKind::Digest, None), t(0)).unwrap();
        outbox::add_item(&c, digest, inc).unwrap();
        let p = outbox::claim(&c, Channel::Sms, t(1), std::time::Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_eq!(p.id, id);
        outbox::finish(
            &c,
            &p,
            &Attempt::Sent {
                reference: Some("17".into()),
                detail: "mr 17".into(),
            },
            t(1),
        )
        .unwrap();
        outbox::delivered(
            &c,
            "17",
            "",
            outbox::Report::Delivered,
            "ok",
            t(2),
            |_, _| None,
        )
        .unwrap();

        let pages = pages_for_incident(&c, inc).unwrap();
        assert_eq!(pages.len(), 2, "its own page and the digest listing it");
        assert_eq!(pages[0].state, "delivered");
        assert_eq!(pages[0].reference.as_deref(), Some("17"));
        assert_eq!(pages[0].sent_at, Some(t(1)));
        assert_eq!(pages[0].delivered_at, Some(t(2)));
        assert!(pages[0].was_sent());
        assert_eq!(pages[1].kind, "digest");
        assert!(!pages[1].was_sent());

        let since = pages_since(&c, t(0), 100).unwrap();
        assert_eq!(since.len(), 2);
        assert_eq!(since[0].delivered_at, Some(t(2)));
        assert!(pages_since(&c, t(5), 100).unwrap().is_empty());
        assert_eq!(incidents_since(&c, t(0), 100).unwrap().len(), 1);
        assert!(incidents_since(&c, t(1), 100).unwrap().is_empty());
    }
}
