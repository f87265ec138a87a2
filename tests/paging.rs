//! End-to-end paging: the real daemon binary, the modem simulator on a real PTY (its
//! own process, like a real modem), and a real SMTP server on 127.0.0.1.

mod util;

use std::time::Duration;

use pagerbox::modem::sim::control::ControlRequest;
use pagerbox::modem::sim::{CallBehaviour, Fault};
use pagerbox_testkit::smtp::{SmtpTestOptions, SmtpTestServer};
use serde_json::{json, Value};
use util::{Daemon, ExternalSim, Smtp};

const ALICE: &str = util::PAGER_PHONE;
const BOB: &str = "+4915100000022";

fn config(sim: &ExternalSim, smtp: Option<&Smtp>, paging: &str) -> String {
    config_with(sim, smtp, paging, true)
}

/// [`config`] for a daemon on the test clock: alice's call comes 2 min after her SMS and step 2
/// pages bob 10 min after the trigger, so nothing of either happens unless the test moves the
/// clock past it.
fn clocked_config(sim: &ExternalSim) -> String {
    config(sim, None, "")
        .replace("after = \"2s\"", "after = \"2m\"")
        .replace("wait = \"6s\"", "wait = \"10m\"")
}

/// How long a check that nothing was paged watches for it, after a clock step.
const QUIET: Duration = Duration::from_millis(500);

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// `voice`: whether alice also gets a call 2 s after her SMS.
fn config_with(sim: &ExternalSim, smtp: Option<&Smtp>, paging: &str, voice: bool) -> String {
    let voice_rule = if voice {
        "[[users.rules]]\nchannel = \"voice\"\nafter = \"2s\""
    } else {
        ""
    };
    let email = smtp.map(Smtp::email_table).unwrap_or_default();
    format!(
        r#"
{modem}ring_for = "3s"

{email}

[paging]
max_attempts = 2
channel_timeout = "3s"
{paging}

[[users]]
id = "alice"
phone = "{ALICE}"
email = "alice@example.org"
[[users.rules]]
channel = "sms"
after = "0s"
{voice_rule}

[[users]]
id = "bob"
phone = "{BOB}"
[[users.rules]]
channel = "sms"
after = "0s"

[[schedules]]
id = "primary"
time_zone = "Europe/Berlin"
[[schedules.layers]]
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
[[policies.steps]]
schedules = ["primary"]
wait = "6s"
[[policies.steps]]
users = ["bob"]
wait = "60s"

[[routes]]
id = "default"
policy = "default"
"#,
        modem = util::fast_modem(sim)
    )
}

#[test]
fn alert_pages_the_on_call_user_by_sms_with_the_right_text() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, None, ""));
    d.wait_modem_up();
    let id = d.trigger(
        json!({"summary": "/var on db1 97% full", "service": "db", "dedup_key": "disk-db1"}),
    );
    let sms = d.wait_for(10, "the page SMS", || sim.sms_to(ALICE).into_iter().next());
    assert_eq!(
        sms,
        format!("#{id} CRIT db: /var on db1 97% full. Reply {id}a ack, {id}r resolve")
    );
    d.wait_for(10, "delivery report on the timeline", || {
        d.timeline_kinds(id)
            .contains(&"page-delivered".to_string())
            .then_some(())
    });
    // A repeat of the open incident never re-pages by itself.
    d.trigger(json!({"summary": "/var on db1 97% full", "service": "db", "dedup_key": "disk-db1"}));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim.sms_to(ALICE).len(), 1);
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn no_ack_calls_then_escalates_to_the_next_step() {
    let sim = ExternalSim::start();
    sim.request(ControlRequest::SetCallBehaviour {
        behaviour: CallBehaviour::NoAnswer,
    });
    let mut d = Daemon::start_clocked(&clocked_config(&sim));
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "k"}));
    d.wait_for(10, "sms to alice", || {
        (!sim.sms_to(ALICE).is_empty()).then_some(())
    });
    // The call is due 2 min after the SMS: not before.
    d.advance(Duration::from_secs(100));
    d.hold(QUIET, "alice called before her voice rule's delay", || {
        sim.calls_to(ALICE) == 0
    });
    d.advance(Duration::from_secs(21));
    d.wait_for(15, "a call to alice", || {
        (sim.calls_to(ALICE) > 0).then_some(())
    });
    // Step 2 is due 10 min after the trigger: not before.
    d.advance(minutes(7));
    d.hold(QUIET, "bob paged before step 1's wait ended", || {
        sim.sms_to(BOB).is_empty()
    });
    d.advance(minutes(1));
    let bob = d.wait_for(20, "step 2 pages bob", || {
        sim.sms_to(BOB).into_iter().next()
    });
    assert!(bob.starts_with(&format!("#{id} CRIT db: db down")), "{bob}");
    let kinds = d.timeline_kinds(id);
    assert!(
        kinds.iter().filter(|k| *k == "escalation").count() >= 2,
        "{kinds:?}"
    );
}

