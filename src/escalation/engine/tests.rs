//! Engine tests: a real SQLite database, a real config, explicit instants.

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::store::{AlertAction, AlertInput, AlertOutcome};

const CONFIG: &str = r#"
[daemon]
time_zone = "Europe/Berlin"
[paging]
group_window = "30s"
rate_limit_count = 3
rate_limit_window = "10m"
[email]
enabled = true
host = "127.0.0.1"

[[users]]
id = "alice"
phone = "+4915100000001"
email = "alice@example.org"
shift_notices = true

[[users]]
id = "bob"
phone = "+4915100000002"
[[users.rules]]
channel = "sms"
after = "0m"

[[schedules]]
id = "primary"
time_zone = "Europe/Berlin"
[[schedules.layers]]
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
repeat = 2
[[policies.steps]]
schedules = ["primary"]
wait = "10m"
[[policies.steps]]
users = ["bob"]
wait = "15m"

[[routes]]
id = "db"
policy = "default"
match = { service = "db" }
ack_timeout = "30m"
stakeholders = ["+4930123456"]

[[routes]]
id = "default"
policy = "default"
"#;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

fn setup() -> (Tx<'static>, Plan) {
    let c = crate::store::memory();
    let cfg = Config::parse(CONFIG, "t.toml", Path::new("/"))
        .unwrap()
        .config;
    (c, Plan::new(Arc::new(cfg)))
}

fn trigger(c: &Tx, plan: &Plan, key: &str, service: &str, at: DateTime<Utc>) -> IncidentId {
    let p = crate::escalation::ParsedAlert {
        action: AlertAction::Trigger,
        dedup_key: Some(key.into()),
        summary: format!("{key} is down"),
        severity: Severity::Critical,
        source: None,
        service: Some(service.into()),
        details: serde_json::Value::Null,
        links: vec![],
        routing_key: None,
    };
    let input: AlertInput =
        crate::escalation::route_alert(&plan.config, p, Actor::new("t", "test"));
    match crate::store::queries::apply_alert(c, &input, at).unwrap() {
        AlertOutcome::Created(i) => i.id,
        o => panic!("{o:?}"),
    }
}

/// (channel, user, due minute offset, state, kind) of every outbox row.
fn outbox_rows(c: &Tx) -> Vec<(String, Option<String>, i64, String, String)> {
    outbox::all(c)
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.channel.to_string(),
                p.user_id,
                (p.due_at - t(0)).num_minutes(),
                p.state.as_str().to_string(),
                p.kind.as_str().to_string(),
            )
        })
        .collect()
}

fn pages_to(c: &Tx, user: &str) -> Vec<(String, i64)> {
    outbox_rows(c)
        .into_iter()
        .filter(|r| r.1.as_deref() == Some(user) && r.4 == "page")
        .map(|r| (r.0, r.2))
        .collect()
}

/// The first escalation row the store writes with a new incident is the state machine's start,
/// the pre-page delay saturating the same way in both.
#[test]
fn the_stored_start_of_an_escalation_is_the_state_machines_start() {
    for delay in [
        Duration::ZERO,
        Duration::from_secs(90),
        Duration::from_secs(u64::MAX),
    ] {
        assert_eq!(
            EscalationRow::start(t(0), delay),
            row_of(&EscalationState::start(t(0), delay))
        );
    }
}

#[test]
fn pages_the_on_call_user_by_their_rules_then_escalates() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    let next = pass(&c, &plan, t(0)).unwrap();
    // Alice (on call) by default rules: SMS now, voice at +2m, email at +5m.
    assert_eq!(
        pages_to(&c, "alice"),
        [("sms".into(), 0), ("voice".into(), 2), ("email".into(), 5)]
    );
    assert_eq!(next, Some(t(10)));
    // The stakeholder hears about it.
    assert!(outbox_rows(&c)
        .iter()
        .any(|r| r.4 == "status" && r.0 == "sms"));
    // Passing again at the same instant pages nobody twice.
    pass(&c, &plan, t(0)).unwrap();
    pass(&c, &plan, t(9)).unwrap();
    assert_eq!(pages_to(&c, "alice").len(), 3);
    assert!(pages_to(&c, "bob").is_empty());
    // At +10 minutes, step 2 pages bob (SMS only, his own rule).
    assert_eq!(pass(&c, &plan, t(10)).unwrap(), Some(t(25)));
    assert_eq!(pages_to(&c, "bob"), [("sms".into(), 10)]);
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.kind == "escalation"
                && e.message.contains("step 2 (run 1): paging bob (user)")),
        "{timeline:#?}"
    );
}

/// In a pair the pass tells, before it commits, of the pages it queued that a sender takes next:
/// alice's SMS (not her call or email, due later), once.
#[test]
fn a_pass_tells_of_the_pages_it_queued_that_the_senders_take_next() {
    let (c, plan) = setup();
    trigger(&c, &plan, "db1", "db", t(0));
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook: outbox::NextClaims = {
        let told = told.clone();
        Arc::new(move |_: &Tx, pages: &[outbox::Page]| {
            let mut told = told.lock().unwrap();
            told.extend(pages.iter().map(|p| (p.kind, p.channel, p.user_id.clone())));
        })
    };
    let next = pass_telling(&c, &plan, Some(hook.clone()), t(0)).unwrap();
    assert_eq!(next, Some(t(10)));
    assert_eq!(
        *told.lock().unwrap(),
        [(PageKind::Page, Channel::Sms, Some("alice".to_string()))]
    );
    // Nothing new queued: nothing told.
    pass_telling(&c, &plan, Some(hook), t(1)).unwrap();
    assert_eq!(told.lock().unwrap().len(), 1);
    // Without a pair, the plain pass.
    assert_eq!(pass_telling(&c, &plan, None, t(1)).unwrap(), Some(t(10)));
}

