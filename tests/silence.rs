//! End-to-end silences and maintenance windows: the real daemon binary, the modem simulator on a
//! real PTY, and the CLI. Matching alerts are recorded and on the timeline but page nobody while
//! the silence is active; when it ends (or is expired) the still-open incidents page.

mod util;

use std::time::Duration;

use serde_json::{json, Value};
use util::{fixture, Daemon, ExternalSim};

const ALICE: &str = util::PAGER_PHONE;
const TOKEN: &str = "s3cret-token";

/// Alice is on call, SMS only; one step with a long wait (no repeats during a test); no grouping,
/// so each incident is its own SMS.
fn start(sim: &ExternalSim, extra: &str, token: Option<&str>) -> Daemon {
    let d = Daemon::start_with(&config(sim, extra), token);
    d.wait_modem_up();
    d
}

/// [`start`] on the test clock, for tests about a silence's end: they move the clock to just
/// short of it (nothing pages), then past it. Silences there last less than the step's 10 min
/// wait, so no repeat pages while the clock moves.
fn start_clocked(sim: &ExternalSim, extra: &str) -> Daemon {
    let d = Daemon::start_clocked(&config(sim, extra));
    d.wait_modem_up();
    d
}

fn config(sim: &ExternalSim, extra: &str) -> String {
    let paging = "[paging]\nmax_attempts = 2\nchannel_timeout = \"3s\"\ngroup_window = \"0s\"\nrate_limit_count = 100\n";
    util::one_pager_config(sim, "10m", &format!("{paging}\n{extra}"))
}

/// How long a check that nothing was paged watches for it, after a clock step.
const QUIET: Duration = Duration::from_millis(500);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Silences service `db` for `duration` with the CLI; returns what it printed.
fn silence_db(d: &Daemon, duration: &str, comment: &str) -> String {
    d.cli_ok(&[
        "silence",
        "add",
        "--service",
        "db",
        "--for",
        duration,
        "--comment",
        comment,
    ])
}

/// Raises "db down" (key `k`) and waits until a silence holds it; returns its incident.
fn silenced_db_alert(d: &Daemon) -> i64 {
    let id =
        d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "k", "details": {}}));
    d.wait_for(5, "silenced on the timeline", || {
        d.has_event(id, "silenced").then_some(())
    });
    id
}

/// Triggers an alert for `service` with `key` and waits for its page: once it is out, the
/// engine has handled everything raised before it.
fn paged_after(d: &Daemon, sim: &ExternalSim, service: &str, key: &str) -> i64 {
    let id = d.trigger(
        json!({"summary": format!("{service} {key}"), "service": service, "dedup_key": key}),
    );
    d.wait_for(15, "the later alert's page", || {
        (pages_for(sim, id) == 1).then_some(())
    });
    id
}

/// SMS to alice that mention incident `id`.
fn pages_for(sim: &ExternalSim, id: i64) -> usize {
    sim.sms_to(ALICE)
        .iter()
        .filter(|t| t.starts_with(&format!("#{id} ")))
        .count()
}

