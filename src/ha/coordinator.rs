//! The coordinator: the one owner of this box's etcd session (lease, mode, time alone).
//!
//! Two blocking threads, each with its own etcd client and connections. The session thread
//! renews the lease a few times per TTL, but only while the paging path reports itself working
//! (the lease means "this box can page"), moves between paired, alone and rejoining by the rules
//! in [`decide`](super::decide), publishes acks and resolves, and settles each incident's
//! canonical start when the incident opens ([`Coordinator::settle`]). The page thread answers
//! the sender's one question before a page, whether this box sends it now
//! ([`Coordinator::claim`]), and records the outcome after ([`Coordinator::sent`]): a page
//! waits for at most one etcd transaction of its own, never behind a renewal or another
//! incident's start. While alone it answers "send" to every claim, so a box cut off from etcd
//! pages like a single box; what it sends and acks then is published when etcd is back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::decide::{
    after_start_claim, claim_delay, clock_plausible, heal_records, incident_identity,
    lease_verdict, next_mode, override_retention, page_action, retention_verdict, unsettled_start,
    AckMark, AloneLog, Finished, HealRecord, Health, Mode, ModeEvent, PageAction, PageId, PageKey,
    PageView, RetentionVerdict, StartClaimNext, UnsettledStart,
};
use super::etcd::{
    retire_batch, Claim, ConfigAgreement, Error, Etcd, LeaseId, PeerRecord, StartClaim,
    RETENTION_ROTATION, SENT_RETENTION,
};
use super::share::SharedOverride;
use crate::clock::Clock;
use crate::config::HaConfig;
use crate::health::pair::Thread;
use crate::incident::Channel;

/// How often the peer's records (acks, resolves, shared alerts and overrides) are read between
/// lease renewals, which come only every third of `claim_ttl`: an alert that reached only the
/// peer is here within about this long, so the time in which it dies with the peer stays short.
const PEER_RECORDS_EVERY: Duration = Duration::from_secs(1);

/// How often a box checks whether a retention lease has held its records for
/// [`SENT_RETENTION`] by the clock ([`Session::end_retentions`]).
const RETENTION_CHECK_EVERY: Duration = Duration::from_secs(3600);

/// How many resolved incidents one transaction puts on the retention lease at most: each is
/// one operation of it (etcd refuses more than `--max-txn-ops`, 128 by default, at one level).
const RETIRE_PER_TXN: usize = 32;
/// How many such transactions a renewal writes at most: a backlog (the first look after a
/// restart reads the whole history) is worked off over the next renewals instead of holding
/// up the session, and competing with page claims for the members' disks.
const RETIRE_TXNS_PER_RENEWAL: usize = 4;
/// How many incidents may wait to be retired; beyond, the oldest are left persistent (the next
/// restart reads the history again and lists them once more).
const RETIRE_BACKLOG: usize = 100_000;

/// How long the paging health feed, which reports every second, may be silent before the session
/// treats this box as unable to page.
const FEED_STALE: Duration = Duration::from_secs(5);

/// How many early claims the page thread holds at most ([`Coordinator::claim_early`]): one per
/// channel a pass queues for is the usual count; beyond this, pages are claimed when asked.
const EARLY_MAX: usize = 8;
/// How long an early claim waits for its sender's ask before it is given back (at most half the
/// claim TTL): the sender asks milliseconds after the pass commits, and while the claim is held
/// the peer only watches it.
const EARLY_FOR: Duration = Duration::from_secs(2);
/// How often the page thread looks for early claims nobody asked for while it holds some.
const EARLY_CHECK: Duration = Duration::from_millis(500);
/// How long after a failed claim the next failure still belongs to the same streak: claims are
/// asked again a second after each failure.
const CLAIM_STREAK_GAP: Duration = Duration::from_secs(3);

/// A claim won before its sender asked.
#[derive(Debug)]
struct EarlyClaim {
    asked: Asked,
    /// The lease the claim is on: when another is current, the claim went with the old one.
    lease: LeaseId,
    at: Instant,
}

/// What the sender does with a due page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it now (the claim is ours, or this box pages alone).
    Send,
    /// Ask again after this long: the peer holds the claim, or goes first.
    Later(Duration),
    /// Do not send it: the peer sent it, or the incident was acked or resolved on either box.
    Skip(Finished),
}

/// A due page as this box knows it: what names it on both boxes, with this box's own start of
/// its incident (the pair's canonical start is the coordinator's to settle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePage {
    pub dedup_key: String,
    /// When this box opened the incident, milliseconds since the epoch.
    pub start_ms: i64,
    pub step: u32,
    pub target: String,
    pub channel: Channel,
    pub attempt: u32,
}

impl DuePage {
    /// The page's pair-wide id when its incident is named `identity`.
    fn id(&self, identity: &str) -> PageId {
        PageId::new(PageKey {
            incident: identity,
            step: self.step,
            target: &self.target,
            channel: self.channel,
            attempt: self.attempt,
        })
    }

    /// The incident's identity with this box's own start.
    fn own_identity(&self) -> String {
        incident_identity(&self.dedup_key, self.start_ms)
    }
}

/// The answer to [`Coordinator::claim`]: the decision, with the names the page and its
/// incident have in etcd (to report the outcome under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub decision: Decision,
    pub page: PageId,
    pub incident: String,
}

/// What the page thread does: only the page path's own requests.
enum PageCommand {
    Claim {
        due: DuePage,
        reply: oneshot::Sender<Asked>,
    },
    /// Claim now what a sender asks about shortly ([`Coordinator::claim_early`]).
    Early {
        due: DuePage,
    },
    Sent {
        page: PageId,
        incident: String,
    },
    Release {
        page: PageId,
        incident: String,
    },
    ClaimNamed {
        page: PageId,
        incident: String,
        reply: oneshot::Sender<Decision>,
    },
}

/// What the session thread does besides keeping the lease.
enum SessionCommand {
    /// An ack made here, or an ack withdrawn here (the incident is triggered again).
    Ack(String, AckMark),
    Resolve(String, i64),
    Share {
        incident: String,
        alert: String,
    },
    ShareOverride {
        key: String,
        value: String,
    },
    Identity {
        dedup_key: String,
        start_ms: i64,
        reply: oneshot::Sender<String>,
    },
    Settle {
        dedup_key: String,
        start_ms: i64,
    },
    /// The config was reloaded: this box's config hash now.
    ConfigHash(String),
}

/// The handle: cheap to clone; the threads end when the last handle is dropped.
#[derive(Clone)]
pub struct Coordinator {
    pages: std_mpsc::Sender<PageCommand>,
    session: std_mpsc::Sender<SessionCommand>,
    shared: Arc<Shared>,
    mode: watch::Receiver<Mode>,
    /// How long a caller waits for either thread's answer before it goes on without one (the
    /// claim TTL: by then the peer would take over a page anyway). A sender waits for these
    /// answers with a page in hand, so no wait may be unbounded.
    answer_within: Duration,
}

/// What both threads read and write. Each lock is held for a map look-up or a push, never
/// across a request to etcd.
#[derive(Default)]
struct Shared {
    /// The session's lease; `None` until the first grant.
    lease: Mutex<Option<LeaseId>>,
    /// The peer's published health as read at the last renewal (`None`: none published, or
    /// etcd did not answer): who claims first is decided from it without a read per page.
    peer: Mutex<Option<(String, Health)>>,
    /// What this box did while not claiming, until the heal publishes it. The mode changes to
    /// paired only under this lock, so nothing is logged after the heal's last look.
    alone: Mutex<AloneLog>,
    /// Canonical identities already settled, by (dedup key, local start): one settling per
    /// incident, not per page.
    identities: Mutex<HashMap<(String, i64), String>>,
    /// The leases `sent` records go on ([`SENT_RETENTION`]).
    retention: Mutex<Retention>,
    /// When the paging health feed last passed health on ([`Coordinator::fed`]); `None` until
    /// it first does.
    fed: Mutex<Option<Instant>>,
}

/// This box's retention leases. Only a lease whose grant time is marked in etcd takes records:
/// an unmarked one would never be revoked by the clock ([`Session::end_retentions`]) and, with
/// a leader that changes often, would keep its records for ever.
#[derive(Default, Clone, Copy)]
struct Retention {
    /// The lease records go on, and when it was granted.
    current: Option<(LeaseId, Instant)>,
    /// A lease granted to replace `current` whose mark was not written yet; the mark is tried
    /// again at the next renewal, and `current` keeps taking records meanwhile.
    unmarked: Option<LeaseId>,
}

impl Shared {
    /// Runs `write` with the current retention lease; when etcd says that lease is gone (a
    /// cluster restored from a backup), drops it, so the session grants another, and runs
    /// `write` once more without a lease: a record kept rather than lost. Any other error,
    /// retryable ones included (a leader election), is returned as it is, the lease kept.
    fn on_retention<T>(
        &self,
        mut write: impl FnMut(Option<LeaseId>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let retention = lock(&self.retention).current.map(|(lease, _)| lease);
        match (write(retention), retention) {
            (Err(e), Some(lease)) if e.is_lease_gone() => {
                tracing::warn!(error = %e, "pair: the lease for sent records is gone; granting another");
                self.drop_retention(lease);
                write(None)
            }
            (other, _) => other,
        }
    }

    /// Stops putting records on `lease`, unless the session replaced it meanwhile.
    fn drop_retention(&self, lease: LeaseId) {
        let mut retention = lock(&self.retention);
        if retention.current.is_some_and(|(l, _)| l == lease) {
            retention.current = None;
        }
    }
}

/// Locks `m`; a thread that panicked holding it left plain data, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn identity(&self, dedup_key: &str, start_ms: i64) -> Option<String> {
        lock(&self.identities)
            .get(&(dedup_key.to_string(), start_ms))
            .cloned()
    }

    fn remember(&self, dedup_key: &str, start_ms: i64, identity: String) {
        let mut known = lock(&self.identities);
        if known.len() > 10_000 {
            known.clear();
        }
        known.insert((dedup_key.to_string(), start_ms), identity);
    }

    /// Logs what `log` does for the heal if `mode` does not claim now; `false` when it does
    /// (then write it to etcd).
    fn log_unless_claiming(
        &self,
        mode: impl FnOnce() -> Mode,
        log: impl FnOnce(&mut AloneLog),
    ) -> bool {
        self.log_unless(|| mode().claims(), log)
    }

    /// Logs what `log` does for the heal unless `writes_now` (asked under the lock, as the
    /// mode turns paired only under it); `false` when it does not log (then write to etcd).
    fn log_unless(
        &self,
        writes_now: impl FnOnce() -> bool,
        log: impl FnOnce(&mut AloneLog),
    ) -> bool {
        let mut alone = lock(&self.alone);
        if writes_now() {
            return false;
        }
        log(&mut alone);
        true
    }
}

