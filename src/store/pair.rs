//! The pair's SQL (cargo feature `ha`): what a box reads to name a page the way its peer does,
//! and the outbox moves a coordinated page makes that a single box never does (held back for
//! the peer, sent by the peer).
//!
//! Nothing here decides anything: the pair module decides, this reads and writes rows.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::events::record;
use super::kinds::EventKind;
use super::outbox::{Page, PageKind};
use super::Tx;
use super::{from_ms, ms};
use crate::incident::{Channel, IncidentId};

/// What names a page the same way on both boxes, read from this box's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFacts {
    pub dedup_key: String,
    /// When this box opened the incident (its own clock; the pair agrees on one start).
    pub first_seen: DateTime<Utc>,
    pub user: String,
    /// The channel the escalation chose for it (a fall-through on one box does not rename it).
    pub channel: Channel,
    /// The escalation step that queued it (0-based), from the step's timeline entry.
    pub step: u32,
    /// The n-th page of this incident to this person on this channel (1-based): a repeat of
    /// the policy, or a later step paging the same person again, is a new attempt.
    pub ordinal: u32,
}

/// The facts of a page to a person about one incident; `None` for every other row (digests,
/// replies, status updates, outbound notifications), which each box sends on its own.
///
/// One look-up by key for a row an escalation step queued (its step and ordinal are on the
/// row, [`outbox::enqueue_step_page`](super::outbox::enqueue_step_page)); rows without them
/// (queued before they were kept) derive them from the outbox and the timeline.
pub fn page_facts(conn: &Tx, page: &Page) -> rusqlite::Result<Option<PageFacts>> {
    let (PageKind::Page, Some(incident), Some(user)) = (page.kind, page.incident_id, &page.user_id)
    else {
        return Ok(None);
    };
    let channel = page.written_for.unwrap_or(page.channel);
    let Some((dedup_key, first_seen, step, ordinal)) = conn
        .prepare_cached(
            "SELECT i.dedup_key, i.first_seen, o.step, o.ordinal FROM incidents i \
             LEFT JOIN outbox o ON o.id=?2 WHERE i.id=?1",
        )?
        .query_row(params![incident, page.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let ordinal = match ordinal {
        Some(n) => n,
        None => derived_ordinal(conn, page, incident, user, channel)?,
    };
    let step = match step {
        Some(s) => Some(s),
        None => derived_step(conn, page, incident)?,
    };
    Ok(Some(PageFacts {
        dedup_key,
        first_seen: from_ms(first_seen),
        user: user.clone(),
        channel,
        step: u32::try_from(step.unwrap_or(0)).unwrap_or(0),
        ordinal: u32::try_from(ordinal).unwrap_or(u32::MAX),
    }))
}

/// The ordinal of a row that does not carry it: its place among the incident's pages to `user`
/// on `channel`, counted as [`outbox::enqueue_step_page`](super::outbox::enqueue_step_page)
/// counts when it queues one.
fn derived_ordinal(
    conn: &Tx,
    page: &Page,
    incident: IncidentId,
    user: &str,
    channel: Channel,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM outbox WHERE incident_id=?1 AND user_id=?2 AND kind='page' \
         AND coalesce(written_for, channel)=?3 AND id<=?4",
    )?
    .query_row(params![incident, user, channel.as_str(), page.id], |r| {
        r.get(0)
    })
}

/// The step of a row that does not carry it, from the timeline: the step's "paging ..." entry
/// is written right after the pages it queued.
fn derived_step(conn: &Tx, page: &Page, incident: IncidentId) -> rusqlite::Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT json_extract(data, '$.step') FROM events WHERE incident_id=?1 AND kind=?2 \
             AND json_extract(data, '$.step') IS NOT NULL AND id > coalesce((SELECT max(id) FROM events \
             WHERE incident_id=?1 AND kind=?3 AND json_extract(data, '$.outbox_id')=?4), 0) \
             ORDER BY id LIMIT 1",
        )?
        .query_row(
            params![
                incident,
                EventKind::Escalation.as_str(),
                EventKind::PageQueued.as_str(),
                page.id
            ],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// What names a message other than a page the same way on both boxes, read from this box's
/// rows (incidents by dedup key and local start; the pair settles their names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFacts {
    /// A status update to a stakeholder about an incident: the `ordinal`-th status row to that
    /// address about it.
    Status {
        dedup_key: String,
        first_seen: DateTime<Utc>,
        address: String,
        channel: Channel,
        ordinal: u32,
    },
    /// A digest and the incidents it lists.
    Digest {
        user: String,
        channel: Channel,
        incidents: Vec<(String, DateTime<Utc>)>,
    },
    /// A status message about no incident (a shift notice).
    Notice {
        address: String,
        channel: Channel,
        text: String,
    },
    /// A chat/webhook notification: the `ordinal`-th row of `event` about an incident to the
    /// destination `destination` (its config id; where it points is the config's).
    Outbound {
        dedup_key: String,
        first_seen: DateTime<Utc>,
        destination: String,
        event: String,
        ordinal: u32,
    },
}

