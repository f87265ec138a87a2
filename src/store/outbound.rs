//! Outbound notifications in the durable outbox (channel `webhook`, kind `outbound`, address =
//! destination id): the fan-out from the timeline, the per-destination bound, claim and finish.
//!
//! Every function runs inside the caller's store transaction and takes `now`. The rows are
//! outbox rows: a claim marks them `sending` and a finish settles them through the outbox's one
//! state machine (`outbox::mark_sending`, `outbox::holds`, `outbox::settle`:
//! `pending -> sending -> sent | failed | cancelled`), with its leases and crash recovery, so a
//! notification is delivered at least once across a crash. What is outbound's own is the queue
//! order and the timeline's words. Each destination is a FIFO queue: the oldest row is
//! always the next one, and a row waiting for its retry holds the ones behind it, so a receiver
//! sees an incident's trigger before its resolve.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::events::record;
use super::kinds::EventKind;
use super::outbox::{self, Settle};
use super::queries::incident;
use super::Tx;
use super::{from_ms, ms, Store, StoreError};
use crate::config::outbound::{Destination, Event, Kind};
use crate::incident::{Incident, IncidentId, Status, Transition};

/// The outbox channel of outbound rows.
pub const CHANNEL: &str = "webhook";
/// The outbox kind of outbound rows.
pub const KIND: super::kinds::PageKind = super::kinds::PageKind::Outbound;
/// Most timeline events one fan-out pass looks at (the rest wait for the next pass).
const FAN_OUT_BATCH: i64 = 500;

/// A claimed outbound notification.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub incident_id: Option<IncidentId>,
    /// The destination id.
    pub destination: String,
    /// `incident.triggered` etc.
    pub event: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i64,
}

/// What the next row of a destination is.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Claimed: marked `sending`, attempt counted; send it now.
    Row(Row),
    /// The head of the queue is waiting for its retry at this time.
    Wait(DateTime<Utc>),
    /// Nothing queued.
    Idle,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Sent { detail: String },
    /// Try again at `retry_at` (timeout, refused, 429, 5xx).
    Retry {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// The receiver refused it for good (4xx other than 408/429): no retry will help.
    Failed { error: String },
}

/// Moves the fan-out cursor to the newest timeline event without queueing anything (used when
/// no destination is configured, so adding one later does not announce old incidents).
pub fn skip_to_end(conn: &Tx) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE outbound_cursor SET last_event_id=(SELECT coalesce(max(id),0) FROM events) \
         WHERE id=1 AND last_event_id<>(SELECT coalesce(max(id),0) FROM events)",
        [],
    )?;
    Ok(())
}

/// One outbound notification: an incident as it stood at one of its transitions.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: Event,
    /// The incident as of the event: status and ack/resolve details match `event`.
    pub incident: Incident,
    /// When the transition happened.
    pub at: DateTime<Utc>,
}

/// Renders a notice into the body a destination of `kind` receives. The fan-out writes the body
/// into the row in its own transaction, so what is sent is what was true at the transition; the
/// rendering itself is the outbound module's (`outbound::payload::render`).
pub type Render = fn(Kind, &Notice) -> serde_json::Value;

