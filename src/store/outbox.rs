//! The notification outbox: every page is a row before anything is sent.
//!
//! A row moves `pending -> sending -> sent -> delivered`, or to `failed`/`cancelled`. A sender
//! claims a due row (marking it `sending` and counting the attempt, durably) before it hands the
//! message to the modem or SMTP, and records the outcome after. After a crash, rows found in
//! `sending` go back to `pending`: at-least-once, with at most the one in-flight page repeated.
//! Every step lands on the incident's timeline.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::queries::{event, from_ms, ms};
use crate::incident::{Channel, IncidentId};

/// What kind of message a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// A page about one incident.
    Page,
    /// Several incidents in one message (grouping window, or held back by the rate limit).
    Digest,
    /// A status update for a stakeholder.
    Status,
    /// An answer to an SMS command.
    Reply,
}

impl PageKind {
    fn as_str(self) -> &'static str {
        match self {
            PageKind::Page => "page",
            PageKind::Digest => "digest",
            PageKind::Status => "status",
            PageKind::Reply => "reply",
        }
    }

    fn parse(s: &str) -> PageKind {
        match s {
            "digest" => PageKind::Digest,
            "status" => PageKind::Status,
            "reply" => PageKind::Reply,
            _ => PageKind::Page,
        }
    }
}

/// A page to queue.
#[derive(Debug, Clone)]
pub struct NewPage {
    pub kind: PageKind,
    pub incident_id: Option<IncidentId>,
    pub user_id: Option<String>,
    pub channel: Channel,
    pub address: String,
    pub subject: Option<String>,
    pub body: String,
    /// Higher goes first (severity rank: critical 3 ... info 0; replies 4).
    pub priority: i64,
    pub due_at: DateTime<Utc>,
}

/// A queued page as a sender sees it.
#[derive(Debug, Clone)]
pub struct Page {
    pub id: i64,
    pub kind: PageKind,
    pub incident_id: Option<IncidentId>,
    pub user_id: Option<String>,
    pub channel: Channel,
    pub address: String,
    pub subject: Option<String>,
    pub body: String,
    pub priority: i64,
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
    pub channel_attempts: i64,
    pub channel_since: DateTime<Utc>,
    pub state: String,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    /// For digests: the incidents it lists.
    pub items: Vec<IncidentId>,
}

const COLUMNS: &str = "id, kind, incident_id, user_id, channel, address, subject, body, priority, \
    due_at, attempts, channel_attempts, channel_since, state, reference, created_at";

fn page_from_row(r: &Row<'_>) -> rusqlite::Result<Page> {
    let channel: String = r.get(4)?;
    let kind: String = r.get(1)?;
    Ok(Page {
        id: r.get(0)?,
        kind: PageKind::parse(&kind),
        incident_id: r.get(2)?,
        user_id: r.get(3)?,
        channel: channel.parse().unwrap_or(Channel::Sms),
        address: r.get(5)?,
        subject: r.get(6)?,
        body: r.get(7)?,
        priority: r.get(8)?,
        due_at: from_ms(r.get(9)?),
        attempts: r.get(10)?,
        channel_attempts: r.get(11)?,
        channel_since: from_ms(r.get(12)?),
        state: r.get(13)?,
        reference: r.get(14)?,
        created_at: from_ms(r.get(15)?),
        items: Vec::new(),
    })
}

fn items(conn: &Connection, id: i64) -> rusqlite::Result<Vec<IncidentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT incident_id FROM outbox_items WHERE outbox_id=?1 ORDER BY incident_id",
    )?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

