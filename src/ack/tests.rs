//! Ack handler tests: a real store on a temp dir, a real config, a manual clock, the real
//! escalation pass to queue pages.

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::clock::ManualClock;
use crate::escalation::engine::{pass, runtime_overrides, Plan};
use crate::incident::{Actor, Incident, Severity, TimelineEvent};
use crate::store::outbox::testing as outbox_testing;
use crate::store::{escalations, outbox, overrides, queries, AlertAction, AlertOutcome, Tx};

const CONFIG: &str = r#"
[daemon]
time_zone = "Europe/Berlin"
country_code = "49"

[[users]]
id = "alice"
phone = "+4915100000001"

[[users]]
id = "bob"
phone = "+4915100000002"

[[users]]
id = "carol"
phone = "+4915100000003"

[[users]]
id = "dave"
phone = "+4915100000004"

[[schedules]]
id = "primary"
time_zone = "Europe/Berlin"
[[schedules.layers]]
name = "weekly"
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"
[[schedules.layers]]
name = "business"
users = ["bob"]
shift = "1w"
start = "2026-01-05T09:00"
restrictions = ["Mon-Fri 09:00-18:00"]

[[schedules]]
id = "secondary"
time_zone = "Europe/Berlin"
[[schedules.layers]]
name = "weekly"
users = ["carol"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
repeat = 1
[[policies.steps]]
schedules = ["primary"]
wait = "10m"
[[policies.steps]]
users = ["carol"]
wait = "15m"

[[routes]]
id = "db"
policy = "default"
match = { service = "db" }
runbook = "https://wiki.example.org/rb/db"
missed_call_ack = true

[[routes]]
id = "default"
policy = "default"
"#;

const ALICE: &str = "+4915100000001";
const BOB: &str = "+4915100000002";
const CAROL: &str = "+4915100000003";
const DAVE: &str = "+4915100000004";

/// Sunday 22 Nov 2026, 03:00 UTC = 04:00 in Berlin.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap()
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

struct Harness {
    store: Store,
    clock: Arc<ManualClock>,
    acker: Acker,
    plan: Arc<Plan>,
    _dir: tempfile::TempDir,
}

/// One outbox row, as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    kind: String,
    incident: Option<IncidentId>,
    user: Option<String>,
    channel: String,
    address: String,
    body: String,
    priority: i64,
    state: String,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let store = Store::open(&dir.path().join("db.sqlite"), clock.clone()).unwrap();
        let cfg = Arc::new(
            Config::parse(CONFIG, "t.toml", Path::new("/"))
                .unwrap()
                .config,
        );
        // A receiver whose sender is gone still reads the last config.
        let (_tx, rx) = watch::channel(cfg.clone());
        let acker = Acker::new(store.clone(), rx, DEFAULT_MISSED_CALL_WINDOW)
            .with_rate_limit(1000, limit::DEFAULT_WINDOW);
        Harness {
            store,
            clock,
            acker,
            plan: Arc::new(Plan::new(cfg)),
            _dir: dir,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn advance(&self, d: chrono::Duration) {
        self.clock.advance(d);
    }

    /// Opens an incident for `service` through the intake routing and runs an escalation pass,
    /// then marks the SMS pages that are due as sent (as the SMS sender would).
    async fn trigger(&self, key: &str, service: &str) -> IncidentId {
        let plan = self.plan.clone();
        let key = key.to_string();
        let service = service.to_string();
        self.store
            .call(move |c, now| {
                let p = crate::escalation::ParsedAlert {
                    action: AlertAction::Trigger,
                    dedup_key: Some(key.clone()),
                    summary: format!("{key} is down"),
                    severity: Severity::Critical,
                    source: None,
                    service: Some(service),
                    details: serde_json::Value::Null,
                    links: vec![],
                    routing_key: None,
                };
                let input =
                    crate::escalation::route_alert(&plan.config, p, Actor::new("t", "test"));
                let AlertOutcome::Created(i) = queries::apply_alert(c, &input, now)? else {
                    panic!("expected a new incident");
                };
                pass(c, &plan, now)?;
                mark_sms_sent(c, now)?;
                Ok(i.id)
            })
            .await
            .unwrap()
    }

    /// Runs one escalation pass and marks due SMS pages sent.
    async fn pass(&self) {
        let plan = self.plan.clone();
        self.store
            .call(move |c, now| {
                pass(c, &plan, now)?;
                mark_sms_sent(c, now)?;
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn sms(&mut self, from: &str, text: &str) -> Outcome {
        let now = self.now();
        let msg = Inbound {
            from: from.into(),
            text: text.into(),
            alphanumeric: false,
            received_at: now,
        };
        self.acker.handle_sms(msg, now).await.unwrap()
    }

    /// The reply text, asserting the command was answered to `from` (E.164).
    async fn reply(&mut self, from: &str, text: &str) -> String {
        match self.sms(from, text).await {
            Outcome::Replied { to, text: reply } => {
                let readings = PhoneNumber::readings(from, "49");
                assert!(readings.contains(&to), "reply to {text:?} went to {to:?}");
                reply
            }
            o => panic!("{text:?} from {from}: expected a reply, got {o:?}"),
        }
    }

    async fn outbox(&self) -> Vec<Row> {
        self.store
            .call(|c, _| {
                Ok(outbox::all(c)?
                    .into_iter()
                    .map(|p| Row {
                        kind: p.kind.as_str().to_string(),
                        incident: p.incident_id,
                        user: p.user_id,
                        channel: p.channel.to_string(),
                        address: p.address,
                        body: p.body,
                        priority: p.priority,
                        state: p.state.as_str().to_string(),
                    })
                    .collect())
            })
            .await
            .unwrap()
    }

    async fn replies(&self) -> Vec<Row> {
        self.outbox()
            .await
            .into_iter()
            .filter(|r| r.kind == "reply")
            .collect()
    }

    async fn incident(&self, id: IncidentId) -> (Incident, Vec<TimelineEvent>) {
        self.store.incident(id).await.unwrap().unwrap()
    }

    async fn status(&self, id: IncidentId) -> Status {
        self.incident(id).await.0.status
    }

    /// (phase, next_step, due_at) of the incident's escalation row.
    async fn escalation(&self, id: IncidentId) -> (String, Option<i64>, Option<DateTime<Utc>>) {
        self.store
            .call(move |c, _| {
                let e = escalations::of_incident(c, id)?.expect("an escalation row");
                Ok((
                    e.row.phase.as_str().to_string(),
                    e.row.next.map(|(step, _)| step as i64),
                    e.row.due,
                ))
            })
            .await
            .unwrap()
    }

    async fn on_call(&self, schedule: &str) -> Option<String> {
        let plan = self.plan.clone();
        let schedule = schedule.to_string();
        self.store
            .call(move |c, now| {
                let rt = runtime_overrides(c, &plan.config, now)?;
                let s = plan
                    .config
                    .schedules
                    .iter()
                    .find(|s| s.id == schedule)
                    .unwrap();
                let list = rt.get(&schedule).cloned().unwrap_or_default();
                Ok(s.on_call(now, &list).map(|o| o.user))
            })
            .await
            .unwrap()
    }
}

fn mark_sms_sent(c: &Tx, now: DateTime<Utc>) -> Result<(), StoreError> {
    Ok(outbox_testing::sms_went_out(c, now)?)
}

#[tokio::test]
async fn every_acknowledge_form_acks_and_confirms_in_the_outbox() {
    let mut h = Harness::new();
    let forms = [
        "{}a", "{} a", "{} ack", "ack {}", "a{}", "a {}", "#{}a", "{}A.", "ACK {}!", "Ack #{},",
        "  {}  a ",
    ];
    for (n, form) in forms.iter().enumerate() {
        let id = h.trigger(&format!("k{n}"), "db").await;
        let text = form.replace("{}", &id.to_string());
        let pages_queued = |timeline: &[TimelineEvent]| {
            timeline.iter().filter(|e| e.kind == "page-queued").count()
        };
        let pages_before = pages_queued(&h.incident(id).await.1);
        assert_eq!(
            h.reply(ALICE, &text).await,
            format!("#{id} acked by alice"),
            "{text:?}"
        );
        let (inc, timeline) = h.incident(id).await;
        assert_eq!(inc.status, Status::Acknowledged, "{text:?}");
        let ack = inc.acknowledged.unwrap();
        assert_eq!((ack.by.as_str(), ack.via.as_str()), ("alice", "sms"));
        assert!(timeline.iter().any(|e| e.kind == "acknowledged"
            && e.actor.as_deref() == Some("alice")
            && e.via.as_deref() == Some("sms")));
        // The confirmation is a reply on the timeline, as in the outbox and reports, not a page.
        assert!(
            timeline
                .iter()
                .any(|e| e.kind == "reply-queued" && e.message.starts_with("sms to alice")),
            "{timeline:?}"
        );
        assert_eq!(pages_queued(&timeline), pages_before, "{timeline:?}");
    }
    let replies = h.replies().await;
    assert_eq!(replies.len(), forms.len());
    for r in &replies {
        assert_eq!(r.channel, "sms");
        assert_eq!(r.address, ALICE);
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert_eq!(r.priority, REPLY_PRIORITY);
        assert_eq!(r.state, "pending");
        assert!(r.incident.is_some());
    }
}

#[tokio::test]
async fn every_resolve_form_resolves() {
    let mut h = Harness::new();
    for (n, form) in [
        "{}r",
        "{} r",
        "{} res",
        "resolve {}",
        "r{}",
        "RES #{}.",
        "{} RESOLVE!",
    ]
    .iter()
    .enumerate()
    {
        let id = h.trigger(&format!("k{n}"), "db").await;
        let text = form.replace("{}", &id.to_string());
        assert_eq!(
            h.reply(BOB, &text).await,
            format!("#{id} resolved"),
            "{text:?}"
        );
        let inc = h.incident(id).await.0;
        assert_eq!(inc.status, Status::Resolved);
        assert_eq!(inc.resolved.unwrap().by, "bob");
    }
}

#[tokio::test]
async fn ack_alone_takes_the_incident_most_recently_paged_to_the_sender() {
    let mut h = Harness::new();
    assert_eq!(
        h.reply(ALICE, "ACK").await,
        "nothing paged to you is open. Send STATUS"
    );
    let first = h.trigger("first", "db").await;
    h.advance(minutes(1));
    let second = h.trigger("second", "db").await;
    h.advance(minutes(1));
    // Bob was paged nothing: his ACK touches nobody's incident.
    assert_eq!(
        h.reply(BOB, "ack").await,
        "nothing paged to you is open. Send STATUS"
    );
    // The confirmation names what was acked and what is still waiting, with how to ack it.
    assert_eq!(
        h.reply(ALICE, "ACK").await,
        format!("#{second} acked by alice. Also open: #{first} ({first}a)")
    );
    assert_eq!(h.status(first).await, Status::Triggered);
    // Still open (acknowledged): ACK again says so; RES resolves it.
    assert_eq!(
        h.reply(ALICE, "ack.").await,
        format!("#{second} already acked by alice 04:02. Also open: #{first} ({first}a)")
    );
    assert_eq!(
        h.reply(ALICE, "RES").await,
        format!("#{second} resolved. Also open: #{first} ({first}r)")
    );
    // Now the newest page with an open incident is the first one.
    assert_eq!(
        h.reply(ALICE, "a").await,
        format!("#{first} acked by alice")
    );
}

/// The story that acked the wrong incident: #A paged by SMS with a call to follow, then #B went
/// out in a digest, then #A's unanswered call fell back to SMS. The phone's last page is #A's
/// SMS, so `ACK` means #A, although #A's page was queued before the digest.
#[tokio::test]
async fn ack_alone_means_the_page_that_last_reached_the_phone_not_the_newest_queued() {
    let mut h = Harness::new();
    let a = h.trigger("a", "db").await;
    h.advance(minutes(1));
    let b = h.trigger("b", "web").await;
    // #B's own page is replaced by a digest naming it, sent now.
    h.store
        .call(move |c, now| {
            outbox_testing::cancel_all(c, b)?;
            let d = crate::store::outbox::enqueue(
                c,
                &crate::store::outbox::NewPage {
                    kind: crate::store::outbox::PageKind::Digest,
                    incident_id: None,
                    user_id: Some("alice".into()),
                    channel: crate::incident::Channel::Sms,
                    address: ALICE.into(),
                    subject: None,
                    body: "1 new".into(),
                    priority: 3,
                    due_at: now,
                },
                now,
            )?;
            crate::store::outbox::add_item(c, d, b)?;
            mark_sms_sent(c, now)
        })
        .await
        .unwrap();
    h.advance(minutes(2));
    // #A's call (queued with #A, before the digest) went unanswered and fell back to SMS,
    // which went out now.
    let moved = h
        .store
        .call(move |c, now| Ok(outbox_testing::calls_went_out_as_sms(c, a, ALICE, now)?))
        .await
        .unwrap();
    assert_eq!(moved, 1, "the config pages alice by voice after SMS");
    assert_eq!(
        h.reply(ALICE, "ACK").await,
        format!("#{a} acked by alice. Also open: #{b} ({b}a)")
    );
    assert_eq!(h.status(a).await, Status::Acknowledged);
    assert_eq!(h.status(b).await, Status::Triggered);
    // The timeline records who and how.
    let acked = h.incident(a).await.0.acknowledged.unwrap();
    assert_eq!((acked.by.as_str(), acked.via.as_str()), ("alice", "sms"));
}

#[tokio::test]
async fn a_user_the_incident_does_not_concern_is_refused_with_the_reason() {
    let mut h = Harness::new();
    let id = h.trigger("x", "db").await;
    // Dave is a configured user but in no schedule or step of the policy, and was paged nothing.
    for text in [format!("{id}a"), format!("{id}r"), format!("ack {id}")] {
        assert_eq!(
            h.reply(DAVE, &text).await,
            format!("#{id} not changed: it was not paged to you and you are not on policy default"),
            "{text:?}"
        );
    }
    assert_eq!(h.status(id).await, Status::Triggered);
    // Bob was not paged (alice is on call) but is on the policy's schedule; carol is a later
    // step of the policy: both may act.
    assert_eq!(
        h.reply(BOB, &format!("{id}a")).await,
        format!("#{id} acked by bob")
    );
    assert_eq!(
        h.reply(CAROL, &format!("{id}r")).await,
        format!("#{id} resolved")
    );
}

#[tokio::test]
async fn taking_the_pager_puts_a_user_on_the_policy() {
    let mut h = Harness::new();
    let id = h.trigger("y", "db").await;
    assert!(h
        .reply(DAVE, &format!("{id}a"))
        .await
        .contains("not changed"));
    // An override in force on a schedule of the policy counts as being on it.
    h.store
        .call(move |c, now| {
            crate::store::overrides::add(
                c,
                "primary",
                "dave",
                now,
                now + minutes(60),
                "test",
                now,
            )?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        h.reply(DAVE, &format!("{id}a")).await,
        format!("#{id} acked by dave")
    );
}

#[tokio::test]
async fn ack_alone_after_a_digest_acks_all_its_open_items() {
    let mut h = Harness::new();
    let ids = [
        h.trigger("d1", "web").await,
        h.trigger("d2", "web").await,
        h.trigger("d3", "web").await,
    ];
    // A digest listing all three went to bob after his pages; one of them is resolved already.
    h.store
        .call(move |c, now| {
            let d = crate::store::outbox::enqueue(
                c,
                &crate::store::outbox::NewPage {
                    kind: crate::store::outbox::PageKind::Digest,
                    incident_id: None,
                    user_id: Some("bob".into()),
                    channel: crate::incident::Channel::Sms,
                    address: BOB.into(),
                    subject: None,
                    body: "3 new".into(),
                    priority: 3,
                    due_at: now,
                },
                now,
            )?;
            for id in ids {
                crate::store::outbox::add_item(c, d, id)?;
            }
            queries::transition(c, ids[2], Status::Resolved, &Actor::new("x", "http"), now)?;
            mark_sms_sent(c, now)
        })
        .await
        .unwrap();
    assert_eq!(
        h.reply(BOB, "ACK").await,
        format!("#{} #{} acked by bob", ids[0], ids[1])
    );
    assert_eq!(h.status(ids[0]).await, Status::Acknowledged);
    assert_eq!(h.status(ids[1]).await, Status::Acknowledged);
}

#[tokio::test]
async fn national_and_double_zero_sender_numbers_are_accepted() {
    let mut h = Harness::new();
    let a = h.trigger("a", "db").await;
    let b = h.trigger("b", "db").await;
    assert_eq!(
        h.reply("015100000001", &format!("{a}a")).await,
        format!("#{a} acked by alice")
    );
    assert_eq!(
        h.reply("0049 151 0000 0001", &format!("{b}a")).await,
        format!("#{b} acked by alice")
    );
    // Modems sometimes drop the '+' of an international number.
    assert_eq!(h.reply("4915100000001", "HELP").await, text::HELP);
    // Bare digits are international where a trunk zero is dialled: a US caller whose number
    // reads like alice's national one is a stranger.
    let c = h.trigger("c", "db").await;
    assert_eq!(
        h.sms("15100000001", &format!("{c}a")).await,
        Outcome::Ignored {
            reason: "unknown sender".into()
        }
    );
    assert!(h.replies().await.iter().all(|r| r.address == ALICE));
}

#[tokio::test]
async fn unknown_and_alphanumeric_senders_get_nothing() {
    let mut h = Harness::new();
    let id = h.trigger("a", "db").await;
    let before = h.outbox().await;
    for from in ["+4917000000000", "0170 0000000", "12345"] {
        assert_eq!(
            h.sms(from, &format!("{id}a")).await,
            Outcome::Ignored {
                reason: "unknown sender".into()
            }
        );
    }
    let now = h.now();
    let msg = Inbound {
        from: ALICE.into(),
        text: format!("{id}a"),
        alphanumeric: true,
        received_at: now,
    };
    assert_eq!(
        h.acker.handle_sms(msg, now).await.unwrap(),
        Outcome::Ignored {
            reason: "alphanumeric sender".into()
        }
    );
    assert_eq!(h.outbox().await, before);
    assert_eq!(h.status(id).await, Status::Triggered);
}

impl Harness {
    /// The harness with a per-sender limit of `limit` commands per 10 minutes.
    fn limited(mut self, limit: usize) -> Harness {
        self.acker = Acker::new(
            self.store.clone(),
            self.acker.config.clone(),
            DEFAULT_MISSED_CALL_WINDOW,
        )
        .with_rate_limit(limit, Duration::from_secs(600));
        self
    }
}

#[tokio::test]
async fn commands_over_the_rate_limit_get_one_slow_down_then_nothing_until_the_window_clears() {
    let mut h = Harness::new().limited(3);
    for _ in 0..3 {
        assert_eq!(h.reply(ALICE, "HELP").await, text::HELP);
    }
    let slow = h.reply(ALICE, "HELP").await;
    assert!(slow.starts_with("slow down"), "{slow}");
    assert_eq!(
        h.sms(ALICE, "HELP").await,
        Outcome::Ignored {
            reason: "rate limited".into()
        }
    );
    // Another person is not held back.
    assert_eq!(h.reply(BOB, "HELP").await, text::HELP);
    h.advance(minutes(10));
    assert_eq!(h.reply(ALICE, "HELP").await, text::HELP);
    assert_eq!(h.replies().await.len(), 6);
}

#[tokio::test]
async fn acks_and_resolves_of_ones_own_pages_are_done_even_over_the_limit() {
    let mut h = Harness::new().limited(2);
    let ids = [
        h.trigger("a", "db").await,
        h.trigger("b", "db").await,
        h.trigger("c", "db").await,
        h.trigger("d", "db").await,
    ];
    for _ in 0..2 {
        assert!(!h.reply(ALICE, "STATUS").await.is_empty());
    }
    // The first over the limit: acted on, answered with what it did and "slow down".
    let first = h.reply(ALICE, &format!("{}a", ids[0])).await;
    assert!(
        first.starts_with(&format!("#{} acked by alice", ids[0])),
        "{first}"
    );
    assert!(first.contains("slow down"), "{first}");
    // Later ones: acted on, not answered.
    assert_eq!(
        h.sms(ALICE, &format!("{}r", ids[1])).await,
        Outcome::Acted {
            text: format!("#{} resolved. Also open: #{} ({}r)", ids[1], ids[0], ids[0])
        }
    );
    let Outcome::Acted { text: acked } = h.sms(ALICE, "ACK").await else {
        panic!("ACK over the limit was not done");
    };
    assert!(acked.contains("acked by alice"), "{acked}");
    // Other commands over the limit are not done.
    assert_eq!(
        h.sms(ALICE, "STATUS").await,
        Outcome::Ignored {
            reason: "rate limited".into()
        }
    );
    assert_eq!(h.status(ids[0]).await, Status::Acknowledged);
    assert_eq!(h.status(ids[1]).await, Status::Resolved);
    assert_eq!(h.replies().await.len(), 3, "2 STATUS + 1 slow down");
}

#[tokio::test]
async fn over_the_limit_an_incident_never_paged_to_the_sender_is_not_acked() {
    let mut h = Harness::new().limited(1);
    // Dave is in no schedule or policy: nothing is ever paged to him.
    let theirs = h.trigger("w", "db").await;
    assert_eq!(h.reply(DAVE, "HELP").await, text::HELP);
    let slow = h.reply(DAVE, &format!("{theirs}a")).await;
    assert!(slow.starts_with("slow down"), "{slow}");
    assert!(matches!(
        h.sms(DAVE, &format!("{theirs}a")).await,
        Outcome::Ignored { .. }
    ));
    assert_eq!(h.status(theirs).await, Status::Triggered);
}

#[tokio::test]
async fn a_junk_flood_is_answered_a_few_times_and_never_locks_out_an_ack() {
    let mut h = Harness::new().limited(10);
    let id = h.trigger("a", "db").await;
    let mut answered = 0;
    for n in 0..200 {
        match h.sms(ALICE, &format!("buy cheap stuff {n}")).await {
            Outcome::Replied { text, .. } => {
                assert!(text.starts_with("not understood"), "{text}");
                answered += 1;
            }
            Outcome::Ignored { .. } => {}
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(answered, JUNK_REPLY_LIMIT);
    // Junk never counted as commands: the ack is within the limit and answered.
    assert_eq!(
        h.reply(ALICE, &format!("{id}a")).await,
        format!("#{id} acked by alice")
    );
    assert_eq!(h.replies().await.len(), JUNK_REPLY_LIMIT + 1);
}

#[tokio::test]
async fn an_auto_reply_loop_dies_out_and_the_ack_still_works() {
    let mut h = Harness::new().limited(10);
    let id = h.trigger("a", "db").await;
    // Alice's phone answers every SMS it gets with an out-of-office text, and pagerbox answers
    // that: the loop runs while pagerbox replies, so count how long it lasts.
    let mut rounds = 0;
    while rounds < 100 {
        match h
            .sms(
                ALICE,
                "I am on holiday until Monday. Your message will not be read.",
            )
            .await
        {
            Outcome::Replied { .. } => rounds += 1,
            _ => break,
        }
    }
    assert_eq!(
        rounds, JUNK_REPLY_LIMIT,
        "the loop stopped after a few replies"
    );
    // A loop of an auto-reply that happens to be a command ends at the command limit.
    let mut commands = 0;
    while commands < 100 {
        match h.sms(BOB, "STATUS").await {
            Outcome::Replied { .. } => commands += 1,
            _ => break,
        }
    }
    assert_eq!(commands, 11, "10 answers and one slow down");
    // And Alice, back from the loop, can still ack her page.
    assert_eq!(h.reply(ALICE, "ACK").await, format!("#{id} acked by alice"));
}

#[tokio::test]
async fn take_puts_the_sender_on_call_until_the_next_handoff_or_for_a_duration() {
    let mut h = Harness::new();
    assert_eq!(h.on_call("primary").await.as_deref(), Some("alice"));
    // Bob is in primary's business-hours layer; the next handoff is Monday 09:00 Berlin.
    assert_eq!(
        h.reply(BOB, "TAKE").await,
        "you are on call for primary until Mon 09:00"
    );
    assert_eq!(h.on_call("primary").await.as_deref(), Some("bob"));
    assert_eq!(h.on_call("secondary").await.as_deref(), Some("carol"));
    // The escalation engine sees it too: a new incident pages bob, not alice.
    let id = h.trigger("x", "db").await;
    let pages: Vec<_> = h
        .outbox()
        .await
        .into_iter()
        .filter(|r| r.kind == "page" && r.incident == Some(id))
        .collect();
    assert!(
        pages.iter().all(|r| r.user.as_deref() == Some("bob")),
        "{pages:?}"
    );
    // Alice takes it back for two hours (03:00 UTC + 2h = 06:00 Berlin).
    assert_eq!(
        h.reply(ALICE, "take 2h").await,
        "you are on call for primary until 06:00"
    );
    assert_eq!(h.on_call("primary").await.as_deref(), Some("alice"));
    h.advance(minutes(121));
    assert_eq!(h.on_call("primary").await.as_deref(), Some("bob"));
    // The override row says who made it.
    let by: String = h
        .store
        .call(|c, _| {
            // The override has ended by now; list those that had not at the start.
            let list = overrides::list(c, "primary", t0())?;
            let newest = list.into_iter().max_by_key(|o| o.id);
            Ok(newest.and_then(|o| o.created_by).unwrap_or_default())
        })
        .await
        .unwrap();
    assert_eq!(by, "alice via sms");
    // Someone in no schedule has nothing to take; a bad duration is explained.
    assert_eq!(
        h.reply(DAVE, "TAKE").await,
        "you are in no schedule: nothing to take"
    );
    assert!(h
        .reply(ALICE, "take soon")
        .await
        .starts_with("bad duration \"soon\""));
}

#[tokio::test]
async fn oncall_status_and_help_replies() {
    let mut h = Harness::new();
    assert_eq!(
        h.reply(CAROL, "ONCALL").await,
        "primary: alice until Mon 09:00; secondary: carol"
    );
    assert_eq!(h.reply(CAROL, "STATUS").await, "no open incidents");
    let a = h.trigger("db1", "db").await;
    let b = h.trigger("web1", "web").await;
    let c = h.trigger("replica lag above five minutes", "db").await;
    h.reply(BOB, &format!("{b}a")).await;
    assert_eq!(
        h.reply(CAROL, "status").await,
        format!(
            "3 open: #{a} CRIT db1 is down: paged alice; #{b} CRIT web1 is down: acked bob; \
             #{c} CRIT replica lag above...: paged alice"
        )
    );
    for i in 0..30 {
        h.trigger(&format!("more{i}"), "web").await;
    }
    let s = h.reply(CAROL, "STATUS").await;
    assert!(s.starts_with("33 open: ") && s.ends_with(" more"), "{s}");
    assert!(crate::modem::pdu::fits(&s, 1), "{s}");
    assert_eq!(h.reply(CAROL, "help").await, text::HELP);
}

#[tokio::test]
async fn details_note_and_not_found() {
    let mut h = Harness::new();
    let id = h.trigger("db1", "db").await;
    let d = h.reply(BOB, &format!("{id}?")).await;
    assert_eq!(
        d,
        format!(
            "#{id} CRIT db: db1 is down. triggered, paged alice. 1 alert since 04:00. \
             Runbook: https://wiki.example.org/rb/db"
        )
    );
    assert_eq!(
        h.reply(BOB, &format!("{id} n Größe geprüft – Platte 🚒 tauschen"))
            .await,
        format!("#{id} note added")
    );
    let timeline = h.incident(id).await.1;
    let note = timeline.iter().find(|e| e.kind == "note").unwrap();
    assert_eq!(note.message, "Größe geprüft – Platte 🚒 tauschen");
    assert_eq!(
        (note.actor.as_deref(), note.via.as_deref()),
        (Some("bob"), Some("sms"))
    );
    for text in ["99a", "99r", "99?", "99 n hello", "99e", "ack 99"] {
        assert_eq!(h.reply(BOB, text).await, "#99 not found", "{text:?}");
    }
    assert_eq!(
        h.reply(BOB, "hello there").await,
        "not understood: \"hello there\". Send HELP"
    );
}

#[tokio::test]
async fn a_long_summary_is_cut_so_details_fit_two_sms_with_the_runbook() {
    let mut h = Harness::new();
    let id = h.trigger(&"very long summary ".repeat(30), "db").await;
    let d = h.reply(BOB, &format!("{id}?")).await;
    assert!(crate::modem::pdu::fits(&d, 2), "{d}");
    assert!(!crate::modem::pdu::fits(&d, 1), "{d}");
    assert!(
        d.ends_with("Runbook: https://wiki.example.org/rb/db"),
        "{d}"
    );
    assert!(d.contains("..."), "{d}");
}

/// Nothing bounds an alert's service: a long one is cut in the details reply too, so the summary
/// and the state still fit.
#[tokio::test]
async fn a_long_service_leaves_room_for_the_summary_and_state_in_details() {
    let mut h = Harness::new();
    let id = h.trigger("k", &"s".repeat(3000)).await;
    let d = h.reply(BOB, &format!("{id}?")).await;
    assert!(crate::modem::pdu::fits(&d, 2), "{d}");
    assert!(d.contains("k is down"), "{d}");
    assert!(d.contains("triggered"), "{d}");
}

#[tokio::test]
async fn already_resolved_names_who_and_when_in_local_time() {
    let mut h = Harness::new();
    let id = h.trigger("a", "db").await;
    h.advance(minutes(12));
    h.reply(BOB, &format!("{id}r")).await;
    h.advance(minutes(5));
    for text in [format!("{id}a"), format!("{id}r"), format!("{id}e")] {
        assert_eq!(
            h.reply(ALICE, &text).await,
            format!("#{id} already resolved by bob 04:12"),
            "{text:?}"
        );
    }
}

#[tokio::test]
async fn an_ack_cancels_the_incidents_pending_pages_in_the_same_commit() {
    let mut h = Harness::new();
    let id = h.trigger("a", "db").await;
    // Default rules: SMS now (sent), voice at +2m (pending).
    let pending = |rows: &[Row]| {
        rows.iter()
            .filter(|r| r.kind == "page" && r.incident == Some(id) && r.state == "pending")
            .count()
    };
    assert!(pending(&h.outbox().await) > 0);
    h.reply(ALICE, &format!("{id}a")).await;
    let rows = h.outbox().await;
    assert_eq!(pending(&rows), 0);
    assert!(rows
        .iter()
        .any(|r| r.kind == "page" && r.incident == Some(id) && r.state == "cancelled"));
    // The confirmation itself is pending and not cancelled.
    assert!(rows
        .iter()
        .any(|r| r.kind == "reply" && r.state == "pending" && r.body.contains("acked")));
    // And the engine pages nobody after it: step 2 (carol) never comes.
    h.advance(minutes(30));
    h.pass().await;
    assert!(!h
        .outbox()
        .await
        .iter()
        .any(|r| r.user.as_deref() == Some("carol")));
}

#[tokio::test]
async fn escalate_now_pages_the_next_step_at_once() {
    let mut h = Harness::new();
    let id = h.trigger("a", "db").await;
    let (phase, step, due) = h.escalation(id).await;
    assert_eq!((phase.as_str(), step), ("escalating", Some(1)));
    assert_eq!(due, Some(t0() + minutes(10)));
    h.advance(minutes(1));
    assert_eq!(
        h.reply(ALICE, &format!("{id}e")).await,
        format!("#{id} escalating now")
    );
    assert_eq!(h.escalation(id).await.2, Some(t0() + minutes(1)));
    h.pass().await;
    assert!(h
        .outbox()
        .await
        .iter()
        .any(|r| r.kind == "page" && r.user.as_deref() == Some("carol") && r.incident == Some(id)));

    // An acknowledged incident goes back to triggered and resumes where the ack stopped it.
    let other = h.trigger("b", "db").await;
    h.reply(ALICE, &format!("{other}a")).await;
    h.pass().await;
    assert_eq!(h.escalation(other).await.0, "acknowledged");
    assert_eq!(
        h.reply(ALICE, &format!("esc {other}")).await,
        format!("#{other} escalating now")
    );
    assert_eq!(h.status(other).await, Status::Triggered);
    let (phase, step, due) = h.escalation(other).await;
    assert_eq!(
        (phase.as_str(), step, due),
        ("escalating", Some(1), Some(h.now()))
    );
    let timeline = h.incident(other).await.1;
    assert!(timeline
        .iter()
        .any(|e| e.kind == "escalate-now" && e.actor.as_deref() == Some("alice")));

    // Acknowledged a moment ago, before the engine's pass saw it: escalate-now still wins.
    let third = h.trigger("c", "db").await;
    h.reply(ALICE, &format!("{third}a")).await;
    assert_eq!(
        h.reply(BOB, &format!("{third}e")).await,
        format!("#{third} escalating now")
    );
    h.pass().await;
    assert_eq!(h.status(third).await, Status::Triggered);
    // Step 2 (carol) went out: its SMS is grouped into a digest with the earlier pages to her
    // and its call is its own, and the escalation moved past the policy's last step (one run
    // only: exhausted when due).
    assert_eq!(h.escalation(third).await.1, Some(2));
    let to_carol: i64 = h
        .store
        .call(move |c, _| {
            Ok(outbox::all(c)?
                .into_iter()
                .filter(|p| {
                    p.user_id.as_deref() == Some("carol")
                        && (p.incident_id == Some(third) || p.items.contains(&third))
                })
                .count() as i64)
        })
        .await
        .unwrap();
    assert_eq!(to_carol, 2);

    // Its last step paged, nobody is left to escalate to: said, not promised, and the
    // escalation is left as it was.
    let before = h.escalation(third).await;
    assert_eq!(
        h.reply(BOB, &format!("{third}e")).await,
        format!("#{third} not escalated: everyone on policy default was already paged")
    );
    assert_eq!(h.escalation(third).await, before);
}

/// The incident a `PAGE` reply (`#N opened`) names.
fn opened(reply: &str) -> IncidentId {
    reply
        .strip_prefix('#')
        .and_then(|s| s.strip_suffix(" opened"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an opened reply: {reply}"))
}

#[tokio::test]
async fn page_command_opens_an_incident_through_the_normal_path() {
    let mut h = Harness::new();
    let r = h.reply(BOB, "PAGE db Replica lag over 5 min!").await;
    let id = opened(&r);
    let (inc, timeline) = h.incident(id).await;
    assert_eq!(inc.summary, "Replica lag over 5 min!");
    assert_eq!(inc.service.as_deref(), Some("db"));
    assert_eq!(inc.source.as_deref(), Some("sms:bob"));
    assert_eq!(inc.route.as_deref(), Some("db"));
    assert!(timeline
        .iter()
        .any(|e| e.kind == "triggered" && e.actor.as_deref() == Some("bob")));
    assert_eq!(h.escalation(id).await.0, "escalating");
    // The same text again dedups into the open incident.
    assert_eq!(
        h.reply(BOB, "page db Replica lag over 5 min!").await,
        format!("#{id} already open (2 alerts)")
    );
    assert_eq!(
        h.reply(BOB, "PAGE db").await,
        "PAGE needs a service and a summary, e.g. PAGE db disk full"
    );
}

#[tokio::test]
async fn page_command_keeps_a_summary_as_long_as_intake_would() {
    let mut h = Harness::new();
    // A concatenated SMS can carry tens of thousands of characters; one unbroken word is the
    // page text's worst case to cut.
    let r = h
        .reply(BOB, &format!("PAGE db {}", "x".repeat(20_000)))
        .await;
    let id = opened(&r);
    let (inc, _) = h.incident(id).await;
    assert_eq!(
        inc.summary.chars().count(),
        crate::intake::formats::MAX_SUMMARY_CHARS
    );
    assert!(inc.summary.ends_with('…'), "cut marked");
}

#[tokio::test]
async fn missed_call_from_a_paged_user_within_the_window_acknowledges() {
    let mut h = Harness::new();
    let db = h.trigger("a", "db").await;
    let web = h.trigger("b", "web").await;
    h.advance(minutes(3));
    let now = h.now();
    let d = h
        .acker
        .handle_missed_call(Some("015100000001".into()), now)
        .await
        .unwrap();
    assert!(d.reject);
    assert_eq!(
        d.outcome,
        Outcome::Replied {
            to: PhoneNumber::parse_e164(ALICE).unwrap(),
            text: format!("#{db} acked by alice (missed call)")
        }
    );
    let inc = h.incident(db).await.0;
    assert_eq!(inc.acknowledged.unwrap().via, "missed-call");
    // The web route does not take missed-call acks.
    assert_eq!(h.status(web).await, Status::Triggered);
    // The next RING of the same call acknowledges nothing new and sends nothing.
    let replies = h.replies().await.len();
    let d = h
        .acker
        .handle_missed_call(Some(ALICE.into()), now)
        .await
        .unwrap();
    assert!(d.reject);
    assert!(matches!(d.outcome, Outcome::Ignored { .. }));
    assert_eq!(h.replies().await.len(), replies);
}

#[tokio::test]
async fn missed_call_outside_the_window_or_from_strangers_does_nothing() {
    let mut h = Harness::new();
    let db = h.trigger("a", "db").await;
    h.advance(minutes(11));
    let now = h.now();
    for from in [
        Some(ALICE.to_string()),
        Some("+4917000000000".into()),
        None,
        Some(String::new()),
    ] {
        let d = h.acker.handle_missed_call(from.clone(), now).await.unwrap();
        assert!(!d.reject, "{from:?}");
        assert!(matches!(d.outcome, Outcome::Ignored { .. }), "{from:?}");
    }
    // Bob was never paged.
    let d = h
        .acker
        .handle_missed_call(Some(BOB.into()), now)
        .await
        .unwrap();
    assert!(!d.reject);
    assert_eq!(h.status(db).await, Status::Triggered);
    assert!(h.replies().await.is_empty());
}

#[tokio::test]
async fn dtmf_ack_acknowledges_like_an_sms_reply() {
    let mut h = Harness::new();
    let id = h.trigger("a", "db").await;
    let now = h.now();
    let o = h.acker.handle_dtmf_ack("alice", id, now).await.unwrap();
    assert_eq!(
        o,
        Outcome::Replied {
            to: PhoneNumber::parse_e164(ALICE).unwrap(),
            text: format!("#{id} acked by alice")
        }
    );
    assert_eq!(h.incident(id).await.0.acknowledged.unwrap().via, "dtmf");
}

#[tokio::test]
async fn the_task_answers_through_the_handle_and_stops_on_shutdown() {
    let h = Harness::new();
    let id = h.trigger("a", "db").await;
    let (handle, requests) = channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        h.acker,
        requests,
        h.clock.clone(),
        crate::supervisor::Heartbeat::detached("ack"),
        shutdown.clone(),
    ));
    let ev = ModemEvent::SmsReceived {
        from: ALICE.into(),
        text: format!("{id} ACK"),
        timestamp: t0().fixed_offset(),
        alphanumeric: false,
    };
    let msg = Inbound::from_event(&ev, h.clock.now()).unwrap();
    let o = handle.sms(msg).await.unwrap();
    assert!(matches!(o, Outcome::Replied { .. }));
    assert_eq!(
        h.store.incident(id).await.unwrap().unwrap().0.status,
        Status::Acknowledged
    );
    assert!(Inbound::from_event(&ModemEvent::CallEnded, t0()).is_none());
    shutdown.cancel();
    task.await.unwrap();
    assert!(matches!(
        handle
            .sms(Inbound {
                from: ALICE.into(),
                text: "HELP".into(),
                alphanumeric: false,
                received_at: t0(),
            })
            .await,
        Err(AckError::Stopped)
    ));
}

/// An escalation whose policy a reload removed cannot be escalated: the person is told, and the
/// escalation is left for the engine, which flags it when it next comes due.
#[test]
fn escalate_now_on_a_policy_that_is_gone_says_so_and_changes_nothing() {
    escalate_now_refused("removed", false, |id| {
        format!("#{id} not escalated: its policy removed is no longer configured")
    });
}

/// A silence holds the escalation: the engine would hold the step again at once, so "escalate
/// now" says what holds it rather than promise a page that does not come.
#[test]
fn escalate_now_under_a_silence_says_what_holds_it_and_changes_nothing() {
    escalate_now_refused("default", true, |id| {
        format!("#{id} not escalated: held by silence #1; it pages when that ends")
    });
}

/// Escalates a new incident on `policy` (held by a runtime silence of its service when
/// `silenced`) by SMS a minute after it opened, and checks the reply is `said(id)` and that
/// nothing changed.
fn escalate_now_refused(policy: &str, silenced: bool, said: impl Fn(IncidentId) -> String) {
    let c = crate::store::memory();
    let cfg = Arc::new(
        Config::parse(CONFIG, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    );
    let alert = crate::store::AlertInput {
        action: AlertAction::Trigger,
        dedup_key: Some("gone".into()),
        summary: "gone is down".into(),
        severity: Severity::Critical,
        source: None,
        service: Some("gone".into()),
        details: serde_json::Value::Null,
        links: vec![],
        route: None,
        policy: Some(policy.into()),
        pre_page_delay: std::time::Duration::from_secs(600),
        page: true,
        actor: Actor::new("t", "test"),
    };
    let AlertOutcome::Created(inc) = queries::apply_alert(&c, &alert, t0()).unwrap() else {
        panic!("expected a new incident");
    };
    if silenced {
        let s = crate::store::silences::add(&c, &gone_silenced(), t0()).unwrap();
        let key = s.silence.id.key();
        crate::store::silences::set_hold(&c, inc.id, Some(&key)).unwrap();
    }
    let before = escalations::of_incident(&c, inc.id).unwrap().unwrap();
    let sender = super::actions::Sender {
        config: cfg,
        user: "alice".into(),
        address: Some(ALICE.into()),
        via: "sms",
    };
    let reply = super::actions::execute(
        &c,
        &sender,
        &super::command::Command::Escalate(inc.id),
        t0() + minutes(1),
    )
    .unwrap();
    assert_eq!(reply.text, said(inc.id));
    assert_eq!(
        escalations::of_incident(&c, inc.id).unwrap().unwrap(),
        before
    );
    assert!(queries::timeline(&c, inc.id)
        .unwrap()
        .iter()
        .all(|e| e.kind != crate::store::kinds::EventKind::EscalateNow));
}

/// A runtime silence of service `gone` for the hour from [`t0`].
fn gone_silenced() -> crate::silence::Silence {
    crate::silence::Silence {
        id: crate::silence::SilenceId::Runtime(0),
        service: Some("gone".into()),
        matchers: vec![],
        starts_at: t0(),
        ends_at: t0() + minutes(60),
        comment: "upgrade".into(),
        created_by: Some("alice".into()),
        repeat: None,
    }
}

/// The mark a silence left on an escalation outlives it while the incident is acknowledged:
/// once the silence is over, "escalate now" escalates.
#[test]
fn escalate_now_after_the_silence_ended_escalates() {
    let c = crate::store::memory();
    let cfg = Arc::new(
        Config::parse(CONFIG, "t.toml", Path::new("/"))
            .unwrap()
            .config,
    );
    let mut alert = crate::store::AlertInput::test_trigger("gone", "gone");
    alert.policy = Some("default".into());
    let AlertOutcome::Created(inc) = queries::apply_alert(&c, &alert, t0()).unwrap() else {
        panic!("expected a new incident");
    };
    let s = crate::store::silences::add(&c, &gone_silenced(), t0()).unwrap();
    crate::store::silences::set_hold(&c, inc.id, Some(&s.silence.id.key())).unwrap();
    let sender = super::actions::Sender {
        config: cfg,
        user: "alice".into(),
        address: Some(ALICE.into()),
        via: "sms",
    };
    let escalate = |at| {
        super::actions::execute(&c, &sender, &super::command::Command::Escalate(inc.id), at)
            .unwrap()
            .text
    };
    assert!(escalate(t0() + minutes(30)).contains("held by silence"));
    assert_eq!(
        escalate(t0() + minutes(90)),
        format!("#{} escalating now", inc.id)
    );
}
