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
