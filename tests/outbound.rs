//! End-to-end outbound notifications: the real daemon posting to local HTTP receivers on
//! 127.0.0.1 that answer, fail, stall, are down, and come back; and paging that is not slowed by
//! a receiver that hangs.

mod util;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use util::{free_port, hold_while, serve_http_with_headers, Daemon, ExternalSim, HttpRequest};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Status(u16),
    /// Answer with this status and body.
    Answer(u16, &'static str),
    /// Read the request, never answer (until the mode changes).
    Stall,
    /// 503 with `Retry-After: 3600`: come back in an hour.
    Busy,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    received: Vec<HttpRequest>,
    attempts: usize,
    stalled_now: usize,
}

/// A receiver on 127.0.0.1 that answers as its [`Mode`] says.
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn start_on(l: TcpListener, mode: Mode) -> Receiver {
        let state = Arc::new(Mutex::new(State {
            mode: Some(mode),
            ..Default::default()
        }));
        let st = state.clone();
        // Every answer carries a header of the receiver's own, which must never reach a note.
        let own = || vec![("X-Receiver-Token".to_string(), "hdr-secret".to_string())];
        let addr = serve_http_with_headers(l, move |req| {
            let mode = {
                let mut g = st.lock().unwrap();
                g.attempts += 1;
                g.mode.unwrap()
            };
            match mode {
                Mode::Ok => {
                    st.lock().unwrap().received.push(req);
                    Some((200, own(), "ok".into()))
                }
                Mode::Status(c) => Some((c, own(), "ok".into())),
                Mode::Answer(c, answer) => Some((c, own(), answer.into())),
                Mode::Busy => {
                    let mut headers = own();
                    headers.push(("Retry-After".to_string(), "3600".to_string()));
                    Some((503, headers, "busy".into()))
                }
                Mode::Stall => {
                    st.lock().unwrap().stalled_now += 1;
                    hold_while(Duration::from_secs(90), || {
                        st.lock().unwrap().mode == Some(Mode::Stall)
                    });
                    st.lock().unwrap().stalled_now -= 1;
                    // The caller gave up long ago; close without answering.
                    None
                }
            }
        });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook/T000/secret-part", self.addr)
    }

    fn set(&self, m: Mode) {
        self.state.lock().unwrap().mode = Some(m);
    }

    fn received(&self) -> Vec<HttpRequest> {
        self.state.lock().unwrap().received.clone()
    }

    fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }

    fn stalled_now(&self) -> usize {
        self.state.lock().unwrap().stalled_now
    }
}

/// Longer than any retry's backoff (at most 2 min): the tests about retries run on the test clock
/// and move it this far once the receiver is back, so the retry is due at once.
const PAST_BACKOFF: Duration = Duration::from_secs(180);

/// Longer than [`Mode::Busy`]'s `Retry-After`.
const PAST_RETRY_AFTER: Duration = Duration::from_secs(2 * 3600);

/// The shortest real backoff before a retry (5 s, plus jitter).
const MIN_BACKOFF: Duration = Duration::from_secs(5);

/// The timeout in [`dest`]'s config: a stalled attempt fails no sooner.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Waits for the receiver's first request after the clock was moved past the backoff, and fails
/// unless it came sooner than the real backoff allows. The first failed attempt ended no earlier
/// than `failed_after`, so a retry on the real backoff cannot arrive before
/// `failed_after + MIN_BACKOFF`: one that did was made due by the step.
fn first_delivery_made_due_by_the_step(d: &Daemon, hook: &Receiver, failed_after: Instant) {
    d.wait_for(30, "a delivery", || {
        (!hook.received().is_empty()).then_some(())
    });
    let took = failed_after.elapsed();
    assert!(
        took < MIN_BACKOFF,
        "the retry came {took:?} after the first failure could have been: the real backoff, not the \
         clock step, may have sent it\n{}",
        d.log()
    );
}

fn dest(id: &str, kind: &str, url: &str, extra: &str) -> String {
    let secret = if kind == "webhook" {
        "secret = \"s3cret\"\n"
    } else {
        ""
    };
    format!("[[outbound]]\nid = \"{id}\"\nkind = \"{kind}\"\nurl = \"{url}\"\n{secret}timeout = \"{}s\"\n{extra}\n", TIMEOUT.as_secs())
}

