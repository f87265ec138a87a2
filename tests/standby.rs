//! End-to-end standby behind a cloud pager: the real daemon holding its pages while a local stub
//! of PagerDuty's REST and Events APIs (or Opsgenie's Alert API) on 127.0.0.1 says the incident
//! is acknowledged, still triggered, is down, or hangs; and acknowledgements made on the box
//! reaching the stub, also after it comes back.

mod util;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{
    free_port, hold_while, secret_file, serve_http, Daemon, ExternalSim, HttpRequest, PAGER_PHONE,
};

const REST_TOKEN: &str = "u+pd-rest-token";
const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000000";
const GENIE_KEY: &str = "eb243592-faa2-4ba2-a551q-1afdf565c889";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Answer,
    /// Read the request, never answer (until the mode changes).
    Hang,
}

/// What the stub knows about one incident: its status and who acknowledged or resolved it.
#[derive(Clone, Debug)]
struct Known {
    status: &'static str,
    by: &'static str,
    /// When the upstream opened it (the stub learnt of it), RFC 3339, as both APIs give it.
    created: String,
    /// When it was acknowledged or resolved there; `None`: just before each answer.
    acted: Option<String>,
}

struct StubState {
    mode: Mode,
    known: HashMap<String, Known>,
    received: Vec<HttpRequest>,
}

