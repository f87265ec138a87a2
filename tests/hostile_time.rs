//! No time or duration from outside can stop a task: every query parameter and body field that
//! becomes a time is fed hostile values (huge, negative, zero, overflowing, non-ASCII, `1e309`,
//! RFC 3339 at the edges of the calendar) through the real binary. None may answer 5xx, the store
//! must still take alerts afterwards, and whatever is refused is a 4xx that says why. The same for
//! every duration key of the config through `pagerbox check`.

mod util;

use std::process::Command;

use serde_json::{json, Value};
use util::Daemon;

/// Values that become times or durations. Some are valid (`10y`, `9999-12-31T23:59:59Z`); the
/// rest must be refused with a message, never crash anything.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "300000y",
        "9999999999999999999s",
        "18446744073709551615s",
        "584942417355y",
        "1e309",
        "1e309s",
        "-1s",
        "-300000y",
        "0",
        "0s",
        "1ns",
        "10y",
        "11y",
        "",
        " ",
        "NaN",
        "inf",
        "∞",
        "١٢h",
        "2h🙂",
        "2\u{0}h",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59+14:00",
        "-9999-01-01T00:00:00Z",
        "+262143-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00-14:00",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59",
        "9999-12-31",
        "0000-01-01",
        "2026-13-45T99:99",
        "2026-02-30T10:00",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("9".repeat(400));
    v.push(format!("{}s", "9".repeat(400)));
    v
}

/// Values that are never a valid duration for a silence (or a stats range).
const NEVER_A_DURATION: &[&str] = &[
    "300000y",
    "9999999999999999999s",
    "584942417355y",
    "1e309",
    "-1s",
    "11y",
    "NaN",
    "١٢h",
];

fn config() -> String {
    util::on_call("+4915100000011", "", "10m")
        + "\n[[heartbeats]]\nid = \"backup\"\ninterval = \"366d\"\nroute = \"default\"\n"
}

/// Percent-encodes a query value byte by byte.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The reason a refusal gives, whichever shape the endpoint uses.
fn message(v: &Value) -> String {
    for k in ["error", "message"] {
        if let Some(m) = v[k].as_str() {
            return m.to_string();
        }
    }
    v.as_str().unwrap_or_default().to_string()
}

