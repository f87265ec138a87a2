//! The sender tasks: one per channel, each taking due pages from the outbox in priority order.
//!
//! A sender claims a page (durably marked `sending`, attempt counted) before it hands the message
//! to its [`Transport`], then records the outcome. A failed attempt is retried with backoff on
//! the same channel until `paging.max_attempts` or `paging.channel_timeout`; then the page falls
//! through to the next channel in the person's order (SMS -> voice -> email by default) that its
//! incidents may use (see [`way_on`]). A channel
//! that reports itself down (modem unregistered, SIM missing) is skipped at once. When the last
//! channel gives up the page starts over at the first: nothing accepted is ever dropped, and the
//! daemon says loudly that paging is impaired.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::incident::{Actor, Channel, Incident, Status, TimelineEvent, Urgency};
use crate::metrics::{Metrics, PageOutcome};
use crate::modem::{Health, ModemError};
use crate::notify::email::EmailError;
use crate::store::kinds::EventKind;
use crate::store::outbox::{self, Attempt, Page, PageKind};
use crate::store::{Store, Tx};

pub use crate::health::PagingHealth;
pub use crate::store::until_stored;

/// How much longer than its transport's timeout a claim holds a row: room for loading the
/// incidents before the send and recording the outcome after it.
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// What a transport is asked to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub page: Page,
    /// The text to send (SMS/voice), or the plain-text body (email).
    pub text: String,
    /// The incidents the page is about, each with its timeline (for email).
    pub incidents: Vec<(Incident, Vec<TimelineEvent>)>,
    pub config: Arc<Config>,
}

/// A successful hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// SMS message reference(s), SMTP queue answer, ...
    pub reference: Option<String>,
    pub detail: String,
    /// The person pressed 1 during a voice page: acknowledge.
    pub acknowledged: bool,
}

/// A failed attempt. Keeps the transport's own error (its `Display` is the page's error text,
/// its source chain is intact) so the sender can tell retryable from permanent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The modem refused or failed the SMS or the call (shared with the SMS channel's record
    /// of its last failed submit).
    #[error(transparent)]
    Modem(Arc<ModemError>),
    /// The call went through the modem but nobody took it: busy, no answer, rejected, or the
    /// network dropped it. Always worth another try.
    #[error("{0}")]
    Call(CallMiss),
    /// The email sender could not be built (bad CA file, missing password file, disabled).
    #[error("email cannot be set up: {0}")]
    EmailSetup(#[source] Arc<EmailSetupError>),
    /// The relay or the sendmail program refused or failed the message (shared with the email
    /// channel's record of its last failure).
    #[error(transparent)]
    Email(Arc<EmailError>),
}

impl SendError {
    /// False for errors that no retry will fix on this channel (bad address, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Modem(e) => e.is_retryable(),
            SendError::Call(_) | SendError::EmailSetup(_) => true,
            SendError::Email(e) => e.is_retryable(),
        }
    }
}

/// A voice call that reached nobody (the [`crate::modem::CallOutcome`]s other than answered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallMiss {
    #[error("busy")]
    Busy,
    #[error("no answer")]
    NoAnswer,
    #[error("rejected")]
    Rejected,
    /// The reason is what the modem reported.
    #[error("call failed: {0}")]
    Failed(String),
}

/// Why email cannot be used at all under the config in force.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    /// `[email] enabled = false` (the transport exists only when the daemon started with it on).
    #[error("email is disabled in the config (enabling it needs a restart)")]
    Disabled,
    /// The sender could not be built from `[email]`.
    #[error(transparent)]
    Settings(#[from] EmailError),
}