/// The facts of a digest, status or outbound row; `None` for pages (see [`page_facts`]) and
/// replies (they answer an SMS that reached one box).
pub fn message_facts(conn: &Tx, page: &Page) -> rusqlite::Result<Option<MessageFacts>> {
    let channel = page.written_for.unwrap_or(page.channel);
    let incident = |id| -> rusqlite::Result<Option<(String, DateTime<Utc>)>> {
        conn.prepare_cached("SELECT dedup_key, first_seen FROM incidents WHERE id=?1")?
            .query_row([id], |r| Ok((r.get::<_, String>(0)?, from_ms(r.get(1)?))))
            .optional()
    };
    Ok(match (page.kind, page.incident_id) {
        (PageKind::Status, Some(id)) => {
            let Some((dedup_key, first_seen)) = incident(id)? else {
                return Ok(None);
            };
            let ordinal: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM outbox WHERE incident_id=?1 AND kind='status' \
                     AND address=?2 AND id<=?3",
                )?
                .query_row(params![id, page.address, page.id], |r| r.get(0))?;
            Some(MessageFacts::Status {
                dedup_key,
                first_seen,
                address: page.address.clone(),
                channel,
                ordinal: u32::try_from(ordinal).unwrap_or(u32::MAX),
            })
        }
        (PageKind::Status, None) => Some(MessageFacts::Notice {
            address: page.address.clone(),
            channel,
            text: page.body.clone(),
        }),
        (PageKind::Digest, _) => {
            let Some(user) = &page.user_id else {
                return Ok(None);
            };
            let mut incidents = Vec::with_capacity(page.items.len());
            for id in &page.items {
                if let Some(i) = incident(*id)? {
                    incidents.push(i);
                }
            }
            Some(MessageFacts::Digest {
                user: user.clone(),
                channel,
                incidents,
            })
        }
        (PageKind::Outbound, Some(id)) => {
            let Some((dedup_key, first_seen)) = incident(id)? else {
                return Ok(None);
            };
            let event = page.subject.clone().unwrap_or_default();
            let ordinal: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM outbox WHERE incident_id=?1 AND kind='outbound' \
                     AND address=?2 AND coalesce(subject,'')=?3 AND id<=?4",
                )?
                .query_row(params![id, page.address, event, page.id], |r| r.get(0))?;
            Some(MessageFacts::Outbound {
                dedup_key,
                first_seen,
                destination: page.address.clone(),
                event,
                ordinal: u32::try_from(ordinal).unwrap_or(u32::MAX),
            })
        }
        _ => None,
    })
}