impl Coordinator {
    /// Starts the coordinator's threads. `paging` is `Some(health)` while this box's paging
    /// path works (that health is published to the peer) and `None` while it does not, which
    /// stops the lease renewals so the peer takes this box's claims when the TTL runs out.
    ///
    /// `config_hash` is this box's [`config_hash`](super::decide::config_hash): a peer with
    /// another turns coordination off. Acks and resolves the peer writes go to `peer_records`.
    pub fn start(
        cfg: HaConfig,
        etcd: Etcd,
        paging: watch::Receiver<Option<Health>>,
        config_hash: String,
        peer_records: tokio::sync::mpsc::UnboundedSender<PeerRecord>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Coordinator> {
        let (pages_tx, pages_rx) = std_mpsc::channel();
        let (session_tx, session_rx) = std_mpsc::channel();
        let now = Instant::now();
        // Start as if the lease had just been renewed: a box that cannot reach etcd at start
        // pages alone after `fallback_after`, like one that loses it later.
        let (mode_tx, mode) = watch::channel(Mode::Paired { last_renewed: now });
        let answer_within = cfg.claim_ttl;
        let shared = Arc::new(Shared::default());
        let pages = Pages {
            cfg: cfg.clone(),
            etcd: etcd.second(),
            paging: paging.clone(),
            mode: mode.clone(),
            shared: shared.clone(),
            deferred: HashSet::new(),
            early: HashMap::new(),
            claims_failing_since: None,
        };
        let session = Session {
            cfg,
            etcd,
            paging,
            mode: mode_tx,
            shared: shared.clone(),
            config_hash,
            peer_records,
            clock,
            seen_revision: 0,
            seen_override_revision: 0,
            published: None,
            unfinished: None,
            retiring: VecDeque::new(),
            retention_checked: None,
            feed_stale: false,
        };
        let (mut pages, mut session) = (pages, session);
        std::thread::Builder::new()
            .name("ha-pages".into())
            .spawn(move || {
                supervise(Thread::Pages, |phase| {
                    if phase != Phase::Panicked {
                        pages.run(&pages_rx)
                    }
                })
            })?;
        std::thread::Builder::new()
            .name("ha-session".into())
            .spawn(move || {
                supervise(Thread::Session, |phase| match phase {
                    Phase::First => session.run(&session_rx),
                    Phase::Panicked => session.unwind(),
                    Phase::Restart => {
                        session.recover(&session_rx);
                        session.run(&session_rx)
                    }
                })
            })?;
        Ok(Coordinator {
            pages: pages_tx,
            session: session_tx,
            shared,
            mode,
            answer_within,
        })
    }

    /// Whether this box sends `due` now, and the names it has in etcd. If the coordinator is
    /// gone the answer is [`Decision::Send`]: a duplicate is better than silence.
    pub async fn claim(&self, due: DuePage) -> Asked {
        let own = due.own_identity();
        let fallback = Asked {
            decision: Decision::Send,
            page: due.id(&own),
            incident: own,
        };
        let (reply, rx) = oneshot::channel();
        if self.pages.send(PageCommand::Claim { due, reply }).is_err() {
            return fallback;
        }
        self.answer(rx).await.unwrap_or(fallback)
    }

    /// Claims `due` now, before its sender asks: the escalation engine queued it and the sender
    /// takes it next, so the etcd transaction runs while the page's row is committed and
    /// claimed here, and [`Coordinator::claim`] then answers "send" from the claim won (the
    /// sender's ask queues behind this one on the page thread). Only a claim won in etcd is
    /// kept, and only while the lease it is on is current; one no sender asks for within
    /// [`EARLY_FOR`] (the row did not commit, or was cancelled first) is given back, so the peer
    /// sends the page.
    pub fn claim_early(&self, due: DuePage) {
        let _ = self.pages.send(PageCommand::Early { due });
    }

    /// The paging health feed passed health on just now. Once it has, a feed silent for
    /// [`FEED_STALE`] counts as "cannot page": the lease is no longer renewed.
    pub fn fed(&self) {
        *lock(&self.shared.fed) = Some(Instant::now());
    }

    /// The page was sent: writes `sent` (or remembers it for the heal, when alone).
    pub fn sent(&self, page: PageId, incident: &str) {
        let _ = self.pages.send(PageCommand::Sent {
            page,
            incident: incident.to_string(),
        });
    }

    /// The page could not be sent here: gives the claim back so the peer sends it now.
    pub fn release(&self, page: PageId, incident: &str) {
        let _ = self.pages.send(PageCommand::Release {
            page,
            incident: incident.to_string(),
        });
    }

    /// An ack on this box, published so the peer starts no page of the incident.
    pub fn ack(&self, incident: &str) {
        let _ = self
            .session
            .send(SessionCommand::Ack(incident.to_string(), AckMark::Ack));
    }

    /// An incident acknowledged before is triggered again here: its ack is withdrawn from etcd,
    /// published likewise. Left there, it would stop every claim of the pages that follow.
    pub fn unack(&self, incident: &str) {
        let _ = self
            .session
            .send(SessionCommand::Ack(incident.to_string(), AckMark::Retract));
    }

    /// The config was reloaded and its hash is now `hash`: published and compared with the
    /// peer's again at the next renewal. Kept from the start, a reload on one box only (or one
    /// the other box rejected) would leave both paired on different escalation configs: the
    /// box winning a claim pages by its config, an old number or a person no longer on call.
    pub fn config_changed(&self, hash: String) {
        let _ = self.session.send(SessionCommand::ConfigHash(hash));
    }

    /// A resolve on this box at `at_ms` (milliseconds since the epoch), published likewise.
    pub fn resolve(&self, incident: &str, at_ms: i64) {
        let _ = self
            .session
            .send(SessionCommand::Resolve(incident.to_string(), at_ms));
    }

    /// Whether this box sends a message that is not a page to a person (a digest, a status
    /// update), claimed as `page` under `incident`, a name no ack or resolve is ever written
    /// under. If the coordinator is gone the answer is [`Decision::Send`].
    pub async fn claim_named(&self, page: PageId, incident: &str) -> Decision {
        let (reply, rx) = oneshot::channel();
        let cmd = PageCommand::ClaimNamed {
            page,
            incident: incident.to_string(),
            reply,
        };
        if self.pages.send(cmd).is_err() {
            return Decision::Send;
        }
        self.answer(rx).await.unwrap_or(Decision::Send)
    }

    /// An alert that reached only this box, shared under its incident's pair-wide name so the
    /// peer opens the same incident (kept for the heal while this box is alone).
    pub fn share(&self, incident: &str, alert: String) {
        let _ = self.session.send(SessionCommand::Share {
            incident: incident.to_string(),
            alert,
        });
    }

    /// A runtime override added or deleted on this box, shared under its pair-wide `key` (kept
    /// for the heal while this box is alone).
    pub fn share_override(&self, key: String, value: String) {
        let _ = self
            .session
            .send(SessionCommand::ShareOverride { key, value });
    }

    /// Settles the canonical start of an incident that just opened here, off the page path,
    /// so that its first page costs one claim transaction. Nothing waits for it: a page due
    /// before it is done settles the start itself.
    pub fn settle(&self, dedup_key: &str, start_ms: i64) {
        let _ = self.session.send(SessionCommand::Settle {
            dedup_key: dedup_key.to_string(),
            start_ms,
        });
    }

    /// The pair-wide identity of this box's incident with `dedup_key`, started here at
    /// `start_ms`: with the peer's start when it wrote one first. Without etcd (alone, or the
    /// coordinator gone) the box's own start: its pages then claim on ids of their own, a
    /// duplicate at worst.
    pub async fn identity(&self, dedup_key: &str, start_ms: i64) -> String {
        let own = incident_identity(dedup_key, start_ms);
        let (reply, rx) = oneshot::channel();
        let cmd = SessionCommand::Identity {
            dedup_key: dedup_key.to_string(),
            start_ms,
            reply,
        };
        if self.session.send(cmd).is_err() {
            return own;
        }
        self.answer(rx).await.unwrap_or(own)
    }

    /// A thread's answer, or `None` when it dropped the question (a panic) or did not answer
    /// within [`Coordinator::answer_within`] (etcd slow past its timeouts, a thread wedged):
    /// the caller goes on with what it would do alone, a duplicate at worst.
    async fn answer<T>(&self, rx: oneshot::Receiver<T>) -> Option<T> {
        match tokio::time::timeout(self.answer_within, rx).await {
            Ok(answer) => answer.ok(),
            Err(_) => {
                tracing::error!(within = ?self.answer_within, "pair: the coordinator did not answer in time; going on without it (duplicates possible)");
                None
            }
        }
    }

    /// The current mode, for `/healthz`, the status page and the LED.
    pub fn mode(&self) -> watch::Receiver<Mode> {
        self.mode.clone()
    }
}

/// The first pause before a panicked thread runs again; it doubles with each panic that
/// follows soon after, up to [`RESTART_DELAY_MAX`].
const RESTART_DELAY: Duration = Duration::from_millis(50);

/// The longest pause before a panicked thread runs again: short against any lease TTL, so one
/// panic costs at most a renewal and a thread that panics over and over still ticks the mode
/// towards alone (see [`Session::recover`]).
const RESTART_DELAY_MAX: Duration = Duration::from_secs(1);

/// A run that lasted this long before its panic was not part of a panic loop: the next pause is
/// the first one again.
const RESTART_STABLE: Duration = Duration::from_secs(60);

/// Calls `run` until it returns (its channel closed: the daemon stops), and again after each
/// panic, with `true` then. The threads are the pair's own machinery, which nothing else
/// watches: one that stayed dead would leave the mode as it was (`/healthz` saying "paired")
/// while the lease lapsed, and acks made here would never reach the peer. Each restart is
/// logged as an error and counted in `/metrics`. The state a panic leaves is plain data (locks
/// are taken past poisoning, see [`lock`]); the channel and what is queued on it stay.
fn supervise(thread: Thread, mut run: impl FnMut(Phase)) {
    let mut phase = Phase::First;
    let mut delay = RESTART_DELAY;
    loop {
        let started = Instant::now();
        let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(phase)))
        else {
            return;
        };
        // At once, not after the pause: what the panic left half done (a mode set by a renewal
        // that did not finish) must not show meanwhile.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(Phase::Panicked)));
        if started.elapsed() >= RESTART_STABLE {
            delay = RESTART_DELAY;
        }
        crate::health::pair::restarted(thread);
        tracing::error!(
            thread = thread.name(),
            why = %crate::supervisor::panic_message(&*payload),
            after = ?delay,
            "pair: a coordinator thread panicked; starting it again"
        );
        std::thread::sleep(delay);
        delay = delay.saturating_mul(2).min(RESTART_DELAY_MAX);
        phase = Phase::Restart;
    }
}

/// Why [`supervise`] calls a thread's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The thread's first run.
    First,
    /// Right after a panic, before the pause: undo what the panic left half done (no run).
    Panicked,
    /// A run after a panic and its pause.
    Restart,
}

/// Fires the fault point `task.panic.ha-<thread>` (fault-injection builds only), so the
/// end-to-end tests can prove a panicked coordinator thread is started again.
fn panic_if_armed(thread: Thread) {
    panic_at(&format!("task.panic.ha-{}", thread.name()));
}

/// Fires the fault point `point` (fault-injection builds only).
fn panic_at(point: &str) {
    if crate::fault::ENABLED && crate::fault::armed(point) {
        panic!("fault point {point} fired");
    }
}

/// Whether records are written to etcd now rather than kept for the heal: also while the
/// configs differ (etcd answers; the peer still wants the alerts and overrides made here), not
/// while alone or rejoining (a heal publishes them, in order).
fn reaches_etcd(mode: Mode) -> bool {
    matches!(mode, Mode::Paired { .. } | Mode::Independent)
}

/// The session thread: lease, mode, heal, acks, resolves, shared alerts and overrides,
/// settling starts.
struct Session {
    cfg: HaConfig,
    etcd: Etcd,
    paging: watch::Receiver<Option<Health>>,
    mode: watch::Sender<Mode>,
    shared: Arc<Shared>,
    config_hash: String,
    peer_records: tokio::sync::mpsc::UnboundedSender<PeerRecord>,
    /// The wall clock retention marks are written and judged by (the daemon's, so a test clock
    /// moves them too).
    clock: Arc<dyn Clock>,
    /// The etcd revision up to which the peer's acks and resolves were passed on.
    seen_revision: i64,
    /// The same for the peer's runtime overrides.
    seen_override_revision: i64,
    /// The lease on which this box's health and config hash are in etcd, and that health:
    /// both live on the lease, so a renewal writes them again only when either changed.
    published: Option<(LeaseId, Health)>,
    /// The mode before the renewal under way, if one is: a renewal that panicked part way
    /// (after the lease, before the peer's records) does not count as one.
    unfinished: Option<Mode>,
    /// Incidents the peer resolved, read here, whose records are not on the retention lease
    /// yet ([`Etcd::retire_incident`]).
    retiring: VecDeque<String>,
    /// When the retention leases were last checked for their end ([`Session::end_retentions`]).
    retention_checked: Option<Instant>,
    /// Whether the health feed was last found silent for [`FEED_STALE`] (logged once a spell).
    feed_stale: bool,
}

