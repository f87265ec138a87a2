//! `GET /metrics` end to end: the real daemon binary with the modem simulator as its own process,
//! alerts over every integration and UDP, a page to the simulated network, then a scrape parsed
//! with an independent parser (prometheus-parse) and checked value by value.

mod util;

use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use util::{fixture, Daemon, ExternalSim};

const ALICE: &str = "+4915100000011";

/// The simulator answers `AT+CSQ` with RSSI 21, which 3GPP TS 27.007 maps to -113 + 2*21 dBm.
const SIM_SIGNAL_DBM: f64 = -71.0;

/// One scrape: the raw text and its content type.
fn scrape_raw(d: &Daemon, auth: Option<&str>) -> (String, String) {
    let mut req = ureq::get(&d.url("/metrics"));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let resp = req.call().expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp.header("Content-Type").unwrap_or_default().to_string();
    (resp.into_string().unwrap(), ct)
}

fn scrape(d: &Daemon) -> Scrape {
    let (text, _) = scrape_raw(d, None);
    assert!(text.ends_with("# EOF\n"), "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The sample called `name` whose labels are exactly `labels`.
fn sample<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.samples.iter().find(|x| {
        x.metric == name
            && x.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
    })
}

/// The value of a counter, gauge or untyped sample (OpenMetrics counters end in `_total`).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(s, name, labels).map(|x| match &x.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is not a single value: {other:?}"),
    })
}

fn alerts(s: &Scrape, source: &str, outcome: &str) -> Option<f64> {
    value(
        s,
        "pagerbox_alerts_received_total",
        &[("source", source), ("outcome", outcome)],
    )
}

