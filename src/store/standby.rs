//! Standby holds as SQL (table `standby_holds`): every function runs inside the caller's store
//! transaction and takes `now`.
//!
//! The escalation engine asks [`hold`] before it pages the first step of an incident on a
//! standby route; that is the only question it asks. The hold's end is written when the hold
//! opens (the incident's first sight plus the grace) and only ever moved earlier, by the standby
//! task ([`release`]) when the upstream cannot get anyone to acknowledge. So if the standby task
//! stops, hangs or never gets an answer, the engine still pages when the grace ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::events::record;
use super::kinds::EventKind;
use super::queries::transition;
use super::Tx;
use super::{from_ms, ms, StoreError};
use crate::config::standby::Upstream;
use crate::incident::{Actor, Incident, IncidentId, Status};
use crate::store::outbound::{CHANNEL, KIND};

/// The outbox `subject` of a queued upstream acknowledgement.
pub const ACK_SUBJECT: &str = "standby.acknowledge";

/// The outbox address (queue name) of a route's upstream acknowledgements.
pub fn ack_queue(route: &str) -> String {
    format!("standby:{route}")
}

/// What the upstream said about one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Open and nobody has acknowledged it yet.
    Triggered,
    /// Acknowledged there, by this person (the name the upstream shows).
    Acknowledged { by: String },
    /// Resolved (closed) there, by this person.
    Resolved { by: String },
    /// The upstream answered but does not know the incident (yet).
    Unknown,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The upstream answered.
    Answered(Answer),
    /// No usable answer: refused, timed out, an HTTP error, a body we cannot read.
    Failed { error: String },
}

impl Check {
    /// Whether this check counts towards the consecutive failures that end a hold early. An
    /// upstream that does not know the incident counts: it cannot get anyone to acknowledge it.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Check::Failed { .. } | Check::Answered(Answer::Unknown)
        )
    }

    /// Whether the upstream could be reached at all.
    pub fn reached(&self) -> bool {
        matches!(self, Check::Answered(_))
    }
}

/// Why pagerbox pages itself for an incident the upstream was supposed to handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageReason {
    /// Still triggered upstream when the grace ended.
    NotAcknowledged { upstream: Upstream, grace: Duration },
    /// The upstream did not know the incident when the grace ended.
    UnknownUpstream { upstream: Upstream },
    /// The upstream could not be asked (at the grace end, or `failures` times in a row).
    Unreachable { upstream: Upstream, failures: u32 },
    /// No check finished before the grace ended.
    NoAnswer { upstream: Upstream, grace: Duration },
}

impl PageReason {
    /// One short sentence for the SMS and the timeline (GSM-7 only, so the page stays one part
    /// whenever it can).
    pub fn describe(&self) -> String {
        let g = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            PageReason::NotAcknowledged { upstream, grace } => {
                format!("{} not acked in {}", upstream.name(), g(grace))
            }
            PageReason::UnknownUpstream { upstream } => {
                format!("{} does not know this alert", upstream.name())
            }
            PageReason::Unreachable { upstream, failures } => {
                format!("{} unreachable ({failures} failed checks)", upstream.name())
            }
            PageReason::NoAnswer { upstream, grace } => {
                format!("no answer from {} in {}", upstream.name(), g(grace))
            }
        }
    }
}

/// What the upstream already did, to be done locally too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    Acknowledge { by: String },
    Resolve { by: String },
}

/// What the engine does with a due first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Page nobody before this instant.
    Until(DateTime<Utc>),
    /// Page now; `reason` is set the first time, when the hold has just ended, to be said in
    /// the page.
    Page { reason: Option<String> },
}

/// A route's standby, as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Standby {
    pub upstream: Upstream,
    pub grace: Duration,
}

