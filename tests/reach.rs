//! Nobody silently unreachable: `check` and the daemon's start warn about alerts that would
//! page nobody, and an incident whose paging reached nobody is flagged loudly.

mod util;

use std::process::Command;

use serde_json::json;
use util::Daemon;

/// Alice is paged by SMS for high urgency only; low urgency falls back to email, which she has
/// no address for, so warnings and info alerts reach nobody.
fn high_only() -> String {
    util::on_call(
        "+4915100000001",
        "[[users.rules]]\nurgency = \"high\"\nchannel = \"sms\"\nafter = \"0s\"\n",
        "10m",
    )
}

#[test]
fn check_names_the_severities_that_would_page_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, high_only()).unwrap();
    let out = Command::new(util::BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "warning: route \"default\" (policy \"default\"), warning/info alerts: run 1 step 1: alice cannot be reached"
        ),
        "{text}"
    );
    assert!(
        text.contains("warning/info alerts: the escalation ends with nobody paged (low urgency)"),
        "{text}"
    );
    assert!(
        !text.contains("critical"),
        "critical alerts page alice by SMS: {text}"
    );
}

#[test]
fn an_incident_that_reaches_nobody_is_logged_flagged_and_on_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    // SMS stays configured (the modem's device is missing, which is not what this is about);
    // the low-urgency alert has no rule, address or channel at all.
    let extra = format!(
        "[modem]\ndevice = \"{}\"\n{}",
        dir.path().join("no-modem").display(),
        high_only()
    );
    let d = Daemon::start(&extra);
    assert!(
        d.log().contains("nobody would be paged: route \"default\""),
        "the start warns: {}",
        d.log()
    );
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "disk 80%", "severity": "warning"}),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["incident_id"].as_i64().unwrap();
    let flagged = d.wait_for(10, "the /healthz flag", || {
        let (_, h) = d.get("/healthz");
        (h["nobody_paged"] == json!([id])).then_some(h)
    });
    assert_eq!(flagged["nobody_paged"], json!([id]));
    // Not "ok": said among the degradations (the box itself can page, so not a 503).
    assert_ne!(flagged["status"], "ok", "{flagged}");
    assert!(
        flagged["degraded"].as_array().unwrap().iter().any(|d| d
            .as_str()
            .unwrap()
            .contains(&format!("nobody was paged for open incident(s) #{id}"))),
        "{flagged}"
    );
    let (_, inc) = d.get(&format!("/v1/incidents/{id}"));
    let timeline = inc["timeline"].to_string();
    assert!(timeline.contains("NOBODY WAS PAGED"), "{timeline}");
    assert!(d.log().contains("NOBODY WAS PAGED"), "{}", d.log());
    // Closing it clears the flag.
    d.post_json(&format!("/v1/incidents/{id}/resolve"), json!({}));
    let (_, h) = d.get("/healthz");
    assert_eq!(h["nobody_paged"], json!([]));
    assert!(
        !h["degraded"].to_string().contains("nobody was paged"),
        "{h}"
    );
}

/// A config under which critical alerts would page nobody (alice has only an email address, and
/// email is off) says so in `/healthz` before any alert arrives; a reload that gives her a
/// phone clears it.
#[test]
fn healthz_names_a_config_that_pages_nobody_for_critical_alerts_before_an_alert() {
    let sim = util::ExternalSim::start();
    let people = |address: &str| {
        let on_call = util::on_call("+4915100000001", "", "10m")
            .replace("phone = \"+4915100000001\"", address);
        format!("{}{on_call}", util::fast_modem(&sim))
    };
    let mut d = Daemon::start(&people("email = \"alice@example.org\""));
    d.wait_modem_up();
    let said = |d: &Daemon| {
        let (_, h) = d.get("/healthz");
        h["degraded"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| {
                w.as_str()
                    .unwrap_or("")
                    .contains("critical/error alerts would page nobody")
            })
            .then_some(h)
    };
    let h = d.wait_for(10, "the config flagged", || said(&d));
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["nobody_paged"], json!([]), "no alert yet: {h}");
    // The fix: a phone for SMS.
    std::fs::write(
        &d.config,
        util::base_config(
            &d.dir.path().join("state"),
            &people("phone = \"+4915100000001\""),
        ),
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for(10, "the flag gone after the reload", || {
        said(&d).is_none().then_some(())
    });
    d.stop();
}