#[test]
fn runs_repeat_then_exhaust_and_stay_open() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    for m in [0, 10, 25, 35, 50] {
        pass(&c, &plan, t(m)).unwrap();
    }
    assert_eq!(pages_to(&c, "bob").len(), 2, "bob paged once per run");
    assert_eq!(
        pages_to(&c, "alice")
            .iter()
            .filter(|p| p.0 == "sms")
            .count(),
        2
    );
    let inc = incident(&c, id).unwrap().unwrap();
    assert_eq!(inc.status, Status::Triggered);
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(timeline.iter().any(|e| e.kind == "exhausted"));
    // Counted for `/metrics` while it stays open, not once acknowledged.
    assert_eq!(escalations::exhausted_open_count(&c).unwrap(), 1);
    assert_eq!(
        pass(&c, &plan, t(500)).unwrap(),
        None,
        "nothing more becomes due"
    );
    let who = Actor::new("alice", "sms");
    transition(&c, id, Status::Acknowledged, &who, t(501)).unwrap();
    assert_eq!(escalations::exhausted_open_count(&c).unwrap(), 0);
}

#[test]
fn ack_between_steps_stops_the_next_step_and_cancels_queued_pages() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    transition(
        &c,
        id,
        Status::Acknowledged,
        &Actor::new("alice", "sms"),
        t(1),
    )
    .unwrap();
    pass(&c, &plan, t(1)).unwrap();
    pass(&c, &plan, t(10)).unwrap();
    pass(&c, &plan, t(20)).unwrap();
    assert!(
        pages_to(&c, "bob").is_empty(),
        "step 2 never goes out after the ack"
    );
    let states: Vec<(String, String)> = outbox_rows(&c)
        .into_iter()
        .filter(|r| r.1.as_deref() == Some("alice"))
        .map(|r| (r.0, r.3))
        .collect();
    // None of them had gone out yet (no sender runs here), so all are cancelled.
    assert_eq!(
        states,
        [
            ("sms".into(), "cancelled".into()),
            ("voice".into(), "cancelled".into()),
            ("email".into(), "cancelled".into())
        ]
    );
    // The stakeholder hears about the ack too.
    assert_eq!(
        outbox_rows(&c).iter().filter(|r| r.4 == "status").count(),
        2
    );
}

#[test]
fn ack_timeout_retriggers_from_the_first_step() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    transition(
        &c,
        id,
        Status::Acknowledged,
        &Actor::new("alice", "sms"),
        t(5),
    )
    .unwrap();
    assert_eq!(pass(&c, &plan, t(5)).unwrap(), Some(t(35)));
    pass(&c, &plan, t(35)).unwrap();
    assert_eq!(incident(&c, id).unwrap().unwrap().status, Status::Triggered);
    assert_eq!(
        pages_to(&c, "alice")
            .iter()
            .filter(|p| p.0 == "sms")
            .count(),
        2,
        "paged again from step 1"
    );
}

#[test]
fn resolve_before_pre_page_delay_pages_nobody_and_restart_resumes() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    // A "restart": a new plan from the same config, state only in the database.
    let plan2 = Plan::new(plan.config.clone());
    pass(&c, &plan2, t(10)).unwrap();
    assert_eq!(pages_to(&c, "bob").len(), 1);
    transition(&c, id, Status::Resolved, &Actor::new("bob", "http"), t(11)).unwrap();
    assert_eq!(pass(&c, &plan2, t(11)).unwrap(), None);
    assert_eq!(pass(&c, &plan2, t(100)).unwrap(), None);
    assert_eq!(pages_to(&c, "bob").len(), 1);
}

#[test]
fn wall_clock_jumps_do_not_page_a_step_twice() {
    let (c, plan) = setup();
    trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    // NTP steps the clock back an hour, then forward again.
    pass(&c, &plan, t(-60)).unwrap();
    pass(&c, &plan, t(-50)).unwrap();
    pass(&c, &plan, t(0)).unwrap();
    assert_eq!(
        pages_to(&c, "alice")
            .iter()
            .filter(|p| p.0 == "sms")
            .count(),
        1
    );
    // Forward past both steps at once: the due step pages once, the next waits its full wait.
    pass(&c, &plan, t(300)).unwrap();
    pass(&c, &plan, t(300)).unwrap();
    assert_eq!(pages_to(&c, "bob").len(), 1);
}

