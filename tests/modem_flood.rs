//! The modem event path under a flood, end to end: the real daemon, the simulator as its own
//! process. Hundreds of delivery reports arrive while a missed-call acknowledgement is being
//! rejected; the daemon must neither deadlock (the driver waiting on a full event queue while
//! the event consumer waits on the driver) nor stop paging.

mod util;

use std::time::{Duration, Instant};

use pagerbox::modem::sim::control::ControlRequest;
use serde_json::json;
use util::{Daemon, ExternalSim};

const ALICE: &str = util::PAGER_PHONE;

/// More reports than the driver's event channel holds, so without a backlog the driver
/// blocks on the channel while the consumer waits for the call to be rejected.
const BURST: u32 = 500;

fn config(sim: &ExternalSim) -> String {
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
rate_limit_count = 100

{people}missed_call_ack = true
"#,
        link = sim.link.display(),
        people = util::on_call(ALICE, util::SMS_AT_ONCE, "60s"),
    )
}

fn reports_logged(sim: &ExternalSim) -> usize {
    sim.log()
        .iter()
        .filter(|e| e.kind() == "status_report")
        .count()
}

#[test]
fn a_missed_call_ack_during_a_delivery_report_flood_neither_deadlocks_nor_stops_paging() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim));
    d.wait_modem_up();
    let first = d.trigger(json!({"summary": "db down", "service": "db"}));
    d.wait_for(10, "the first page", || {
        sim.sms_to(ALICE).into_iter().next()
    });
    let before = reports_logged(&sim);

    // Alice's missed call (an acknowledgement, rejected unanswered) and at once a flood of
    // delivery reports: the consumer is busy with the call while the reports pile up.
    sim.request(ControlRequest::CallIn {
        from: Some(ALICE.into()),
    });
    sim.request(ControlRequest::StatusReports {
        count: BURST,
        first_reference: 0,
        to: ALICE.into(),
    });
    assert_eq!(reports_logged(&sim) - before, BURST as usize);

    // Every report of the burst went through the driver (none was lost on the way in).
    d.wait_for(20, "the driver to read the whole burst", || {
        let read = d
            .log()
            .lines()
            .filter(|l| l.contains("delivery report") && l.contains("reference="))
            .count();
        (read >= BURST as usize).then_some(())
    });
    d.wait_for(15, "acknowledged by the missed call", || {
        (d.incident(first)["status"] == "acknowledged").then_some(())
    });
    assert_eq!(d.incident(first)["acknowledged"]["via"], "missed-call");

    // The driver still serves requests: a new incident's page goes out promptly.
    let sent_before = sim.sms_to(ALICE).len();
    let started = Instant::now();
    let second = d.trigger(json!({"summary": "web down", "service": "web"}));
    assert_ne!(first, second);
    d.wait_for(20, "the page after the flood", || {
        (sim.sms_to(ALICE).len() > sent_before).then_some(())
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the page after the flood took {took:?}"
    );

    // Health is still current and the flood fit the backlog: nothing was dropped.
    d.wait_for(10, "modem up after the flood", || {
        let (_, h) = d.get("/healthz");
        (h["modem"]["state"] == "up").then_some(())
    });
    let metrics = ureq::get(&d.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("pagerbox_modem_events_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        metrics.contains("pagerbox_modem_events_dropped_total"),
        "the drop counter is exported:\n{metrics}"
    );
    assert_eq!(dropped, 0, "{metrics}");
}