/// Asserts the answer to `what` is not a server error, and that a refusal says why.
fn judge(d: &Daemon, what: &str, (code, body): (u16, Value)) -> u16 {
    assert!(
        code < 500,
        "{what}: {code} {body}\n{}",
        d.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    if (400..500).contains(&code) {
        assert!(
            !message(&body).trim().is_empty(),
            "{what}: {code} without a message: {body}"
        );
    }
    code
}

/// The store still commits: an alert is accepted and its incident can be read back.
fn store_answers(d: &Daemon, after: &str) {
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": format!("still alive after {after}"), "severity": "info", "service": "probe", "dedup_key": after}),
    );
    assert_eq!(code, 202, "after {after}: {v}\n{}", d.log());
    let id = v["incident_id"].as_i64().unwrap();
    let (code, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(code, 200, "after {after}: {v}");
}

#[test]
fn hostile_times_and_durations_never_stop_the_store() {
    let d = Daemon::start(&config());
    for x in hostile() {
        let q = enc(&x);
        judge(
            &d,
            &format!("recent={x:?}"),
            d.get(&format!("/v1/silences?recent={q}")),
        );
        judge(
            &d,
            &format!("since={x:?}"),
            d.get(&format!("/v1/stats?since={q}")),
        );
        judge(
            &d,
            &format!("schedule from={x:?}"),
            d.get(&format!("/v1/schedules/primary?from={q}&days=366")),
        );
        judge(
            &d,
            &format!("schedule days={x:?}"),
            d.get(&format!("/v1/schedules/primary?days={q}")),
        );
        judge(
            &d,
            &format!("silence duration={x:?}"),
            d.post_json(
                "/v1/silences",
                json!({"service": "fuzz", "duration": x, "comment": "fuzz"}),
            ),
        );
        for (start, end) in [(Some(&x), None), (None, Some(&x)), (Some(&x), Some(&x))] {
            let mut body = json!({"service": "fuzz", "comment": "fuzz"});
            if let Some(s) = start {
                body["starts_at"] = json!(s);
            }
            match end {
                Some(e) => body["ends_at"] = json!(e),
                None => body["duration"] = json!("1h"),
            }
            judge(
                &d,
                &format!("silence {body}"),
                d.post_json("/v1/silences", body),
            );
        }
        for body in [
            json!({"user": "alice", "from": x, "until": "2026-12-01T00:00:00Z"}),
            json!({"user": "alice", "until": x}),
            json!({"user": "alice", "from": "2026-12-01T00:00:00Z", "until": x}),
        ] {
            judge(
                &d,
                &format!("override {body}"),
                d.post_json("/v1/schedules/primary/overrides", body),
            );
        }
        // Times inside alert bodies are kept as text; they must not break intake either.
        for (key, value) in [("state_start_time", json!(x)), ("timestamp", json!(x))] {
            let body = json!({"message_type": "CRITICAL", "entity_id": format!("fuzz-{key}"), "state_message": "fuzz", key: value});
            judge(
                &d,
                &format!("victorops {body}"),
                d.post_json("/integrations/generic/20131114/alert/any/fuzz", body),
            );
        }
        let body = json!({"routing_key": "fuzz", "event_action": "trigger", "payload": {"summary": "fuzz", "source": "fuzz", "severity": "info", "timestamp": x}});
        judge(
            &d,
            &format!("events v2 {body}"),
            d.post_json("/v2/enqueue", body),
        );
        store_answers(&d, &x);
    }
    // Numbers past every integer and float type where a time is a number.
    for raw in [
        r#"{"message_type":"CRITICAL","entity_id":"n","timestamp":1e309}"#,
        r#"{"message_type":"CRITICAL","entity_id":"n","timestamp":-1e308}"#,
        r#"{"message_type":"CRITICAL","entity_id":"n","state_start_time":99999999999999999999999}"#,
        r#"{"message_type":"CRITICAL","entity_id":"n","state_start_time":-9223372036854775808}"#,
    ] {
        judge(
            &d,
            raw,
            d.post(
                "/integrations/generic/20131114/alert/any/fuzz",
                raw.as_bytes(),
            ),
        );
    }
    for raw in [
        r#"{"service":"fuzz","duration":1e309,"comment":"x"}"#,
        r#"{"service":"fuzz","duration":-1,"comment":"x"}"#,
        r#"{"user":"alice","until":1e309}"#,
    ] {
        judge(&d, raw, d.post("/v1/silences", raw.as_bytes()));
        judge(
            &d,
            raw,
            d.post("/v1/schedules/primary/overrides", raw.as_bytes()),
        );
    }
    store_answers(&d, "raw numbers");

    // What can never be valid is refused with a 400 that names the field.
    for x in NEVER_A_DURATION {
        let (code, v) = d.post_json(
            "/v1/silences",
            json!({"service": "fuzz", "duration": x, "comment": "fuzz"}),
        );
        assert_eq!(code, 400, "duration {x:?}: {v}");
        assert!(v.to_string().contains("duration"), "{x:?}: {v}");
        let (code, v) = d.get(&format!("/v1/silences?recent={}", enc(x)));
        assert_eq!(code, 400, "recent {x:?}: {v}");
        assert!(message(&v).contains("recent"), "{x:?}: {v}");
        // Eleven years back is a long but possible stats range.
        if *x != "11y" {
            let (code, v) = d.get(&format!("/v1/stats?since={}", enc(x)));
            assert_eq!(code, 400, "since {x:?}: {v}");
        }
    }
    // An override shorter than a millisecond is empty as stored: 400, not a store fault that
    // would leave /healthz degraded.
    let (code, v) = d.post_json(
        "/v1/schedules/primary/overrides",
        json!({"user": "alice", "from": "2026-12-24T00:00:00.0001Z", "until": "2026-12-24T00:00:00.0009Z"}),
    );
    assert_eq!(code, 400, "{v}");
    let (_, h) = d.get("/healthz");
    assert!(h["store_faults"].is_null(), "{h}");
    // A span whose sum with now is past the calendar: refused with 400, never a stop of the store thread.
    let (code, v) = d.get("/v1/silences?recent=300000y");
    assert_eq!(code, 400, "{v}");
    assert!(message(&v).contains("too long"), "{v}");
    // A silence that ends at the end of the calendar is fine, and is listed.
    let (code, v) = d.post_json(
        "/v1/silences",
        json!({"service": "far", "ends_at": "9999-12-31T23:59:59Z", "comment": "long"}),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = d.get("/v1/silences?recent=10y");
    assert_eq!(code, 200, "{v}");
    assert!(v.to_string().contains("\"far\""), "{v}");
    store_answers(&d, "the end");
    assert!(
        !d.log().contains("panicked"),
        "a task panicked:\n{}",
        d.log()
    );
}

/// Every duration key of the config, set to hostile values: `pagerbox check` never crashes,
/// refuses the ones that cannot be meant with FILE:LINE:COL, and takes the sane ones.
#[test]
fn hostile_config_durations_are_refused_at_their_line() {
    let keys: &[(&str, &str)] = &[
        ("[modem]", "command_timeout"),
        ("[modem]", "sms_timeout"),
        ("[modem]", "health_interval"),
        ("[modem]", "ring_for"),
        ("[email]", "timeout"),
        ("[paging]", "channel_timeout"),
        ("[paging]", "group_window"),
        ("[paging]", "rate_limit_window"),
        (
            "[[heartbeats]]\nid = \"hb\"\nroute = \"default\"",
            "interval",
        ),
        (
            "[[heartbeats]]\nid = \"hb\"\nroute = \"default\"\ninterval = \"1h\"",
            "grace",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (table, key) in keys {
        for x in hostile() {
            let text = format!("{}\n{table}\n{key} = {}\n", config(), json!(x));
            let path = dir.path().join("c.toml");
            std::fs::write(&path, &text).unwrap();
            let out = Command::new(util::BIN)
                .args(["check", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{table} {key} = {x:?}: exit {code:?}\n{stdout}{stderr}"
            );
            if NEVER_A_DURATION.contains(&x.as_str()) || x == "10y" {
                let line = text.lines().count();
                let at = format!("{}:{line}:", path.display());
                assert_eq!(code, Some(1), "{key} = {x:?} passed check:\n{stdout}");
                assert!(
                    stdout
                        .lines()
                        .any(|l| l.starts_with(&at) && l.contains(key)),
                    "{key} = {x:?}: no {at} error:\n{stdout}"
                );
            }
        }
    }
}

/// Times in the config at the edges of the calendar (a rotation that starts in year 9999 or
/// year 1, overrides and repeating silences out there): `check` does not crash, and when it
/// accepts the file the daemon starts and every page that computes with those times answers.
#[test]
fn config_times_at_the_edges_of_the_calendar_never_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut started = 0;
    // Each instant, and a minute after it for the repeating window.
    for (at, soon) in [
        ("9999-12-31T23:00", "9999-12-31T23:01"),
        ("9999-12-31T23:58:59", "9999-12-31T23:59:59"),
        ("0001-01-01T00:00", "0001-01-01T00:01"),
        ("1970-01-01T00:00", "1970-01-01T00:01"),
        ("-9999-01-01T00:00", "-9999-01-01T00:01"),
        ("0000-01-01T00:00", "0000-01-01T00:01"),
    ] {
        let extra = format!(
            r#"
[[schedules.layers]]
users = ["alice"]
shift = "1d"
start = "{at}"
restrictions = ["Mon-Fri 09:00-18:00"]
[[schedules.overrides]]
user = "alice"
from = "{at}"
until = "9999-12-31T23:59"

[[silences]]
id = "edge"
time_zone = "Pacific/Kiritimati"
starts = "{at}"
ends = "9999-12-31T23:59"
service = "db"
comment = "edge"

[[silences]]
id = "edge-weekly"
starts = "{at}"
ends = "{soon}"
every = "7d"
service = "db"
comment = "edge"
"#
        );
        // The layer and override belong to the schedule `config()` declares last but one.
        let text = config().replace("[[policies]]", &format!("{extra}\n[[policies]]"));
        // Checked as the daemon will run it (the base config's time zone decides which local
        // times near the ends of the calendar still have an instant there).
        let path = dir.path().join("edge.toml");
        let state = dir.path().join("state");
        std::fs::write(&path, util::base_config(&state, &text)).unwrap();
        let out = Command::new(util::BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "{at}: exit {code:?}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code != Some(0) {
            // Refused: it must say where.
            assert!(
                stdout.contains(&format!("{}:", path.display())),
                "{at}: {stdout}"
            );
            continue;
        }
        started += 1;
        let d = Daemon::start(&text);
        for path in [
            "/v1/oncall",
            "/v1/schedules/primary",
            "/v1/schedules/primary?from=9999-12-20&days=366",
            "/v1/schedules/primary?format=ics",
            "/v1/schedules/primary/overrides",
            "/v1/silences?recent=10y",
            "/v1/heartbeats",
            "/v1/stats?since=10y",
            "/",
        ] {
            judge(&d, &format!("{at}: GET {path}"), d.get(path));
        }
        // 503 here says "no paging channel" (this config has none), not a broken store.
        let (_, h) = d.get("/healthz");
        assert_eq!(h["store"], "ok", "{at}: GET /healthz: {h}");
        let (code, v) = d.post_json(
            "/v1/alerts",
            json!({"summary": "edge", "severity": "critical", "service": "db"}),
        );
        assert_eq!(code, 202, "{at}: {v}");
        store_answers(&d, at);
        assert!(!d.log().contains("panicked"), "{at}:\n{}", d.log());
    }
    assert!(started >= 3, "most edge configs are valid and were run");
}

/// The real HTTP handlers and the real store, in process, for many generated values: any text
/// in any time or duration field is a 2xx or a 4xx with a message, and the store still commits.
mod generated {
    use std::sync::Arc;

    use pagerbox::config::Config;
    use pagerbox::intake::{Intake, IntakeParts, IntakeStats};
    use pagerbox::store::Store;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::{config, enc, message};

    struct Running {
        _rt: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
        base: String,
    }

    fn start() -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(&config(), "t.toml", dir.path())
            .unwrap()
            .config;
        let store = Store::open(
            &dir.path().join("pagerbox.db"),
            Arc::new(pagerbox::clock::SystemClock),
        )
        .unwrap();
        let (_tx, config_rx) = tokio::sync::watch::channel(Arc::new(cfg));
        let health = pagerbox::health::Sources {
            store: store.clone(),
            paging: None,
            modem: None,
            liveness: Default::default(),
            selftest_fault: None,
            clock: Arc::new(pagerbox::clock::SystemClock),
            standby: None,
            pages_nobody: None,
        };
        let limits = pagerbox::api::server::Limits::from_config(&config_rx.borrow().http);
        let (_token_tx, token_rx) = tokio::sync::watch::channel(None);
        let intake = Intake::from(IntakeParts {
            store,
            config: config_rx,
            token: token_rx,
            stats: Arc::new(IntakeStats::default()),
            paging: None,
            modem: None,
            metrics: pagerbox::metrics::Metrics::new(chrono::Utc::now()),
            selftest: None,
            health,
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            // Keep the config sender alive as long as the server runs.
            let _tx = _tx;
            let _token_tx = _token_tx;
            pagerbox::api::serve(
                listener,
                intake,
                256 * 1024,
                limits,
                tokio_util::sync::CancellationToken::new(),
            )
            .await
        });
        Running {
            _rt: rt,
            _dir: dir,
            base,
        }
    }

    fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
        let (code, resp) = match r {
            Ok(resp) => (resp.status(), resp),
            Err(ureq::Error::Status(code, resp)) => (code, resp),
            Err(e) => panic!("request failed: {e}"),
        };
        let text = resp.into_string().unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn ok(what: &str, (code, body): (u16, Value)) -> Result<(), TestCaseError> {
        prop_assert!(code < 500, "{what}: {code} {body}");
        if (400..500).contains(&code) {
            prop_assert!(!message(&body).trim().is_empty(), "{what}: {code} {body}");
        }
        Ok(())
    }

    /// Text that might be a time or a duration, or nothing like one.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,32}",
            (any::<u64>(), "(ns|ms|s|m|h|d|w|M|y| years|)").prop_map(|(n, u)| format!("{n}{u}")),
            (any::<i64>(), "(s|h|d|y)").prop_map(|(n, u)| format!("{n}{u}")),
            // The band where a duration parses but overflows a date.
            (0u64..1_000_000_000_000, "(d|w|y)").prop_map(|(n, u)| format!("{n}{u}")),
            (any::<f64>(), "(s|h|d)").prop_map(|(n, u)| format!("{n}{u}")),
            (
                -300_000i64..300_000,
                0u32..14,
                0u32..33,
                0u32..25,
                "(Z|\\+14:00|-12:00|)"
            )
                .prop_map(|(y, m, d, h, z)| format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00{z}")),
            (-300_000i64..300_000).prop_map(|y| format!("{y:04}-12-31")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn any_time_text_is_answered_and_the_store_keeps_committing(x in value(), y in value()) {
            thread_local! {
                static RUNNING: Running = start();
            }
            RUNNING.with(|r| -> Result<(), TestCaseError> {
                let get = |p: &str| answer(ureq::get(&format!("{}{p}", r.base)).call());
                let post = |p: &str, body: Value| {
                    answer(
                        ureq::post(&format!("{}{p}", r.base))
                            .set("Content-Type", "application/json")
                            .send_string(&body.to_string()),
                    )
                };
                let (qx, qy) = (enc(&x), enc(&y));
                ok("recent", get(&format!("/v1/silences?recent={qx}")))?;
                ok("since", get(&format!("/v1/stats?since={qx}")))?;
                ok("schedule from", get(&format!("/v1/schedules/primary?from={qx}&days={qy}")))?;
                ok("silence duration", post("/v1/silences", json!({"service": "p", "duration": x, "comment": "p"})))?;
                ok("silence window", post("/v1/silences", json!({"service": "p", "starts_at": x, "ends_at": y, "comment": "p"})))?;
                ok("silence start", post("/v1/silences", json!({"service": "p", "starts_at": x, "duration": y, "comment": "p"})))?;
                ok("override", post("/v1/schedules/primary/overrides", json!({"user": "alice", "from": x, "until": y})))?;
                ok("victorops", post("/integrations/generic/20131114/alert/k/p", json!({"message_type": "CRITICAL", "entity_id": "p", "state_start_time": x, "timestamp": y})))?;
                let (code, v) = post("/v1/alerts", json!({"summary": "probe", "severity": "info", "service": "probe", "dedup_key": x}));
                prop_assert_eq!(code, 202, "{}", v);
                Ok(())
            })?;
        }
    }
}