#[test]
fn a_storm_on_one_route_is_grouped_behind_the_first_page() {
    let (c, plan) = setup();
    let first = trigger(&c, &plan, "k0", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    let mut later = vec![];
    for i in 1..5 {
        later.push(trigger(&c, &plan, &format!("k{i}"), "db", t(0)));
    }
    pass(&c, &plan, t(0)).unwrap();
    let sms: Vec<_> = outbox_rows(&c)
        .into_iter()
        .filter(|r| r.1.as_deref() == Some("alice") && r.0 == "sms")
        .collect();
    assert_eq!(
        sms.iter().filter(|r| r.4 == "page").count(),
        1,
        "the first page is not delayed, the rest are grouped: {sms:?}"
    );
    assert_eq!(sms.iter().filter(|r| r.4 == "digest").count(), 1);
    let digest = outbox::pending_digest(&c, "alice", Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(digest.items, later);
    assert!(digest.due_at <= t(0) + chrono::Duration::seconds(30));
    // Calls are not grouped: a call cannot carry a digest, and one skipped would leave its
    // incident unannounced (an answered call acknowledges only its own incident). Each incident
    // keeps its call; the modem places them one at a time, and an acknowledgement of the digest
    // cancels the calls still queued.
    assert_eq!(
        pages_to(&c, "alice")
            .iter()
            .filter(|p| p.0 == "voice")
            .count(),
        5
    );
    // Acknowledging a grouped incident removes it from the digest.
    transition(
        &c,
        later[0],
        Status::Acknowledged,
        &Actor::new("alice", "sms"),
        t(0),
    )
    .unwrap();
    let digest = outbox::pending_digest(&c, "alice", Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(digest.items.len(), 3);
    let _ = first;
}

/// Grouping holds a page back only behind one the person gets: a page acknowledged away before
/// it went out holds nothing.
#[test]
fn a_cancelled_page_holds_no_later_one_back() {
    let (c, plan) = setup();
    let first = trigger(&c, &plan, "k0", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    transition(
        &c,
        first,
        Status::Acknowledged,
        &Actor::new("alice", "web"),
        t(0),
    )
    .unwrap();
    let later = t(0) + chrono::Duration::seconds(10);
    let second = trigger(&c, &plan, "k1", "db", later);
    pass(&c, &plan, later).unwrap();
    assert!(
        outbox::pending_digest(&c, "alice", Channel::Sms)
            .unwrap()
            .is_none(),
        "{:?}",
        crate::store::queries::timeline(&c, second).unwrap()
    );
    assert!(outbox::all(&c)
        .unwrap()
        .iter()
        .any(|p| p.incident_id == Some(second)
            && p.user_id.as_deref() == Some("alice")
            && p.channel == Channel::Sms
            && p.kind == PageKind::Page));
}

/// A page waiting for its retry (the modem flapped) still holds the route's next SMS back: its
/// `due_at` moved on, but the person is being paged.
#[test]
fn a_page_waiting_for_its_retry_still_groups_the_next() {
    let (c, plan) = setup();
    trigger(&c, &plan, "k0", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    let first = outbox::claim(&c, Channel::Sms, t(0), std::time::Duration::from_secs(60))
        .unwrap()
        .expect("the first SMS is due");
    let retry = outbox::Attempt::Retry {
        error: "modem down".into(),
        retry_at: t(1),
    };
    assert!(outbox::finish(&c, &first, &retry, t(0)).unwrap());
    let later = t(0) + chrono::Duration::seconds(10);
    trigger(&c, &plan, "k1", "db", later);
    pass(&c, &plan, later).unwrap();
    assert!(
        outbox::pending_digest(&c, "alice", Channel::Sms)
            .unwrap()
            .is_some(),
        "{:?}",
        outbox_rows(&c)
    );
}

/// An incident joining a digest that already waits says when that digest goes, not when a
/// digest of its own would have (the rate limit's would be later).
#[test]
fn a_held_page_names_the_waiting_digests_time() {
    let (c, plan) = setup();
    for i in 0..4 {
        trigger(&c, &plan, &format!("a{i}"), &format!("svc{i}"), t(i));
        pass(&c, &plan, t(i)).unwrap();
    }
    let due = outbox::pending_digest(&c, "alice", Channel::Sms)
        .unwrap()
        .expect("the fourth SMS waits for a digest")
        .due_at;
    let later = t(5);
    assert!(due > later, "{due}");
    let held = trigger(&c, &plan, "a5", "svc5", later);
    pass(&c, &plan, later).unwrap();
    let said: Vec<String> = crate::store::queries::timeline(&c, held)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .filter(|m| m.contains("held for a digest"))
        .collect();
    let expect = format!("held for a digest in {}s", (due - later).num_seconds());
    assert!(
        said.len() == 1 && said[0].contains(&expect),
        "{said:?}, want {expect}"
    );
}

#[test]
fn rate_limit_summarises_the_overflow() {
    let (c, plan) = setup();
    // Different routes (no grouping), many incidents: after 3 SMS in 10 minutes, a digest.
    for i in 0..3 {
        trigger(&c, &plan, &format!("a{i}"), &format!("svc{i}"), t(i));
        pass(&c, &plan, t(i)).unwrap();
    }
    trigger(&c, &plan, "a3", "svc3", t(3));
    trigger(&c, &plan, "a4", "svc4", t(3));
    pass(&c, &plan, t(3)).unwrap();
    let rows = outbox_rows(&c);
    assert_eq!(
        rows.iter()
            .filter(|r| r.1.as_deref() == Some("alice") && r.0 == "sms" && r.4 == "page")
            .count(),
        3
    );
    let digest = outbox::pending_digest(&c, "alice", Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(digest.items.len(), 2);
}

#[test]
fn shift_start_is_announced_once_to_users_who_opted_in() {
    // A daily rotation of bob and alice; only alice asked for notices.
    let text = CONFIG.replace(
        "users = [\"alice\"]\nshift = \"1w\"",
        "users = [\"bob\", \"alice\"]\nshift = \"1d\"",
    );
    let c = crate::store::memory();
    let plan = Plan::new(Arc::new(
        Config::parse(&text, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    ));
    let schedule = &plan.config.schedules[0];
    // Alice's next shift start after t(0).
    let mut at = t(0);
    let start = loop {
        at = schedule.next_handoff(at, &[]).unwrap();
        if schedule.on_call(at, &[]).unwrap().user == "alice" {
            break at;
        }
    };
    // An old shift start is not announced; the new one is, once, over passes and a "restart".
    pass(&c, &plan, t(0)).unwrap();
    for (p, dt) in [
        (&plan, 5),
        (&plan, 35),
        (&Plan::new(plan.config.clone()), 65),
    ] {
        pass(&c, p, start + chrono::Duration::seconds(dt)).unwrap();
    }
    let status = |c: &Tx| -> Vec<(String, String)> {
        outbox::all(c)
            .unwrap()
            .into_iter()
            .filter(|p| p.kind == PageKind::Status)
            .map(|p| (p.address, p.body))
            .collect()
    };
    let notices = status(&c);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "+4915100000001");
    assert!(
        notices[0].1.contains("you are on call for primary until"),
        "{notices:?}"
    );
    // Bob did not ask: his shift start sends nothing.
    let bob_start = schedule.next_handoff(start, &[]).unwrap();
    pass(&c, &plan, bob_start + chrono::Duration::seconds(5)).unwrap();
    assert_eq!(status(&c).len(), 1);

    // Without SMS (no modem) there is nobody to send a notice: none is queued, so no row waits
    // unsent and marks paging overdue.
    let mut no_modem = plan.config.as_ref().clone();
    no_modem.modem.enabled = false;
    let no_modem = Plan::new(Arc::new(no_modem));
    assert!(!no_modem.served.contains(&Channel::Sms));
    let c = crate::store::memory();
    pass(&c, &no_modem, t(0)).unwrap();
    pass(&c, &no_modem, start + chrono::Duration::seconds(5)).unwrap();
    assert_eq!(status(&c), vec![]);
}

#[test]
fn a_key_that_keeps_reopening_is_counted() {
    let (c, plan) = setup();
    for i in 0..3 {
        let id = trigger(&c, &plan, "flappy", "db", t(i * 2));
        transition(
            &c,
            id,
            Status::Resolved,
            &Actor::new("am", "alertmanager"),
            t(i * 2 + 1),
        )
        .unwrap();
    }
    let id = trigger(&c, &plan, "flappy", "db", t(7));
    let tl = crate::store::queries::timeline(&c, id).unwrap();
    let flap = tl.iter().find(|e| e.kind == "flapping").expect("counted");
    assert_eq!(flap.data["reopened_last_hour"], 3);
}

fn setup_with(extra: &str) -> (Tx<'static>, Plan) {
    let c = crate::store::memory();
    let cfg = Config::parse(&format!("{CONFIG}\n{extra}"), "t.toml", Path::new("/"))
        .unwrap()
        .config;
    (c, Plan::new(Arc::new(cfg)))
}

fn kinds(c: &Tx, id: IncidentId) -> Vec<String> {
    crate::store::queries::timeline(c, id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind.to_string())
        .collect()
}

/// Stakeholder updates queued for incident `id`.
fn status_updates(c: &Tx, id: IncidentId) -> usize {
    outbox::all(c)
        .unwrap()
        .into_iter()
        .filter(|p| p.kind == PageKind::Status && p.incident_id == Some(id))
        .count()
}

/// A maintenance window for service db from t(0) to t(60).
const WINDOW: &str = r#"
[[silences]]
id = "db-upgrade"
starts = "2026-11-22T03:00:00Z"
ends = "2026-11-22T04:00:00Z"
service = "db"
comment = "upgrading postgres"
"#;

#[test]
fn a_silenced_incident_is_recorded_pages_nobody_and_pages_when_the_window_ends() {
    let (c, plan) = setup_with(WINDOW);
    let db = trigger(&c, &plan, "db1", "db", t(0));
    let web = trigger(&c, &plan, "web1", "web", t(0));
    let next = pass(&c, &plan, t(0)).unwrap();
    // The web incident pages; the db one is held, and the engine's next wake-up is the end of
    // the window (not a poll).
    assert_eq!(next, Some(t(10)), "web's step 2 is the next due");
    assert_eq!(pages_to(&c, "alice").len(), 3, "only web paged alice");
    assert!(outbox_rows(&c).iter().all(|r| r.4 != "digest"));
    assert_eq!(status_updates(&c, db), 0, "no stakeholder page while held");
    let tl = crate::store::queries::timeline(&c, db).unwrap();
    let held = tl
        .iter()
        .find(|e| e.kind == "silenced")
        .expect("timeline says silenced");
    assert!(
        held.message.starts_with(
            "silenced by maintenance window \"db-upgrade\" until 2026-11-22 04:00:00 UTC"
        ),
        "{}",
        held.message
    );
    // Acknowledge web: the only due time left is the window's end.
    transition(&c, web, Status::Resolved, &Actor::new("a", "t"), t(1)).unwrap();
    assert_eq!(pass(&c, &plan, t(1)).unwrap(), Some(t(60)));
    // Nothing advances or exhausts during the window, and the hold is noted once.
    for m in [10, 25, 50, 59] {
        pass(&c, &plan, t(m)).unwrap();
    }
    assert_eq!(pages_to(&c, "alice").len(), 3);
    assert!(pages_to(&c, "bob").is_empty());
    assert_eq!(kinds(&c, db).iter().filter(|k| *k == "silenced").count(), 1);
    // The window ends: the still-open incident pages from the first step, stakeholders too.
    assert_eq!(pass(&c, &plan, t(60)).unwrap(), Some(t(70)));
    assert_eq!(pages_to(&c, "alice").len(), 6);
    assert_eq!(status_updates(&c, db), 1);
    let k = kinds(&c, db);
    let at = |kind: &str| k.iter().position(|x| x == kind).unwrap();
    assert!(
        at("silenced") < at("unsilenced") && at("unsilenced") < at("escalation"),
        "{k:?}"
    );
}

#[test]
fn an_incident_resolved_in_the_window_never_pages_nor_tells_stakeholders() {
    let (c, plan) = setup_with(WINDOW);
    let db = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    transition(&c, db, Status::Acknowledged, &Actor::new("a", "t"), t(5)).unwrap();
    pass(&c, &plan, t(5)).unwrap();
    transition(&c, db, Status::Resolved, &Actor::new("a", "t"), t(6)).unwrap();
    pass(&c, &plan, t(6)).unwrap();
    pass(&c, &plan, t(61)).unwrap();
    assert!(pages_to(&c, "alice").is_empty());
    assert_eq!(status_updates(&c, db), 0);
    assert_eq!(pass(&c, &plan, t(61)).unwrap(), None);
}

#[test]
fn a_runtime_silence_holds_the_next_step_and_expiring_it_pages_at_once() {
    let (c, plan) = setup();
    let db = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap(); // alice paged; bob due at t(10)
    let s = crate::silence::Silence::new(
        crate::silence::SilenceId::Runtime(0),
        None,
        vec![crate::silence::Matcher::parse("service=~d.").unwrap()],
        t(5),
        t(120),
        "hands off".into(),
    )
    .unwrap();
    crate::store::silences::add(&c, &s, t(5)).unwrap();
    // Bob's step comes due inside the silence: held until its end, not paged.
    assert_eq!(pass(&c, &plan, t(10)).unwrap(), Some(t(120)));
    assert!(pages_to(&c, "bob").is_empty());
    assert!(crate::store::queries::timeline(&c, db)
        .unwrap()
        .iter()
        .any(|e| e.kind == "silenced" && e.message.starts_with("silenced by #1 until")));
    // Expired early: the held step (bob's, not alice's again) pages in the next pass.
    crate::store::silences::expire(&c, 1, "carol", t(30)).unwrap();
    pass(&c, &plan, t(30)).unwrap();
    assert_eq!(pages_to(&c, "bob"), [("sms".into(), 30)]);
    assert_eq!(pages_to(&c, "alice").len(), 3, "alice is not paged twice");
    let esc = escalations::of_incident(&c, db)
        .unwrap()
        .expect("escalation row")
        .silenced_by;
    assert_eq!(esc, None, "the hold mark is cleared");
}

fn setup_email_off() -> (Tx<'static>, Plan) {
    let c = crate::store::memory();
    let text = CONFIG.replace("[email]\nenabled = true", "[email]\nenabled = false");
    let cfg = Config::parse(&text, "t.toml", Path::new("/"))
        .unwrap()
        .config;
    (c, Plan::new(Arc::new(cfg)))
}

/// With email off, the default rules queue no email row: SMS now and the call at +2 min only
/// (the email reminder would repeat a channel the person already gets).
#[test]
fn a_channel_that_is_off_queues_nothing() {
    let (c, plan) = setup_email_off();
    assert_eq!(plan.served, [Channel::Sms, Channel::Voice]);
    trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    assert_eq!(
        pages_to(&c, "alice"),
        [("sms".into(), 0), ("voice".into(), 2)]
    );
    assert!(outbox_rows(&c).iter().all(|r| r.0 != "email"));
}

/// A substitute for a channel that is off merges with a later page on its channel at the
/// earlier time: the first page of the step goes out when the rules say, not when their later
/// reminder would.
#[test]
fn a_substitute_brings_a_later_page_on_its_channel_forward() {
    let (_, plan) = setup_email_off();
    let alice = plan.directory.contact("alice").unwrap().clone();
    let rules = [(Channel::Email, t(0)), (Channel::Sms, t(10))];
    let (moved, lost) = on_served_channels(
        &rules,
        &alice,
        crate::incident::Urgency::High,
        &plan.served,
        &plan.config.paging.channels,
        |_| true,
    );
    assert_eq!(moved, [(Channel::Sms, t(0))]);
    assert!(lost.is_empty());
    // Email the only channel served: the default rules' SMS now, call at +2 and email at +5
    // are one email, now.
    let defaults = pages_for_user(&alice, crate::incident::Urgency::High, t(0));
    assert_eq!(defaults.len(), 3, "{defaults:?}");
    let (moved, _) = on_served_channels(
        &defaults,
        &alice,
        crate::incident::Urgency::High,
        &[Channel::Email],
        &plan.config.paging.channels,
        |_| true,
    );
    assert_eq!(moved, [(Channel::Email, t(0))]);
}

/// An email-only person is paged on their next channel when email is off; a person no enabled
/// channel reaches is reported on the timeline, not silently skipped.
#[test]
fn a_person_is_paged_on_the_next_channel_or_said_to_be_unreachable() {
    let (c, plan) = setup_email_off();
    let alice = plan.directory.contact("alice").unwrap().clone();
    let low = pages_for_user(&alice, crate::incident::Urgency::Low, t(0));
    assert_eq!(low, [(Channel::Email, t(0))]);
    let (moved, lost) = on_served_channels(
        &low,
        &alice,
        crate::incident::Urgency::Low,
        &plan.served,
        &plan.config.paging.channels,
        |_| true,
    );
    assert_eq!(moved, [(Channel::Sms, t(0))], "low urgency never calls");
    assert!(lost.is_empty());
    let mut mail_only = alice.clone();
    mail_only.phone = None;
    let (moved, lost) = on_served_channels(
        &low,
        &mail_only,
        crate::incident::Urgency::Low,
        &plan.served,
        &plan.config.paging.channels,
        |_| true,
    );
    assert!(moved.is_empty());
    assert_eq!(lost, [Channel::Email]);
    // Through the engine: a step that pages only someone who cannot be reached says so.
    let (c2, plan2) = {
        let c = crate::store::memory();
        let text = format!(
            "{}\n[[users]]\nid = \"carol\"\nemail = \"carol@example.org\"\n[[policies]]\nid = \"mail\"\n[[policies.steps]]\nusers = [\"carol\"]\nwait = \"5m\"\n",
            CONFIG.replace("[email]\nenabled = true", "[email]\nenabled = false")
        )
        .replace(
            "[[routes]]\nid = \"default\"\npolicy = \"default\"",
            "[[routes]]\nid = \"default\"\npolicy = \"mail\"",
        );
        let cfg = Config::parse(&text, "t.toml", Path::new("/"))
            .unwrap()
            .config;
        (c, Plan::new(Arc::new(cfg)))
    };
    drop(c);
    let id = trigger(&c2, &plan2, "web1", "web", t(0));
    pass(&c2, &plan2, t(0)).unwrap();
    assert!(outbox_rows(&c2)
        .iter()
        .all(|r| r.1.as_deref() != Some("carol")));
    assert!(
        kinds(&c2, id).contains(&"page-unreachable".to_string()),
        "{:?}",
        kinds(&c2, id)
    );
}

/// Rows queued for email before email was turned off move to the person's next channel; one
/// that no enabled channel can take is failed, not left pending.
#[test]
fn queued_rows_of_a_channel_turned_off_move_on() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    outbox::enqueue(
        &c,
        &NewPage {
            kind: PageKind::Status,
            incident_id: Some(id),
            user_id: None,
            channel: Channel::Email,
            address: "boss@example.org".into(),
            subject: None,
            body: "x".into(),
            priority: 0,
            due_at: t(0),
        },
        t(0),
    )
    .unwrap();
    let (_, off) = setup_email_off();
    let off = Plan::new(off.config.clone());
    assert_eq!(reroute_unserved(&c, &off, t(1)).unwrap(), 1);
    let rows: Vec<(String, String, Option<String>)> = outbox::all(&c)
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.channel.to_string(),
                p.state.as_str().to_string(),
                p.user_id,
            )
        })
        .collect();
    assert!(
        rows.iter().all(|r| r.0 != "email" || r.1 == "failed"),
        "{rows:?}"
    );
    // Alice's email reminder moved to SMS; the stakeholder's email failed for good.
    assert_eq!(
        rows.iter()
            .filter(|r| r.2.as_deref() == Some("alice") && r.0 == "sms")
            .count(),
        2
    );
    assert!(rows
        .iter()
        .any(|r| r.2.is_none() && r.0 == "email" && r.1 == "failed"));
    assert!(kinds(&c, id).contains(&"page-fallback".to_string()));
    // Nothing left to move.
    assert_eq!(reroute_unserved(&c, &off, t(2)).unwrap(), 0);
}

#[test]
fn a_step_is_planned_from_the_config_alone_and_planning_writes_nothing() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    let inc = crate::store::queries::incident(&c, id).unwrap().unwrap();
    let policy = &plan.policies["default"];
    let route = plan.route(Some("db"));
    let overrides = OverridesBySchedule::default();

    let first = plan_step(&plan, policy, route, &inc, 0, &overrides, t(0));
    assert!(!first.nobody_on_call);
    let who: Vec<(&str, &str)> = first
        .targets
        .iter()
        .map(|t| (t.user.as_str(), t.via.as_str()))
        .collect();
    assert_eq!(who, vec![("alice", "schedule primary")]);
    let alice = &first.targets[0];
    let pages: Vec<(Channel, i64, &str)> = alice
        .pages
        .iter()
        .map(|p| (p.channel, (p.at - t(0)).num_minutes(), p.address.as_str()))
        .collect();
    assert_eq!(
        pages,
        vec![
            (Channel::Sms, 0, "+4915100000001"),
            (Channel::Voice, 2, "+4915100000001"),
            (Channel::Email, 5, "alice@example.org"),
        ]
    );
    assert_eq!(alice.unreachable, None);
    // Only the email has a subject; every page names the incident.
    let subjects: Vec<bool> = alice.pages.iter().map(|p| p.subject.is_some()).collect();
    assert_eq!(subjects, vec![false, false, true]);
    assert!(alice.pages.iter().all(|p| p.body.contains("db1 is down")));

    let second = plan_step(&plan, policy, route, &inc, 1, &overrides, t(10));
    let bob: Vec<(&str, Vec<Channel>)> = second
        .targets
        .iter()
        .map(|t| (t.user.as_str(), t.pages.iter().map(|p| p.channel).collect()))
        .collect();
    assert_eq!(bob, vec![("bob", vec![Channel::Sms])]);

    // Planning is only a value: nothing was queued.
    assert!(outbox_rows(&c).is_empty());
}

/// The plan after a reload of [`CONFIG`] with policy `default` named `to` (and every route naming
/// it), edited further by `edit`: what the tests of a removed or renamed policy reload.
fn reloaded(to: &str, edit: impl FnOnce(&mut Config)) -> Plan {
    let text = CONFIG
        .replace(
            "id = \"default\"\nrepeat",
            &format!("id = \"{to}\"\nrepeat"),
        )
        .replace("policy = \"default\"", &format!("policy = \"{to}\""));
    let mut cfg = Config::parse(&text, "t.toml", Path::new("/"))
        .unwrap()
        .config;
    edit(&mut cfg);
    Plan::new(Arc::new(cfg))
}

/// A reload that renames the policy an open incident escalates on: the escalation goes on, at
/// the same step, with the policy its route now names, and says so.
#[test]
fn a_renamed_policy_hands_the_escalation_to_the_routes_new_one() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    assert_eq!(pages_to(&c, "alice").len(), 3);
    let plan = reloaded("renamed", |_| {});
    // Step 2 at +10 minutes pages bob, on the renamed policy.
    pass(&c, &plan, t(10)).unwrap();
    assert_eq!(pages_to(&c, "bob"), [("sms".into(), 10)]);
    assert_eq!(
        escalations::of_incident(&c, id).unwrap().unwrap().policy,
        "renamed"
    );
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == "routed"
            && e.message.contains(
                "policy \"default\" no longer exists; escalation goes on with policy \"renamed\" of route \"db\""
            )),
        "{timeline:#?}"
    );
    assert!(!timeline.iter().any(|e| e.kind == "escalation-error"));
}

