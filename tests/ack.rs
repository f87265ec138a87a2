//! Acknowledge from anywhere, end to end: the real daemon, the simulator on a PTY as the
//! network and the phones; incoming SMS and calls are injected, replies read back from the
//! simulator's network log.

mod util;

use std::time::Duration;

use pagerbox::modem::sim::control::ControlRequest;
use pagerbox::modem::sim::CallBehaviour;
use serde_json::json;
use util::{Daemon, ExternalSim};

const ALICE: &str = util::PAGER_PHONE;
const BOB: &str = "+4915100000022";

fn config(sim: &ExternalSim, voice: bool, missed_call: bool) -> String {
    let voice_rule = if voice {
        "[[users.rules]]\nchannel = \"voice\"\nafter = \"1s\""
    } else {
        ""
    };
    format!(
        r#"
[modem]
device = "{link}"
profile = "sim7600"
command_timeout = "2s"
health_interval = "1s"
ring_for = "10s"

[paging]
group_window = "0s"
# These tests page alice many times in a row; the rate limit has its own tests.
rate_limit_count = 100

[[users]]
id = "alice"
phone = "{ALICE}"
[[users.rules]]
channel = "sms"
after = "0s"
{voice_rule}

[[users]]
id = "bob"
phone = "{BOB}"

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
wait = "8s"
[[policies.steps]]
users = ["bob"]
wait = "60s"

[[routes]]
id = "default"
policy = "default"
missed_call_ack = {missed_call}
"#,
        link = sim.link.display()
    )
}

fn start(sim: &ExternalSim, voice: bool, missed_call: bool) -> Daemon {
    let d = Daemon::start(&config(sim, voice, missed_call));
    d.wait_modem_up();
    d
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn an_sms_reply_acknowledges_stops_escalation_and_is_confirmed() {
    let sim = ExternalSim::start();
    // On the test clock, with step 2 ten minutes after the trigger.
    let mut d = Daemon::start_clocked(
        &config(&sim, false, false).replace("wait = \"8s\"", "wait = \"10m\""),
    );
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "db down", "service": "db"}));
    d.wait_for(10, "the page", || {
        sim.sms_to(ALICE).into_iter().find(|t| t.contains("Reply"))
    });
    sim.sms_in(ALICE, &format!("{id} a."));
    d.wait_for(10, "acknowledged", || {
        (d.incident(id)["status"] == "acknowledged").then_some(())
    });
    let ack = &d.incident(id)["acknowledged"];
    assert_eq!(
        (ack["by"].as_str(), ack["via"].as_str()),
        (Some("alice"), Some("sms"))
    );
    let confirmation = d.wait_for(10, "the confirmation", || {
        sim.sms_to(ALICE).into_iter().find(|t| t.contains("acked"))
    });
    assert!(
        confirmation.starts_with(&format!("#{id} acked by alice")),
        "{confirmation}"
    );
    // Past the moment step 2 would have paged bob. Once a new alert's page is out, the engine
    // has run a pass after that moment.
    d.advance(Duration::from_secs(11 * 60));
    let barrier = d.trigger(json!({"summary": "barrier", "service": "db", "dedup_key": "b"}));
    d.wait_for(10, "the barrier's page", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.starts_with(&format!("#{barrier} ")))
    });
    d.hold(Duration::from_secs(1), "the ack stopped step 2", || {
        sim.sms_to(BOB).is_empty()
    });
    // Resolve by reply, UCS-2 as phones often send it.
    sim.request(ControlRequest::SmsIn {
        from: ALICE.into(),
        text: format!("resolve {id}"),
        options: pagerbox::modem::sim::DeliverOptions {
            ucs2: true,
            ..Default::default()
        },
    });
    d.wait_for(10, "resolved", || {
        (d.incident(id)["status"] == "resolved").then_some(())
    });
}

