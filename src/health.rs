//! Whether the box can page right now: one verdict for `/healthz`, the LED and the watchdog.
//!
//! A box that answers "ok" while no page can go out is the worst failure a pager has, so the
//! verdict is built from the work itself, never from "the process answers": can the store write,
//! can some channel send, does the modem still answer, has every essential loop beaten lately,
//! is any due page waiting far longer than a retry would explain, is a claim stuck past its
//! lease. [`assess`] is pure (facts in, verdict out); the daemon gathers the facts from their
//! owners ([`Sources::facts`]) whenever someone asks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::incident::Channel;
use crate::modem::{Health, HealthState};
use crate::supervisor::{Late, Liveness};

/// A due page older than this means nothing is sending: retries back off to two minutes at
/// most, and a channel that starts up waits about one minute.
pub const OVERDUE: Duration = Duration::from_secs(5 * 60);

/// Whether paging works, for `/healthz`, logs and the LED.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct PagingHealth {
    /// Channels that can send now.
    pub ready: Vec<Channel>,
    /// Channels that cannot, with why.
    pub down: Vec<(Channel, String)>,
}

impl PagingHealth {
    /// No channel can send: pages are queued and retried, but nobody is reached.
    pub fn impaired(&self) -> bool {
        self.ready.is_empty()
    }

    /// Every channel a transport serves, ready or not (the outbox rows that can be sent).
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = self.ready.clone();
        out.extend(self.down.iter().map(|(c, _)| *c));
        out
    }
}

/// Whether the upstream answered the last time it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reachability {
    /// Not asked since the daemon started (nothing was held).
    #[default]
    NotAsked,
    Reachable,
    /// Every check since `since` failed.
    Unreachable {
        since: DateTime<Utc>,
    },
}

/// What `/healthz`, `/metrics`, the status page and the LED show about standby.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Whether any route is in standby.
    pub enabled: bool,
    pub reachability: Reachability,
    /// When a check last got an answer.
    pub last_success: Option<DateTime<Utc>>,
    /// Incidents whose page is held now.
    pub held: i64,
    /// The shortest grace of any standby route.
    pub grace: Duration,
}

impl Status {
    /// True when the upstream has been unreachable for longer than the grace: incidents are
    /// being paged locally and the cloud pager is not being told about acknowledgements.
    pub fn impaired(&self, now: DateTime<Utc>) -> bool {
        match self.reachability {
            Reachability::Unreachable { since } => {
                now.signed_duration_since(since)
                    .to_std()
                    .unwrap_or_default()
                    > self.grace
            }
            _ => false,
        }
    }
}

impl Reachability {
    /// `not_asked`, `reachable` or `unreachable`, for `/healthz` and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::NotAsked => "not_asked",
            Reachability::Reachable => "reachable",
            Reachability::Unreachable { .. } => "unreachable",
        }
    }
}

/// What the verdict is made of, read from each owner at one moment.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `Err(why)` while the store cannot write (disk full, read-only, I/O errors).
    pub store_write: Result<(), String>,
    /// `Err(why)` while the read connection fails (then the due pages are unknown).
    pub store_read: Result<(), String>,
    /// Errors of ours the store met (constraint, schema, misuse): bugs to report, which do not
    /// stop paging by themselves.
    pub store_faults: u64,
    /// Paging channels, when paging is set up.
    pub paging: Option<PagingHealth>,
    /// Essential tasks that have not shown progress within their bound.
    pub late: Vec<Late>,
    /// The modem, when there is one.
    pub modem: Option<ModemFacts>,
    /// Age of the oldest page that is due (or whose claim expired) and not sent.
    pub oldest_due: Option<Duration>,
    /// The self-test monitor holds a lasting modem impairment (weak signal, no credit, ...).
    pub selftest_fault: bool,
    /// How long the cloud pager a standby route stands behind has been unreachable, once that
    /// is longer than the grace (every held page is then paged locally, and the cloud pager is
    /// not told about acknowledgements made here).
    pub upstream_unreachable: Option<Duration>,
    /// Routes whose high-urgency alerts the config in force would page nobody for (see
    /// [`crate::escalation::reach::pages_nobody`]).
    pub pages_nobody: Vec<String>,
    /// Pair hook: why the pair is impaired (`alone`, `rejoining`, `independent`), if it is.
    #[cfg(feature = "ha")]
    pub pair: Option<&'static str>,
}