impl Session {
    fn run(&mut self, rx: &std_mpsc::Receiver<SessionCommand>) {
        // Three renewals per TTL: one lost request does not lose the lease.
        let tick = self.cfg.claim_ttl / 3;
        let mut next_tick = Instant::now();
        let mut next_records = next_tick + PEER_RECORDS_EVERY;
        loop {
            panic_if_armed(Thread::Session);
            let now = Instant::now();
            if now >= next_tick {
                // A renewal reads the peer's records too.
                self.unfinished = Some(*self.mode.borrow());
                self.renew(now);
                self.unfinished = None;
                next_tick = now + tick;
                next_records = now + PEER_RECORDS_EVERY;
            } else if now >= next_records {
                if self.mode.borrow().claims() {
                    let _ = self.pass_peer_records();
                }
                next_records = Instant::now() + PEER_RECORDS_EVERY;
            }
            let wake = next_tick.min(next_records);
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(cmd) => self.handle(cmd),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // A clean stop: let the peer take over at once instead of after the TTL.
        if let Some(lease) = lock(&self.shared.lease).take() {
            let _ = self.etcd.revoke_lease(lease);
        }
    }

    /// Right after a panic: what was published is not known to be on the lease, a renewal the
    /// panic cut short does not count, and the mode moves on as if a renewal had failed. A
    /// thread that panics in or before every renewal thus falls back to paging alone after
    /// `fallback_after`, and says so, like a box cut off from etcd.
    fn unwind(&mut self) {
        if let Some(before) = self.unfinished.take() {
            self.mode.send_replace(before);
        }
        self.published = None;
        self.set_mode(ModeEvent::Tick(Instant::now()));
        crate::health::pair::changed();
    }

    /// Before running again after a panic (the run renews at once): commands queued meanwhile
    /// are answered first, so a sender waiting for an incident's name does not wait behind a
    /// renewal that may panic again.
    fn recover(&mut self, rx: &std_mpsc::Receiver<SessionCommand>) {
        while let Ok(cmd) = rx.try_recv() {
            self.handle(cmd);
        }
    }

    fn set_mode(&mut self, event: ModeEvent) {
        let before = *self.mode.borrow();
        let after = next_mode(before, event, self.cfg.fallback_after);
        let changed = std::mem::discriminant(&before) != std::mem::discriminant(&after);
        if changed {
            match after {
                Mode::Alone { .. } => tracing::error!(
                    fallback_after = ?self.cfg.fallback_after,
                    "pair: etcd unreachable; this box now pages everything due on its own (duplicates possible)"
                ),
                Mode::Rejoining { .. } => {
                    tracing::warn!(
                        "pair: etcd reachable again; publishing what was sent and acked alone"
                    )
                }
                Mode::Paired { .. } => tracing::info!("pair: coordinating with the peer"),
                Mode::Independent => {
                    tracing::error!("pair: coordination off; both boxes page on their own")
                }
            }
        }
        self.mode.send_replace(after);
        if changed {
            crate::health::pair::changed();
        }
    }

    /// This box's paging health as its feed last passed it on; `None` (cannot page) also when a
    /// feed that reported once has been silent for [`FEED_STALE`]: a feed that stopped would
    /// otherwise keep the lease, and the claims on it, alive on the health it last saw.
    fn paging_health(&mut self) -> Option<Health> {
        let stale = lock(&self.shared.fed).is_some_and(|at| at.elapsed() > FEED_STALE);
        if stale != self.feed_stale {
            self.feed_stale = stale;
            if stale {
                tracing::error!(silent = ?FEED_STALE, "pair: this box's paging health feed stopped reporting; the lease lapses and the peer takes this box's pages");
            } else {
                tracing::info!("pair: the paging health feed reports again");
            }
        }
        if stale {
            return None;
        }
        *self.paging.borrow()
    }

    /// Renews (or first grants) the lease and publishes health, while the paging path works.
    fn renew(&mut self, now: Instant) {
        let Some(health) = self.paging_health() else {
            // This box cannot page: let the lease run out so the peer takes our claims.
            self.set_mode(ModeEvent::Tick(now));
            return;
        };
        let current = *lock(&self.shared.lease);
        // etcd renewed the lease no earlier than this: the fallback counts from here, never
        // from when the answer (or the reads after it) came back.
        let asked_at = Instant::now();
        let renewed = match current {
            Some(lease) => match self.etcd.keep_alive(lease) {
                Ok(_) => Ok(lease),
                Err(Error::LeaseExpired(_)) => self.etcd.grant_lease(self.cfg.claim_ttl),
                Err(e) => Err(e),
            },
            None => self.etcd.grant_lease(self.cfg.claim_ttl),
        };
        match renewed.and_then(|lease| {
            if current != Some(lease) {
                // A new lease: claims made on an earlier one are gone (the peer may send them).
                tracing::info!(lease = lease.0, ttl = ?self.cfg.claim_ttl, "pair: lease granted");
                // Before the first claim can be made on it, so its page's record goes too.
                self.rotate_retention();
                *lock(&self.shared.lease) = Some(lease);
            }
            self.publish(lease, health)
        }) {
            Ok(agreement) => {
                let mut reachable = true;
                match agreement {
                    Ok(ConfigAgreement::Agreed) => {
                        self.set_mode(ModeEvent::ConfigMatches(asked_at))
                    }
                    Ok(ConfigAgreement::Mismatch { theirs }) => {
                        if !matches!(*self.mode.borrow(), Mode::Independent) {
                            tracing::error!(ours = %self.config_hash, %theirs, "pair: the peer runs another escalation config; both boxes page on their own until the configs match");
                        }
                        self.set_mode(ModeEvent::ConfigMismatch);
                    }
                    Err(e) => {
                        // Not known to be on the lease: written again at the next renewal.
                        self.published = None;
                        reachable = !matches!(e, Error::Unreachable { .. });
                        tracing::warn!(error = %e, "pair: cannot compare configs")
                    }
                }
                self.set_mode(ModeEvent::LeaseRenewed(asked_at));
                // A cut that falls between the renewal and the reads after it must cost one
                // timeout, not one per read: the next renewal (and with it the fallback) waits
                // for them.
                if !(reachable && self.after_renewal()) {
                    // etcd went away after the renewal: the fallback is judged now.
                    self.set_mode(ModeEvent::Tick(Instant::now()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pair: cannot renew the lease");
                // The time the attempt gave up, not when it began: a cut member costs its
                // timeouts, and the fallback must count them, or a box cut off pages alone
                // one whole failed attempt late.
                self.set_mode(ModeEvent::Tick(Instant::now()));
            }
        }
    }

    /// What a renewal does once the lease is renewed: publishes what happened alone, passes
    /// the peer's records on, reads the peer's health and rotates the retention lease. Stops
    /// at the first request no member answered, and says whether etcd was reachable throughout.
    fn after_renewal(&mut self) -> bool {
        // A panic between the renewal and the peer's records must not leave the box "paired".
        panic_at("task.panic.ha-session-renewed");
        // Also while paired: a write that failed then (a leader election, a timeout) was kept
        // for the heal, and must not wait for the next time etcd is lost to reach the peer.
        let parked = *lock(&self.shared.alone) != AloneLog::default();
        let mode = *self.mode.borrow();
        if matches!(mode, Mode::Rejoining { .. }) || (parked && mode.claims()) {
            if let Err(Error::Unreachable { .. }) = self.heal() {
                return false;
            }
        }
        if self.pass_peer_records().is_err() {
            return false;
        }
        match self.etcd.peer_health(&self.cfg.name) {
            Ok(peer) => *lock(&self.shared.peer) = peer,
            Err(e) => {
                // Not known: the healthier-box ordering waits for nobody until it is.
                *lock(&self.shared.peer) = None;
                tracing::debug!(error = %e, "pair: cannot read the peer's health");
                if matches!(e, Error::Unreachable { .. }) {
                    return false;
                }
            }
        }
        self.rotate_retention();
        if let Err(Error::Unreachable { .. }) = self.retire() {
            return false;
        }
        self.end_retentions();
        true
    }

    /// Grants the next lease for `sent` records once the current one has taken them for
    /// [`RETENTION_ROTATION`] (or there is none yet). Without one, records are kept for ever.
    fn rotate_retention(&mut self) {
        let Retention { current, unmarked } = *lock(&self.shared.retention);
        let due = current.is_none_or(|(_, granted)| granted.elapsed() >= RETENTION_ROTATION);
        if !due && unmarked.is_none() {
            return;
        }
        let now_ms = self.clock.now().timestamp_millis();
        if !clock_plausible(now_ms) {
            // A mark from a clock near 1970 would look over to the peer at once. The current
            // lease, if any, keeps taking records; without one they stay persistent.
            tracing::warn!(
                "pair: the clock is not set yet; no retention lease is granted until it is"
            );
            return;
        }
        let lease = match unmarked {
            Some(lease) => lease,
            None => match self.etcd.grant_lease(SENT_RETENTION) {
                Ok(lease) => {
                    lock(&self.shared.retention).unmarked = Some(lease);
                    lease
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pair: cannot grant the lease that prunes sent records; they are kept");
                    return;
                }
            },
        };
        match self.etcd.mark_retention(lease, now_ms) {
            Ok(()) => {
                *lock(&self.shared.retention) = Retention {
                    current: Some((lease, Instant::now())),
                    unmarked: None,
                };
            }
            Err(e) if e.is_lease_gone() => {
                tracing::warn!(error = %e, "pair: the new retention lease is gone before its mark; granting another");
                lock(&self.shared.retention).unmarked = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "pair: cannot record when the retention lease was granted; retrying at the next renewal");
            }
        }
    }

    /// Revokes every retention lease, either box's, granted [`SENT_RETENTION`] ago or more by
    /// this box's clock ([`retention_verdict`]), at most once per [`RETENTION_CHECK_EVERY`]: the
    /// bound in docs/ha.md holds even when etcd's leader changes often, which gives every lease
    /// its full TTL again.
    fn end_retentions(&mut self) {
        if self
            .retention_checked
            .is_some_and(|at| at.elapsed() < RETENTION_CHECK_EVERY)
        {
            return;
        }
        let leases = match self.etcd.retention_leases() {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "pair: cannot list the retention leases; retrying");
                return;
            }
        };
        self.retention_checked = Some(Instant::now());
        let now_ms = self.clock.now().timestamp_millis();
        for (lease, mark) in leases {
            let granted_ms = mark.granted_ms;
            let verdict = match mark.end_ms {
                Some(end_ms) => lease_verdict(granted_ms, end_ms, now_ms),
                None => retention_verdict(granted_ms, now_ms, SENT_RETENTION),
            };
            match verdict {
                RetentionVerdict::Keep => {}
                RetentionVerdict::Implausible => tracing::warn!(
                    lease = lease.0,
                    granted_ms,
                    now_ms,
                    "pair: a retention lease's mark and this box's clock disagree; it is kept until its TTL ends (check both boxes' clocks)"
                ),
                RetentionVerdict::Revoke => match self.etcd.revoke_lease(lease) {
                    Ok(()) => tracing::info!(
                        lease = lease.0,
                        "pair: retention lease ended; its records are gone"
                    ),
                    // The peer may have revoked it first.
                    Err(e) => {
                        tracing::debug!(error = %e, lease = lease.0, "pair: cannot revoke a retention lease")
                    }
                },
            }
        }
    }

    /// Puts this box's health and config hash on `lease` when they are not there yet, and
    /// compares the config hashes. The outer error is the health's write (the renewal failed);
    /// the inner one the comparison's.
    fn publish(
        &mut self,
        lease: LeaseId,
        health: Health,
    ) -> Result<Result<ConfigAgreement, Error>, Error> {
        let on_lease = matches!(self.published, Some((l, _)) if l == lease);
        if self.published != Some((lease, health)) {
            self.etcd.publish_health(&self.cfg.name, health, lease)?;
        }
        let agreement = if on_lease {
            self.etcd.compare_config_hash(&self.config_hash)
        } else {
            self.etcd
                .check_config_hash(&self.cfg.name, &self.config_hash, lease)
        };
        self.published = Some((lease, health));
        Ok(agreement)
    }

    /// Passes on the acks and resolves the peer wrote since the last look, so they are applied
    /// here too (the claim transaction already stops pages of them; this closes the incident).
    /// The incidents the peer resolved, now read here, are queued for [`Session::retire`].
    fn pass_peer_records(&mut self) -> Result<(), ()> {
        match self.etcd.peer_records(&self.cfg.name, self.seen_revision) {
            Ok(read) => {
                for r in read.records {
                    let _ = self.peer_records.send(r);
                }
                self.seen_revision = read.revision;
                self.retiring.extend(read.to_retire);
                if self.retiring.len() > RETIRE_BACKLOG {
                    let over = self.retiring.len() - RETIRE_BACKLOG;
                    tracing::warn!(
                        incidents = over,
                        "pair: too many resolved incidents to prune at once; these stay in etcd"
                    );
                    self.retiring.drain(..over);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pair: cannot read the peer's acks");
                if matches!(e, Error::Unreachable { .. }) {
                    return Err(());
                }
            }
        }
        match self
            .etcd
            .peer_overrides(&self.cfg.name, self.seen_override_revision)
        {
            Ok((records, revision)) => {
                for r in records {
                    let _ = self.peer_records.send(r);
                }
                self.seen_override_revision = revision;
            }
            Err(e) => {
                tracing::warn!(error = %e, "pair: cannot read the peer's overrides");
                if matches!(e, Error::Unreachable { .. }) {
                    return Err(());
                }
            }
        }
        Ok(())
    }

    /// Puts incidents of [`Session::retiring`] on the retention lease, [`RETIRE_PER_TXN`] to a
    /// transaction, [`RETIRE_TXNS_PER_RENEWAL`] transactions at most. Without a lease (its
    /// grant failed) they wait. When etcd says the lease is gone (a cluster restored from a
    /// backup) it is dropped and the incidents wait for the one the next renewal grants; a
    /// retryable error (a leader election) leaves lease and incidents as they are for the next
    /// renewal, and is returned. Only incidents etcd refuses for another reason are left
    /// persistent.
    fn retire(&mut self) -> Result<(), Error> {
        for _ in 0..RETIRE_TXNS_PER_RENEWAL {
            let n = retire_batch(&self.retiring, RETIRE_PER_TXN);
            if n == 0 {
                return Ok(());
            }
            let Some((lease, _)) = lock(&self.shared.retention).current else {
                return Ok(());
            };
            let batch: Vec<&str> = self.retiring.iter().take(n).map(String::as_str).collect();
            match self.etcd.retire_incidents(&batch, lease) {
                Ok(()) => {}
                Err(e) if e.is_lease_gone() => {
                    tracing::warn!(error = %e, "pair: the retention lease is gone; resolved incidents wait for the next one");
                    self.shared.drop_retention(lease);
                    return Ok(());
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, "pair: cannot prune resolved incidents now; retrying");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(error = %e, incidents = n, "pair: cannot put resolved incidents on the retention lease; they stay in etcd");
                }
            }
            self.retiring.drain(..n);
        }
        Ok(())
    }

    /// Writes a `sent` record of a page sent alone on the retention lease
    /// ([`Shared::on_retention`]), as the page thread does; on an error the heal stops and
    /// publishes it at the next renewal.
    fn mark_sent_alone(&mut self, page: &PageId) -> Result<(), Error> {
        let (etcd, me) = (&mut self.etcd, &self.cfg.name);
        self.shared
            .on_retention(|retention| etcd.mark_sent_alone(page, me, retention))
    }

    /// Publishes a shared override on a lease of its own, granted for the override's time left
    /// and the retention ([`override_retention`]) and marked with its end, so that
    /// [`Session::end_retentions`] revokes it then even when leader changes keep renewing its
    /// TTL. The lease of the record it replaces is revoked: it holds nothing else. A value that
    /// does not say when it ends, a clock not set yet, or a lease etcd refuses, leaves the
    /// record persistent rather than unshared.
    fn publish_override(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let now_ms = self.clock.now().timestamp_millis();
        let ttl = serde_json::from_str::<SharedOverride>(value)
            .ok()
            .and_then(|o| override_retention(o.until.timestamp_millis(), now_ms, SENT_RETENTION))
            .filter(|_| clock_plausible(now_ms));
        let end_ms = ttl
            .and_then(|ttl| i64::try_from(ttl.as_millis()).ok())
            .and_then(|ttl_ms| now_ms.checked_add(ttl_ms));
        let lease = match (ttl, end_ms) {
            (Some(ttl), Some(end_ms)) => self.override_lease(key, ttl, now_ms, end_ms)?,
            _ => None,
        };
        let previous = self
            .etcd
            .publish_override(key, &self.cfg.name, value, lease)?;
        if let Some(previous) = previous.filter(|p| Some(*p) != lease) {
            if let Err(e) = self.etcd.revoke_lease(previous) {
                tracing::debug!(error = %e, lease = previous.0, "pair: cannot revoke a replaced override's lease; it ends by its mark");
            }
        }
        Ok(())
    }

    /// Grants and marks the lease of a shared override ([`Session::publish_override`]). A
    /// retryable error is returned (the heal tries again); any other leaves the record without
    /// a lease.
    fn override_lease(
        &mut self,
        key: &str,
        ttl: Duration,
        now_ms: i64,
        end_ms: i64,
    ) -> Result<Option<LeaseId>, Error> {
        let marked = self.etcd.grant_lease(ttl).and_then(|lease| {
            match self.etcd.mark_override_lease(lease, now_ms, end_ms) {
                Ok(()) => Ok(lease),
                Err(e) => {
                    // Unmarked, nothing would end it once leader changes renew its TTL.
                    if !matches!(e, Error::Unreachable { .. }) {
                        let _ = self.etcd.revoke_lease(lease);
                    }
                    Err(e)
                }
            }
        });
        match marked {
            Ok(lease) => Ok(Some(lease)),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, %key, "pair: no lease for a shared override; it stays in etcd");
                Ok(None)
            }
        }
    }

    /// Publishes what happened alone, then claims again. What was logged while publishing is
    /// published by the next renewal's heal; the mode turns paired only once the log is empty.
    /// Stops at the first write that fails, and returns its error.
    fn heal(&mut self) -> Result<(), Error> {
        let published = lock(&self.shared.alone).clone();
        let records = heal_records(&published, |_| false);
        for r in &records {
            let written = match r {
                HealRecord::Intake(i, alert) => self
                    .settled(i)
                    .and_then(|i| self.etcd.publish_intake(&i, &self.cfg.name, alert)),
                HealRecord::Override(key, value) => self.publish_override(key, value),
                HealRecord::Ack(i) => self
                    .settled(i)
                    .and_then(|i| self.etcd.publish_ack(&i, &self.cfg.name)),
                HealRecord::Retract(i) => self.settled(i).and_then(|i| self.etcd.retract_ack(&i)),
                HealRecord::Resolve(i, at) => self
                    .settled(i)
                    .and_then(|i| self.etcd.publish_resolve(&i, &self.cfg.name, *at)),
                // Named with the incident as this box alone knew it: marked under the pair's
                // name, the id the peer computes, so the peer does not send it again.
                HealRecord::Sent(p) => match p.incident().map(str::to_string) {
                    Some(own) => self.settled(&own).and_then(|i| {
                        let page = p.renamed(&i).unwrap_or_else(|| p.clone());
                        self.mark_sent_alone(&page)
                    }),
                    None => self.mark_sent_alone(p),
                },
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, "pair: cannot publish what was done alone; will retry");
                return Err(e);
            }
        }
        let shared = self.shared.clone();
        let mut alone = lock(&shared.alone);
        // Entries are only ever appended: what was published is each list's head.
        alone.sent.drain(..published.sent.len());
        alone.acked.drain(..published.acked.len());
        alone.resolved.drain(..published.resolved.len());
        alone.shared.drain(..published.shared.len());
        alone.overrides.drain(..published.overrides.len());
        if *alone == AloneLog::default() {
            self.set_mode(ModeEvent::HealPublished(Instant::now()));
        }
        Ok(())
    }

    fn handle(&mut self, cmd: SessionCommand) {
        match cmd {
            SessionCommand::Ack(i, mark) => {
                let shared = self.shared.clone();
                // Behind an earlier mark of the incident still waiting in the log, this one
                // waits too: written at once, it would be undone when the heal writes the
                // older one (an ack parked by a failed write, retracted since, written back).
                // (Asked before: the log's lock is held while the mode is asked.)
                let behind = lock(&shared.alone).acked.iter().any(|(x, _)| *x == i);
                let logged = shared.log_unless(
                    || !behind && self.mode.borrow().claims(),
                    |log| log.acked.push((i.clone(), mark)),
                );
                let written = logged
                    || match mark {
                        AckMark::Ack => self.etcd.publish_ack(&i, &self.cfg.name),
                        AckMark::Retract => self.etcd.retract_ack(&i),
                    }
                    .is_ok();
                if !written {
                    tracing::error!(incident = %i, change = ?mark, "pair: cannot write an ack to etcd; kept to publish after the next renewal");
                    lock(&shared.alone).acked.push((i, mark));
                }
            }
            SessionCommand::Resolve(i, at) => {
                let shared = self.shared.clone();
                let logged = shared.log_unless_claiming(
                    || *self.mode.borrow(),
                    |log| log.resolved.push((i.clone(), at)),
                );
                if !logged && self.etcd.publish_resolve(&i, &self.cfg.name, at).is_err() {
                    tracing::error!(incident = %i, "pair: cannot write a resolve to etcd; kept to publish after the next renewal");
                    lock(&shared.alone).resolved.push((i, at));
                }
            }
            SessionCommand::Share { incident, alert } => {
                let shared = self.shared.clone();
                let logged = shared.log_unless(
                    || reaches_etcd(*self.mode.borrow()),
                    |log| log.shared.push((incident.clone(), alert.clone())),
                );
                if !logged
                    && self
                        .etcd
                        .publish_intake(&incident, &self.cfg.name, &alert)
                        .is_err()
                {
                    tracing::error!(%incident, "pair: cannot share an alert through etcd; kept to publish after the next renewal");
                    lock(&shared.alone).shared.push((incident, alert));
                }
            }
            SessionCommand::ShareOverride { key, value } => {
                let shared = self.shared.clone();
                let logged = shared.log_unless(
                    || reaches_etcd(*self.mode.borrow()),
                    |log| log.overrides.push((key.clone(), value.clone())),
                );
                if !logged && self.publish_override(&key, &value).is_err() {
                    tracing::error!(override_key = %key, "pair: cannot share an override through etcd; kept to publish after the next renewal");
                    lock(&shared.alone).overrides.push((key, value));
                }
            }
            SessionCommand::ConfigHash(hash) => {
                if hash != self.config_hash {
                    tracing::info!(ours = %hash, "pair: the escalation config changed; comparing it with the peer's at the next renewal");
                    self.config_hash = hash;
                    // Written and compared again, not only compared.
                    self.published = None;
                }
            }
            SessionCommand::Identity {
                dedup_key,
                start_ms,
                reply,
            } => {
                let _ = reply.send(self.identity(dedup_key, start_ms));
            }
            SessionCommand::Settle {
                dedup_key,
                start_ms,
            } => self.settle(&dedup_key, start_ms),
        }
    }

    /// The pair-wide identity of an incident this box may have named on its own (alone, or
    /// when etcd did not answer): an ack made alone must reach the peer under the name the peer
    /// uses, or the peer keeps paging an incident acknowledged here; a page sent alone is marked
    /// under the id the peer computes with that name.
    fn settled(&mut self, identity: &str) -> Result<String, Error> {
        let Some((key, start)) = identity
            .rsplit_once('@')
            .and_then(|(k, s)| Some((k.to_string(), s.parse::<i64>().ok()?)))
        else {
            return Ok(identity.to_string());
        };
        if let Some(known) = self.shared.identity(&key, start) {
            return Ok(known);
        }
        let canonical = incident_identity(&key, self.etcd.incident_start(&key, start)?);
        self.shared.remember(&key, start, canonical.clone());
        Ok(canonical)
    }

    /// Remembers the canonical start of an incident that just opened here when etcd already
    /// names it; when it does not, the incident's first claim writes it.
    fn settle(&mut self, dedup_key: &str, start_ms: i64) {
        if !self.mode.borrow().claims() || self.shared.identity(dedup_key, start_ms).is_some() {
            return;
        }
        match self.etcd.settled_start(dedup_key, start_ms) {
            Ok(Some(start)) => {
                let id = incident_identity(dedup_key, start);
                self.shared.remember(dedup_key, start_ms, id);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, %dedup_key, "pair: cannot settle an incident's start at intake; its first page will")
            }
        }
    }

    fn identity(&mut self, dedup_key: String, start_ms: i64) -> String {
        if let Some(known) = self.shared.identity(&dedup_key, start_ms) {
            return known;
        }
        if !self.mode.borrow().claims() {
            return incident_identity(&dedup_key, start_ms);
        }
        match self.etcd.incident_start(&dedup_key, start_ms) {
            Ok(start) => {
                let id = incident_identity(&dedup_key, start);
                self.shared.remember(&dedup_key, start_ms, id.clone());
                id
            }
            Err(e) => {
                tracing::warn!(error = %e, %dedup_key, "pair: cannot settle an incident's start; using this box's own");
                incident_identity(&dedup_key, start_ms)
            }
        }
    }
}