/// A page by id.
pub fn page(conn: &Connection, id: i64) -> rusqlite::Result<Option<Page>> {
    let p = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE id=?1"))?
        .query_row([id], page_from_row)
        .optional()?;
    match p {
        Some(mut p) => {
            p.items = items(conn, p.id)?;
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

/// Queues a page; notes it on the incident's timeline.
pub fn enqueue(conn: &Connection, p: &NewPage, now: DateTime<Utc>) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (kind, incident_id, user_id, channel, address, subject, body, priority, \
         due_at, state, channel_since, created_at, updated_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,'pending',?10,?10,?10)",
    )?
    .execute(params![
        p.kind.as_str(),
        p.incident_id,
        p.user_id,
        p.channel.as_str(),
        p.address,
        p.subject,
        p.body,
        p.priority,
        ms(p.due_at),
        ms(now),
    ])?;
    let id = conn.last_insert_rowid();
    if let Some(inc) = p.incident_id {
        let who = p.user_id.as_deref().unwrap_or("stakeholder");
        let when = if p.due_at > now {
            format!(" due {}", p.due_at.format("%H:%M:%S UTC"))
        } else {
            String::new()
        };
        event(
            conn,
            Some(inc),
            now,
            "page-queued",
            None,
            &format!("{} to {who} queued{when}", p.channel),
            Some(&serde_json::json!({ "outbox_id": id, "kind": p.kind.as_str() })),
        )?;
    }
    Ok(id)
}

/// Adds an incident to a digest row.
pub fn add_item(conn: &Connection, outbox_id: i64, incident: IncidentId) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox_items (outbox_id, incident_id) VALUES (?1,?2)",
    )?
    .execute(params![outbox_id, incident])?;
    Ok(())
}

/// The pending digest for a user and channel, if one is waiting.
pub fn pending_digest(
    conn: &Connection,
    user: &str,
    channel: Channel,
) -> rusqlite::Result<Option<Page>> {
    let id: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM outbox WHERE kind='digest' AND state='pending' AND user_id=?1 AND channel=?2 \
             ORDER BY id LIMIT 1",
        )?
        .query_row(params![user, channel.as_str()], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => page(conn, id),
        None => Ok(None),
    }
}

/// Pages (not cancelled) of `channel` sent or queued to `user` since `since`: for the rate limit.
pub fn count_recent(
    conn: &Connection,
    user: &str,
    channel: Channel,
    since: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM outbox WHERE user_id=?1 AND channel=?2 AND created_at>=?3 \
         AND kind IN ('page','digest') AND state<>'cancelled'",
    )?
    .query_row(params![user, channel.as_str(), ms(since)], |r| r.get(0))
}

/// When the latest page of a route's incidents to `user` was created: for leading-edge grouping.
pub fn last_route_page(
    conn: &Connection,
    user: &str,
    channel: Channel,
    route: &str,
    since: DateTime<Utc>,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached(
            "SELECT max(o.created_at) FROM outbox o JOIN incidents i ON i.id = o.incident_id \
             WHERE o.user_id=?1 AND o.channel=?2 AND o.kind='page' AND i.route=?3 AND o.created_at>=?4",
        )?
        .query_row(params![user, channel.as_str(), route, ms(since)], |r| r.get(0))?;
    Ok(t.map(from_ms))
}

/// Claims the next due page of `channel`: critical first, then oldest. Marks it `sending` and
/// counts the attempt before anything is sent.
pub fn claim(
    conn: &Connection,
    channel: Channel,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<Page>> {
    let p = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state='pending' AND channel=?1 AND due_at<=?2 \
             ORDER BY priority DESC, due_at, id LIMIT 1"
        ))?
        .query_row(params![channel.as_str(), ms(now)], page_from_row)
        .optional()?;
    let Some(mut p) = p else { return Ok(None) };
    conn.prepare_cached(
        "UPDATE outbox SET state='sending', attempts=attempts+1, channel_attempts=channel_attempts+1, \
         updated_at=?2 WHERE id=?1",
    )?
    .execute(params![p.id, ms(now)])?;
    p.attempts += 1;
    p.channel_attempts += 1;
    p.state = "sending".into();
    p.items = items(conn, p.id)?;
    Ok(Some(p))
}

/// When the next pending page of `channel` is due.
pub fn next_due(conn: &Connection, channel: Channel) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached("SELECT min(due_at) FROM outbox WHERE state='pending' AND channel=?1")?
        .query_row([channel.as_str()], |r| r.get(0))?;
    Ok(t.map(from_ms))
}