/// Puts a claimed page back, due at `due_at`, as if this claim had not happened (its attempt
/// is not counted): the peer holds the page's claim or goes first. Only the attempt holding
/// the row changes it; `false` when it no longer does.
pub fn hold_for_peer(
    conn: &Tx,
    page: &Page,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox SET state='pending', due_at=?3, attempts=max(attempts-1, 0), \
             channel_attempts=max(channel_attempts-1, 0), lease_until=NULL, updated_at=?4 \
             WHERE id=?1 AND state='sending' AND attempts=?2",
        )?
        .execute(params![page.id, page.attempts, ms(due_at), ms(now)])?;
    Ok(n > 0)
}

/// Marks a claimed page as sent by the peer box (it holds the `sent` record in etcd), on the
/// row and on the timeline, so the box's own history says who paged. Only the attempt holding
/// the row changes it.
pub fn sent_by_peer(conn: &Tx, page: &Page, now: DateTime<Utc>) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox SET state='sent', reference=NULL, last_error=NULL, lease_until=NULL, \
             attempts=max(attempts-1, 0), channel_attempts=max(channel_attempts-1, 0), updated_at=?3 \
             WHERE id=?1 AND state='sending' AND attempts=?2",
        )?
        .execute(params![page.id, page.attempts, ms(now)])?;
    if n == 0 {
        return Ok(false);
    }
    if let (Some(inc), PageKind::Outbound) = (page.incident_id, page.kind) {
        let event = page.subject.as_deref().unwrap_or_default();
        record(
            conn,
            Some(inc),
            now,
            EventKind::OutboundSent,
            None,
            &format!("outbound {event} to {} sent by the peer box", page.address),
            Some(
                &serde_json::json!({ "outbox_id": page.id, "destination": page.address, "by_peer": true }),
            ),
        )?;
    } else if let Some(inc) = page.incident_id {
        let who = page.user_id.as_deref().unwrap_or(&page.address);
        record(
            conn,
            Some(inc),
            now,
            EventKind::PageSent,
            None,
            &format!("{} to {who} sent by the peer box", page.channel),
            Some(
                &serde_json::json!({ "outbox_id": page.id, "channel": page.channel, "by_peer": true }),
            ),
        )?;
    }
    Ok(true)
}

/// What happened to an incident on this box that the peer must learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Acknowledged,
    Resolved,
    /// Back to triggered after an ack (the route's ack timeout, or "escalate now"): the ack the
    /// pair holds is withdrawn.
    Retriggered,
}

/// An ack, resolve or return to triggered made on this box, to publish to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTransition {
    /// The timeline entry's id: the cursor for the next read.
    pub event_id: i64,
    pub dedup_key: String,
    pub first_seen: DateTime<Utc>,
    pub change: Change,
    pub at: DateTime<Utc>,
}

/// Acks, resolves and returns to triggered (a `triggered` entry after the incident's first
/// entry) recorded after timeline entry `after`, except those applied from the peer
/// (`via = 'pair'`), oldest first, at most `limit`.
pub fn local_transitions(
    conn: &Tx,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<LocalTransition>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, i.dedup_key, i.first_seen, e.kind, e.at FROM events e \
         JOIN incidents i ON i.id = e.incident_id \
         WHERE e.id > ?1 AND coalesce(e.via, '') <> 'pair' \
           AND (e.kind IN (?2, ?3) OR (e.kind = ?4 AND EXISTS \
             (SELECT 1 FROM events f WHERE f.incident_id = e.incident_id AND f.id < e.id))) \
         ORDER BY e.id LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![
            after,
            EventKind::Acknowledged.as_str(),
            EventKind::Resolved.as_str(),
            EventKind::Triggered.as_str(),
            limit as i64
        ],
        |r| {
            let kind: String = r.get(3)?;
            let change = if kind == EventKind::Resolved.as_str() {
                Change::Resolved
            } else if kind == EventKind::Acknowledged.as_str() {
                Change::Acknowledged
            } else {
                Change::Retriggered
            };
            Ok(LocalTransition {
                event_id: r.get(0)?,
                dedup_key: r.get(1)?,
                first_seen: from_ms(r.get(2)?),
                change,
                at: from_ms(r.get(4)?),
            })
        },
    )?;
    rows.collect()
}