/// The page thread: claims, and their outcomes.
struct Pages {
    cfg: HaConfig,
    etcd: Etcd,
    paging: watch::Receiver<Option<Health>>,
    mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
    /// Pages this box was told to hold back for the healthier peer, by their id under this
    /// box's own start (known without etcd); claimed on the next ask.
    deferred: HashSet<PageId>,
    /// Claims won before their sender asked, by the page's id under this box's own start: the
    /// sender's ask takes it (see [`Coordinator::claim_early`]).
    early: HashMap<PageId, EarlyClaim>,
    /// Since when every claim has failed (etcd refusing writes while it still renews leases:
    /// out of space, a missing permission), and when the last one failed; `None` once one was
    /// answered.
    claims_failing_since: Option<(Instant, Instant)>,
}

impl Pages {
    fn run(&mut self, rx: &std_mpsc::Receiver<PageCommand>) {
        // At most one look per EARLY_CHECK: a give-back that fails waits out etcd's timeout on
        // this thread, and must not do so between every two claims.
        let mut looked = Instant::now();
        loop {
            let cmd = if self.early.is_empty() {
                rx.recv()
                    .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(EARLY_CHECK)
            };
            match cmd {
                Ok(cmd) => self.handle(cmd),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if !self.early.is_empty() && looked.elapsed() >= EARLY_CHECK {
                looked = Instant::now();
                self.expire_early();
            }
        }
    }

    /// Gives back the early claims no sender asked for within [`EARLY_FOR`], so that the peer
    /// sends those pages if they are still due there (this box's row did not commit, or an ack
    /// cancelled it first). A claim whose release fails is kept and given back at the next look:
    /// this box's lease lives on, so nothing else would end it.
    fn expire_early(&mut self) {
        let bound = EARLY_FOR.min(self.cfg.claim_ttl / 2);
        let current = *lock(&self.shared.lease);
        let stale: Vec<PageId> = self
            .early
            .iter()
            .filter(|(_, e)| e.at.elapsed() >= bound)
            .map(|(local, _)| local.clone())
            .collect();
        for local in stale {
            let Some(e) = self.early.get(&local) else {
                continue;
            };
            if current != Some(e.lease) {
                // The claim went with its lease.
                self.early.remove(&local);
                continue;
            }
            let (page, incident) = (&e.asked.page, &e.asked.incident);
            match self.etcd.release(page, incident, &self.cfg.name) {
                Ok(()) => {
                    tracing::info!(%page, "pair: a page claimed early was not asked for; the claim is given back");
                    self.early.remove(&local);
                }
                Err(e) => {
                    tracing::warn!(error = %e, %page, "pair: cannot give back a claim no sender asked for; trying again")
                }
            }
        }
    }

    /// A panic here drops the command: a claim's reply with it, so its page is sent without a
    /// claim (see [`Coordinator::claim`]; the peer may send it too); a `sent`, so the claim
    /// stays held and the peer keeps its copy back until the incident ends; a release, so the
    /// claim stays this box's and its own retry of the page claims it again; an early claim won
    /// but not yet kept, so the sender's ask finds the claim its own and sends. A duplicate or a
    /// held copy, never silence.
    fn handle(&mut self, cmd: PageCommand) {
        panic_if_armed(Thread::Pages);
        match cmd {
            PageCommand::Claim { due, reply } => {
                if let Some(e) = self.early.remove(&due.id(&due.own_identity())) {
                    // Still this box's: the same lease, and the pair still claims (not alone).
                    if Some(e.lease) == *lock(&self.shared.lease) && self.mode.borrow().claims() {
                        tracing::debug!(
                            page = %e.asked.page,
                            claimed_us = e.at.elapsed().as_micros() as u64,
                            "pair: page thread answered from an early claim"
                        );
                        let _ = reply.send(e.asked);
                        return;
                    }
                }
                let asked = self.decide_timed(&due, false);
                // A sender that went on without the answer sends the page anyway; a claim won
                // here stays held, so the peer keeps its copy back and this box's own retry
                // finds the claim its own.
                let _ = reply.send(asked);
            }
            PageCommand::Early { due } => {
                let local = due.id(&due.own_identity());
                if self.early.len() >= EARLY_MAX || self.early.contains_key(&local) {
                    return;
                }
                let was_deferred = self.deferred.contains(&local);
                let asked = self.decide_timed(&due, true);
                let lease = *lock(&self.shared.lease);
                match (&asked.decision, lease, self.mode.borrow().claims()) {
                    (Decision::Send, Some(lease), true) => {
                        let at = Instant::now();
                        self.early.insert(local, EarlyClaim { asked, lease, at });
                    }
                    // Not won here now (the peer goes first, or holds it, or etcd failed): the
                    // sender's ask decides, and holds back for the peer from then.
                    _ if was_deferred => {
                        self.deferred.insert(local);
                    }
                    _ => {
                        self.deferred.remove(&local);
                    }
                }
            }
            PageCommand::Sent { page, incident } => {
                let shared = self.shared.clone();
                if !shared
                    .log_unless_claiming(|| *self.mode.borrow(), |log| log.sent.push(page.clone()))
                {
                    if let Err(e) = self.mark_sent(&page, &incident) {
                        // The claim runs out with the lease and the peer may send again: a
                        // duplicate, never a lost page.
                        tracing::warn!(error = %e, %page, "pair: cannot record a sent page");
                    }
                }
            }
            PageCommand::ClaimNamed {
                page,
                incident,
                reply,
            } => {
                let _ = reply.send(self.decide_named(&page, &incident));
            }
            PageCommand::Release { page, incident } => {
                if self.mode.borrow().claims() {
                    if let Err(e) = self.etcd.release(&page, &incident, &self.cfg.name) {
                        tracing::warn!(error = %e, %page, "pair: cannot release a claim; the peer takes it when the lease ends");
                    }
                }
            }
        }
    }

    /// Writes `sent` on the retention lease ([`Shared::on_retention`]). A retryable error is
    /// returned: writing the record without the lease would keep it for ever, while the lease
    /// most likely still exists.
    fn mark_sent(&mut self, page: &PageId, incident: &str) -> Result<(), Error> {
        let (etcd, me) = (&mut self.etcd, &self.cfg.name);
        self.shared
            .on_retention(|retention| etcd.mark_sent(page, incident, me, retention))
    }

    /// [`Pages::decide`], logging how long it took and how many etcd requests (the bench reads
    /// both); `early` when no sender asked yet.
    fn decide_timed(&mut self, due: &DuePage, early: bool) -> Asked {
        let (started, before) = (Instant::now(), self.etcd.requests());
        let asked = self.decide(due);
        tracing::debug!(
            page = %asked.page,
            etcd_requests = self.etcd.requests() - before,
            etcd_us = started.elapsed().as_micros() as u64,
            early,
            "pair: page thread decided"
        );
        asked
    }

    fn decide(&mut self, due: &DuePage) -> Asked {
        let own = due.own_identity();
        let settled = self.shared.identity(&due.dedup_key, due.start_ms);
        let named = |decision, identity: &str| Asked {
            decision,
            page: due.id(identity),
            incident: identity.to_string(),
        };
        let mode = self.current_mode();
        let lease = *lock(&self.shared.lease);
        let (true, Some(lease)) = (mode.claims(), lease) else {
            // Alone, rejoining or independent: page like a single box. Without a lease yet
            // (the first grant is still failing) the same holds until fallback decides.
            let decision = if mode.claims() {
                Decision::Later(self.cfg.takeover_delay.max(Duration::from_secs(1)))
            } else {
                Decision::Send
            };
            return named(decision, settled.as_deref().unwrap_or(&own));
        };
        // The healthier box tries first; this one holds back once, for the takeover delay.
        if self.deferred.len() > 10_000 {
            self.deferred.clear();
        }
        let local = due.id(&own);
        let held_back = self.deferred.remove(&local);
        if !held_back {
            let delay = self.claim_delay();
            if !delay.is_zero() {
                self.deferred.insert(local);
                return named(Decision::Later(delay), settled.as_deref().unwrap_or(&own));
            }
        }
        match (settled, unsettled_start(held_back)) {
            (Some(identity), _) => named(self.claim(due, &identity, lease), &identity),
            (None, UnsettledStart::WithClaim) => self.claim_unsettled(due, lease),
            (None, UnsettledStart::ReadFirst) => self.settle_then_claim(due, lease),
        }
    }

    /// The session's mode; alone when the session thread is gone (its lease then lapses, and
    /// claims on it would fail for ever): this box pages like a single box, a duplicate at worst.
    fn current_mode(&self) -> Mode {
        if self.mode.has_changed().is_err() {
            tracing::error!("pair: the session thread is gone; this box pages alone");
            return Mode::Alone {
                since: Instant::now(),
            };
        }
        *self.mode.borrow()
    }

    /// [`Pages::decide`] for a message claimed by its own name: no start to settle.
    fn decide_named(&mut self, page: &PageId, incident: &str) -> Decision {
        let mode = self.current_mode();
        let lease = *lock(&self.shared.lease);
        let (true, Some(lease)) = (mode.claims(), lease) else {
            return if mode.claims() {
                Decision::Later(self.cfg.takeover_delay.max(Duration::from_secs(1)))
            } else {
                Decision::Send
            };
        };
        if self.deferred.len() > 10_000 {
            self.deferred.clear();
        }
        if !self.deferred.remove(page) {
            let delay = self.claim_delay();
            if !delay.is_zero() {
                self.deferred.insert(page.clone());
                return Decision::Later(delay);
            }
        }
        self.claim_id(page, incident, lease)
    }

    /// Claims `due` under the settled `identity` of its incident: one transaction.
    fn claim(&mut self, due: &DuePage, identity: &str, lease: LeaseId) -> Decision {
        self.claim_id(&due.id(identity), identity, lease)
    }

    /// Claims `page` filed under `identity`: one transaction.
    fn claim_id(&mut self, page: &PageId, identity: &str, lease: LeaseId) -> Decision {
        let page = page.clone();
        match self.etcd.claim(&page, identity, &self.cfg.name, lease) {
            Ok(Claim::Won) => {
                self.claims_answered();
                Decision::Send
            }
            Ok(Claim::Lost(view)) => {
                self.claims_answered();
                self.after_lost(&view)
            }
            Err(e) => self.claim_failed(&e, &page),
        }
    }

    fn claims_answered(&mut self) {
        if self.claims_failing_since.take().is_some() {
            tracing::info!("pair: claims are answered again");
        }
    }

    /// A claim (or the read that settles its incident) failed: asked again shortly, unless
    /// claims have failed for as long as the fallback, when the page is sent by this box alone.
    /// The lease may still renew while etcd refuses every write (out of space, a permission
    /// taken away), and then the mode stays paired: without this, both boxes would hold every
    /// page for ever while saying they are fine.
    fn claim_failed(&mut self, e: &Error, page: &PageId) -> Decision {
        let now = Instant::now();
        // A streak is failures asked again and again; one left from long ago (its page acked
        // since, or a time alone without claims) does not count, or the first failure of a
        // later leader election would send at once on both boxes.
        let since = match self.claims_failing_since {
            Some((since, last)) if now.duration_since(last) <= CLAIM_STREAK_GAP => since,
            _ => now,
        };
        self.claims_failing_since = Some((since, now));
        if since.elapsed() >= self.cfg.fallback_after {
            tracing::error!(error = %e, %page, failing_for = ?since.elapsed(), "pair: claims keep failing though the lease renews; this box sends the page on its own (duplicates possible)");
            return Decision::Send;
        }
        tracing::warn!(error = %e, %page, "pair: claim failed; asking again shortly");
        Decision::Later(Duration::from_secs(1))
    }

    /// Claims a page whose incident's start is not settled yet (its first page was due before
    /// the settling at intake was done): this box's start and the claim in one transaction;
    /// only when another start is there does the page wait for the settling's reads.
    fn claim_unsettled(&mut self, due: &DuePage, lease: LeaseId) -> Asked {
        let own = due.own_identity();
        let page = due.id(&own);
        let tried = self.etcd.claim_with_start(
            &page,
            &own,
            &due.dedup_key,
            due.start_ms,
            &self.cfg.name,
            lease,
        );
        let (start_ms, view) = match tried {
            Ok(StartClaim::Won) => {
                self.claims_answered();
                self.shared
                    .remember(&due.dedup_key, due.start_ms, own.clone());
                return Asked {
                    decision: Decision::Send,
                    page,
                    incident: own,
                };
            }
            Ok(StartClaim::Failed { start_ms, view }) => {
                self.claims_answered();
                (start_ms, view)
            }
            Err(e) => {
                return Asked {
                    decision: self.claim_failed(&e, &page),
                    page,
                    incident: own,
                };
            }
        };
        match after_start_claim(&self.cfg.name, due.start_ms, start_ms, &view) {
            StartClaimNext::Act(action) => {
                if start_ms.is_some() {
                    self.shared
                        .remember(&due.dedup_key, due.start_ms, own.clone());
                }
                let decision = match action {
                    PageAction::Claim { .. } => self.claim(due, &own, lease),
                    other => self.decision_for(other),
                };
                Asked {
                    decision,
                    page,
                    incident: own,
                }
            }
            StartClaimNext::Settle => self.settle_then_claim(due, lease),
        }
    }

    /// Settles the canonical start of `due`'s incident (reads, and a write only when there is
    /// no start or an earlier incident's), then claims under it.
    fn settle_then_claim(&mut self, due: &DuePage, lease: LeaseId) -> Asked {
        let identity = match self.etcd.incident_start(&due.dedup_key, due.start_ms) {
            Ok(start) => incident_identity(&due.dedup_key, start),
            Err(e) => {
                let own = due.own_identity();
                let page = due.id(&own);
                tracing::warn!(error = %e, %page, "pair: cannot settle an incident's start");
                return Asked {
                    decision: self.claim_failed(&e, &page),
                    page,
                    incident: own,
                };
            }
        };
        self.shared
            .remember(&due.dedup_key, due.start_ms, identity.clone());
        Asked {
            decision: self.claim(due, &identity, lease),
            page: due.id(&identity),
            incident: identity,
        }
    }

    /// How long this box holds back before claiming, by the published health of both boxes
    /// (the peer's as read at the last renewal, a fraction of a TTL ago).
    fn claim_delay(&mut self) -> Duration {
        let mine = (*self.paging.borrow()).unwrap_or(Health {
            registered: false,
            signal_dbm: None,
        });
        match &*lock(&self.shared.peer) {
            Some((peer, theirs)) => claim_delay(
                &self.cfg.name,
                mine,
                peer,
                Some(*theirs),
                self.cfg.takeover_delay,
            ),
            // No peer health published, or etcd did not answer: the claim itself decides.
            None => Duration::ZERO,
        }
    }

    fn after_lost(&self, view: &PageView) -> Decision {
        self.decision_for(page_action(&self.cfg.name, view, Duration::ZERO))
    }

    fn decision_for(&self, action: PageAction) -> Decision {
        match action {
            PageAction::Done(why) => Decision::Skip(why),
            // Our own claim from an earlier attempt that did not finish: send now.
            PageAction::Send => Decision::Send,
            // The peer holds it: ask again once its claim could have run out.
            PageAction::Watch => Decision::Later(self.cfg.claim_ttl / 2),
            // Free again (the peer's claim vanished without `sent`): claim on the next ask.
            PageAction::Claim { .. } => Decision::Later(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_clock() -> Arc<dyn Clock> {
        Arc::new(crate::clock::SystemClock)
    }
    use crate::ha::etcd::tests::{
        client, config, free_port, lease_of, page, start_member, start_member_on, ttl_of,
    };
    use crate::ha::etcd::PeerKind;

    const GOOD: Health = Health {
        registered: true,
        signal_dbm: Some(-70),
    };

    fn refused(status: u16, body: &str) -> Error {
        Error::Refused {
            path: "/v3/kv/put".into(),
            endpoint: "e".into(),
            status,
            body: body.into(),
        }
    }

    fn shared_with(lease: LeaseId) -> Shared {
        let shared = Shared::default();
        lock(&shared.retention).current = Some((lease, Instant::now()));
        shared
    }

    #[test]
    fn a_retryable_error_keeps_the_retention_lease_and_writes_nothing_without_it() {
        let shared = shared_with(LeaseId(7));
        let mut tried = Vec::new();
        let err = shared
            .on_retention(|lease| {
                tried.push(lease);
                Err::<(), _>(refused(503, "etcdserver: leader changed"))
            })
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(tried, [Some(LeaseId(7))]);
        assert_eq!(
            lock(&shared.retention).current.map(|(l, _)| l),
            Some(LeaseId(7))
        );
    }

    #[test]
    fn a_lease_etcd_says_is_gone_is_dropped_and_the_record_written_without() {
        let shared = shared_with(LeaseId(7));
        let mut tried = Vec::new();
        shared
            .on_retention(|lease| {
                tried.push(lease);
                match lease {
                    Some(_) => Err(refused(400, "etcdserver: requested lease not found")),
                    None => Ok(()),
                }
            })
            .unwrap();
        assert_eq!(tried, [Some(LeaseId(7)), None]);
        assert!(lock(&shared.retention).current.is_none());
        // Another refusal is not about the lease: returned, the lease kept.
        let shared = shared_with(LeaseId(8));
        assert!(shared
            .on_retention(|_| Err::<(), _>(refused(
                400,
                "etcdserver: too many operations in txn request"
            )))
            .is_err());
        assert!(lock(&shared.retention).current.is_some());
    }

    #[test]
    fn a_lease_replaced_meanwhile_is_not_dropped() {
        let shared = shared_with(LeaseId(9));
        shared.drop_retention(LeaseId(7));
        assert_eq!(
            lock(&shared.retention).current.map(|(l, _)| l),
            Some(LeaseId(9))
        );
    }

    fn coordinator(
        name: &str,
        url: &str,
        ttl: Duration,
        fallback: Duration,
    ) -> (Coordinator, watch::Sender<Option<Health>>) {
        let (c, paging, _) = coordinator_with_records(name, url, ttl, fallback);
        (c, paging)
    }

    /// [`coordinator`], with the receiver of the peer's records it passes on.
    fn coordinator_with_records(
        name: &str,
        url: &str,
        ttl: Duration,
        fallback: Duration,
    ) -> (
        Coordinator,
        watch::Sender<Option<Health>>,
        tokio::sync::mpsc::UnboundedReceiver<PeerRecord>,
    ) {
        let mut cfg = config(&[url]);
        cfg.name = name.into();
        cfg.claim_ttl = ttl;
        cfg.fallback_after = fallback;
        cfg.takeover_delay = Duration::from_millis(300);
        let (paging_tx, paging) = watch::channel(Some(GOOD));
        let etcd = Etcd::new(&cfg).expect("client");
        let (records, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Coordinator::start(cfg, etcd, paging, "same".into(), records, system_clock()).unwrap(),
            paging_tx,
            rx,
        )
    }

    /// The first page to alice by SMS about the incident `key` that started at `start_ms` on
    /// the asking box (its id is [`page`] of the identity).
    fn due(key: &str, start_ms: i64) -> DuePage {
        DuePage {
            dedup_key: key.into(),
            start_ms,
            step: 0,
            target: "alice".into(),
            channel: Channel::Sms,
            attempt: 1,
        }
    }

    /// Asks until the answer is not "later", or `deadline` passes.
    async fn settle(c: &Coordinator, due: &DuePage, deadline: Duration) -> Asked {
        let end = Instant::now() + deadline;
        loop {
            let asked = c.claim(due.clone()).await;
            match asked.decision {
                Decision::Later(d) if Instant::now() + d < end => tokio::time::sleep(d).await,
                _ => return asked,
            }
        }
    }

    /// Asks as a box that holds back once for the healthier peer does: again after a short
    /// "later", so that the answer is what the claim in etcd says.
    async fn contest(c: &Coordinator, due: &DuePage) -> Decision {
        match c.claim(due.clone()).await.decision {
            Decision::Later(d) if d <= Duration::from_secs(1) => {
                tokio::time::sleep(d).await;
                c.claim(due.clone()).await.decision
            }
            other => other,
        }
    }

    #[tokio::test]
    async fn a_page_claimed_early_is_answered_from_its_claim_or_given_back_when_nobody_asks() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(2), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(2), s(30));
        for (c, key) in [(&a, "warm-a"), (&b, "warm-b")] {
            assert_eq!(settle(c, &due(key, 0), s(3)).await.decision, Decision::Send);
        }
        // A claim made early holds the page for this box at once; one nobody asks for is given
        // back within the claim TTL, and the peer sends the page.
        let unasked = due("unasked", 0);
        a.claim_early(unasked.clone());
        // Any answer from the page thread comes after the early claim it was handed first.
        assert_eq!(a.claim(due("fence-1", 0)).await.decision, Decision::Send);
        assert_ne!(contest(&b, &unasked).await, Decision::Send);
        let started = Instant::now();
        assert_eq!(settle(&b, &unasked, s(6)).await.decision, Decision::Send);
        assert!(
            started.elapsed() < s(4),
            "given back after {:?}",
            started.elapsed()
        );

        // A box that holds back for the healthier peer still holds back when its sender asks.
        let end = Instant::now() + s(5);
        let hold = Decision::Later(Duration::from_millis(300));
        for n in 0.. {
            assert!(Instant::now() < end, "b never learnt a's health");
            if b.claim(due(&format!("probe-{n}"), 0)).await.decision == hold {
                break;
            }
        }
        let held = due("held", 0);
        b.claim_early(held.clone());
        assert_eq!(b.claim(held.clone()).await.decision, hold);

        // The sender's ask is answered from the early claim: it needs etcd no more.
        let asked = due("asked", 0);
        a.claim_early(asked.clone());
        assert_eq!(a.claim(due("fence-2", 0)).await.decision, Decision::Send);
        assert_ne!(contest(&b, &asked).await, Decision::Send);
        drop(m);
        let started = Instant::now();
        let answer = a.claim(asked.clone()).await;
        assert_eq!(answer.decision, Decision::Send);
        assert_eq!(answer.page, asked.id(&asked.own_identity()));
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_health_feed_that_stops_reporting_lets_the_lease_lapse() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(2), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(2), s(30));
        a.fed();
        let p = due("fed", 0);
        assert_eq!(settle(&a, &p, s(3)).await.decision, Decision::Send);
        // While the feed reports, longer than it may be silent, a keeps its lease and claim.
        let end = Instant::now() + FEED_STALE + s(2);
        while Instant::now() < end {
            a.fed();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_ne!(contest(&b, &p).await, Decision::Send);
        // Then it stops: a's lease lapses and b sends the page.
        let started = Instant::now();
        assert_eq!(settle(&b, &p, s(12)).await.decision, Decision::Send);
        let took = started.elapsed();
        assert!(took <= FEED_STALE + s(2) + s(2), "took {took:?}");
    }

    #[tokio::test]
    async fn a_healthy_pair_sends_each_page_once() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(6), s(30));
        let mut sends = 0;
        for n in 0..10 {
            let key = format!("i{n}");
            // Both boxes see the page due at once; b opened the incident 30 ms later, and only
            // every other incident was settled at intake before its page was due.
            if n % 2 == 0 {
                a.settle(&key, 1_000);
                b.settle(&key, 1_030);
            }
            let (due_a, due_b) = (due(&key, 1_000), due(&key, 1_030));
            let (da, db) = tokio::join!(
                settle(&a, &due_a, s(3)),
                settle(&b, &due_b, Duration::from_millis(200))
            );
            // Both boxes name the incident alike, whichever settled its start.
            assert_eq!(a.identity(&key, 1_000).await, b.identity(&key, 1_030).await);
            for (d, c) in [(&da, &a), (&db, &b)] {
                if d.decision == Decision::Send {
                    sends += 1;
                    c.sent(d.page.clone(), &d.incident);
                }
            }
        }
        assert_eq!(sends, 10, "exactly one send per page");
    }

