//! The notification outbox: every page is a row before anything is sent.
//!
//! A row moves `pending -> sending -> sent -> delivered`, or to `failed`/`cancelled`. A sender
//! claims a due row (marking it `sending` and counting the attempt, durably) before it hands the
//! message to the modem or SMTP, and records the outcome after. After a crash, rows found in
//! `sending` go back to `pending`: at-least-once, with at most the one in-flight page repeated.
//! Every step lands on the incident's timeline.
//!
//! A claim is a lease: it holds the row until `lease_until` (a little longer than the transport
//! may take). A row still `sending` after its lease ran out is one whose outcome was never
//! recorded (the store could not write it, or the sender stopped); the next claim on its channel
//! takes it again, without waiting for a restart. An outcome is only recorded on the attempt
//! that holds the row, so a late answer from an attempt that lost its lease changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::events::record;
use super::kinds::EventKind;
pub use super::kinds::{OutboxState, PageKind};
use super::Tx;
use super::{from_ms, ms};
use crate::incident::{Channel, Incident, IncidentId};

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
    /// The channel `body` was written for (the row's first channel; `None` for rows the outbox
    /// does not render, such as outbound notifications). After a fall-through it differs from
    /// `channel`, and the sender writes the text again where the wording would not fit.
    pub written_for: Option<Channel>,
    pub priority: i64,
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
    pub channel_attempts: i64,
    pub channel_since: DateTime<Utc>,
    pub state: OutboxState,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    /// For digests: the incidents it lists.
    pub items: Vec<IncidentId>,
}

const COLUMNS: &str = "id, kind, incident_id, user_id, channel, address, subject, body, priority, \
    due_at, attempts, channel_attempts, channel_since, state, reference, created_at, written_for";

fn page_from_row(r: &Row<'_>) -> rusqlite::Result<Page> {
    let channel: String = r.get(4)?;
    Ok(Page {
        id: r.get(0)?,
        kind: r.get(1)?,
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
        written_for: r.get::<_, Option<String>>(16)?.and_then(|c| c.parse().ok()),
        items: Vec::new(),
    })
}

fn items(conn: &Tx, id: i64) -> rusqlite::Result<Vec<IncidentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT incident_id FROM outbox_items WHERE outbox_id=?1 ORDER BY incident_id",
    )?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

/// A page by id.
pub fn page(conn: &Tx, id: i64) -> rusqlite::Result<Option<Page>> {
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
pub fn enqueue(conn: &Tx, p: &NewPage, now: DateTime<Utc>) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (kind, incident_id, user_id, channel, address, subject, body, priority, \
         due_at, state, channel_since, created_at, updated_at, written_for) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,'pending',?9,?10,?10,?4)",
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
        record(
            conn,
            Some(inc),
            now,
            EventKind::PageQueued.for_row(p.kind),
            None,
            &format!("{} to {who} queued{when}", p.channel),
            Some(&serde_json::json!({ "outbox_id": id, "kind": p.kind.as_str() })),
        )?;
    }
    Ok(id)
}

/// Queues a page that escalation step `step` (0-based) pages a person with: [`enqueue`], and
/// on the row the step and the page's ordinal among this incident's pages to that person on
/// that channel (1-based). A pair names the page by both (`store::pair::page_facts`); set
/// here, where they are known, the send path reads them instead of deriving them from the
/// timeline. Rows are never deleted and keep the channel they were written for, so the ordinal
/// stays what counting at send time would give.
pub fn enqueue_step_page(
    conn: &Tx,
    p: &NewPage,
    step: usize,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    let id = enqueue(conn, p, now)?;
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "UPDATE outbox SET step=?2, ordinal=(SELECT count(*) FROM outbox WHERE incident_id=?3 \
         AND user_id=?4 AND kind='page' AND coalesce(written_for, channel)=?5 AND id<=?1) \
         WHERE id=?1",
    )?
    .execute(params![
        id,
        step,
        p.incident_id,
        p.user_id,
        p.channel.as_str()
    ])?;
    Ok(id)
}

/// Adds an incident to a digest row.
pub fn add_item(conn: &Tx, outbox_id: i64, incident: IncidentId) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox_items (outbox_id, incident_id) VALUES (?1,?2)",
    )?
    .execute(params![outbox_id, incident])?;
    Ok(())
}

/// The pending digest for a user and channel, if one is waiting.
pub fn pending_digest(conn: &Tx, user: &str, channel: Channel) -> rusqlite::Result<Option<Page>> {
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
    conn: &Tx,
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

/// When the latest page of a route's incidents to `user` first came due on `channel`, among
/// those that came due between `since` and `now` and went out or are going (not cancelled, not
/// failed): for leading-edge grouping, which holds a page back only behind one the person gets.
/// A page acknowledged away before it was due, one given up, or one still waiting for its delay
/// holds nothing back; one waiting for a retry or held while the pair's peer tries it still does
/// (its `due_at` moved on, its `channel_since` did not), so both boxes of a pair and a modem
/// that flaps group the same way.
pub fn last_route_page(
    conn: &Tx,
    user: &str,
    channel: Channel,
    route: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached(
            "SELECT max(o.channel_since) FROM outbox o JOIN incidents i ON i.id = o.incident_id \
             WHERE o.user_id=?1 AND o.channel=?2 AND o.kind='page' AND i.route=?3 \
             AND o.channel_since>=?4 AND o.channel_since<=?5 \
             AND o.state NOT IN ('cancelled','failed') AND o.created_at>=?6",
        )?
        .query_row(
            params![
                user,
                channel.as_str(),
                route,
                ms(since),
                ms(now),
                // Keeps the search on the user's index: a page first comes due at most a day
                // after it was queued (delays before a page are brought within 24 h).
                ms(crate::clock::sub(
                    since,
                    std::time::Duration::from_secs(86_400)
                )),
            ],
            |r| r.get(0),
        )?;
    Ok(t.map(from_ms))
}

/// `now + lease`, saturating instead of overflowing (a lease is never shorter than asked for).
fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Claims the next page of `channel` for `lease`: first a row still `sending` whose lease ran
/// out (its outcome was never recorded; the timeline says so), then the next due pending row,
/// critical first, then oldest. Marks it `sending` until `now + lease` and counts the attempt
/// before anything is sent.
pub fn claim(
    conn: &Tx,
    channel: Channel,
    now: DateTime<Utc>,
    lease: Duration,
) -> rusqlite::Result<Option<Page>> {
    let expired = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state='sending' AND channel=?1 \
             AND coalesce(lease_until, 0)<=?2 ORDER BY priority DESC, due_at, id LIMIT 1"
        ))?
        .query_row(params![channel.as_str(), ms(now)], page_from_row)
        .optional()?;
    let p = match expired {
        Some(p) => {
            let mut incidents: Vec<IncidentId> = p.incident_id.into_iter().collect();
            incidents.extend(items(conn, p.id)?);
            for inc in incidents {
                record(
                    conn,
                    Some(inc),
                    now,
                    EventKind::PageRetry.for_row(p.kind),
                    None,
                    &format!(
                        "{} attempt {} was never recorded (its lease ran out); sending again",
                        p.channel, p.attempts
                    ),
                    Some(&serde_json::json!({ "outbox_id": p.id, "attempt": p.attempts })),
                )?;
            }
            Some(p)
        }
        None => first_due(conn, channel.as_str(), now)?,
    };
    let Some(mut p) = p else { return Ok(None) };
    mark_sending(conn, p.id, now, lease)?;
    p.attempts += 1;
    p.channel_attempts += 1;
    p.state = OutboxState::Sending;
    p.items = items(conn, p.id)?;
    Ok(Some(p))
}

