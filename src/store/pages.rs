//! Which pages reached whom: the questions a phone command asks about past pages before it acts
//! ("which incident does `ACK` alone mean", "was this incident ever paged to this person").
//!
//! A page *reached* a phone when the row went out on a phone channel (SMS or an answered call) to
//! that person: state `sent` or `delivered`. A row still `sending` has not: a call in that state
//! is ringing and nobody has heard it, and an SMS in that state is claimed but may be waiting
//! for the modem behind someone's call for a minute, so an `ACK` typed meanwhile is about what
//! the person read before. (The phone can only show an SMS after the network took it, which is
//! when the modem answers the submission and the sender records `sent`, normally within
//! milliseconds; while the store refuses that write the row stays `sending`, and an `ACK`
//! meanwhile is about the page before.) A sent or delivered row's `updated_at` is when it went out or when its
//! delivery report came, whichever is later, so ordering by it orders pages by when they last
//! reached the phone, not by when they were queued: a page queued first that fell back from an
//! unanswered call to SMS reached the phone after a digest queued later.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::queries::ms;
use super::Tx;
use crate::incident::IncidentId;

/// A page or digest as the ack commands look at it: its row and the incidents it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachedPage {
    /// The outbox row.
    pub outbox_id: i64,
    /// The incidents it named: its own, or a digest's items (in id order).
    pub incidents: Vec<IncidentId>,
}

