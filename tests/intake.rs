//! End-to-end intake tests: the real binary, real HTTP and UDP on 127.0.0.1.

mod util;

use std::time::Duration;

use serde_json::{json, Value};
use util::{fixture, Daemon};

fn incident(d: &Daemon, id: i64) -> Value {
    let (code, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(code, 200, "{v}");
    v
}

fn kinds(v: &Value) -> Vec<String> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn own_format_trigger_is_idempotent_and_reopens_after_resolve() {
    let d = Daemon::start("");
    let body = json!({"summary": "/var on db1 97% full", "severity": "critical", "dedup_key": "disk-db1", "service": "db", "details": {"used": 97}});
    let (code, a) = d.post_json("/v1/alerts", body.clone());
    assert_eq!(code, 202, "{a}");
    assert_eq!(a["status"], "triggered");
    let (code, b) = d.post_json("/v1/alerts", body.clone());
    assert_eq!(code, 202);
    assert_eq!(
        b["incident_id"], a["incident_id"],
        "re-trigger of an open key bumps, not opens"
    );
    assert_eq!(b["alert_count"], 2);

    // Resolve by key, then a new trigger opens a new incident.
    let (code, r) = d.post_json(
        "/v1/alerts",
        json!({"action": "resolve", "dedup_key": "disk-db1"}),
    );
    assert_eq!((code, r["status"].as_str()), (202, Some("resolved")));
    let (_, c) = d.post_json("/v1/alerts", body);
    assert_ne!(c["incident_id"], a["incident_id"]);

    let v = incident(&d, a["incident_id"].as_i64().unwrap());
    assert_eq!(v["incident"]["details"]["used"], 97);
    assert_eq!(v["incident"]["service"], "db");
    assert_eq!(
        kinds(&v)[..2],
        ["triggered".to_string(), "unrouted".to_string()]
    );
    assert!(kinds(&v).contains(&"repeated".to_string()));
    assert_eq!(kinds(&v).last().unwrap(), "resolved");

    // Acknowledge of a key never seen is a clear 404.
    let (code, e) = d.post_json(
        "/v1/alerts",
        json!({"action": "acknowledge", "dedup_key": "nope"}),
    );
    assert_eq!(code, 404, "{e}");
}

#[test]
fn ack_and_resolve_by_id_record_who_and_how() {
    let d = Daemon::start("");
    let (_, a) = d.post_json(
        "/v1/alerts",
        json!({"summary": "api 5xx", "severity": "error"}),
    );
    let id = a["incident_id"].as_i64().unwrap();
    let (code, v) = d.post_json(
        &format!("/v1/incidents/{id}/acknowledge"),
        json!({"by": "alice"}),
    );
    assert_eq!(
        (code, v["status"].as_str(), v["changed"].as_bool()),
        (200, Some("acknowledged"), Some(true))
    );
    let (code, v) = d.post_json(
        &format!("/v1/incidents/{id}/acknowledge"),
        json!({"by": "bob"}),
    );
    assert_eq!((code, v["changed"].as_bool()), (200, Some(false)));
    let (code, v) = d.post(&format!("/v1/incidents/%23{id}/resolve"), b"");
    assert_eq!((code, v["status"].as_str()), (200, Some("resolved")), "{v}");
    let v = incident(&d, id);
    assert_eq!(v["incident"]["acknowledged"]["by"], "alice");
    assert_eq!(v["incident"]["acknowledged"]["via"], "http");
    assert_eq!(v["incident"]["resolved"]["by"], "api");
    let (code, _) = d.post_json("/v1/incidents/999/acknowledge", json!({}));
    assert_eq!(code, 404);
    let (code, _) = d.post_json("/v1/incidents/abc/acknowledge", json!({}));
    assert_eq!(code, 400);
    // Listing: open only by default, all on request.
    let (_, open) = d.get("/v1/incidents");
    assert_eq!(open["incidents"].as_array().unwrap().len(), 0);
    let (_, all) = d.get("/v1/incidents?status=all");
    assert_eq!(all["incidents"].as_array().unwrap().len(), 1);
}

#[test]
fn pagerduty_client_fixtures_trigger_and_resolve() {
    let d = Daemon::start("");
    let (code, v) = d.post("/v2/enqueue", &fixture("pagerduty/pd-client-trigger.json"));
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "message": "Event processed", "dedup_key": "pagerbox-test-db1"})
    );
    let (_, list) = d.get("/v1/incidents");
    let inc = &list["incidents"][0];
    assert_eq!(inc["summary"], "db1 is down");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(inc["links"][0]["href"], "https://runbooks.example/db1");
    let (code, v) = d.post("/v2/enqueue", &fixture("pagerduty/pd-client-resolve.json"));
    assert_eq!(
        (code, v["dedup_key"].as_str()),
        (202, Some("pagerbox-test-db1"))
    );
    let (_, list) = d.get("/v1/incidents");
    assert!(list["incidents"].as_array().unwrap().is_empty());
}

