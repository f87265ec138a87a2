//! Secret rotation by SIGHUP, through the real binary: the write token, the Opsgenie and Splunk
//! On-Call keys and the status page sessions follow the files on reload, the old values stop
//! working at once, and no secret reaches the log.

mod util;

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use util::{secret_file, Daemon};

const OLD: &str = "old-token-8c1f";
const NEW: &str = "new-token-93ad";
const OLD_GENIE: &str = "old-genie-5d21";
const NEW_GENIE: &str = "new-genie-e07b";
const OLD_VO: &str = "old-vo-77aa";
const NEW_VO: &str = "new-vo-1b3c";

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

fn code(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Logs in to the status page with `token`; returns the cookie pair.
fn login(d: &Daemon, token: &str) -> String {
    let (_, page) = code(agent().get(&d.url("/")).call());
    let start = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    let csrf = &page[start..start + 64];
    let r = agent()
        .post(&d.url("/login"))
        .send_form(&[("csrf", csrf), ("token", token)])
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_string()
}

/// True when the page, loaded with `cookie`, offers the incident's Acknowledge button.
fn logged_in(d: &Daemon, cookie: &str, id: i64) -> bool {
    let (_, page) = code(agent().get(&d.url("/")).set("Cookie", cookie).call());
    page.contains(&format!("/ui/incidents/{id}/acknowledge"))
}

fn bearer(d: &Daemon, token: &str, key: &str) -> u16 {
    let body = json!({"summary": "rotation", "severity": "warning", "dedup_key": key});
    d.post_raw(
        "/v1/alerts",
        body.to_string().as_bytes(),
        Some(&format!("Bearer {token}")),
    )
    .0
}

fn genie(d: &Daemon, key: &str, alias: &str) -> u16 {
    d.post_raw(
        "/v2/alerts",
        json!({"message": "rotation", "alias": alias})
            .to_string()
            .as_bytes(),
        Some(&format!("GenieKey {key}")),
    )
    .0
}

fn victorops(d: &Daemon, key: &str, entity: &str) -> u16 {
    d.post_raw(
        &format!("/integrations/generic/20131114/alert/{key}/db"),
        json!({"message_type": "CRITICAL", "entity_id": entity})
            .to_string()
            .as_bytes(),
        None,
    )
    .0
}

fn reload(d: &Daemon, expect_in_log: &str) {
    let before = d.log().matches(expect_in_log).count();
    d.signal(Signal::SIGHUP);
    d.wait_for(10, expect_in_log, || {
        (d.log().matches(expect_in_log).count() > before).then_some(())
    });
}

#[test]
fn sighup_rotates_the_token_the_provider_keys_and_ends_sessions() {
    let secrets = tempfile::tempdir().unwrap();
    let genie_file = secret_file(secrets.path(), "genie.key", OLD_GENIE);
    let vo_file = secret_file(secrets.path(), "vo.key", OLD_VO);
    // Someone to page, so that a reload is not refused as a config that pages nobody.
    let extra = format!(
        "[[users]]\nid = \"alice\"\nphone = \"+4915100000011\"\n\n\
         [[policies]]\nid = \"p\"\n[[policies.steps]]\nusers = [\"alice\"]\nwait = \"1h\"\n\n\
         [[routes]]\nid = \"r\"\npolicy = \"p\"\n\n\
         [[opsgenie.keys]]\nkey_file = {:?}\n\n[victorops]\napi_key_file = {:?}\n",
        genie_file.display().to_string(),
        vo_file.display().to_string()
    );
    let d = Daemon::start_with(&extra, Some(OLD));
    let token_file = d.dir.path().join("token");

    // Before: the old secrets work, and a status page login holds a session.
    assert_eq!(bearer(&d, OLD, "a1"), 202);
    assert_eq!(genie(&d, OLD_GENIE, "g1"), 202);
    assert_eq!(victorops(&d, OLD_VO, "v1"), 200);
    let (_, v) = d.get("/v1/incidents");
    let id = v["incidents"][0]["id"].as_i64().unwrap();
    let cookie = login(&d, OLD);
    assert!(logged_in(&d, &cookie, id));

    // Rotate every file, then SIGHUP.
    std::fs::write(&token_file, format!("{NEW}\n")).unwrap();
    std::fs::write(&genie_file, format!("{NEW_GENIE}\n")).unwrap();
    std::fs::write(&vo_file, format!("{NEW_VO}\n")).unwrap();
    reload(&d, "token changed; sessions ended");

    // After: the old secrets are refused, the new ones accepted, the session is over.
    assert_eq!(bearer(&d, OLD, "a2"), 401);
    assert_eq!(bearer(&d, NEW, "a3"), 202);
    assert_eq!(genie(&d, OLD_GENIE, "g2"), 401);
    assert_eq!(genie(&d, NEW_GENIE, "g3"), 202);
    assert_eq!(victorops(&d, OLD_VO, "v2"), 401);
    assert_eq!(victorops(&d, NEW_VO, "v3"), 200);
    assert!(!logged_in(&d, &cookie, id), "the old session still works");
    let cookie = login(&d, NEW);
    assert!(logged_in(&d, &cookie, id));

    // A reload that changes nothing says nothing about the token.
    reload(&d, "config reloaded");
    assert_eq!(d.log().matches("token changed").count(), 1);

    // An empty token file is refused as a whole: the API does not fall open, the token in
    // force stays in force.
    std::fs::write(&token_file, "\n").unwrap();
    reload(&d, "config reload rejected");
    assert_eq!(bearer(&d, NEW, "a4"), 202);
    assert_eq!(bearer(&d, "", "a5"), 401);
    let (code, _) = d.post_raw(
        "/v1/alerts",
        json!({"summary": "no token", "severity": "warning"})
            .to_string()
            .as_bytes(),
        None,
    );
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_millis(200));

    let log = d.log();
    for secret in [OLD, NEW, OLD_GENIE, NEW_GENIE, OLD_VO] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

/// One status page login attempt with `token`; returns the status code.
fn try_login(d: &Daemon, token: &str) -> u16 {
    let (_, page) = code(agent().get(&d.url("/")).call());
    let start = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    let csrf = page[start..start + 64].to_string();
    code(
        agent()
            .post(&d.url("/login"))
            .send_form(&[("csrf", &csrf), ("token", token)]),
    )
    .0
}

#[test]
fn status_page_logins_are_throttled_per_source_with_backoff() {
    let d = Daemon::start_with("", Some(NEW));
    // Five typos are free (each answered with the login form again, 401).
    for n in 0..5 {
        assert_eq!(try_login(&d, &format!("guess-{n}")), 401);
    }
    // The fifth started a 1 s backoff: even the right token is refused unchecked meanwhile.
    assert_eq!(try_login(&d, NEW), 429);
    std::thread::sleep(Duration::from_millis(1100));
    // A wrong one now doubles it; then the right one must wait again.
    assert_eq!(try_login(&d, "guess-5"), 401);
    assert_eq!(try_login(&d, NEW), 429);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(try_login(&d, NEW), 303, "the right token after the backoff");
    // Success cleared the record: typos are free again.
    assert_eq!(try_login(&d, "typo"), 401);
    assert_eq!(try_login(&d, NEW), 303);
    assert!(!d.log().contains(NEW));
}

#[test]
fn pagerduty_events_are_authenticated_before_they_are_validated() {
    let d = Daemon::start_with("", Some(NEW));
    // An invalid event without the token: 401, not a list of what is wrong with it.
    for body in [
        json!({"event_action": "explode"}),
        json!({"routing_key": "wrong", "event_action": "trigger"}),
    ] {
        let (code, v) = d.post_raw("/v2/enqueue", body.to_string().as_bytes(), None);
        assert_eq!(code, 401, "{v}");
        let (code, v) = d.post_raw("/v2/change/enqueue", body.to_string().as_bytes(), None);
        assert_eq!(code, 401, "{v}");
    }
    let (code, v) = d.post_raw("/v2/enqueue", b"not json", None);
    assert_eq!(code, 401, "{v}");
    // With the token as routing_key, the same invalid event is explained.
    let body = json!({"routing_key": NEW, "event_action": "explode"});
    let (code, v) = d.post_raw("/v2/enqueue", body.to_string().as_bytes(), None);
    assert_eq!(code, 400, "{v}");
}

/// The answer to a write that authenticated with the token as PagerDuty's `routing_key` is the
/// sender's own: its `dedup_key` comes back whole (clients resolve with the key the server
/// returned), while a read of the same incident without the token stays masked.
#[test]
fn a_write_authenticated_in_its_body_is_answered_unmasked() {
    let d = Daemon::start_with("", Some(NEW));
    let key = "mailbox-full-alice.smith@example.org";
    let body = json!({"routing_key": NEW, "event_action": "trigger", "dedup_key": key,
        "payload": {"summary": "mailbox full", "source": "mx1", "severity": "warning"}});
    let (code, v) = d.post_raw("/v2/enqueue", body.to_string().as_bytes(), None);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["dedup_key"], key, "{v}");
    let (code, v) = d.get("/v1/incidents");
    assert_eq!(code, 200, "{v}");
    let shown = v["incidents"][0]["dedup_key"].as_str().unwrap().to_string();
    assert_eq!(shown, "m***@example.org", "{v}");
}

