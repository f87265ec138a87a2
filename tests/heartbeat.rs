//! End-to-end heartbeat monitors (dead-man's switches): the real binary, real HTTP and UDP on
//! 127.0.0.1, short intervals.

mod util;

use std::time::{Duration, Instant};

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

fn ping(d: &Daemon) -> (u16, Value) {
    d.post("/v1/heartbeats/hb", b"")
}

#[test]
fn a_missed_heartbeat_opens_one_incident_on_its_route_and_a_ping_resolves_it() {
    let d = Daemon::start(&config("1s", "1s"));
    let started = Instant::now();
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "fired before interval + grace"
    );
    assert_eq!(inc["route"], "watchdog");
    assert_eq!(inc["summary"], "the watchdog went quiet");
    assert_eq!(inc["service"], "monitoring");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(monitor(&d)["state"], "late");
    // Still late a few windows later: one incident, not one per window.
    std::thread::sleep(Duration::from_secs(3));
    let all = heartbeat_incidents(&d);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["alert_count"], 1);

    let (code, v) = ping(&d);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["resolved_incident"], inc["id"]);
    let (_, shown) = d.get(&format!("/v1/incidents/{}", inc["id"]));
    assert_eq!(shown["incident"]["status"], "resolved");
    assert_eq!(shown["incident"]["resolved"]["via"], "heartbeat");
    let m = monitor(&d);
    assert_eq!(m["state"], "ok");
    assert_eq!(m["pings"], 1);
    // Keep pinging: nothing new opens.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(ping(&d).0, 202);
    }
    assert!(open_heartbeat_incident(&d).is_none());
}

#[test]
fn the_missed_heartbeat_pages_like_any_alert_on_its_route() {
    let sim = ExternalSim::start();
    let extra = format!(
        "[modem]\ndevice = \"{}\"\nprofile = \"sim7600\"\ncommand_timeout = \"2s\"\nhealth_interval = \"1s\"\n{}",
        sim.link.display(),
        config("1s", "1s")
    );
    let d = Daemon::start(&extra);
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    let sms = d.wait_for(30, "the page SMS", || sim.sms_to(ALICE).into_iter().next());
    let id = &inc["id"];
    assert_eq!(
        sms,
        format!("#{id} CRIT monitoring: the watchdog went quiet. Reply {id}a ack, {id}r resolve")
    );
}

#[test]
fn udp_heartbeat_lines_ping_and_resolve() {
    let d = Daemon::start(&config("1s", "1s"));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    d.udp_send(b"heartbeat hb\n");
    d.wait_for(5, "the udp ping to resolve it", || {
        let (_, v) = d.get(&format!("/v1/incidents/{}", inc["id"]));
        (v["incident"]["status"] == "resolved").then_some(())
    });
    let m = monitor(&d);
    assert_eq!(m["state"], "ok");
    assert_eq!(m["last_ping_from"], "127.0.0.1");
    // Pinging over UDP every half second keeps it quiet.
    for _ in 0..8 {
        d.udp_send(b"heartbeat hb");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(open_heartbeat_incident(&d).is_none());
    assert_eq!(heartbeat_incidents(&d).len(), 1);
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

#[test]
fn a_restart_shorter_than_the_interval_does_not_fire() {
    let mut d = Daemon::start(&config("3s", "1s"));
    assert_eq!(ping(&d).0, 202);
    let pinged = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    d.stop();
    // Down across the deadline (ping + 4s), for less than the interval.
    while pinged.elapsed() < Duration::from_millis(4300) {
        std::thread::sleep(Duration::from_millis(50));
    }
    d.spawn();
    let restarted = Instant::now();
    // One full window from the restart before it counts as missed.
    while restarted.elapsed() < Duration::from_millis(3500) {
        assert!(
            open_heartbeat_incident(&d).is_none(),
            "fired {:?} after a short restart",
            restarted.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // But the monitor is still watched: with no ping it fires after that window.
    d.wait_for(5, "the incident after the extended window", || {
        open_heartbeat_incident(&d)
    });
}

#[test]
fn down_longer_than_the_interval_is_reported_at_restart() {
    let mut d = Daemon::start(&config("2s", "1s"));
    assert_eq!(ping(&d).0, 202);
    d.kill9();
    std::thread::sleep(Duration::from_secs(4));
    d.spawn();
    let restarted = Instant::now();
    let inc = d.wait_for(5, "the incident at restart", || open_heartbeat_incident(&d));
    assert!(
        restarted.elapsed() < Duration::from_secs(2),
        "should fire at once, not after another window"
    );
    let (_, shown) = d.get(&format!("/v1/incidents/{}", inc["id"]));
    let reason = shown["incident"]["details"]["reason"].as_str().unwrap();
    assert!(reason.contains("pagerbox was down"), "{reason}");
    let (code, v) = ping(&d);
    assert_eq!((code, &v["resolved_incident"]), (202, &inc["id"]));
}

#[test]
fn state_survives_a_restart() {
    let mut d = Daemon::start(&config("1s", "1s"));
    let inc = d.wait_for(10, "the heartbeat incident", || open_heartbeat_incident(&d));
    d.stop();
    d.spawn();
    // Still late after the restart: no second incident; the ping resolves the first.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(monitor(&d)["state"], "late");
    assert_eq!(heartbeat_incidents(&d).len(), 1);
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
#[test]
fn opsgenie_heartbeat_pings_feed_the_monitor() {
    let d = Daemon::start_with(&config("1s", "1s"), Some("s3cret"));
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