/// Lints the exposition with the OpenMetrics reference parser (the Prometheus project's Python
/// client, Debian `python3-prometheus-client`, installed by scripts/test.sh), which rejects
/// anything Prometheus would not read. Skipped, saying so, where it is not installed.
fn lint_openmetrics(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const SCRIPT: &str = "import sys\n\
        try:\n    from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        except ImportError:\n    sys.exit(3)\n\
        fams = list(text_string_to_metric_families(sys.stdin.read()))\n\
        print(len(fams))\n";
    for python in ["/usr/bin/python3", "python3"] {
        let Ok(mut child) = Command::new(python)
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            continue;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.code() == Some(3) {
            continue;
        }
        assert!(
            out.status.success(),
            "OpenMetrics parser rejected the exposition:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let families: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(families >= 16, "{families} families");
        return;
    }
    eprintln!("python3-prometheus-client not installed: exposition not linted");
}

fn config(sim: &ExternalSim) -> String {
    // Only service "db" is routed (and paged); everything else is recorded without paging, so
    // exactly one page goes out.
    format!(
        r#"
{modem}
{alice}
[[routes]]
id = "db"
policy = "default"
match = {{ service = "db" }}
"#,
        modem = util::fast_modem(sim),
        alice = util::alice_paged_by("default", ALICE, "10m")
    )
}

#[test]
fn metrics_count_alerts_and_pages_and_report_levels_and_modem_health() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim));
    d.wait_for(20, "modem up", || {
        let (_, h) = d.get("/healthz");
        (h["modem"]["state"] == "up").then_some(())
    });

    // Own format: one new incident (paged), the same again (deduplicated), one bad body.
    let db =
        json!({"summary": "db1 down", "severity": "critical", "service": "db", "dedup_key": "db1"});
    let (code, v) = d.post_json("/v1/alerts", db.clone());
    assert_eq!(code, 202, "{v}");
    let id = v["incident_id"].as_i64().unwrap();
    assert_eq!(d.post_json("/v1/alerts", db).0, 202);
    assert_eq!(d.post("/v1/alerts", b"{not json").0, 400);
    // PagerDuty, Alertmanager, and the same Alertmanager group through Grafana's path.
    assert_eq!(
        d.post("/v2/enqueue", &fixture("pagerduty/pd-client-trigger.json"))
            .0,
        202
    );
    let am = fixture("alertmanager/alertmanager-webhook-curl-firing.json");
    assert_eq!(d.post("/v1/integrations/alertmanager", &am).0, 202);
    assert_eq!(d.post("/v1/integrations/grafana", &am).0, 202);
    // Opsgenie (a P5, recorded, pages nobody) and Splunk On-Call INFO (recorded, no incident).
    let og = json!({"message": "backup finished", "alias": "backup", "priority": "P5"});
    let (code, v) = d.post_json("/v2/alerts", og);
    assert_eq!(code, 202, "{v}");
    let vo = json!({"message_type": "INFO", "entity_id": "deploy", "state_message": "deploy 42"});
    let (code, v) = d.post_json("/integrations/generic/20131114/alert/any-key/ops", vo);
    assert_eq!(code, 200, "{v}");
    // UDP: one alert line, one datagram of junk.
    d.udp_send(b"warning disk-web1 /var on web1 is 91% full");
    d.udp_send(b"\xff\xfe not an alert");

    d.wait_for(15, "the page SMS", || sim.sms_to(ALICE).into_iter().next());
    let s = d.wait_for(15, "sent, delivered and both UDP datagrams counted", || {
        let s = scrape(&d);
        let sms = |o| {
            value(
                &s,
                "pagerbox_pages_total",
                &[("channel", "sms"), ("outcome", o)],
            )
        };
        (sms("sent") == Some(1.0)
            && sms("delivered") == Some(1.0)
            && alerts(&s, "udp", "accepted").is_some()
            && alerts(&s, "udp", "junk").is_some())
        .then_some(s)
    });

    let expect = [
        ("own", "accepted", 1.0),
        ("own", "deduplicated", 1.0),
        ("own", "rejected", 1.0),
        ("pagerduty", "accepted", 1.0),
        ("alertmanager", "accepted", 1.0),
        ("grafana", "deduplicated", 1.0),
        ("opsgenie", "accepted", 1.0),
        ("victorops", "accepted", 1.0),
        ("udp", "accepted", 1.0),
        ("udp", "junk", 1.0),
    ];
    for (source, outcome, n) in expect {
        assert_eq!(alerts(&s, source, outcome), Some(n), "{source}/{outcome}");
    }
    let counted = s
        .samples
        .iter()
        .filter(|x| x.metric == "pagerbox_alerts_received_total")
        .count();
    assert_eq!(counted, expect.len(), "no other alert series");

    // The one page: sent once, no retries, its latency observed once.
    let latency = sample(&s, "pagerbox_page_latency_seconds", &[("channel", "sms")])
        .expect("page latency histogram");
    let Value::Histogram(buckets) = &latency.value else {
        panic!("{latency:?}")
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    assert_eq!(bounds.first(), Some(&0.05));
    assert!(
        bounds.contains(&300.0) && bounds.contains(&f64::INFINITY),
        "{bounds:?}"
    );
    assert_eq!(buckets.last().unwrap().count, 1.0);
    assert_eq!(
        value(
            &s,
            "pagerbox_page_latency_seconds_count",
            &[("channel", "sms")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "pagerbox_pages_total",
            &[("channel", "sms"), ("outcome", "retry")]
        ),
        None
    );
    // Every write above was committed and timed.
    assert!(value(&s, "pagerbox_store_commit_seconds_count", &[]).unwrap() >= 6.0);

    // Levels: the outbox is empty again; the modem is the simulator's.
    assert_eq!(value(&s, "pagerbox_outbox_pending", &[]), Some(0.0));
    assert_eq!(
        value(&s, "pagerbox_outbox_oldest_pending_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(value(&s, "pagerbox_modem_present", &[]), Some(1.0));
    assert_eq!(
        value(&s, "pagerbox_modem_signal_dbm", &[]),
        Some(SIM_SIGNAL_DBM)
    );
    assert_eq!(value(&s, "pagerbox_modem_registered", &[]), Some(1.0));
    assert_eq!(value(&s, "pagerbox_modem_sim_ready", &[]), Some(1.0));
    assert_eq!(
        value(&s, "pagerbox_modem_health", &[("state", "up")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "pagerbox_channel_ready", &[("channel", "sms")]),
        Some(1.0)
    );
    assert_eq!(value(&s, "pagerbox_paging_impaired", &[]), Some(0.0));
    // Five incidents: db1, the PagerDuty one, the Alertmanager group's, the Opsgenie P5 and the
    // UDP one (Splunk On-Call INFO is a change record, not an incident).
    assert_eq!(
        value(&s, "pagerbox_incidents", &[("state", "triggered")]),
        Some(5.0)
    );

    lint_openmetrics(&scrape_raw(&d, None).0);

    // Acknowledging moves one incident; the gauges follow at the next scrape.
    let (code, v) = d.post_json(&format!("/v1/incidents/{id}/acknowledge"), json!({}));
    assert_eq!(code, 200, "{v}");
    let s = scrape(&d);
    assert_eq!(
        value(&s, "pagerbox_incidents", &[("state", "triggered")]),
        Some(4.0)
    );
    assert_eq!(
        value(&s, "pagerbox_incidents", &[("state", "acknowledged")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "pagerbox_incidents", &[("state", "resolved")]),
        Some(0.0)
    );
}

#[test]
fn metrics_need_no_token_like_other_reads_and_count_refused_writes() {
    let d = Daemon::start_with("", Some("s3cret"));
    // A write without the token is refused and counted.
    let (code, _) = d.post_raw("/v1/alerts", br#"{"summary":"x"}"#, None);
    assert_eq!(code, 401);
    let (text, content_type) = scrape_raw(&d, None);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let s = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(alerts(&s, "own", "unauthorized"), Some(1.0));
    // No modem configured: said once, no modem readings pretending to be zero.
    assert_eq!(value(&s, "pagerbox_modem_present", &[]), Some(0.0));
    assert!(sample(&s, "pagerbox_modem_signal_dbm", &[]).is_none());
    // With no channel at all, paging is impaired.
    assert_eq!(value(&s, "pagerbox_paging_impaired", &[]), Some(1.0));
    // Prometheus configured with the bearer token is answered the same way.
    let (with_token, _) = scrape_raw(&d, Some("Bearer s3cret"));
    assert!(with_token.contains("pagerbox_build_info"));
}