fn events(r: &Receiver) -> Vec<(i64, String)> {
    r.received()
        .iter()
        .map(|q| {
            let v: Value = serde_json::from_str(&q.body).unwrap();
            (
                v["incident"]["id"].as_i64().unwrap(),
                v["event"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Verifies the signature the way the README tells receivers to.
fn verify(q: &HttpRequest, secret: &str) {
    let ts = q
        .headers
        .get("x-pagerbox-timestamp")
        .expect("timestamp header");
    let sig = q
        .headers
        .get("x-pagerbox-signature")
        .expect("signature header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", q.body).as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig, &format!("sha256={hex}"));
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..120).contains(&age), "timestamp age {age}");
}

#[test]
fn slack_teams_and_signed_webhook_get_trigger_ack_and_resolve() {
    let slack = Receiver::start(Mode::Ok);
    let teams = Receiver::start(Mode::Ok);
    let hook = Receiver::start(Mode::Ok);
    let d = Daemon::start(&format!(
        "{}{}{}",
        dest("s", "slack", &slack.url(), ""),
        dest("t", "teams", &teams.url(), ""),
        dest("w", "webhook", &hook.url(), "")
    ));
    let id = d.trigger(
        json!({"summary": "disk full <db1> & rising", "service": "db", "dedup_key": "db1"}),
    );
    let (code, _) = d.post_json(
        &format!("/v1/incidents/{id}/acknowledge"),
        json!({"by": "alice"}),
    );
    assert_eq!(code, 200);
    let (code, _) = d.post_json(&format!("/v1/incidents/{id}/resolve"), json!({"by": "bob"}));
    assert_eq!(code, 200);
    for r in [&slack, &teams, &hook] {
        d.wait_for(20, "three notifications", || {
            (r.received().len() >= 3).then_some(())
        });
    }
    let s = slack.received();
    let first: Value = serde_json::from_str(&s[0].body).unwrap();
    assert_eq!(
        first["text"],
        format!("[CRITICAL] #{id} triggered: disk full &lt;db1&gt; &amp; rising")
    );
    assert_eq!(first["blocks"][0]["type"], "header");
    assert_eq!(s[0].headers["content-type"], "application/json");
    let last: Value = serde_json::from_str(&s[2].body).unwrap();
    assert!(last["text"].as_str().unwrap().contains("resolved"));

    let t = teams.received();
    let card: Value = serde_json::from_str(&t[1].body).unwrap();
    assert_eq!(card["type"], "message");
    assert_eq!(
        card["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert!(card["attachments"][0]["content"]["body"][0]["text"]
        .as_str()
        .unwrap()
        .contains("acknowledged"));

    assert_eq!(
        events(&hook),
        vec![
            (id, "incident.triggered".to_string()),
            (id, "incident.acknowledged".to_string()),
            (id, "incident.resolved".to_string())
        ]
    );
    for q in hook.received() {
        verify(&q, "s3cret");
    }
    let ack: Value = serde_json::from_str(&hook.received()[1].body).unwrap();
    assert_eq!(ack["incident"]["acknowledged"]["by"], "alice");
    assert_eq!(ack["incident"]["status"], "acknowledged");
    assert!(ack["sent_at"].is_string());
    d.wait_for(10, "sent notes", || {
        (d.timeline(id)
            .iter()
            .filter(|(k, _)| k == "outbound-sent")
            .count()
            == 9)
            .then_some(())
    });
    // The URLs are credentials: never in the log.
    assert!(!d.log().contains("secret-part"), "{}", d.log());
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_failing_receiver_gets_everything_later_in_order() {
    let hook = Receiver::start(Mode::Status(500));
    let mut d = Daemon::start_clocked(&dest("w", "webhook", &hook.url(), ""));
    let start = Instant::now();
    let a =
        d.trigger(json!({"summary": "disk full <a> & rising", "service": "db", "dedup_key": "a"}));
    let (code, _) = d.post_json(&format!("/v1/incidents/{a}/resolve"), json!({}));
    assert_eq!(code, 200);
    let b =
        d.trigger(json!({"summary": "disk full <b> & rising", "service": "db", "dedup_key": "b"}));
    d.wait_for(10, "a failed attempt", || {
        d.has_event(a, "outbound-retry").then_some(())
    });
    assert!(d
        .timeline(a)
        .iter()
        .any(|(k, m)| k == "outbound-retry" && m.contains("HTTP 500")));
    hook.set(Mode::Ok);
    d.advance(PAST_BACKOFF);
    first_delivery_made_due_by_the_step(&d, &hook, start);
    d.wait_for(30, "catch-up", || {
        (hook.received().len() >= 3).then_some(())
    });
    assert_eq!(
        events(&hook),
        vec![
            (a, "incident.triggered".to_string()),
            (a, "incident.resolved".to_string()),
            (b, "incident.triggered".to_string())
        ]
    );
    // /metrics counts the attempts per destination: three sent, the 500s as retries. The last
    // one is counted once the daemon has read the receiver's answer, a moment after the receiver
    // has the request: wait for it.
    let scrape = || {
        ureq::get(&d.url("/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let count = |text: &str, outcome: &str| -> f64 {
        let prefix = format!(
            "pagerbox_outbound_total{{destination=\"w\",kind=\"webhook\",outcome=\"{outcome}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0.0)
    };
    let text = d.wait_for(10, "three sent in /metrics", || {
        let text = scrape();
        (count(&text, "sent") >= 3.0).then_some(text)
    });
    let count = |outcome: &str| count(&text, outcome);
    assert_eq!(count("sent"), 3.0, "{text}");
    assert!(count("retry") >= 1.0, "{text}");
    assert_eq!(count("failed"), 0.0, "{text}");
}

#[test]
fn a_refusal_shows_the_receivers_answer_but_no_secret() {
    // Slack's answer to a payload it cannot take, with an echo of the secret URL path.
    let hook = Receiver::start(Mode::Answer(
        400,
        "invalid_blocks\r\nno such hook: /hook/T000/secret-part\r\n\u{7}",
    ));
    let d = Daemon::start(&dest("s", "slack", &hook.url(), ""));
    let a =
        d.trigger(json!({"summary": "disk full <a> & rising", "service": "db", "dedup_key": "a"}));
    let note = d.wait_for(10, "the refusal on the timeline", || {
        d.timeline(a)
            .into_iter()
            .find(|(k, _)| k == "outbound-failed")
            .map(|(_, m)| m)
    });
    assert!(
        note.contains(
            "HTTP 400; the receiver answered: \"invalid_blocks no such hook: <redacted>\""
        ),
        "{note}"
    );
    assert!(!note.contains("secret-part"), "{note}");
    assert!(!note.contains("hdr-secret"), "{note}");
    // The log says it too, as loudly, and never the secret.
    d.wait_for(5, "the refusal in the log", || {
        d.log().contains("invalid_blocks").then_some(())
    });
    assert!(!d.log().contains("secret-part"), "{}", d.log());

    // A 5xx is retried, and its answer is on the retry note.
    hook.set(Mode::Answer(503, "upstream overloaded, try later"));
    let b =
        d.trigger(json!({"summary": "disk full <b> & rising", "service": "db", "dedup_key": "b"}));
    let note = d.wait_for(10, "the retry note", || {
        d.timeline(b)
            .into_iter()
            .find(|(k, _)| k == "outbound-retry")
            .map(|(_, m)| m)
    });
    assert!(
        note.contains("HTTP 503; the receiver answered: \"upstream overloaded, try later\""),
        "{note}"
    );
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_stalled_receiver_times_out_and_is_retried() {
    let hook = Receiver::start(Mode::Stall);
    let mut d = Daemon::start_clocked(&dest("w", "webhook", &hook.url(), ""));
    let start = Instant::now();
    let a =
        d.trigger(json!({"summary": "disk full <a> & rising", "service": "db", "dedup_key": "a"}));
    d.wait_for(10, "a timed-out attempt", || {
        d.timeline(a)
            .iter()
            .any(|(k, m)| k == "outbound-retry" && m.contains("timed out"))
            .then_some(())
    });
    hook.set(Mode::Ok);
    d.advance(PAST_BACKOFF);
    // The first attempt started after `start` and failed no sooner than its timeout.
    first_delivery_made_due_by_the_step(&d, &hook, start + TIMEOUT);
    assert_eq!(events(&hook), vec![(a, "incident.triggered".to_string())]);
    assert!(hook.attempts() >= 2);
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn a_receiver_that_is_down_catches_up_when_it_comes_back() {
    let addr = free_port();
    let url = format!("http://{addr}/hook");
    let mut d = Daemon::start_clocked(&dest("w", "webhook", &url, ""));
    let start = Instant::now();
    let a =
        d.trigger(json!({"summary": "disk full <a> & rising", "service": "db", "dedup_key": "a"}));
    let b =
        d.trigger(json!({"summary": "disk full <b> & rising", "service": "db", "dedup_key": "b"}));
    d.wait_for(10, "a refused attempt", || {
        d.has_event(a, "outbound-retry").then_some(())
    });
    let hook = Receiver::start_on(TcpListener::bind(addr).unwrap(), Mode::Ok);
    d.advance(PAST_BACKOFF);
    first_delivery_made_due_by_the_step(&d, &hook, start);
    d.wait_for(30, "catch-up", || {
        (hook.received().len() >= 2).then_some(())
    });
    assert_eq!(
        events(&hook),
        vec![
            (a, "incident.triggered".to_string()),
            (b, "incident.triggered".to_string())
        ]
    );
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn over_max_queued_the_oldest_are_dropped_with_a_timeline_note() {
    let addr = free_port();
    let url = format!("http://{addr}/hook");
    let mut d = Daemon::start_clocked(&dest("w", "webhook", &url, "max_queued = 2"));
    let start = Instant::now();
    let ids: Vec<i64> = (0..5).map(|i| d.trigger(json!({"summary": format!("disk full <k{i}> & rising"), "service": "db", "dedup_key": format!("k{i}")}))).collect();
    d.wait_for(10, "a drop note", || {
        d.has_event(ids[0], "outbound-dropped").then_some(())
    });
    let note = d
        .timeline(ids[0])
        .into_iter()
        .find(|(k, _)| k == "outbound-dropped")
        .unwrap()
        .1;
    assert!(note.contains("dropped"), "{note}");
    assert!(!d.has_event(ids[4], "outbound-dropped"));
    let hook = Receiver::start_on(TcpListener::bind(addr).unwrap(), Mode::Ok);
    d.advance(PAST_BACKOFF);
    first_delivery_made_due_by_the_step(&d, &hook, start);
    d.wait_for(30, "the newest delivered", || {
        events(&hook)
            .iter()
            .any(|(i, _)| *i == ids[4])
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = events(&hook);
    // At most the bound plus the one that was being sent when the others came in.
    assert!(got.len() <= 3, "{got:?}");
    assert!(!got.iter().any(|(i, _)| *i == ids[0]), "{got:?}");
    // Survivors arrive oldest first.
    let order: Vec<i64> = got.iter().map(|(i, _)| *i).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn queued_notifications_survive_kill_9() {
    // Asked to come back in an hour, so only moving the clock past that can deliver within
    // the test: a restart alone must not.
    let hook = Receiver::start(Mode::Busy);
    let mut d = Daemon::start_clocked(&dest("w", "webhook", &hook.url(), ""));
    let a =
        d.trigger(json!({"summary": "disk full <a> & rising", "service": "db", "dedup_key": "a"}));
    let b =
        d.trigger(json!({"summary": "disk full <b> & rising", "service": "db", "dedup_key": "b"}));
    d.wait_for(10, "a failed attempt", || {
        d.has_event(a, "outbound-retry").then_some(())
    });
    d.kill9();
    hook.set(Mode::Ok);
    // Down past the retry's due time.
    d.advance(PAST_RETRY_AFTER);
    d.spawn();
    d.wait_for(30, "delivery after restart", || {
        (hook.received().len() >= 2).then_some(())
    });
    assert_eq!(
        events(&hook),
        vec![
            (a, "incident.triggered".to_string()),
            (b, "incident.triggered".to_string())
        ]
    );
}

const ALICE: &str = "+4915100000011";

fn paging_config(sim: &ExternalSim, outbound: &str) -> String {
    format!(
        r#"
{modem}
[paging]
# Each incident gets its own page (no grouping into a digest), so both pages are comparable.
group_window = "0s"

{alice}
[[routes]]
id = "default"
policy = "default"

{outbound}
"#,
        modem = util::fast_modem(sim),
        alice = util::alice_paged_by("default", ALICE, "10m"),
    )
}

#[test]
fn paging_is_not_delayed_while_an_outbound_receiver_hangs() {
    let sim = ExternalSim::start();
    let hook = Receiver::start(Mode::Ok);
    // A long timeout: the receiver hangs for the whole page.
    let d = Daemon::start(&paging_config(
        &sim,
        &format!(
            "[[outbound]]\nid = \"w\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"k\"\ntimeout = \"60s\"\n",
            hook.url()
        ),
    ));
    d.wait_for(20, "modem up", || {
        let (_, h) = d.get("/healthz");
        (h["modem"]["state"] == "up").then_some(())
    });
    // Baseline: receiver answering.
    let t0 = Instant::now();
    d.trigger(json!({"summary": "disk full <baseline> & rising", "service": "db", "dedup_key": "baseline"}));
    d.wait_for(20, "baseline sms", || {
        (sim.sms_to(ALICE).len() == 1).then_some(())
    });
    let baseline = t0.elapsed();
    d.wait_for(10, "baseline webhook", || {
        (!hook.received().is_empty()).then_some(())
    });

    // Now the receiver accepts and never answers.
    hook.set(Mode::Stall);
    let t1 = Instant::now();
    d.trigger(json!({"summary": "disk full <while-hanging> & rising", "service": "db", "dedup_key": "while-hanging"}));
    d.wait_for(20, "sms while the receiver hangs", || {
        (sim.sms_to(ALICE).len() == 2).then_some(())
    });
    let hanging = t1.elapsed();
    // The webhook for this incident is still hanging when the SMS is already at the network.
    d.wait_for(5, "the hanging request", || {
        (hook.stalled_now() == 1).then_some(())
    });
    assert!(
        hanging < baseline * 3 + Duration::from_secs(2),
        "baseline {baseline:?}, while hanging {hanging:?}"
    );
    eprintln!("page latency: baseline {baseline:?}, receiver hanging {hanging:?}");
    hook.set(Mode::Ok);
}