    #[tokio::test]
    async fn the_first_page_of_an_unsettled_incident_settles_its_start_with_the_claim() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let asked = settle(&a, &due("new", 5_000), s(3)).await;
        assert_eq!(asked.decision, Decision::Send);
        assert_eq!(asked.incident, "new@5000");
        assert_eq!(asked.page, page("new@5000"));
        let mut peer = client(&[&m.url]);
        // The start went in with the claim: the peer adopts it.
        assert_eq!(peer.incident_start("new", 5_040).unwrap(), 5_000);
        assert_eq!(
            peer.page_view(&page("new@5000"), "new@5000")
                .unwrap()
                .claimed_by
                .as_deref(),
            Some("a")
        );
        // The peer was first for another incident: a adopts its start and claims under it.
        assert_eq!(peer.incident_start("old", 7_000).unwrap(), 7_000);
        let asked = settle(&a, &due("old", 7_030), s(3)).await;
        assert_eq!(
            (asked.decision, asked.incident.as_str()),
            (Decision::Send, "old@7000")
        );
        assert_eq!(asked.page, page("old@7000"));
        // Its second page needs no settling: the identity is remembered.
        let mut second = due("old", 7_030);
        second.attempt = 2;
        assert_eq!(a.claim(second).await.incident, "old@7000");
    }

    #[tokio::test]
    async fn a_sent_record_lives_on_the_retention_lease() {
        use base64::Engine as _;
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let asked = settle(&a, &due("kept", 0), s(3)).await;
        assert_eq!(asked.decision, Decision::Send);
        a.sent(asked.page.clone(), &asked.incident);
        let b64 = |k: &str| base64::engine::general_purpose::STANDARD.encode(k);
        let key = b64(&format!("pagerbox/page/{}/sent", asked.page));
        let post = |path: &str, body: serde_json::Value| -> serde_json::Value {
            ureq::post(&format!("{}{path}", m.url))
                .send_json(body)
                .unwrap()
                .into_json()
                .unwrap()
        };
        let end = Instant::now() + s(5);
        let lease = loop {
            let kvs = post("/v3/kv/range", serde_json::json!({ "key": key }))["kvs"].clone();
            if let Some(lease) = kvs[0]["lease"].as_str() {
                break lease.to_string();
            }
            assert!(Instant::now() < end, "no sent record on a lease: {kvs}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ttl = post("/v3/lease/timetolive", serde_json::json!({ "ID": lease }))["TTL"]
            .as_str()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            ttl > SENT_RETENTION.as_secs() - 60 && ttl <= SENT_RETENTION.as_secs(),
            "{ttl}"
        );
    }

    #[tokio::test]
    async fn a_resolved_incident_is_kept_until_the_peer_read_it_then_pruned_as_a_whole() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(3), s(30));
        let (b, paging_b, mut records_b) = coordinator_with_records("b", &m.url, s(3), s(1));
        // Both boxes hold the incident; a named it first, and shared the alert.
        assert_eq!(a.identity("gone", 1_000).await, "gone@1000");
        assert_eq!(b.identity("gone", 1_030).await, "gone@1000");
        a.share("gone@1000", "{}".into());
        // b is away (it cannot page, so it keeps no lease and reads nothing) when a resolves.
        paging_b.send_replace(None);
        let mut mode_b = b.mode();
        tokio::time::timeout(s(10), mode_b.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone within the fallback")
            .unwrap();
        a.resolve("gone@1000", 5_000);
        // The session's commands run in order: once it has answered, the resolve is in etcd.
        let _ = a.identity("other", 0).await;
        let records = [
            "incident/gone@1000/resolve",
            "incident/gone@1000/intake",
            "start/gone",
        ];
        // a's own looks at the records (every second) leave them: b has not read the resolve.
        tokio::time::sleep(PEER_RECORDS_EVERY * 3).await;
        for k in records {
            assert_eq!(lease_of(&m.url, k), Some(0), "{k} before the peer read it");
        }

        // b is back: it reads the resolve, and its page of the incident is not sent.
        paging_b.send_replace(Some(GOOD));
        let resolve = tokio::time::timeout(s(15), async {
            loop {
                let r = records_b.recv().await.expect("b's session runs");
                if r.kind == PeerKind::Resolve {
                    break r;
                }
            }
        })
        .await
        .expect("b reads the resolve once back");
        assert_eq!(resolve.identity, "gone@1000");
        assert_eq!(
            settle(&b, &due("gone", 1_030), s(3)).await.decision,
            Decision::Skip(Finished::Resolved)
        );
        // Then, read by both boxes, the incident's records go on one retention lease.
        let end = Instant::now() + s(5);
        let lease = loop {
            match lease_of(&m.url, records[0]) {
                Some(l) if l != 0 => break l,
                other => assert!(Instant::now() < end, "resolve not retired: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for k in records {
            assert_eq!(lease_of(&m.url, k), Some(lease), "{k}");
        }
        let ttl = ttl_of(&m.url, lease);
        assert!(
            ttl > SENT_RETENTION.as_secs() - 60 && ttl <= SENT_RETENTION.as_secs(),
            "{ttl}"
        );
        // The lease ends: nothing of the incident is left, and a box reading the history opens
        // nothing (no shared alert without its resolve).
        let mut peer = client(&[&m.url]);
        peer.revoke_lease(LeaseId(lease)).unwrap();
        for k in records {
            assert_eq!(lease_of(&m.url, k), None, "{k}");
        }
        let history = peer.peer_records("c", 0).unwrap();
        assert!(
            history.records.iter().all(|r| r.identity != "gone@1000"),
            "{history:?}"
        );
    }

    #[tokio::test]
    async fn a_retention_lease_granted_a_retention_ago_is_revoked_whatever_its_ttl() {
        let Some(m) = start_member() else { return };
        // A retention lease of the peer's, granted eight days ago by the clock, which etcd
        // still gives a full TTL (a leader change renewed it), with a record on it; and one
        // granted a day ago.
        let mut peer = client(&[&m.url]);
        let now_ms = crate::clock::system_now().timestamp_millis();
        let day_ms = 24 * 3_600_000;
        let (old, young) = (
            peer.grant_lease(SENT_RETENTION).unwrap(),
            peer.grant_lease(SENT_RETENTION).unwrap(),
        );
        peer.mark_retention(old, now_ms - 8 * day_ms).unwrap();
        peer.mark_retention(young, now_ms - day_ms).unwrap();
        // Marked by a box whose clock was far behind (booted without a real-time clock): its
        // records may be seconds old, and it is kept.
        let skewed = peer.grant_lease(SENT_RETENTION).unwrap();
        peer.mark_retention(skewed, 5_000).unwrap();
        let fresh = page("fresh@0");
        peer.mark_sent_alone(&fresh, "b", Some(skewed)).unwrap();
        // An override's lease whose end (the override's and the retention after) is past.
        let ended = peer.grant_lease(SENT_RETENTION).unwrap();
        peer.mark_override_lease(ended, now_ms - 10 * day_ms, now_ms - day_ms)
            .unwrap();
        let p = page("old@0");
        peer.mark_sent_alone(&p, "b", Some(old)).unwrap();
        let (_a, _pa) = coordinator("a", &m.url, Duration::from_secs(3), Duration::from_secs(30));
        let end = Instant::now() + Duration::from_secs(5);
        let ended_listed = |peer: &mut Etcd| {
            peer.retention_leases()
                .unwrap()
                .iter()
                .any(|(l, _)| *l == ended)
        };
        while peer.page_view(&p, "old@0").unwrap().sent || ended_listed(&mut peer) {
            assert!(
                Instant::now() < end,
                "the old retention lease still holds its records"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left: Vec<_> = peer
            .retention_leases()
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert!(left.contains(&young) && !left.contains(&old), "{left:?}");
        assert!(left.contains(&skewed) && !left.contains(&ended), "{left:?}");
        assert!(peer.page_view(&fresh, "fresh@0").unwrap().sent);
    }

    #[tokio::test]
    async fn a_shared_override_lives_until_its_end_and_the_retention_after() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let now = crate::clock::system_now();
        let o = SharedOverride {
            schedule: "ops".into(),
            user: "bob".into(),
            from: now,
            until: now + chrono::Duration::hours(1),
            created_by: None,
            deleted: false,
        };
        a.share_override(o.key(), serde_json::to_string(&o).unwrap());
        let _ = a.identity("sync", 0).await;
        let lease = lease_of(&m.url, &format!("override/{}", o.key()));
        assert!(matches!(lease, Some(l) if l != 0), "{lease:?}");
        let ttl = ttl_of(&m.url, lease.unwrap_or(0));
        let want = SENT_RETENTION.as_secs() + 3600;
        assert!(ttl > want - 60 && ttl <= want, "{ttl}");
        // The lease is marked with the override's end and the retention after.
        let mut peer = client(&[&m.url]);
        let first = LeaseId(lease.unwrap_or(0));
        let marks = peer.retention_leases().unwrap();
        let end_ms = marks
            .iter()
            .find(|(l, _)| *l == first)
            .and_then(|(_, m)| m.end_ms);
        let want_ms = (now + chrono::Duration::hours(1)).timestamp_millis()
            + i64::try_from(SENT_RETENTION.as_millis()).unwrap();
        assert!(
            end_ms.is_some_and(|e| (e - want_ms).abs() < 60_000),
            "{marks:?}"
        );
        // Replaced (here deleted), the record goes on a new lease and the old one is revoked.
        let deleted = SharedOverride {
            deleted: true,
            ..o.clone()
        };
        a.share_override(deleted.key(), serde_json::to_string(&deleted).unwrap());
        let _ = a.identity("sync", 0).await;
        let second = lease_of(&m.url, &format!("override/{}", o.key()));
        assert!(
            matches!(second, Some(l) if l != 0 && l != first.0),
            "{second:?}"
        );
        let left: Vec<_> = peer
            .retention_leases()
            .unwrap()
            .into_iter()
            .map(|(l, _)| l.0)
            .collect();
        assert!(
            !left.contains(&first.0) && left.contains(&second.unwrap_or(0)),
            "{left:?}"
        );
    }

    #[tokio::test]
    async fn a_box_that_cannot_page_loses_its_claim_to_the_peer() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, paging_a) = coordinator("a", &m.url, s(3), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(3), s(30));
        let p = due("stuck", 0);
        assert_eq!(settle(&a, &p, s(3)).await.decision, Decision::Send);
        // a claimed it, then its paging path broke before it could send: no more renewals.
        paging_a.send_replace(None);
        let started = Instant::now();
        assert_ne!(b.claim(p.clone()).await.decision, Decision::Send);
        assert_eq!(settle(&b, &p, s(10)).await.decision, Decision::Send);
        let took = started.elapsed();
        assert!(took <= s(3) + s(2), "takeover took {took:?}");
    }

    #[test]
    fn a_thread_that_panics_runs_again_until_it_returns() {
        let pages = || {
            let all = crate::health::pair::restarts();
            all.into_iter()
                .find(|(t, _)| *t == Thread::Pages)
                .unwrap()
                .1
        };
        let before = pages();
        let mut runs = Vec::new();
        supervise(Thread::Pages, |phase| {
            runs.push(phase);
            if phase != Phase::Panicked && runs.len() < 4 {
                panic!("run {}", runs.len());
            }
        });
        use Phase::*;
        assert_eq!(runs, [First, Panicked, Restart, Panicked, Restart]);
        assert_eq!(pages() - before, 2);
    }

    #[test]
    fn shared_records_wait_for_the_heal_only_while_alone() {
        let t = Instant::now();
        assert!(reaches_etcd(Mode::Paired { last_renewed: t }));
        assert!(reaches_etcd(Mode::Independent));
        assert!(!reaches_etcd(Mode::Alone { since: t }));
        assert!(!reaches_etcd(Mode::Rejoining { since: t }));
    }

    #[tokio::test]
    async fn the_peers_records_arrive_between_renewals() {
        let Some(m) = start_member() else { return };
        let mut cfg = config(&[&m.url]);
        cfg.name = "a".into();
        // Renewals every 3 s; the records must come sooner.
        cfg.claim_ttl = Duration::from_secs(9);
        let (_paging_tx, paging) = watch::channel(Some(GOOD));
        let etcd = Etcd::new(&cfg).expect("client");
        let (records_tx, mut records) = tokio::sync::mpsc::unbounded_channel();
        let a = Coordinator::start(cfg, etcd, paging, "same".into(), records_tx, system_clock())
            .unwrap();
        // Paired, with the first renewal (and its read) behind it.
        let _ = a.identity("warm-up", 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut peer = client(&[&m.url]);
        peer.publish_intake("k@5", "b", "{}").unwrap();
        let started = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(3), records.recv())
            .await
            .expect("a record before the next renewal")
            .unwrap();
        assert_eq!(got.identity, "k@5");
        assert!(started.elapsed() <= PEER_RECORDS_EVERY + Duration::from_millis(800));
    }

    #[tokio::test]
    async fn an_ack_on_one_box_stops_the_page_on_the_other() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(6), s(30));
        let acked = a.identity("acked", 0).await;
        a.ack(&acked);
        // The session's commands run in order: once it has answered, the ack is in etcd.
        let _ = a.identity("other", 0).await;
        assert_eq!(
            settle(&b, &due("acked", 0), s(3)).await.decision,
            Decision::Skip(Finished::Acked)
        );
    }

    /// Claims that keep failing while the mode stays paired (etcd renews the lease but refuses
    /// writes) hold a page only until the fallback: then this box sends it on its own. An
    /// answered claim ends the streak.
    #[test]
    fn claims_failing_for_the_fallback_send_the_page_alone() {
        let mut cfg = config(&[&format!("http://127.0.0.1:{}", free_port())]);
        cfg.fallback_after = Duration::from_millis(300);
        let etcd = Etcd::new(&cfg).unwrap();
        let (_paging_tx, paging) = watch::channel(Some(GOOD));
        let (_mode_tx, mode) = watch::channel(Mode::Paired {
            last_renewed: Instant::now(),
        });
        let shared = Arc::new(Shared::default());
        *lock(&shared.lease) = Some(LeaseId(7));
        let mut pages = Pages {
            cfg,
            etcd,
            paging,
            mode,
            shared,
            deferred: HashSet::new(),
            early: HashMap::new(),
            claims_failing_since: None,
        };
        let p = page("refused");
        assert!(matches!(
            pages.decide_named(&p, "refused"),
            Decision::Later(_)
        ));
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(pages.decide_named(&p, "refused"), Decision::Send);
        pages.claims_answered();
        assert!(matches!(
            pages.decide_named(&p, "refused"),
            Decision::Later(_)
        ));
        // A streak left from long ago does not count: a new one starts.
        let long_ago = Instant::now() - Duration::from_secs(60);
        pages.claims_failing_since = Some((long_ago, long_ago));
        assert!(matches!(
            pages.decide_named(&p, "refused"),
            Decision::Later(_)
        ));
    }

    /// An incident triggered again after its ack (ack timeout, escalate now) is paged again:
    /// the ack withdrawn from etcd no longer stops the claims of the pages that follow, on
    /// either box.
    #[tokio::test]
    async fn an_ack_withdrawn_lets_the_next_pages_go_out_again() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(6), s(30));
        let incident = a.identity("again", 0).await;
        a.ack(&incident);
        let _ = a.identity("other", 0).await;
        let first = due("again", 0);
        assert_eq!(
            settle(&b, &first, s(3)).await.decision,
            Decision::Skip(Finished::Acked)
        );
        a.unack(&incident);
        let _ = a.identity("other", 0).await;
        let next = DuePage {
            attempt: 2,
            ..due("again", 0)
        };
        assert_eq!(settle(&b, &next, s(3)).await.decision, Decision::Send);
    }

    #[tokio::test]
    async fn an_ack_and_a_page_made_alone_are_published_under_the_peers_name_for_the_incident() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, paging_a) = coordinator("a", &m.url, s(3), s(1));
        // a cannot page: no renewals, and alone once the fallback has passed.
        paging_a.send_replace(None);
        let mut mode = a.mode();
        tokio::time::timeout(s(10), mode.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone within the fallback")
            .unwrap();
        let own = a.identity("k", 1_040).await;
        assert_eq!(
            own, "k@1040",
            "alone, a box names an incident by its own start"
        );
        a.ack(&own);
        // A page of it sent alone, named with a's own start.
        let sent_alone = a.claim(due("k", 1_040)).await;
        assert_eq!(sent_alone.decision, Decision::Send);
        assert_eq!(sent_alone.incident, own);
        a.sent(sent_alone.page, &own);
        // Meanwhile the peer named the incident first.
        let mut peer = client(&[&m.url]);
        assert_eq!(peer.incident_start("k", 1_000).unwrap(), 1_000);
        paging_a.send_replace(Some(GOOD));
        tokio::time::timeout(s(15), mode.wait_for(|m| matches!(m, Mode::Paired { .. })))
            .await
            .expect("paired again after the heal")
            .unwrap();
        let view = peer.page_view(&page("k@1000"), "k@1000").unwrap();
        assert!(view.acked, "the ack reached the peer's name: {view:?}");
        // The page sent alone is marked under the id the peer computes: it is not sent again.
        let other = peer
            .page_view(&due("k", 1_040).id("k@1000"), "other")
            .unwrap();
        assert!(other.sent, "sent under the peer's name: {other:?}");
    }

    /// A member that takes connections and never answers, as a member cut from its quorum
    /// does: every renewal costs the whole request timeout (2 s). The fallback counts that
    /// time, so the box is alone after the first failed attempt that ends past the fallback,
    /// not one attempt later.
    #[tokio::test]
    async fn a_member_that_never_answers_still_falls_back_on_time() {
        let s = Duration::from_secs;
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let started = Instant::now();
        let (a, _pa) = coordinator("a", &url, s(3), s(3));
        let mut mode = a.mode();
        tokio::time::timeout(s(15), mode.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone at last")
            .unwrap();
        // Attempts end at 2 s and 4 s; the one ending at 4 s is past the 3 s fallback.
        let took = started.elapsed();
        assert!(took < s(5), "alone after {took:?}, fallback 3 s");
        drop(silent);
    }

    /// A session thread held up by etcd (every request waits out its 2 s timeout) answers an
    /// incident's name late; the caller, a sender with a message in hand, waits at most the
    /// claim TTL and goes on with the box's own name.
    #[tokio::test]
    async fn a_caller_waits_at_most_the_claim_ttl_for_an_answer() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let (a, _pa) = coordinator("a", &url, Duration::from_secs(1), Duration::from_secs(30));
        let asked = Instant::now();
        // Queued behind the first lease grant (2 s), then its own read of the start (2 s).
        let name = a.identity("slow", 7).await;
        let took = asked.elapsed();
        assert_eq!(name, incident_identity("slow", 7));
        assert!(
            took < Duration::from_millis(1800),
            "answered after {took:?}"
        );
        drop(silent);
    }

    /// A TCP proxy to `upstream` that, once armed, lets the next lease renewal through and
    /// then goes silent for good: connections stay open, nothing more is answered. That is a
    /// cut landing between a renewal and the reads that follow it.
    fn cut_after_next_renewal(upstream: &str) -> (String, Arc<std::sync::atomic::AtomicU8>) {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
        // 0: forwarding; 1: armed; 3: the renewal is under way; 2: silent.
        let state = Arc::new(AtomicU8::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_in, mut c_out) = (server, client);
                let up = st.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = c_in.read(&mut buf) {
                        if up.load(SeqCst) == 2 {
                            continue;
                        }
                        let renewal = buf[..n].windows(19).any(|w| w == b"/v3/lease/keepalive");
                        if s_out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        if renewal && up.load(SeqCst) == 1 {
                            // Its answer passes; everything after it is lost.
                            up.store(3, SeqCst);
                        }
                    }
                });
                let down = st.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = s_in.read(&mut buf) {
                        if down.load(SeqCst) == 2 {
                            continue;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        let _ = down.compare_exchange(3, 2, SeqCst, SeqCst);
                    }
                });
            }
        });
        (url, state)
    }

    /// A cut right after a renewal: the reads that follow it fail, and the box falls back
    /// after one timeout past the fallback, not after a timeout for every read.
    #[tokio::test]
    async fn a_cut_just_after_a_renewal_still_falls_back_on_time() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (url, state) = cut_after_next_renewal(&m.url);
        let (a, _pa) = coordinator("a", &url, s(3), s(3));
        let mut mode = a.mode();
        // A few renewals go through before the cut.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(matches!(*mode.borrow(), Mode::Paired { .. }));
        state.store(1, std::sync::atomic::Ordering::SeqCst);
        let armed = Instant::now();
        tokio::time::timeout(s(30), mode.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone at last")
            .unwrap();
        // The renewal passes within a second of arming; its first read fails after 2 s, the
        // next renewal 2 s later, past the 3 s fallback.
        let took = armed.elapsed();
        assert!(took < s(7), "alone {took:?} after the cut, fallback 3 s");
    }

    #[tokio::test]
    async fn a_box_cut_off_pages_alone_and_publishes_on_heal() {
        let s = Duration::from_secs;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let (a, _pa) = coordinator("a", &url, s(3), s(1));
        let mut mode = a.mode();
        let p = due("cut", 0);
        // Not alone yet: no lease, no claim, asked to come back.
        assert!(matches!(
            a.claim(p.clone()).await.decision,
            Decision::Later(_)
        ));
        tokio::time::timeout(s(10), mode.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone within the fallback")
            .unwrap();
        let asked = a.claim(p.clone()).await;
        assert_eq!(asked.decision, Decision::Send);
        assert_eq!(asked.incident, "cut@0");
        a.sent(asked.page.clone(), &asked.incident);
        a.ack(&asked.incident);
        // An alert only this box received while alone: published on heal.
        a.share(&asked.incident, "{}".into());

        let Some(_m) = start_member_on(port) else {
            return;
        };
        tokio::time::timeout(s(15), mode.wait_for(|m| matches!(m, Mode::Paired { .. })))
            .await
            .expect("paired again after the heal")
            .unwrap();
        let mut peer = client(&[&url]);
        let view = peer.page_view(&asked.page, "cut@0").unwrap();
        assert!(view.sent && view.acked, "{view:?}");
        // The page sent alone is recorded on the retention lease, like one sent paired.
        let lease = lease_of(&url, &format!("page/{}/sent", asked.page));
        assert!(matches!(lease, Some(l) if l != 0), "{lease:?}");
        let ttl = ttl_of(&url, lease.unwrap_or(0));
        assert!(ttl > SENT_RETENTION.as_secs() - 60, "{ttl}");
        let records = peer.peer_records("b", 0).unwrap().records;
        assert!(
            records
                .iter()
                .any(|r| r.kind == crate::ha::etcd::PeerKind::Intake && r.identity == "cut@0"),
            "{records:?}"
        );
    }
}
