//! The modem driver: the task that owns the port, and [`Modem`], the handle the daemon uses.
//!
//! One task (`Driver`) owns the [`AtEngine`] and with it the port, so one AT exchange runs at a time. Callers hold
//! a cloneable [`Modem`] whose methods send a `Request` over a bounded channel and wait on a
//! `oneshot` reply. Between requests the task handles URCs (incoming SMS, status reports, calls)
//! and polls health; events go out on a bounded channel of [`ModemEvent`]s, health on a `watch`.
//!
//! The task never waits for the daemon to take an event: what does not fit the channel waits
//! in a bounded backlog ([`backlog`]) drained beside requests, and when even that is full the
//! least valuable events (delivery reports) are dropped first, counted in
//! [`Health::events_dropped`] and logged. The daemon's event consumer may itself be waiting
//! for this task (rejecting a missed-call acknowledgement), so waiting on it could deadlock.
//!
//! [`Health`] carries the last known readings (registration, operator, signal, SIM, when the
//! modem last answered), refreshed by the task's own health poll, so readers never send AT
//! commands. The loop feeds [`Settings::heartbeat`] on every turn and every finished exchange,
//! and waits idle at most [`crate::supervisor::Heartbeat::idle_bound`].
//!
//! Life cycle: open the port -> drain and resync with `AT` -> bring-up (echo off, verbose errors,
//! identity and profile, SIM and PIN, registration, SMS mode and indications) -> read what was
//! stored while nobody listened -> serve. Failure handling:
//! - port lost (read of 0 bytes, I/O error, open fails): health Down at once, reopen with
//!   exponential backoff and jitter;
//! - a command times out: resync with `AT`; if that fails, or timeouts keep coming, send the
//!   profile's soft reset (`AT+CFUN=1,1`) and reopen;
//! - a rejected SIM PIN is never sent again in this process (the SIM would lock).
//!
//! Requests that arrive while the modem is down are refused at once with
//! [`ModemError::Unavailable`], so the notifier falls back to email instead of waiting.
//!
//! During a call, `hang_up`/`reject_incoming` end it at once and `send_sms` is served at once
//! (SMS goes beside the call); other requests are served when the call is over.
//!
//! Shutdown: the token is checked between exchanges; the exchange in flight finishes first
//! (a call in progress is hung up). The task also ends when the last [`Modem`] is dropped.

mod backlog;
mod sms;
mod types;
mod ussd;
mod voice;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::modem::at::response::{
    parse_cnmi, parse_cops, parse_cpin, parse_creg_reports, parse_csq, parse_registration,
};
use crate::modem::at::{CallerNumber, RegDomain, SimState, Urc};
use crate::modem::engine::{AtEngine, Command, EngineError, Response, Unsolicited};
use crate::modem::pdu::{Deliver, Reassembler};
use crate::modem::port::{PortOpener, SerialOpener};
use crate::modem::profile::Profile;
use backlog::{Backlog, Pushed, BACKLOG_LIMIT};

pub use types::{
    mask_number, CallOptions, CallOutcome, Health, HealthState, ModemError, ModemEvent,
    ModemStatus, Pin, Registration, Settings, SmsReceipt,
};

/// Requests waiting for the task; senders wait when it is full.
const REQUEST_QUEUE: usize = 32;
/// Events waiting for the daemon in the channel; beyond it they wait in the driver's backlog
/// (see [`backlog`]). A stored message is deleted only once its event was accepted by either.
const EVENT_QUEUE: usize = 64;
/// Longest idle wait, whatever the heartbeat allows (a detached heartbeat allows ~forever).
const MAX_IDLE_WAIT: Duration = Duration::from_secs(3600);
/// Log a dropped delivery report once per this many, so a flood does not flood the log too.
const DROP_LOG_EVERY: u64 = 100;
/// A signal this weak still works but is worth a warning.
const WEAK_SIGNAL_DBM: i32 = -107;

/// One request to the task, with its reply channel.
enum Request {
    SendSms {
        to: String,
        text: String,
        reply: oneshot::Sender<Result<SmsReceipt, ModemError>>,
    },
    Call {
        to: String,
        opts: CallOptions,
        reply: oneshot::Sender<Result<CallOutcome, ModemError>>,
    },
    HangUp {
        reply: oneshot::Sender<Result<(), ModemError>>,
    },
    RejectIncoming {
        reply: oneshot::Sender<Result<(), ModemError>>,
    },
    Status {
        reply: oneshot::Sender<Result<ModemStatus, ModemError>>,
    },
    Ussd {
        code: String,
        wait: Duration,
        reply: oneshot::Sender<Result<crate::modem::at::ussd::UssdAnswer, ModemError>>,
    },
}

/// The handle to the modem task. Cheap to clone; the task ends when the last clone is dropped
/// or the shutdown token fires.
#[derive(Clone)]
pub struct Modem {
    requests: mpsc::Sender<Request>,
    health: watch::Receiver<Health>,
}