/// Why a channel cannot send (or, for [`Transport::health`], why it is reported impaired).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// The modem's health says down; the reason is the modem's own words.
    #[error("modem down: {reason}")]
    ModemDown { reason: String },
    /// The modem answers but the last submits all failed.
    #[error("the last {failures} SMS submits failed: {last}")]
    SubmitsFailing {
        failures: u32,
        #[source]
        last: Arc<ModemError>,
    },
    /// The modem answers but the last calls could not be set up.
    #[error("the last {failures} calls could not be set up: {last}")]
    CallsFailing { failures: u32, last: String },
    /// No email sender can be built under the config in force.
    #[error("email cannot be set up: {0}")]
    EmailSetup(#[source] Arc<EmailSetupError>),
    /// Email is tried, but the last message failed for a reason that is not the recipient's.
    #[error("last email failed: {0}")]
    EmailFailed(#[source] Arc<EmailError>),
}

/// The boxed future a transport returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>>;

/// A check of a channel that sends nothing (see [`Transport::probe`]); it records its own
/// outcome where [`Transport::health`] reads it.
pub type ProbeFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One way of reaching people: the modem's SMS, the modem's voice calls, or email.
pub trait Transport: Send + Sync + 'static {
    /// The channel this transport serves.
    fn channel(&self) -> Channel;
    /// `Err(reason)` when the channel cannot send at all right now (modem down, not registered).
    fn ready(&self) -> Result<(), Unavailable>;
    /// What to report about the channel (`/healthz`, LED): like [`Transport::ready`], but a
    /// channel that is tried anyway (email) can report its last failure here.
    fn health(&self) -> Result<(), Unavailable> {
        self.ready()
    }
    /// Sends one message.
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a>;
    /// Longest one send may take before it counts as failed.
    fn timeout(&self) -> Duration {
        Duration::from_secs(180)
    }
    /// A watch that changes whenever [`Transport::ready`] may have changed (the modem's health),
    /// so the sender wakes at once when its channel comes back. `None`: readiness is not pushed
    /// (email: its pages are tried when due, and the pause after a refused login ends by time).
    fn readiness_changes(&self) -> Option<watch::Receiver<Health>> {
        None
    }
    /// A check of the channel that sends no message (email: connect, TLS, AUTH, NOOP), run now
    /// and then by the paging-health task, so a channel that is seldom used (email behind a
    /// working modem) is not found broken only when a page needs it. `None`: nothing of the
    /// kind (the modem's health is watched all the time).
    fn probe(&self) -> Option<ProbeFuture> {
        None
    }
}

/// How long a claim by `transport` holds its row.
pub fn lease(transport: &dyn Transport) -> Duration {
    transport.timeout().saturating_add(LEASE_MARGIN)
}

/// How long a sender may go without showing progress: one whole attempt (its lease) and a
/// minute more for recording it. Longer means the sender is stuck (see [`crate::supervisor`]).
pub fn liveness_bound(transport: &dyn Transport) -> Duration {
    lease(transport).saturating_add(Duration::from_secs(60))
}

/// Computes the current paging health from the transports.
pub fn health(transports: &[Arc<dyn Transport>]) -> PagingHealth {
    let mut h = PagingHealth::default();
    for t in transports {
        match t.health() {
            Ok(()) => h.ready.push(t.channel()),
            Err(why) => h.down.push((t.channel(), why.to_string())),
        }
    }
    h
}

/// Backoff before retry `attempt` (1-based): 5 s, 10 s, 20 s, ... capped at 2 min, plus up to 1 s
/// of jitter so retries of many pages do not arrive together.
pub fn backoff(attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 6) as u32 - 1;
    Duration::from_secs((5u64 << exp).min(120)) + Duration::from_millis(fastrand::u64(0..1000))
}

/// The address of `user` on `channel`, if they have one.
fn address(config: &Config, user: &str, channel: Channel) -> Option<String> {
    let u = config.user(user)?;
    match channel {
        Channel::Sms | Channel::Voice => u.phone.as_ref().map(|p| p.to_string()),
        Channel::Email => u.email.clone(),
    }
}