/// NTP steps the clock back an hour between alice's SMS and her call: the call due two minutes
/// after the trigger and step 2 due after ten still come two and ten minutes after it in real
/// time, not an hour later, and the box says what happened (log and metric).
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_clock_stepped_back_keeps_the_real_delays_of_the_call_and_the_next_step() {
    let sim = ExternalSim::start();
    sim.request(ControlRequest::SetCallBehaviour {
        behaviour: CallBehaviour::NoAnswer,
    });
    let mut d = Daemon::start_clocked(&clocked_config(&sim));
    // Ahead first, so the clock a restart would start with can go back.
    d.advance(Duration::from_secs(2 * 3600));
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "k"}));
    d.wait_for(10, "sms to alice", || {
        (!sim.sms_to(ALICE).is_empty()).then_some(())
    });
    d.advance(minutes(1));
    d.step_back(minutes(60));
    d.wait_for(10, "the step back logged", || {
        d.log()
            .contains("wall clock was stepped back")
            .then_some(())
    });
    // The call was due 2 min after the SMS: 70 s on from here, not 61 min.
    d.advance(Duration::from_secs(70));
    d.wait_for(15, "the call to alice two minutes after the sms", || {
        (sim.calls_to(ALICE) > 0).then_some(())
    });
    // Step 2 is due 10 min after the trigger: not before, and not an hour late either.
    d.advance(minutes(7));
    d.hold(QUIET, "bob paged before step 1's wait ended", || {
        sim.sms_to(BOB).is_empty()
    });
    d.advance(minutes(1));
    let bob = d.wait_for(20, "step 2 pages bob ten minutes after the trigger", || {
        sim.sms_to(BOB).into_iter().next()
    });
    assert!(bob.starts_with(&format!("#{id} CRIT db: db down")), "{bob}");
    assert!(
        d.metrics_text()
            .contains("pagerbox_clock_steps_back_total 1"),
        "{}",
        d.metrics_text()
    );
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn ack_between_steps_stops_the_second() {
    let sim = ExternalSim::start();
    let mut d = Daemon::start_clocked(&clocked_config(&sim));
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "k"}));
    d.wait_for(10, "sms to alice", || {
        (!sim.sms_to(ALICE).is_empty()).then_some(())
    });
    let (code, _) = d.post_json(
        &format!("/v1/incidents/{id}/acknowledge"),
        json!({"by": "alice"}),
    );
    assert_eq!(code, 200);
    // Past the moment step 2 would have paged bob and alice's call was due. Once a new
    // alert's page is out, the engine has run a pass after that moment.
    d.advance(minutes(11));
    let barrier = d.trigger(json!({"summary": "barrier", "service": "db", "dedup_key": "b"}));
    d.wait_for(10, "the barrier's page", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.starts_with(&format!("#{barrier} ")))
    });
    d.hold(
        Duration::from_secs(1),
        "step 2 must not page after the ack",
        || sim.sms_to(BOB).is_empty(),
    );
    assert_eq!(
        sim.calls_to(ALICE),
        0,
        "the queued voice page was cancelled"
    );
    assert!(d.timeline_kinds(id).contains(&"cancelled".to_string()));
}