/// The status of the incident with `key`, once it exists (UDP has no answer to wait for).
fn status_of(d: &Daemon, key: &str) -> Option<String> {
    let (_, v) = d.get("/v1/incidents?status=all");
    v["incidents"]
        .as_array()?
        .iter()
        .find(|i| i["dedup_key"] == key)
        .map(|i| i["status"].as_str().unwrap_or_default().to_string())
}

/// Sends `datagrams`, then a marker alert with the token, and waits for the marker: every
/// datagram before it has been received, and refused ones decided (the receive loop decides in
/// order of arrival; accepted ones are stored concurrently, so tests wait for those).
fn udp_then_settle(d: &Daemon, datagrams: &[&str], marker: &str) {
    for g in datagrams {
        d.udp_send(g.as_bytes());
    }
    d.udp_send(format!("token={NEW} info {marker} settle").as_bytes());
    d.wait_for(10, marker, || status_of(d, marker));
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn udp_needs_the_token_when_one_is_configured() {
    let d = Daemon::start_with("", Some(NEW));
    udp_then_settle(
        &d,
        &[
            "critical no-token down",
            "token=wrong critical wrong-token down",
            r#"{"summary":"json without token","dedup_key":"no-token-json"}"#,
            &format!("token={NEW} critical with-token down"),
            &format!(
                r#"token={NEW} {{"summary":"json with token","dedup_key":"with-token-json"}}"#
            ),
        ],
        "m1",
    );
    assert_eq!(status_of(&d, "no-token"), None);
    assert_eq!(status_of(&d, "wrong-token"), None);
    assert_eq!(status_of(&d, "no-token-json"), None);
    for key in ["with-token", "with-token-json"] {
        d.wait_for(10, key, || status_of(&d, key));
    }
    // Without the token nobody can resolve it; with it, they can.
    udp_then_settle(&d, &["resolve with-token"], "m2");
    assert_eq!(status_of(&d, "with-token").as_deref(), Some("triggered"));
    udp_then_settle(&d, &[&format!("token={NEW} resolve with-token")], "m3");
    d.wait_for(10, "resolved", || {
        (status_of(&d, "with-token").as_deref() == Some("resolved")).then_some(())
    });
    assert!(d
        .log()
        .contains("udp datagram without the write token refused"));
    assert!(!d.log().contains(NEW));
}

/// A one-shot command may take its token from a pipe (`--token-file <(pass show pagerbox)`): it
/// reads it once. Only the daemon, which reads its secret files again at every reload, wants
/// regular files.
#[test]
fn the_cli_reads_its_token_file_from_a_pipe() {
    use std::io::Write;
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secret_file(secrets.path(), "token", NEW);
    let d = Daemon::start_tables(
        &[(
            "http",
            &format!("token_file = {:?}", token_file.display().to_string()),
        )],
        "",
    );
    let mut child = std::process::Command::new(util::BIN)
        .args(["send", "--url", &d.url(""), "--token-file", "/dev/stdin"])
        .args(["--service", "db", "piped token"])
        .env_remove("PAGERBOX_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{NEW}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn udp_trigger_only_lets_unauthenticated_datagrams_trigger_and_nothing_else() {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secret_file(secrets.path(), "token", NEW);
    let d = Daemon::start_tables(
        &[
            (
                "http",
                &format!("token_file = {:?}", token_file.display().to_string()),
            ),
            ("udp", r#"unauthenticated = "trigger-only""#),
        ],
        "",
    );
    udp_then_settle(&d, &["critical open-trigger down"], "t1");
    d.wait_for(10, "open-trigger", || status_of(&d, "open-trigger"));
    udp_then_settle(
        &d,
        &[
            "resolve open-trigger",
            "ack open-trigger",
            "token=wrong critical bad down",
        ],
        "t2",
    );
    assert_eq!(status_of(&d, "open-trigger").as_deref(), Some("triggered"));
    assert_eq!(
        status_of(&d, "bad"),
        None,
        "a wrong token is refused even here"
    );
}
