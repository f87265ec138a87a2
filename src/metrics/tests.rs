use std::time::Duration;

use chrono::TimeZone;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// The sample lines (no comments), for exact comparisons.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// The sample lines of one metric, sorted (families are encoded in hash order).
fn sorted_series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines: Vec<&str> = samples(text)
        .into_iter()
        .filter(|l| l.starts_with(name))
        .collect();
    lines.sort();
    lines
}

/// The value of the sample line that starts with `series` followed by a space.
fn value(text: &str, series: &str) -> Option<f64> {
    samples(text).into_iter().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    })
}

fn up_modem(signal: Option<i32>) -> Health {
    Health {
        state: HealthState::Up,
        reason: "ready".into(),
        signal_dbm: signal,
        registered: true,
        sim_ready: true,
        ..Health::starting(at())
    }
}

#[test]
fn counters_carry_typed_labels_and_exact_counts() {
    let m = Metrics::new(at());
    m.alert(AlertSource::Own, AlertOutcome::Accepted);
    m.alert(AlertSource::Own, AlertOutcome::Accepted);
    m.alerts(AlertSource::Alertmanager, AlertOutcome::Deduplicated, 3);
    m.alert(AlertSource::Udp, AlertOutcome::Junk);
    m.page(Channel::Sms, PageOutcome::Sent);
    m.page(Channel::Email, PageOutcome::FellThrough);
    let text = m.encode(&Snapshot::default());
    assert!(
        text.contains("# TYPE pagerbox_alerts_received counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE pagerbox_pages counter\n"), "{text}");
    assert_eq!(
        sorted_series(&text, "pagerbox_alerts_received_total"),
        [
            r#"pagerbox_alerts_received_total{source="alertmanager",outcome="deduplicated"} 3"#,
            r#"pagerbox_alerts_received_total{source="own",outcome="accepted"} 2"#,
            r#"pagerbox_alerts_received_total{source="udp",outcome="junk"} 1"#,
        ]
    );
    assert_eq!(
        sorted_series(&text, "pagerbox_pages_total"),
        [
            r#"pagerbox_pages_total{channel="email",outcome="fell_through"} 1"#,
            r#"pagerbox_pages_total{channel="sms",outcome="sent"} 1"#,
        ]
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn clones_record_into_the_same_counters() {
    let m = Metrics::new(at());
    let other = m.clone();
    other.alert(AlertSource::Grafana, AlertOutcome::Rejected);
    m.alert(AlertSource::Grafana, AlertOutcome::Rejected);
    let text = m.encode(&Snapshot::default());
    assert_eq!(
        value(
            &text,
            r#"pagerbox_alerts_received_total{source="grafana",outcome="rejected"}"#
        ),
        Some(2.0)
    );
}

#[test]
fn page_latency_histogram_has_seconds_buckets_from_50ms_to_300s() {
    let m = Metrics::new(at());
    m.page_latency(Channel::Sms, Duration::from_millis(1500));
    m.page_latency(Channel::Sms, Duration::from_secs(400));
    let text = m.encode(&Snapshot::default());
    assert!(text.contains("# TYPE pagerbox_page_latency_seconds histogram\n"));
    assert!(text.contains("# UNIT pagerbox_page_latency_seconds seconds\n"));
    let b = |le: &str| {
        value(
            &text,
            &format!(r#"pagerbox_page_latency_seconds_bucket{{le="{le}",channel="sms"}}"#),
        )
    };
    assert_eq!(b("0.05"), Some(0.0));
    assert_eq!(b("1.0"), Some(0.0));
    assert_eq!(b("2.5"), Some(1.0));
    assert_eq!(b("300.0"), Some(1.0));
    assert_eq!(b("+Inf"), Some(2.0));
    assert_eq!(
        value(
            &text,
            r#"pagerbox_page_latency_seconds_count{channel="sms"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"pagerbox_page_latency_seconds_sum{channel="sms"}"#),
        Some(401.5)
    );
}

#[test]
fn store_commit_histogram_counts_each_commit() {
    let m = Metrics::new(at());
    m.store_commit(Duration::from_millis(3));
    m.store_commit(Duration::from_millis(30));
    let text = m.encode(&Snapshot::default());
    assert_eq!(
        value(&text, "pagerbox_store_commit_seconds_count"),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"pagerbox_store_commit_seconds_bucket{le="0.005"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"pagerbox_store_commit_seconds_bucket{le="0.05"}"#),
        Some(2.0)
    );
}

#[test]
fn levels_from_the_snapshot_are_gauges() {
    let m = Metrics::new(at());
    let snap = Snapshot {
        impaired: true,
        incidents: Some(vec![(Status::Triggered, 2), (Status::Resolved, 5)]),
        outbox: Some((3, Some(Duration::from_secs(42)))),
        oldest_sending: Some(Some(Duration::from_secs(7))),
        held_by_silence: Some(4),
        exhausted: Some(2),
        modem: Some(Health {
            events_dropped: 7,
            last_answer: Some(at() + chrono::Duration::seconds(30)),
            ..up_modem(Some(-71))
        }),
        paging: Some(PagingHealth {
            ready: vec![Channel::Sms, Channel::Voice],
            down: vec![(Channel::Email, "smtp: connection refused".into())],
        }),
        standby: Some(pagerbox_standby()),
    };
    let text = m.encode(&snap);
    let expect = [
        (r#"pagerbox_incidents{state="triggered"}"#, 2.0),
        (r#"pagerbox_incidents{state="acknowledged"}"#, 0.0),
        (r#"pagerbox_incidents{state="resolved"}"#, 5.0),
        ("pagerbox_outbox_pending", 3.0),
        ("pagerbox_outbox_oldest_pending_age_seconds", 42.0),
        ("pagerbox_outbox_oldest_sending_age_seconds", 7.0),
        ("pagerbox_incidents_held_by_silence", 4.0),
        ("pagerbox_incidents_exhausted", 2.0),
        ("pagerbox_modem_present", 1.0),
        (r#"pagerbox_modem_health{state="up"}"#, 1.0),
        (r#"pagerbox_modem_health{state="down"}"#, 0.0),
        ("pagerbox_modem_registered", 1.0),
        ("pagerbox_modem_sim_ready", 1.0),
        ("pagerbox_modem_signal_dbm", -71.0),
        ("pagerbox_modem_events_dropped_total", 7.0),
        (
            "pagerbox_modem_last_answer_time_seconds",
            at().timestamp() as f64 + 30.0,
        ),
        (r#"pagerbox_channel_ready{channel="sms"}"#, 1.0),
        (r#"pagerbox_channel_ready{channel="email"}"#, 0.0),
        ("pagerbox_paging_impaired", 0.0),
        ("pagerbox_impaired", 1.0),
        (
            "pagerbox_process_start_time_seconds",
            at().timestamp() as f64,
        ),
    ];
    let build = format!(
        r#"pagerbox_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &build), Some(1.0), "{text}");
    for (series, v) in expect {
        assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
    }
    assert!(text.contains("# TYPE pagerbox_incidents gauge\n"));
    // Prometheus' own parser rules: one TYPE per family, ends with EOF.
    assert_eq!(text.matches("# TYPE pagerbox_incidents ").count(), 1);
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn absent_or_unknown_levels_are_left_out_not_zero() {
    let m = Metrics::new(at());
    // No modem, store unreadable: only modem_present says anything about them.
    let text = m.encode(&Snapshot::default());
    assert_eq!(value(&text, "pagerbox_modem_present"), Some(0.0));
    for absent in [
        "pagerbox_modem_signal_dbm",
        "pagerbox_modem_registered",
        "pagerbox_incidents",
        "pagerbox_outbox_pending",
        "pagerbox_outbox_oldest_sending_age",
        "pagerbox_channel_ready",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    // A modem whose signal is unknown (CSQ 99): no signal sample, never a fake 0 dBm.
    let text = m.encode(&Snapshot {
        modem: Some(up_modem(None)),
        outbox: Some((0, None)),
        ..Snapshot::default()
    });
    assert!(!text.contains("pagerbox_modem_signal_dbm"), "{text}");
    // Never answered yet: no last-answer time, and the drop counter starts at zero.
    assert!(!text.contains("pagerbox_modem_last_answer_time"), "{text}");
    assert_eq!(
        value(&text, "pagerbox_modem_events_dropped_total"),
        Some(0.0)
    );
    assert_eq!(value(&text, "pagerbox_modem_sim_ready"), Some(1.0));
    assert_eq!(
        value(&text, "pagerbox_outbox_oldest_pending_age_seconds"),
        Some(0.0)
    );
}

#[test]
fn store_outcomes_map_to_counted_outcomes() {
    use crate::store::AlertOutcome as S;
    assert_eq!(
        AlertOutcome::of(&S::NotFound("k".into())),
        AlertOutcome::Unmatched
    );
    let a = crate::store::outbox::Attempt::FallThrough {
        error: "x".into(),
        channel: Channel::Voice,
        address: "+49".into(),
        due_at: at(),
    };
    assert_eq!(PageOutcome::of(&a), PageOutcome::FellThrough);
    assert_eq!(PageOutcome::FellThrough.as_str(), "fell_through");
    assert_eq!(AlertOutcome::StoreFailure.as_str(), "store_failure");
}

fn pagerbox_standby() -> crate::health::Status {
    crate::health::Status {
        enabled: true,
        reachability: crate::health::Reachability::Reachable,
        last_success: Some(at()),
        held: 4,
        grace: Duration::from_secs(300),
    }
}

#[test]
fn standby_levels() {
    let m = Metrics::new(at());
    let text = m.encode(&Snapshot {
        standby: Some(pagerbox_standby()),
        ..Snapshot::default()
    });
    assert!(text.contains("pagerbox_standby_held 4"), "{text}");
    assert!(
        text.contains("pagerbox_standby_upstream_reachable 1"),
        "{text}"
    );
    assert!(
        text.contains("pagerbox_standby_last_success_time_seconds"),
        "{text}"
    );
    let text = m.encode(&Snapshot::default());
    assert!(!text.contains("pagerbox_standby"), "{text}");
}
