//! Sender tests: fake transports against a real store.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::TimeZone;

use super::*;
use crate::clock::SystemClock;
use crate::store::outbox::NewPage;
use crate::store::AlertInput;

const LEASE: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"
[paging]
max_attempts = 2
channel_timeout = "5m"
channel_start_wait = "0s"
[[users]]
id = "alice"
phone = "+4915100000001"
email = "alice@example.org"
"#;

fn config() -> Arc<Config> {
    Arc::new(
        Config::parse(CONFIG, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    )
}

/// A transport whose answers a test scripts.
struct Fake {
    channel: Channel,
    down: Mutex<Option<String>>,
    fail: AtomicUsize,
    sent: Mutex<Vec<(String, String)>>,
    /// Pushed on [`Fake::set_down`], as the modem's health watch is.
    changes: watch::Sender<Health>,
}

impl Fake {
    fn new(channel: Channel) -> Arc<Fake> {
        Arc::new(Fake {
            channel,
            down: Mutex::new(None),
            fail: AtomicUsize::new(0),
            sent: Mutex::new(vec![]),
            changes: watch::channel(fake_health(None)).0,
        })
    }

    /// Takes the channel down (`Some(why)`) or brings it back, and says so on its watch.
    fn set_down(&self, why: Option<&str>) {
        *self.down.lock().unwrap() = why.map(str::to_string);
        self.changes.send_replace(fake_health(why));
    }
}

fn fake_health(down: Option<&str>) -> Health {
    Health {
        state: if down.is_some() {
            crate::modem::HealthState::Down
        } else {
            crate::modem::HealthState::Up
        },
        reason: down.unwrap_or("ready").to_string(),
        since: crate::clock::system_now(),
        signal_dbm: None,
        registered: down.is_none(),
        sim_ready: true,
        ..Health::starting(crate::clock::system_now())
    }
}

impl Transport for Fake {
    fn channel(&self) -> Channel {
        self.channel
    }
    fn ready(&self) -> Result<(), Unavailable> {
        match &*self.down.lock().unwrap() {
            Some(w) => Err(Unavailable::ModemDown { reason: w.clone() }),
            None => Ok(()),
        }
    }
    fn readiness_changes(&self) -> Option<watch::Receiver<Health>> {
        Some(self.changes.subscribe())
    }
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(SendError::Modem(Arc::new(ModemError::Part {
                    part: 1,
                    total: 1,
                    source: crate::modem::engine::EngineError::Cms {
                        command: "AT+CMGS".into(),
                        code: crate::modem::at::CmsError::Code(500),
                    },
                })));
            }
            self.sent
                .lock()
                .unwrap()
                .push((msg.page.address.clone(), msg.text.clone()));
            Ok(Delivered {
                reference: Some("7".into()),
                detail: "ok".into(),
                acknowledged: false,
            })
        })
    }
}

fn page(channel: Channel) -> Page {
    Page {
        id: 1,
        kind: PageKind::Page,
        incident_id: Some(1),
        user_id: Some("alice".into()),
        channel,
        address: "+4915100000001".into(),
        subject: None,
        body: "x".into(),
        written_for: Some(channel),
        priority: 3,
        due_at: crate::clock::system_now(),
        attempts: 1,
        channel_attempts: 1,
        channel_since: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        state: crate::store::kinds::OutboxState::Sending,
        reference: None,
        created_at: crate::clock::system_now(),
        items: vec![],
    }
}