/// Told, inside the transaction that queued them and before it commits, of the rows the
/// senders will claim next ([`next_claims_after`]): a pair starts claiming them in etcd while the
/// transaction commits and the sender picks them up, instead of after. Must not block.
pub type NextClaims = std::sync::Arc<dyn Fn(&Tx, &[Page]) + Send + Sync>;

/// The highest row id so far (0 for an empty outbox): what a transaction queues after it has a
/// higher one.
pub fn last_id(conn: &Tx) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(id), 0) FROM outbox")?
        .query_row([], |r| r.get(0))
}

/// The rows queued after row `after` that a sender will [`claim`] next: per channel with such a
/// row, the one `claim` would pick now, when it is one of them and no row of that channel is
/// being sent (a sender busy with another row takes it only later). What a pair claims in etcd
/// while the transaction that queued the rows commits.
pub fn next_claims_after(conn: &Tx, after: i64, now: DateTime<Utc>) -> rusqlite::Result<Vec<Page>> {
    let channels: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT channel FROM outbox WHERE id>?1 AND state='pending' AND due_at<=?2",
        )?
        .query_map(params![after, ms(now)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut next = Vec::new();
    for channel in channels {
        let busy: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE state='sending' AND channel=?1)",
            )?
            .query_row([&channel], |r| r.get(0))?;
        if busy {
            continue;
        }
        next.extend(first_due(conn, &channel, now)?.filter(|p| p.id > after));
    }
    Ok(next)
}

/// The pending row of `channel` due at `now` that goes first: highest priority, then earliest.
fn first_due(conn: &Tx, channel: &str, now: DateTime<Utc>) -> rusqlite::Result<Option<Page>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE state='pending' AND channel=?1 AND due_at<=?2 \
         ORDER BY priority DESC, due_at, id LIMIT 1"
    ))?
    .query_row(params![channel, ms(now)], page_from_row)
    .optional()
}

/// Makes the pending pages of `channel` that wait because of a failure (a retry backoff, or a
/// pause after every channel failed) due at `now`: the channel has just come back, so there is
/// nothing left to wait for. Pages planned for later (a call two minutes after the SMS) keep
/// their time. Returns how many were woken.
pub fn wake(conn: &Tx, channel: Channel, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE outbox SET due_at=?2, updated_at=?2 WHERE state='pending' AND channel=?1 \
         AND due_at>?2 AND last_error IS NOT NULL",
    )?
    .execute(params![channel.as_str(), ms(now)])
}

/// When the oldest row of any channel in `sending` was claimed (pages and outbound
/// notifications alike: a row stuck there is work whose outcome was not recorded). Reads only,
/// so it serves a read-only connection (`/healthz`, `/metrics`) as well as the writer.
pub fn oldest_sending(conn: &Tx) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached("SELECT min(updated_at) FROM outbox WHERE state='sending'")?
        .query_row([], |r| r.get(0))?;
    Ok(t.map(from_ms))
}

/// When the next pending page of `channel` is due.
pub fn next_due(conn: &Tx, channel: Channel) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached("SELECT min(due_at) FROM outbox WHERE state='pending' AND channel=?1")?
        .query_row([channel.as_str()], |r| r.get(0))?;
    Ok(t.map(from_ms))
}

/// When the earliest lease of a row of `channel` in `sending` runs out (the sender looks again
/// then: the row can be claimed again if its outcome is still not recorded).
pub fn next_lease_end(conn: &Tx, channel: Channel) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let t: Option<i64> = conn
        .prepare_cached(
            "SELECT min(coalesce(lease_until, 0)) FROM outbox WHERE state='sending' AND channel=?1",
        )?
        .query_row([channel.as_str()], |r| r.get(0))?;
    Ok(t.map(from_ms))
}

/// Pages still waiting to go out (pending or sending) on the channels in `channels` (those a
/// transport serves), and the oldest one's creation time. Rows of a channel nobody sends are
/// not a backlog anyone can work off (they are moved to a served channel by the escalation
/// engine); outbound chat/webhook notifications (channel `webhook`, sent by the `outbound` module) are
/// not pages and are never counted: a Slack outage must not look like a paging backlog.
pub fn depth(conn: &Tx, channels: &[Channel]) -> rusqlite::Result<(i64, Option<DateTime<Utc>>)> {
    let list = |c: Channel| i64::from(channels.contains(&c));
    conn.prepare_cached(
        "SELECT count(*), min(created_at) FROM outbox WHERE state IN ('pending','sending') \
         AND ((channel='sms' AND ?1) OR (channel='voice' AND ?2) OR (channel='email' AND ?3))",
    )?
    .query_row(
        params![
            list(Channel::Sms),
            list(Channel::Voice),
            list(Channel::Email)
        ],
        |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(from_ms))),
    )
}

/// Pending pages on channels outside `served` (no transport sends them, e.g. email after
/// `[email] enabled = false`), oldest first: the escalation engine moves them to a served
/// channel so they do not wait for ever.
pub fn pending_unserved(conn: &Tx, served: &[Channel]) -> rusqlite::Result<Vec<Page>> {
    let mut out = Vec::new();
    for channel in Channel::ALL {
        if served.contains(&channel) {
            continue;
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state='pending' AND channel=?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([channel.as_str()], page_from_row)?;
        for p in rows {
            let mut p = p?;
            p.items = items(conn, p.id)?;
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.id);
    Ok(out)
}

/// Moves pending page `p` to `channel` at `address`, due `now` (its own channel is not served
/// any more), noting why on its incidents' timelines.
pub fn move_to_channel(
    conn: &Tx,
    p: &Page,
    channel: Channel,
    address: &str,
    why: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET channel=?2, address=?3, due_at=?4, channel_attempts=0, channel_since=?4, \
         last_error=?5, updated_at=?4 WHERE id=?1 AND state='pending'",
    )?
    .execute(params![p.id, channel.as_str(), address, ms(now), why])?;
    let who = p.user_id.as_deref().unwrap_or(&p.address);
    let mut incidents: Vec<IncidentId> = p.incident_id.into_iter().collect();
    incidents.extend(p.items.iter().copied());
    for inc in incidents {
        record(
            conn,
            Some(inc),
            now,
            EventKind::PageFallback.for_row(p.kind),
            None,
            &format!("{} to {who}: {why}; trying {channel}", p.channel),
            Some(&serde_json::json!({ "outbox_id": p.id, "channel": channel })),
        )?;
    }
    Ok(())
}

/// Fails pending page `p` for good (nothing can send it), noting why on its incidents' timelines.
pub fn fail_pending(conn: &Tx, p: &Page, why: &str, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET state='failed', last_error=?2, updated_at=?3 WHERE id=?1 AND state='pending'",
    )?
    .execute(params![p.id, why, ms(now)])?;
    let who = p.user_id.as_deref().unwrap_or(&p.address);
    let mut incidents: Vec<IncidentId> = p.incident_id.into_iter().collect();
    incidents.extend(p.items.iter().copied());
    for inc in incidents {
        record(
            conn,
            Some(inc),
            now,
            EventKind::PageFailed.for_row(p.kind),
            None,
            &format!("{} to {who} failed for good: {why}", p.channel),
            Some(&serde_json::json!({ "outbox_id": p.id })),
        )?;
    }
    Ok(())
}