/// What the verdict needs of the modem.
#[derive(Debug, Clone)]
pub struct ModemFacts {
    pub state: HealthState,
    pub reason: String,
    /// Time since the modem last answered a command, when that is longer than its bound.
    pub silent_for: Option<Duration>,
    /// How long the modem may stay silent (a few health polls and one submit; the driver's own
    /// `Health::answer_bound`).
    pub silence_bound: Duration,
}

/// One reason paging is impaired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// Nothing can be recorded, so nothing can be sent or acknowledged.
    StoreCannotWrite { error: String },
    /// The read connection fails: whether pages are overdue cannot be told.
    StoreCannotRead { error: String },
    /// No channel can send at all.
    NoChannel,
    /// The modem is down (SMS and voice cannot go out; email may still).
    ModemDown { reason: String },
    /// The modem has not answered for longer than its bound.
    ModemSilent { seconds: u64 },
    /// The modem answers, but every recent SMS submit and call set-up failed (no credit, a
    /// barred line): SMS and voice reach nobody even when email still works.
    PhoneFailing { reason: String },
    /// An essential task has not shown progress within its bound.
    TaskLate { task: &'static str, seconds: u64 },
    /// A page has been due for longer than any retry explains.
    PageOverdue { seconds: u64 },
    /// The self-test monitor found a lasting modem impairment.
    SelftestFault,
    /// The cloud pager a standby route stands behind has been unreachable for longer than the
    /// grace.
    UpstreamUnreachable { seconds: u64 },
    /// Pair hook: the box pages on its own (etcd unreachable, or the peer's config differs):
    /// duplicates are possible and the peer no longer covers for it.
    #[cfg(feature = "ha")]
    Pair { state: &'static str },
}

/// The assessment: impaired when any problem is present.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub problems: Vec<Problem>,
    /// Channels that are down while others still page: worth a look, not an outage.
    pub degraded: Vec<String>,
}

impl Verdict {
    /// Paging is impaired: `/healthz` answers 503 and the LED shows it.
    pub fn impaired(&self) -> bool {
        !self.problems.is_empty()
    }

    /// `ok`, `degraded` or `impaired`, for humans and scripts.
    pub fn word(&self) -> &'static str {
        if self.impaired() {
            "impaired"
        } else if !self.degraded.is_empty() {
            "degraded"
        } else {
            "ok"
        }
    }
}