/// A small PagerDuty/Opsgenie stub speaking the documented request and response shapes.
struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    fn start(mode: Mode) -> Stub {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn start_on(l: TcpListener, mode: Mode) -> Stub {
        let state = Arc::new(Mutex::new(StubState {
            mode,
            known: HashMap::new(),
            received: Vec::new(),
        }));
        let st = state.clone();
        let addr = serve_http(l, move |req| {
            if st.lock().unwrap().mode == Mode::Hang {
                hold_while(Duration::from_secs(60), || {
                    st.lock().unwrap().mode == Mode::Hang
                });
                return None;
            }
            let mut g = st.lock().unwrap();
            let a = answer(&req, &g.known);
            g.received.push(req);
            Some(a)
        });
        Stub { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn know(&self, key: &str, status: &'static str, by: &'static str) {
        let created = chrono::Utc::now().to_rfc3339();
        self.state.lock().unwrap().known.insert(
            key.to_string(),
            Known {
                status,
                by,
                created,
                acted: None,
            },
        );
    }

    /// [`Stub::know`], for an incident the upstream opened `ago` (an earlier occurrence of a key
    /// that recurs).
    fn know_from(&self, key: &str, status: &'static str, by: &'static str, ago: Duration) {
        let created = chrono::Utc::now() - ago;
        let acted = Some((created + chrono::Duration::minutes(3)).to_rfc3339());
        let created = created.to_rfc3339();
        self.state.lock().unwrap().known.insert(
            key.to_string(),
            Known {
                status,
                by,
                created,
                acted,
            },
        );
    }

    fn set(&self, m: Mode) {
        self.state.lock().unwrap().mode = m;
    }

    fn received(&self) -> Vec<HttpRequest> {
        self.state.lock().unwrap().received.clone()
    }

    fn posts(&self) -> Vec<HttpRequest> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

fn query(target: &str, name: &str) -> Option<String> {
    let q = target.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The documented answers: PagerDuty `GET /incidents?incident_key=`, `POST /v2/enqueue`;
/// Opsgenie `GET /v2/alerts/{alias}?identifierType=alias`, `POST .../acknowledge`.
fn answer(r: &HttpRequest, known: &HashMap<String, Known>) -> (u16, String) {
    let auth = r.headers.get("authorization").cloned().unwrap_or_default();
    let path = r.target.split('?').next().unwrap_or("");
    match (r.method.as_str(), path) {
        ("GET", "/incidents") => {
            if auth != format!("Token token={REST_TOKEN}") {
                return (
                    401,
                    json!({"error": {"message": "Unauthorized", "code": 2006}}).to_string(),
                );
            }
            let key = query(&r.target, "incident_key").unwrap_or_default();
            // What the upstream did, it did just now (the tests acknowledge or resolve it while
            // the box holds its incident), unless the stub was told it was an older occurrence.
            let acted = |k: &Known| {
                k.acted
                    .clone()
                    .unwrap_or_else(|| chrono::Utc::now().to_rfc3339())
            };
            let incidents: Vec<Value> = known
                .get(&key)
                .map(|k| {
                    let acted = acted(k);
                    let mut i = json!({
                        "id": "PT4KHLK", "type": "incident", "status": k.status,
                        "incident_key": key, "acknowledgements": [], "created_at": k.created,
                        "last_status_change_at": acted,
                        "last_status_change_by": {"id": "PXPGF42", "type": "user_reference", "summary": k.by}
                    });
                    if k.status == "acknowledged" {
                        i["acknowledgements"] = json!([{"at": acted,
                            "acknowledger": {"id": "PXPGF42", "type": "user_reference", "summary": k.by}}]);
                    }
                    vec![i]
                })
                .unwrap_or_default();
            (
                200,
                json!({"incidents": incidents, "limit": 25, "offset": 0, "more": false})
                    .to_string(),
            )
        }
        ("POST", "/v2/enqueue") => {
            let v: Value = serde_json::from_str(&r.body).unwrap_or_default();
            (202, json!({"status": "success", "message": "Event processed", "dedup_key": v["dedup_key"]}).to_string())
        }
        ("GET", p) if p.starts_with("/v2/alerts/") => {
            if auth != format!("GenieKey {GENIE_KEY}") {
                return (
                    422,
                    json!({"message": "Key format is not valid!"}).to_string(),
                );
            }
            let alias = p.trim_start_matches("/v2/alerts/");
            match known.get(alias) {
                None => (
                    404,
                    json!({"message": "Alert does not exist", "took": 0.002}).to_string(),
                ),
                Some(k) => {
                    let report = if k.status == "acknowledged" {
                        json!({"ackTime": 15702, "acknowledgedBy": k.by})
                    } else {
                        json!({"closedBy": k.by})
                    };
                    (200, json!({"data": {
                        "id": "70413a06-38d6-4c85-92b8-5ebc900d42e2", "tinyId": "1791", "alias": alias,
                        "status": if k.status == "resolved" { "closed" } else { "open" },
                        "acknowledged": k.status == "acknowledged", "report": report,
                        "createdAt": k.created,
                        "updatedAt": k.acted.clone().unwrap_or_else(|| chrono::Utc::now().to_rfc3339())
                    }, "took": 0.004, "requestId": "43a29c5c"}).to_string())
                }
            }
        }
        ("POST", p) if p.starts_with("/v2/alerts/") && p.ends_with("/acknowledge") => (
            202,
            json!({"result": "Request will be processed", "took": 0.1, "requestId": "43a29c5c"})
                .to_string(),
        ),
        _ => (404, "{}".to_string()),
    }
}

/// One person paged by SMS at once; route `web` (service "web") pages directly, the default
/// route is in standby with `standby` settings appended under `[standby]`.
fn config(sim: &ExternalSim, standby: &str, routes: &str) -> String {
    format!(
        r#"
{modem}
[paging]
group_window = "0s"

{alice}
[[routes]]
id = "web"
policy = "default"
mode = "active"
match = {{ service = "web" }}

{routes}

[[routes]]
id = "default"
policy = "default"
mode = "standby"

[standby]
poll_interval = "300ms"
{timeout}
{standby}
"#,
        modem = util::fast_modem(sim),
        alice = util::alice_paged_by("default", PAGER_PHONE, "10m"),
        timeout = if standby.contains("timeout =") {
            ""
        } else {
            "timeout = \"1s\""
        },
    )
}

fn keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    secret_file(dir.path(), "pd.token", REST_TOKEN);
    secret_file(dir.path(), "pd.routing", ROUTING_KEY);
    secret_file(dir.path(), "og.key", GENIE_KEY);
    dir
}

fn pagerduty(keys: &tempfile::TempDir, url: &str, extra: &str) -> String {
    format!(
        "upstream = \"pagerduty\"\nbase_url = \"{url}\"\nevents_url = \"{url}\"\nkey_file = \"{}\"\nrouting_key_file = \"{}\"\n{extra}\n",
        keys.path().join("pd.token").display(),
        keys.path().join("pd.routing").display()
    )
}

fn start(sim: &ExternalSim, standby: &str, routes: &str) -> Daemon {
    let d = Daemon::start(&config(sim, standby, routes));
    d.wait_modem_up();
    d
}

/// [`start`] on the test clock, for tests about the grace's end: they move the clock to just
/// short of it (nothing pages), then past it.
fn start_clocked(sim: &ExternalSim, standby: &str, routes: &str) -> Daemon {
    let d = Daemon::start_clocked(&config(sim, standby, routes));
    d.wait_modem_up();
    d
}

/// The grace of the tests on the test clock, and the two steps that cross it.
const GRACE: &str = "grace = \"10m\"";
const SHORT_OF_GRACE: Duration = Duration::from_secs(9 * 60);
const PAST_GRACE: Duration = Duration::from_secs(61);
/// How long a check that nothing was paged watches for it, after a clock step.
const QUIET: Duration = Duration::from_millis(500);

/// The messages on incident `id`'s timeline, oldest first.
fn messages(d: &Daemon, id: i64) -> Vec<String> {
    d.timeline(id).into_iter().map(|(_, m)| m).collect()
}

/// Waits for the `n`th SMS to the pager and returns it with the time it took since `t0`.
fn nth_sms(d: &Daemon, sim: &ExternalSim, n: usize, secs: u64, t0: Instant) -> (String, Duration) {
    let text = d.wait_for(secs, "sms", || sim.sms_to(PAGER_PHONE).get(n - 1).cloned());
    (text, t0.elapsed())
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn acknowledged_upstream_within_the_grace_pages_nobody() {
    let sim = ExternalSim::start();
    let pd = Stub::start(Mode::Answer);
    pd.know("k-acked", "acknowledged", "Earline Greenholt");
    let k = keys();
    let mut d = start_clocked(&sim, &pagerduty(&k, &pd.url(), GRACE), "");
    let id =
        d.trigger(json!({"summary": "disk full k-acked", "service": "db", "dedup_key": "k-acked"}));
    d.wait_for(10, "mirrored acknowledgement", || {
        (d.incident(id)["status"] == "acknowledged").then_some(())
    });
    let inc = d.incident(id);
    assert_eq!(inc["acknowledged"]["by"], "Earline Greenholt", "{inc}");
    assert_eq!(inc["acknowledged"]["via"], "pagerduty", "{inc}");
    let tl = messages(&d, id);
    assert!(
        tl.iter()
            .any(|m| m.starts_with("acknowledged upstream by Earline Greenholt")),
        "{tl:?}"
    );
    // Well past the grace: nobody was paged, and the mirrored ack is not sent back.
    d.advance(SHORT_OF_GRACE + PAST_GRACE);
    d.hold(
        Duration::from_secs(1),
        "paged after an upstream ack",
        || sim.sms_to(PAGER_PHONE).is_empty(),
    );
    let get = pd
        .received()
        .into_iter()
        .find(|r| r.method == "GET" && r.target.contains("k-acked"))
        .unwrap();
    assert_eq!(get.target, "/incidents?incident_key=k-acked");
    assert_eq!(
        get.headers["authorization"],
        format!("Token token={REST_TOKEN}")
    );
    assert!(get.headers["accept"].contains("application/vnd.pagerduty+json;version=2"));
    assert!(pd.posts().is_empty(), "{:?}", pd.posts());
    // The key never reaches the log.
    assert!(!d.log().contains(REST_TOKEN));
    // Visible state: reachable, a last answer, nothing held any more.
    let (code, h) = d.get("/healthz");
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["standby"]["upstream"], "reachable", "{h}");
    assert!(h["standby"]["last_success"].is_string(), "{h}");
    assert_eq!(h["standby"]["held"], 0, "{h}");
    let metrics = ureq::get(&d.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("pagerbox_standby_upstream_reachable 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pagerbox_standby_held 0"), "{metrics}");
}

/// The key recurs: the upstream still has last week's incident for it, resolved. That is no
/// answer about this one, which is paged when the grace ends.
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn an_old_resolved_occurrence_upstream_does_not_silence_a_new_one() {
    let sim = ExternalSim::start();
    let pd = Stub::start(Mode::Answer);
    // Last week's, and one that fired 5 minutes ago and was resolved 2 minutes ago (a flap).
    pd.know_from(
        "k-again",
        "resolved",
        "Bob",
        Duration::from_secs(7 * 24 * 3600),
    );
    pd.know_from("k-flap", "resolved", "Bob", Duration::from_secs(5 * 60));
    let k = keys();
    let mut d = start_clocked(&sim, &pagerduty(&k, &pd.url(), GRACE), "");
    let ids: Vec<i64> = ["k-again", "k-flap"]
        .iter()
        .map(|key| {
            d.trigger(
                json!({"summary": format!("disk full {key}"), "service": "db", "dedup_key": key}),
            )
        })
        .collect();
    d.wait_for(10, "a check of each key", || {
        let got = pd.received();
        ["k-again", "k-flap"]
            .iter()
            .all(|key| {
                got.iter()
                    .any(|r| r.method == "GET" && r.target.contains(key))
            })
            .then_some(())
    });
    d.hold(Duration::from_secs(1), "mirrored an old resolution", || {
        ids.iter()
            .all(|id| d.incident(*id)["status"] == "triggered")
    });
    d.advance(SHORT_OF_GRACE + PAST_GRACE);
    let t0 = Instant::now();
    nth_sms(&d, &sim, 2, 20, t0);
    let texts = sim.sms_to(PAGER_PHONE).join("\n");
    for key in ["k-again", "k-flap"] {
        assert!(texts.contains(&format!("disk full {key}")), "{texts}");
    }
    for id in ids {
        assert_eq!(d.incident(id)["status"], "triggered");
    }
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn still_triggered_upstream_pages_after_the_grace_and_says_why_until_acked_there() {
    let sim = ExternalSim::start();
    let pd = Stub::start(Mode::Answer);
    pd.know("k-open", "triggered", "nobody");
    let k = keys();
    let mut d = start_clocked(&sim, &pagerduty(&k, &pd.url(), GRACE), "");
    let id =
        d.trigger(json!({"summary": "disk full k-open", "service": "db", "dedup_key": "k-open"}));
    d.wait_for(10, "the hold", || {
        messages(&d, id)
            .iter()
            .any(|m| m.starts_with("held in standby"))
            .then_some(())
    });
    d.advance(SHORT_OF_GRACE);
    d.hold(QUIET, "paged before the grace ended", || {
        sim.sms_to(PAGER_PHONE).is_empty()
    });
    d.advance(PAST_GRACE);
    let (text, _) = nth_sms(&d, &sim, 1, 20, Instant::now());
    assert!(text.contains("PagerDuty not acked in 10m"), "{text}");
    assert!(text.contains(&format!("#{id}")), "{text}");
    let tl = messages(&d, id);
    assert!(
        tl.iter().any(|m| m.starts_with("held in standby")),
        "{tl:?}"
    );
    assert!(
        tl.iter()
            .any(|m| m.contains("standby hold over, paging: PagerDuty not acked in 10m")),
        "{tl:?}"
    );
    // The person acknowledges in PagerDuty (it paged them too): the box stops paging, and does
    // not send that acknowledgement back.
    pd.know("k-open", "acknowledged", "Earline Greenholt");
    d.wait_for(10, "the upstream ack mirrored", || {
        (d.incident(id)["status"] == "acknowledged").then_some(())
    });
    let inc = d.incident(id);
    assert_eq!(inc["acknowledged"]["via"], "pagerduty", "{inc}");
    let tl = messages(&d, id);
    assert!(
        tl.iter().any(|m| m.starts_with(
            "acknowledged upstream by Earline Greenholt (PagerDuty): local paging stops"
        )),
        "{tl:?}"
    );
    d.advance(Duration::from_secs(11 * 60));
    d.hold(QUIET, "paged again after the upstream ack", || {
        sim.sms_to(PAGER_PHONE).len() == 1
    });
    assert!(pd.posts().is_empty(), "{:?}", pd.posts());
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn upstream_down_pages_when_the_grace_ends_or_sooner_after_consecutive_failures() {
    let sim = ExternalSim::start();
    let down = format!("http://{}", free_port());
    let k = keys();
    // Route `fast`: a long grace, ended by 2 failed checks in a row. Default route: only the
    // grace (10 min, crossed by moving the clock) ends the hold.
    let fast = "[[routes]]\nid = \"fast\"\npolicy = \"default\"\nmatch = { service = \"fast\" }\nstandby = { grace = \"60m\", max_failures = 2 }\n";
    let mut d = start_clocked(
        &sim,
        &pagerduty(&k, &down, &format!("{GRACE}\nmax_failures = 0")),
        fast,
    );
    let t0 = Instant::now();
    let fast_id =
        d.trigger(json!({"summary": "disk full k-fast", "service": "fast", "dedup_key": "k-fast"}));
    let (text, took) = nth_sms(&d, &sim, 1, 20, t0);
    assert!(text.contains(&format!("#{fast_id}")), "{text}");
    assert!(
        text.contains("PagerDuty unreachable (2 failed checks)"),
        "{text}"
    );
    assert!(
        took < Duration::from_secs(20),
        "{took:?}: the 60 min grace was waited out"
    );

    let id =
        d.trigger(json!({"summary": "disk full k-grace", "service": "db", "dedup_key": "k-grace"}));
    d.wait_for(10, "the hold", || {
        messages(&d, id)
            .iter()
            .any(|m| m.starts_with("held in standby"))
            .then_some(())
    });
    d.advance(SHORT_OF_GRACE);
    d.hold(QUIET, "paged before the grace ended", || {
        sim.sms_to(PAGER_PHONE).len() == 1
    });
    d.advance(PAST_GRACE);
    let (text, took) = nth_sms(&d, &sim, 2, 20, Instant::now());
    assert!(text.contains(&format!("#{id}")), "{text}");
    assert!(
        took < Duration::from_secs(10),
        "{took:?}: held past the grace"
    );
    assert!(text.contains("PagerDuty unreachable ("), "{text}");
    // Unreachable for longer than the grace: /healthz (and so the LED) says paging is impaired.
    let h = d.wait_for(10, "upstream unreachable in /healthz", || {
        let (code, h) = d.get("/healthz");
        (code == 503).then_some(h)
    });
    assert_eq!(h["standby"]["upstream"], "unreachable", "{h}");
    assert!(
        h["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["problem"] == "upstream_unreachable"),
        "{h}"
    );
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn upstream_hanging_pages_after_the_grace_and_delays_nothing_else() {
    let sim = ExternalSim::start();
    let pd = Stub::start(Mode::Hang);
    let k = keys();
    // The grace ends (the clock is moved past it) while a check hangs: only the grace ends the
    // hold. The check's timeout is far longer than the test, so a page held until a hanging
    // check gives up would come too late for the bound below.
    let mut d = start_clocked(
        &sim,
        &pagerduty(
            &k,
            &pd.url(),
            &format!("{GRACE}\ntimeout = \"60s\"\nmax_failures = 0"),
        ),
        "",
    );
    let t0 = Instant::now();
    let held =
        d.trigger(json!({"summary": "disk full k-hang", "service": "db", "dedup_key": "k-hang"}));
    // An incident on an active route is paged at once, while the checks hang.
    let direct =
        d.trigger(json!({"summary": "disk full k-web", "service": "web", "dedup_key": "k-web"}));
    let (first, took_first) = nth_sms(&d, &sim, 1, 20, t0);
    assert!(first.contains(&format!("#{direct}")), "{first}");
    assert!(took_first < Duration::from_secs(2), "{took_first:?}");
    d.advance(SHORT_OF_GRACE);
    d.hold(QUIET, "paged before the grace ended", || {
        sim.sms_to(PAGER_PHONE).len() == 1
    });
    d.advance(PAST_GRACE);
    let (second, took) = nth_sms(&d, &sim, 2, 20, Instant::now());
    assert!(second.contains(&format!("#{held}")), "{second}");
    // Long before the hanging check's 60 s timeout.
    assert!(
        took < Duration::from_secs(4),
        "{took:?}: a hanging upstream held the page"
    );
    assert!(
        second.contains("no answer from PagerDuty in 10m"),
        "{second}"
    );
    // Intake answered quickly throughout.
    let t = Instant::now();
    let (code, _) = d.get("/healthz");
    assert!(code == 200 || code == 503);
    assert!(t.elapsed() < Duration::from_secs(1));
    pd.set(Mode::Answer);
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_local_ack_reaches_pagerduty_also_after_it_comes_back() {
    let sim = ExternalSim::start();
    let addr = free_port();
    let k = keys();
    let mut d = start_clocked(
        &sim,
        &pagerduty(
            &k,
            &format!("http://{addr}"),
            "grace = \"60s\"\nmax_failures = 0",
        ),
        "",
    );
    let id =
        d.trigger(json!({"summary": "disk full k-local", "service": "db", "dedup_key": "k-local"}));
    d.wait_for(10, "held", || {
        messages(&d, id)
            .iter()
            .any(|m| m.starts_with("held in standby"))
            .then_some(())
    });
    let acked = Instant::now();
    let (code, v) = d.post_json(&format!("/v1/incidents/{id}/acknowledge"), json!({}));
    assert!(code < 300, "{code} {v}");
    d.wait_for(10, "first push failed", || {
        messages(&d, id)
            .iter()
            .any(|m| m.contains("failed (attempt 1)"))
            .then_some(())
    });
    // PagerDuty is back, and the clock moves past the retry's backoff (and the grace): the
    // queued acknowledgement is retried at once and arrives.
    let pd = Stub::start_on(TcpListener::bind(addr).unwrap(), Mode::Answer);
    pd.know("k-local", "triggered", "nobody");
    d.advance(Duration::from_secs(180));
    let post = d.wait_for(30, "acknowledge at PagerDuty", || {
        pd.posts().first().cloned()
    });
    // The first push failed after `acked`; on the real backoff (at least 5 s) the retry could
    // not have come yet, so the clock step woke the pusher.
    let took = acked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: the retry waited for the real backoff, not the clock step"
    );
    assert_eq!(post.target, "/v2/enqueue");
    let v: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        v,
        json!({"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "k-local"})
    );
    assert!(sim.sms_to(PAGER_PHONE).is_empty());
    assert!(!d.log().contains(ROUTING_KEY));
}

#[test]
fn opsgenie_ack_is_mirrored_and_a_local_ack_is_pushed_by_alias() {
    let sim = ExternalSim::start();
    let og = Stub::start(Mode::Answer);
    og.know("og-acked", "acknowledged", "agent_smith@opsgenie.com");
    og.know("og-open", "triggered", "nobody");
    let k = keys();
    let standby = format!(
        "upstream = \"opsgenie\"\nbase_url = \"{}\"\nkey_file = \"{}\"\ngrace = \"30s\"\n",
        og.url(),
        k.path().join("og.key").display()
    );
    let d = start(&sim, &standby, "");
    let acked = d.trigger(
        json!({"summary": "disk full og-acked", "service": "db", "dedup_key": "og-acked"}),
    );
    let open =
        d.trigger(json!({"summary": "disk full og-open", "service": "db", "dedup_key": "og-open"}));
    d.wait_for(10, "mirrored acknowledgement", || {
        (d.incident(acked)["status"] == "acknowledged").then_some(())
    });
    assert_eq!(
        d.incident(acked)["acknowledged"]["by"],
        "agent_smith@opsgenie.com"
    );
    assert_eq!(d.incident(open)["status"], "triggered");
    let (code, v) = d.post_json(&format!("/v1/incidents/{open}/acknowledge"), json!({}));
    assert!(code < 300, "{code} {v}");
    let post = d.wait_for(10, "acknowledge at Opsgenie", || {
        og.posts().first().cloned()
    });
    assert_eq!(
        post.target,
        "/v2/alerts/og-open/acknowledge?identifierType=alias"
    );
    assert_eq!(
        post.headers["authorization"],
        format!("GenieKey {GENIE_KEY}")
    );
    let get = og
        .received()
        .into_iter()
        .find(|r| r.method == "GET" && r.target.contains("og-acked"))
        .unwrap();
    assert_eq!(get.target, "/v2/alerts/og-acked?identifierType=alias");
    assert_eq!(og.posts().len(), 1, "the mirrored ack is not sent back");
    assert!(sim.sms_to(PAGER_PHONE).is_empty());
}