/// The network took the SMS but its report says the phone never got it: the page goes on to
/// the person's next channel (a call) at once, though her rules page her by SMS only.
#[test]
fn an_sms_reported_undelivered_goes_on_to_a_call() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config_with(&sim, None, "", false));
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::Undeliverable { count: 1 },
    });
    let id = d.trigger(json!({"summary": "phone off", "service": "db", "dedup_key": "off"}));
    d.wait_for(10, "the call after the undelivered report", || {
        (sim.calls_to(ALICE) > 0).then_some(())
    });
    assert_eq!(sim.sms_to(ALICE).len(), 1, "the SMS itself went out once");
    let kinds = d.timeline_kinds(id);
    let undelivered = kinds.iter().position(|k| k == "page-undelivered");
    let fallback = kinds.iter().rposition(|k| k == "page-fallback");
    assert!(
        matches!((undelivered, fallback), (Some(u), Some(f)) if u < f),
        "{kinds:?}"
    );
    let text = d.metrics_text();
    assert!(
        text.contains(r#"pagerbox_pages_total{channel="sms",outcome="undelivered"} 1"#),
        "{text}"
    );
}

/// A person SMS alone reaches, whose phone stayed off until the message expired: the page is
/// sent again after a pause, not failed for good (a phone that is off now may be on later).
#[test]
fn an_sms_reported_undelivered_is_sent_again_when_sms_is_all_there_is() {
    let sim = ExternalSim::start();
    let d = Daemon::start(
        &config_with(&sim, None, "", false)
            .replace("[paging]\n", "[paging]\nchannels = [\"sms\"]\n"),
    );
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::Undeliverable { count: 1 },
    });
    let id = d.trigger(json!({"summary": "phone off", "service": "db", "dedup_key": "off"}));
    d.wait_for(20, "the SMS sent again", || {
        (sim.sms_to(ALICE).len() >= 2).then_some(())
    });
    let kinds = d.timeline_kinds(id);
    assert!(!kinds.contains(&"page-failed".to_string()), "{kinds:?}");
    assert_eq!(sim.calls_to(ALICE), 0);
}

/// The first part of a long page is reported undelivered while its second part is still being
/// submitted, before the page is recorded as sent: the report is matched when it is, and the
/// page goes on to a call.
#[test]
fn an_early_undelivered_report_of_a_first_part_still_counts() {
    let sim =
        ExternalSim::start_with(&["--sms-delay", "1500ms", "--delivery-report-delay", "500ms"]);
    let d = Daemon::start(
        &config_with(&sim, None, "sms_max_parts = 3", false)
            .replace("sms_timeout = \"5s\"", "sms_timeout = \"10s\""),
    );
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::Undeliverable { count: 1 },
    });
    let long = "disk ".repeat(40);
    let id = d.trigger(json!({"summary": long, "service": "db", "dedup_key": "long"}));
    d.wait_for(30, "the call after the undelivered part", || {
        (sim.calls_to(ALICE) > 0).then_some(())
    });
    let kinds = d.timeline_kinds(id);
    assert!(kinds.contains(&"page-undelivered".to_string()), "{kinds:?}");
}

#[test]
fn modem_fault_sends_the_page_by_email_and_sms_again_when_the_modem_returns() {
    let sim = ExternalSim::start();
    let smtp = Smtp::start();
    let d = Daemon::start(&config(&sim, Some(&smtp), ""));
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::SimMissing,
    });
    d.wait_for(20, "modem down", || (!d.modem_up()).then_some(()));
    let id = d.trigger(
        json!({"summary": "db down while the SIM is out", "service": "db", "dedup_key": "k1"}),
    );
    let mail = d.wait_for(20, "the page by email", || {
        smtp.messages_to("alice@example.org").into_iter().next()
    });
    assert!(
        mail.contains(&format!("#{id}")) && mail.contains("db down while the SIM is out"),
        "{mail}"
    );
    assert!(d.timeline_kinds(id).contains(&"page-fallback".to_string()));
    assert!(sim.sms_to(ALICE).is_empty());
    // The modem comes back: the next page goes by SMS.
    sim.request(ControlRequest::Heal);
    d.wait_for(30, "modem up again", || d.modem_up().then_some(()));
    let id2 = d.trigger(json!({"summary": "second incident", "service": "db", "dedup_key": "k2"}));
    let sms = d.wait_for(15, "sms again", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.starts_with(&format!("#{id2} ")))
    });
    assert!(sms.contains("second incident"));
}

