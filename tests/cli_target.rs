//! How client commands find the daemon: PAGERBOX_URL first, then the config; a failure says what
//! was tried, once.

mod util;

use std::process::Command;

use util::Daemon;

#[test]
fn without_url_or_config_the_error_says_what_was_tried_once() {
    let out = Command::new(util::BIN)
        .arg("incidents")
        .env_remove("PAGERBOX_URL")
        .env("PAGERBOX_CONFIG", "/nonexistent/pagerbox.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PAGERBOX_URL is not set"), "{err}");
    assert!(err.contains("/nonexistent/pagerbox.toml"), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn pagerbox_url_is_used_when_set_and_named_when_unreachable() {
    let d = Daemon::start("");
    let base = d.url("");
    let out = Command::new(util::BIN)
        .args(["incidents", "--json"])
        .env("PAGERBOX_URL", base.trim_end_matches('/'))
        .env("PAGERBOX_CONFIG", "/nonexistent/pagerbox.toml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A daemon that is not there: the address and where it came from are named.
    let out = Command::new(util::BIN)
        .arg("incidents")
        .env("PAGERBOX_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach pagerbox at http://127.0.0.1:9 (from --url or PAGERBOX_URL)"),
        "{err}"
    );
}

#[test]
fn config_may_follow_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(util::BIN)
        .args(["modem", "status", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Parsed (not refused by the argument parser): it fails on reading the file it was given.
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

/// Alice on call on the weekly schedule `primary`; nobody is paged in these tests.
fn oncall() -> String {
    util::on_call(util::PAGER_PHONE, "", "10m")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(util::BIN)
        .args(args)
        .env_remove("PAGERBOX_URL")
        .env("PAGERBOX_CONFIG", "/nonexistent/pagerbox.toml")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn offline_tools_ask_the_daemon_with_url_or_say_why_they_cannot() {
    let d = Daemon::start(&oncall());
    let base = d.url("");
    let base = base.trim_end_matches('/');
    // No config file on this side: the answers come from the daemon.
    let (ok, out, err) = run(&["oncall", "--url", base]);
    assert!(ok, "{err}");
    assert!(out.starts_with("on call at "), "{out}");
    assert!(out.contains("primary   alice    layer 1"), "{out}");
    // The daemon's answer and the offline table agree.
    let offline = d.cli(&["oncall"]);
    let offline = String::from_utf8_lossy(&offline.stdout);
    assert_eq!(
        out.lines().nth(2),
        offline.lines().nth(2),
        "daemon:\n{out}\noffline:\n{offline}"
    );

    let (ok, out, err) = run(&["schedule", "primary", "--days", "3", "--url", base]);
    assert!(ok, "{err}");
    assert!(out.starts_with("schedule primary ("), "{out}");
    assert!(out.contains("alice"), "{out}");
    // Across the fall-back night both count one local calendar day (25 hours) and agree.
    let args = ["schedule", "primary", "--from", "2026-10-25", "--days", "1"];
    let (ok, daemon, err) = run(&[&args[..], &["--url", base]].concat());
    assert!(ok, "{err}");
    let offline = d.cli(&args);
    let offline = String::from_utf8_lossy(&offline.stdout);
    assert_eq!(daemon, offline, "daemon and offline tables differ");
    assert!(daemon.contains("2026-10-26 00:00"), "{daemon}");
    let (ok, ics, err) = run(&["schedule", "primary", "--format", "ics", "--url", base]);
    assert!(ok, "{err}");
    assert!(ics.starts_with("BEGIN:VCALENDAR"), "{ics}");
    let (ok, _, err) = run(&["schedule", "nope", "--url", base]);
    assert!(!ok);
    assert!(err.contains("no schedule \"nope\""), "{err}");
    // PAGERBOX_URL set and no config: the error says how to ask the daemon.
    let out = Command::new(util::BIN)
        .arg("oncall")
        .env("PAGERBOX_URL", base)
        .env("PAGERBOX_CONFIG", "/nonexistent/pagerbox.toml")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("add --url {base}")), "{err}");
    assert!(err.contains("/nonexistent/pagerbox.toml"), "{err}");
    let (ok, _, err) = run(&["oncall", "--at", "2026-01-06T10:00", "--url", base]);
    assert!(!ok);
    assert!(err.contains("run without --url"), "{err}");

    // Tools no daemon can stand in for say why, and what to give instead.
    for args in [
        vec!["check", "--url", base],
        vec![
            "simulate",
            "--service",
            "db",
            "--severity",
            "critical",
            "--url",
            base,
        ],
        vec!["modem", "status", "--url", base],
        vec!["panel", "test", "--url", base],
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("--url") && err.contains("--config"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