#[test]
fn retries_then_falls_through_in_order_then_starts_over() {
    let cfg = config();
    let all = [Channel::Sms, Channel::Voice, Channel::Email];
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
    let p = page(Channel::Sms);
    assert!(matches!(
        after_failure(&p, "e", true, false, &cfg, &all, now),
        Attempt::Retry { .. }
    ));
    // Attempts used up: voice next.
    let mut p2 = p.clone();
    p2.channel_attempts = 2;
    assert!(matches!(
        after_failure(&p2, "e", true, false, &cfg, &all, now),
        Attempt::FallThrough {
            channel: Channel::Voice,
            ..
        }
    ));
    // Channel down: no retry, straight on.
    assert!(matches!(
        after_failure(&p, "e", true, true, &cfg, &all, now),
        Attempt::FallThrough {
            channel: Channel::Voice,
            ..
        }
    ));
    // Time on the channel used up.
    let late = now + chrono::Duration::minutes(10);
    assert!(matches!(
        after_failure(&p, "e", true, false, &cfg, &all, late),
        Attempt::FallThrough {
            channel: Channel::Voice,
            ..
        }
    ));
    // Email failing last: start over at SMS, nothing dropped.
    let mut e = page(Channel::Email);
    e.channel_attempts = 2;
    match after_failure(&e, "e", true, false, &cfg, &all, now) {
        Attempt::FallThrough {
            channel: Channel::Sms,
            address,
            ..
        } => assert_eq!(address, "+4915100000001"),
        other => panic!("{other:?}"),
    }
    // Without an email transport, voice falls back to SMS.
    let mut v = page(Channel::Voice);
    v.channel_attempts = 2;
    assert!(matches!(
        after_failure(
            &v,
            "e",
            true,
            false,
            &cfg,
            &[Channel::Sms, Channel::Voice],
            now
        ),
        Attempt::FallThrough {
            channel: Channel::Sms,
            ..
        }
    ));
    // A reply has only its own address: it retries, it never moves to email.
    let mut r = page(Channel::Sms);
    r.kind = PageKind::Reply;
    r.channel_attempts = 5;
    assert!(matches!(
        after_failure(&r, "e", true, false, &cfg, &all, now),
        Attempt::Retry { .. }
    ));
}

/// A stopped modem task (shutdown, or a crash the supervisor handles) is a retryable failure:
/// a person reachable only by SMS keeps their page instead of losing it for good.
#[test]
fn a_stopped_modem_never_fails_a_page_for_good() {
    let cfg = config();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
    let err = crate::modem::ModemError::Stopped;
    let mut p = page(Channel::Sms);
    p.channel_attempts = 5;
    let outcome = after_failure(
        &p,
        &err.to_string(),
        err.is_retryable(),
        false,
        &cfg,
        &[Channel::Sms],
        now,
    );
    assert!(matches!(outcome, Attempt::Retry { .. }), "{outcome:?}");
    // A permanent error on the only channel does end it (the contrast).
    let bad = crate::modem::ModemError::InvalidNumber { number: "x".into() };
    assert!(matches!(
        after_failure(
            &p,
            &bad.to_string(),
            bad.is_retryable(),
            false,
            &cfg,
            &[Channel::Sms],
            now
        ),
        Attempt::Failed { .. }
    ));
}

/// An SMS the network took but could not deliver moves on at once, even with its SMS attempts
/// unspent: the centre already kept trying for as long as it keeps a message.
#[test]
fn an_undelivered_sms_moves_on_unless_sms_is_all_there_is() {
    let cfg = config();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
    let all = [Channel::Sms, Channel::Voice, Channel::Email];
    let p = page(Channel::Sms);
    assert_eq!(p.channel_attempts, 1, "attempts left on SMS");
    for permanent in [false, true] {
        match after_undelivered(&p, "Failed (status 0x46)", permanent, &cfg, &all, now) {
            Attempt::FallThrough {
                channel: Channel::Voice,
                due_at,
                error,
                ..
            } => {
                assert_eq!(due_at, now);
                assert_eq!(error, "not delivered: Failed (status 0x46)");
            }
            other => panic!("{other:?}"),
        }
    }
    // SMS the only channel: sent again after a pause while the phone may come back...
    match after_undelivered(
        &p,
        "Failed (status 0x62)",
        false,
        &cfg,
        &[Channel::Sms],
        now,
    ) {
        Attempt::Retry { retry_at, .. } => assert!(retry_at > now),
        other => panic!("{other:?}"),
    }
    // ...but a number that can never take it ends the page, as a permanent send error does.
    assert!(matches!(
        after_undelivered(&p, "Failed (status 0x41)", true, &cfg, &[Channel::Sms], now),
        Attempt::Failed { .. }
    ));
}