/// How long the oldest page that should be going out has waited: a pending page since it fell
/// due, a claimed one since its lease ran out (its sender never recorded an outcome). `None` when
/// there is none. Outbound notifications are left out like in [`depth`]. A figure beyond a few
/// minutes means nothing is sending: `/healthz` reports it.
pub fn oldest_due(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<Option<std::time::Duration>> {
    let t: Option<i64> = conn
        .prepare_cached(
            "SELECT min(CASE WHEN state='pending' THEN due_at ELSE coalesce(lease_until, updated_at) END) \
             FROM outbox WHERE channel<>'webhook' AND ( \
               (state='pending' AND due_at<=?1) OR \
               (state='sending' AND coalesce(lease_until, updated_at)<=?1))",
        )?
        .query_row([ms(now)], |r| r.get(0))?;
    Ok(t.map(|t| (now - from_ms(t)).to_std().unwrap_or_default()))
}

/// After a crash: pages caught in `sending` are sent again.
pub fn recover_in_flight(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let ids: Vec<(i64, Option<i64>)> = {
        let mut stmt = conn
            .conn()
            .prepare("SELECT id, incident_id FROM outbox WHERE state='sending'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, incident) in &ids {
        conn.execute(
            "UPDATE outbox SET state='pending', due_at=?2, lease_until=NULL, updated_at=?2 WHERE id=?1",
            params![id, ms(now)],
        )?;
        if let Some(inc) = incident {
            record(
                conn,
                Some(*inc),
                now,
                EventKind::PageRetry,
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

impl Attempt {
    /// The row's next state after this outcome.
    fn settlement(&self) -> Settle<'_> {
        match self {
            Attempt::Sent { reference, .. } => Settle::Sent {
                reference: reference.as_deref(),
            },
            Attempt::Retry { error, retry_at } => Settle::Retry {
                error,
                retry_at: *retry_at,
            },
            Attempt::FallThrough {
                error,
                channel,
                address,
                due_at,
            } => Settle::FallThrough {
                error,
                channel: *channel,
                address,
                due_at: *due_at,
            },
            Attempt::Failed { error } => Settle::Failed { error },
            Attempt::Cancelled { reason } => Settle::Cancelled { reason },
        }
    }

    /// What the timeline says about this outcome of page `p`.
    fn note(&self, p: &Page, now: DateTime<Utc>) -> (EventKind, String) {
        let who = p.user_id.as_deref().unwrap_or(&p.address);
        match self {
            Attempt::Sent { detail, .. } => (
                EventKind::PageSent,
                format!(
                    "{} to {who} sent (attempt {}): {detail}",
                    p.channel, p.channel_attempts
                ),
            ),
            Attempt::Retry { error, retry_at } => (
                EventKind::PageRetry,
                // The wait, not a clock time: the timeline is shown in the box's zone, and a
                // "retry at ... UTC" in it would mix two zones.
                format!(
                    "{} to {who} failed (attempt {}): {error}; retry in {}s",
                    p.channel,
                    p.channel_attempts,
                    (*retry_at - now).num_seconds().max(0)
                ),
            ),
            Attempt::FallThrough { error, channel, .. } => (
                EventKind::PageFallback,
                format!("{} to {who} gave up ({error}); trying {channel}", p.channel),
            ),
            Attempt::Failed { error } => (
                EventKind::PageFailed,
                format!("{} to {who} failed for good: {error}", p.channel),
            ),
            Attempt::Cancelled { reason } => (
                EventKind::PageCancelled,
                format!("{} to {who} cancelled: {reason}", p.channel),
            ),
        }
    }
}

/// Marks row `id` `sending` until `now + lease` and counts the attempt: the claim every sender
/// (pages, replies, digests, outbound notifications) makes before anything is sent.
pub(super) fn mark_sending(
    conn: &Tx,
    id: i64,
    now: DateTime<Utc>,
    lease: Duration,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET state='sending', attempts=attempts+1, channel_attempts=channel_attempts+1, \
         lease_until=?3, updated_at=?2 WHERE id=?1",
    )?
    .execute(params![id, ms(now), ms(lease_end(now, lease))])?;
    Ok(())
}

/// Whether attempt `attempts` still holds row `id`: it is `sending` on that attempt. An outcome
/// is only recorded by the attempt that holds the row (see [`finish`]).
pub(super) fn holds(conn: &Tx, id: i64, attempts: i64) -> rusqlite::Result<bool> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM outbox WHERE id=?1 AND state='sending' AND attempts=?2",
        )?
        .query_row(params![id, attempts], |r| r.get(0))?;
    Ok(n > 0)
}

/// Where an attempt leaves its row: the one state machine of `sending` rows, whatever their
/// channel.
#[derive(Debug, Clone, Copy)]
pub(super) enum Settle<'a> {
    /// Handed over; `reference` is the network's or the receiver's.
    Sent { reference: Option<&'a str> },
    /// Back to `pending`, due again at `retry_at`.
    Retry {
        error: &'a str,
        retry_at: DateTime<Utc>,
    },
    /// Back to `pending` on another channel and address, due at `due_at`.
    FallThrough {
        error: &'a str,
        channel: Channel,
        address: &'a str,
        due_at: DateTime<Utc>,
    },
    /// Given up for good.
    Failed { error: &'a str },
    /// Nothing to send any more.
    Cancelled { reason: &'a str },
}

/// Moves row `id` out of `sending` as `to` says, releasing its lease.
pub(super) fn settle(
    conn: &Tx,
    id: i64,
    to: &Settle<'_>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    match *to {
        Settle::Sent { reference } => conn.execute(
            "UPDATE outbox SET state='sent', reference=?2, last_error=NULL, lease_until=NULL, updated_at=?3 WHERE id=?1",
            params![id, reference, ms(now)],
        ),
        Settle::Retry { error, retry_at } => conn.execute(
            "UPDATE outbox SET state='pending', due_at=?2, last_error=?3, lease_until=NULL, updated_at=?4 WHERE id=?1",
            params![id, ms(retry_at), error, ms(now)],
        ),
        Settle::FallThrough {
            error,
            channel,
            address,
            due_at,
        } => conn.execute(
            "UPDATE outbox SET state='pending', channel=?2, address=?3, due_at=?4, channel_attempts=0, \
             channel_since=?4, last_error=?5, lease_until=NULL, updated_at=?6 WHERE id=?1",
            params![id, channel.as_str(), address, ms(due_at), error, ms(now)],
        ),
        Settle::Failed { error } => conn.execute(
            "UPDATE outbox SET state='failed', last_error=?2, lease_until=NULL, updated_at=?3 WHERE id=?1",
            params![id, error, ms(now)],
        ),
        Settle::Cancelled { reason } => conn.execute(
            "UPDATE outbox SET state='cancelled', last_error=?2, lease_until=NULL, updated_at=?3 WHERE id=?1",
            params![id, reason, ms(now)],
        ),
    }?;
    Ok(())
}

/// Records the outcome of attempt `p.attempts` on page `p`, on the page and the incident
/// timelines. Only the attempt that still holds the row records anything: if the row is no longer
/// `sending` on this attempt (the outcome was already recorded by an earlier try whose answer got
/// lost, or the lease ran out and a newer attempt took the row), nothing is written and `false`
/// is returned, so retrying a finish is safe.
pub fn finish(
    conn: &Tx,
    p: &Page,
    outcome: &Attempt,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    if crate::fault::armed("outbox.finish_fails") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some("fault point outbox.finish_fails".into()),
        ));
    }
    if !holds(conn, p.id, p.attempts)? {
        return Ok(false);
    }
    settle(conn, p.id, &outcome.settlement(), now)?;
    if matches!(outcome, Attempt::Sent { .. }) {
        // Where it went: a reload since it was queued may have given the person a new number.
        conn.prepare_cached("UPDATE outbox SET address=?2 WHERE id=?1 AND address<>?2")?
            .execute(params![p.id, p.address])?;
    }
    note_outcome(conn, p, outcome, now)?;
    Ok(true)
}