/// Turns trigger/acknowledge/resolve timeline events after the cursor into outbox rows for every
/// destination that wants them, enforces each destination's bound, and moves the cursor, all in
/// the caller's transaction. Returns how many rows were queued. Writes nothing when there is
/// nothing new (so it does not wake the store's commit watchers in a loop).
pub fn fan_out(
    conn: &Tx,
    destinations: &[Destination],
    render: Render,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let cursor: i64 = conn
        .prepare_cached("SELECT last_event_id FROM outbound_cursor WHERE id=1")?
        .query_row([], |r| r.get(0))?;
    let newest: i64 = conn
        .prepare_cached("SELECT coalesce(max(id),0) FROM events")?
        .query_row([], |r| r.get(0))?;
    if newest <= cursor {
        return Ok(0);
    }
    let rows = events_after(conn, cursor, newest)?;
    // A full batch stops at its last event; otherwise everything up to `newest` was seen.
    let upto = if rows.len() as i64 == FAN_OUT_BATCH {
        rows.last().map_or(newest, |r| r.0)
    } else {
        newest
    };
    let mut queued = 0;
    let mut touched: Vec<&Destination> = Vec::new();
    for (_, incident_id, kind, actor, via, at) in rows {
        let Some(ev) = Event::from_timeline(&kind) else {
            continue;
        };
        let wanted: Vec<&Destination> = destinations
            .iter()
            .filter(|d| d.events.contains(&ev))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let Some(mut inc) = incident(conn, incident_id)? else {
            continue;
        };
        let at = from_ms(at);
        let by = Transition {
            at,
            by: actor.unwrap_or_default(),
            via: via.unwrap_or_default(),
        };
        as_of(&mut inc, ev, by);
        let notice = Notice {
            event: ev,
            incident: inc,
            at,
        };
        for d in wanted {
            if !d.wants_route(notice.incident.route.as_deref()) {
                continue;
            }
            let body = render(d.kind, &notice).to_string();
            enqueue(conn, d, incident_id, ev, &body, now)?;
            queued += 1;
            if !touched.iter().any(|t| t.id == d.id) {
                touched.push(d);
            }
        }
    }
    conn.prepare_cached("UPDATE outbound_cursor SET last_event_id=?1 WHERE id=1")?
        .execute([upto])?;
    for d in touched {
        drop_oldest(conn, &d.id, d.max_queued, now)?;
    }
    Ok(queued)
}

/// A timeline event the fan-out looks at: id, incident, kind, actor, via, at.
type EventRow = (i64, IncidentId, String, Option<String>, Option<String>, i64);

/// The trigger/acknowledge/resolve events after `cursor` up to `newest`, oldest first, at most
/// [`FAN_OUT_BATCH`].
fn events_after(conn: &Tx, cursor: i64, newest: i64) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, incident_id, kind, actor, via, at FROM events WHERE id>?1 AND id<=?2 \
         AND incident_id IS NOT NULL AND kind IN ('triggered','acknowledged','resolved') \
         ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![cursor, newest, FAN_OUT_BATCH], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })?;
    rows.collect()
}

/// Sets `inc` back to how it stood right after `ev` (done `by`): a later change may already be
/// committed, and a notification tells what happened at its event.
fn as_of(inc: &mut Incident, ev: Event, by: Transition) {
    match ev {
        Event::Trigger => {
            inc.status = Status::Triggered;
            inc.acknowledged = None;
            inc.resolved = None;
        }
        Event::Acknowledge => {
            inc.status = Status::Acknowledged;
            inc.acknowledged = Some(by);
            inc.resolved = None;
        }
        Event::Resolve => {
            let at = by.at;
            inc.status = Status::Resolved;
            inc.acknowledged = inc.acknowledged.take().filter(|a| a.at <= at);
            inc.resolved = Some(by);
        }
    }
}