/// Whether the due step `first_step` of `inc` is held. `standby` is its route's standby (`None`:
/// the route pages directly). A hold opens only for the first step of the first run; once a hold
/// ended (paged or mirrored), the escalation runs as on any other route.
pub fn hold(
    conn: &Tx,
    standby: Option<Standby>,
    inc: &Incident,
    first_step: bool,
    now: DateTime<Utc>,
) -> rusqlite::Result<Hold> {
    let row: Option<(String, i64, Option<String>)> = conn
        .prepare_cached("SELECT state, hold_until, reason FROM standby_holds WHERE incident_id=?1")?
        .query_row([inc.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some(standby) = standby else {
        if row.as_ref().is_some_and(|r| r.0 == "held") {
            release_held(conn, inc.id, now)?;
        }
        return Ok(Hold::Page { reason: None });
    };
    match row {
        None if first_step => open_hold(conn, standby, inc, now),
        None => Ok(Hold::Page { reason: None }),
        Some((state, until, _)) if state == "held" && from_ms(until) > now => {
            Ok(Hold::Until(from_ms(until)))
        }
        Some((state, _, reason)) if state == "held" => {
            // No check recorded what the grace's end means: none got an answer in time.
            let reason = reason.unwrap_or_else(|| {
                PageReason::NoAnswer {
                    upstream: standby.upstream,
                    grace: standby.grace,
                }
                .describe()
            });
            end_hold(conn, inc.id, &reason, now)
        }
        Some(_) => Ok(Hold::Page { reason: None }),
    }
}

/// Opens the hold of `inc`'s first step: it ends `standby.grace` after the incident was first
/// seen. A grace already over when the hold opens (the engine reached the step late) ends it at
/// once, with the reason in the page.
fn open_hold(
    conn: &Tx,
    standby: Standby,
    inc: &Incident,
    now: DateTime<Utc>,
) -> rusqlite::Result<Hold> {
    let until = crate::clock::add(inc.first_seen, standby.grace);
    conn.prepare_cached(
        "INSERT INTO standby_holds (incident_id, route, state, opened_at, hold_until) \
         VALUES (?1,?2,'held',?3,?4)",
    )?
    .execute(params![
        inc.id,
        inc.route.as_deref().unwrap_or(""),
        ms(inc.first_seen),
        ms(until)
    ])?;
    if until > now {
        record(
            conn,
            Some(inc.id),
            now,
            EventKind::Standby,
            None,
            &format!(
                "held in standby: {} has until {} to get it acknowledged",
                standby.upstream.name(),
                until.format("%H:%M:%S UTC")
            ),
            Some(&serde_json::json!({ "upstream": standby.upstream.as_str(), "until": until })),
        )?;
        tracing::info!(incident = inc.id, upstream = standby.upstream.as_str(), until = %until, "page held in standby");
        return Ok(Hold::Until(until));
    }
    end_hold(
        conn,
        inc.id,
        &format!("{} had no time left in the grace", standby.upstream.name()),
        now,
    )
}

/// The route of a held incident is no longer in standby (a reload took it out): the hold ends
/// and the escalation pages as on any other route.
fn release_held(conn: &Tx, id: IncidentId, now: DateTime<Utc>) -> rusqlite::Result<()> {
    set_state(conn, id, "paged")?;
    record(
        conn,
        Some(id),
        now,
        EventKind::Standby,
        None,
        "the route is no longer in standby: paging",
        None,
    )?;
    Ok(())
}

fn end_hold(conn: &Tx, id: IncidentId, reason: &str, now: DateTime<Utc>) -> rusqlite::Result<Hold> {
    conn.prepare_cached(
        "UPDATE standby_holds SET state='paged', reason=?2, hold_until=min(hold_until, ?3) \
         WHERE incident_id=?1",
    )?
    .execute(params![id, reason, ms(now)])?;
    record(
        conn,
        Some(id),
        now,
        EventKind::Standby,
        None,
        &format!("standby hold over, paging: {reason}"),
        None,
    )?;
    tracing::warn!(incident = id, %reason, "standby hold over: paging locally");
    Ok(Hold::Page {
        reason: Some(reason.to_string()),
    })
}

fn set_state(conn: &Tx, id: IncidentId, state: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE standby_holds SET state=?2 WHERE incident_id=?1")?
        .execute(params![id, state])?;
    Ok(())
}

/// An incident whose page is held, for the standby task to ask the upstream about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub incident_id: IncidentId,
    pub route: String,
    /// The dedup key: PagerDuty's `incident_key`, Opsgenie's alias.
    pub dedup_key: String,
    pub opened_at: DateTime<Utc>,
    pub hold_until: DateTime<Utc>,
    /// Checks in a row that failed.
    pub failures: u32,
    /// The hold is over and the box pages locally; the upstream is still asked, so that an
    /// acknowledgement made there (the person answered the cloud pager's page) stops the box's
    /// paging too.
    pub paging: bool,
}

/// How long after its hold ended the upstream is still asked about an incident the box pages:
/// long enough for anyone the cloud pager woke to acknowledge there, not forever (an incident
/// nobody acknowledges stays triggered, and each question spends the upstream's rate limit).
pub const ASK_WHILE_PAGING: Duration = Duration::from_secs(24 * 3600);

/// Incidents of standby routes the upstream is asked about (at most `limit`): held ones, oldest
/// hold end first, then those the box pages since their hold ended (for
/// [`ASK_WHILE_PAGING`]), least recently asked first, while still triggered. Not one the box
/// acknowledged and then escalated again: the upstream's acknowledgement would be the box's own,
/// pushed there before.
pub fn held(conn: &Tx, limit: usize, now: DateTime<Utc>) -> rusqlite::Result<Vec<Held>> {
    let since = crate::clock::sub(now, ASK_WHILE_PAGING);
    conn.prepare_cached(
        "SELECT h.incident_id, h.route, i.dedup_key, h.opened_at, h.hold_until, h.failures, \
                h.state='paged' \
         FROM standby_holds h JOIN incidents i ON i.id = h.incident_id \
         WHERE i.status='triggered' AND (h.state='held' \
           OR (h.state='paged' AND h.ack_queued=0 \
               AND h.hold_until >= ?2)) \
         ORDER BY h.state='paged', \
           CASE WHEN h.state='held' THEN h.hold_until ELSE coalesce(h.checked_at, 0) END \
         LIMIT ?1",
    )?
    .query_map(params![limit as i64, ms(since)], |r| {
        Ok(Held {
            incident_id: r.get(0)?,
            route: r.get(1)?,
            dedup_key: r.get(2)?,
            opened_at: from_ms(r.get(3)?),
            hold_until: from_ms(r.get(4)?),
            failures: r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
            paging: r.get(6)?,
        })
    })?
    .collect()
}

/// How many incidents are held right now (for `/healthz`, `/metrics` and the status page).
pub fn held_count(conn: &Tx) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM standby_holds h JOIN incidents i ON i.id = h.incident_id \
         WHERE h.state='held' AND i.status='triggered'",
    )?
    .query_row([], |r| r.get(0))
}