#[test]
fn http_silence_records_matching_alerts_without_paging_and_others_page() {
    let sim = ExternalSim::start();
    let d = start(&sim, "", Some(TOKEN));
    let silence = json!({
        "service": "db", "matchers": ["env=prod"], "duration": "1h",
        "comment": "db upgrade", "created_by": "carol"
    });
    // Writes need the token.
    let (code, v) = d.post_raw("/v1/silences", silence.to_string().as_bytes(), None);
    assert_eq!(code, 401, "{v}");
    // A bad matcher is a 400 that says what is wrong.
    let (code, v) = d.post_json(
        "/v1/silences",
        json!({"matchers": ["env"], "duration": "1h", "comment": "x"}),
    );
    assert_eq!(code, 400, "{v}");
    let errors = v["errors"].to_string();
    assert!(
        errors.contains("matcher \\\"env\\\": expected NAME=VALUE"),
        "{v}"
    );
    let (code, v) = d.post_json(
        "/v1/silences",
        json!({"matchers": ["x=~(open"], "duration": "1h", "comment": "x"}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["errors"].to_string().contains("bad regular expression"),
        "{v}"
    );
    // Well-formed JSON without the comment: the missing field is named as a requirement.
    let (code, v) = d.post_json("/v1/silences", json!({"service": "db", "duration": "1h"}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["errors"].to_string().contains("comment is required"),
        "{v}"
    );
    assert!(!v.to_string().contains("malformed JSON"), "{v}");
    // No condition at all would silence everything: refused.
    let (code, v) = d.post_json("/v1/silences", json!({"duration": "1h", "comment": "x"}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["errors"].to_string().contains("would silence everything"),
        "{v}"
    );

    let (code, v) = d.post_json("/v1/silences", silence);
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["id"].as_i64()),
        (Some("runtime"), Some(1))
    );
    assert_eq!(v["state"], "active");
    // An Alertmanager alert held by its labels, through a second silence.
    let (code, v) = d.post_json(
        "/v1/silences",
        json!({"matchers": ["team=infra", "instance=~db[0-9]+:9100"], "duration": "1h", "comment": "rack move"}),
    );
    assert_eq!(code, 201, "{v}");

    let held = d.trigger(json!({"summary": "db1 disk full", "service": "db", "dedup_key": "db-prod", "details": {"env": "prod"}}));
    let (code, v) = d.post(
        "/v1/integrations/alertmanager",
        &fixture("alertmanager/alertmanager-webhook-curl-firing.json"),
    );
    assert_eq!(code, 202, "{v}");
    let am = v["alerts"][0]["incident_id"].as_i64().unwrap();
    let dev = d.trigger(json!({"summary": "db9 disk full", "service": "db", "dedup_key": "db-dev", "details": {"env": "dev"}}));
    let web = d.trigger(
        json!({"summary": "web down", "service": "web", "dedup_key": "web", "details": {}}),
    );
    // The ones no silence matches page.
    for id in [dev, web] {
        d.wait_for(15, "the unsilenced page", || {
            (pages_for(&sim, id) == 1).then_some(())
        });
    }
    // The silenced ones are recorded, with the reason on their timeline, and page nobody.
    d.wait_for(5, "silenced on the timeline", || {
        (d.has_event(held, "silenced") && d.has_event(am, "silenced")).then_some(())
    });
    let msg = d
        .timeline(held)
        .into_iter()
        .find(|(k, _)| k == "silenced")
        .unwrap()
        .1;
    assert!(msg.starts_with("silenced by #1 until "), "{msg}");
    assert!(msg.contains("service=db, env=prod): db upgrade"), "{msg}");
    let am_msg = d
        .timeline(am)
        .into_iter()
        .find(|(k, _)| k == "silenced")
        .unwrap()
        .1;
    assert!(am_msg.starts_with("silenced by #2 until "), "{am_msg}");
    let (_, inc) = d.get(&format!("/v1/incidents/{held}"));
    assert_eq!(inc["incident"]["status"], "triggered");
    // `dev` and `web` came after the silenced ones and have paged: whatever the engine did with
    // `held` and `am` is done.
    assert_eq!(pages_for(&sim, held), 0);
    assert_eq!(pages_for(&sim, am), 0);
    assert_eq!(sim.sms_to(ALICE).len(), 2, "{:?}", sim.sms_to(ALICE));
    // What the silences hold shows at the box level too, not only on each timeline.
    let (_, h) = d.get("/healthz");
    assert_eq!(h["held_by_silence"], 2, "{h}");
    let metrics = ureq::get(&d.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("pagerbox_incidents_held_by_silence 2"),
        "{metrics}"
    );
    // The list shows both, reads need no token.
    let (code, v) = d.get("/v1/silences");
    assert_eq!(code, 200);
    let list = v["silences"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list[1]["matchers"], json!(["env=prod"]));
    assert_eq!(list[1]["created_by"], "carol");
    // Expiring without the token is refused too.
    let (code, _) = d.post_raw("/v1/silences/1/expire", b"", None);
    assert_eq!(code, 401);
    // DELETE ends silence #2 (kept in the list as expired); the Alertmanager incident it held
    // pages at once, the one #1 holds still does not.
    let auth = format!("Bearer {TOKEN}");
    let r = ureq::delete(&d.url("/v1/silences/2"))
        .set("Authorization", &auth)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.into_json().unwrap();
    assert_eq!(
        (v["changed"].as_bool(), v["silence"]["state"].as_str()),
        (Some(true), Some("expired"))
    );
    d.wait_for(10, "the page once #2 is gone", || {
        (pages_for(&sim, am) == 1).then_some(())
    });
    assert_eq!(pages_for(&sim, held), 0);
    match ureq::delete(&d.url("/v1/silences/99"))
        .set("Authorization", &auth)
        .call()
    {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
/// A silence whose every matcher an empty value satisfies would hold every incident: refused,
/// like one with no condition at all.
#[test]
fn a_silence_that_would_hold_everything_is_refused() {
    let d = Daemon::start("");
    for matchers in [json!(["foo="]), json!(["severity=~.*"]), json!([])] {
        let (code, v) = d.post_json(
            "/v1/silences",
            json!({"matchers": matchers, "duration": "1h", "comment": "c"}),
        );
        assert_eq!(code, 400, "{matchers}: {v}");
        assert!(v.to_string().contains("silence everything"), "{v}");
    }
    let (_, list) = d.get("/v1/silences");
    assert_eq!(list["silences"].as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn a_silence_for_5m_ends_and_the_still_open_incident_pages() {
    let sim = ExternalSim::start();
    let mut d = start_clocked(&sim, "");
    let out = d.cli_ok(&[
        "silence",
        "add",
        "--service",
        "db",
        "--matcher",
        "env=prod",
        "--for",
        "5m",
        "--comment",
        "restart",
    ]);
    assert!(out.starts_with("silence #1 active until "), "{out}");
    let id = d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "k", "details": {"env": "prod"}}));
    d.wait_for(5, "silenced on the timeline", || {
        d.has_event(id, "silenced").then_some(())
    });
    d.advance(secs(240));
    paged_after(&d, &sim, "web", "barrier");
    d.hold(QUIET, "paged before the silence ended", || {
        pages_for(&sim, id) == 0
    });
    d.advance(secs(61));
    let sms = d.wait_for(20, "the page after the window", || {
        sim.sms_to(ALICE)
            .into_iter()
            .find(|t| t.starts_with(&format!("#{id} ")))
    });
    assert!(sms.starts_with(&format!("#{id} CRIT db: db down")), "{sms}");
    let kinds = d.timeline_kinds(id);
    let at = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(at("silenced") < at("unsilenced"), "{kinds:?}");
    assert!(at("unsilenced") < at("escalation"), "{kinds:?}");
    let list = d.cli_ok(&["silence", "list"]);
    assert!(list.contains("#1") && list.contains("ended"), "{list}");
}

#[test]
fn expiring_a_silence_early_with_the_cli_pages_at_once() {
    let sim = ExternalSim::start();
    let d = start(&sim, "", Some(TOKEN));
    silence_db(&d, "2h", "db upgrade");
    let id = silenced_db_alert(&d);
    paged_after(&d, &sim, "web", "barrier");
    assert_eq!(pages_for(&sim, id), 0);
    let list = d.cli_ok(&["silence", "list"]);
    assert!(
        list.contains("#1") && list.contains("active") && list.contains("service=db"),
        "{list}"
    );
    let out = d.cli_ok(&["silence", "expire", "1"]);
    assert_eq!(out.trim(), "silence #1 expired");
    d.wait_for(10, "the page after expiry", || {
        (pages_for(&sim, id) == 1).then_some(())
    });
    let out = d.cli_ok(&["silence", "expire", "#1"]);
    assert_eq!(out.trim(), "silence #1 was already expired");
    let (_, v) = d.get("/v1/silences");
    assert_eq!(v["silences"][0]["state"], "expired");
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn an_incident_resolved_during_the_window_never_pages() {
    let sim = ExternalSim::start();
    let mut d = start_clocked(&sim, "");
    silence_db(&d, "5m", "deploy");
    let id = silenced_db_alert(&d);
    let (code, _) = d.post_json(&format!("/v1/incidents/{id}/resolve"), json!({"by": "bob"}));
    assert_eq!(code, 200);
    d.advance(secs(301));
    // An alert the silence would have held, raised once it has ended, pages: the engine has
    // passed the window's end, where `id` would have paged had it still been open.
    d.wait_for(10, "the silence to end", || {
        (d.get("/v1/silences").1["silences"][0]["state"] != "active").then_some(())
    });
    let after = paged_after(&d, &sim, "db", "after-window");
    assert_eq!(sim.sms_to(ALICE).len(), 1, "{:?}", sim.sms_to(ALICE));
    assert_eq!(pages_for(&sim, after), 1);
    assert!(!d.has_event(id, "escalation"));
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_config_maintenance_window_holds_until_its_end() {
    let sim = ExternalSim::start();
    let now = chrono::Utc::now();
    let window = format!(
        "[[silences]]\nid = \"db-upgrade\"\nstarts = \"{}\"\nends = \"{}\"\nservice = \"db\"\ncomment = \"planned\"\n",
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::minutes(5)).to_rfc3339(),
    );
    let mut d = start_clocked(&sim, &window);
    let id =
        d.trigger(json!({"summary": "db down", "service": "db", "dedup_key": "k", "details": {}}));
    let other = d
        .trigger(json!({"summary": "web down", "service": "web", "dedup_key": "w", "details": {}}));
    d.wait_for(10, "the web page", || {
        (pages_for(&sim, other) == 1).then_some(())
    });
    let msg = d.wait_for(5, "silenced on the timeline", || {
        d.timeline(id).into_iter().find(|(k, _)| k == "silenced")
    });
    assert!(
        msg.1
            .starts_with("silenced by maintenance window \"db-upgrade\" until"),
        "{}",
        msg.1
    );
    assert_eq!(pages_for(&sim, id), 0);
    let (_, v) = d.get("/v1/silences");
    let s = &v["silences"][0];
    assert_eq!(
        (s["kind"].as_str(), s["id"].as_str()),
        (Some("config"), Some("db-upgrade"))
    );
    assert_eq!(s["state"], "active");
    // A config window is changed in the config, not over the API.
    let out = d.cli(&["silence", "expire", "db-upgrade"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("409") && err.contains("from the config"),
        "{err}"
    );
    d.advance(secs(240));
    paged_after(&d, &sim, "web", "barrier");
    d.hold(QUIET, "paged before the window ended", || {
        pages_for(&sim, id) == 0
    });
    d.advance(secs(61));
    d.wait_for(20, "the page when the window ends", || {
        (pages_for(&sim, id) == 1).then_some(())
    });
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_hold_survives_a_crash_and_pages_when_the_window_ends() {
    let sim = ExternalSim::start();
    let mut d = start_clocked(&sim, "");
    silence_db(&d, "5m", "reboot");
    let id = silenced_db_alert(&d);
    d.kill9();
    d.spawn();
    // With the modem up, a restart that dropped the hold would page at once.
    d.wait_modem_up();
    // Still held by the restarted daemon until the window ends.
    d.advance(secs(240));
    paged_after(&d, &sim, "web", "barrier");
    d.hold(QUIET, "the restart dropped the hold", || {
        pages_for(&sim, id) == 0
    });
    d.advance(secs(61));
    d.wait_for(
        20,
        "the page after the window, from the restarted daemon",
        || (pages_for(&sim, id) == 1).then_some(()),
    );
    assert_eq!(
        d.timeline(id)
            .iter()
            .filter(|(k, _)| k == "silenced")
            .count(),
        1,
        "the restart did not hold it a second time"
    );
}
