//! Cross-site writes, end to end: the real daemon with no token (the example's default), and a
//! hostile page served from another loopback origin, opened in headless Chromium over WebDriver.
//! The page tries what a browser lets any page do (a `no-cors` fetch with `text/plain`, a form
//! post, an image GET) to silence, acknowledge, resolve and fake a heartbeat; the store must be
//! unchanged afterwards.
//!
//! Chromium and chromedriver come from Debian (`chromium`, `chromium-driver`); `./scripts/test.sh`
//! installs them. Under a bare `cargo test` without them the test fails and says so.

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{Browser, Daemon, BROWSER_TIMEOUT};

/// What the daemon logs for each refused forgery.
const REFUSED: &str = "refused a write that a web page could have forged";

const CONFIG: &str = r#"
[[users]]
id = "alice"
phone = "+4915112345678"
[[users.rules]]
channel = "sms"
after = "0s"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
wait = "60s"

[[routes]]
id = "all"
policy = "p"

[[heartbeats]]
id = "hb"
interval = "1h"
route = "all"
summary = "the watchdog went quiet"
"#;

/// The attacker's page: on load it fires every simple request a browser sends cross-origin
/// without asking, at the daemon on `target` (an `http://host:port` base).
fn hostile_page(target: &str, incident: i64) -> String {
    let silence = json!({"matchers": ["severity=~.+"], "duration": "999d", "comment": "pwned"});
    format!(
        r#"<!doctype html><html><head><title>cute cats</title></head><body>
<img src="{target}/v1/heartbeats/hb/ping">
<iframe name="sink"></iframe>
<form id="f" method="post" action="{target}/v1/incidents/{incident}/resolve" target="sink">
<input name="by" value="mallory"></form>
<script>
const plain = {{ method: "POST", mode: "no-cors", headers: {{ "Content-Type": "text/plain" }} }};
fetch("{target}/v1/silences", {{ ...plain, body: JSON.stringify({silence}) }}).catch(() => {{}});
fetch("{target}/v1/incidents/{incident}/acknowledge", {{ ...plain, body: "{{}}" }}).catch(() => {{}});
fetch("{target}/v2/enqueue", {{ ...plain,
  body: JSON.stringify({{ routing_key: "k", event_action: "resolve", dedup_key: "db" }}) }}).catch(() => {{}});
document.getElementById("f").submit();
</script></body></html>"#
    )
}

/// Serves `page` to every request on a new loopback port, on a thread, until the test ends.
fn serve_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    port
}

fn refusals(d: &Daemon) -> usize {
    d.log().matches(REFUSED).count()
}

fn state(d: &Daemon, id: i64) -> (Value, Value, Value) {
    let (_, silences) = d.get("/v1/silences");
    let (_, incident) = d.get(&format!("/v1/incidents/{id}"));
    let (_, heartbeats) = d.get("/v1/heartbeats");
    (
        silences["silences"].clone(),
        incident["incident"]["status"].clone(),
        heartbeats["heartbeats"][0].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_cannot_silence_ack_resolve_or_ping() {
    let browser = Browser::start().await;
    let client = browser.client.clone();
    let d = Daemon::start(CONFIG);
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "db down", "severity": "critical", "dedup_key": "db"}),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["incident_id"].as_i64().unwrap();
    let before = state(&d, id);
    assert_eq!(before.0, json!([]), "no silence yet");
    assert_eq!(before.1, "triggered");

    // The daemon is at 127.0.0.1; the page is served once as `localhost` (cross-site to the
    // browser) and once as another port of 127.0.0.1 (same-site, cross-origin).
    let target = format!("http://{}", d.http);
    let page_port = serve_page(hostile_page(&target, id));
    let origins = [
        format!("http://localhost:{page_port}/"),
        format!("http://127.0.0.1:{page_port}/"),
    ];

    // Each page load fires five forgeries: the image, three fetches and the form.
    let mut expected = 0;
    for origin in &origins {
        expected += 5;
        let loaded = tokio::time::timeout(BROWSER_TIMEOUT, client.goto(origin)).await;
        assert!(
            matches!(loaded, Ok(Ok(()))),
            "the hostile page {origin} loaded: {loaded:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while refusals(&d) < expected {
            assert!(
                Instant::now() < deadline,
                "from {origin}: {} of {expected} forgeries reached the daemon and were refused; \
                 log:\n{}",
                refusals(&d),
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = client.close().await;

    let log = d.log();
    for path in [
        "/v1/silences",
        &format!("/v1/incidents/{id}/acknowledge"),
        &format!("/v1/incidents/{id}/resolve"),
        "/v1/heartbeats/hb/ping",
        "/v2/enqueue",
    ] {
        assert!(log.contains(&format!("path=\"{path}\"")), "{path}:\n{log}");
    }
    // Nothing changed: no silence, the incident still triggered, the heartbeat never pinged.
    assert_eq!(state(&d, id), before);

    // The same writes from curl with the JSON type still work (the guard is not a wall).
    let (code, v) = d.post_json(&format!("/v1/incidents/{id}/acknowledge"), json!({}));
    assert_eq!(code, 200, "{v}");
    let (code, v) = d.post("/v1/heartbeats/hb/ping", b"");
    assert_eq!(code, 202, "{v}");
}
