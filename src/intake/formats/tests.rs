//! Format tests against bodies captured byte-for-byte from real senders (tests/fixtures).

use super::*;

const AM_FIRING: &[u8] =
    include_bytes!("../../../tests/fixtures/alertmanager/alertmanager-webhook-curl-firing.json");
const AM_RESOLVED: &[u8] =
    include_bytes!("../../../tests/fixtures/alertmanager/alertmanager-webhook-curl-resolved.json");
const AM_PD_FIRING: &[u8] =
    include_bytes!("../../../tests/fixtures/alertmanager/alertmanager-pagerduty-curl-firing.json");
const AM_PD_RESOLVED: &[u8] = include_bytes!(
    "../../../tests/fixtures/alertmanager/alertmanager-pagerduty-curl-resolved.json"
);
const PD_TRIGGER: &[u8] =
    include_bytes!("../../../tests/fixtures/pagerduty/pd-client-trigger.json");
const PD_RESOLVE: &[u8] =
    include_bytes!("../../../tests/fixtures/pagerduty/pd-client-resolve.json");

#[test]
fn alertmanager_webhook_firing_and_resolved_share_the_fingerprint() {
    let firing = parse_alertmanager(AM_FIRING).unwrap();
    let resolved = parse_alertmanager(AM_RESOLVED).unwrap();
    assert_eq!(firing.len(), 1);
    let f = &firing[0];
    assert_eq!(f.action, AlertAction::Trigger);
    assert_eq!(f.dedup_key.as_deref(), Some("516cb9768a6d01b0"));
    assert_eq!(f.summary, "db1 is down");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.source.as_deref(), Some("db1:9100"));
    assert_eq!(f.service.as_deref(), Some("node"));
    assert!(f
        .links
        .iter()
        .any(|l| l.href == "https://runbooks.example/db1"));
    // Go's zero time is "not ended": no endsAt in details.
    assert!(f.details.get("endsAt").is_none());
    assert_eq!(resolved[0].action, AlertAction::Resolve);
    assert_eq!(resolved[0].dedup_key, f.dedup_key);
    assert_eq!(resolved[0].details["endsAt"], "2026-11-21T22:13:41Z");
}

#[test]
fn alertmanager_pagerduty_receiver_parses_as_pagerduty() {
    let f = parse_pagerduty(AM_PD_FIRING).unwrap();
    assert_eq!(f.action, AlertAction::Trigger);
    assert_eq!(
        f.dedup_key.as_deref(),
        Some("7db7712a7bf872d0e283580867db2d18c5e358bd43de61649aa819987ebb2413")
    );
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.source.as_deref(), Some("Alertmanager"));
    // num_firing arrives as a string and is kept as sent.
    assert_eq!(f.details["custom_details"]["num_firing"], "1");
    assert_eq!(
        f.routing_key.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    let r = parse_pagerduty(AM_PD_RESOLVED).unwrap();
    assert_eq!(r.action, AlertAction::Resolve);
    assert_eq!(r.dedup_key, f.dedup_key);
}

#[test]
fn pagerduty_client_trigger_and_resolve() {
    let t = parse_pagerduty(PD_TRIGGER).unwrap();
    assert_eq!(t.summary, "db1 is down");
    assert_eq!(t.source.as_deref(), Some("db1.example"));
    assert_eq!(t.details["custom_details"]["loss_pct"], 100);
    assert_eq!(
        t.details["images"][0]["src"],
        "https://grafana.example/db1.png"
    );
    assert_eq!(t.links[0].href, "https://runbooks.example/db1");
    // The resolve carries only routing_key, dedup_key and event_action.
    let r = parse_pagerduty(PD_RESOLVE).unwrap();
    assert_eq!(r.action, AlertAction::Resolve);
    assert_eq!(r.dedup_key.as_deref(), Some("pagerbox-test-db1"));
}