#[test]
fn with_smtp_and_modem_down_nothing_is_lost_and_it_arrives_when_email_returns() {
    let sim = ExternalSim::start();
    let smtp = Smtp::start();
    let d = Daemon::start(&config(&sim, Some(&smtp), ""));
    d.wait_modem_up();
    smtp.rt.block_on(smtp.server.stop_listening());
    sim.request(ControlRequest::Fault {
        fault: Fault::SimMissing,
    });
    d.wait_for(20, "modem down", || (!d.modem_up()).then_some(()));
    let id = d.trigger(json!({"summary": "everything is down", "service": "db", "dedup_key": "k"}));
    d.wait_for(20, "paging impaired reported", || {
        let (_, h) = d.get("/healthz");
        (h["paging"]["impaired"] == true || h["status"] == "degraded").then_some(())
    });
    d.wait_for(10, "a retry or a fallback on the timeline", || {
        d.timeline_kinds(id)
            .iter()
            .any(|k| k == "page-retry" || k == "page-fallback")
            .then_some(())
    });
    assert!(smtp.messages_to("alice@example.org").is_empty());
    // Email comes back first: the page arrives.
    smtp.rt.block_on(smtp.server.resume_listening()).unwrap();
    let mail = d.wait_for(40, "the page by email", || {
        smtp.messages_to("alice@example.org").into_iter().next()
    });
    assert!(mail.contains("everything is down"));
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_storm_of_500_alerts_over_50_keys_gives_grouped_pages_within_the_rate_limit() {
    let sim = ExternalSim::start();
    let mut d = Daemon::start_clocked(&config_with(
        &sim,
        None,
        "group_window = \"5m\"\nrate_limit_count = 6\nrate_limit_window = \"10m\"",
        false,
    ));
    d.wait_modem_up();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..500 {
        ids.insert(d.trigger(json!({
            "summary": format!("service {} is down", i % 50),
            "service": "db",
            "dedup_key": format!("storm-{}", i % 50),
        })));
    }
    assert_eq!(ids.len(), 50, "500 alerts over 50 keys are 50 incidents");
    // The first incident pages at once; the others wait for the group window's end.
    d.wait_for(15, "the first page", || {
        (!sim.sms_to(ALICE).is_empty()).then_some(())
    });
    d.advance(Duration::from_secs(4 * 60));
    d.hold(QUIET, "grouped before the window ended", || {
        !sim.sms_to(ALICE).iter().any(|t| t.contains(" new: "))
    });
    d.advance(Duration::from_secs(61));
    d.wait_for(15, "a grouped page", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|t| t.contains(" new: "))
            .then_some(())
    });
    // Whatever else the rate limit would let through has had time to go out.
    std::thread::sleep(Duration::from_secs(1));
    let sms = sim.sms_to(ALICE);
    assert!(
        !sms.is_empty() && sms.len() <= 6,
        "within the rate limit: {} SMS: {sms:#?}",
        sms.len()
    );
    assert!(
        sms.iter().any(|t| t.contains(" new: ")),
        "a grouped page: {sms:#?}"
    );
    // Nothing silently dropped: every incident's timeline says how it was paged or grouped.
    for id in ids {
        let kinds = d.timeline_kinds(id);
        assert!(
            kinds
                .iter()
                .any(|k| k == "page-queued" || k == "page-grouped"),
            "#{id}: {kinds:?}"
        );
    }
}

