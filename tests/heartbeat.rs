//! End-to-end heartbeat monitors (dead-man's switches): the real binary, real HTTP and UDP on
//! 127.0.0.1. Monitors have minute-long windows and the daemon runs on the test clock: a test
//! moves it to just short of a deadline (nothing fires), then past it (the monitor fires).

mod util;

use std::time::Duration;

/// A monitor's window in these tests: `interval` 1m plus `grace` 1m.
const WINDOW: Duration = Duration::from_secs(120);
/// How long a check that nothing happened watches for it, after a clock step.
const QUIET: Duration = Duration::from_millis(500);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

use serde_json::{json, Value};
use util::{Daemon, ExternalSim};

const ALICE: &str = "+4915112345678";

/// A route `watchdog` (policy paging alice by SMS) and one heartbeat `hb`.
fn config(interval: &str, grace: &str) -> String {
    format!(
        r#"
{alice}
[[routes]]
id = "db"
policy = "p"
match = {{ service = "db" }}

[[routes]]
id = "watchdog"
policy = "p"

[[heartbeats]]
id = "hb"
interval = "{interval}"
grace = "{grace}"
route = "watchdog"
summary = "the watchdog went quiet"
service = "monitoring"
"#,
        alice = util::alice_paged_by("p", ALICE, "60s")
    )
}

/// A second monitor with half of `hb`'s window, for a check that `hb` has not fired yet: the
/// watcher looks at every monitor in each pass, so once `early` has fired after a clock step, a
/// pass has run since the step, and `hb` still quiet then means it was not due.
const EARLY: &str = r#"
[[heartbeats]]
id = "early"
interval = "30s"
grace = "30s"
route = "watchdog"
summary = "the early monitor went quiet"
service = "monitoring"
"#;

/// Waits until the [`EARLY`] monitor has opened its incident.
fn wait_early_fired(d: &Daemon) {
    d.wait_for(10, "the early monitor's incident", || {
        let (_, v) = d.get("/v1/incidents?status=all");
        v["incidents"]
            .as_array()?
            .iter()
            .any(|i| i["dedup_key"] == "heartbeat:early")
            .then_some(())
    });
}

/// Every incident with the heartbeat's dedup key, newest first.
fn heartbeat_incidents(d: &Daemon) -> Vec<Value> {
    let (code, v) = d.get("/v1/incidents?status=all");
    assert_eq!(code, 200, "{v}");
    v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["dedup_key"] == "heartbeat:hb")
        .cloned()
        .collect()
}

fn open_heartbeat_incident(d: &Daemon) -> Option<Value> {
    heartbeat_incidents(d)
        .into_iter()
        .find(|i| i["status"] != "resolved")
}