/// A failing page goes on only where the engine would have sent it in the first place: a
/// warning (low urgency) never turns into a call, and a route's channel list holds.
#[test]
fn a_page_falls_through_only_to_channels_its_incident_may_use() {
    let cfg = Config::parse(
        &format!(
            "{CONFIG}\n[[policies]]\nid = \"p\"\n[[policies.steps]]\nusers = [\"alice\"]\n\
             [[routes]]\nid = \"mail\"\npolicy = \"p\"\nchannels = [\"email\"]\n"
        ),
        "t.toml",
        Path::new("/"),
    )
    .unwrap()
    .config;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
    let all = [Channel::Sms, Channel::Voice, Channel::Email];
    let inc = |severity, route: Option<&str>| Incident {
        id: 1,
        dedup_key: "k".into(),
        status: Status::Triggered,
        severity,
        summary: "disk".into(),
        source: None,
        service: None,
        route: route.map(String::from),
        details: serde_json::Value::Null,
        links: vec![],
        alert_count: 1,
        first_seen: now,
        last_seen: now,
        acknowledged: None,
        resolved: None,
    };
    let mut p = page(Channel::Sms);
    p.channel_attempts = 2;
    use crate::incident::Severity::{Critical, Warning};
    // Critical: SMS -> voice, as ever.
    let crit = way_on(&p, &[inc(Critical, None)], &cfg, &all);
    assert_eq!(crit, all);
    // A warning skips the call and goes to email.
    let warn = way_on(&p, &[inc(Warning, None)], &cfg, &all);
    assert_eq!(warn, [Channel::Sms, Channel::Email]);
    match after_failure(&p, "e", true, false, &cfg, &warn, now) {
        Attempt::FallThrough { channel, .. } => assert_eq!(channel, Channel::Email),
        other => panic!("{other:?}"),
    }
    // A digest with one critical incident among warnings may call.
    let mixed = way_on(&p, &[inc(Warning, None), inc(Critical, None)], &cfg, &all);
    assert_eq!(mixed, all);
    // An email-only route's page stays on email: retried there, never texted.
    let mut e = page(Channel::Email);
    e.channel_attempts = 2;
    let mail = way_on(&e, &[inc(Critical, Some("mail"))], &cfg, &all);
    assert_eq!(mail, [Channel::Email]);
    assert!(matches!(
        after_failure(&e, "e", true, false, &cfg, &mail, now),
        Attempt::Retry { .. }
    ));
}

async fn setup() -> (Store, Arc<Config>, i64) {
    let dir = tempfile::tempdir().unwrap().keep();
    let store = Store::open(&dir.join("db"), Arc::new(SystemClock)).unwrap();
    let input = AlertInput::test_trigger("k", "db");
    let id = store
        .apply_alert(input)
        .await
        .unwrap()
        .incident()
        .unwrap()
        .id;
    (store, config(), id)
}

async fn queue(store: &Store, id: i64, channel: Channel, address: &str) {
    let address = address.to_string();
    store
        .call(move |c, now| {
            Ok(outbox::enqueue(
                c,
                &NewPage {
                    kind: PageKind::Page,
                    incident_id: Some(id),
                    user_id: Some("alice".into()),
                    channel,
                    address,
                    subject: None,
                    body: "#1 CRIT db: db down".into(),
                    priority: 3,
                    due_at: now,
                },
                now,
            )?)
        })
        .await
        .unwrap();
}

async fn states(store: &Store) -> Vec<(String, String)> {
    store
        .call(|c, _| {
            Ok(outbox::all(c)?
                .into_iter()
                .map(|p| (p.channel.to_string(), p.state.as_str().to_string()))
                .collect())
        })
        .await
        .unwrap()
}