/// A reload that leaves no policy for an open incident (no route names one): it is exhausted,
/// and its timeline says nobody is paged.
#[test]
fn a_removed_policy_with_no_route_left_exhausts_and_says_so() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    let plan = reloaded("other", |cfg| cfg.routes.clear());
    pass(&c, &plan, t(10)).unwrap();
    assert!(pages_to(&c, "bob").is_empty());
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == "escalation-error"
            && e.message == "policy \"default\" no longer exists; nobody is paged"),
        "{timeline:#?}"
    );
}

/// An acknowledged incident whose policy a reload removed stays on the engine's list behind the
/// due escalations (never crowding them out), is handed back, ack timeout and all, when a reload
/// brings the policy back, and is closed when resolved.
#[test]
fn an_acknowledged_incident_with_no_policy_waits_behind_due_ones_for_its_policy() {
    let (c, plan) = setup();
    let acked = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    transition(
        &c,
        acked,
        Status::Acknowledged,
        &Actor::new("alice", "sms"),
        t(1),
    )
    .unwrap();
    let gone = reloaded("other", |cfg| cfg.routes.clear());
    pass(&c, &gone, t(2)).unwrap();
    pass(&c, &gone, t(3)).unwrap();
    assert_eq!(
        escalations::of_incident(&c, acked)
            .unwrap()
            .unwrap()
            .row
            .phase,
        StoredPhase::Exhausted
    );
    // A due escalation comes first in the engine's list.
    let due = trigger(&c, &plan, "db2", "db", t(3));
    let waiting: Vec<IncidentId> = escalations::needing_attention(&c, t(4))
        .unwrap()
        .iter()
        .map(|e| e.incident_id)
        .collect();
    assert_eq!(waiting, vec![due, acked]);
    // The policy back: the acknowledged incident waits for its ack timeout again.
    pass(&c, &plan, t(5)).unwrap();
    let row = escalations::of_incident(&c, acked).unwrap().unwrap().row;
    assert_eq!(row.phase, StoredPhase::Acknowledged, "{row:?}");
    assert!(row.due.is_some(), "{row:?}");
    transition(
        &c,
        acked,
        Status::Resolved,
        &Actor::new("alice", "sms"),
        t(6),
    )
    .unwrap();
    pass(&c, &gone, t(6)).unwrap();
    assert_eq!(
        escalations::of_incident(&c, acked)
            .unwrap()
            .unwrap()
            .row
            .phase,
        StoredPhase::Resolved
    );
}