/// An incident opened on this box by an alert, with the path it came in through.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalTrigger {
    /// The timeline entry's id: the cursor for the next read.
    pub event_id: i64,
    /// How the alert came in (`udp`, `sms`, `http`, ...).
    pub via: String,
    pub incident: crate::incident::Incident,
}

/// Incidents opened by an alert after timeline entry `after`, except those opened from the
/// peer's copy (`via = 'pair'`), oldest first, at most `limit`; the pair decides which to share.
pub fn local_triggers(conn: &Tx, after: i64, limit: usize) -> rusqlite::Result<Vec<LocalTrigger>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, incident_id, coalesce(via, '') FROM events \
         WHERE id > ?1 AND kind = ?2 AND incident_id IS NOT NULL AND coalesce(via, '') <> 'pair' \
         ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(
            params![after, EventKind::Triggered.as_str(), limit as i64],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, IncidentId>(1)?, r.get(2)?)),
        )?
        .collect::<rusqlite::Result<Vec<(i64, IncidentId, String)>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (event_id, id, via) in rows {
        if let Some(incident) = super::queries::incident(conn, id)? {
            out.push(LocalTrigger {
                event_id,
                via,
                incident,
            });
        }
    }
    Ok(out)
}

/// A runtime override added or deleted on this box (HTTP API, `TAKE`), as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOverride {
    /// The timeline entry's id: the cursor for the next read.
    pub event_id: i64,
    pub schedule: String,
    pub user: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub created_by: Option<String>,
    pub deleted: bool,
}

/// Overrides added or deleted after timeline entry `after`, except those applied from the
/// peer (`via = 'pair'`), oldest first, at most `limit`.
pub fn local_overrides(
    conn: &Tx,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<LocalOverride>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, o.schedule_id, o.user_id, o.from_at, o.until_at, o.created_by, \
         o.deleted_at IS NOT NULL FROM events e \
         JOIN overrides o ON o.id = json_extract(e.data, '$.override_id') \
         WHERE e.id > ?1 AND e.kind IN (?2, ?3) AND coalesce(e.via, '') <> 'pair' \
         ORDER BY e.id LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            after,
            EventKind::Override.as_str(),
            EventKind::OverrideDeleted.as_str(),
            limit as i64
        ],
        |r| {
            Ok(LocalOverride {
                event_id: r.get(0)?,
                schedule: r.get(1)?,
                user: r.get(2)?,
                from: from_ms(r.get(3)?),
                until: from_ms(r.get(4)?),
                created_by: r.get(5)?,
                deleted: r.get(6)?,
            })
        },
    )?;
    rows.collect()
}

