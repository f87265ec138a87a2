//! Acknowledge by SMS through the library API only, the way the daemon wires it: the ack task
//! behind its handle, the escalation pass on the store, replies read back from the outbox.
//! (The run through the modem simulator is the daemon's end-to-end test.) It steps time with
//! the library's manual clock, which only test builds have.

#![cfg(feature = "testkit")]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use pagerbox::ack::{self, Acker, Inbound, Outcome};
use pagerbox::clock::{Clock, ManualClock};
use pagerbox::config::Config;
use pagerbox::escalation::engine::{pass, Plan};
use pagerbox::escalation::ParsedAlert;
use pagerbox::incident::{Actor, Severity, Status};
use pagerbox::store::outbox::{recent, PageKind};
use pagerbox::store::{AlertAction, AlertOutcome, Store};

const CONFIG: &str = r#"
[daemon]
time_zone = "UTC"
country_code = "44"

[[users]]
id = "alice"
phone = "+447700900001"

[[users]]
id = "carol"
phone = "+447700900003"

[[schedules]]
id = "primary"
[[schedules.layers]]
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
[[policies.steps]]
schedules = ["primary"]
wait = "10m"
[[policies.steps]]
users = ["carol"]
wait = "10m"

[[routes]]
id = "default"
policy = "default"
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap()
}

#[tokio::test]
async fn an_sms_ack_between_two_steps_stops_the_second_and_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Store::open(&dir.path().join("db.sqlite"), clock.clone()).unwrap();
    let config = Arc::new(
        Config::parse(CONFIG, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    );
    let plan = Arc::new(Plan::new(config.clone()));
    let (_config_tx, config_rx) = watch::channel(config.clone());

    // An alert opens #1; the first step pages alice.
    let input = pagerbox::escalation::route_alert(
        &config,
        ParsedAlert {
            action: AlertAction::Trigger,
            dedup_key: Some("db".into()),
            summary: "db down".into(),
            severity: Severity::Critical,
            source: None,
            service: None,
            details: serde_json::Value::Null,
            links: vec![],
            routing_key: None,
        },
        Actor::new("test", "http"),
    );
    let AlertOutcome::Created(inc) = store.apply_alert(input).await.unwrap() else {
        panic!("expected a new incident");
    };
    let p = plan.clone();
    store.call(move |c, now| pass(c, &p, now)).await.unwrap();

    let (handle, requests) = ack::channel();
    let shutdown = CancellationToken::new();
    let acker = Acker::new(store.clone(), config_rx, ack::DEFAULT_MISSED_CALL_WINDOW);
    let task = tokio::spawn(ack::run(
        acker,
        requests,
        clock.clone(),
        pagerbox::supervisor::Heartbeat::detached("ack"),
        shutdown.clone(),
    ));

    // Alice answers in national format, in lower case, with a full stop.
    clock.advance(chrono::Duration::minutes(3));
    let outcome = handle
        .sms(Inbound {
            from: "07700 900001".into(),
            text: format!("{}a.", inc.id),
            alphanumeric: false,
            received_at: clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Replied {
            to: pagerbox::config::PhoneNumber::parse_e164("+447700900001").unwrap(),
            text: format!("#{} acked by alice", inc.id),
        }
    );

    // Step two was due at +10m; nothing goes to carol.
    clock.advance(chrono::Duration::minutes(20));
    let p = plan.clone();
    store.call(move |c, now| pass(c, &p, now)).await.unwrap();
    let pages = store.call(|c, _| Ok(recent(c, 100)?)).await.unwrap();
    assert!(
        pages.iter().all(|p| p.user_id.as_deref() != Some("carol")),
        "{pages:?}"
    );
    let reply = pages
        .iter()
        .find(|p| p.kind == PageKind::Reply)
        .expect("a reply in the outbox");
    assert_eq!(reply.address, "+447700900001");
    assert_eq!(reply.body, format!("#{} acked by alice", inc.id));
    // Alice's voice page (due at +2m, still pending at the ack) was cancelled with the ack.
    assert!(pages
        .iter()
        .filter(|p| p.kind == PageKind::Page && p.user_id.as_deref() == Some("alice"))
        .all(|p| p.state != "pending"));
    let (inc, timeline) = store.incident(inc.id).await.unwrap().unwrap();
    assert_eq!(inc.status, Status::Acknowledged);
    assert!(timeline
        .iter()
        .any(|e| e.kind == "acknowledged" && e.via.as_deref() == Some("sms")));

    // A stranger's text is answered by nobody.
    let outcome = handle
        .sms(Inbound {
            from: "+447700900999".into(),
            text: "STATUS".into(),
            alphanumeric: false,
            received_at: clock.now(),
        })
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Ignored { .. }));

    shutdown.cancel();
    task.await.unwrap();
}