/// The new policy is shorter than the place the escalation had reached: it goes on from the new
/// policy's first step rather than ending on the spot.
#[test]
fn a_policy_replaced_by_a_shorter_one_goes_on_from_its_first_step() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    // Step 2 (bob) is next, at +10 minutes; the new policy has one step only.
    let plan = reloaded("short", |cfg| {
        cfg.policies[0].steps.truncate(1);
        cfg.policies[0].repeat = 1;
    });
    pass(&c, &plan, t(10)).unwrap();
    // Alice (the first step) is paged again; nothing was exhausted.
    assert!(
        pages_to(&c, "alice").contains(&("sms".into(), 10)),
        "{:?}",
        pages_to(&c, "alice")
    );
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(
        !timeline.iter().any(|e| e.kind == "exhausted"),
        "{timeline:#?}"
    );
}

/// A reload edits the policy under its own name and removes the step that was next: the run
/// ends there and the next run begins, rather than the escalation ending on the spot.
#[test]
fn a_policy_edited_in_place_goes_on_with_its_next_run() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    // Step 2 (bob) was next at +10 minutes; the reload keeps the name and drops it.
    let plan = reloaded("default", |cfg| cfg.policies[0].steps.truncate(1));
    pass(&c, &plan, t(10)).unwrap();
    assert!(pages_to(&c, "bob").is_empty());
    assert!(
        pages_to(&c, "alice").contains(&("sms".into(), 10)),
        "run 2 pages alice: {:?}",
        pages_to(&c, "alice")
    );
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(!timeline.iter().any(|e| e.kind == "exhausted"));
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.kind == "routed" && e.message.contains("changed"))
            .count(),
        1,
        "said once: {timeline:#?}"
    );
}