/// Applies an override the peer added or deleted: the same (schedule, person, from, until) is
/// added here unless it already is, or deleted here. Noted on the timeline as the peer's
/// (`via = 'pair'`), so it is not shared back. Returns whether anything changed.
#[allow(clippy::too_many_arguments)]
pub fn apply_peer_override(
    conn: &Tx,
    schedule: &str,
    user: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    created_by: Option<&str>,
    deleted: bool,
    peer: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let existing: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM overrides WHERE schedule_id=?1 AND user_id=?2 AND from_at=?3 \
             AND until_at=?4 AND deleted_at IS NULL ORDER BY id LIMIT 1",
        )?
        .query_row(params![schedule, user, ms(from), ms(until)], |r| r.get(0))
        .optional()?;
    let actor = crate::incident::Actor::new(peer, "pair");
    match (existing, deleted) {
        (Some(id), true) => {
            conn.prepare_cached("UPDATE overrides SET deleted_at=?2 WHERE id=?1")?
                .execute(params![id, ms(now)])?;
            record(
                conn,
                None,
                now,
                EventKind::OverrideDeleted,
                Some(&actor),
                &format!("override {id} of {schedule} deleted on the peer box"),
                Some(&serde_json::json!({ "override_id": id })),
            )?;
            Ok(true)
        }
        (None, false) => {
            // A zero-length or reversed span cannot be stored (and was refused on the peer).
            if until <= from {
                return Ok(false);
            }
            let by = created_by.unwrap_or(peer);
            let id = super::overrides::insert(conn, schedule, user, from, until, by, now)?;
            record(
                conn,
                None,
                now,
                EventKind::Override,
                Some(&actor),
                &format!("{user} on call for {schedule} from {from} until {until} (by {by}, on the peer box)"),
                Some(&serde_json::json!({ "override_id": id })),
            )?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The newest timeline entry's id: where publishing starts (what happened before the daemon
/// started was published then, or is in the heal log of the run that made it).
pub fn last_event_id(conn: &Tx) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(id), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

/// An incident as it opened on this box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub id: IncidentId,
    pub dedup_key: String,
    pub first_seen: DateTime<Utc>,
}

/// The not yet resolved incidents with an id above `after`, oldest first, at most `limit`.
pub fn opened_since(conn: &Tx, after: IncidentId, limit: usize) -> rusqlite::Result<Vec<Opened>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, dedup_key, first_seen FROM incidents WHERE id > ?1 AND status<>'resolved' \
         ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        Ok(Opened {
            id: r.get(0)?,
            dedup_key: r.get(1)?,
            first_seen: from_ms(r.get(2)?),
        })
    })?;
    rows.collect()
}