fn monitor(d: &Daemon) -> Value {
    let (code, v) = d.get("/v1/heartbeats");
    assert_eq!(code, 200, "{v}");
    v["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "hb")
        .cloned()
        .unwrap()
}

/// Starts a daemon on the test clock and waits for the watcher's first pass to record `hb`: a
/// clock step before that pass would start the monitor's first window at the stepped time, so
/// the step could not make it late. Until the pass, the API shows the monitor's `since` as the
/// moment of asking, which moves; once recorded it stays put.
fn start_watched(extra: &str, token: Option<&str>) -> Daemon {
    let d = Daemon::start_clocked_with(extra, token);
    d.wait_for(10, "the watcher's first pass", || {
        let since = monitor(&d)["since"].clone();
        std::thread::sleep(Duration::from_millis(30));
        (monitor(&d)["since"] == since).then_some(())
    });
    d
}

fn ping(d: &Daemon) -> (u16, Value) {
    d.post("/v1/heartbeats/hb", b"")
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_missed_heartbeat_opens_one_incident_on_its_route_and_a_ping_resolves_it() {
    let mut d = start_watched(&format!("{}{EARLY}", config("1m", "1m")), None);
    // Past the interval, inside the grace: not yet, though a pass ran past `early`'s deadline.
    d.advance(secs(90));
    wait_early_fired(&d);
    d.hold(QUIET, "fired before interval + grace", || {
        open_heartbeat_incident(&d).is_none()
    });
    d.advance(secs(31));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    assert_eq!(inc["route"], "watchdog");
    assert_eq!(inc["summary"], "the watchdog went quiet");
    assert_eq!(inc["service"], "monitoring");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(monitor(&d)["state"], "late");
    // Still late a few windows later: one incident, not one per window.
    for _ in 0..3 {
        d.advance(WINDOW);
    }
    d.hold(QUIET, "one incident, not one per window", || {
        let all = heartbeat_incidents(&d);
        all.len() == 1 && all[0]["alert_count"] == 1
    });

    let (code, v) = ping(&d);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["resolved_incident"], inc["id"]);
    let (_, shown) = d.get(&format!("/v1/incidents/{}", inc["id"]));
    assert_eq!(shown["incident"]["status"], "resolved");
    assert_eq!(shown["incident"]["resolved"]["via"], "heartbeat");
    let m = monitor(&d);
    assert_eq!(m["state"], "ok");
    assert_eq!(m["pings"], 1);
    // Keep pinging, each time past the interval but inside the grace: nothing new opens,
    // though the last window ends long after the first ping's.
    for _ in 0..6 {
        d.advance(secs(90));
        assert_eq!(ping(&d).0, 202);
    }
    d.hold(QUIET, "a pinged monitor fired", || {
        open_heartbeat_incident(&d).is_none()
    });
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn the_missed_heartbeat_pages_like_any_alert_on_its_route() {
    let sim = ExternalSim::start();
    let extra = format!(
        "[modem]\ndevice = \"{}\"\nprofile = \"sim7600\"\ncommand_timeout = \"2s\"\nhealth_interval = \"1s\"\n{}",
        sim.link.display(),
        config("1m", "1m")
    );
    let mut d = start_watched(&extra, None);
    d.advance(WINDOW + secs(1));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    let sms = d.wait_for(30, "the page SMS", || sim.sms_to(ALICE).into_iter().next());
    let id = &inc["id"];
    assert_eq!(
        sms,
        format!("#{id} CRIT monitoring: the watchdog went quiet. Reply {id}a ack, {id}r resolve")
    );
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn udp_heartbeat_lines_ping_and_resolve() {
    let mut d = start_watched(&config("1m", "1m"), None);
    d.advance(WINDOW + secs(1));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    d.udp_send(b"heartbeat hb\n");
    d.wait_for(5, "the udp ping to resolve it", || {
        let (_, v) = d.get(&format!("/v1/incidents/{}", inc["id"]));
        (v["incident"]["status"] == "resolved").then_some(())
    });
    let m = monitor(&d);
    assert_eq!(m["state"], "ok");
    assert_eq!(m["last_ping_from"], "127.0.0.1");
    // Pinging over UDP inside every window keeps it quiet.
    for n in 2..10 {
        d.udp_send(b"heartbeat hb");
        d.wait_for(5, "the udp ping", || {
            (monitor(&d)["pings"] == n).then_some(())
        });
        d.advance(secs(90));
    }
    d.hold(QUIET, "a monitor pinged over UDP fired", || {
        open_heartbeat_incident(&d).is_none()
    });
    assert_eq!(heartbeat_incidents(&d).len(), 1);
}

/// A flood of pings for monitors nobody configured is counted, and warned about at most once
/// per interval, with the sender's id cut short: it must not fill the journal.
#[test]
fn udp_pings_for_unknown_monitors_are_counted_junk_and_warned_about_once() {
    let d = Daemon::start(&config("1m", "1m"));
    let long = "x".repeat(200);
    for n in 0..50 {
        d.udp_send(format!("heartbeat nosuch-{n}-{long}").as_bytes());
    }
    d.wait_for(10, "every ping counted as junk", || {
        d.metrics_text()
            .contains(r#"pagerbox_alerts_received_total{source="udp",outcome="junk"} 50"#)
            .then_some(())
    });
    let log = d.log();
    let warned = log.matches("not configured").count();
    assert_eq!(warned, 1, "{log}");
    assert!(!log.contains(&long), "the whole id was logged");
}

#[test]
fn unknown_heartbeat_is_404_and_pings_need_the_token_when_configured() {
    let d = Daemon::start_with(&config("1m", "1m"), Some("s3cret"));
    let (code, v) = d.post_raw("/v1/heartbeats/hb", b"", None);
    assert_eq!(code, 401, "{v}");
    let (code, v) = d.post_raw("/v1/heartbeats/hb", b"", Some("Bearer wrong"));
    assert_eq!(code, 401, "{v}");
    let (code, v) = d.post("/v1/heartbeats/nope", b"");
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");
    // An Alertmanager webhook body is accepted and ignored.
    let am = json!({"version": "4", "status": "firing", "receiver": "pagerbox-watchdog",
        "groupKey": "{}:{alertname=\"Watchdog\"}", "alerts": [{"status": "firing",
        "labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {},
        "startsAt": "2026-11-22T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]});
    let (code, v) = d.post_json("/v1/heartbeats/hb", am);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["heartbeat"], "hb");
    assert!(v["due_at"].is_string(), "{v}");
    // The GET form for cron one-liners needs the token too.
    let r = ureq::get(&d.url("/v1/heartbeats/hb/ping")).call();
    assert!(matches!(r, Err(ureq::Error::Status(401, _))));
    let r = ureq::get(&d.url("/v1/heartbeats/hb/ping"))
        .set("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(r.status(), 202);
    let (code, one) = d.get("/v1/heartbeats/hb");
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["heartbeat"]["pings"], 2);
    assert_eq!(d.get("/v1/heartbeats/nope").0, 404);
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_restart_shorter_than_the_interval_does_not_fire() {
    let mut d = start_watched(&config("1m", "1m"), None);
    assert_eq!(ping(&d).0, 202);
    d.advance(secs(100));
    let due_before = monitor(&d)["due_at"].clone();
    d.stop();
    // Down across the deadline (ping + 2m), for less than the interval.
    d.advance(secs(55));
    d.spawn();
    // The watcher's first pass after the restart gives a new deadline; a step of the clock
    // before it would make the restart look longer than it was.
    d.wait_for(10, "the watcher's first pass after the restart", || {
        (monitor(&d)["due_at"] != due_before).then_some(())
    });
    // One full window from the restart before it counts as missed.
    d.advance(WINDOW - secs(10));
    d.hold(
        QUIET,
        "fired inside the window after a short restart",
        || open_heartbeat_incident(&d).is_none(),
    );
    // But the monitor is still watched: with no ping it fires after that window.
    d.advance(secs(11));
    d.wait_for(5, "the incident after the extended window", || {
        open_heartbeat_incident(&d)
    });
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn down_longer_than_the_interval_is_reported_at_restart() {
    let mut d = start_watched(&config("1m", "1m"), None);
    assert_eq!(ping(&d).0, 202);
    d.kill9();
    // Down for two intervals.
    d.advance(secs(120));
    d.spawn();
    // At once: the clock does not move again, so another window would never end.
    let inc = d.wait_for(5, "the incident at restart", || open_heartbeat_incident(&d));
    let (_, shown) = d.get(&format!("/v1/incidents/{}", inc["id"]));
    let reason = shown["incident"]["details"]["reason"].as_str().unwrap();
    assert!(reason.contains("pagerbox was down"), "{reason}");
    let (code, v) = ping(&d);
    assert_eq!((code, &v["resolved_incident"]), (202, &inc["id"]));
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn state_survives_a_restart() {
    let mut d = start_watched(&config("1m", "1m"), None);
    d.advance(WINDOW + secs(1));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    d.stop();
    d.spawn();
    // Still late a window after the restart: no second incident; the ping resolves the first.
    d.advance(WINDOW + secs(1));
    d.hold(QUIET, "one incident across the restart", || {
        monitor(&d)["state"] == "late" && heartbeat_incidents(&d).len() == 1
    });
    assert_eq!(ping(&d).1["resolved_incident"], inc["id"]);
}

#[test]
fn cli_lists_and_pings_heartbeats() {
    let d = Daemon::start(&config("1m", "1m"));
    let out = d.cli(&["heartbeat", "ping", "hb"]);
    assert!(out.status.success(), "{out:?}");
    let out = d.cli(&["heartbeat", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("hb ")).unwrap();
    assert!(line.contains(" ok "), "{text}");
    assert!(line.contains("watchdog"), "{text}");
    let out = d.cli(&["heartbeat", "ping", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
}

/// Opsgenie's heartbeat ping (`/v2/heartbeats/{name}/ping` with a GenieKey) feeds the same
/// monitors, so senders moving from Opsgenie keep their ping URL's path.
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn opsgenie_heartbeat_pings_feed_the_monitor() {
    let mut d = start_watched(&config("1m", "1m"), Some("s3cret"));
    d.advance(WINDOW + secs(1));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    // A wrong key gets Opsgenie's 401 and does not ping.
    let r = ureq::post(&d.url("/v2/heartbeats/hb/ping"))
        .set("Authorization", "GenieKey wrong")
        .call();
    assert!(matches!(r, Err(ureq::Error::Status(401, _))));
    for method in ["GET", "POST", "PUT", "PATCH"] {
        let r = ureq::request(method, &d.url("/v2/heartbeats/hb/ping"))
            .set("Authorization", "GenieKey s3cret")
            .call()
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(r.status(), 202, "{method}");
        let v: Value = r.into_json().unwrap();
        assert_eq!(v["result"], "PONG - Heartbeat received", "{v}");
        assert!(v["requestId"].is_string() && v["took"].is_number(), "{v}");
    }
    d.wait_for(5, "the Opsgenie ping to resolve it", || {
        let (_, v) = d.get(&format!("/v1/incidents/{}", inc["id"]));
        (v["incident"]["status"] == "resolved").then_some(())
    });
    assert_eq!(monitor(&d)["last_ping_from"], "opsgenie");
    // An unknown name is a 404 in Opsgenie's error shape.
    let r = ureq::get(&d.url("/v2/heartbeats/nope/ping"))
        .set("Authorization", "GenieKey s3cret")
        .call();
    let Err(ureq::Error::Status(404, r)) = r else {
        panic!("expected 404")
    };
    let v: Value = r.into_json().unwrap();
    assert!(v["message"].as_str().unwrap().contains("nope"), "{v}");
}

/// A flood of pings for one monitor, faster than they can be stored, does not stop the UDP
/// port reading: an alert sent right after it is stored, not dropped by the kernel behind a
/// receive loop waiting for room in the monitor's lane.
#[test]
fn a_flood_of_pings_does_not_block_udp_alerts() {
    let d = Daemon::start(&config("1m", "1m"));
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = d.udp.unwrap();
    // About 10,000 pings a second for 3 s, faster than one monitor's pings commit one after
    // another, slower than the port reads; the alert goes out in the middle.
    for burst in 0..3_000 {
        for _ in 0..10 {
            let _ = s.send_to(b"heartbeat hb", to);
        }
        if burst == 1_500 {
            s.send_to(b"critical after-flood the alert among the pings", to)
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    d.wait_for(15, "the alert sent among the pings", || {
        let (_, v) = d.get("/v1/incidents?status=all");
        v["incidents"]
            .as_array()?
            .iter()
            .any(|i| i["dedup_key"] == "after-flood")
            .then_some(())
    });
    assert!(monitor(&d)["pings"].as_u64().unwrap() >= 1);
}