/// The escalation waits out its last step when a reload gives the policy another run: the run
/// is paged, not skipped for an exhaustion decided under the old policy.
#[test]
fn a_run_added_while_the_last_step_waits_is_paged() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    for m in [0, 10, 25, 35] {
        pass(&c, &plan, t(m)).unwrap();
    }
    assert_eq!(pages_to(&c, "bob").len(), 2, "both runs paged bob");
    let plan = reloaded("default", |cfg| cfg.policies[0].repeat = 3);
    pass(&c, &plan, t(50)).unwrap();
    assert!(
        pages_to(&c, "alice").contains(&("sms".into(), 50)),
        "run 3 pages alice: {:?}",
        pages_to(&c, "alice")
    );
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(!timeline.iter().any(|e| e.kind == "exhausted"));
    // Without the reload, the same place exhausts when due (the contrast).
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    for m in [0, 10, 25, 35, 50] {
        pass(&c, &plan, t(m)).unwrap();
    }
    let timeline = crate::store::queries::timeline(&c, id).unwrap();
    assert!(timeline.iter().any(|e| e.kind == "exhausted"));
}

/// No policy left, the incident then resolved: said once, and the escalation closed, so later
/// passes neither write nor log again.
#[test]
fn an_escalation_without_a_policy_is_said_once_and_closed_when_resolved() {
    let (c, plan) = setup();
    let id = trigger(&c, &plan, "db1", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    let plan = reloaded("other", |cfg| cfg.routes.clear());
    pass(&c, &plan, t(10)).unwrap();
    let actor = Actor::new("alice", "sms");
    crate::store::queries::transition(&c, id, Status::Resolved, &actor, t(11)).unwrap();
    for m in 11..15 {
        pass(&c, &plan, t(m)).unwrap();
    }
    let errors = crate::store::queries::timeline(&c, id)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "escalation-error")
        .count();
    assert_eq!(errors, 1);
    let e = escalations::of_incident(&c, id).unwrap().unwrap();
    assert_eq!(state_of(&e.row).phase, Phase::Resolved);
    assert!(escalations::needing_attention(&c, t(20))
        .unwrap()
        .is_empty());
}