/// Notes `outcome` of page `p` on its incidents' timelines.
fn note_outcome(
    conn: &Tx,
    p: &Page,
    outcome: &Attempt,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let (kind, message) = outcome.note(p, now);
    let data = serde_json::json!({ "outbox_id": p.id, "channel": p.channel, "attempt": p.channel_attempts, "attempts_in_all": p.attempts });
    let mut incidents: Vec<IncidentId> = p.incident_id.into_iter().collect();
    incidents.extend(p.items.iter().copied());
    let kind = kind.for_row(p.kind);
    for inc in incidents {
        record(conn, Some(inc), now, kind, None, &message, Some(&data))?;
    }
    Ok(())
}

/// How far back a delivery report can be about: the validity the driver gives an SMS (one day)
/// and a day's margin for a centre that reports late.
const REPORT_DAYS: i64 = 2;

/// What a delivery report says about a sent SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// It reached the handset.
    Delivered,
    /// Not yet: the centre is still trying (a temporary error it will retry).
    StillTrying,
    /// The centre gave up on it, or can never deliver it.
    Undelivered,
}

/// Whether two renderings of a phone number are the same number: a report's recipient may be
/// international (`+4915112345678`), bare (`4915112345678`) or national (`015112345678`), the
/// page's address is E.164. Digits only, trunk zeros dropped, the shorter a suffix of the longer
/// and at least six digits long.
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| -> String {
        let d: String = s.chars().filter(char::is_ascii_digit).collect();
        d.trim_start_matches('0').to_string()
    };
    let (a, b) = (digits(a), digits(b));
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= 6 && long.ends_with(&short)
}

/// A delivery report for the SMS whose message reference is `reference` (the newest such page
/// to `recipient`, as references wrap at 256; an empty `recipient` is not checked), recorded on the page and its incidents' timelines. When the
/// report says the SMS will not arrive and `next` has a way on for the page (see
/// [`crate::notify::sender::after_undelivered`]), the row leaves `sent` as that says, in the same
/// transaction, so a report that reached the store has always been acted on. Returns the page
/// as it was sent, and the way on taken.
pub fn delivered(
    conn: &Tx,
    reference: &str,
    recipient: &str,
    report: Report,
    detail: &str,
    now: DateTime<Utc>,
    next: impl FnOnce(&Page, &[Incident]) -> Option<Attempt>,
) -> rusqlite::Result<Option<(Page, Option<Attempt>)>> {
    // References wrap at 256 and rows stay, so the report is about the newest row that carries
    // its reference and went to its recipient, sent within the centre's validity period; an
    // older row with the same number is another message, and so is a row to someone else (the
    // counter is shared with replies and self-tests, which are no pages). That row must still
    // be where the report can apply: a page that already moved on (another part's report sent
    // it to voice) or is not yet recorded as sent is no match, and nothing older stands in.
    let since = crate::clock::sub_signed(now, chrono::Duration::days(REPORT_DAYS));
    let candidates = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE updated_at>=?2 AND \
             (reference=?1 OR reference LIKE ?1 || ',%' OR reference LIKE '%,' || ?1 OR reference LIKE '%,' || ?1 || ',%') \
             ORDER BY id DESC LIMIT 16",
        ))?
        .query_map(params![reference, ms(since)], page_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some(mut page) = candidates
        .into_iter()
        .find(|p| recipient.is_empty() || same_number(&p.address, recipient))
    else {
        return Ok(None);
    };
    let multipart = page.reference.as_deref().is_some_and(|r| r.contains(','));
    let applies = page.channel == Channel::Sms
        && match page.state {
            OutboxState::Sent => true,
            // A part that did not arrive counts also after another part's report marked the
            // page delivered: the person holds half a message. A whole message reported
            // delivered cannot be undelivered after all.
            OutboxState::Delivered => report == Report::Undelivered && multipart,
            _ => false,
        };
    if !applies {
        return Ok(None);
    }
    page.items = items(conn, page.id)?;
    if report == Report::Delivered {
        conn.execute(
            "UPDATE outbox SET state='delivered', updated_at=?2 WHERE id=?1",
            params![page.id, ms(now)],
        )?;
    }
    // Named as the sent entry names it: the user, or the number for a stakeholder.
    let who = page.user_id.as_deref().unwrap_or(&page.address);
    let (kind, said) = match report {
        Report::Delivered => (EventKind::PageDelivered, "delivered"),
        Report::StillTrying => (EventKind::PageUndelivered, "not delivered yet"),
        Report::Undelivered => (EventKind::PageUndelivered, "not delivered"),
    };
    let mut incidents: Vec<i64> = page.incident_id.into_iter().collect();
    incidents.extend(page.items.iter().copied());
    for inc in &incidents {
        record(
            conn,
            Some(*inc),
            now,
            kind.for_row(page.kind),
            None,
            &format!("sms to {who} {said}: {detail}"),
            Some(&serde_json::json!({ "outbox_id": page.id, "reference": reference })),
        )?;
    }
    let way_on = match report {
        Report::Undelivered => {
            let mut about = Vec::with_capacity(incidents.len());
            for id in &incidents {
                about.extend(crate::store::queries::incident(conn, *id)?);
            }
            next(&page, &about)
        }
        Report::Delivered | Report::StillTrying => None,
    };
    if let Some(outcome) = &way_on {
        settle(conn, page.id, &outcome.settlement(), now)?;
        note_outcome(conn, &page, outcome, now)?;
    }
    Ok(Some((page, way_on)))
}