/// The channels of `available` that a page about `incidents` may go on to when its own channel
/// fails, as the escalation engine chose its first channels: only those one of their routes
/// allows, and voice only for one that is not low urgency (low urgency never calls). The page's
/// own channel always stays, and a page that is not to a person (a reply, a status update) keeps
/// to its own address anyway.
pub fn way_on(
    page: &Page,
    incidents: &[Incident],
    config: &Config,
    available: &[Channel],
) -> Vec<Channel> {
    if incidents.is_empty() {
        return available.to_vec();
    }
    let allowed = |c: Channel| {
        incidents.iter().any(|i| {
            let route = i.route.as_deref().and_then(|r| config.route(r));
            route.is_none_or(|r| r.allows(c))
                && !(c == Channel::Voice
                    && config.urgency(i.route.as_deref(), i.severity) == Urgency::Low)
        })
    };
    available
        .iter()
        .copied()
        .filter(|c| *c == page.channel || allowed(*c))
        .collect()
}

/// Decides what follows a failed attempt: retry here, or move to the next channel.
pub fn after_failure(
    page: &Page,
    err: &str,
    retryable: bool,
    channel_down: bool,
    config: &Config,
    available: &[Channel],
    now: DateTime<Utc>,
) -> Attempt {
    let paging = &config.paging;
    let on_channel = now - page.channel_since;
    let within = on_channel < crate::clock::delta(paging.channel_timeout);
    if retryable && !channel_down && page.channel_attempts < paging.max_attempts as i64 && within {
        return Attempt::Retry {
            error: err.to_string(),
            retry_at: crate::clock::add(now, backoff(page.channel_attempts)),
        };
    }
    move_on(
        page,
        err,
        !retryable && !channel_down,
        config,
        available,
        now,
    )
}

/// Decides what follows an SMS page that the network accepted but reports it could not deliver
/// (the phone stayed off, the number takes no SMS). The centre has already retried for as long
/// as it keeps a message, so sending the same SMS again at once would most likely meet the same
/// phone: the page moves on to the person's next channel, as after a failed send. When SMS is
/// the only way to reach them, it is sent again after a pause, unless the report says it can
/// never be delivered (`permanent`), which ends it like any permanent error.
pub fn after_undelivered(
    page: &Page,
    report: &str,
    permanent: bool,
    config: &Config,
    available: &[Channel],
    now: DateTime<Utc>,
) -> Attempt {
    let err = format!("not delivered: {report}");
    move_on(page, &err, permanent, config, available, now)
}

/// The rest of a failed page's way once its own channel is done with it: the next channel in
/// the person's order, else the first again after a pause; only a page that nothing else can
/// reach and `ends` (a permanent error) fails for good.
fn move_on(
    page: &Page,
    err: &str,
    ends: bool,
    config: &Config,
    available: &[Channel],
    now: DateTime<Utc>,
) -> Attempt {
    let paging = &config.paging;
    // Fall through, in the configured order, to a channel this person can be reached on.
    // Replies and status updates go to a plain address, so they stay on their channel.
    let order = &paging.channels;
    let reachable = |c: Channel| -> Option<String> {
        if !available.contains(&c) {
            return None;
        }
        match &page.user_id {
            Some(u) if matches!(page.kind, PageKind::Page | PageKind::Digest) => {
                address(config, u, c)
            }
            _ if c == page.channel => Some(page.address.clone()),
            _ => None,
        }
    };
    let after = order
        .iter()
        .position(|c| *c == page.channel)
        .map_or(0, |p| p + 1);
    if let Some((c, addr)) = order[after.min(order.len())..]
        .iter()
        .find_map(|c| reachable(*c).map(|a| (*c, a)))
    {
        return Attempt::FallThrough {
            error: err.to_string(),
            channel: c,
            address: addr,
            due_at: now,
        };
    }
    // No channel after this one. Start over at the first reachable channel after a pause, so a
    // page is never dropped while any channel might come back; only a permanent error on the
    // only channel that can reach this person ends a page.
    match order.iter().find_map(|c| reachable(*c).map(|a| (*c, a))) {
        Some((c, addr)) if c != page.channel => Attempt::FallThrough {
            // Only the channels from this one on were tried for this round: say so, not that
            // "every channel failed" (a page that began on voice never tried SMS).
            error: format!(
                "{err}; no channel after {} can reach them, starting over with {c}",
                page.channel
            ),
            channel: c,
            address: addr,
            // The pause grows with the page's attempts: 10 s, 20 s, ... at most 2 minutes.
            due_at: crate::clock::add(now, backoff(page.attempts)),
        },
        _ if ends => Attempt::Failed {
            error: err.to_string(),
        },
        _ => Attempt::Retry {
            error: format!("{err}; no other channel can reach them, trying again"),
            retry_at: crate::clock::add(now, backoff(page.attempts)),
        },
    }
}