/// Queues one notification for `d`, due now.
fn enqueue(
    conn: &Tx,
    d: &Destination,
    incident_id: IncidentId,
    ev: Event,
    body: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (kind, incident_id, user_id, channel, address, subject, body, priority, \
         due_at, state, channel_since, created_at, updated_at) \
         VALUES (?1,?2,NULL,?3,?4,?5,?6,0,?7,'pending',?7,?7,?7)",
    )?
    .execute(params![
        KIND,
        incident_id,
        CHANNEL,
        d.id,
        ev.name(),
        body,
        ms(now)
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Keeps at most `max` pending rows for `destination`: the oldest beyond that are cancelled
/// (`last_error` "dropped: queue full") with a note on their incident's timeline. A row being
/// sent is never dropped. Returns how many were dropped.
pub fn drop_oldest(
    conn: &Tx,
    destination: &str,
    max: usize,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let pending: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM outbox WHERE channel=?1 AND address=?2 AND state='pending'",
        )?
        .query_row(params![CHANNEL, destination], |r| r.get(0))?;
    let excess = pending - max as i64;
    if excess <= 0 {
        return Ok(0);
    }
    let victims: Vec<(i64, Option<IncidentId>, Option<String>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, incident_id, subject FROM outbox WHERE channel=?1 AND address=?2 \
             AND state='pending' ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![CHANNEL, destination, excess], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, inc, ev) in &victims {
        outbox::withdraw_pending(conn, *id, "dropped: queue full", now)?;
        if let Some(inc) = inc {
            record(
                conn,
                Some(*inc),
                now,
                EventKind::OutboundDropped,
                None,
                &format!(
                    "outbound notification {} to {destination} dropped: more than {max} queued",
                    ev.as_deref().unwrap_or("?")
                ),
                Some(&serde_json::json!({ "outbox_id": id, "destination": destination })),
            )?;
        }
    }
    Ok(victims.len())
}

/// Claims the next row of `destination` for `lease`: a row still `sending` whose lease ran out
/// (its outcome was never recorded) first, else the oldest pending row if it is due (marking it
/// `sending` until `now + lease` and counting the attempt before anything is sent); otherwise
/// says when it will be.
pub fn claim(
    conn: &Tx,
    destination: &str,
    now: DateTime<Utc>,
    lease: std::time::Duration,
) -> rusqlite::Result<Claim> {
    type Head = (i64, Option<IncidentId>, Option<String>, String, i64, i64);
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Head> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    };
    let expired: Option<Head> = conn
        .prepare_cached(
            "SELECT id, incident_id, subject, body, attempts, due_at FROM outbox \
             WHERE channel=?1 AND address=?2 AND state='sending' AND coalesce(lease_until,0)<=?3 \
             ORDER BY id LIMIT 1",
        )?
        .query_row(params![CHANNEL, destination, ms(now)], read)
        .optional()?;
    let head = match expired {
        Some(h) => {
            tracing::warn!(
                destination,
                outbox_id = h.0,
                attempt = h.4,
                "an outbound attempt was never recorded (its lease ran out); sending again"
            );
            Some(h)
        }
        None => conn
            .prepare_cached(
                "SELECT id, incident_id, subject, body, attempts, due_at FROM outbox \
                 WHERE channel=?1 AND address=?2 AND state='pending' ORDER BY id LIMIT 1",
            )?
            .query_row(params![CHANNEL, destination], read)
            .optional()?
            .filter(|h| h.5 <= ms(now)),
    };
    let Some((id, incident_id, subject, body, attempts, _)) = head else {
        return Ok(match next_pending(conn, destination)? {
            Some(due) => Claim::Wait(from_ms(due)),
            None => Claim::Idle,
        });
    };
    outbox::mark_sending(conn, id, now, lease)?;
    Ok(Claim::Row(Row {
        id,
        incident_id,
        destination: destination.to_string(),
        event: subject.unwrap_or_default(),
        body,
        attempts: attempts + 1,
    }))
}

/// When the head of `destination`'s pending queue is due, if anything is queued.
fn next_pending(conn: &Tx, destination: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT due_at FROM outbox WHERE channel=?1 AND address=?2 AND state='pending' \
         ORDER BY id LIMIT 1",
    )?
    .query_row(params![CHANNEL, destination], |r| r.get(0))
    .optional()
}