/// Records one check of a held incident, the consecutive failures it makes, and what the page
/// will say if the grace ends on this answer (`at_grace`). A hold that ended meanwhile is left
/// alone.
pub fn record_check(
    conn: &Tx,
    id: IncidentId,
    check: &Check,
    failures: u32,
    at_grace: Option<&str>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let said = match check {
        Check::Answered(a) => format!("{a:?}"),
        Check::Failed { error } => format!("failed: {error}"),
    };
    conn.prepare_cached(
        "UPDATE standby_holds SET failures=?2, checked_at=?3, last_check=?4, reason=?5 \
         WHERE incident_id=?1 AND state='held'",
    )?
    .execute(params![id, failures, ms(now), said, at_grace])?;
    Ok(())
}

/// Notes that the upstream was asked about an incident the box pages (any answer but an
/// acknowledgement or resolve leaves it as it is), so the next rounds ask the others first.
pub fn asked_while_paging(conn: &Tx, id: IncidentId, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE standby_holds SET checked_at=?2 WHERE incident_id=?1 AND state='paged'",
    )?
    .execute(params![id, ms(now)])?;
    Ok(())
}

/// Ends a hold early: the engine pages at its next pass, saying `reason`. Returns whether a
/// hold was held; the caller then moves the escalation's due time to now (the hold had set it
/// to the hold's end) through the state machine, in the same transaction, whose commit wakes
/// the engine.
pub fn release(
    conn: &Tx,
    id: IncidentId,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE standby_holds SET hold_until=min(hold_until, ?2), reason=?3 \
             WHERE incident_id=?1 AND state='held'",
        )?
        .execute(params![id, ms(now), reason])?;
    Ok(n > 0)
}

