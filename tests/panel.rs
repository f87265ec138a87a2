//! The GPIO panel end to end: the real daemon with the fake GPIO backend, driven through
//! its control socket: the LED follows the incidents, the button acknowledges and resolves.
//! Needs the `testkit` feature for the fake backend (scripts/test.sh enables it).
#![cfg(feature = "testkit")]

mod util;

use std::time::Duration;

use pagerbox::panel::control::FakePanelClient;
use serde_json::json;
use util::Daemon;

const CONFIG: &str = r#"
[gpio]
backend = "fake"
long_press = "1s"

[modem]
device = "simulator"
health_interval = "1s"
[modem.simulator]
command_delay = "0ms"
sms_delay = "10ms"
"#;

/// LED level changes during `window`.
fn toggles(client: &mut FakePanelClient, window: Duration) -> usize {
    let before = client.led_writes().unwrap().len();
    std::thread::sleep(window);
    client.led_writes().unwrap().len() - before
}

#[test]
fn led_follows_incidents_and_the_button_acks_then_resolves() {
    let d = Daemon::start(CONFIG);
    let sock = d.state_dir().join("fake-panel.sock");
    let mut panel = d.wait_for(10, "the fake panel socket", || {
        FakePanelClient::connect(&sock).ok()
    });
    d.wait_for(20, "paging ready", || {
        let (_, h) = d.get("/healthz");
        (h["paging"]["impaired"] == false).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    // Nothing open and paging works: the LED stays off.
    assert_eq!(toggles(&mut panel, Duration::from_millis(1500)), 0);
    assert!(!panel.led_is_on().unwrap());
    let quiet = panel.led_writes().unwrap().len();

    let (_, a) = d.post_json(
        "/v1/alerts",
        json!({"summary": "rack on fire", "severity": "info"}),
    );
    let id = a["incident_id"].as_i64().unwrap();
    // Unacknowledged: a slow blink, 1 s on and 1 s off, as the write log's times show.
    let writes = d.wait_for(10, "three LED changes", || {
        let w = panel.led_writes().unwrap();
        (w.len() >= quiet + 3).then_some(w)
    });
    let blink = &writes[quiet..quiet + 3];
    for pair in blink.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            pair[0].1 != pair[1].1 && (700..=1500).contains(&gap.as_millis()),
            "slow blink: {blink:?}"
        );
    }

    // A short press acknowledges everything triggered, as on-site.
    panel.press().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    panel.release().unwrap();
    d.wait_for(5, "ack by button", || {
        let (_, v) = d.get(&format!("/v1/incidents/{id}"));
        (v["incident"]["status"] == "acknowledged").then_some(v)
    });
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["acknowledged"]["by"], "on-site");
    assert_eq!(v["incident"]["acknowledged"]["via"], "button");
    // Everything open is acknowledged: steady on (a blink would have changed within 1.5 s).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(toggles(&mut panel, Duration::from_millis(1500)), 0);
    assert!(panel.led_is_on().unwrap());

    // A long press resolves what is acknowledged; the LED goes off.
    panel.press().unwrap();
    std::thread::sleep(Duration::from_millis(1400));
    panel.release().unwrap();
    d.wait_for(5, "resolve by long press", || {
        let (_, v) = d.get(&format!("/v1/incidents/{id}"));
        (v["incident"]["status"] == "resolved").then_some(())
    });
    d.wait_for(5, "LED off", || (!panel.led_is_on().unwrap()).then_some(()));
}

/// A full disk makes `/healthz` answer 503 without a single commit; the LED shows it within
/// seconds (fast blink), not at its next periodic recheck.
#[cfg(feature = "fault-injection")]
#[test]
fn the_led_shows_a_store_that_cannot_write_at_once() {
    let d = Daemon::start(CONFIG);
    let sock = d.state_dir().join("fake-panel.sock");
    let mut panel = d.wait_for(10, "the fake panel socket", || {
        FakePanelClient::connect(&sock).ok()
    });
    d.wait_for(20, "paging ready", || {
        let (_, h) = d.get("/healthz");
        (h["paging"]["impaired"] == false).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(toggles(&mut panel, Duration::from_millis(600)), 0);
    d.arm_fault("store.full", json!({}));
    // The alert cannot be stored: no commit wakes anything.
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "disk full", "severity": "info"}),
    );
    assert_eq!(code, 503, "{v}");
    d.wait_for(5, "healthz 503", || {
        (d.get("/healthz").0 == 503).then_some(())
    });
    // Fast blink is 8 changes a second; the old once-a-minute recheck would show none here.
    d.wait_for(4, "the LED blinking fast", || {
        (toggles(&mut panel, Duration::from_millis(500)) >= 3).then_some(())
    });
}

/// A panel that cannot start (here: no GPIO on this machine) is logged, and the box pages
/// without it instead of not starting at all.
#[test]
fn a_panel_that_cannot_start_leaves_the_box_paging() {
    if std::path::Path::new("/dev/gpiomem").exists() {
        eprintln!("skipped: this machine has GPIO");
        return;
    }
    let d = Daemon::start(&CONFIG.replace("backend = \"fake\"", "backend = \"rppal\""));
    d.wait_for(20, "paging ready", || {
        let (_, h) = d.get("/healthz");
        (h["paging"]["impaired"] == false).then_some(())
    });
    assert!(
        d.log().contains("the panel (LED, button) cannot start"),
        "{}",
        d.log()
    );
    let (code, a) = d.post_json(
        "/v1/alerts",
        json!({"summary": "disk full", "severity": "critical"}),
    );
    assert_eq!(code, 202, "{a}");
}