/// The paging-health task the daemon runs beside the senders, which alone publishes the verdict.
fn paging_health(
    all: &Arc<Vec<Arc<dyn Transport>>>,
    tx: Arc<watch::Sender<PagingHealth>>,
    shutdown: &CancellationToken,
) -> crate::notify::paging_health::Recheck {
    let recheck = crate::notify::paging_health::Recheck::default();
    tokio::spawn(crate::notify::paging_health::run(
        all.clone(),
        None,
        tx,
        recheck.clone(),
        crate::supervisor::Heartbeat::detached("paging-health"),
        shutdown.clone(),
    ));
    recheck
}

#[tokio::test]
async fn sms_down_page_arrives_by_email_and_sms_is_used_again_when_it_returns() {
    let (store, cfg, id) = setup().await;
    let sms = Fake::new(Channel::Sms);
    let voice = Fake::new(Channel::Voice);
    let email = Fake::new(Channel::Email);
    *sms.down.lock().unwrap() = Some("no SIM".into());
    *voice.down.lock().unwrap() = Some("no SIM".into());
    let all: Arc<Vec<Arc<dyn Transport>>> =
        Arc::new(vec![sms.clone(), voice.clone(), email.clone()]);
    let shutdown = CancellationToken::new();
    let mut health_rx = spawn_senders(&all, &store, cfg.clone(), &shutdown);
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    for _ in 0..200 {
        if !email.sent.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(email.sent.lock().unwrap()[0].0, "alice@example.org");
    assert!(sms.sent.lock().unwrap().is_empty());
    assert_eq!(
        states(&store).await,
        [("email".to_string(), "sent".to_string())]
    );
    assert_eq!(health_rx.borrow_and_update().ready, [Channel::Email]);
    // The modem comes back: the next page goes by SMS again.
    *sms.down.lock().unwrap() = None;
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    for _ in 0..200 {
        if !sms.sent.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sms.sent.lock().unwrap().len(), 1);
    let (i, tl) = store.incident(id).await.unwrap().unwrap();
    assert_eq!(i.id, id);
    assert!(tl.iter().any(|e| e.kind == "page-fallback"), "{tl:#?}");
    shutdown.cancel();
}

/// A warning whose SMS cannot go skips the call (low urgency never calls) and arrives by email.
#[tokio::test]
async fn a_warning_falls_through_past_voice_to_email() {
    let dir = tempfile::tempdir().unwrap().keep();
    let store = Store::open(&dir.join("db"), Arc::new(SystemClock)).unwrap();
    let mut input = AlertInput::test_trigger("w", "disk");
    input.severity = crate::incident::Severity::Warning;
    let id = store
        .apply_alert(input)
        .await
        .unwrap()
        .incident()
        .unwrap()
        .id;
    let (sms, voice, email) = (
        Fake::new(Channel::Sms),
        Fake::new(Channel::Voice),
        Fake::new(Channel::Email),
    );
    *sms.down.lock().unwrap() = Some("no SIM".into());
    let all: Arc<Vec<Arc<dyn Transport>>> =
        Arc::new(vec![sms.clone(), voice.clone(), email.clone()]);
    let shutdown = CancellationToken::new();
    let _health = spawn_senders(&all, &store, config(), &shutdown);
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    for _ in 0..200 {
        if !email.sent.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(email.sent.lock().unwrap().len(), 1);
    assert!(voice.sent.lock().unwrap().is_empty(), "never called");
    shutdown.cancel();
}

#[tokio::test]
async fn acknowledged_incident_is_not_paged() {
    let (store, cfg, id) = setup().await;
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    store
        .acknowledge(id, Actor::new("alice", "http"))
        .await
        .unwrap();
    // The ack cancelled the queued row; a row claimed later for an acked incident is cancelled too.
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    let sms = Fake::new(Channel::Sms);
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone()]);
    let p = store
        .call(|c, now| Ok(outbox::claim(c, Channel::Sms, now, LEASE)?))
        .await
        .unwrap()
        .unwrap();
    let metrics = crate::metrics::Metrics::new(crate::clock::system_now());
    handle(
        &*sms,
        &all,
        &store,
        cfg,
        p,
        &metrics,
        &CancellationToken::new(),
    )
    .await;
    assert!(sms.sent.lock().unwrap().is_empty());
    assert_eq!(
        states(&store).await,
        [
            ("sms".to_string(), "cancelled".to_string()),
            ("sms".to_string(), "cancelled".to_string())
        ]
    );
}