/// Cancels queued pages of an incident (acknowledged or resolved): its own pending pages, and its
/// place in pending digests (a digest left empty is cancelled). Returns how many were cancelled.
pub fn cancel_for_incident(
    conn: &Tx,
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
pub fn recent(conn: &Tx, limit: usize) -> rusqlite::Result<Vec<Page>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE channel<>'webhook' ORDER BY id DESC LIMIT ?1"
    ))?;
    let mut pages: Vec<Page> = stmt
        .query_map([limit as i64], page_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    // A digest names its incidents only through its items.
    for p in pages.iter_mut().filter(|p| p.kind == PageKind::Digest) {
        p.items = items(conn, p.id)?;
    }
    Ok(pages)
}

/// Every row, oldest first, digests with their items: what unit tests of the code that queues
/// pages look at.
#[cfg(test)]
pub(crate) fn all(conn: &Tx) -> rusqlite::Result<Vec<Page>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id"))?;
    let mut pages: Vec<Page> = stmt
        .query_map([], page_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for p in pages.iter_mut() {
        p.items = items(conn, p.id)?;
    }
    Ok(pages)
}

/// Moves rows the way a sender or a test story needs, without a sender: for unit tests of the
/// code that reads pages back (acks, the sender's own loop).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Every pending SMS page and digest due by `now` went out at `now`.
    pub(crate) fn sms_went_out(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE outbox SET state='sent', updated_at=?1 WHERE kind IN ('page','digest') \
             AND channel='sms' AND state='pending' AND due_at<=?1",
            params![ms(now)],
        )?;
        Ok(())
    }

    /// Every row of `incident`, whatever its state, is cancelled.
    pub(crate) fn cancel_all(conn: &Tx, incident: IncidentId) -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE outbox SET state='cancelled' WHERE incident_id=?1",
            [incident],
        )?;
        Ok(())
    }

    /// The voice calls of `incident` fell back to SMS at `address` and went out at `now`.
    /// Returns how many there were.
    pub(crate) fn calls_went_out_as_sms(
        conn: &Tx,
        incident: IncidentId,
        address: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<usize> {
        conn.execute(
            "UPDATE outbox SET channel='sms', address=?2, state='sent', updated_at=?3 \
             WHERE incident_id=?1 AND channel='voice'",
            params![incident, address, ms(now)],
        )
    }

    /// Every pending row is due at once (a retry's wait skipped).
    pub(crate) fn all_due(conn: &Tx) -> rusqlite::Result<()> {
        conn.execute("UPDATE outbox SET due_at=0 WHERE state='pending'", [])?;
        Ok(())
    }

    /// How long after `now` the pending `channel` row that is waiting after a failure is due, in
    /// milliseconds; `None` when there is none.
    pub(crate) fn retry_wait(
        conn: &Tx,
        channel: Channel,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Option<i64>> {
        conn.prepare_cached(
            "SELECT due_at - ?1 FROM outbox WHERE state='pending' AND channel=?2 \
             AND last_error IS NOT NULL",
        )?
        .query_row(params![ms(now), channel.as_str()], |r| r.get(0))
        .optional()
    }
}

/// Where one outbox row stands (the self-test follows its test SMS with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowState {
    pub state: OutboxState,
    /// The `+CMGS` message reference(s), once sent.
    pub reference: Option<String>,
    /// The last failure, while retrying or after giving up.
    pub last_error: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
}

/// The state of outbox row `id`.
fn row_state(conn: &Tx, id: i64) -> rusqlite::Result<Option<RowState>> {
    conn.prepare_cached("SELECT state, reference, last_error, attempts FROM outbox WHERE id=?1")?
        .query_row([id], |r| {
            Ok(RowState {
                state: r.get(0)?,
                reference: r.get(1)?,
                last_error: r.get(2)?,
                attempts: r.get(3)?,
            })
        })
        .optional()
}

/// Withdraws a row that is still waiting (its sender gave up on it, as the self-test does), so
/// it does not go out hours later when the modem is back. A row being sent right now is left
/// alone. Returns whether it was withdrawn.
pub(super) fn withdraw_pending(
    conn: &Tx,
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE outbox SET state='cancelled', last_error=?2, updated_at=?3 WHERE id=?1 AND state='pending'",
        params![id, reason, ms(now)],
    )?;
    Ok(n > 0)
}

/// The outbox operations the daemon's tasks run as one job each.
impl super::Store {
    /// Puts pages caught `sending` by a crash or power cut back to `pending` (at-least-once);
    /// returns how many there were. See [`recover_in_flight`].
    pub async fn recover_in_flight(&self) -> Result<usize, super::StoreError> {
        self.call(|c, now| Ok(recover_in_flight(c, now)?)).await
    }

    /// Queues `page` due now (the store's clock), noted on its incident's timeline if it has
    /// one; returns its id.
    pub async fn enqueue_now(&self, mut page: NewPage) -> Result<i64, super::StoreError> {
        self.call(move |c, now| {
            page.due_at = now;
            Ok(enqueue(c, &page, now)?)
        })
        .await
    }

    /// Where outbox row `id` stands; `None` when there is no such row.
    pub async fn outbox_row(&self, id: i64) -> Result<Option<RowState>, super::StoreError> {
        self.call(move |c, _| Ok(row_state(c, id)?)).await
    }

    /// Withdraws row `id` if it is still waiting; see [`withdraw_pending`].
    pub async fn withdraw_pending(
        &self,
        id: i64,
        reason: &'static str,
    ) -> Result<bool, super::StoreError> {
        self.call(move |c, now| Ok(withdraw_pending(c, id, reason, now)?))
            .await
    }

    /// Records an SMS delivery report on the page whose message reference is `reference` and
    /// on its incidents' timelines, and takes the way on that `next` gives an undelivered page
    /// (at the store's time); `None` when no sent SMS has that reference. See [`delivered`].
    pub async fn record_delivery<F>(
        &self,
        reference: String,
        recipient: String,
        report: Report,
        detail: String,
        next: F,
    ) -> Result<Option<(Page, Option<Attempt>)>, super::StoreError>
    where
        F: FnOnce(&Page, &[Incident], DateTime<Utc>) -> Option<Attempt> + Send + 'static,
    {
        self.call(move |c, now| {
            Ok(delivered(
                c,
                &reference,
                &recipient,
                report,
                &detail,
                now,
                |p, about| next(p, about, now),
            )?)
        })
        .await
    }
}