/// The newest `limit` pages and digests that reached `user`'s phone, newest reach first.
pub fn reached_phone(conn: &Tx, user: &str, limit: i64) -> rusqlite::Result<Vec<ReachedPage>> {
    let rows: Vec<(i64, Option<IncidentId>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, incident_id FROM outbox WHERE user_id=?1 AND kind IN ('page','digest') \
             AND channel IN ('sms','voice') AND state IN ('sent','delivered') \
             ORDER BY updated_at DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![user, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    rows.into_iter()
        .map(|(outbox_id, incident)| {
            Ok(ReachedPage {
                outbox_id,
                incidents: page_incidents(conn, outbox_id, incident)?,
            })
        })
        .collect()
}

/// Incidents in pages or digests that went out to `user` (any channel) at or after `since`,
/// each once, most recently paged first.
pub fn paged_since(
    conn: &Tx,
    user: &str,
    since: DateTime<Utc>,
) -> rusqlite::Result<Vec<IncidentId>> {
    let rows: Vec<(i64, Option<IncidentId>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, incident_id FROM outbox WHERE user_id=?1 AND kind IN ('page','digest') \
             AND state IN ('sending','sent','delivered') AND updated_at>=?2 \
             ORDER BY updated_at DESC, id DESC",
        )?;
        let rows = stmt.query_map(params![user, ms(since)], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out: Vec<IncidentId> = Vec::new();
    for (outbox_id, incident) in rows {
        for id in page_incidents(conn, outbox_id, incident)? {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// Pages and digests to `user` (any channel) that reached them between `since` and `until`
/// (by when they went out or were reported delivered), in the order they were queued. What a
/// missed call from that person can be about: not a row still `sending` (see the module's
/// note), so a call back about the page they read does not also acknowledge one still on its
/// way to their phone.
pub fn reached_between(
    conn: &Tx,
    user: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> rusqlite::Result<Vec<ReachedPage>> {
    let rows: Vec<(i64, Option<IncidentId>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, incident_id FROM outbox WHERE user_id=?1 AND kind IN ('page','digest') \
             AND state IN ('sent','delivered') AND updated_at>=?2 AND updated_at<=?3 \
             ORDER BY id",
        )?;
        let rows = stmt.query_map(params![user, ms(since), ms(until)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    rows.into_iter()
        .map(|(outbox_id, incident)| {
            Ok(ReachedPage {
                outbox_id,
                incidents: page_incidents(conn, outbox_id, incident)?,
            })
        })
        .collect()
}

/// The people a page or digest about `incident` was queued for (any state), first paged first.
pub fn paged_users(conn: &Tx, incident: IncidentId) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, min(id) AS first FROM outbox WHERE user_id IS NOT NULL \
         AND kind IN ('page','digest') \
         AND (incident_id=?1 OR id IN (SELECT outbox_id FROM outbox_items WHERE incident_id=?1)) \
         GROUP BY user_id ORDER BY first",
    )?;
    let rows = stmt.query_map([incident], |r| r.get(0))?;
    rows.collect()
}

/// True when `incident` was in a page or digest for `user`, in any state: a failed or queued
/// page is still theirs to stop.
pub fn was_paged_to(conn: &Tx, user: &str, incident: IncidentId) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE user_id=?1 AND kind IN ('page','digest') \
         AND (incident_id=?2 OR id IN \
         (SELECT outbox_id FROM outbox_items WHERE incident_id=?2)))",
    )?
    .query_row(params![user, incident], |r| r.get(0))
}

/// The escalation policy an incident is following (a reroute may have changed it from its
/// route's), or `None` when it has no escalation.
pub fn escalation_policy(conn: &Tx, incident: IncidentId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT policy FROM escalations WHERE incident_id=?1")?
        .query_row([incident], |r| r.get(0))
        .optional()
}

/// The query of [`nobody_reached`]. Every lookup by incident goes through an index (the
/// incident's own pages, the digests that name it): `/healthz` runs it on each request, and an
/// `OR` across the two made SQLite read the digests' items for every outbox row, for every
/// such incident (minutes after a storm).
const NOBODY_REACHED: &str = "SELECT i.id FROM incidents i WHERE i.status = 'triggered' \
     AND EXISTS (SELECT 1 FROM events e WHERE e.incident_id=i.id \
       AND e.kind IN ('page-unreachable','unrouted','page-failed')) \
     AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id=i.id \
       AND o.kind IN ('page','digest') AND o.state IN ('pending','sending','sent','delivered')) \
     AND NOT EXISTS (SELECT 1 FROM outbox_items it JOIN outbox o ON o.id=it.outbox_id \
       WHERE it.incident_id=i.id \
       AND o.kind IN ('page','digest') AND o.state IN ('pending','sending','sent','delivered')) \
     UNION SELECT i.id FROM incidents i WHERE i.status = 'triggered' \
     AND EXISTS (SELECT 1 FROM events e WHERE e.incident_id=i.id AND e.kind='escalation-error') \
     ORDER BY 1";

/// Unacknowledged incidents for which paging reached nobody: no route matched the alert (an
/// `unrouted` event), a step found no one it could page (a `page-unreachable` event) or every
/// page failed for good (`page-failed`: an SMS-only person whose number takes no SMS), and no
/// page or digest for them is queued, going out or gone out; and those whose escalation a reload
/// left without a policy (an `escalation-error`: nobody will be paged further, whoever was
/// before). The status page and `/healthz` flag these, oldest first. Someone who acknowledged an
/// incident has it, however they learnt of it (a digest that failed after they acked from the
/// status page, say); an incident recorded without paging on purpose is not one of them either.
pub fn nobody_reached(conn: &Tx) -> rusqlite::Result<Vec<IncidentId>> {
    let mut stmt = conn.prepare_cached(NOBODY_REACHED)?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// The incidents a page row is about: its own, or a digest's items (in id order).
pub fn page_incidents(
    conn: &Tx,
    outbox_id: i64,
    incident: Option<IncidentId>,
) -> rusqlite::Result<Vec<IncidentId>> {
    match incident {
        Some(id) => Ok(vec![id]),
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT incident_id FROM outbox_items WHERE outbox_id=?1 ORDER BY incident_id",
            )?;
            let rows = stmt.query_map([outbox_id], |r| r.get(0))?;
            rows.collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Channel;
    use crate::store::outbox::{add_item, enqueue, NewPage, PageKind};
    use crate::store::AlertInput;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        for id in 1..=3 {
            c.execute(
                "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen) \
                 VALUES (?1,?1,'triggered','critical','s',0,0)",
                [id],
            )
            .unwrap();
        }
        Tx::owned(c)
    }

    fn queue(c: &Tx, kind: PageKind, inc: Option<i64>, channel: Channel, at: i64) -> i64 {
        enqueue(
            c,
            &NewPage {
                kind,
                incident_id: inc,
                user_id: Some("alice".into()),
                channel,
                address: "+4915100000001".into(),
                subject: None,
                body: "b".into(),
                priority: 3,
                due_at: t(at),
            },
            t(at),
        )
        .unwrap()
    }

    fn set(c: &Tx, id: i64, state: &str, at: i64) {
        c.execute(
            "UPDATE outbox SET state=?2, updated_at=?3 WHERE id=?1",
            params![id, state, ms(t(at))],
        )
        .unwrap();
    }

    #[test]
    fn a_page_queued_first_but_sent_last_is_the_newest_reach() {
        let c = db();
        // #1 queued at 0 as a call; a digest of #2 #3 queued and sent at 10; #1's call fell back
        // to SMS, sent at 40.
        let p1 = queue(&c, PageKind::Page, Some(1), Channel::Voice, 0);
        let d = queue(&c, PageKind::Digest, None, Channel::Sms, 10);
        add_item(&c, d, 3).unwrap();
        add_item(&c, d, 2).unwrap();
        set(&c, d, "sent", 10);
        c.execute("UPDATE outbox SET channel='sms' WHERE id=?1", [p1])
            .unwrap();
        set(&c, p1, "sent", 40);
        let got = reached_phone(&c, "alice", 10).unwrap();
        assert_eq!(
            got,
            vec![
                ReachedPage {
                    outbox_id: p1,
                    incidents: vec![1]
                },
                ReachedPage {
                    outbox_id: d,
                    incidents: vec![2, 3]
                },
            ]
        );
        assert_eq!(paged_since(&c, "alice", t(5)).unwrap(), vec![1, 2, 3]);
        assert_eq!(paged_since(&c, "alice", t(20)).unwrap(), vec![1]);
    }

    /// `/healthz` asks this on every request, after storms too: every step of it must find its
    /// rows through an index, never by reading a whole table per incident.
    #[test]
    fn finding_who_was_reached_reads_no_table_whole_per_incident() {
        let c = db();
        let sql: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name='outbox_items_incident'",
                [],
                |r| r.get(0),
            )
            .expect("the index by incident exists");
        assert!(sql.contains("incident_id"), "{sql}");
        let plan: Vec<String> = {
            let mut stmt = c
                .prepare_cached(&format!("EXPLAIN QUERY PLAN {NOBODY_REACHED}"))
                .unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        // Only the outer loops over incidents (all, or the triggered ones) read through a
        // table or an index of it; every lookup made for an incident is by its id (or a
        // row's), not by a state many rows share.
        for step in plan
            .iter()
            .filter(|p| p.starts_with("SEARCH") || p.starts_with("SCAN"))
        {
            assert!(
                step == "SCAN i"
                    || step == "SEARCH i USING COVERING INDEX incidents_status (status=?)"
                    || step.contains("(incident_id=?)")
                    || step.contains("(rowid=?)"),
                "a lookup that reads many rows per incident: {step} in {plan:?}"
            );
        }
    }

    #[test]
    fn an_alert_no_route_matched_is_flagged_until_closed_but_one_recorded_on_purpose_is_not() {
        let c = crate::store::memory();
        let apply = |a: &AlertInput| crate::store::queries::apply_alert(&c, a, t(0)).unwrap();
        let unrouted = apply(&AlertInput::test_trigger("a", "web"));
        apply(&AlertInput {
            page: false,
            ..AlertInput::test_trigger("b", "web")
        });
        let unrouted = unrouted.incident().unwrap().id;
        assert_eq!(nobody_reached(&c).unwrap(), vec![unrouted]);
        // A digest that names it and went out reaches someone.
        let d = queue(&c, PageKind::Digest, None, Channel::Sms, 1);
        c.execute(
            "INSERT INTO outbox_items (outbox_id, incident_id) VALUES (?1, ?2)",
            params![d, unrouted],
        )
        .unwrap();
        assert_eq!(nobody_reached(&c).unwrap(), Vec::<IncidentId>::new());
        set(&c, d, "failed", 2);
        assert_eq!(nobody_reached(&c).unwrap(), vec![unrouted]);
        apply(&AlertInput {
            action: crate::store::AlertAction::Resolve,
            ..AlertInput::test_trigger("a", "web")
        });
        assert_eq!(nobody_reached(&c).unwrap(), Vec::<IncidentId>::new());
    }

    #[test]
    fn an_open_incident_with_no_live_page_after_an_unreachable_step_is_flagged() {
        let c = db();
        for id in [1, 2, 3] {
            crate::store::events::record(
                &c,
                Some(id),
                t(0),
                crate::incident::EventKind::PageUnreachable,
                None,
                "x",
                None,
            )
            .unwrap();
        }
        // #2 was paged later (someone at a later step was reached); #3 is resolved.
        let p = queue(&c, PageKind::Page, Some(2), Channel::Sms, 5);
        set(&c, p, "sent", 6);
        c.execute("UPDATE incidents SET status='resolved' WHERE id=3", [])
            .unwrap();
        assert_eq!(nobody_reached(&c).unwrap(), vec![1]);
        // A page that failed for good reached nobody either.
        set(&c, p, "failed", 7);
        assert_eq!(nobody_reached(&c).unwrap(), vec![1, 2]);
    }

    /// Neither a call still ringing nor an SMS claimed but not yet taken by the network (it may
    /// wait behind a call) has reached the phone.
    #[test]
    fn a_ringing_call_or_an_sms_still_sending_has_not_reached_the_phone_yet() {
        let c = db();
        let sms = queue(&c, PageKind::Page, Some(1), Channel::Sms, 0);
        set(&c, sms, "sent", 10);
        let call = queue(&c, PageKind::Page, Some(2), Channel::Voice, 0);
        set(&c, call, "sending", 20);
        let ids = |c: &Tx| -> Vec<i64> {
            reached_phone(c, "alice", 10)
                .unwrap()
                .iter()
                .map(|p| p.outbox_id)
                .collect()
        };
        assert_eq!(ids(&c), [sms]);
        set(&c, call, "sent", 30);
        assert_eq!(ids(&c), [call, sms]);
        let submitting = queue(&c, PageKind::Page, Some(3), Channel::Sms, 0);
        set(&c, submitting, "sending", 40);
        assert_eq!(
            ids(&c),
            [call, sms],
            "an SMS waiting for the modem has not reached the phone"
        );
        set(&c, submitting, "sent", 50);
        assert_eq!(ids(&c), [submitting, call, sms]);
    }

    /// A missed call is about what reached the phone in its window, not about an SMS still on
    /// its way there.
    #[test]
    fn a_missed_call_is_not_about_an_sms_still_sending() {
        let c = db();
        let read = queue(&c, PageKind::Page, Some(1), Channel::Sms, 0);
        set(&c, read, "sent", 10);
        let on_its_way = queue(&c, PageKind::Page, Some(2), Channel::Sms, 0);
        set(&c, on_its_way, "sending", 20);
        let about: Vec<i64> = reached_between(&c, "alice", t(0), t(60))
            .unwrap()
            .iter()
            .map(|p| p.outbox_id)
            .collect();
        assert_eq!(about, [read]);
    }

    /// A page that failed for good reached nobody; an escalation a reload left without a policy
    /// pages nobody further, whoever it paged before, until someone acknowledges.
    #[test]
    fn failed_pages_and_a_lost_policy_are_flagged() {
        let c = db();
        let note = |id: i64, kind| {
            crate::store::events::record(&c, Some(id), t(0), kind, None, "x", None).unwrap()
        };
        let p = queue(&c, PageKind::Page, Some(1), Channel::Sms, 0);
        set(&c, p, "failed", 5);
        note(1, crate::incident::EventKind::PageFailed);
        let sent = queue(&c, PageKind::Page, Some(2), Channel::Sms, 0);
        set(&c, sent, "sent", 5);
        note(2, crate::incident::EventKind::EscalationError);
        assert_eq!(nobody_reached(&c).unwrap(), vec![1, 2]);
        c.execute("UPDATE incidents SET status='acknowledged' WHERE id=2", [])
            .unwrap();
        assert_eq!(nobody_reached(&c).unwrap(), vec![1]);
        // Acknowledged, it has someone, whatever failed.
        c.execute("UPDATE incidents SET status='acknowledged' WHERE id=1", [])
            .unwrap();
        assert!(nobody_reached(&c).unwrap().is_empty());
    }

    #[test]
    fn email_pending_and_failed_pages_did_not_reach_the_phone() {
        let c = db();
        let e = queue(&c, PageKind::Page, Some(1), Channel::Email, 0);
        set(&c, e, "sent", 50);
        let _pending = queue(&c, PageKind::Page, Some(2), Channel::Sms, 60);
        let f = queue(&c, PageKind::Page, Some(3), Channel::Sms, 0);
        set(&c, f, "failed", 70);
        assert_eq!(reached_phone(&c, "alice", 10).unwrap(), vec![]);
        assert!(reached_phone(&c, "bob", 10).unwrap().is_empty());
        // Still "paged to alice": any state counts for who may stop it.
        assert!(was_paged_to(&c, "alice", 3).unwrap());
        assert!(!was_paged_to(&c, "bob", 3).unwrap());
    }
}