/// A reload between queueing and sending: the page goes to the number the config has now, and
/// a person the config no longer has is not paged at all.
#[tokio::test]
async fn a_page_goes_to_the_person_as_the_config_has_them_now() {
    let (store, _, id) = setup().await;
    let sms = Fake::new(Channel::Sms);
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone()]);
    let metrics = crate::metrics::Metrics::new(crate::clock::system_now());
    let send_with = |cfg: Arc<Config>| {
        let (store, sms, all, metrics) = (store.clone(), sms.clone(), all.clone(), &metrics);
        async move {
            queue(&store, id, Channel::Sms, "+4915100000001").await;
            let p = store
                .call(|c, now| Ok(outbox::claim(c, Channel::Sms, now, LEASE)?))
                .await
                .unwrap()
                .unwrap();
            handle(
                &*sms,
                &all,
                &store,
                cfg,
                p,
                metrics,
                &CancellationToken::new(),
            )
            .await;
        }
    };
    let new_number = Config::parse(
        &CONFIG.replace("+4915100000001", "+4915100000099"),
        "t.toml",
        Path::new("/"),
    )
    .unwrap()
    .config;
    send_with(Arc::new(new_number)).await;
    assert_eq!(sms.sent.lock().unwrap()[0].0, "+4915100000099");
    let recorded = store
        .call(|c, _| Ok(outbox::all(c)?[0].address.clone()))
        .await
        .unwrap();
    assert_eq!(recorded, "+4915100000099", "the row says where it went");
    let without_alice = Config::parse(
        &CONFIG.replace("id = \"alice\"", "id = \"carol\""),
        "t.toml",
        Path::new("/"),
    )
    .unwrap()
    .config;
    send_with(Arc::new(without_alice)).await;
    assert_eq!(
        sms.sent.lock().unwrap().len(),
        1,
        "nobody by that name to page"
    );
    assert_eq!(states(&store).await[1].1, "failed");
}

/// Regression: with the modem down and no email, a page cycled SMS -> voice -> SMS with no pause
/// (found when a benchmark's simulator died and the daemon spun at 100% CPU).
#[tokio::test]
async fn all_channels_down_waits_between_rounds_instead_of_spinning() {
    let (store, cfg, id) = setup().await;
    let sms = Fake::new(Channel::Sms);
    let voice = Fake::new(Channel::Voice);
    *sms.down.lock().unwrap() = Some("not registered".into());
    *voice.down.lock().unwrap() = Some("not registered".into());
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone(), voice.clone()]);
    let shutdown = CancellationToken::new();
    let health_rx = spawn_senders(&all, &store, cfg, &shutdown);
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    let (_, tl) = store.incident(id).await.unwrap().unwrap();
    let tries = tl
        .iter()
        .filter(|e| e.kind == "page-fallback" || e.kind == "page-retry")
        .count();
    assert!(
        (1..=3).contains(&tries),
        "one round, then a pause: {tries} attempts in 1 s"
    );
    assert_eq!(
        states(&store).await,
        [("sms".to_string(), "pending".to_string())]
    );
    assert!(health_rx.borrow().impaired());
}