/// Moves the times of queued work `back` ms earlier after the wall clock was stepped back (see
/// `store::rewind`): a retry due in five seconds, a call planned in two minutes and a lease keep
/// their real delays, and the creation times the grouping window and the rate limit count from
/// are not left in the future, where they would hold new pages for as long as the step; nor are
/// the send times a bare `ACK` orders by, where a page sent before the step would stay "newest"
/// over every page sent after it.
pub(super) fn rewind(conn: &Tx, back: i64, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let now = ms(now);
    let moved = conn.execute(
        "UPDATE outbox SET due_at = due_at - ?1 WHERE state = 'pending' AND due_at > ?2",
        params![back, now],
    )?;
    for sql in [
        "UPDATE outbox SET lease_until = lease_until - ?1 WHERE state = 'sending' AND lease_until > ?2",
        "UPDATE outbox SET channel_since = channel_since - ?1 WHERE channel_since > ?2",
        "UPDATE outbox SET created_at = created_at - ?1 WHERE created_at > ?2",
        "UPDATE outbox SET updated_at = updated_at - ?1 WHERE updated_at > ?2",
    ] {
        conn.execute(sql, params![back, now])?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LEASE: Duration = Duration::from_secs(60);

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn db() -> (Tx<'static>, IncidentId) {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO incidents (dedup_key,status,severity,summary,first_seen,last_seen) \
             VALUES ('k','triggered','critical','s',0,0)",
            [],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        (Tx::owned(c), id)
    }

    fn queue(c: &Tx, inc: IncidentId, channel: Channel, due: DateTime<Utc>) -> i64 {
        enqueue(
            c,
            &NewPage {
                kind: PageKind::Page,
                incident_id: Some(inc),
                user_id: Some("alice".into()),
                channel,
                address: "+4915100000001".into(),
                subject: None,
                body: "b".into(),
                priority: 3,
                due_at: due,
            },
            due,
        )
        .unwrap()
    }

    fn state(c: &Tx, id: i64) -> (String, i64) {
        c.query_row(
            "SELECT state, attempts FROM outbox WHERE id=?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    fn kinds(c: &Tx, inc: IncidentId) -> Vec<String> {
        crate::store::queries::timeline(c, inc)
            .unwrap()
            .into_iter()
            .map(|e| e.kind.to_string())
            .collect()
    }

    /// After the clock went back an hour: the times written on the old clock move back by the
    /// step, times already on the new clock (at or before now) stay.
    #[test]
    fn rewind_moves_only_times_after_now() {
        let (c, inc) = db();
        let old = queue(&c, inc, Channel::Sms, t(3_700));
        let fresh = queue(&c, inc, Channel::Voice, t(40));
        let now = t(100);
        assert_eq!(rewind(&c, 3_600_000, now).unwrap(), 1);
        let rows = all(&c).unwrap();
        let row = |id| rows.iter().find(|p| p.id == id).unwrap();
        assert_eq!(row(old).due_at, t(100));
        assert_eq!(row(old).created_at, t(100));
        assert_eq!(row(old).channel_since, t(100));
        assert_eq!(row(fresh).due_at, t(40));
        assert_eq!(row(fresh).created_at, t(40));
        let updated: i64 = c
            .query_row("SELECT updated_at FROM outbox WHERE id=?1", [old], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(updated, ms(t(100)));
    }

    /// A page planned for later (an email five minutes after the SMS) has its whole channel
    /// timeout from when it is due, not from when the step was planned: one transient failure
    /// at +5 min is retried on its channel instead of falling through at once.
    #[test]
    fn a_page_due_later_is_on_its_channel_from_when_it_is_due() {
        let (c, inc) = db();
        let id = enqueue(
            &c,
            &NewPage {
                kind: PageKind::Page,
                incident_id: Some(inc),
                user_id: Some("alice".into()),
                channel: Channel::Email,
                address: "alice@example.org".into(),
                subject: None,
                body: "b".into(),
                priority: 3,
                due_at: t(300),
            },
            t(0),
        )
        .unwrap();
        let page = all(&c).unwrap().into_iter().find(|p| p.id == id).unwrap();
        assert_eq!(page.channel_since, t(300));
    }

    #[test]
    fn oldest_due_counts_due_pages_and_expired_claims_only() {
        let (c, inc) = db();
        assert_eq!(oldest_due(&c, t(0)).unwrap(), None);
        queue(&c, inc, Channel::Sms, t(100));
        // Not due yet: nothing is late.
        assert_eq!(oldest_due(&c, t(50)).unwrap(), None);
        assert_eq!(
            oldest_due(&c, t(130)).unwrap(),
            Some(Duration::from_secs(30))
        );
        // Claimed: held within its lease, late once the lease ran out unrecorded.
        claim(&c, Channel::Sms, t(130), LEASE).unwrap().unwrap();
        assert_eq!(oldest_due(&c, t(150)).unwrap(), None);
        assert_eq!(
            oldest_due(&c, t(130 + 60 + 400)).unwrap(),
            Some(Duration::from_secs(400))
        );
    }

    #[test]
    fn the_next_claims_are_the_rows_each_idle_sender_takes_next() {
        let (c, inc) = db();
        let older = queue(&c, inc, Channel::Sms, t(0));
        let after = last_id(&c).unwrap();
        assert_eq!(after, older);
        let sms = queue(&c, inc, Channel::Sms, t(5));
        let voice = queue(&c, inc, Channel::Voice, t(5));
        queue(&c, inc, Channel::Email, t(500));
        let ids = |v: Vec<Page>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
        // The SMS sender takes the older row first; only the call (and nothing not due) is next.
        assert_eq!(ids(next_claims_after(&c, after, t(10)).unwrap()), [voice]);
        let claimed = claim(&c, Channel::Sms, t(10), LEASE).unwrap().unwrap();
        assert_eq!(claimed.id, older);
        // A sender busy with a row takes the new one only later: not claimed ahead.
        assert_eq!(ids(next_claims_after(&c, after, t(10)).unwrap()), [voice]);
        finish(
            &c,
            &claimed,
            &Attempt::Sent {
                reference: None,
                detail: "ok".into(),
            },
            t(11),
        )
        .unwrap();
        let mut next = ids(next_claims_after(&c, after, t(11)).unwrap());
        next.sort();
        assert_eq!(next, [sms, voice]);
        // Rows queued before `after` are not this transaction's.
        assert!(next_claims_after(&c, voice + 1, t(11)).unwrap().is_empty());
    }

    #[test]
    fn a_claim_holds_its_row_until_the_lease_runs_out_then_it_is_claimed_again() {
        let (c, inc) = db();
        let id = queue(&c, inc, Channel::Sms, t(0));
        let first = claim(&c, Channel::Sms, t(1), LEASE).unwrap().unwrap();
        assert_eq!((first.id, first.attempts), (id, 1));
        // Held within the lease, by the same channel's next claim too.
        assert!(claim(&c, Channel::Sms, t(60), LEASE).unwrap().is_none());
        assert_eq!(next_lease_end(&c, Channel::Sms).unwrap(), Some(t(61)));
        assert_eq!(oldest_sending(&c).unwrap(), Some(t(1)));
        // Past it, the row is taken again as a new attempt, and the timeline says why.
        let again = claim(&c, Channel::Sms, t(61), LEASE).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (id, 2));
        assert!(kinds(&c, inc).contains(&"page-retry".to_string()));
        // The lost attempt's late outcome records nothing; the holder's does, once.
        let sent = Attempt::Sent {
            reference: Some("1".into()),
            detail: "ok".into(),
        };
        assert!(!finish(&c, &first, &sent, t(62)).unwrap());
        assert_eq!(state(&c, id), ("sending".into(), 2));
        assert!(finish(&c, &again, &sent, t(62)).unwrap());
        assert!(
            !finish(&c, &again, &sent, t(63)).unwrap(),
            "a retried finish is a no-op"
        );
        assert_eq!(state(&c, id), ("sent".into(), 2));
        let sent_events = kinds(&c, inc).iter().filter(|k| *k == "page-sent").count();
        assert_eq!(sent_events, 1);
        assert_eq!(oldest_sending(&c).unwrap(), None);
        assert!(claim(&c, Channel::Sms, t(200), LEASE).unwrap().is_none());
    }

    #[test]
    fn a_page_remembers_the_channel_its_text_was_written_for_across_a_fall_through() {
        let (c, inc) = db();
        let id = queue(&c, inc, Channel::Voice, t(0));
        let call = claim(&c, Channel::Voice, t(1), LEASE).unwrap().unwrap();
        assert_eq!(call.written_for, Some(Channel::Voice));
        let fell = Attempt::FallThrough {
            error: "no answer".into(),
            channel: Channel::Sms,
            address: "+4915100000001".into(),
            due_at: t(2),
        };
        assert!(finish(&c, &call, &fell, t(2)).unwrap());
        let sms = claim(&c, Channel::Sms, t(3), LEASE).unwrap().unwrap();
        assert_eq!((sms.id, sms.channel), (id, Channel::Sms));
        assert_eq!(sms.written_for, Some(Channel::Voice));
        assert_eq!(sms.state, OutboxState::Sending);
    }

    #[test]
    fn a_lease_past_the_end_of_time_saturates() {
        let (c, inc) = db();
        queue(&c, inc, Channel::Sms, t(0));
        let p = claim(&c, Channel::Sms, t(1), Duration::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(p.attempts, 1);
        assert!(claim(&c, Channel::Sms, t(1_000_000), LEASE)
            .unwrap()
            .is_none());
    }

    #[test]
    fn rows_claimed_before_leases_existed_count_as_expired() {
        let (c, inc) = db();
        let id = queue(&c, inc, Channel::Sms, t(0));
        c.execute("UPDATE outbox SET state='sending', lease_until=NULL", [])
            .unwrap();
        let p = claim(&c, Channel::Sms, t(1), LEASE).unwrap().unwrap();
        assert_eq!(p.id, id);
    }

    #[test]
    fn a_channel_back_wakes_only_the_pages_waiting_because_of_a_failure() {
        let (c, inc) = db();
        let failed = queue(&c, inc, Channel::Sms, t(0));
        let planned = queue(&c, inc, Channel::Sms, t(120));
        let other = queue(&c, inc, Channel::Voice, t(0));
        let p = claim(&c, Channel::Sms, t(1), LEASE).unwrap().unwrap();
        assert_eq!(p.id, failed);
        finish(
            &c,
            &p,
            &Attempt::Retry {
                error: "CMS 331".into(),
                retry_at: t(100),
            },
            t(1),
        )
        .unwrap();
        assert_eq!(wake(&c, Channel::Sms, t(5)).unwrap(), 1);
        let due = |id: i64| -> i64 {
            c.query_row("SELECT due_at FROM outbox WHERE id=?1", [id], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(due(failed), ms(t(5)));
        assert_eq!(due(planned), ms(t(120)), "a planned page keeps its time");
        assert_eq!(due(other), ms(t(0)));
        assert_eq!(
            claim(&c, Channel::Sms, t(5), LEASE).unwrap().unwrap().id,
            failed
        );
    }

    #[test]
    fn depth_counts_only_the_channels_that_can_be_sent() {
        let (c, inc) = db();
        queue(&c, inc, Channel::Sms, t(0));
        queue(&c, inc, Channel::Email, t(0));
        queue(&c, inc, Channel::Email, t(0));
        assert_eq!(depth(&c, &Channel::ALL).unwrap().0, 3);
        assert_eq!(
            depth(&c, &[Channel::Sms, Channel::Voice]).unwrap(),
            (1, Some(t(0)))
        );
        assert_eq!(depth(&c, &[Channel::Email]).unwrap().0, 2);
        assert_eq!(depth(&c, &[]).unwrap(), (0, None));
        let unserved = pending_unserved(&c, &[Channel::Sms, Channel::Voice]).unwrap();
        assert_eq!(unserved.len(), 2);
        assert!(unserved.iter().all(|p| p.channel == Channel::Email));
    }

    #[test]
    fn a_stakeholders_delivery_names_the_number_as_the_sent_entry_does() {
        let (c, inc) = db();
        let id = enqueue(
            &c,
            &NewPage {
                kind: PageKind::Status,
                incident_id: Some(inc),
                user_id: None,
                channel: Channel::Sms,
                address: "+4915100000009".into(),
                subject: None,
                body: "b".into(),
                priority: 1,
                due_at: t(0),
            },
            t(0),
        )
        .unwrap();
        c.execute(
            "UPDATE outbox SET state='sent', reference='7' WHERE id=?1",
            [id],
        )
        .unwrap();
        let (page, way_on) = delivered(&c, "7", "", Report::Delivered, "ok", t(1), |_, _| {
            panic!("a delivered page goes nowhere")
        })
        .unwrap()
        .unwrap();
        assert_eq!((page.id, way_on.is_none()), (id, true));
        let msg: String = c
            .query_row(
                "SELECT message FROM events WHERE kind='page-delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(msg, "sms to +4915100000009 delivered: ok");
    }

    /// The reference counter is shared with replies and self-tests: a report about another
    /// recipient that carries a page's reference is not that page's, while the page's own
    /// number in any rendering is.
    #[test]
    fn a_report_is_matched_on_its_recipient_too() {
        let (c, inc) = db();
        let id = queue(&c, inc, Channel::Sms, t(0));
        c.execute(
            "UPDATE outbox SET state='sent', reference='7' WHERE id=?1",
            [id],
        )
        .unwrap();
        let never = |_: &Page, _: &[Incident]| -> Option<Attempt> { panic!("not this page") };
        let other = delivered(
            &c,
            "7",
            "+4915199999999",
            Report::Undelivered,
            "Failed",
            t(1),
            never,
        );
        assert!(other.unwrap().is_none(), "a reply's report moved the page");
        assert_eq!(state(&c, id).0, "sent");
        for ours in ["015100000001", "4915100000001", "+4915100000001"] {
            c.execute("UPDATE outbox SET state='sent' WHERE id=?1", [id])
                .unwrap();
            let (page, _) = delivered(&c, "7", ours, Report::Delivered, "ok", t(2), |_, _| None)
                .unwrap()
                .unwrap_or_else(|| panic!("{ours} is the page's number"));
            assert_eq!(page.id, id);
        }
        assert!(same_number("+4915100000001", "015100000001"));
        assert!(!same_number("+4915100000001", "+4915100000011"));
        assert!(!same_number("+49151", "151"), "too short to tell");
    }

    #[test]
    fn an_undelivered_sms_moves_on_in_the_same_write_and_only_once() {
        let (c, inc) = db();
        let id = queue(&c, inc, Channel::Sms, t(0));
        let p = claim(&c, Channel::Sms, t(1), LEASE).unwrap().unwrap();
        let sent = Attempt::Sent {
            reference: Some("40,41".into()),
            detail: "mr 40,41".into(),
        };
        assert!(finish(&c, &p, &sent, t(1)).unwrap());
        let to_voice = |p: &Page, _: &[Incident]| {
            Some(Attempt::FallThrough {
                error: format!("not delivered (page {})", p.id),
                channel: Channel::Voice,
                address: p.address.clone(),
                due_at: t(60),
            })
        };
        // The centre is still trying: noted, nothing moves.
        let (_, way_on) = delivered(
            &c,
            "41",
            "",
            Report::StillTrying,
            "Pending",
            t(30),
            |_, _| panic!("still trying is not undelivered"),
        )
        .unwrap()
        .unwrap();
        assert!(way_on.is_none());
        assert_eq!(state(&c, id).0, "sent");
        // It gave up: the row is pending again, on the next channel.
        let (page, way_on) =
            delivered(&c, "41", "", Report::Undelivered, "Failed", t(60), to_voice)
                .unwrap()
                .unwrap();
        assert_eq!(page.id, id);
        assert!(matches!(way_on, Some(Attempt::FallThrough { .. })));
        let (channel, due, error): (String, i64, String) = c
            .query_row(
                "SELECT channel, due_at, last_error FROM outbox WHERE id=?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(state(&c, id).0, "pending");
        assert_eq!(channel, "voice");
        assert_eq!(due, ms(t(60)));
        assert_eq!(error, format!("not delivered (page {id})"));
        let k = kinds(&c, inc);
        assert_eq!(
            k[k.len() - 3..],
            ["page-undelivered", "page-undelivered", "page-fallback"]
        );
        // The report of the other part finds no sent page: the page moved on once.
        assert!(
            delivered(&c, "40", "", Report::Undelivered, "Failed", t(61), to_voice)
                .unwrap()
                .is_none()
        );
        // One part reported delivered, the other not: the person holds half a message, and
        // the page moves on all the same.
        let id = queue(&c, inc, Channel::Sms, t(100));
        let p = claim(&c, Channel::Sms, t(100), LEASE).unwrap().unwrap();
        let sent = Attempt::Sent {
            reference: Some("50,51".into()),
            detail: "mr 50,51".into(),
        };
        assert!(finish(&c, &p, &sent, t(100)).unwrap());
        delivered(
            &c,
            "50",
            "",
            Report::Delivered,
            "Delivered",
            t(101),
            |_, _| None,
        )
        .unwrap();
        assert_eq!(state(&c, id).0, "delivered");
        let (_, way_on) = delivered(
            &c,
            "51",
            "",
            Report::Undelivered,
            "Failed",
            t(102),
            to_voice,
        )
        .unwrap()
        .unwrap();
        assert!(way_on.is_some());
        assert_eq!(state(&c, id).0, "pending");
    }

    /// References wrap at 256: a report is about the newest message with its reference, and
    /// an older page with the same number is never moved in its place.
    #[test]
    fn a_report_is_about_the_newest_message_with_its_reference() {
        let (c, inc) = db();
        let send = |at: i64, reference: &str| {
            let id = queue(&c, inc, Channel::Sms, t(at));
            let p = claim(&c, Channel::Sms, t(at), LEASE).unwrap().unwrap();
            let sent = Attempt::Sent {
                reference: Some(reference.into()),
                detail: String::new(),
            };
            assert!(finish(&c, &p, &sent, t(at)).unwrap());
            id
        };
        let old = send(0, "7");
        delivered(&c, "7", "", Report::Delivered, "Delivered", t(1), |_, _| {
            None
        })
        .unwrap();
        let any = |_: &Page, _: &[Incident]| {
            Some(Attempt::Retry {
                error: "x".into(),
                retry_at: t(9999),
            })
        };
        // A new page is being submitted when its part 7 is reported undelivered: no match (it
        // is looked up again later), and the old delivered page stays as it was.
        queue(&c, inc, Channel::Sms, t(300));
        let submitting = claim(&c, Channel::Sms, t(300), LEASE).unwrap().unwrap();
        assert!(
            delivered(&c, "7", "", Report::Undelivered, "Failed", t(301), any)
                .unwrap()
                .is_none()
        );
        assert_eq!(state(&c, old).0, "delivered");
        let done = Attempt::Cancelled {
            reason: "done".into(),
        };
        assert!(finish(&c, &submitting, &done, t(302)).unwrap());
        // A page that moved on to voice keeps its reference: the other part's report finds it
        // and does nothing, rather than an older page.
        let older = send(10, "9");
        let both = send(400, "8,9");
        delivered(
            &c,
            "8",
            "",
            Report::Undelivered,
            "Failed",
            t(401),
            |p, _| {
                Some(Attempt::FallThrough {
                    error: "x".into(),
                    channel: Channel::Voice,
                    address: p.address.clone(),
                    due_at: t(401),
                })
            },
        )
        .unwrap()
        .unwrap();
        assert!(
            delivered(&c, "9", "", Report::Undelivered, "Failed", t(402), any)
                .unwrap()
                .is_none()
        );
        assert_eq!(state(&c, older).0, "sent");
        assert_eq!(state(&c, both).0, "pending");
        // Past the validity period nothing matches at all.
        let late = t(400) + chrono::Duration::days(3);
        assert!(
            delivered(&c, "8", "", Report::Undelivered, "Failed", late, any)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn recovery_after_a_crash_clears_the_lease() {
        let (c, inc) = db();
        let id = queue(&c, inc, Channel::Sms, t(0));
        claim(&c, Channel::Sms, t(1), LEASE).unwrap().unwrap();
        assert_eq!(recover_in_flight(&c, t(2)).unwrap(), 1);
        assert_eq!(state(&c, id), ("pending".into(), 1));
        assert_eq!(
            claim(&c, Channel::Sms, t(2), LEASE)
                .unwrap()
                .unwrap()
                .attempts,
            2
        );
    }
}