#[test]
fn strangers_get_no_reply_and_change_nothing() {
    let sim = ExternalSim::start();
    let d = start(&sim, false, false);
    let id = d.trigger(json!({"summary": "db down", "service": "db"}));
    d.wait_for(10, "the page", || sim.sms_to(ALICE).into_iter().next());
    sim.sms_in("+4915199999999", &format!("{id}a"));
    sim.sms_in("+4915199999999", "STATUS");
    // A known user asking for STATUS gets one. Incoming SMS are handled in the order they
    // arrive, so once this answer is out the stranger's two have been dealt with.
    sim.sms_in(ALICE, "status");
    let status = d.wait_for(10, "status reply", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.contains(&format!("#{id}")) && !t.contains("Reply"))
    });
    assert!(status.contains("db down"), "{status}");
    assert_eq!(d.incident(id)["status"], "triggered");
    assert!(
        sim.sms_to("+4915199999999").is_empty(),
        "no reply, no SMS loop, no cost"
    );
}

#[test]
fn pressing_1_during_the_call_acknowledges() {
    let sim = ExternalSim::start();
    sim.request(ControlRequest::SetCallBehaviour {
        behaviour: CallBehaviour::AnswerAfter(Duration::from_millis(300)),
    });
    let d = start(&sim, true, false);
    let id = d.trigger(json!({"summary": "db down", "service": "db"}));
    // Keep pressing 1 until a call is up to hear it (the simulator refuses DTMF without a call).
    d.wait_for(20, "acknowledged by the key press", || {
        let _ = sim.try_request(&ControlRequest::Dtmf { key: '1' });
        (d.incident(id)["status"] == "acknowledged").then_some(())
    });
    assert_eq!(d.incident(id)["acknowledged"]["via"], "dtmf");
    d.wait_for(10, "confirmation by SMS", || {
        sim.sms_to(ALICE).into_iter().find(|t| t.contains("acked"))
    });
}

/// A "1" whose acknowledgement cannot be recorded: the incident stays triggered (escalation goes
/// on) and the call's line on the timeline says the key press was not taken, so nobody reads
/// "answered, pressed 1" as an acknowledgement.
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_key_press_that_cannot_be_recorded_says_so_on_the_timeline() {
    let sim = ExternalSim::start();
    sim.request(ControlRequest::SetCallBehaviour {
        behaviour: CallBehaviour::AnswerAfter(Duration::from_millis(300)),
    });
    let d = start(&sim, true, false);
    d.arm_fault("ack.keypad", json!({}));
    let id = d.trigger(json!({"summary": "db down", "service": "db"}));
    let line = d.wait_for(30, "the answered call on the timeline", || {
        let _ = sim.try_request(&ControlRequest::Dtmf { key: '1' });
        d.timeline(id)
            .into_iter()
            .map(|(_, text)| text)
            .find(|t| t.contains("pressed 1"))
    });
    assert!(line.contains("could not be recorded"), "{line}");
    assert_eq!(d.incident(id)["status"], "triggered");
}