/// Each recorded attempt is counted for `/metrics`; a sent page's latency is observed once.
#[tokio::test]
async fn attempts_are_counted_and_sent_pages_timed() {
    let (store, cfg, id) = setup().await;
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    let sms = Fake::new(Channel::Sms);
    sms.fail.store(1, Ordering::SeqCst);
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone()]);
    let metrics = crate::metrics::Metrics::new(crate::clock::system_now());
    // First attempt fails (retry), the second is sent; the retry is due at once for the test.
    for _ in 0..2 {
        let p = store
            .call(|c, now| {
                outbox::testing::all_due(c)?;
                Ok(outbox::claim(c, Channel::Sms, now, LEASE)?)
            })
            .await
            .unwrap()
            .expect("a due page");
        handle(
            &*sms,
            &all,
            &store,
            cfg.clone(),
            p,
            &metrics,
            &CancellationToken::new(),
        )
        .await;
    }
    assert_eq!(sms.sent.lock().unwrap().len(), 1);
    let text = metrics.encode(&crate::metrics::Snapshot::default());
    for line in [
        r#"pagerbox_pages_total{channel="sms",outcome="retry"} 1"#,
        r#"pagerbox_pages_total{channel="sms",outcome="sent"} 1"#,
        r#"pagerbox_page_latency_seconds_count{channel="sms"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

fn config_with(extra_paging: &str) -> Arc<Config> {
    let text = CONFIG.replace("channel_start_wait = \"0s\"\n", extra_paging);
    Arc::new(
        Config::parse(&text, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    )
}

/// A sender per transport in `all` and the paging-health task beside them, as the daemon runs
/// them, until `shutdown`; returns the paging verdict they publish.
fn spawn_senders(
    all: &Arc<Vec<Arc<dyn Transport>>>,
    store: &Store,
    cfg: Arc<Config>,
    shutdown: &CancellationToken,
) -> watch::Receiver<PagingHealth> {
    let (cfg_tx, cfg_rx) = watch::channel(cfg);
    // Keep the config watch open for the senders' lifetime.
    std::mem::forget(cfg_tx);
    let (health_tx, health_rx) = crate::notify::paging_health::channel(all);
    let recheck = paging_health(all, health_tx, shutdown);
    for t in all.iter() {
        tokio::spawn(run(
            t.clone(),
            all.clone(),
            store.clone(),
            cfg_rx.clone(),
            recheck.clone(),
            crate::supervisor::Heartbeat::detached("sender"),
            shutdown.clone(),
            crate::metrics::Metrics::new(crate::clock::system_now()),
        ));
    }
    health_rx
}

async fn wait_sent(t: &Fake, within: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if !t.sent.lock().unwrap().is_empty() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// After a start, a page for a channel that is still starting waits for it (not for email),
/// and goes out as soon as the channel is ready: no poll or backoff in between.
#[tokio::test]
async fn a_page_waits_for_a_starting_channel_then_goes_out_at_once() {
    let (store, _, id) = setup().await;
    let sms = Fake::new(Channel::Sms);
    let voice = Fake::new(Channel::Voice);
    let email = Fake::new(Channel::Email);
    sms.set_down(Some("starting"));
    voice.set_down(Some("starting"));
    let all: Arc<Vec<Arc<dyn Transport>>> =
        Arc::new(vec![sms.clone(), voice.clone(), email.clone()]);
    let shutdown = CancellationToken::new();
    spawn_senders(
        &all,
        &store,
        config_with("channel_start_wait = \"60s\"\n"),
        &shutdown,
    );
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        email.sent.lock().unwrap().is_empty(),
        "no email while the modem starts"
    );
    assert_eq!(
        states(&store).await,
        [("sms".to_string(), "pending".to_string())]
    );
    sms.set_down(None);
    voice.set_down(None);
    let took = wait_sent(&sms, Duration::from_secs(5))
        .await
        .expect("sent by SMS");
    assert!(
        took < Duration::from_millis(500),
        "sent {took:?} after the modem was up"
    );
    assert!(email.sent.lock().unwrap().is_empty());
    shutdown.cancel();
}

/// The wait for a starting channel is bounded: past `channel_start_wait` the page falls through.
#[tokio::test]
async fn a_channel_that_never_starts_is_waited_for_only_so_long() {
    let (store, _, id) = setup().await;
    let sms = Fake::new(Channel::Sms);
    let email = Fake::new(Channel::Email);
    sms.set_down(Some("starting"));
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone(), email.clone()]);
    let shutdown = CancellationToken::new();
    spawn_senders(
        &all,
        &store,
        config_with("channel_start_wait = \"300ms\"\n"),
        &shutdown,
    );
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    let took = wait_sent(&email, Duration::from_secs(5))
        .await
        .expect("fell through to email");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(sms.sent.lock().unwrap().is_empty());
    shutdown.cancel();
}