/// Pages still waiting to go out (pending or sending), and the oldest one's creation time.
/// Outbound chat/webhook notifications (channel `webhook`, see `crate::outbound`) are not pages
/// and are left out: a Slack outage must not look like a paging backlog.
pub fn depth(conn: &Connection) -> rusqlite::Result<(i64, Option<DateTime<Utc>>)> {
    conn.prepare_cached(
        "SELECT count(*), min(created_at) FROM outbox WHERE state IN ('pending','sending') \
         AND channel<>'webhook'",
    )?
    .query_row([], |r| {
        Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(from_ms)))
    })
}

/// How long the oldest page that is due has been waiting to go out (`None` when none is due).
/// Outbound notifications are left out like in [`depth`]. A figure beyond a few minutes means
/// nothing is sending: `/healthz` reports it.
pub fn oldest_due(
    conn: &Connection,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<std::time::Duration>> {
    let t: Option<i64> = conn
        .prepare_cached(
            "SELECT min(due_at) FROM outbox WHERE state='pending' AND due_at<=?1 \
             AND channel<>'webhook'",
        )?
        .query_row([ms(now)], |r| r.get(0))?;
    Ok(t.map(|t| (now - from_ms(t)).to_std().unwrap_or_default()))
}

/// After a crash: pages caught in `sending` are sent again.
pub fn recover_in_flight(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let ids: Vec<(i64, Option<i64>)> = {
        let mut stmt = conn.prepare("SELECT id, incident_id FROM outbox WHERE state='sending'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, incident) in &ids {
        conn.execute(
            "UPDATE outbox SET state='pending', due_at=?2, updated_at=?2 WHERE id=?1",
            params![id, ms(now)],
        )?;
        if let Some(inc) = incident {
            event(
                conn,
                Some(*inc),
                now,
                "page-retry",
                None,
                "page was in flight when pagerbox stopped; sending again",
                Some(&serde_json::json!({ "outbox_id": id })),
            )?;
        }
    }
    Ok(ids.len())
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// Handed over (SMS accepted by the network with a message reference, SMTP 250, call answered).
    Sent {
        reference: Option<String>,
        detail: String,
    },
    /// Failed; try the same channel again at `retry_at`.
    Retry {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// The channel gave up on this page: it continues on `channel` at `address` from `due_at`
    /// (now for the next channel; later when every channel has failed and it starts over, so a
    /// page whose channels are all down is retried with a pause, never in a tight loop).
    FallThrough {
        error: String,
        channel: Channel,
        address: String,
        due_at: DateTime<Utc>,
    },
    /// The page cannot go anywhere (no other channel reaches this person).
    Failed { error: String },
    /// Nothing to send any more (e.g. every incident of a digest was acknowledged).
    Cancelled { reason: String },
}

/// Records the outcome of an attempt on page `id`, on the page and the incident timelines.
pub fn finish(
    conn: &Connection,
    p: &Page,
    outcome: &Attempt,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let who = p.user_id.as_deref().unwrap_or(&p.address);
    let (kind, message) = match outcome {
        Attempt::Sent { reference, detail } => {
            conn.execute(
                "UPDATE outbox SET state='sent', reference=?2, last_error=NULL, updated_at=?3 WHERE id=?1",
                params![p.id, reference, ms(now)],
            )?;
            (
                "page-sent",
                format!(
                    "{} to {who} sent (attempt {}): {detail}",
                    p.channel, p.attempts
                ),
            )
        }
        Attempt::Retry { error, retry_at } => {
            conn.execute(
                "UPDATE outbox SET state='pending', due_at=?2, last_error=?3, updated_at=?4 WHERE id=?1",
                params![p.id, ms(*retry_at), error, ms(now)],
            )?;
            (
                "page-retry",
                format!(
                    "{} to {who} failed (attempt {}): {error}; retry at {}",
                    p.channel,
                    p.attempts,
                    retry_at.format("%H:%M:%S UTC")
                ),
            )
        }
        Attempt::FallThrough {
            error,
            channel,
            address,
            due_at,
        } => {
            conn.execute(
                "UPDATE outbox SET state='pending', channel=?2, address=?3, due_at=?4, channel_attempts=0, \
                 channel_since=?4, last_error=?5, updated_at=?6 WHERE id=?1",
                params![p.id, channel.as_str(), address, ms(*due_at), error, ms(now)],
            )?;
            (
                "page-fallback",
                format!("{} to {who} gave up ({error}); trying {channel}", p.channel),
            )
        }
        Attempt::Failed { error } => {
            conn.execute(
                "UPDATE outbox SET state='failed', last_error=?2, updated_at=?3 WHERE id=?1",
                params![p.id, error, ms(now)],
            )?;
            (
                "page-failed",
                format!("{} to {who} failed for good: {error}", p.channel),
            )
        }
        Attempt::Cancelled { reason } => {
            conn.execute(
                "UPDATE outbox SET state='cancelled', last_error=?2, updated_at=?3 WHERE id=?1",
                params![p.id, reason, ms(now)],
            )?;
            (
                "page-cancelled",
                format!("{} to {who} cancelled: {reason}", p.channel),
            )
        }
    };
    let data =
        serde_json::json!({ "outbox_id": p.id, "channel": p.channel, "attempt": p.attempts });
    let mut incidents: Vec<IncidentId> = p.incident_id.into_iter().collect();
    incidents.extend(p.items.iter().copied());
    for inc in incidents {
        event(conn, Some(inc), now, kind, None, &message, Some(&data))?;
    }
    Ok(())
}

/// A delivery report for the SMS whose message reference is `reference` (the newest such page,
/// as references wrap at 256). Returns the incident it belonged to.
pub fn delivered(
    conn: &Connection,
    reference: &str,
    ok: bool,
    detail: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<i64>> {
    let row: Option<(i64, Option<i64>, Option<String>)> = conn
        .prepare_cached(
            "SELECT id, incident_id, user_id FROM outbox WHERE channel='sms' AND state='sent' AND \
             (reference=?1 OR reference LIKE ?1 || ',%' OR reference LIKE '%,' || ?1 OR reference LIKE '%,' || ?1 || ',%') \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([reference], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, incident, user)) = row else {
        return Ok(None);
    };
    if ok {
        conn.execute(
            "UPDATE outbox SET state='delivered', updated_at=?2 WHERE id=?1",
            params![id, ms(now)],
        )?;
    }
    let mut incidents: Vec<i64> = incident.into_iter().collect();
    incidents.extend(items(conn, id)?);
    for inc in &incidents {
        event(
            conn,
            Some(*inc),
            now,
            if ok {
                "page-delivered"
            } else {
                "page-undelivered"
            },
            None,
            &format!(
                "sms to {} {}: {detail}",
                user.as_deref().unwrap_or("?"),
                if ok { "delivered" } else { "not delivered" }
            ),
            Some(&serde_json::json!({ "outbox_id": id, "reference": reference })),
        )?;
    }
    Ok(Some(id))
}

/// Cancels queued pages of an incident (acknowledged or resolved): its own pending pages, and its
/// place in pending digests (a digest left empty is cancelled). Returns how many were cancelled.
pub fn cancel_for_incident(
    conn: &Connection,
    incident: IncidentId,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox SET state='cancelled', updated_at=?2 \
             WHERE incident_id=?1 AND state='pending' AND kind='page'",
        )?
        .execute(params![incident, ms(now)])?;
    conn.prepare_cached(
        "DELETE FROM outbox_items WHERE incident_id=?1 AND outbox_id IN (SELECT id FROM outbox WHERE state='pending')",
    )?
    .execute([incident])?;
    conn.prepare_cached(
        "UPDATE outbox SET state='cancelled', updated_at=?1 WHERE kind='digest' AND state='pending' \
         AND NOT EXISTS (SELECT 1 FROM outbox_items WHERE outbox_id=outbox.id)",
    )?
    .execute([ms(now)])?;
    Ok(n)
}

/// Recent pages, newest first (status page, reports). Outbound webhook rows are not pages.
pub fn recent(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Page>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE channel<>'webhook' ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], page_from_row)?;
    rows.collect()
}