/// Pair hook: in a pair, each page, digest, status message and outbound notification passes the
/// coordinator's gate first; a single box (or a build without the `ha` feature) has none.
#[derive(Clone, Default)]
pub struct PairGate(#[cfg(feature = "ha")] pub Option<crate::ha::pair::Gate>);

/// Pair hook: what the gate names a claimed row by, read in the store job that claims the row
/// (no store round trip of its own between the claim and etcd); nothing in a single box.
#[cfg(feature = "ha")]
type PairNames = Option<crate::ha::pair::Names>;
#[cfg(not(feature = "ha"))]
type PairNames = ();

impl PairGate {
    /// What the claim job reads for the gate, as a function the job can own.
    fn names(&self) -> fn(&Tx, &Page) -> PairNames {
        #[cfg(feature = "ha")]
        if self.0.is_some() {
            return |c, page| Some(crate::ha::pair::Names::read(c, page));
        }
        |_, _| Default::default()
    }
}

/// Runs the sender for `transport` until `shutdown`. Each recorded attempt is counted in
/// `metrics` (pages by channel and outcome; queued-to-sent latency of pages). Paging health is
/// not the sender's to publish: on every turn it asks the paging-health task to look again
/// (`recheck`, see [`super::paging_health`]), which owns the verdict and its log lines.
// Each argument is a different owner's handle; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    transport: Arc<dyn Transport>,
    all: Arc<Vec<Arc<dyn Transport>>>,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    recheck: super::paging_health::Recheck,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
    metrics: Metrics,
) {
    run_paired(
        transport,
        all,
        store,
        config,
        recheck,
        beat,
        shutdown,
        metrics,
        PairGate::default(),
    )
    .await
}