/// A page backing off because its channels are down (no email) is woken the moment the channel
/// comes back, instead of waiting out its backoff.
#[tokio::test]
async fn a_channel_that_comes_back_wakes_its_backing_off_pages() {
    let (store, cfg, id) = setup().await;
    let sms = Fake::new(Channel::Sms);
    let voice = Fake::new(Channel::Voice);
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone(), voice.clone()]);
    let shutdown = CancellationToken::new();
    spawn_senders(&all, &store, cfg, &shutdown);
    // Up first, then an outage.
    tokio::time::sleep(Duration::from_millis(50)).await;
    sms.set_down(Some("not registered"));
    voice.set_down(Some("not registered"));
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    // It goes round SMS -> voice and back to SMS with a pause of 10 s or more.
    let due_later = async {
        loop {
            let due: Option<i64> = store
                .call(|c, now| {
                    Ok(outbox::testing::retry_wait(c, Channel::Sms, now)
                        .ok()
                        .flatten())
                })
                .await
                .unwrap();
            if due.is_some_and(|d| d > 5_000) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), due_later)
        .await
        .expect("the page backs off");
    sms.set_down(None);
    voice.set_down(None);
    let took = wait_sent(&sms, Duration::from_secs(5))
        .await
        .expect("woken and sent");
    assert!(
        took < Duration::from_millis(500),
        "sent {took:?} after the channel came back"
    );
    shutdown.cancel();
}

/// A sender that claims a row whose outcome was never recorded (lease run out) sends it again
/// and records it; the page does not stay in `sending`.
#[tokio::test]
async fn a_row_stuck_in_sending_is_sent_again_after_its_lease() {
    let (store, cfg, id) = setup().await;
    queue(&store, id, Channel::Sms, "+4915100000001").await;
    // An attempt whose outcome was never recorded, its lease already over.
    store
        .call(|c, now| {
            let p = outbox::claim(c, Channel::Sms, now, Duration::ZERO)?;
            assert!(p.is_some());
            Ok(())
        })
        .await
        .unwrap();
    let sms = Fake::new(Channel::Sms);
    let all: Arc<Vec<Arc<dyn Transport>>> = Arc::new(vec![sms.clone()]);
    let shutdown = CancellationToken::new();
    spawn_senders(&all, &store, cfg, &shutdown);
    wait_sent(&sms, Duration::from_secs(5))
        .await
        .expect("sent again");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        states(&store).await,
        [("sms".to_string(), "sent".to_string())]
    );
    let (_, tl) = store.incident(id).await.unwrap().unwrap();
    assert!(
        tl.iter()
            .any(|e| e.kind == "page-retry" && e.message.contains("never recorded")),
        "{tl:#?}"
    );
    shutdown.cancel();
}

#[test]
fn an_email_is_sent_once_per_person_per_step() {
    let step = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let inc = Incident {
        id: 1,
        dedup_key: "k".into(),
        status: Status::Triggered,
        severity: crate::incident::Severity::Critical,
        summary: "db down".into(),
        source: None,
        service: None,
        route: None,
        details: serde_json::Value::Null,
        links: vec![],
        alert_count: 1,
        first_seen: step,
        last_seen: step,
        acknowledged: None,
        resolved: None,
    };
    let ev = |at_s: i64, kind: &str, message: &str| TimelineEvent {
        id: 1,
        at: step + chrono::Duration::seconds(at_s),
        kind: String::from(kind).into(),
        actor: None,
        via: None,
        message: message.into(),
        data: serde_json::Value::Null,
    };
    let mut email = page(Channel::Email);
    email.created_at = step;
    // The SMS page fell through to email and went out; the voice page falls through next.
    let open = vec![(
        inc.clone(),
        vec![ev(
            30,
            "page-sent",
            "email to alice sent (attempt 1): 250 ok",
        )],
    )];
    let why = emailed_in_this_step(&email, &open).expect("the second email is not sent");
    assert!(why.contains("already went out in this step"), "{why}");
    // An email from an earlier step does not count: this step's email goes out.
    let earlier = vec![(
        inc.clone(),
        vec![ev(
            -600,
            "page-sent",
            "email to alice sent (attempt 1): 250 ok",
        )],
    )];
    assert_eq!(emailed_in_this_step(&email, &earlier), None);
    // Another person's email, or an SMS, does not count either; other channels are never held.
    let other = vec![(
        inc.clone(),
        vec![
            ev(30, "page-sent", "email to bob sent (attempt 1): 250 ok"),
            ev(31, "page-sent", "sms to alice sent (attempt 1): ref 3"),
        ],
    )];
    assert_eq!(emailed_in_this_step(&email, &other), None);
    let mut sms = page(Channel::Sms);
    sms.created_at = step;
    assert_eq!(emailed_in_this_step(&sms, &open), None);
}

