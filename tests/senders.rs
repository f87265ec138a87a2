//! End-to-end senders: leased claims and wake-ups, through the real daemon binary and the modem
//! simulator in its own process. A page accepted while the modem boots waits for it (it does not
//! go by email), a page held up by a network outage goes out as soon as the network is back
//! (not after its backoff), and a page whose outcome cannot be recorded for a while is recorded
//! once the store takes it again, sent once, without a restart.

mod util;

use std::time::{Duration, Instant};

use pagerbox::modem::sim::control::ControlRequest;
use pagerbox::modem::sim::Fault;
use serde_json::json;
use util::{Daemon, ExternalSim, Smtp};

const ALICE: &str = util::PAGER_PHONE;

fn config(sim: &ExternalSim, smtp: Option<&Smtp>) -> String {
    let email = smtp.map(Smtp::email_table).unwrap_or_default();
    format!(
        r#"
{modem}delivery_reports = false

{email}

[paging]
max_attempts = 2
channel_timeout = "3s"
channel_start_wait = "60s"

[[users]]
id = "alice"
phone = "{ALICE}"
email = "alice@example.org"
[[users.rules]]
channel = "sms"
after = "0s"

[[policies]]
id = "default"
[[policies.steps]]
users = ["alice"]
wait = "1h"

[[routes]]
id = "default"
policy = "default"
"#,
        modem = util::fast_modem(sim)
    )
}

/// Whether the page left SMS for another channel.
fn sms_row_fell_through(d: &Daemon, id: i64) -> bool {
    d.timeline(id)
        .iter()
        .any(|(k, m)| k == "page-fallback" && m.starts_with("sms "))
}

/// After a start, the modem is not there yet (it comes a few seconds later): the page waits for
/// it and goes out by SMS, instead of falling through to email at once.
#[test]
fn a_page_accepted_while_the_modem_starts_waits_for_it_and_goes_by_sms() {
    let sim = ExternalSim::start();
    let smtp = Smtp::start();
    // The device is away for the daemon's first seconds.
    sim.request(ControlRequest::Fault {
        fault: Fault::Vanish {
            after: Duration::from_secs(3),
        },
    });
    let d = Daemon::start(&config(&sim, Some(&smtp)));
    assert!(!d.modem_up());
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "boot"}));
    // Had it fallen through to email meanwhile, the checks after the SMS would show it.
    assert!(sim.sms_to(ALICE).is_empty());
    assert!(!sms_row_fell_through(&d, id), "{:?}", d.timeline(id));
    assert!(smtp.server.messages().is_empty());
    d.wait_for(40, "modem up", || d.modem_up().then_some(()));
    let up = Instant::now();
    let sms = d.wait_for(10, "the page by SMS", || {
        sim.sms_to(ALICE).into_iter().next()
    });
    assert!(sms.starts_with(&format!("#{id} ")), "{sms}");
    assert!(
        up.elapsed() < Duration::from_secs(3),
        "the SMS went {:?} after the modem was up",
        up.elapsed()
    );
    assert!(!sms_row_fell_through(&d, id), "{:?}", d.timeline(id));
    assert!(smtp.server.messages().is_empty(), "nothing went by email");
}

/// A network outage with no other channel: the page backs off (10 s and more), and goes out as
/// soon as the network is back, not when the backoff ends.
#[test]
fn a_page_held_up_by_an_outage_goes_as_soon_as_the_network_is_back() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, None));
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::LoseRegistration { searching: true },
    });
    d.wait_for(20, "modem down", || (!d.modem_up()).then_some(()));
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "outage"}));
    d.wait_for(10, "the page backs off", || {
        d.timeline(id)
            .iter()
            .any(|(k, m)| k == "page-fallback" && m.contains("starting over"))
            .then_some(())
    });
    assert!(sim.sms_to(ALICE).is_empty());
    let healed = Instant::now();
    sim.request(ControlRequest::Heal);
    let sms = d.wait_for(20, "the page by SMS", || {
        sim.sms_to(ALICE).into_iter().next()
    });
    assert!(sms.starts_with(&format!("#{id} ")), "{sms}");
    assert!(
        healed.elapsed() < Duration::from_secs(5),
        "sent {:?} after the network came back (the backoff was at least 10 s)",
        healed.elapsed()
    );
}