#[test]
fn pagerduty_errors_use_pagerduty_shapes() {
    let d = Daemon::start("");
    let (code, v) = d.post("/v2/enqueue", br#"{"event_action":"trigger","payload":{}}"#);
    assert_eq!(code, 400);
    assert_eq!(v["status"], "invalid event");
    assert_eq!(v["message"], "Event object is invalid");
    assert!(v["errors"].as_array().unwrap().len() >= 3, "{v}");
    let (code, v) = d.post("/v2/enqueue", b"{not json");
    assert_eq!((code, v["status"].as_str()), (400, Some("invalid event")));
    // Change events are recorded, not paged.
    let (code, v) = d.post(
        "/v2/change/enqueue",
        br#"{"routing_key":"k","payload":{"summary":"deployed v2","source":"ci","custom_details":{"sha":"abc"}}}"#,
    );
    assert_eq!((code, v["status"].as_str()), (202, Some("success")), "{v}");
    let (_, list) = d.get("/v1/incidents?status=all");
    assert!(list["incidents"].as_array().unwrap().is_empty());
}

#[test]
fn alertmanager_webhook_and_pagerduty_receiver_fixtures() {
    let d = Daemon::start("");
    let (code, v) = d.post(
        "/v1/integrations/alertmanager",
        &fixture("alertmanager/alertmanager-webhook-curl-firing.json"),
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["alerts"][0]["dedup_key"], "516cb9768a6d01b0");
    let id = v["alerts"][0]["incident_id"].as_i64().unwrap();
    // Alertmanager re-sends firing groups: still one incident.
    let (_, v2) = d.post(
        "/v1/integrations/alertmanager",
        &fixture("alertmanager/alertmanager-webhook-curl-firing.json"),
    );
    assert_eq!(v2["alerts"][0]["incident_id"].as_i64(), Some(id));
    let (code, _) = d.post(
        "/v1/integrations/alertmanager",
        &fixture("alertmanager/alertmanager-webhook-curl-resolved.json"),
    );
    assert_eq!(code, 202);
    assert_eq!(incident(&d, id)["incident"]["status"], "resolved");
    assert_eq!(
        incident(&d, id)["incident"]["resolved"]["via"],
        "alertmanager"
    );

    let (code, v) = d.post(
        "/v2/enqueue",
        &fixture("alertmanager/alertmanager-pagerduty-curl-firing.json"),
    );
    assert_eq!(code, 202, "{v}");
    let (code, _) = d.post(
        "/v2/enqueue",
        &fixture("alertmanager/alertmanager-pagerduty-curl-resolved.json"),
    );
    assert_eq!(code, 202);
    let (_, list) = d.get("/v1/incidents");
    assert!(list["incidents"].as_array().unwrap().is_empty());
}

/// A storm Alertmanager sends as one group larger than `http.max_body_bytes` is taken whole:
/// Alertmanager gives up on a 413 for good, so a big group refused would never page.
#[test]
fn a_large_alertmanager_group_is_taken_whole() {
    let d = Daemon::start("");
    let real: Value = serde_json::from_slice(&fixture(
        "alertmanager/alertmanager-webhook-curl-firing.json",
    ))
    .unwrap();
    let one = &real["alerts"][0];
    let alerts: Vec<Value> = (0..500)
        .map(|i| {
            let mut a = one.clone();
            a["labels"]["instance"] = json!(format!("db{i}:9100"));
            a["fingerprint"] = json!(format!("{i:016x}"));
            a["annotations"]["description"] = json!(format!("{} {i}", "x".repeat(300)));
            a
        })
        .collect();
    let mut group = real.clone();
    group["alerts"] = json!(alerts);
    let body = serde_json::to_vec(&group).unwrap();
    assert!(body.len() > 256 * 1024, "{}", body.len());
    let (code, v) = d.post("/v1/integrations/alertmanager", &body);
    assert_eq!(code, 202, "{v}");
    let metrics = d.metrics_text();
    assert!(
        metrics.contains(
            r#"pagerbox_alerts_received_total{source="alertmanager",outcome="accepted"} 500"#
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("alerts_received"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Other paths keep the configured limit.
    let big = vec![b'a'; 300 * 1024];
    assert_eq!(d.post_status_early("/v1/alerts", &big), 413);
}

#[test]
fn bad_requests_get_clear_errors_and_lose_nothing() {
    let d = Daemon::start("");
    let (_, ok) = d.post_json(
        "/v1/alerts",
        json!({"summary": "before", "dedup_key": "before"}),
    );
    let (code, v) = d.post("/v1/alerts", b"{\"summary\": \"x\",\n \"severity\": }");
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("line 2"), "{v}");
    let (code, v) = d.post("/v1/alerts", br#"{"summary":"x","severity":"sev1"}"#);
    assert_eq!(code, 400);
    assert!(v["errors"][0].as_str().unwrap().contains("sev1"), "{v}");
    let big = vec![b'a'; 300 * 1024];
    assert_eq!(d.post_status_early("/v1/alerts", &big), 413);
    let (code, _) = d.post("/v1/nope", b"{}");
    assert_eq!(code, 404);
    // The earlier alert is intact and the daemon still answers.
    assert_eq!(
        incident(&d, ok["incident_id"].as_i64().unwrap())["incident"]["summary"],
        "before"
    );
    // The store is fine; this box has no paging channel at all, which /healthz must not hide.
    let (code, h) = d.get("/healthz");
    assert_eq!((code, h["store"].as_str()), (503, Some("ok")), "{h}");
    assert_eq!(
        h["problems"],
        serde_json::json!([{"problem": "no_channel"}])
    );
}

#[test]
fn token_auth_guards_writes_only() {
    let d = Daemon::start_with("", Some("s3cret-token"));
    let body = br#"{"summary":"x"}"#;
    assert_eq!(d.post_raw("/v1/alerts", body, None).0, 401);
    assert_eq!(d.post_raw("/v1/alerts", body, Some("Bearer wrong")).0, 401);
    assert_eq!(
        d.post_raw("/v1/alerts", body, Some("Bearer s3cret-token"))
            .0,
        202
    );
    assert_eq!(d.post_raw("/v1/incidents/1/acknowledge", b"", None).0, 401);
    assert_eq!(
        d.post_raw(
            "/v1/integrations/alertmanager",
            &fixture("alertmanager/alertmanager-webhook-curl-firing.json"),
            None
        )
        .0,
        401
    );
    // PagerDuty endpoints accept the token as routing_key, as PagerDuty clients cannot send headers.
    let pd = json!({"routing_key": "s3cret-token", "event_action": "trigger", "dedup_key": "pd", "payload": {"summary": "s", "source": "x", "severity": "info"}});
    assert_eq!(
        d.post_raw("/v2/enqueue", pd.to_string().as_bytes(), None).0,
        202
    );
    assert_eq!(
        d.post_raw(
            "/v2/enqueue",
            &fixture("pagerduty/pd-client-trigger.json"),
            None
        )
        .0,
        401
    );
    // Reads stay open.
    assert_eq!(d.get("/v1/incidents").0, 200);
    assert!(
        !d.log().contains("s3cret-token"),
        "the token must never be logged"
    );
}

#[test]
fn udp_json_and_text_lines_and_junk() {
    let d = Daemon::start("");
    d.udp_send(b"critical disk-db1 /var on db1 is 97% full\n");
    d.udp_send(br#"{"summary":"json over udp","severity":"warning","dedup_key":"udp-json"}"#);
    d.udp_send(b"\xff\xfe\x00 garbage");
    d.udp_send(b"hello world");
    let list = d.wait_for(10, "two udp incidents", || {
        let (_, v) = d.get("/v1/incidents");
        let list = v["incidents"].as_array().unwrap().clone();
        (list.len() == 2).then_some(list)
    });
    let disk = list.iter().find(|i| i["dedup_key"] == "disk-db1").unwrap();
    assert_eq!(disk["summary"], "/var on db1 is 97% full");
    assert_eq!(disk["severity"], "critical");
    assert!(list
        .iter()
        .any(|i| i["dedup_key"] == "udp-json" && i["severity"] == "warning"));
    d.udp_send(b"resolve disk-db1 recovered");
    d.wait_for(10, "udp resolve", || {
        let (_, v) = d.get("/v1/incidents");
        (v["incidents"].as_array().unwrap().len() == 1).then_some(())
    });
    d.wait_for(5, "junk to be logged", || {
        d.log().contains("udp datagram ignored").then_some(())
    });
}

/// A lane that dies (here by an injected panic) loses the datagram it held, loudly, and is
/// started again: UDP intake goes on for every key, the lane's own included.
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_udp_lane_that_dies_is_started_again() {
    let d = Daemon::start("");
    d.arm_fault("udp.lane_panic", json!({"times": 1}));
    d.udp_send(b"critical lost-1 poisoned");
    d.wait_for(10, "the lane's death to be said", || {
        d.log().contains("a udp lane died").then_some(())
    });
    for i in 0..40 {
        d.udp_send(format!("critical after-{i} fine").as_bytes());
    }
    d.wait_for(10, "every later datagram stored", || {
        let (_, v) = d.get("/v1/incidents");
        (v["incidents"].as_array().unwrap().len() == 40).then_some(())
    });
}

/// A group refused for good (here for one alert with an unknown status) is dropped by
/// Alertmanager, so the refusal is in the log, not only in a counter.
#[test]
fn a_refused_alertmanager_group_is_warned_about() {
    let d = Daemon::start("");
    let body = json!({"version": "4", "status": "firing", "receiver": "pagerbox",
        "groupKey": "{}:{}", "alerts": [{"status": "exploded", "labels": {"alertname": "X"},
        "annotations": {}, "startsAt": "2026-11-22T03:00:00Z"}]});
    let (code, v) = d.post_json("/v1/integrations/alertmanager", body);
    assert_eq!(code, 400, "{v}");
    d.wait_for(5, "the warning", || {
        d.log().contains("alerts refused for good").then_some(())
    });
}

/// Alerts without a dedup key are keyed by their text and source, and by their service: the
/// same "disk full" for two teams' services is two incidents, each routed and paged on its own.
#[test]
fn the_same_text_for_two_services_is_two_incidents() {
    let d = Daemon::start("");
    let (_, db) = d.post_json(
        "/v1/alerts",
        json!({"summary": "disk full", "service": "db"}),
    );
    let (_, web) = d.post_json(
        "/v1/alerts",
        json!({"summary": "disk full", "service": "web"}),
    );
    let (_, again) = d.post_json(
        "/v1/alerts",
        json!({"summary": "disk full", "service": "db"}),
    );
    assert_ne!(db["incident_id"], web["incident_id"], "{db} {web}");
    assert_eq!(db["incident_id"], again["incident_id"], "{again}");
}

/// A trigger and its resolve sent back to back must apply in that order: a resolve applied
/// first finds nothing to resolve, and the trigger then opens an incident that pages and stays.
#[test]
fn udp_trigger_then_resolve_back_to_back_ends_resolved() {
    let d = Daemon::start("");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = d.udp.unwrap();
    const PAIRS: usize = 200;
    for i in 0..PAIRS {
        sock.send_to(format!("critical flap-{i} disk full").as_bytes(), to)
            .unwrap();
        sock.send_to(format!("resolve flap-{i} ok").as_bytes(), to)
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    d.wait_for(30, "every datagram applied", || {
        let received: f64 = d
            .metrics_text()
            .lines()
            .filter(|l| {
                l.starts_with("pagerbox_alerts_received_total{") && l.contains("source=\"udp\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (received as usize >= 2 * PAIRS).then_some(())
    });
    let (_, v) = d.get("/v1/incidents");
    let open: Vec<_> = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["dedup_key"].clone())
        .collect();
    assert!(open.is_empty(), "left open: {open:?}");
}

#[test]
fn incidents_and_timelines_survive_restart_and_kill9() {
    let mut d = Daemon::start("");
    let (_, a) = d.post_json("/v1/alerts", json!({"summary": "one", "dedup_key": "one"}));
    let id = a["incident_id"].as_i64().unwrap();
    d.post_json(
        &format!("/v1/incidents/{id}/acknowledge"),
        json!({"by": "alice"}),
    );
    d.stop();
    d.spawn();
    let v = incident(&d, id);
    assert_eq!(v["incident"]["status"], "acknowledged");
    assert_eq!(kinds(&v), ["triggered", "unrouted", "acknowledged"]);
    // Everything answered 202 before a SIGKILL is there after it.
    let mut ids = vec![];
    for i in 0..50 {
        let (code, v) = d.post_json(
            "/v1/alerts",
            json!({"summary": format!("s{i}"), "dedup_key": format!("k{i}")}),
        );
        assert_eq!(code, 202);
        ids.push(v["incident_id"].as_i64().unwrap());
    }
    d.kill9();
    d.spawn();
    for id in ids {
        assert_eq!(incident(&d, id)["incident"]["status"], "triggered");
    }
}

#[test]
fn store_that_cannot_commit_answers_retryable_status() {
    let d = Daemon::start("");
    let (_, before) = d.post_json(
        "/v1/alerts",
        json!({"summary": "before", "dedup_key": "before"}),
    );
    // Another process holds SQLite's write lock: commits fail until it lets go.
    let lock = rusqlite::Connection::open(d.state_dir().join("pagerbox.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "during", "dedup_key": "during"}),
    );
    assert_eq!(code, 503, "{v}");
    let pd = json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "pd", "payload": {"summary": "s", "source": "x", "severity": "info"}});
    let (code, v) = d.post_json("/v2/enqueue", pd);
    assert_eq!(code, 429, "PagerDuty clients retry 429: {v}");
    let (code, _) = d.post(
        "/v1/integrations/alertmanager",
        &fixture("alertmanager/alertmanager-webhook-curl-firing.json"),
    );
    assert_eq!(code, 503, "Alertmanager retries 5xx");
    lock.execute_batch("ROLLBACK").unwrap();
    // Retried, it lands; nothing earlier was lost.
    let (code, _) = d.post_json(
        "/v1/alerts",
        json!({"summary": "during", "dedup_key": "during"}),
    );
    assert_eq!(code, 202);
    assert_eq!(
        incident(&d, before["incident_id"].as_i64().unwrap())["incident"]["summary"],
        "before"
    );
}

/// An alert whose details nest as deep as the intake parser takes is kept and paged, and the
/// CLI can still list, acknowledge and resolve it (its details are cut to a depth every reader
/// parses).
#[test]
fn deeply_nested_details_leave_the_cli_working() {
    let d = Daemon::start("");
    let deep = format!("{}1{}", "[".repeat(124), "]".repeat(124));
    let body = format!(r#"{{"summary":"deep","dedup_key":"deep","details":{{"x":{deep}}}}}"#);
    let (code, v) = d.post("/v1/alerts", body.as_bytes());
    assert_eq!(code, 202, "{v}");
    let out = d.cli(&["incidents"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("deep"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["ack", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["show", "1", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["incident"]["details"]
            .to_string()
            .contains("nested deeper than"),
        "{v}"
    );
}

#[test]
fn cli_client_round_trip() {
    let d = Daemon::start("");
    let out = d.cli(&[
        "send",
        "--severity",
        "critical",
        "--key",
        "K1",
        "--service",
        "db",
        "disk",
        "full",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("triggered"));
    let out = d.cli(&["incidents"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("disk full") && table.contains("#1"),
        "{table}"
    );
    let out = d.cli(&["ack", "1", "--by", "carol"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("#1 acknowledged"));
    let out = d.cli(&["show", "1", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incident"]["acknowledged"]["by"], "carol");
    assert_eq!(v["incident"]["acknowledged"]["via"], "cli");
    // The alert names its path too: sent to one box only, a pair shares it with the peer.
    assert!(
        v["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "triggered" && e["via"] == "cli"),
        "{v}"
    );
    let out = d.cli(&["resolve", "99"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    // A reload must page someone (a config without users, policies or routes is refused).
    let d = Daemon::start(
        "[[users]]\nid = \"a\"\nphone = \"+4915100000001\"\n[[policies]]\nid = \"p\"\n[[policies.steps]]\nusers = [\"a\"]\n[[routes]]\nid = \"r\"\npolicy = \"p\"\n",
    );
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!("{good}\n[paging]\ngroup_window = \"never\"\n"),
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for(5, "reload rejected", || {
        d.log().contains("config reload rejected").then_some(())
    });
    assert!(d.log().contains("not a duration"), "{}", d.log());
    assert_eq!(d.get("/healthz").1["store"], "ok");
    std::fs::write(&d.config, good).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for(5, "reload", || {
        d.log().contains("config reloaded").then_some(())
    });
}

/// Alice on call on the weekly schedule `primary`, and bob, whom an override puts there.
fn oncall() -> String {
    format!(
        "{}\n[[users]]\nid = \"bob\"\nphone = \"+4915100000022\"\n",
        util::on_call(util::PAGER_PHONE, "", "10m")
    )
}

#[test]
fn runtime_overrides_change_who_is_on_call_over_http_and_cli() {
    let d = Daemon::start(&oncall());
    let (_, v) = d.get("/v1/oncall");
    assert_eq!(v["schedules"][0]["on_call"]["user"], "alice");
    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let (code, o) = d.post_json(
        "/v1/schedules/primary/overrides",
        json!({"user": "bob", "until": until}),
    );
    assert_eq!(code, 201, "{o}");
    let (_, v) = d.get("/v1/oncall");
    assert_eq!(v["schedules"][0]["on_call"]["user"], "bob");
    // The offline CLI reads the same overrides from the database.
    let out = d.cli(&["oncall"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bob"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = d.cli(&["override", "list", "primary"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("bob"));
    let (code, _) = d.post_json(
        "/v1/schedules/primary/overrides",
        json!({"user": "nobody", "until": until}),
    );
    assert_eq!(code, 400);
    let (code, v) = d.get("/v1/schedules/primary?days=7");
    assert_eq!(code, 200);
    assert!(v["shifts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["user"] == "bob"));
    let ics = ureq::get(&d.url("/v1/schedules/primary?format=ics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    let id = o["id"].as_i64().unwrap();
    let out = d.cli(&["override", "delete", "primary", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = d.get("/v1/oncall");
    assert_eq!(v["schedules"][0]["on_call"]["user"], "alice");
}