/// Records the outcome of an attempt on the row and its incident's timeline. Retries are noted on
/// the first attempt and every tenth, so a long outage does not flood the timeline. Only the
/// attempt that still holds the row records anything (see `outbox::finish`): `false` when the
/// row was already recorded or re-claimed, so retrying a finish is safe.
pub fn finish(
    conn: &Tx,
    row: &Row,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    if !outbox::holds(conn, row.id, row.attempts)? {
        return Ok(false);
    }
    let what = format!("outbound {} to {}", row.event, row.destination);
    let note = match outcome {
        Outcome::Sent { detail } => {
            let reference = Some(detail.as_str());
            outbox::settle(conn, row.id, &Settle::Sent { reference }, now)?;
            Some((
                EventKind::OutboundSent,
                format!("{what} sent (attempt {}): {detail}", row.attempts),
            ))
        }
        Outcome::Retry { error, retry_at } => {
            let retry_at = *retry_at;
            outbox::settle(conn, row.id, &Settle::Retry { error, retry_at }, now)?;
            (row.attempts == 1 || row.attempts % 10 == 0).then(|| {
                (
                    EventKind::OutboundRetry,
                    format!(
                        "{what} failed (attempt {}): {error}; retrying, next at {}",
                        row.attempts,
                        retry_at.format("%H:%M:%S UTC")
                    ),
                )
            })
        }
        Outcome::Failed { error } => {
            outbox::settle(conn, row.id, &Settle::Failed { error }, now)?;
            Some((
                EventKind::OutboundFailed,
                format!("{what} failed for good: {error}"),
            ))
        }
    };
    if let (Some(inc), Some((kind, message))) = (row.incident_id, note) {
        record(
            conn,
            Some(inc),
            now,
            kind,
            None,
            &message,
            Some(
                &serde_json::json!({ "outbox_id": row.id, "destination": row.destination, "attempt": row.attempts }),
            ),
        )?;
    }
    Ok(true)
}

/// Pending and in-flight rows of a destination (for tests and status).
pub fn queued(conn: &Tx, destination: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM outbox WHERE channel=?1 AND address=?2 AND state IN ('pending','sending')",
    )?
    .query_row(params![CHANNEL, destination], |r| r.get(0))
}

/// The outbound operations the fan-out and destination tasks run, each one store job.
impl Store {
    /// Queues the new timeline events for `destinations` ([`fan_out`]); with none configured,
    /// only moves the cursor to the end ([`skip_to_end`]). Returns how many rows were queued.
    pub async fn outbound_fan_out(
        &self,
        destinations: std::sync::Arc<Vec<Destination>>,
        render: Render,
    ) -> Result<usize, StoreError> {
        self.call(move |c, now| {
            if destinations.is_empty() {
                skip_to_end(c)?;
                Ok(0)
            } else {
                Ok(fan_out(c, &destinations, render, now)?)
            }
        })
        .await
    }