/// [`run`], with the pair's gate (pair hook).
// Long on purpose: one loop whose state (readiness seen, the wakers) spans iterations; each
// step in it (wake a returned channel, hold at start-up, claim, send, idle) is a named call.
#[allow(clippy::too_many_arguments)]
pub async fn run_paired(
    transport: Arc<dyn Transport>,
    all: Arc<Vec<Arc<dyn Transport>>>,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    recheck: super::paging_health::Recheck,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
    metrics: Metrics,
    pair: PairGate,
) {
    let channel = transport.channel();
    let lease = lease(&*transport);
    let mut wake = Wakers {
        commits: store.commits(),
        clock_steps: store.clock_steps(),
        readiness: transport.readiness_changes(),
    };
    let started = tokio::time::Instant::now();
    // Whether the channel has been ready since the start (until then its pages are held for
    // `channel_start_wait`), and whether it was ready at the last look (to wake on its return).
    let mut been_ready = false;
    let mut was_ready = true;
    loop {
        beat.beat();
        if shutdown.is_cancelled() {
            return;
        }
        if let Some(r) = wake.readiness.as_mut() {
            r.borrow_and_update();
        }
        recheck.notify_one();
        let ready = transport.ready().is_ok();
        if ready && !was_ready && !wake_returned(&store, channel).await {
            if !pause(&shutdown).await {
                return;
            }
            continue;
        }
        was_ready = ready;
        been_ready |= ready;
        // Only a channel with a start-up of its own (the modem's) is held; email is either set
        // up or broken, and a broken one must fall through at once.
        let starting = wake.readiness.is_some() && !been_ready;
        if let Some(held_for) = start_hold(&config, started, starting) {
            // Still starting: its pages wait for it (bounded) instead of falling through.
            tracing::debug!(%channel, left_ms = held_for.as_millis() as u64, "channel not ready since the start; holding its pages");
            let bound = held_for.min(beat.idle_bound());
            if !wake.sleep(&shutdown, bound, false).await {
                return;
            }
            continue;
        }
        let names = pair.names();
        let claim = move |c: &Tx, now| {
            let page = outbox::claim(c, channel, now, lease)?;
            Ok(page.map(|p| (names(c, &p), p)))
        };
        match store.call(claim).await {
            Ok(Some((named, page))) => {
                let cfg = config.borrow().clone();
                handle_paired(
                    &*transport,
                    &all,
                    &store,
                    cfg,
                    page,
                    &metrics,
                    &shutdown,
                    (&pair, named),
                )
                .await;
            }
            Ok(None) => {
                let wait = idle_wait(&store, channel).await.min(beat.idle_bound());
                if !wake.sleep(&shutdown, wait, true).await {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(%channel, error = %e, "sender cannot read the outbox; retrying");
                if !pause(&shutdown).await {
                    return;
                }
            }
        }
    }
}

/// What wakes an idle sender before its timer: a commit (a page may have been queued), a step
/// of the clock (a retry or a lease may have come due) or a change of the channel's readiness.
struct Wakers {
    commits: watch::Receiver<u64>,
    clock_steps: crate::clock::Steps,
    /// `None` when the channel does not push its readiness, or its watch closed (dropped, so
    /// the next wait does not wake on it at once).
    readiness: Option<watch::Receiver<Health>>,
}

impl Wakers {
    /// Sleeps for `wait` or until one of the wakers fires (commits only `on_commit`); `false`
    /// when the daemon stops (or the store closes) meanwhile.
    async fn sleep(
        &mut self,
        shutdown: &CancellationToken,
        wait: Duration,
        on_commit: bool,
    ) -> bool {
        let commits = &mut self.commits;
        let commit = async {
            if on_commit {
                commits.changed().await.is_ok()
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
            ok = commit => ok,
            _ = self.clock_steps.stepped() => true,
            r = changed(&mut self.readiness) => {
                if !r {
                    self.readiness = None;
                }
                true
            }
        }
    }
}

/// Waits a second before a retry; `false` when the daemon stops meanwhile.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
    }
}

/// How much longer a channel that has not been ready since `started` holds its pages
/// (`paging.channel_start_wait` in all); `None` when it does not (it has been ready, or the wait is over).
fn start_hold(
    config: &watch::Receiver<Arc<Config>>,
    started: tokio::time::Instant,
    starting: bool,
) -> Option<Duration> {
    let start_wait = config.borrow().paging.channel_start_wait;
    let held_for = start_wait.saturating_sub(started.elapsed());
    (starting && !held_for.is_zero()).then_some(held_for)
}

/// Makes the pages that wait on `channel` because of a failure due now, as the channel is
/// ready again; `false` when the store did not take it (the caller retries).
async fn wake_returned(store: &Store, channel: Channel) -> bool {
    match store
        .call(move |c, now| Ok(outbox::wake(c, channel, now)?))
        .await
    {
        Ok(n) => {
            if n > 0 {
                tracing::info!(%channel, pages = n, "channel ready again; waiting pages woken");
            }
            true
        }
        Err(e) => {
            tracing::error!(%channel, error = %e, "cannot wake the pages of a channel that came back; retrying");
            false
        }
    }
}