/// A page written for one channel that fell through to SMS is written again for SMS: an email
/// body (up to ten parts) or a spoken text sent as it is would outgrow the SMS transport's
/// timeout, sized for `sms_max_parts`.
#[tokio::test]
async fn a_page_that_falls_through_to_sms_gets_the_sms_wording() {
    let (store, cfg, id) = setup().await;
    let inc = store.incident(id).await.unwrap().unwrap();
    let long = "word ".repeat(400);
    for from in [Channel::Email, Channel::Voice] {
        let mut p = page(Channel::Sms);
        p.incident_id = Some(id);
        p.written_for = Some(from);
        p.body = long.clone();
        let Plan::Send(out) = plan(&p, vec![(inc.0.clone(), vec![])], &cfg) else {
            panic!("no send planned for a page written for {from}");
        };
        assert_eq!(
            out.text,
            crate::notify::text::sms_page(&inc.0, None, cfg.paging.sms_max_parts),
            "written for {from}"
        );
    }
    // Written for SMS: sent as written.
    let mut p = page(Channel::Sms);
    p.incident_id = Some(id);
    p.body = "as written".into();
    let Plan::Send(out) = plan(&p, vec![(inc.0.clone(), vec![])], &cfg) else {
        panic!("no send planned");
    };
    assert_eq!(out.text, "as written");
}

/// A page to someone a reload removed fails rather than being cancelled, so an incident it
/// leaves unpaged shows as reaching nobody instead of looking handled.
#[tokio::test]
async fn a_page_to_a_removed_person_fails_and_the_incident_shows_as_reaching_nobody() {
    let (store, cfg, id) = setup().await;
    let inc = store.incident(id).await.unwrap().unwrap();
    let mut p = page(Channel::Sms);
    p.incident_id = Some(id);
    p.user_id = Some("ghost".into());
    let Plan::Fail(why) = plan(&p, vec![(inc.0.clone(), vec![])], &cfg) else {
        panic!("a page to nobody in the config was not failed");
    };
    assert_eq!(why, "ghost is no longer in the config");
    // Its incident, with nothing else queued for it, is flagged.
    store
        .call(move |c, now| {
            let queued = outbox::enqueue(
                c,
                &NewPage {
                    kind: PageKind::Page,
                    incident_id: Some(id),
                    user_id: Some("ghost".into()),
                    channel: Channel::Sms,
                    address: "+4915100000009".into(),
                    subject: None,
                    body: "x".into(),
                    priority: 3,
                    due_at: now,
                },
                now,
            )?;
            assert!(!crate::store::pages::nobody_reached(c)?.contains(&id));
            let claimed = outbox::claim(c, Channel::Sms, now, std::time::Duration::from_secs(60))?
                .expect("the page is due");
            assert_eq!(claimed.id, queued);
            outbox::finish(c, &claimed, &Attempt::Failed { error: why }, now)?;
            Ok(())
        })
        .await
        .unwrap();
    let flagged = store
        .read(|c, _| Ok(crate::store::pages::nobody_reached(c)?))
        .await
        .unwrap();
    assert!(flagged.contains(&id), "{flagged:?}");
}