#[test]
fn a_missed_call_from_the_paged_user_acknowledges_when_the_route_allows_it() {
    let sim = ExternalSim::start();
    let d = start(&sim, false, true);
    let id = d.trigger(json!({"summary": "db down", "service": "db"}));
    d.wait_for(10, "the page", || sim.sms_to(ALICE).into_iter().next());
    // A stranger's call does nothing.
    sim.request(ControlRequest::CallIn {
        from: Some("+4915199999999".into()),
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.incident(id)["status"], "triggered");
    let _ = sim.try_request(&ControlRequest::Reject);
    sim.request(ControlRequest::CallIn {
        from: Some(ALICE.into()),
    });
    d.wait_for(10, "acknowledged by the missed call", || {
        (d.incident(id)["status"] == "acknowledged").then_some(())
    });
    assert_eq!(d.incident(id)["acknowledged"]["via"], "missed-call");
}

/// A modem that restarts in place without announcing it comes back without caller ID: a
/// missed call would arrive with no number and ack nothing, while health still read Up. The
/// daemon reads its settings back and brings it up again, so the missed call acks once more.
#[test]
fn a_missed_call_still_acknowledges_after_the_modem_restarted_silently() {
    let sim = ExternalSim::start();
    let d = start(&sim, false, true);
    // Past the boot's own late announcements, which bring the modem up once more.
    d.wait_for(10, "the boot's announcement", || {
        d.log().contains("modem announced its start").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    sim.request(ControlRequest::Fault {
        fault: pagerbox::modem::sim::Fault::Brownout,
    });
    // Health is polled every second.
    std::thread::sleep(Duration::from_secs(4));
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "db down", "service": "db"}));
    // Recorded as sent, so the call counts as the answer to it.
    d.wait_for(10, "the page recorded as sent", || {
        d.timeline_kinds(id)
            .contains(&"page-sent".to_string())
            .then_some(())
    });
    sim.request(ControlRequest::CallIn {
        from: Some(ALICE.into()),
    });
    d.wait_for(10, "acknowledged by the missed call", || {
        (d.incident(id)["status"] == "acknowledged").then_some(())
    });
    assert!(d.log().contains("modem lost its settings"), "said why");
}

/// A modem that goes silent just as a page's SMS is submitted is found out by the prompt's
/// short wait: `/healthz` says so within seconds, not after the submit's two minutes.
#[test]
fn a_modem_silent_during_a_submit_is_impaired_within_seconds() {
    let sim = ExternalSim::start();
    // Health polls as often as by default, so the submit finds the silence first.
    let d = Daemon::start(
        &config(&sim, false, false)
            .replace("health_interval = \"1s\"", "health_interval = \"30s\""),
    );
    d.wait_modem_up();
    // Past the boot's own late announcements, whose bring-up would meet the silence first.
    d.wait_for(10, "the boot's announcement", || {
        d.log().contains("modem announced its start").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    sim.request(ControlRequest::Fault {
        fault: pagerbox::modem::sim::Fault::Silence,
    });
    d.trigger(json!({"summary": "db down", "service": "db"}));
    d.wait_for(30, "/healthz to say paging is impaired", || {
        (d.get("/healthz").0 == 503).then_some(())
    });
}

/// Waits until the daemon has recorded incident `id`'s SMS to alice as sent. It does so
/// milliseconds after the network took the SMS; a person's reply comes later than that, and
/// `ACK` alone does not mean an SMS not yet recorded sent (it may still wait for the modem),
/// so a test that replies the instant the simulated phone shows the SMS waits for it first.
fn wait_recorded_sent(d: &Daemon, id: i64) {
    d.wait_for(5, "the SMS recorded sent", || {
        let (_, v) = d.get(&format!("/v1/incidents/{id}"));
        v["timeline"]
            .as_array()?
            .iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("sms to alice sent"))
            })
            .then_some(())
    });
}

#[test]
fn every_reply_form_acknowledges_through_the_modem() {
    let sim = ExternalSim::start();
    let d = start(&sim, false, false);
    // {id} stands for the incident's number; "ACK" alone means the one most recently paged.
    let forms = [
        "{id}a",
        "{id} a",
        "ack {id}",
        "a{id}",
        "#{id}A!",
        "  Ack {id} ",
        "ACK",
    ];
    for form in forms {
        let id = d.trigger(json!({"summary": "db down", "service": "db"}));
        let prefix = format!("#{id} ");
        d.wait_for(10, "the page", || {
            sim.sms_to(ALICE)
                .into_iter()
                .find(|t| t.starts_with(&prefix) && t.contains("Reply"))
        });
        if form == "ACK" {
            wait_recorded_sent(&d, id);
        }
        sim.sms_in(ALICE, &form.replace("{id}", &id.to_string()));
        d.wait_for(10, &format!("{form:?} to acknowledge #{id}"), || {
            (d.incident(id)["status"] == "acknowledged").then_some(())
        });
        d.wait_for(10, "the confirmation", || {
            sim.sms_to(ALICE)
                .into_iter()
                .find(|t| t.starts_with(&format!("#{id} acked by alice")))
        });
        // Resolve it so the next round's "ACK" alone is about the next incident.
        d.post_json(&format!("/v1/incidents/{id}/resolve"), json!({}));
    }
    // A reply about an incident that does not exist gets a clear answer.
    sim.sms_in(ALICE, "999a");
    d.wait_for(10, "not found reply", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.contains("#999 not found"))
    });
}