#[test]
fn pagerduty_reports_every_missing_field() {
    let err = parse_pagerduty(br#"{"event_action":"trigger","payload":{"severity":"sev1"}}"#)
        .unwrap_err();
    let FormatError::Invalid(errs) = err else {
        panic!("{err:?}")
    };
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("routing_key")));
    assert!(errs.iter().any(|e| e.contains("payload.summary")));
    assert!(errs.iter().any(|e| e.contains("payload.source")));
    assert!(errs
        .iter()
        .any(|e| e.contains("payload.severity") && e.contains("sev1")));
    let err = parse_pagerduty(br#"{"routing_key":"k","event_action":"acknowledge"}"#).unwrap_err();
    assert!(err.to_string().contains("dedup_key"), "{err}");
}

#[test]
fn malformed_json_says_where() {
    let err = parse_own(b"{\"summary\": \"x\",\n \"severity\": }").unwrap_err();
    let FormatError::Json(msg) = err else {
        panic!()
    };
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn own_format_defaults_and_checks() {
    let a = parse_own(
        br#"{"summary":"disk full","links":["https://x", {"href":"https://y","text":"y"}]}"#,
    )
    .unwrap();
    assert_eq!(
        (a.action, a.severity),
        (AlertAction::Trigger, Severity::Error)
    );
    assert_eq!(a.links.len(), 2);
    let err = parse_own(br#"{"action":"resolve"}"#).unwrap_err();
    assert!(err.to_string().contains("dedup_key"));
    let err = parse_own(br#"{"summary":"x","sevrity":"critical"}"#).unwrap_err();
    assert!(err.to_string().contains("sevrity"), "{err}");
}

#[test]
fn long_summaries_are_cut_not_refused() {
    let body = serde_json::json!({ "summary": "x".repeat(5000) }).to_string();
    let a = parse_own(body.as_bytes()).unwrap();
    assert_eq!(a.summary.chars().count(), MAX_SUMMARY_CHARS);
}

#[test]
fn udp_lines() {
    let Datagram::Alert(a) =
        parse_datagram(b"critical disk-db1 /var on db1 is 97% full\n").unwrap()
    else {
        panic!()
    };
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.dedup_key.as_deref(), Some("disk-db1"));
    assert_eq!(a.summary, "/var on db1 is 97% full");
    let Datagram::Alert(r) = parse_datagram(b"resolve disk-db1").unwrap() else {
        panic!()
    };
    assert_eq!(r.action, AlertAction::Resolve);
    assert_eq!(
        parse_datagram(b"heartbeat backup").unwrap(),
        Datagram::Heartbeat("backup".into())
    );
    let Datagram::Alert(j) = parse_datagram(br#"{"summary":"json","severity":"warning"}"#).unwrap()
    else {
        panic!()
    };
    assert_eq!(j.severity, Severity::Warning);
    for junk in [
        &b"\xff\xfe\x00junk"[..],
        b"",
        b"hello",
        b"critical only-key",
        b"sev9 k text",
    ] {
        assert!(parse_datagram(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn grafana_webhook_without_fingerprint_keys_on_labels() {
    let body = br#"{"receiver":"x","status":"firing","orgId":1,"alerts":[{"status":"firing","labels":{"alertname":"High CPU","grafana_folder":"infra"},"annotations":{},"startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://grafana/alerting/1","dashboardURL":"http://grafana/d/1","valueString":"[ var='A' value=97 ]"}],"title":"[FIRING:1] High CPU","state":"alerting","message":"m","version":"1"}"#;
    let a = parse_alertmanager(body).unwrap();
    assert_eq!(a[0].summary, "High CPU");
    assert_eq!(
        a[0].dedup_key.as_deref(),
        Some("alertname=\"High CPU\",grafana_folder=\"infra\"")
    );
    assert!(a[0]
        .links
        .iter()
        .any(|l| l.text.as_deref() == Some("dashboard")));
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = parse_own(&data);
        let _ = parse_pagerduty(&data);
        let _ = parse_alertmanager(&data);
        let _ = parse_datagram(&data);
        let _ = parse_pagerduty_change(&data);
    }
}