/// How long a sender with nothing due may sleep: until its channel's next due row or the end
/// of a lease in flight, at most 30 s (and 30 s when the store does not answer).
async fn idle_wait(store: &Store, channel: Channel) -> Duration {
    let next = store
        .call(move |c, _| {
            Ok((
                outbox::next_due(c, channel)?,
                outbox::next_lease_end(c, channel)?,
            ))
        })
        .await
        .ok();
    next.into_iter()
        .flat_map(|(a, b)| [a, b])
        .flatten()
        .min()
        .map(|t| (t - store.now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::from_secs(30))
        .min(Duration::from_secs(30))
}

/// Waits for the next readiness change; `false` when the watch has closed (never with none).
async fn changed(readiness: &mut Option<watch::Receiver<Health>>) -> bool {
    match readiness {
        Some(r) => r.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Sends one claimed page and records the outcome: loads its incidents, decides what to send
/// ([`plan`], pure), sends it ([`attempt`]), and records the outcome until the store takes it
/// ([`record`]).
#[cfg(test)]
async fn handle(
    transport: &dyn Transport,
    all: &[Arc<dyn Transport>],
    store: &Store,
    config: Arc<Config>,
    page: Page,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let none = PairGate::default();
    handle_paired(
        transport,
        all,
        store,
        config,
        page,
        metrics,
        shutdown,
        (&none, Default::default()),
    )
    .await
}

/// [`handle`], with the pair's gate (pair hook).
#[allow(clippy::too_many_arguments)]
async fn handle_paired(
    transport: &dyn Transport,
    all: &[Arc<dyn Transport>],
    store: &Store,
    config: Arc<Config>,
    page: Page,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    #[cfg_attr(not(feature = "ha"), allow(unused_variables))] pair: (&PairGate, PairNames),
) {
    let channel = page.channel;
    let ids: Vec<i64> = page
        .incident_id
        .into_iter()
        .chain(page.items.iter().copied())
        .collect();
    let incidents = match store.page_incidents(ids).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(page = page.id, error = %e, "cannot load the incidents of a page; it stays queued");
            let retry = Attempt::Retry {
                error: e.to_string(),
                retry_at: crate::clock::add(store.now(), Duration::from_secs(5)),
            };
            let what = format!("retry of page {}", page.id);
            if until_stored(store, shutdown, &what, move |c, now| {
                Ok(outbox::finish(c, &page, &retry, now)?)
            })
            .await
            .is_some()
            {
                metrics.page(channel, PageOutcome::Retry);
            }
            return;
        }
    };
    // The page as it went out (at the person's address in force), for the record.
    let (page, outcome) = match plan(&page, incidents, &config) {
        Plan::Cancel(reason) => (page, Attempt::Cancelled { reason }),
        Plan::Fail(error) => (page, Attempt::Failed { error }),
        Plan::Send(out) => {
            // Pair hook: the peer may send this page, or may already have.
            #[cfg(feature = "ha")]
            let claimed = match (&pair.0 .0, pair.1) {
                (Some(gate), Some(named)) => match gate.before(store, shutdown, &page, named).await
                {
                    crate::ha::pair::Pass::Send(claimed) => claimed.map(|c| (gate, c)),
                    crate::ha::pair::Pass::Handled => return,
                },
                _ => None,
            };
            let outcome = attempt(transport, all, store, &out).await;
            #[cfg(feature = "ha")]
            if let Some((gate, c)) = claimed {
                gate.after(c, &outcome);
            }
            (out.page, outcome)
        }
    };
    log_outcome(&page, &outcome);
    record(store, shutdown, metrics, page, outcome).await;
}

/// What to do with a claimed page, decided from the page and its incidents alone.
enum Plan {
    /// Nothing to send any more.
    Cancel(String),
    /// It cannot go to anyone: failed for good, so an incident it leaves unpaged is flagged as
    /// reaching nobody ([`crate::store::pages::nobody_reached`]) rather than passing unseen.
    Fail(String),
    /// Send this (boxed: a page with its incidents is large, and a plan is moved once).
    Send(Box<Outgoing>),
}

/// Why an email page need not go out: an email to the same person about each of its incidents
/// already went out since this page was queued (that is, in the same escalation step). While the
/// modem is down, one step's SMS and voice pages both fall through to email next to the
/// person's own email rule; one email per person per step says it all, three identical ones
/// teach people to ignore them. Decided from the timelines already loaded for the page.
fn emailed_in_this_step(page: &Page, open: &[(Incident, Vec<TimelineEvent>)]) -> Option<String> {
    if page.channel != Channel::Email || open.is_empty() {
        return None;
    }
    let user = page.user_id.as_deref()?;
    let prefix = format!("email to {user} sent");
    let all_emailed = open.iter().all(|(_, timeline)| {
        timeline.iter().any(|e| {
            e.kind == EventKind::PageSent
                && e.at >= page.created_at
                && e.message.starts_with(&prefix)
        })
    });
    all_emailed.then(|| format!("an email to {user} about this already went out in this step"))
}

/// Decides whether a claimed page still goes out and with which text: a page or digest about
/// incidents nobody needs to be woken for any more is cancelled; a digest lists the incidents
/// still open; a page that fell through from a call to SMS is written again for SMS, and a page
/// on a call is always spoken.
fn plan(page: &Page, incidents: Vec<(Incident, Vec<TimelineEvent>)>, config: &Arc<Config>) -> Plan {
    let open: Vec<_> = incidents
        .iter()
        .filter(|(i, _)| i.status == Status::Triggered)
        .cloned()
        .collect();
    if page.kind.is_to_person() && open.is_empty() {
        return Plan::Cancel("incident no longer triggered".into());
    }
    if let Some(reason) = emailed_in_this_step(page, &open) {
        return Plan::Cancel(reason);
    }
    let channel = page.channel;
    // The person as the config in force has them: a reload since the page was queued may have
    // changed their number or address, or removed them (then nobody is there to page, and a
    // reply from their old number would not be taken as theirs either: the page fails, and an
    // incident nobody else is paged for shows as reaching nobody).
    let mut to = page.clone();
    if let (Some(user), PageKind::Page | PageKind::Digest) = (&page.user_id, page.kind) {
        if config.user(user).is_none() {
            return Plan::Fail(format!("{user} is no longer in the config"));
        }
        if let Some(now) = address(config, user, channel) {
            to.address = now;
        }
    }
    let text = match page.kind {
        PageKind::Digest => {
            let list: Vec<Incident> = open.iter().map(|(i, _)| i.clone()).collect();
            if channel == Channel::Voice {
                format!(
                    "pagerbox. {} new incidents. {}",
                    list.len(),
                    list.iter()
                        .map(|i| format!("Incident {}: {}.", i.id, i.summary))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            } else {
                super::text::sms_digest(&list, config.paging.sms_max_parts)
            }
        }
        _ => match (page.kind, channel, open.first()) {
            // A page that fell through to another channel gets that channel's wording: an email
            // is written at up to ten SMS parts, and sent as such it would outgrow the SMS
            // transport's timeout (sized for `sms_max_parts`) and be sent again in part.
            (PageKind::Page, Channel::Voice, Some((i, _))) => super::text::voice_page(i),
            (PageKind::Page, Channel::Sms, Some((i, _)))
                if page.written_for != Some(Channel::Sms) =>
            {
                super::text::sms_page(i, None, config.paging.sms_max_parts)
            }
            _ => page.body.clone(),
        },
    };
    Plan::Send(Box::new(Outgoing {
        page: to,
        text,
        incidents: if page.kind == PageKind::Digest {
            open
        } else {
            incidents
        },
        config: config.clone(),
    }))
}

/// Hands `out` to its transport (bounded by the transport's timeout) and says what happened; a
/// DTMF acknowledgement during a call is recorded on the incident at once.
async fn attempt(
    transport: &dyn Transport,
    all: &[Arc<dyn Transport>],
    store: &Store,
    out: &Outgoing,
) -> Attempt {
    let (page, config, channel) = (&out.page, &out.config, out.page.channel);
    let served: Vec<Channel> = all.iter().map(|t| t.channel()).collect();
    let about: Vec<Incident> = out.incidents.iter().map(|(i, _)| i.clone()).collect();
    let available = way_on(page, &about, config, &served);
    // A reload took this channel's address away from the person: the page goes on to their
    // next channel, as after a permanent error here.
    if let (Some(user), PageKind::Page | PageKind::Digest) = (&page.user_id, page.kind) {
        if address(config, user, channel).is_none() {
            let why = format!("{user} has no {channel} address any more");
            return after_failure(page, &why, false, false, config, &available, store.now());
        }
    }
    if let Err(why) = transport.ready() {
        let why = format!("{channel} unavailable: {why}");
        return after_failure(page, &why, true, true, config, &available, store.now());
    }
    match tokio::time::timeout(transport.timeout(), transport.send(out)).await {
        Ok(Ok(d)) => {
            if d.acknowledged {
                if let (Some(user), Some(id)) = (page.user_id.clone(), page.incident_id) {
                    if let Err(e) = store.acknowledge(id, Actor::new(user, "voice")).await {
                        tracing::error!(incident = id, error = %e, "cannot record a DTMF acknowledgement");
                    }
                }
            }
            Attempt::Sent {
                reference: d.reference,
                detail: d.detail,
            }
        }
        Ok(Err(e)) => after_failure(
            page,
            &e.to_string(),
            e.is_retryable(),
            false,
            config,
            &available,
            store.now(),
        ),
        Err(_) => after_failure(
            page,
            &format!("{channel} send timed out"),
            true,
            false,
            config,
            &available,
            store.now(),
        ),
    }
}

/// One log line per attempt, at the level its outcome deserves.
fn log_outcome(page: &Page, outcome: &Attempt) {
    let channel = page.channel;
    match outcome {
        Attempt::Sent { .. } => {
            tracing::info!(page = page.id, %channel, attempt = page.attempts, "page sent")
        }
        Attempt::Retry { error, .. } => {
            tracing::warn!(page = page.id, %channel, attempt = page.attempts, %error, "page attempt failed; will retry")
        }
        Attempt::FallThrough {
            error, channel: to, ..
        } => {
            tracing::warn!(page = page.id, from = %channel, to = %to, %error, "page falls through to the next channel")
        }
        Attempt::Failed { error } => {
            tracing::error!(page = page.id, %channel, %error, "page failed for good")
        }
        Attempt::Cancelled { reason } => {
            tracing::info!(page = page.id, %channel, %reason, "page cancelled")
        }
    }
}

/// Records the outcome of the attempt until the store takes it (see [`until_stored`]), then
/// counts it once and, for a page to a person that was sent, its latency.
async fn record(
    store: &Store,
    shutdown: &CancellationToken,
    metrics: &Metrics,
    page: Page,
    outcome: Attempt,
) {
    let channel = page.channel;
    let page2 = page.clone();
    let out2 = outcome.clone();
    let what = format!("outcome of page {} attempt {}", page.id, page.attempts);
    let recorded = until_stored(store, shutdown, &what, move |c, now| {
        let applied = outbox::finish(c, &page2, &out2, now)?;
        Ok((applied, now))
    })
    .await;
    let Some((applied, now)) = recorded else {
        return;
    };
    if !applied {
        // An earlier try was stored but its answer was lost, or the lease ran out.
        tracing::warn!(
            page = page.id,
            attempt = page.attempts,
            "outcome already recorded or the row was claimed again"
        );
    }
    // Counted once per attempt, however many tries the recording took.
    metrics.page(channel, PageOutcome::of(&outcome));
    // Latency of pages to people, from queued (after any pre-page delay) to sent;
    // digests are held on purpose for their grouping window, so they are left out.
    if applied && matches!(outcome, Attempt::Sent { .. }) && page.kind == PageKind::Page {
        metrics.page_latency(
            channel,
            (now - page.created_at).to_std().unwrap_or_default(),
        );
    }
}

#[cfg(test)]
#[path = "sender/tests.rs"]
mod tests;