/// While recording outcomes fails, the page is sent but stays `sending` (visible in /metrics);
/// once the store takes it again the outcome is recorded, without a restart, and the page is
/// sent once.
#[cfg(feature = "fault-injection")]
#[test]
fn an_outcome_that_cannot_be_recorded_is_recorded_when_the_store_recovers() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, None));
    d.wait_modem_up();
    let (code, v) = d.post_json(
        "/v1/faults",
        json!({"name": "outbox.finish_fails", "for": "4s"}),
    );
    assert_eq!(code, 200, "{v}");
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "finish"}));
    d.wait_for(10, "the page by SMS", || {
        sim.sms_to(ALICE).into_iter().next()
    });
    // Sent, not recorded: the row is still claimed, and /metrics shows how long.
    let age = d.wait_for(5, "the sending age in /metrics", || {
        let text = ureq::get(&d.url("/metrics"))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("pagerbox_outbox_oldest_sending_age_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0)
    });
    assert!(age > 0.0);
    assert!(!d.timeline(id).iter().any(|(k, _)| k == "page-sent"));
    d.wait_for(20, "the outcome recorded", || {
        d.timeline(id)
            .iter()
            .any(|(k, _)| k == "page-sent")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sim.sms_to(ALICE).len(), 1, "sent once");
    let (_, h) = d.get("/healthz");
    assert_eq!(h["outbox"]["pending"], 0, "{h}");
    assert!(d.log().contains("cannot record; retrying"));
}

/// Email is off: a person whose only rule is email is paged on their next channel (SMS), and no
/// email row is queued that nothing would ever send.
#[test]
fn with_email_off_an_email_rule_pages_by_sms_and_queues_no_email() {
    let sim = ExternalSim::start();
    let text = config(&sim, None).replace(
        "[[users.rules]]\nchannel = \"sms\"\nafter = \"0s\"\n",
        "[[users.rules]]\nchannel = \"email\"\nafter = \"0s\"\n",
    );
    assert!(text.contains("channel = \"email\""));
    let d = Daemon::start(&text);
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "mail-off"}));
    let sms = d.wait_for(10, "the page by SMS", || {
        sim.sms_to(ALICE).into_iter().next()
    });
    assert!(sms.starts_with(&format!("#{id} ")), "{sms}");
    let tl = d.timeline(id);
    assert!(
        !tl.iter()
            .any(|(k, m)| k == "page-queued" && m.starts_with("email")),
        "{tl:?}"
    );
    // Once the SMS is recorded nothing is left waiting (the count only covers served channels).
    d.wait_for(10, "an empty outbox", || {
        let (_, h) = d.get("/healthz");
        (h["outbox"]["pending"] == 0).then_some(())
    });
}

/// An SMS page whose submits keep failing falls through to email. No SMS went out, so the email
/// never says "reply to the SMS"; it says how to ack by the CLI and the API, carries its own
/// Message-ID, and is "attempt 1" of the email channel (attempts are counted per channel).
#[test]
fn an_sms_page_that_falls_back_to_email_can_be_acted_on_from_the_email() {
    let sim = ExternalSim::start();
    let smtp = Smtp::start();
    // SMS, then straight to email (no call in between).
    let config = config(&sim, Some(&smtp))
        .replace("[paging]\n", "[paging]\nchannels = [\"sms\", \"email\"]\n");
    let d = Daemon::start(&config);
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::SubmitCms500 { count: 100 },
    });
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "fallback"}));
    let mail = d.wait_for(30, "the email", || {
        smtp.server.messages().into_iter().next()
    });
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    let message_id = parsed.message_id().expect("a Message-ID").to_string();
    assert!(message_id.ends_with("@localhost"), "{message_id}");
    let text = parsed.body_text(0).unwrap().to_string();
    assert!(text.contains(&format!("pagerbox ack {id}")), "{text}");
    assert!(
        text.contains(&format!("POST /v1/incidents/{id}/acknowledge")),
        "{text}"
    );
    assert!(!text.contains("page SMS"), "no SMS went out: {text}");
    let sent = d.wait_for(10, "the email recorded as sent", || {
        d.timeline(id)
            .into_iter()
            .find(|(k, m)| k == "page-sent" && m.starts_with("email "))
    });
    assert!(sent.1.contains("(attempt 1)"), "{sent:?}");
}