impl Modem {
    /// Starts the task on the serial device of `settings`.
    pub fn spawn(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> (Modem, mpsc::Receiver<ModemEvent>) {
        let opener = SerialOpener {
            device: settings.device.clone(),
            baud: settings.baud,
        };
        Self::spawn_with(settings, opener, Arc::new(SystemClock), shutdown)
    }

    /// Like [`Modem::spawn`], with the driver run as an essential task of `sup`: a driver that
    /// panics or returns before shutdown stops the daemon (see [`crate::supervisor`]), and its
    /// heartbeat (in `settings`) tells the watchdog whether its request loop still turns. It
    /// reads the daemon's `clock`, like every other task, so health timestamps and received
    /// messages agree with the store's.
    pub fn spawn_supervised(
        settings: Settings,
        sup: &crate::supervisor::Supervisor,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> (Modem, mpsc::Receiver<ModemEvent>) {
        let opener = SerialOpener {
            device: settings.device.clone(),
            baud: settings.baud,
        };
        let (modem, events, driver) = Self::prepare(settings, opener, clock, shutdown);
        sup.spawn("modem", crate::supervisor::Role::Essential, driver);
        (modem, events)
    }

    /// Starts the task on any port opener (tests use a scripted fake) with an injected clock.
    pub fn spawn_with<O: PortOpener>(
        settings: Settings,
        opener: O,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> (Modem, mpsc::Receiver<ModemEvent>) {
        let (modem, events, driver) = Self::prepare(settings, opener, clock, shutdown);
        tokio::spawn(driver);
        (modem, events)
    }

    /// The handle, the event queue and the driver's future, not yet spawned.
    fn prepare<O: PortOpener>(
        settings: Settings,
        opener: O,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> (
        Modem,
        mpsc::Receiver<ModemEvent>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (health_tx, health_rx) = watch::channel(Health {
            answer_bound: settings.answer_bound(),
            ..Health::starting(clock.now())
        });
        let driver = Driver::new(settings, opener, clock, req_rx, ev_tx, health_tx, shutdown);
        (
            Modem {
                requests: req_tx,
                health: health_rx,
            },
            ev_rx,
            driver.run(),
        )
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ModemError>>) -> Request,
    ) -> Result<T, ModemError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| ModemError::Stopped)?;
        rx.await.map_err(|_| ModemError::Stopped)?
    }

    /// Sends an SMS (PDU mode, split into parts as needed). Each part is retried on retryable
    /// `+CMS ERROR`s (e.g. 500) up to `part_attempts`; the receipt holds each part's TP-MR.
    pub async fn send_sms(&self, to: &str, text: &str) -> Result<SmsReceipt, ModemError> {
        self.request(|reply| Request::SendSms {
            to: to.into(),
            text: text.into(),
            reply,
        })
        .await
    }

    /// Places a voice call and follows it to an outcome; see [`CallOptions`]. Other requests
    /// wait while the call runs.
    pub async fn call(&self, to: &str, opts: CallOptions) -> Result<CallOutcome, ModemError> {
        self.request(|reply| Request::Call {
            to: to.into(),
            opts,
            reply,
        })
        .await
    }

    /// Ends any call.
    pub async fn hang_up(&self) -> Result<(), ModemError> {
        self.request(|reply| Request::HangUp { reply }).await
    }

    /// Declines a ringing incoming call.
    pub async fn reject_incoming(&self) -> Result<(), ModemError> {
        self.request(|reply| Request::RejectIncoming { reply })
            .await
    }

    /// Fresh identity, SIM, registration, operator and signal, asked of the modem now (for
    /// `pagerbox modem status`). The command waits behind pages; anything that serves many
    /// readers (the status page, `/metrics`) reads [`Modem::health`] instead.
    pub async fn status(&self) -> Result<ModemStatus, ModemError> {
        self.request(|reply| Request::Status { reply }).await
    }

    /// Sends a USSD code (e.g. `*100#` for the prepaid balance) and waits up to `wait` for the
    /// network's answer. A `+CUSD: 4` / `2` answer is `Ok` with that status (the caller
    /// decides); no answer in time is [`ModemError::UssdTimeout`] (the session is cancelled).
    /// Other requests wait while this runs, so keep `wait` short (tens of seconds).
    pub async fn ussd(
        &self,
        code: &str,
        wait: Duration,
    ) -> Result<crate::modem::at::ussd::UssdAnswer, ModemError> {
        self.request(|reply| Request::Ussd {
            code: code.into(),
            wait,
            reply,
        })
        .await
    }

    /// Health and the last known readings, updated at once on every change; see [`Health`].
    pub fn health(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    /// Waits until the task has ended (after shutdown), so the daemon can exit at a safe point.
    pub async fn stopped(&self) {
        let mut rx = self.health.clone();
        while rx.changed().await.is_ok() {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinState {
    /// Not sent in this process.
    NotTried,
    /// Sent and accepted: safe to send again after a modem reset.
    Accepted,
    /// Rejected, or the answer was lost: never sent again.
    Refused,
}

#[derive(Debug, Clone, Default)]
struct Identity {
    manufacturer: String,
    model: String,
    revision: String,
    imei: Option<String>,
}

/// Parts of concatenated messages still in modem storage, by (sender, reference, total).
type StoredParts = HashMap<(String, u16, u8), (DateTime<Utc>, Vec<u32>)>;

/// Incoming-call tracking, so one ringing call makes one event.
#[derive(Debug, Default)]
struct IncomingCall {
    ringing: bool,
    announced: bool,
    rings: u32,
    /// The last `RING` or `+CLIP` of this call.
    last_ring: Option<Instant>,
}

/// How long without a `RING` or `+CLIP` before a ringing call counts as over. Modems repeat
/// both every few seconds while a call rings; some send nothing at all when the caller gives up
/// (the missed call a person makes to acknowledge), and without this the call would stay
/// "announced" for good and no later call would be announced.
const RING_SILENCE: Duration = Duration::from_secs(20);

/// The task that owns the port; see the module docs.
struct Driver<O: PortOpener> {
    s: Settings,
    opener: O,
    clock: Arc<dyn Clock>,
    engine: Option<AtEngine<O::Port>>,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<ModemEvent>,
    health: watch::Sender<Health>,
    shutdown: CancellationToken,
    profile: Profile,
    ident: Identity,
    sim: SimState,
    registration: Registration,
    operator: Option<String>,
    signal_dbm: Option<i32>,
    pin: PinState,
    pin_problem: Option<String>,
    configured: bool,
    configure_problem: Option<String>,
    down_reason: String,
    reopen_attempt: u32,
    reopen_at: Instant,
    slow_streak: u32,
    concat_ref: u16,
    reassembler: Reassembler<Deliver>,
    stored_parts: StoredParts,
    storage: String,
    incoming: IncomingCall,
    /// Requests that arrived during a call, served when it is over.
    deferred: VecDeque<Request>,
    /// `hang_up` callers waiting for the call in progress to end.
    hang_up_waiters: Vec<oneshot::Sender<Result<(), ModemError>>>,
    /// Events the channel had no room for, oldest first.
    backlog: Backlog,
    /// Events dropped since start (published in [`Health::events_dropped`]).
    events_dropped: u64,
    /// A stored message was left on the SIM (the backlog was full, or reading it failed): list
    /// storage again at the next health poll once the backlog has drained.
    reread_stored: bool,
    /// Storage indexes of messages handled whose deletion the modem refused: not read again
    /// until a new message is announced there or the port is reopened.
    undeleted: std::collections::HashSet<u32>,
    /// Health polls since start; every [`SWEEP_EVERY`]th lists storage whatever happened, for a
    /// message whose `+CMTI` was lost to line noise.
    polls: u64,
    /// The port was opened and no start announcement (`RDY`, `+CPIN`-style power-on URCs) has
    /// been seen since: the first one is the boot we configured the modem through, not a
    /// restart (see [`is_boot_announcement`]).
    awaiting_boot_announcement: bool,
    /// What bring-up set that a module restarting in place resets: registration reports
    /// (`AT+CREG=1` accepted) and the new-message indications `(mt, ds)` of `AT+CNMI`. The
    /// health poll reads them back (see [`Driver::lost_setting`]).
    expect_creg_reports: bool,
    expect_cnmi: Option<(u8, u8)>,
    /// `AT+CREG?` showed registration reports off (`<n>` 0) at the last poll.
    creg_reports_off: bool,
    /// The modem refused every form of `AT+CNMI`: it pages, but incoming acks and delivery
    /// reports are not indicated (Degraded until it accepts one).
    indications_problem: Option<String>,
    /// Settings found lost by consecutive checks (reset when a check finds them kept).
    settings_lost_streak: u32,
    /// The modem read a setting back otherwise just after bring-up set it: the read-back says
    /// nothing about restarts on this firmware, so it is no longer done (until the port reopens).
    readback_unreliable: bool,
}

/// Every how many health polls storage is listed even though nothing says a message is
/// waiting (10 polls: five minutes at the default interval).
const SWEEP_EVERY: u64 = 10;

/// Whether a start announcement is the first since the port was opened (the boot we configured
/// through) rather than a restart. Only the first one counts, so a modem that keeps rebooting
/// is warned about from its second announcement on.
fn is_boot_announcement(urc: &Urc, awaiting: &mut bool) -> bool {
    let first = matches!(urc, Urc::Ready) && *awaiting;
    *awaiting = false;
    first
}

impl<O: PortOpener> Driver<O> {
    fn new(
        s: Settings,
        opener: O,
        clock: Arc<dyn Clock>,
        requests: mpsc::Receiver<Request>,
        events: mpsc::Sender<ModemEvent>,
        health: watch::Sender<Health>,
        shutdown: CancellationToken,
    ) -> Self {
        let profile = s.profile.fixed().unwrap_or(Profile::Generic);
        Self {
            s,
            opener,
            clock,
            engine: None,
            requests,
            events,
            health,
            shutdown,
            profile,
            ident: Identity::default(),
            sim: SimState::Unknown,
            registration: Registration::default(),
            operator: None,
            signal_dbm: None,
            pin: PinState::NotTried,
            pin_problem: None,
            configured: false,
            awaiting_boot_announcement: false,
            expect_creg_reports: false,
            expect_cnmi: None,
            creg_reports_off: false,
            indications_problem: None,
            settings_lost_streak: 0,
            readback_unreliable: false,
            configure_problem: None,
            down_reason: "starting".into(),
            reopen_attempt: 0,
            reopen_at: Instant::now(),
            slow_streak: 0,
            // Vary the concatenation reference across restarts so a phone never joins parts
            // of two different pages.
            concat_ref: fastrand::u16(..),
            reassembler: Reassembler::default(),
            stored_parts: HashMap::new(),
            storage: "SM".into(),
            incoming: IncomingCall::default(),
            deferred: VecDeque::new(),
            hang_up_waiters: Vec::new(),
            backlog: Backlog::new(BACKLOG_LIMIT),
            events_dropped: 0,
            reread_stored: false,
            polls: 0,
            undeleted: std::collections::HashSet::new(),
        }
    }

    // Long on purpose: two states (port closed, open) with one select each, side by side.
    async fn run(mut self) {
        info!(device = %self.opener.describe(), "modem task started");
        let mut next_health = Instant::now() + self.s.health_interval;
        let idle_wait = self.s.heartbeat.idle_bound().min(MAX_IDLE_WAIT);
        loop {
            self.s.heartbeat.beat();
            self.flush_events();
            if self.engine.is_some() {
                if let Some(r) = self.deferred.pop_front() {
                    self.serve(r).await;
                    self.drain_unsolicited().await;
                    continue;
                }
            } else {
                while let Some(r) = self.deferred.pop_front() {
                    self.refuse(r);
                }
            }
            let Some(engine) = self.engine.as_mut() else {
                enum Idle {
                    Stop,
                    Request(Request),
                    Reopen,
                    Room,
                    Beat,
                }
                let backlogged = !self.backlog.is_empty();
                let ev = tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => Idle::Stop,
                    r = self.requests.recv() => r.map_or(Idle::Stop, Idle::Request),
                    _ = self.events.reserve(), if backlogged => Idle::Room,
                    _ = sleep_until(self.reopen_at) => Idle::Reopen,
                    _ = tokio::time::sleep(idle_wait) => Idle::Beat,
                };
                match ev {
                    Idle::Stop => break,
                    Idle::Request(r) => self.refuse(r),
                    // The next turn hands over what fits and beats.
                    Idle::Room | Idle::Beat => {}
                    Idle::Reopen => {
                        self.reopen().await;
                        next_health = Instant::now() + self.s.health_interval;
                    }
                }
                continue;
            };
            enum Wake {
                Stop,
                Request(Request),
                Unsolicited(Result<Unsolicited, EngineError>),
                Health,
                Room,
                Beat,
            }
            let backlogged = !self.backlog.is_empty();
            // Requests first (pages), then handing over events, then new URCs: while the
            // daemon is slow, reading more URCs would only grow the backlog.
            let ev = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Wake::Stop,
                r = self.requests.recv() => r.map_or(Wake::Stop, Wake::Request),
                _ = self.events.reserve(), if backlogged => Wake::Room,
                u = engine.next_unsolicited() => Wake::Unsolicited(u),
                _ = sleep_until(next_health) => Wake::Health,
                _ = tokio::time::sleep(idle_wait) => Wake::Beat,
            };
            match ev {
                Wake::Stop => break,
                // The next turn hands over what fits and beats.
                Wake::Room | Wake::Beat => {}
                Wake::Request(r) => self.serve(r).await,
                Wake::Unsolicited(Ok(u)) => self.on_unsolicited(u).await,
                Wake::Unsolicited(Err(e)) => self.lose_port(format!("port lost: {e}")),
                Wake::Health => {
                    self.health_poll().await;
                    next_health = Instant::now() + self.s.health_interval;
                }
            }
            self.drain_unsolicited().await;
        }
        while let Some(r) = self.deferred.pop_front() {
            self.refuse(r);
        }
        info!("modem task stopped");
    }

    /// Answers a request while the port is down.
    fn refuse(&mut self, r: Request) {
        let err = || ModemError::Unavailable {
            reason: self.health.borrow().reason.clone(),
        };
        match r {
            Request::SendSms { reply, .. } => drop(reply.send(Err(err()))),
            Request::Call { reply, .. } => drop(reply.send(Err(err()))),
            Request::HangUp { reply } | Request::RejectIncoming { reply } => {
                drop(reply.send(Err(err())))
            }
            Request::Status { reply } => drop(reply.send(Err(err()))),
            Request::Ussd { reply, .. } => drop(reply.send(Err(err()))),
        }
    }

    async fn serve(&mut self, r: Request) {
        match r {
            Request::SendSms { to, text, reply } => {
                let res = self.send_sms(&to, &text).await;
                let _ = reply.send(res);
            }
            Request::Call { to, opts, reply } => {
                let res = self.call(&to, opts).await;
                let _ = reply.send(res);
            }
            Request::HangUp { reply } | Request::RejectIncoming { reply } => {
                let res = self.hang_up().await;
                let _ = reply.send(res);
            }
            Request::Status { reply } => {
                let res = self.status().await;
                let _ = reply.send(res);
            }
            Request::Ussd { code, wait, reply } => {
                let res = self.ussd(&code, wait).await;
                let _ = reply.send(res);
            }
        }
    }

    // ---- port life cycle -------------------------------------------------------------------

    async fn reopen(&mut self) {
        match self.opener.open().await {
            Err(e) => {
                let reason = format!("cannot open {}: {e}", self.opener.describe());
                self.schedule_reopen(reason);
            }
            Ok(port) => {
                // A modem that keeps failing its bring-up opens every few seconds: said once.
                if self.reopen_attempt <= 1 || !self.down_reason.starts_with("bring-up failed") {
                    info!(device = %self.opener.describe(), "modem port opened");
                } else {
                    debug!(device = %self.opener.describe(), "modem port opened");
                }
                self.engine = Some(AtEngine::new(port));
                self.awaiting_boot_announcement = true;
                match self.bring_up().await {
                    Ok(()) => {
                        self.reopen_attempt = 0;
                        self.evaluate();
                    }
                    Err(e) => {
                        if self.engine.is_some() {
                            self.engine = None;
                            // A refused required setting says which modem answered what.
                            let why = self
                                .configure_problem
                                .take()
                                .unwrap_or_else(|| e.to_string());
                            self.schedule_reopen(format!("bring-up failed: {why}"));
                        }
                    }
                }
            }
        }
    }

    /// Drops the port and schedules a reopen; health goes Down at once.
    fn lose_port(&mut self, reason: String) {
        self.engine = None;
        self.schedule_reopen(reason);
    }

    fn schedule_reopen(&mut self, reason: String) {
        self.engine = None;
        self.configured = false;
        self.settings_lost_streak = 0;
        self.readback_unreliable = false;
        self.undeleted.clear();
        self.sim = SimState::Unknown;
        self.registration = Registration::default();
        self.signal_dbm = None;
        self.incoming = IncomingCall::default();
        let min = self.s.reopen_min.max(Duration::from_millis(10));
        let exp = min.saturating_mul(1u32 << self.reopen_attempt.min(16));
        let capped = exp.min(self.s.reopen_max.max(min));
        // +-20 % jitter so several boxes on one USB hub do not retry in lock step.
        let jitter = 0.8 + fastrand::f64() * 0.4;
        let delay = capped.mul_f64(jitter);
        self.reopen_attempt = self.reopen_attempt.saturating_add(1);
        self.reopen_at = Instant::now() + delay;
        // Loud when it goes down or the reason changes, then every 30th retry (about 5 minutes
        // at the longest pause): a modem unplugged overnight must not write a line every 10 s,
        // and /healthz and the LED say it is down all along.
        let attempt = self.reopen_attempt;
        if reason != self.down_reason || attempt <= 1 || attempt % 30 == 0 {
            warn!(reason = %reason, attempt, retry_in_ms = delay.as_millis() as u64, "modem down");
        } else {
            debug!(reason = %reason, attempt, retry_in_ms = delay.as_millis() as u64, "modem down");
        }
        self.down_reason = reason;
        self.evaluate();
    }

    async fn soft_reset(&mut self, reason: String) {
        let cmd = format!("{}\r", self.profile.reset_command());
        if let Some(engine) = self.engine.as_mut() {
            let _ = engine.write_raw(cmd.as_bytes()).await;
        }
        error!(reason = %reason, "modem not answering, soft reset sent");
        self.lose_port(format!("{reason}; soft reset sent"));
    }

    /// Runs one command; port loss and timeouts are handled here (see module docs).
    async fn exec(&mut self, cmd: Command) -> Result<Response, ModemError> {
        let Some(engine) = self.engine.as_mut() else {
            return Err(ModemError::Unavailable {
                reason: self.down_reason.clone(),
            });
        };
        let res = engine.execute(&cmd).await;
        self.s.heartbeat.beat();
        // Any final result is an answer, `ERROR` included; silence and a lost port are not.
        if res
            .as_ref()
            .map_or_else(|e| !e.is_port_lost() && !e.is_timeout(), |_| true)
        {
            self.note_answer();
        }
        match res {
            Ok(r) => {
                self.slow_streak = 0;
                Ok(r)
            }
            Err(e) if e.is_port_lost() => {
                self.lose_port(format!("port lost: {e}"));
                Err(e.into())
            }
            Err(e) if e.is_timeout() => {
                self.on_timeout(&e).await;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Like [`Self::exec`], but a modem-level refusal (`ERROR`, `+CME`, `+CMS`) is `Ok(None)`:
    /// for optional settings a given modem may not know.
    async fn exec_opt(&mut self, text: &str) -> Result<Option<Response>, ModemError> {
        self.exec_opt_cmd(Command::new(text, self.s.command_timeout))
            .await
    }

    /// [`Driver::exec_opt`] for a command built by the caller.
    async fn exec_opt_cmd(&mut self, cmd: Command) -> Result<Option<Response>, ModemError> {
        let label = cmd.label().to_string();
        match self.exec(cmd).await {
            Ok(r) => Ok(Some(r)),
            Err(ModemError::Command(
                e @ (EngineError::Error { .. } | EngineError::Cme { .. } | EngineError::Cms { .. }),
            )) => {
                debug!(command = %label, error = %e, "optional command refused");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn on_timeout(&mut self, e: &EngineError) {
        warn!(error = %e, "modem command timed out, resyncing");
        let each = self.s.command_timeout.min(Duration::from_secs(3));
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        match engine.resync(2, each).await {
            Ok(()) => {
                self.slow_streak += 1;
                if self.slow_streak >= 3 {
                    self.slow_streak = 0;
                    self.soft_reset(format!("repeated timeouts, last: {e}"))
                        .await;
                } else {
                    self.publish(HealthState::Degraded, format!("modem slow: {e}"));
                }
            }
            Err(r) if r.is_port_lost() => self.lose_port(format!("port lost: {r}")),
            Err(_) => self.soft_reset(format!("modem not answering ({e})")).await,
        }
    }

    // ---- bring-up and health ---------------------------------------------------------------

    async fn bring_up(&mut self) -> Result<(), ModemError> {
        self.configured = false;
        self.configure_problem = None;
        let each = self.s.command_timeout.min(Duration::from_secs(3));
        if let Some(engine) = self.engine.as_mut() {
            // Bytes sent while the port was closed are still buffered: drain, then resync.
            let synced = engine.resync(3, each).await;
            if let Err(e) = synced {
                return Err(ModemError::Command(e));
            }
        }
        let mut refused = Vec::new();
        // The engine skips echoed commands, so a modem that keeps echoing is only noisier.
        self.setting("ATE0", "echo off", &mut refused).await?;
        // Numeric error codes (table in at::codes); verbose text parses too if a modem ignores it.
        self.setting("AT+CMEE=1", "numeric error codes", &mut refused)
            .await?;
        self.identify().await?;
        // Without registration URCs the health poll still reads `AT+CREG?`/`AT+CEREG?`.
        self.setting("AT+CREG=1", "registration reports", &mut refused)
            .await?;
        self.expect_creg_reports = !refused.iter().any(|(c, ..)| *c == "AT+CREG=1");
        if self.profile.has_lte() {
            self.setting("AT+CEREG=1", "LTE registration reports", &mut refused)
                .await?;
        }
        let modem = self.modem_name();
        for (command, purpose, answer) in refused {
            info!(
                modem = %modem,
                command,
                answer = %answer,
                "modem refused an optional setting ({purpose}); going on without it"
            );
        }
        self.check_sim().await?;
        if self.sim == SimState::Ready {
            self.configure_sms().await?;
        }
        self.refresh_network().await?;
        info!(
            profile = self.profile.as_str(),
            model = %self.ident.model,
            sim = %self.sim.describe(),
            registration = %self.registration,
            signal_dbm = ?self.signal_dbm,
            "modem brought up"
        );
        Ok(())
    }

    /// Sends an optional bring-up setting; a refusal (`ERROR`, `+CME`, `+CMS`) is recorded in
    /// `refused` with what the modem answered, to be logged once the modem's name is known.
    /// Silence and a lost port still fail the bring-up.
    async fn setting(
        &mut self,
        command: &'static str,
        purpose: &'static str,
        refused: &mut Vec<(&'static str, &'static str, String)>,
    ) -> Result<(), ModemError> {
        match self
            .exec(Command::new(command, self.s.command_timeout))
            .await
        {
            Ok(_) => Ok(()),
            Err(ModemError::Command(e)) if !e.is_port_lost() && !e.is_timeout() => {
                refused.push((command, purpose, answer_of(&e)));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// An optional setting sent after identification: a refusal is logged at once, naming the
    /// modem and its answer, and is `Ok(None)`.
    async fn optional_setting(
        &mut self,
        command: &str,
        purpose: &str,
    ) -> Result<Option<Response>, ModemError> {
        match self
            .exec(Command::new(command, self.s.command_timeout))
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(ModemError::Command(e)) if !e.is_port_lost() && !e.is_timeout() => {
                info!(
                    modem = %self.modem_name(),
                    command,
                    answer = %answer_of(&e),
                    "modem refused an optional setting ({purpose}); going on without it"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The modem as logs and health reasons name it: manufacturer and model when known, else
    /// the device.
    fn modem_name(&self) -> String {
        let name = format!("{} {}", self.ident.manufacturer, self.ident.model);
        match name.trim() {
            "" => self.opener.describe(),
            n => n.to_string(),
        }
    }

    async fn first_line(&mut self, text: &str) -> Result<Option<String>, ModemError> {
        let prefix = format!("{}:", text.trim_start_matches("AT"));
        Ok(self.exec_opt(text).await?.and_then(|r| {
            r.lines.first().map(|l| {
                l.strip_prefix(&prefix)
                    .unwrap_or(l)
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        }))
    }

    async fn identify(&mut self) -> Result<(), ModemError> {
        let manufacturer = self.first_line("AT+CGMI").await?.unwrap_or_default();
        let mut model = self.first_line("AT+CGMM").await?.unwrap_or_default();
        if model.is_empty() {
            model = self.first_line("ATI").await?.unwrap_or_default();
        }
        let revision = self.first_line("AT+CGMR").await?.unwrap_or_default();
        let imei = self.first_line("AT+CGSN").await?;
        self.profile = self
            .s
            .profile
            .fixed()
            .unwrap_or_else(|| Profile::detect(&manufacturer, &model));
        self.ident = Identity {
            manufacturer,
            model,
            revision,
            imei,
        };
        Ok(())
    }

    async fn query_sim(&mut self) -> Result<SimState, ModemError> {
        match self
            .exec(Command::new("AT+CPIN?", self.s.command_timeout))
            .await
        {
            Ok(r) => Ok(r
                .line("+CPIN:")
                .and_then(parse_cpin)
                .unwrap_or(SimState::Other("no +CPIN answer".into()))),
            Err(ModemError::Command(EngineError::Cme { code, .. })) => Ok(match code.code() {
                Some(10) => SimState::NotInserted,
                Some(11) => SimState::PinRequired,
                Some(12) => SimState::PukRequired,
                Some(13 | 15) => SimState::Other("SIM failure".into()),
                Some(14) => SimState::Other("SIM busy".into()),
                _ => SimState::Other(code.to_string()),
            }),
            Err(ModemError::Command(EngineError::Error { .. })) => {
                Ok(SimState::Other("modem answered ERROR to AT+CPIN?".into()))
            }
            Err(e) => Err(e),
        }
    }

    async fn check_sim(&mut self) -> Result<(), ModemError> {
        self.sim = self.query_sim().await?;
        if self.sim == SimState::PinRequired {
            self.enter_pin().await?;
        }
        Ok(())
    }

    /// Sends the PIN unless it was ever refused (or its answer lost) in this process.
    async fn enter_pin(&mut self) -> Result<(), ModemError> {
        if self.pin == PinState::Refused {
            return Ok(());
        }
        let Some(pin) = self.s.pin.clone() else {
            self.pin_problem = Some("SIM PIN required but none configured".into());
            return Ok(());
        };
        let cmd = Command::secret(
            format!("AT+CPIN=\"{}\"", pin.expose()),
            "AT+CPIN",
            self.s.command_timeout,
        );
        // Pessimistic until the modem says OK: a lost answer may have used up a try.
        self.pin = PinState::Refused;
        match self.exec(cmd).await {
            Ok(_) => {
                self.pin = PinState::Accepted;
                self.pin_problem = None;
                info!("SIM PIN accepted");
                for _ in 0..20 {
                    self.sim = self.query_sim().await?;
                    if self.sim != SimState::PinRequired && !matches!(self.sim, SimState::Other(_))
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(())
            }
            Err(ModemError::Command(EngineError::Cme { code, .. })) if code.code() == Some(16) => {
                error!("SIM PIN rejected; it will not be tried again");
                self.pin_problem = Some("SIM PIN rejected".into());
                Ok(())
            }
            Err(ModemError::Command(e @ (EngineError::Cme { .. } | EngineError::Error { .. }))) => {
                error!(error = %e, "SIM PIN entry failed; it will not be tried again");
                self.pin_problem = Some(format!("SIM PIN entry failed ({e}); not retried"));
                Ok(())
            }
            Err(e) => {
                error!(error = %e, "SIM PIN entry unconfirmed; it will not be tried again");
                self.pin_problem = Some("SIM PIN entry unconfirmed; not retried".into());
                Err(e)
            }
        }
    }

    async fn refresh_network(&mut self) -> Result<(), ModemError> {
        if let Some(r) = self.exec_opt("AT+CREG?").await? {
            let line = r.line("+CREG:");
            self.registration.circuit = line
                .and_then(|l| parse_registration(l, true))
                .map(|(_, s)| s);
            self.creg_reports_off = line.and_then(parse_creg_reports) == Some(false);
        }
        if self.profile.has_lte() {
            if let Some(r) = self.exec_opt("AT+CEREG?").await? {
                self.registration.eps = r
                    .line("+CEREG:")
                    .and_then(|l| parse_registration(l, true))
                    .map(|(_, s)| s);
            }
        }
        if let Some(r) = self.exec_opt("AT+CSQ").await? {
            self.signal_dbm = r.line("+CSQ:").and_then(parse_csq).flatten();
        }
        if self.registration.is_registered() {
            if let Some(r) = self.exec_opt("AT+COPS?").await? {
                self.operator = r.line("+COPS:").and_then(parse_cops);
            }
        }
        Ok(())
    }

    async fn health_poll(&mut self) {
        let res = self.poll_once().await;
        if let Err(e) = res {
            debug!(error = %e, "health poll failed");
        }
        self.check_settings_kept().await;
        self.polls = self.polls.wrapping_add(1);
        if self.polls % SWEEP_EVERY == 0 {
            self.reread_stored = true;
        }
        if self.reread_stored && self.backlog.is_empty() && self.configured {
            self.reread_stored = false;
            debug!("listing messages left on the SIM");
            if let Err(e) = self.process_stored().await {
                debug!(error = %e, "reading stored messages failed");
            }
        }
        self.expire_partials().await;
        self.evaluate();
    }

    async fn poll_once(&mut self) -> Result<(), ModemError> {
        if self.sim != SimState::Ready {
            self.check_sim().await?;
        }
        if self.sms_setup_due() {
            self.configure_sms().await?;
        }
        self.refresh_network().await
    }

    /// Whether SMS must be set up (again) now: the SIM is ready and the modem was never
    /// configured, or it refused message indications, which its "SMS ready" notice or the next
    /// poll may see accepted.
    fn sms_setup_due(&self) -> bool {
        self.sim == SimState::Ready && (!self.configured || self.indications_problem.is_some())
    }

    /// Reads back what bring-up set and brings the modem up again if it was reset. A module that
    /// browns out and restarts without announcing it (a SIM800 on autobaud sends no `RDY`; a
    /// `RDY` torn by line noise is not recognised) comes back with factory settings: no caller
    /// ID, no new-message, status-report or DTMF indications. It stays registered, so without
    /// this check health would read Up while missed-call, SMS and DTMF acks and delivery
    /// reports silently stopped.
    async fn check_settings_kept(&mut self) {
        if !self.configured || self.engine.is_none() {
            return;
        }
        if self.readback_unreliable {
            return;
        }
        match self.lost_setting().await {
            Ok(None) => self.settings_lost_streak = 0,
            Ok(Some(what)) if self.settings_lost_streak >= 1 => {
                // Lost again right after being set: this firmware shows the setting otherwise
                // than it was written. Bringing it up every poll would change nothing.
                warn!(lost = what, modem = %self.modem_name(), "modem reads a setting back otherwise than it was set, just after bring-up; its settings are no longer checked");
                self.readback_unreliable = true;
            }
            Ok(Some(what)) => {
                self.settings_lost_streak += 1;
                warn!(lost = what, "modem lost its settings (it restarted without announcing it?), bringing up again");
                self.bring_up_again("bring-up after a silent restart failed")
                    .await;
            }
            Err(e) => debug!(error = %e, "reading the modem's settings back failed"),
        }
    }

    /// Which setting bring-up made is gone, if one is: registration reports (read by the
    /// poll's `AT+CREG?`) or new-message indications (`AT+CNMI?`).
    async fn lost_setting(&mut self) -> Result<Option<&'static str>, ModemError> {
        if self.expect_creg_reports && self.creg_reports_off {
            return Ok(Some("registration reports (AT+CREG)"));
        }
        let Some(expected) = self.expect_cnmi else {
            return Ok(None);
        };
        let now = self
            .exec_opt("AT+CNMI?")
            .await?
            .and_then(|r| r.line("+CNMI:").and_then(parse_cnmi));
        Ok(now
            .filter(|now| *now != expected)
            .map(|_| "new-message indications (AT+CNMI)"))
    }

    /// Brings the modem up again after it restarted; if that fails, the port is closed and
    /// reopened (health Down meanwhile) with `why`.
    async fn bring_up_again(&mut self, why: &str) {
        match self.bring_up().await {
            Ok(()) => self.evaluate(),
            Err(e) => {
                if self.engine.is_some() {
                    self.lose_port(format!("{why}: {e}"));
                }
            }
        }
    }

    /// Works out health from what is known and publishes it.
    fn evaluate(&mut self) {
        let (state, reason) = self.assess();
        self.publish(state, reason);
    }

    fn assess(&self) -> (HealthState, String) {
        if self.engine.is_none() {
            return (HealthState::Down, self.down_reason.clone());
        }
        // A PIN problem holds only while the SIM is locked: a SIM that reads ready (unlocked by
        // hand, or the "PIN required" was a stray notice) can page.
        if let Some(p) = self
            .pin_problem
            .as_ref()
            .filter(|_| self.sim != SimState::Ready)
        {
            return (HealthState::Down, p.clone());
        }
        match &self.sim {
            SimState::Ready => {}
            SimState::NotInserted => return (HealthState::Down, "SIM not inserted".into()),
            SimState::PinRequired => return (HealthState::Down, "SIM PIN required".into()),
            SimState::PukRequired => {
                return (HealthState::Down, "SIM PUK required (SIM locked)".into())
            }
            other => {
                return (
                    HealthState::Down,
                    format!("SIM not ready ({})", other.describe()),
                )
            }
        }
        if let Some(p) = &self.configure_problem {
            return (HealthState::Down, p.clone());
        }
        if !self.registration.is_registered() {
            return (
                HealthState::Down,
                format!("not registered ({})", self.registration),
            );
        }
        if let Some(p) = &self.indications_problem {
            return (HealthState::Degraded, p.clone());
        }
        if let Some(dbm) = self.signal_dbm.filter(|d| *d <= WEAK_SIGNAL_DBM) {
            return (HealthState::Degraded, format!("weak signal ({dbm} dBm)"));
        }
        (HealthState::Up, "ready".into())
    }

    fn publish(&mut self, state: HealthState, reason: String) {
        let now = self.clock.now();
        let (signal_dbm, registered, sim_ready) = (
            self.signal_dbm,
            self.engine.is_some() && self.registration.is_registered(),
            self.engine.is_some() && self.sim == SimState::Ready,
        );
        let (registration, operator, sim) = if self.engine.is_some() {
            (self.registration, self.operator.clone(), self.sim.clone())
        } else {
            (Registration::default(), None, SimState::Unknown)
        };
        let mut changed = false;
        self.health.send_if_modified(|h| {
            // The readings (for the status page and /metrics) update the watch without counting
            // as a health change.
            let readings = (h.signal_dbm, h.registered, h.sim_ready)
                != (signal_dbm, registered, sim_ready)
                || (&h.registration, &h.operator, &h.sim) != (&registration, &operator, &sim);
            h.signal_dbm = signal_dbm;
            h.registered = registered;
            h.sim_ready = sim_ready;
            h.registration = registration;
            h.operator = operator;
            h.sim = sim;
            if h.state == state && h.reason == reason {
                return readings;
            }
            if h.state != state {
                h.since = now;
            }
            h.state = state;
            h.reason = reason.clone();
            changed = true;
            true
        });
        if changed {
            match state {
                HealthState::Up => info!(state = state.as_str(), reason = %reason, "modem health"),
                _ => warn!(state = state.as_str(), reason = %reason, "modem health"),
            }
        }
    }

    async fn status(&mut self) -> Result<ModemStatus, ModemError> {
        if self.engine.is_none() {
            return Err(ModemError::Unavailable {
                reason: self.down_reason.clone(),
            });
        }
        self.sim = self.query_sim().await?;
        self.refresh_network().await?;
        self.evaluate();
        Ok(ModemStatus {
            manufacturer: self.ident.manufacturer.clone(),
            model: self.ident.model.clone(),
            revision: self.ident.revision.clone(),
            imei: self.ident.imei.clone(),
            sim: self.sim.clone(),
            registration: self.registration,
            operator: self.operator.clone(),
            signal_dbm: self.signal_dbm,
            profile: self.profile,
        })
    }

    // ---- unsolicited -----------------------------------------------------------------------

    async fn drain_unsolicited(&mut self) {
        while let Some(u) = self.engine.as_mut().and_then(AtEngine::pop_unsolicited) {
            self.on_unsolicited(u).await;
        }
    }

    // Long on purpose: one arm per unsolicited result code; splitting scatters the table.
    async fn on_unsolicited(&mut self, u: Unsolicited) {
        debug!(urc = ?u.urc, "urc");
        let res = match u.urc {
            Urc::NewMessage { storage, index } => self.read_stored(&storage, index).await,
            Urc::StatusReportStored { storage, index } => self.read_stored(&storage, index).await,
            Urc::MessageFollows { header } => match u.body {
                Some(body) => self.on_direct_message(&header, &body).await,
                None => Ok(()),
            },
            Urc::StatusReportFollows { header } => match u.body {
                Some(body) => self.on_direct_report(&header, &body).await,
                None => Ok(()),
            },
            Urc::StatusReportText { header } => self.on_text_report(&header),
            Urc::Ring => {
                self.note_ring(u.at);
                self.incoming.ringing = true;
                self.incoming.rings += 1;
                // Without +CLIP the caller is unknown; say so on the second ring.
                if self.incoming.rings >= 2 && !self.incoming.announced {
                    self.incoming.announced = true;
                    self.emit(ModemEvent::IncomingCall { from: None })
                } else {
                    Ok(())
                }
            }
            Urc::CallerId { number, kind } => {
                self.note_ring(u.at);
                self.incoming.ringing = true;
                if self.incoming.announced {
                    Ok(())
                } else {
                    self.incoming.announced = true;
                    // The number in a form that says its type (see `CallerNumber`), so the
                    // acknowledgement code completes national numbers with the country code
                    // instead of reading bare digits as international.
                    let from = CallerNumber::new(&number, kind).map(CallerNumber::into_string);
                    self.emit(ModemEvent::IncomingCall { from })
                }
            }
            Urc::CallEnded(_) | Urc::VoiceCallEnd | Urc::MissedCall(_) => {
                if self.incoming.ringing {
                    self.incoming = IncomingCall::default();
                    self.emit(ModemEvent::CallEnded)
                } else {
                    Ok(())
                }
            }
            Urc::Dtmf { key } => self.emit(ModemEvent::Dtmf { key }),
            Urc::Registration { domain, status } => {
                match domain {
                    RegDomain::Circuit => self.registration.circuit = Some(status),
                    RegDomain::Eps => self.registration.eps = Some(status),
                    RegDomain::Gprs => {}
                }
                self.evaluate();
                Ok(())
            }
            Urc::Sim(state) => {
                self.sim = state;
                if self.sim == SimState::PinRequired {
                    // The notice may be stale: the `+CPIN: SIM PIN` a modem sends as it boots is
                    // often read only after bring-up entered the PIN. A PIN sent to an unlocked
                    // SIM is refused, and a refused PIN is never tried again, so ask the SIM
                    // itself before entering it. (A failed ask is already handled by `exec`.)
                    let _ = self.check_sim().await;
                }
                if self.sms_setup_due() {
                    let _ = self.configure_sms().await;
                }
                self.evaluate();
                Ok(())
            }
            Urc::Ready | Urc::PowerDown => {
                // The module rebooted (or is going down): its settings are gone. The first start
                // announcement after opening the port is usually the boot we were configuring
                // through (a module powered with the host announces itself late): bringing up
                // again is still right, but it is no restart worth a warning.
                if is_boot_announcement(&u.urc, &mut self.awaiting_boot_announcement) {
                    info!(urc = ?u.urc, "modem announced its start; configuring it again");
                } else {
                    warn!(urc = ?u.urc, "modem restarted, bringing up again");
                }
                self.bring_up_again("bring-up after restart failed").await;
                Ok(())
            }
            Urc::SmsReady => {
                if self.sms_setup_due() {
                    let _ = self.configure_sms().await;
                    self.evaluate();
                } else {
                    // Also sent by a module that restarted without a `RDY` we recognised.
                    self.check_settings_kept().await;
                }
                Ok(())
            }
            Urc::QuectelIndication(ref s) if s.contains("SMS DONE") => {
                if self.sms_setup_due() || !self.configured {
                    let _ = self.poll_once().await;
                    self.evaluate();
                } else {
                    self.check_settings_kept().await;
                }
                Ok(())
            }
            Urc::CallReady => {
                self.check_settings_kept().await;
                Ok(())
            }
            Urc::Functionality(_)
            | Urc::QuectelIndication(_)
            | Urc::VoiceCallBegin
            | Urc::SpeechDone
            | Urc::CallList(_) => Ok(()),
            Urc::Ussd(a) => {
                // An answer that came after its request timed out (or network-initiated).
                debug!(status = a.status.describe(), "ussd answer nobody waits for");
                Ok(())
            }
        };
        match res {
            // Counted and logged where it was dropped.
            Ok(()) | Err(ModemError::Backlogged { .. }) => {}
            Err(e) => warn!(error = %e, "handling an unsolicited result failed"),
        }
    }

    /// Hands an event to the daemon without waiting: into the channel if it has room, else into
    /// the backlog (see [`backlog`]). `Err(Backlogged)` means the event was not kept (the backlog
    /// is full of events worth at least as much); it is counted and logged as dropped.
    /// `Err(Stopped)` means nobody listens any more.
    fn emit(&mut self, ev: ModemEvent) -> Result<(), ModemError> {
        self.hand_over(ev, None)
    }

    /// Like [`Self::emit`] for the event of a message still stored at `stored` on the SIM.
    /// If the backlog refuses it, it is not dropped: the caller must leave the message where
    /// it is (not delete it), and storage is listed again once the backlog has drained.
    fn hand_over(&mut self, ev: ModemEvent, stored: Option<u32>) -> Result<(), ModemError> {
        self.flush_events();
        if self.events.is_closed() {
            self.backlog.clear();
            return Err(ModemError::Stopped);
        }
        let ev = if self.backlog.is_empty() {
            match self.events.try_send(ev) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(ModemError::Stopped),
                Err(mpsc::error::TrySendError::Full(ev)) => ev,
            }
        } else {
            ev
        };
        match self.backlog.push(ev) {
            Pushed::Kept => {
                let waiting = self.backlog.len();
                if waiting == 1 || waiting % 256 == 0 {
                    warn!(
                        waiting,
                        "modem events backing up: the daemon is slow to take them"
                    );
                }
                Ok(())
            }
            Pushed::Evicted(old) => {
                self.dropped(&old);
                Ok(())
            }
            Pushed::Refused(ev) => {
                let kind = backlog::kind(&ev);
                match stored {
                    Some(index) => {
                        self.reread_stored = true;
                        warn!(
                            index,
                            kind,
                            backlog = self.backlog.len(),
                            "modem event backlog full: message left on the SIM, read again later"
                        );
                    }
                    None => self.dropped(&ev),
                }
                Err(ModemError::Backlogged { kind })
            }
        }
    }

    /// Counts and logs an event that could not be kept. A delivery report only loses the
    /// "delivered" mark of a page already sent; anything else may be an acknowledgement.
    fn dropped(&mut self, ev: &ModemEvent) {
        self.events_dropped = self.events_dropped.saturating_add(1);
        let total = self.events_dropped;
        self.health.send_if_modified(|h| {
            h.events_dropped = total;
            false
        });
        match ev {
            ModemEvent::DeliveryReport { reference, .. } => {
                if total == 1 || total % DROP_LOG_EVERY == 0 {
                    error!(
                        reference,
                        dropped_total = total,
                        backlog = self.backlog.len(),
                        "modem event backlog full: delivery report dropped (the page itself was sent)"
                    );
                }
            }
            other => error!(
                kind = backlog::kind(other),
                dropped_total = total,
                backlog = self.backlog.len(),
                "modem event backlog full: event not handed to the daemon"
            ),
        }
    }

    /// Moves backlogged events into the channel while it has room; never waits.
    fn flush_events(&mut self) {
        while let Some(ev) = self.backlog.pop() {
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => {
                    self.backlog.unpop(ev);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    /// Records that the modem completed an exchange, for [`Health::last_answer`]. Updated in
    /// place without waking watchers: it changes with every command.
    fn note_answer(&mut self) {
        let now = self.clock.now();
        self.health.send_if_modified(|h| {
            h.last_answer = Some(now);
            false
        });
    }

    /// A `RING` or `+CLIP` came at `at` (when the engine read it, which can be long before it
    /// is handled): a call that rang before it but had been silent for [`RING_SILENCE`] ended
    /// without a word from the modem, and this is a new one.
    fn note_ring(&mut self, at: Instant) {
        let stale = self
            .incoming
            .last_ring
            .is_some_and(|t| at.saturating_duration_since(t) >= RING_SILENCE);
        if self.incoming.ringing && stale {
            debug!("a call rang out without an end notice; this ring is a new call");
            self.incoming = IncomingCall::default();
            let _ = self.emit(ModemEvent::CallEnded);
        }
        self.incoming.last_ring = Some(at);
    }

    async fn hang_up(&mut self) -> Result<(), ModemError> {
        let cmd = Command::new(self.profile.hang_up_command(), self.s.command_timeout);
        self.exec(cmd).await?;
        if self.incoming.ringing {
            self.incoming = IncomingCall::default();
            // The hang-up itself worked; a dropped notice of it must not fail the request.
            let _ = self.emit(ModemEvent::CallEnded);
        }
        Ok(())
    }
}

/// What the modem answered to a refused command, without the command: `ERROR`,
/// `+CME ERROR: 3 (operation not allowed)`, `+CMS ERROR: ...`.
fn answer_of(e: &EngineError) -> String {
    match e {
        EngineError::Error { .. } => "ERROR".into(),
        EngineError::Cme { code, .. } => code.to_string(),
        EngineError::Cms { code, .. } => code.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