/// `ACK` alone means the page that last reached the phone. #A's call is queued first, due a
/// little later; #B's SMS goes out meanwhile; #A's call goes unanswered and falls back to SMS
/// (its route allows both), so the phone's newest page is #A's although #A's page was queued
/// first. The confirmation names #A and tells how to ack #B.
#[test]
fn ack_alone_means_the_page_that_last_reached_the_phone() {
    let sim = ExternalSim::start();
    let config = format!(
        r#"
[modem]
device = "{link}"
profile = "sim7600"
command_timeout = "2s"
health_interval = "1s"
ring_for = "2s"

[paging]
group_window = "0s"
channels = ["voice", "sms"]
max_attempts = 1

[[users]]
id = "alice"
phone = "{ALICE}"
[[users.rules]]
urgency = "high"
channel = "voice"
after = "3s"
[[users.rules]]
urgency = "low"
channel = "sms"
after = "0s"

[[users]]
id = "bob"
phone = "{BOB}"

[[users]]
id = "dave"
phone = "+4915100000044"

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
wait = "60s"
[[policies.steps]]
users = ["bob"]
wait = "60s"

[[routes]]
id = "calls"
policy = "default"
match = {{ service = "calls" }}
channels = ["voice", "sms"]

[[routes]]
id = "default"
policy = "default"
channels = ["sms"]
"#,
        link = sim.link.display()
    );
    let d = Daemon::start(&config);
    d.wait_modem_up();
    let post = |service: &str, severity: &str| {
        let (code, v) = d.post_json(
            "/v1/alerts",
            json!({"summary": format!("{service} down"), "severity": severity, "service": service}),
        );
        assert_eq!(code, 202, "{v}");
        v["incident_id"].as_i64().unwrap()
    };
    // #A (high urgency: a call) is queued at once, due in 3 s; #B's SMS (low urgency) goes out
    // before it rings.
    let a = post("calls", "critical");
    let b = post("web", "warning");
    d.wait_for(10, "#B's page", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.starts_with(&format!("#{b} ")))
    });
    assert_eq!(sim.calls_to(ALICE), 0, "#B's SMS went out before #A's call");
    // The unanswered call falls back to SMS.
    d.wait_for(20, "#A's page by SMS after the call", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.starts_with(&format!("#{a} ")))
    });
    wait_recorded_sent(&d, a);
    sim.sms_in(ALICE, "ACK");
    let confirmation = d.wait_for(10, "the confirmation", || {
        sim.sms_to(ALICE).into_iter().find(|t| t.contains("acked"))
    });
    assert_eq!(
        confirmation,
        format!("#{a} acked by alice. Also open: #{b} ({b}a)")
    );
    assert_eq!(d.incident(a)["status"], "acknowledged");
    assert_eq!(d.incident(b)["status"], "triggered");

    // Dave is a configured user whom #B does not concern: refused, with the reason.
    sim.sms_in("+4915100000044", &format!("{b}a"));
    let refusal = d.wait_for(10, "the refusal", || {
        sim.sms_to("+4915100000044").into_iter().next()
    });
    assert_eq!(
        refusal,
        format!("#{b} not changed: it was not paged to you and you are not on policy default")
    );
    assert_eq!(d.incident(b)["status"], "triggered");
}