/// The not yet resolved incidents with `dedup_key` (newest first), with when each opened.
pub fn open_with_key(
    conn: &Tx,
    dedup_key: &str,
) -> rusqlite::Result<Vec<(IncidentId, DateTime<Utc>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, first_seen FROM incidents WHERE dedup_key=?1 AND status<>'resolved' ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([dedup_key], |r| Ok((r.get(0)?, from_ms(r.get(1)?))))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::{claim, enqueue, enqueue_step_page, NewPage};
    use chrono::TimeZone;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen) \
             VALUES (1,'db/down','triggered','critical','s',?1,?1)",
            [ms(t(0))],
        )
        .unwrap();
        Tx::owned(c)
    }

    /// A page to `user` on `channel` about incident 1, due now.
    fn new_page(user: &str, channel: Channel) -> NewPage {
        NewPage {
            kind: PageKind::Page,
            incident_id: Some(1),
            user_id: Some(user.into()),
            channel,
            address: "+4915100000001".into(),
            subject: None,
            body: "b".into(),
            priority: 3,
            due_at: t(0),
        }
    }

    /// The timeline entry an escalation step writes after its pages.
    fn step_entry(c: &Tx, step: usize) {
        record(
            c,
            Some(1),
            t(0),
            EventKind::Escalation,
            None,
            "step",
            Some(&serde_json::json!({"step": step, "round": 0})),
        )
        .unwrap();
    }

    fn queue(c: &Tx, user: &str, channel: Channel, step: u32) -> i64 {
        let id = enqueue(c, &new_page(user, channel), t(0)).unwrap();
        step_entry(c, step as usize);
        id
    }

    #[test]
    fn facts_name_a_page_by_step_person_channel_and_ordinal() {
        let c = db();
        let a0 = queue(&c, "alice", Channel::Sms, 0);
        let b1 = queue(&c, "bob", Channel::Sms, 1);
        let a2 = queue(&c, "alice", Channel::Sms, 2);
        let facts = |id| {
            let p = crate::store::outbox::page(&c, id).unwrap().unwrap();
            page_facts(&c, &p).unwrap().unwrap()
        };
        let f = facts(a0);
        assert_eq!(
            (f.dedup_key.as_str(), f.first_seen, f.step, f.ordinal),
            ("db/down", t(0), 0, 1)
        );
        assert_eq!((facts(b1).step, facts(b1).ordinal), (1, 1));
        assert_eq!((facts(a2).step, facts(a2).ordinal), (2, 2));
    }

    #[test]
    fn facts_kept_on_the_row_are_those_derived_from_the_timeline() {
        let c = db();
        let new = new_page;
        // Steps as the escalation writes them: the pages, then the step's entry. A page queued
        // outside a step counts towards the ordinals after it.
        let mut ids = Vec::new();
        let mut odd = None;
        for (step, pages) in [
            (0, vec![("alice", Channel::Sms), ("alice", Channel::Voice)]),
            (1, vec![("bob", Channel::Sms), ("alice", Channel::Sms)]),
            (0, vec![("alice", Channel::Sms)]),
            (2, vec![("alice", Channel::Voice), ("bob", Channel::Sms)]),
            (3, vec![("alice", Channel::Sms)]),
        ] {
            if step == 3 {
                odd = Some(enqueue(&c, &new("alice", Channel::Sms), t(0)).unwrap());
            }
            for (user, channel) in pages {
                ids.push(enqueue_step_page(&c, &new(user, channel), step, t(0)).unwrap());
            }
            step_entry(&c, step);
        }
        let facts = |c: &Tx| -> Vec<PageFacts> {
            ids.iter()
                .map(|id| {
                    let p = crate::store::outbox::page(c, *id).unwrap().unwrap();
                    page_facts(c, &p).unwrap().unwrap()
                })
                .collect()
        };
        let kept = facts(&c);
        let named: Vec<(u32, u32)> = kept.iter().map(|f| (f.step, f.ordinal)).collect();
        assert_eq!(
            named,
            [
                (0, 1),
                (0, 1),
                (1, 1),
                (1, 2),
                (0, 3),
                (2, 2),
                (2, 2),
                (3, 5)
            ]
        );
        let unkept: Option<i64> = c
            .query_row("SELECT step FROM outbox WHERE id=?1", [odd], |r| r.get(0))
            .unwrap();
        assert_eq!(unkept, None);
        c.execute("UPDATE outbox SET step=NULL, ordinal=NULL", [])
            .unwrap();
        assert_eq!(facts(&c), kept);
    }

    #[test]
    fn held_and_peer_sent_rows_change_only_while_held() {
        let c = db();
        let id = queue(&c, "alice", Channel::Sms, 0);
        let lease = Duration::from_secs(60);
        let p = claim(&c, Channel::Sms, t(1), lease).unwrap().unwrap();
        assert!(hold_for_peer(&c, &p, t(5), t(1)).unwrap());
        // Held: not due before t(5), and the attempt was not counted.
        assert!(claim(&c, Channel::Sms, t(2), lease).unwrap().is_none());
        let p = claim(&c, Channel::Sms, t(5), lease).unwrap().unwrap();
        assert_eq!((p.id, p.attempts), (id, 1));
        // A stale attempt changes nothing.
        let mut stale = p.clone();
        stale.attempts = 7;
        assert!(!sent_by_peer(&c, &stale, t(6)).unwrap());
        assert!(sent_by_peer(&c, &p, t(6)).unwrap());
        let row = crate::store::outbox::page(&c, id).unwrap().unwrap();
        assert_eq!(row.state.as_str(), "sent");
        let msg: String = c
            .query_row(
                "SELECT message FROM events WHERE kind=?1 ORDER BY id DESC LIMIT 1",
                [EventKind::PageSent.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(msg, "sms to alice sent by the peer box");
    }

    #[test]
    fn an_outbound_row_is_named_by_incident_destination_event_and_ordinal() {
        let c = db();
        let row = |destination: &str, event: &str| {
            let id = enqueue(
                &c,
                &NewPage {
                    kind: PageKind::Outbound,
                    incident_id: Some(1),
                    user_id: None,
                    channel: Channel::Sms,
                    address: destination.into(),
                    subject: Some(event.into()),
                    body: "{}".into(),
                    priority: 0,
                    due_at: t(0),
                },
                t(0),
            )
            .unwrap();
            crate::store::outbox::page(&c, id).unwrap().unwrap()
        };
        let trigger = row("chat", "incident.triggered");
        let other = row("hook", "incident.triggered");
        let ack = row("chat", "incident.acknowledged");
        let again = row("chat", "incident.triggered");
        let facts = |p: &Page| match message_facts(&c, p).unwrap() {
            Some(MessageFacts::Outbound {
                dedup_key,
                first_seen,
                destination,
                event,
                ordinal,
            }) => (dedup_key, first_seen, destination, event, ordinal),
            other => panic!("{other:?}"),
        };
        let f =
            |d: &str, e: &str, n| ("db/down".to_string(), t(0), d.to_string(), e.to_string(), n);
        assert_eq!(facts(&trigger), f("chat", "incident.triggered", 1));
        assert_eq!(facts(&other), f("hook", "incident.triggered", 1));
        assert_eq!(facts(&ack), f("chat", "incident.acknowledged", 1));
        assert_eq!(facts(&again), f("chat", "incident.triggered", 2));
        // Found sent by the peer: noted as an outbound notification, not as a page.
        c.execute(
            "UPDATE outbox SET state='sending', attempts=1 WHERE id=?1",
            [trigger.id],
        )
        .unwrap();
        let held = crate::store::outbox::page(&c, trigger.id).unwrap().unwrap();
        assert!(sent_by_peer(&c, &held, t(1)).unwrap());
        let msg: String = c
            .query_row(
                "SELECT message FROM events WHERE kind=?1 ORDER BY id DESC LIMIT 1",
                [EventKind::OutboundSent.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            msg,
            "outbound incident.triggered to chat sent by the peer box"
        );
    }

    #[test]
    fn local_transitions_skip_what_came_from_the_peer() {
        let c = db();
        let start = last_event_id(&c).unwrap();
        let ack = crate::incident::Actor::new("alice", "sms");
        crate::store::queries::transition(&c, 1, crate::incident::Status::Acknowledged, &ack, t(3))
            .unwrap();
        let peer = crate::incident::Actor::new("b", "pair");
        crate::store::queries::transition(&c, 1, crate::incident::Status::Resolved, &peer, t(4))
            .unwrap();
        let got = local_transitions(&c, start, 10).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].change, Change::Acknowledged);
        assert_eq!((got[0].dedup_key.as_str(), got[0].at), ("db/down", t(3)));
        assert!(open_with_key(&c, "db/down").unwrap().is_empty());
    }

    /// An incident acknowledged and then triggered again here (ack timeout, escalate now) is a
    /// change the peer must learn; an incident opening is not.
    #[test]
    fn a_return_to_triggered_is_a_local_transition_and_an_opening_is_not() {
        use crate::incident::{Actor, Status};
        let c = db();
        let start = last_event_id(&c).unwrap();
        let alert = crate::store::AlertInput {
            action: crate::store::AlertAction::Trigger,
            dedup_key: Some("web/slow".into()),
            summary: "s".into(),
            severity: crate::incident::Severity::Critical,
            source: None,
            service: Some("web".into()),
            details: serde_json::Value::Null,
            links: vec![],
            route: None,
            policy: None,
            pre_page_delay: Duration::ZERO,
            page: false,
            actor: Actor::new("x", "http"),
        };
        let opened = crate::store::queries::apply_alert(&c, &alert, t(1)).unwrap();
        let id = opened.incident().unwrap().id;
        let q = crate::store::queries::transition;
        q(
            &c,
            id,
            Status::Acknowledged,
            &Actor::new("alice", "sms"),
            t(2),
        )
        .unwrap();
        q(
            &c,
            id,
            Status::Triggered,
            &Actor::new("pagerbox", "ack-timeout"),
            t(3),
        )
        .unwrap();
        let got: Vec<_> = local_transitions(&c, start, 10)
            .unwrap()
            .into_iter()
            .map(|t| (t.dedup_key, t.change, t.at))
            .collect();
        assert_eq!(
            got,
            [
                ("web/slow".to_string(), Change::Acknowledged, t(2)),
                ("web/slow".to_string(), Change::Retriggered, t(3)),
            ]
        );
    }

    #[test]
    fn local_triggers_name_the_path_and_skip_the_peers_copies() {
        let c = db();
        let start = last_event_id(&c).unwrap();
        let alert = |key: &str, via: &str| crate::store::AlertInput {
            action: crate::store::AlertAction::Trigger,
            dedup_key: Some(key.into()),
            summary: "s".into(),
            severity: crate::incident::Severity::Critical,
            source: None,
            service: Some("db".into()),
            details: serde_json::Value::Null,
            links: vec![],
            route: None,
            policy: None,
            pre_page_delay: Duration::ZERO,
            page: true,
            actor: crate::incident::Actor::new("x", via),
        };
        crate::store::queries::apply_alert(&c, &alert("u", "udp"), t(1)).unwrap();
        crate::store::queries::apply_alert(&c, &alert("p", "pair"), t(2)).unwrap();
        crate::store::queries::apply_alert(&c, &alert("h", "http"), t(3)).unwrap();
        let got = local_triggers(&c, start, 10).unwrap();
        let seen: Vec<_> = got
            .iter()
            .map(|t| (t.via.as_str(), t.incident.dedup_key.as_str()))
            .collect();
        assert_eq!(seen, [("udp", "u"), ("http", "h")]);
        assert_eq!(got[0].incident.first_seen, t(1));
        assert!(local_triggers(&c, got[1].event_id, 10).unwrap().is_empty());
    }

    #[test]
    fn overrides_made_here_are_read_and_the_peers_applied_once() {
        let c = db();
        let start = last_event_id(&c).unwrap();
        let id =
            crate::store::overrides::add(&c, "primary", "alice", t(0), t(60), "api", t(0)).unwrap();
        assert!(crate::store::overrides::delete(&c, "primary", id, "api", t(5)).unwrap());
        let got = local_overrides(&c, start, 10).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            (got[0].schedule.as_str(), got[0].user.as_str(), got[0].until),
            ("primary", "alice", t(60))
        );
        // Read as the row is now: both entries show it deleted.
        assert!(got[1].deleted);
        let cursor = got[1].event_id;
        // The peer's override: added once, however often it arrives, and not read back.
        let add = |deleted| {
            apply_peer_override(
                &c,
                "primary",
                "bob",
                t(10),
                t(70),
                Some("bob via sms"),
                deleted,
                "b",
                t(11),
            )
            .unwrap()
        };
        assert!(add(false));
        assert!(!add(false));
        assert!(local_overrides(&c, cursor, 10).unwrap().is_empty());
        let live = crate::store::overrides::list(&c, "primary", t(12)).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].created_by.as_deref(), Some("bob via sms"));
        assert!(add(true));
        assert!(!add(true));
        assert!(crate::store::overrides::list(&c, "primary", t(12))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn opened_since_lists_open_incidents_after_the_cursor() {
        let c = db();
        for (id, key, status) in [
            (2, "web/slow", "resolved"),
            (3, "disk/full", "acknowledged"),
        ] {
            c.execute(
                "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen) \
                 VALUES (?1,?2,?3,'critical','s',?4,?4)",
                params![id, key, status, ms(t(id))],
            )
            .unwrap();
        }
        let ids = |after, limit| -> Vec<(i64, String)> {
            opened_since(&c, after, limit)
                .unwrap()
                .into_iter()
                .map(|o| (o.id, o.dedup_key))
                .collect()
        };
        // The resolved one is never settled; an acknowledged one is still open (its resolve is
        // published under the name settled now).
        assert_eq!(
            ids(0, 10),
            [(1, "db/down".to_string()), (3, "disk/full".to_string())]
        );
        assert_eq!(ids(1, 10), [(3, "disk/full".to_string())]);
        assert_eq!(ids(0, 1), [(1, "db/down".to_string())]);
        assert!(ids(3, 10).is_empty());
        assert_eq!(opened_since(&c, 2, 1).unwrap()[0].first_seen, t(3));
    }
}