/// Decides whether paging works from `facts`.
pub fn assess(facts: &Facts) -> Verdict {
    let mut v = Verdict::default();
    if let Err(e) = &facts.store_write {
        v.problems
            .push(Problem::StoreCannotWrite { error: e.clone() });
    }
    if let Err(e) = &facts.store_read {
        v.problems
            .push(Problem::StoreCannotRead { error: e.clone() });
    }
    if facts.store_faults > 0 {
        v.degraded.push(format!(
            "store: {} errors of ours (a bug: see the log)",
            facts.store_faults
        ));
    }
    if let Some(p) = &facts.paging {
        if p.impaired() {
            v.problems.push(Problem::NoChannel);
        }
        for (c, why) in &p.down {
            v.degraded.push(format!("{c}: {why}"));
        }
    }
    if let Some(m) = &facts.modem {
        // The modem is why the box exists: without it, SMS and voice are gone even when email
        // still works.
        if m.state == HealthState::Down {
            v.problems.push(Problem::ModemDown {
                reason: m.reason.clone(),
            });
        } else if let Some(s) = m.silent_for.filter(|s| *s > m.silence_bound) {
            v.problems.push(Problem::ModemSilent {
                seconds: s.as_secs(),
            });
        } else if let Some(p) = facts.paging.as_ref().filter(|p| {
            !p.ready
                .iter()
                .any(|c| matches!(c, Channel::Sms | Channel::Voice))
                && p.down
                    .iter()
                    .any(|(c, _)| matches!(c, Channel::Sms | Channel::Voice))
        }) {
            // The modem's own health looks fine, but the channels it carries fail every try.
            let reason = p
                .down
                .iter()
                .filter(|(c, _)| matches!(c, Channel::Sms | Channel::Voice))
                .map(|(c, why)| format!("{c}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            v.problems.push(Problem::PhoneFailing { reason });
        }
    }
    for l in &facts.late {
        v.problems.push(Problem::TaskLate {
            task: l.task,
            seconds: l.silent_seconds,
        });
    }
    if let Some(age) = facts.oldest_due.filter(|a| *a > OVERDUE) {
        v.problems.push(Problem::PageOverdue {
            seconds: age.as_secs(),
        });
    }
    if facts.selftest_fault {
        v.problems.push(Problem::SelftestFault);
    }
    // Other alerts page; these would not. Said before such an alert arrives.
    for w in &facts.pages_nobody {
        v.degraded.push(format!("config: {w}"));
    }
    if let Some(d) = facts.upstream_unreachable {
        v.problems.push(Problem::UpstreamUnreachable {
            seconds: d.as_secs(),
        });
    }
    #[cfg(feature = "ha")]
    if let Some(state) = facts.pair {
        v.problems.push(Problem::Pair { state });
    }
    v
}

/// Where the facts come from: each owner's published state.
#[derive(Clone)]
pub struct Sources {
    pub store: crate::store::Store,
    pub paging: Option<watch::Receiver<PagingHealth>>,
    pub modem: Option<watch::Receiver<Health>>,
    pub liveness: Liveness,
    pub selftest_fault: Option<watch::Receiver<bool>>,
    /// Wall time, for how long the modem has been silent.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Standby behind a cloud pager, when the daemon runs its task.
    pub standby: Option<watch::Receiver<Status>>,
    /// What the config in force pages nobody for, kept current by
    /// [`crate::escalation::reach::watch`].
    pub pages_nobody: Option<watch::Receiver<Vec<String>>>,
}

impl Sources {
    /// Reads every fact now. A store thread that does not answer counts as a store that cannot
    /// write: nothing can be recorded either way.
    pub async fn facts(&self) -> Facts {
        self.gather(true).await
    }

    /// [`Sources::facts`] without the round trip through the writer, for a scrape of
    /// `/metrics`, which must never queue behind a group commit. A writer thread that stopped
    /// taking jobs without its write health saying so is seen by `/healthz` (and by the
    /// heartbeats of every task that waits on it), not here.
    pub async fn facts_without_ping(&self) -> Facts {
        self.gather(false).await
    }

    async fn gather(&self, ping: bool) -> Facts {
        // A round trip through the writer proves its thread still takes jobs; whether the file
        // takes writes is the write health, fed by every write and the store's idle probe.
        let round_trip = if ping {
            self.store.ping().await.map(|_| ())
        } else {
            Ok(())
        };
        let store_write = match round_trip {
            Err(e) => Err(format!("the store does not answer: {e}")),
            Ok(()) => match &*self.store.write_health().borrow() {
                crate::store::WriteHealth::Ok => Ok(()),
                crate::store::WriteHealth::Failing { since, error } => Err(format!(
                    "cannot write since {}: {error}",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )),
            },
        };
        // A read that fails is reported too: it would otherwise hide an overdue page.
        let (store_read, oldest_due) = match self
            .store
            .read(|c, now| Ok(crate::store::outbox::oldest_due(c, now)?))
            .await
        {
            Ok(age) => (Ok(()), age),
            Err(e) => (Err(e.to_string()), None),
        };
        let store_faults = self.store.faults().borrow().count;
        Facts {
            store_write,
            store_read,
            store_faults,
            paging: self.paging.as_ref().map(|p| p.borrow().clone()),
            late: self.liveness.late(),
            modem: self.modem.as_ref().map(|m| {
                let h = m.borrow();
                ModemFacts {
                    state: h.state,
                    reason: h.reason.clone(),
                    silent_for: h.not_answering(self.clock.now()),
                    silence_bound: h.answer_bound,
                }
            }),
            oldest_due,
            selftest_fault: self.selftest_fault.as_ref().is_some_and(|f| *f.borrow()),
            upstream_unreachable: self.standby.as_ref().and_then(|s| {
                let now = self.clock.now();
                let s = s.borrow();
                match s.reachability {
                    Reachability::Unreachable { since } if s.impaired(now) => {
                        now.signed_duration_since(since).to_std().ok()
                    }
                    _ => None,
                }
            }),
            pages_nobody: self
                .pages_nobody
                .as_ref()
                .map(|w| w.borrow().clone())
                .unwrap_or_default(),
            #[cfg(feature = "ha")]
            pair: pair::standing().and_then(pair::Standing::impairment),
        }
    }

    /// The verdict now.
    pub async fn verdict(&self) -> Verdict {
        assess(&self.facts().await)
    }
}

/// How this half of a pair stands with its peer, as the pair's coordinator last said (pair
/// builds only). The pair sits above health (it reads paging health to decide whether to keep its
/// lease), so it hands its standing down as a function instead of health importing it.
#[cfg(feature = "ha")]
pub mod pair {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// What `/healthz`, `/metrics` and the LED need to know of the pair's mode.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Standing {
        /// Pages are claimed through etcd.
        Paired,
        /// The lease is lost: this box pages everything due on its own.
        Alone,
        /// Back in touch after a time alone, publishing what it did alone before claiming.
        Rejoining,
        /// The peer runs another escalation config: both boxes page on their own.
        Independent,
    }

    impl Standing {
        /// Why the pair is impaired, in one word; `None` while paired.
        pub fn impairment(self) -> Option<&'static str> {
            match self {
                Standing::Paired => None,
                Standing::Alone => Some("alone"),
                Standing::Rejoining => Some("rejoining"),
                Standing::Independent => Some("independent"),
            }
        }
    }

    type Source = Box<dyn Fn() -> Standing + Send + Sync>;

    /// Set once when the daemon starts the pair's coordinator; unset in a single box. A process
    /// holds one daemon, so one slot is enough.
    static SOURCE: OnceLock<Source> = OnceLock::new();

    /// Registers where the pair's standing is read from.
    pub fn publish(source: impl Fn() -> Standing + Send + Sync + 'static) {
        let _ = SOURCE.set(Box::new(source));
    }

    /// The pair's standing now; `None` in a single box.
    pub fn standing() -> Option<Standing> {
        SOURCE.get().map(|f| f())
    }

    /// Wakes whoever shows the standing without asking for it on each request (the LED): a box
    /// that starts paging alone must say so at once, not at the panel's next refresh.
    static CHANGES: OnceLock<tokio::sync::watch::Sender<()>> = OnceLock::new();

    fn changes() -> &'static tokio::sync::watch::Sender<()> {
        CHANGES.get_or_init(|| tokio::sync::watch::channel(()).0)
    }

    /// The standing changed (the pair calls it on each change of mode).
    pub fn changed() {
        changes().send_replace(());
    }

    /// A receiver that wakes on each change of the standing.
    pub fn subscribe() -> tokio::sync::watch::Receiver<()> {
        changes().subscribe()
    }

    /// One of the coordinator's two threads, which run again after a panic.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Thread {
        /// The lease, the mode, the heal and the peer's records.
        Session,
        /// Claims and their outcomes.
        Pages,
    }

    impl Thread {
        /// Its name in logs and in `/metrics`.
        pub fn name(self) -> &'static str {
            match self {
                Thread::Session => "session",
                Thread::Pages => "pages",
            }
        }
    }

    static SESSION_RESTARTS: AtomicU64 = AtomicU64::new(0);
    static PAGES_RESTARTS: AtomicU64 = AtomicU64::new(0);

    fn restarts_of(thread: Thread) -> &'static AtomicU64 {
        match thread {
            Thread::Session => &SESSION_RESTARTS,
            Thread::Pages => &PAGES_RESTARTS,
        }
    }

    /// `thread` panicked and runs again: counted for `/metrics`, where a restart that is
    /// otherwise invisible (the pair carries on) shows.
    pub fn restarted(thread: Thread) {
        restarts_of(thread).fetch_add(1, Ordering::Relaxed);
    }

    /// How often each thread was started again since the daemon started.
    pub fn restarts() -> [(Thread, u64); 2] {
        [Thread::Session, Thread::Pages].map(|t| (t, restarts_of(t).load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Channel;

    fn good() -> Facts {
        Facts {
            store_write: Ok(()),
            store_read: Ok(()),
            store_faults: 0,
            paging: Some(PagingHealth {
                ready: vec![Channel::Sms, Channel::Voice, Channel::Email],
                down: vec![],
            }),
            late: vec![],
            modem: Some(ModemFacts {
                state: HealthState::Up,
                reason: String::new(),
                silent_for: Some(Duration::from_secs(2)),
                silence_bound: Duration::from_secs(60),
            }),
            oldest_due: Some(Duration::from_secs(3)),
            selftest_fault: false,
            upstream_unreachable: None,
            pages_nobody: vec![],
            #[cfg(feature = "ha")]
            pair: None,
        }
    }

    // Pair hook: a box paging alone is impaired (the peer no longer covers for it).
    #[cfg(feature = "ha")]
    #[test]
    fn a_pair_box_paging_alone_is_impaired() {
        let v = assess(&Facts {
            pair: Some("alone"),
            ..good()
        });
        assert_eq!(v.problems, [Problem::Pair { state: "alone" }]);
        assert_eq!(v.word(), "impaired");
    }

    #[test]
    fn all_good_is_ok() {
        let v = assess(&good());
        assert!(!v.impaired());
        assert_eq!(v.word(), "ok");
    }

    #[test]
    fn each_fact_alone_impairs_paging() {
        let cases: Vec<(Facts, Problem)> = vec![
            (
                Facts {
                    store_write: Err("database or disk is full".into()),
                    ..good()
                },
                Problem::StoreCannotWrite {
                    error: "database or disk is full".into(),
                },
            ),
            (
                Facts {
                    paging: Some(PagingHealth {
                        ready: vec![],
                        down: vec![(Channel::Email, "relay refused".into())],
                    }),
                    ..good()
                },
                Problem::NoChannel,
            ),
            (
                Facts {
                    modem: Some(ModemFacts {
                        state: HealthState::Down,
                        reason: "port lost".into(),
                        silent_for: None,
                        silence_bound: Duration::from_secs(60),
                    }),
                    ..good()
                },
                Problem::ModemDown {
                    reason: "port lost".into(),
                },
            ),
            (
                Facts {
                    modem: Some(ModemFacts {
                        state: HealthState::Up,
                        reason: String::new(),
                        silent_for: Some(Duration::from_secs(61)),
                        silence_bound: Duration::from_secs(60),
                    }),
                    ..good()
                },
                Problem::ModemSilent { seconds: 61 },
            ),
            (
                Facts {
                    late: vec![Late {
                        task: "sender-sms",
                        silent_seconds: 400,
                    }],
                    ..good()
                },
                Problem::TaskLate {
                    task: "sender-sms",
                    seconds: 400,
                },
            ),
            (
                Facts {
                    oldest_due: Some(OVERDUE + Duration::from_secs(1)),
                    ..good()
                },
                Problem::PageOverdue {
                    seconds: OVERDUE.as_secs() + 1,
                },
            ),
            (
                Facts {
                    store_read: Err("disk I/O error".into()),
                    ..good()
                },
                Problem::StoreCannotRead {
                    error: "disk I/O error".into(),
                },
            ),
            (
                Facts {
                    selftest_fault: true,
                    ..good()
                },
                Problem::SelftestFault,
            ),
            (
                Facts {
                    upstream_unreachable: Some(Duration::from_secs(400)),
                    ..good()
                },
                Problem::UpstreamUnreachable { seconds: 400 },
            ),
        ];
        for (facts, problem) in cases {
            let v = assess(&facts);
            assert!(v.impaired(), "{facts:?}");
            assert_eq!(v.word(), "impaired");
            assert!(v.problems.contains(&problem), "{:?} lacks {problem:?}", v);
        }
    }

    #[test]
    fn one_channel_down_while_others_page_is_degraded_not_impaired() {
        let v = assess(&Facts {
            paging: Some(PagingHealth {
                ready: vec![Channel::Sms, Channel::Voice],
                down: vec![(Channel::Email, "password file missing".into())],
            }),
            ..good()
        });
        assert!(!v.impaired());
        assert_eq!(v.word(), "degraded");
        assert_eq!(v.degraded, vec!["email: password file missing".to_string()]);
    }

    /// A config whose high-urgency alerts on a route would page nobody: degraded, named.
    #[test]
    fn a_config_that_pages_nobody_for_critical_alerts_is_degraded() {
        let v = assess(&Facts {
            pages_nobody: vec![
                "route \"db\" (policy \"p\"): critical/error alerts would page nobody".into(),
            ],
            ..good()
        });
        assert!(!v.impaired());
        assert_eq!(v.word(), "degraded");
        assert!(v.degraded[0].starts_with("config: route \"db\""), "{v:?}");
    }

    /// A modem that answers while the network refuses every submit and call (no credit, a
    /// barred line) pages nobody by phone: impaired, though email still works.
    #[test]
    fn sms_and_voice_both_failing_is_impaired_though_email_works() {
        let v = assess(&Facts {
            paging: Some(PagingHealth {
                ready: vec![Channel::Email],
                down: vec![
                    (Channel::Sms, "the last 3 SMS submits failed".into()),
                    (
                        Channel::Voice,
                        "the last 3 calls could not be set up".into(),
                    ),
                ],
            }),
            ..good()
        });
        assert_eq!(
            v.problems,
            [Problem::PhoneFailing {
                reason: "sms: the last 3 SMS submits failed; voice: the last 3 calls could not \
                         be set up"
                    .into()
            }]
        );
        // One of the two still works: degraded only.
        let v = assess(&Facts {
            paging: Some(PagingHealth {
                ready: vec![Channel::Voice, Channel::Email],
                down: vec![(Channel::Sms, "the last 3 SMS submits failed".into())],
            }),
            ..good()
        });
        assert!(!v.impaired(), "{v:?}");
    }

    #[test]
    fn a_due_page_younger_than_the_bound_is_not_overdue() {
        let v = assess(&Facts {
            oldest_due: Some(OVERDUE),
            ..good()
        });
        assert!(!v.impaired());
    }
}