#[test]
fn kill_9_during_a_storm_then_restart_delivers_every_first_page_at_most_one_twice() {
    let sim = ExternalSim::start();
    // No grouping and no rate limit here: every incident gets its own first page.
    let mut d = Daemon::start(&config_with(
        &sim,
        None,
        "group_window = \"0s\"\nrate_limit_count = 1000",
        false,
    ));
    d.wait_modem_up();
    let ids: Vec<i64> = (0..40)
        .map(|i| d.trigger(json!({"summary": format!("incident number {i}"), "service": "db", "dedup_key": format!("k{i}")})))
        .collect();
    d.wait_for(20, "some pages out", || {
        (sim.sms_to(ALICE).len() >= 5).then_some(())
    });
    d.kill9();
    let before = sim.sms_to(ALICE).len();
    assert!(
        before < ids.len(),
        "the kill came mid-storm ({before} sent)"
    );
    d.spawn();
    d.wait_for(60, "every first page", || {
        let sms = sim.sms_to(ALICE);
        ids.iter()
            .all(|id| sms.iter().any(|t| t.starts_with(&format!("#{id} "))))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let sms = sim.sms_to(ALICE);
    for id in &ids {
        let n = sms
            .iter()
            .filter(|t| t.starts_with(&format!("#{id} ")))
            .count();
        assert!(n >= 1, "#{id} was never paged: {sms:#?}");
    }
    let dups = sms.len() - ids.len();
    assert!(
        dups <= 1,
        "at most the one in-flight page is repeated, got {dups} extra: {sms:#?}"
    );
}

#[test]
fn healthz_reports_modem_and_paging() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, None, ""));
    d.wait_modem_up();
    let (code, h): (u16, Value) = d.get("/healthz");
    assert_eq!(code, 200);
    assert_eq!(h["paging"]["impaired"], false);
    assert!(h["paging"]["ready"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "sms"));
}

/// A relay that does not answer is known from the channel's own check soon after start, while
/// the modem pages: the fallback is not found broken only when a page needs it.
#[test]
fn a_dead_email_relay_is_reported_before_any_page_needs_it() {
    let sim = ExternalSim::start();
    let smtp = Smtp::start();
    smtp.rt.block_on(smtp.server.stop_listening());
    let d = Daemon::start(&config(&sim, Some(&smtp), ""));
    d.wait_modem_up();
    let h = d.wait_for(15, "email reported down", || {
        let (_, h): (u16, Value) = d.get("/healthz");
        h["paging"]["down"]
            .as_array()?
            .iter()
            .any(|c| c["channel"] == "email")
            .then_some(h)
    });
    assert!(
        h["paging"]["ready"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "sms"),
        "{h}"
    );
    assert!(d.log().contains("email relay check failed"), "{}", d.log());
}

#[test]
fn email_only_box_pages_over_starttls_with_auth_and_retries_a_4xx() {
    use pagerbox_testkit::smtp::{Fault, Stage, TestTls};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(SmtpTestServer::start(SmtpTestOptions {
            tls: TestTls::StartTls,
            credentials: Some(("pagerbox".into(), "s3cret-mail".into())),
            ..Default::default()
        }))
        .unwrap();
    // The first delivery attempt is refused with a temporary error: the page is retried.
    server.fail_next(1, Fault::reply(Stage::Mail, 451, "4.3.0 try again later"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem().unwrap()).unwrap();
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, "s3cret-mail\n").unwrap();
    let d = Daemon::start(&format!(
        r#"
[modem]
enabled = false
[email]
enabled = true
host = "localhost"
port = {port}
tls = "starttls"
username = "pagerbox"
password_file = "{pw}"
ca_file = "{ca}"
from = "pagerbox <pagerbox@localhost>"
timeout = "5s"
[paging]
channels = ["email"]
max_attempts = 3
[[users]]
id = "alice"
email = "alice@example.org"
[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
[[routes]]
id = "r"
policy = "p"
"#,
        port = server.addr().port(),
        pw = pw.display(),
        ca = ca.display()
    ));
    let (_, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "mail only box", "severity": "critical"}),
    );
    let id = v["incident_id"].as_i64().unwrap();
    let msgs = d.wait_for(40, "the page by email", || {
        let m = server.messages();
        (!m.is_empty()).then_some(m)
    });
    assert!(msgs[0].tls, "sent over STARTTLS");
    assert_eq!(msgs[0].auth_user.as_deref(), Some("pagerbox"));
    assert!(msgs[0].data_text().contains("mail only box"));
    let kinds = d.wait_for(10, "page-sent on the timeline", || {
        let k = d.timeline_kinds(id);
        k.contains(&"page-sent".to_string()).then_some(k)
    });
    assert!(
        kinds.contains(&"page-retry".to_string()),
        "the 451 was retried: {kinds:?}"
    );
    assert!(
        !d.log().contains("s3cret-mail"),
        "the SMTP password must never be logged"
    );
}