    /// Claims the next row of `destination` for `lease`; see [`claim`].
    pub async fn outbound_claim(
        &self,
        destination: String,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        self.call(move |c, now| Ok(claim(c, &destination, now, lease)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::store::events::record;
    use crate::store::kinds::EventKind;
    use chrono::TimeZone;
    use std::time::Duration;

    /// The fan-out with the bodies the daemon sends.
    fn fan_out(c: &Tx, d: &[Destination], now: DateTime<Utc>) -> rusqlite::Result<usize> {
        super::fan_out(c, d, crate::outbound::payload::render, now)
    }

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        Tx::owned(c)
    }

    fn dest(id: &str, max: usize) -> Destination {
        Destination {
            id: id.into(),
            kind: Kind::Webhook,
            url: Secret::new("http://127.0.0.1:9/x"),
            secret: Some(Secret::new("k")),
            signature_header: "X-Pagerbox-Signature".into(),
            routes: vec![],
            events: vec![Event::Trigger, Event::Acknowledge, Event::Resolve],
            max_queued: max,
            timeout: Duration::from_secs(1),
        }
    }

    const LEASE: Duration = Duration::from_secs(60);

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn new_incident(c: &Tx, key: &str, route: Option<&str>, at: DateTime<Utc>) -> i64 {
        c.execute(
            "INSERT INTO incidents (dedup_key,status,severity,summary,route,first_seen,last_seen) \
             VALUES (?1,'triggered','critical','s',?2,?3,?3)",
            params![key, route, ms(at)],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        record(
            c,
            Some(id),
            at,
            EventKind::Triggered,
            None,
            "critical s",
            None,
        )
        .unwrap();
        id
    }

    fn events_of(c: &Tx, id: i64) -> Vec<String> {
        let mut s = c
            .conn()
            .prepare("SELECT kind FROM events WHERE incident_id=?1 ORDER BY id")
            .unwrap();
        let r = s.query_map([id], |r| r.get(0)).unwrap();
        r.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn history_before_the_migration_is_not_announced() {
        let c = db();
        // The migration put the cursor at the newest event; an incident created before any
        // destination existed is skipped by skip_to_end.
        new_incident(&c, "old", None, t(0));
        skip_to_end(&c).unwrap();
        assert_eq!(fan_out(&c, &[dest("w", 10)], t(1)).unwrap(), 0);
        let id = new_incident(&c, "new", None, t(2));
        assert_eq!(fan_out(&c, &[dest("w", 10)], t(3)).unwrap(), 1);
        // Nothing new: nothing written, nothing queued twice.
        assert_eq!(fan_out(&c, &[dest("w", 10)], t(4)).unwrap(), 0);
        match claim(&c, "w", t(5), LEASE).unwrap() {
            Claim::Row(r) => {
                assert_eq!(r.incident_id, Some(id));
                assert_eq!(r.event, "incident.triggered");
                assert_eq!(r.attempts, 1);
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(v["incident"]["dedup_key"], "new");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn route_and_event_filters_apply() {
        let c = db();
        let mut d = dest("w", 10);
        d.routes = vec!["db".into()];
        d.events = vec![Event::Resolve];
        new_incident(&c, "a", Some("web"), t(0));
        let b = new_incident(&c, "b", Some("db"), t(0));
        assert_eq!(fan_out(&c, std::slice::from_ref(&d), t(1)).unwrap(), 0);
        record(
            &c,
            Some(b),
            t(2),
            EventKind::Resolved,
            None,
            "resolved by x via api",
            None,
        )
        .unwrap();
        assert_eq!(fan_out(&c, &[d], t(3)).unwrap(), 1);
    }

    #[test]
    fn queue_is_fifo_and_a_waiting_head_holds_the_rest() {
        let c = db();
        let id = new_incident(&c, "a", None, t(0));
        record(&c, Some(id), t(1), EventKind::Resolved, None, "r", None).unwrap();
        fan_out(&c, &[dest("w", 10)], t(1)).unwrap();
        let Claim::Row(first) = claim(&c, "w", t(2), LEASE).unwrap() else {
            panic!()
        };
        assert_eq!(first.event, "incident.triggered");
        finish(
            &c,
            &first,
            &Outcome::Retry {
                error: "HTTP 500".into(),
                retry_at: t(10),
            },
            t(2),
        )
        .unwrap();
        // The resolve is due, but the trigger is first: wait for it.
        match claim(&c, "w", t(3), LEASE).unwrap() {
            Claim::Wait(at) => assert_eq!(at, t(10)),
            other => panic!("{other:?}"),
        }
        let Claim::Row(again) = claim(&c, "w", t(10), LEASE).unwrap() else {
            panic!()
        };
        assert_eq!((again.id, again.attempts), (first.id, 2));
        finish(
            &c,
            &again,
            &Outcome::Sent {
                detail: "HTTP 200".into(),
            },
            t(10),
        )
        .unwrap();
        let Claim::Row(second) = claim(&c, "w", t(11), LEASE).unwrap() else {
            panic!()
        };
        assert_eq!(second.event, "incident.resolved");
        finish(
            &c,
            &second,
            &Outcome::Failed {
                error: "HTTP 404".into(),
            },
            t(11),
        )
        .unwrap();
        assert!(matches!(claim(&c, "w", t(12), LEASE).unwrap(), Claim::Idle));
        let ev = events_of(&c, id);
        assert!(ev.contains(&"outbound-retry".to_string()), "{ev:?}");
        assert!(ev.contains(&"outbound-sent".to_string()), "{ev:?}");
        assert!(ev.contains(&"outbound-failed".to_string()), "{ev:?}");
    }

    #[test]
    fn over_the_bound_the_oldest_are_dropped_with_a_note() {
        let c = db();
        let d = dest("w", 3);
        let ids: Vec<i64> = (0..5)
            .map(|i| new_incident(&c, &format!("k{i}"), None, t(i)))
            .collect();
        assert_eq!(fan_out(&c, std::slice::from_ref(&d), t(6)).unwrap(), 5);
        assert_eq!(queued(&c, "w").unwrap(), 3);
        for (n, id) in ids.iter().enumerate() {
            let dropped = events_of(&c, *id).contains(&"outbound-dropped".to_string());
            assert_eq!(dropped, n < 2, "incident {id}");
        }
        let errs: Vec<(String, String)> = c
            .conn()
            .prepare("SELECT state, last_error FROM outbox WHERE incident_id=?1")
            .unwrap()
            .query_map([ids[0]], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            errs,
            vec![("cancelled".into(), "dropped: queue full".into())]
        );
        // The survivors are the newest, still in order.
        let Claim::Row(r) = claim(&c, "w", t(7), LEASE).unwrap() else {
            panic!()
        };
        assert_eq!(r.incident_id, Some(ids[2]));
    }

    #[test]
    fn a_row_in_flight_is_never_dropped_and_comes_back_after_a_crash() {
        let c = db();
        let d = dest("w", 1);
        let a = new_incident(&c, "a", None, t(0));
        fan_out(&c, std::slice::from_ref(&d), t(1)).unwrap();
        let Claim::Row(r) = claim(&c, "w", t(1), LEASE).unwrap() else {
            panic!()
        };
        new_incident(&c, "b", None, t(2));
        new_incident(&c, "c", None, t(2));
        fan_out(&c, std::slice::from_ref(&d), t(3)).unwrap();
        // One pending (c) plus the one in flight (a).
        assert_eq!(queued(&c, "w").unwrap(), 2);
        crate::store::outbox::recover_in_flight(&c, t(4)).unwrap();
        let Claim::Row(again) = claim(&c, "w", t(4), LEASE).unwrap() else {
            panic!()
        };
        assert_eq!((again.id, again.incident_id), (r.id, Some(a)));
    }

    #[test]
    fn outbound_rows_are_not_paging_depth() {
        let c = db();
        new_incident(&c, "a", None, t(0));
        fan_out(&c, &[dest("w", 10)], t(1)).unwrap();
        assert_eq!(
            crate::store::outbox::depth(&c, &crate::incident::Channel::ALL)
                .unwrap()
                .0,
            0
        );
        assert!(
            crate::store::outbox::claim(&c, crate::incident::Channel::Sms, t(2), LEASE)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_unrecorded_attempt_is_taken_again_once_its_lease_runs_out() {
        let c = db();
        let id = new_incident(&c, "a", None, t(0));
        fan_out(&c, &[dest("w", 10)], t(1)).unwrap();
        let Claim::Row(first) = claim(&c, "w", t(1), LEASE).unwrap() else {
            panic!()
        };
        // Its outcome is never recorded. Within the lease the row is held.
        assert!(matches!(claim(&c, "w", t(30), LEASE).unwrap(), Claim::Idle));
        let Claim::Row(again) = claim(&c, "w", t(61), LEASE).unwrap() else {
            panic!("the lease ran out: the row is claimed again")
        };
        assert_eq!((again.id, again.attempts), (first.id, 2));
        // The late answer of the first attempt records nothing; the new attempt's does.
        let sent = Outcome::Sent {
            detail: "HTTP 200".into(),
        };
        assert!(!finish(&c, &first, &sent, t(62)).unwrap());
        assert!(finish(&c, &again, &sent, t(62)).unwrap());
        // Recording it twice (a retried finish whose first answer was lost) changes nothing.
        assert!(!finish(&c, &again, &sent, t(63)).unwrap());
        let sent_events = events_of(&c, id)
            .iter()
            .filter(|e| *e == "outbound-sent")
            .count();
        assert_eq!(sent_events, 1);
        assert!(matches!(claim(&c, "w", t(64), LEASE).unwrap(), Claim::Idle));
    }
}