/// Does locally what the upstream did (acknowledge or resolve, by the upstream's person), and
/// ends the hold, or the local paging that followed it (the transition cancels the pages still
/// queued, as a local acknowledgement does).
pub fn mirror(
    conn: &Tx,
    id: IncidentId,
    upstream: Upstream,
    what: &Mirror,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let state: Option<String> = conn
        .prepare_cached(
            "SELECT h.state FROM standby_holds h JOIN incidents i ON i.id=h.incident_id \
             WHERE h.incident_id=?1 AND h.state IN ('held','paged') AND i.status='triggered'",
        )?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(state) = state else {
        return Ok(false);
    };
    let (to, by, verb) = match what {
        Mirror::Acknowledge { by } => (Status::Acknowledged, by, "acknowledged"),
        Mirror::Resolve { by } => (Status::Resolved, by, "resolved"),
    };
    set_state(conn, id, "mirrored")?;
    transition(
        conn,
        id,
        to,
        &Actor::new(by.clone(), upstream.as_str()),
        now,
    )?;
    record(
        conn,
        Some(id),
        now,
        EventKind::Standby,
        None,
        &if state == "paged" {
            format!(
                "{verb} upstream by {by} ({}): local paging stops",
                upstream.name()
            )
        } else {
            format!(
                "{verb} upstream by {by} ({}): nobody paged",
                upstream.name()
            )
        },
        None,
    )?;
    Ok(true)
}

/// Queues, in the outbox, an upstream acknowledgement for every incident of a standby route that
/// a person acknowledged on the box (SMS, button, API; not mirrored from the upstream), also when
/// it was resolved since, and that was not yet queued. A resolve without an acknowledgement is
/// left alone: it usually comes from the alert source, which resolves at the upstream itself.
/// Each is queued once; the row is retried by its sender until the upstream takes it.
pub fn queue_local_acks(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let rows: Vec<(IncidentId, String, String, String)> = conn
        .prepare_cached(
            "SELECT h.incident_id, h.route, i.dedup_key, \
                    i.acknowledged_by \
             FROM standby_holds h JOIN incidents i ON i.id = h.incident_id \
             WHERE h.ack_queued=0 AND h.state<>'mirrored' AND i.acknowledged_by IS NOT NULL \
               AND coalesce(i.acknowledged_via, '') NOT IN ('pagerduty','opsgenie') \
               AND i.status IN ('acknowledged','resolved') LIMIT 100",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, route, key, by) in &rows {
        let body = serde_json::json!({ "dedup_key": key, "by": by }).to_string();
        conn.prepare_cached(
            "INSERT INTO outbox (kind, incident_id, user_id, channel, address, subject, body, priority, \
             due_at, state, channel_since, created_at, updated_at) \
             VALUES (?1,?2,NULL,?3,?4,?5,?6,0,?7,'pending',?7,?7,?7)",
        )?
        .execute(params![KIND, id, CHANNEL, ack_queue(route), ACK_SUBJECT, body, ms(now)])?;
        conn.prepare_cached("UPDATE standby_holds SET ack_queued=1 WHERE incident_id=?1")?
            .execute([id])?;
    }
    Ok(rows.len())
}

