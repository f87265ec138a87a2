//! The test clock's hand, `POST /v1/clock` (`fault-injection` builds only): the end-to-end tests
//! about deadlines trust it, so it must move the daemon's clock by exactly what was asked, only
//! with the token, and refuse rather than pretend on a daemon that runs on the system clock.

#![cfg(feature = "fault-injection")]

mod util;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use util::Daemon;

const TOKEN: &str = "s3cret";

fn now_in(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["now"].as_str().unwrap_or_else(|| panic!("{v}")))
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn the_test_clock_moves_by_what_is_asked_and_only_with_the_token() {
    let d = Daemon::start_clocked_with("", Some(TOKEN));
    let (code, _) = d.post_raw("/v1/clock", br#"{"advance": "1h"}"#, None);
    assert_eq!(code, 401);
    for bad in [
        json!({"advance": "soon"}),
        json!({"advance": "-1h"}),
        json!({}),
    ] {
        let (code, v) = d.post_json("/v1/clock", bad.clone());
        assert_eq!(code, 400, "{bad}: {v}");
    }
    let (code, v) = d.post_json("/v1/clock", json!({"advance": "0s"}));
    assert_eq!(code, 200, "{v}");
    let t0 = now_in(&v);
    let (code, v) = d.post_json("/v1/clock", json!({"advance": "2h"}));
    assert_eq!(code, 200, "{v}");
    let moved = now_in(&v) - t0;
    assert!(
        moved >= TimeDelta::hours(2) && moved < TimeDelta::hours(2) + TimeDelta::seconds(5),
        "moved {moved}"
    );
    // The daemon's own times follow it: a new incident is stamped two hours ahead.
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "x", "severity": "critical"}),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["incident_id"].as_i64().unwrap();
    let (_, shown) = d.get(&format!("/v1/incidents/{id}"));
    let first = DateTime::parse_from_rfc3339(shown["incident"]["first_seen"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(first >= Utc::now() + TimeDelta::minutes(119), "{first}");
}

#[test]
fn a_daemon_on_the_system_clock_refuses_to_move_it() {
    let d = Daemon::start_with("", Some(TOKEN));
    let (code, v) = d.post_json("/v1/clock", json!({"advance": "1h"}));
    assert_eq!(code, 409, "{v}");
}

#[test]
fn a_start_offset_past_ten_years_is_refused_like_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pagerbox.toml");
    std::fs::write(&config, util::base_config(&dir.path().join("state"), "")).unwrap();
    let out = std::process::Command::new(util::BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("PAGERBOX_TEST_CLOCK", "11y")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("PAGERBOX_TEST_CLOCK=11y") && err.contains("at most 10 years"),
        "{err}"
    );
}