/// A pass that fails the same way every time (here a trigger that refuses every change to the
/// escalations, standing for an error of ours) leaves nothing escalating: the engine stops
/// beating, so it goes late in `/healthz` and the watchdog stops being fed, instead of beating
/// on while it retries for ever.
#[tokio::test]
async fn an_engine_whose_every_pass_fails_stops_beating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = crate::store::Store::open(&path, Arc::new(crate::clock::SystemClock)).unwrap();
    let cfg = Arc::new(
        Config::parse(CONFIG, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    );
    let mut input = AlertInput::test_trigger("k", "db");
    input.route = Some("db".into());
    input.policy = Some("default".into());
    store.apply_alert(input).await.unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE ON escalations \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let beat = crate::supervisor::Heartbeat::new("escalation", Duration::from_millis(1500));
    let (_tx, rx) = tokio::sync::watch::channel(cfg);
    let shutdown = CancellationToken::new();
    let engine = tokio::spawn(run(store.clone(), rx, beat.clone(), None, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(beat.late().is_some(), "beat {:?} ago", beat.since());
    shutdown.cancel();
    engine.await.unwrap();
}

/// A person paged only by voice gets a call for each incident of a storm on one route: none is
/// left unannounced, and no step is flagged as reaching nobody.
#[test]
fn a_voice_only_person_gets_a_call_for_each_incident_of_a_storm() {
    let text = CONFIG.replace(
        "[[users]]\nid = \"bob\"",
        "[[users]]\nid = \"carol\"\nphone = \"+4915100000003\"\n[[users.rules]]\nchannel = \"voice\"\nafter = \"0m\"\n\n[[policies]]\nid = \"calls\"\n[[policies.steps]]\nusers = [\"carol\"]\nwait = \"10m\"\n\n[[routes]]\nid = \"calls\"\npolicy = \"calls\"\nmatch = { service = \"calls\" }\n\n[[users]]\nid = \"bob\"",
    );
    let cfg = Config::parse(&text, "t.toml", Path::new("/"))
        .unwrap()
        .config;
    let plan = Plan::new(Arc::new(cfg));
    let c = crate::store::memory();
    let first = trigger(&c, &plan, "c0", "calls", t(0));
    pass(&c, &plan, t(0)).unwrap();
    let second = trigger(&c, &plan, "c1", "calls", t(0));
    pass(&c, &plan, t(0)).unwrap();
    for inc in [first, second] {
        let calls = outbox::all(&c)
            .unwrap()
            .into_iter()
            .filter(|p| p.incident_id == Some(inc) && p.channel == Channel::Voice)
            .count();
        assert_eq!(
            calls,
            1,
            "{:?}",
            crate::store::queries::timeline(&c, inc).unwrap()
        );
    }
    assert!(crate::store::pages::nobody_reached(&c).unwrap().is_empty());
}

/// An override made for someone a reload has since removed does not win over the schedule: the
/// layer's person is paged, not nobody.
#[test]
fn an_override_for_a_removed_user_pages_the_layers_person() {
    let (c, plan) = setup();
    crate::store::overrides::add(&c, "primary", "dave", t(-10), t(60), "api", t(-10)).unwrap();
    trigger(&c, &plan, "k0", "db", t(0));
    pass(&c, &plan, t(0)).unwrap();
    assert!(
        pages_to(&c, "alice").iter().any(|p| p.0 == "sms"),
        "{:?}",
        outbox_rows(&c)
    );
    assert!(crate::store::pages::nobody_reached(&c).unwrap().is_empty());
}