/// Moves the holds' times `back` ms earlier after the wall clock was stepped back (see
/// `store::rewind`), so a held first page still goes out after its grace in real time.
pub(super) fn rewind(conn: &Tx, back: i64, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let now = ms(now);
    let moved = conn.execute(
        "UPDATE standby_holds SET hold_until = hold_until - ?1 WHERE state = 'held' AND hold_until > ?2",
        params![back, now],
    )?;
    conn.execute(
        "UPDATE standby_holds SET opened_at = opened_at - ?1 WHERE opened_at > ?2",
        params![back, now],
    )?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::incident;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO incidents (id,dedup_key,status,severity,summary,route,first_seen,last_seen) \
             VALUES (1,'k1','triggered','critical','disk full','db',?1,?1)",
            [ms(t(0))],
        )
        .unwrap();
        c.execute(
            "INSERT INTO escalations (incident_id, policy, phase, next_step, next_round, due_at, since, updated_at) \
             VALUES (1,'p','escalating',0,0,?1,0,0)",
            [ms(t(300))],
        )
        .unwrap();
        Tx::owned(c)
    }

    const SB: Standby = Standby {
        upstream: Upstream::PagerDuty,
        grace: Duration::from_secs(300),
    };

    #[test]
    fn a_hold_opens_at_first_sight_plus_grace_and_ends_by_itself() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        assert_eq!(
            hold(&c, Some(SB), &inc, true, t(1)).unwrap(),
            Hold::Until(t(300))
        );
        assert_eq!(
            hold(&c, Some(SB), &inc, true, t(299)).unwrap(),
            Hold::Until(t(300))
        );
        assert_eq!(held(&c, 10, t(1)).unwrap().len(), 1);
        assert_eq!(held_count(&c).unwrap(), 1);
        // No check ever finished: the grace alone ends it, with its reason once.
        assert_eq!(
            hold(&c, Some(SB), &inc, true, t(300)).unwrap(),
            Hold::Page {
                reason: Some("no answer from PagerDuty in 5m".into())
            }
        );
        assert_eq!(
            hold(&c, Some(SB), &inc, true, t(301)).unwrap(),
            Hold::Page { reason: None }
        );
        assert_eq!(held_count(&c).unwrap(), 0);
    }

    #[test]
    fn the_last_check_says_why_the_grace_ended() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        hold(&c, Some(SB), &inc, true, t(1)).unwrap();
        let triggered = Check::Answered(Answer::Triggered);
        record_check(
            &c,
            1,
            &triggered,
            0,
            Some("PagerDuty not acked in 5m"),
            t(100),
        )
        .unwrap();
        assert_eq!(
            hold(&c, Some(SB), &inc, true, t(300)).unwrap(),
            Hold::Page {
                reason: Some("PagerDuty not acked in 5m".into())
            }
        );
    }

    #[test]
    fn later_steps_and_other_routes_are_not_held() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        assert_eq!(
            hold(&c, Some(SB), &inc, false, t(1)).unwrap(),
            Hold::Page { reason: None }
        );
        assert_eq!(
            hold(&c, None, &inc, true, t(1)).unwrap(),
            Hold::Page { reason: None }
        );
        assert_eq!(held_count(&c).unwrap(), 0);
    }

    #[test]
    fn release_ends_the_hold_early_with_its_reason() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        hold(&c, Some(SB), &inc, true, t(1)).unwrap();
        record_check(
            &c,
            1,
            &Check::Failed {
                error: "refused".into(),
            },
            3,
            None,
            t(5),
        )
        .unwrap();
        assert_eq!(held(&c, 10, t(5)).unwrap()[0].failures, 3);
        assert!(release(&c, 1, "PagerDuty unreachable (3 failed checks)", t(5)).unwrap());
        assert_eq!(
            hold(&c, Some(SB), &inc, true, t(5)).unwrap(),
            Hold::Page {
                reason: Some("PagerDuty unreachable (3 failed checks)".into())
            }
        );
        assert!(!release(&c, 1, "again", t(6)).unwrap());
    }

    #[test]
    fn mirror_acknowledges_locally_and_is_not_pushed_back() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        hold(&c, Some(SB), &inc, true, t(1)).unwrap();
        let m = Mirror::Acknowledge { by: "Ann".into() };
        assert!(mirror(&c, 1, Upstream::PagerDuty, &m, t(10)).unwrap());
        let inc = incident(&c, 1).unwrap().unwrap();
        assert_eq!(inc.status, Status::Acknowledged);
        let ack = inc.acknowledged.unwrap();
        assert_eq!((ack.by.as_str(), ack.via.as_str()), ("Ann", "pagerduty"));
        let said: String = c
            .query_row(
                "SELECT message FROM events WHERE kind='standby' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(said.starts_with("acknowledged upstream by Ann"), "{said}");
        assert_eq!(queue_local_acks(&c, t(11)).unwrap(), 0);
        assert!(!mirror(&c, 1, Upstream::PagerDuty, &m, t(12)).unwrap());
    }

    /// After the hold, the upstream is still asked about an incident the box pages, until a
    /// day after the hold ended; not once the box acknowledged it and pushed that upstream (an
    /// escalation started again would find its own acknowledgement there and stop).
    #[test]
    fn an_incident_the_box_pages_is_asked_about_until_the_box_acknowledged_it() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        hold(&c, Some(SB), &inc, true, t(1)).unwrap();
        hold(&c, Some(SB), &inc, true, t(300)).unwrap();
        let asked = |now| held(&c, 10, now).unwrap();
        assert!(asked(t(301))[0].paging, "{:?}", asked(t(301)));
        assert!(asked(t(300 + 24 * 3600)).len() == 1);
        assert!(asked(t(301 + 24 * 3600)).is_empty(), "a day after the hold");
        transition(
            &c,
            1,
            Status::Acknowledged,
            &Actor::new("alice", "sms"),
            t(400),
        )
        .unwrap();
        assert_eq!(queue_local_acks(&c, t(401)).unwrap(), 1);
        transition(
            &c,
            1,
            Status::Triggered,
            &Actor::new("pagerbox", "ack-timeout"),
            t(500),
        )
        .unwrap();
        assert!(asked(t(501)).is_empty(), "{:?}", asked(t(501)));
    }

    /// An acknowledgement that came from the upstream (mirrored after the hold, while the box
    /// paged) is not pushed back to it.
    #[test]
    fn an_acknowledgement_from_the_upstream_is_not_pushed_back() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        hold(&c, Some(SB), &inc, true, t(1)).unwrap();
        hold(&c, Some(SB), &inc, true, t(300)).unwrap();
        transition(
            &c,
            1,
            Status::Acknowledged,
            &Actor::new("Ann", "pagerduty"),
            t(400),
        )
        .unwrap();
        assert_eq!(queue_local_acks(&c, t(401)).unwrap(), 0);
    }

    #[test]
    fn a_local_ack_is_queued_once_for_the_upstream() {
        let c = db();
        let inc = incident(&c, 1).unwrap().unwrap();
        hold(&c, Some(SB), &inc, true, t(1)).unwrap();
        assert_eq!(queue_local_acks(&c, t(2)).unwrap(), 0);
        transition(
            &c,
            1,
            Status::Acknowledged,
            &Actor::new("alice", "sms"),
            t(3),
        )
        .unwrap();
        // Resolved since: the acknowledgement still goes up, once.
        transition(&c, 1, Status::Resolved, &Actor::new("api", "http"), t(3)).unwrap();
        assert_eq!(queue_local_acks(&c, t(4)).unwrap(), 1);
        assert_eq!(queue_local_acks(&c, t(5)).unwrap(), 0);
        let (addr, subject, body): (String, String, String) = c
            .query_row(
                "SELECT address, subject, body FROM outbox WHERE channel='webhook'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(addr, "standby:db");
        assert_eq!(subject, ACK_SUBJECT);
        assert!(body.contains("\"k1\"") && body.contains("alice"), "{body}");
    }
}
