//! The daemon: starts every task, waits for a signal, and stops at a safe point.
//!
//! Ownership: the store thread owns SQLite; the HTTP and UDP servers own their sockets; the
//! current [`Config`] is published on a `watch` channel so a SIGHUP reload reaches every task
//! without locks. Shutdown cancels one token; each task finishes what it has in hand (a request
//! being committed, an AT exchange) and returns; we wait for all of them with a time limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ModemConfig, ModemDevice};
use crate::incident::{Actor, Status};
use crate::intake::{self, Intake, IntakeStats};
use crate::modem::sim::{SimConfig, SimHandle, Simulator};
use crate::modem::{Health, Modem, ModemEvent, Pin, ProfileChoice, Settings};
use crate::notify::sender::{self, PagingHealth, Transport};
use crate::notify::transport;
use crate::panel::{PanelEvent, PanelState};
use crate::store::{outbox, ListFilter, Store};
use crate::supervisor::{Role, Supervisor, TaskEnded};

/// How long shutdown waits for tasks to finish the unit of work in hand: the longest one is a
/// voice page (the ring time plus the hang-up), then an SMS submit. Capped below the unit's
/// `TimeoutStopSec=` (90 s) so systemd never kills the daemon mid-record; a send cut short
/// stays `sending` with its attempt counted and is sent again after the restart.
fn shutdown_grace(config: &Config) -> Duration {
    let voice = config.modem.ring_for + config.modem.command_timeout * 2;
    let sms = config.modem.sms_timeout + Duration::from_secs(5);
    voice
        .max(sms)
        .max(Duration::from_secs(15))
        .min(Duration::from_secs(80))
}

/// Bounds within which each essential loop must show progress (see [`crate::supervisor`]).
/// Generous: a late task stops the watchdog and fails `/healthz`, so a bound must never be
/// shorter than one honest iteration (an escalation pass in a storm, a store retry).
const ENGINE_BOUND: Duration = Duration::from_secs(120);
const ACK_BOUND: Duration = Duration::from_secs(120);
const HEARTBEAT_BOUND: Duration = Duration::from_secs(120);
const PANEL_BOUND: Duration = Duration::from_secs(180);
const PAGING_HEALTH_BOUND: Duration = Duration::from_secs(60);

/// Where a running daemon says it listens: `<state_dir>/run.json`. The CLI and tests read it
/// when the config asks for port 0.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub pid: u32,
    pub http: SocketAddr,
    pub udp: Option<SocketAddr>,
}

impl RunInfo {
    /// Path of the run file for a state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("run.json")
    }

    /// Reads the run file of a state directory.
    pub fn read(state_dir: &Path) -> Option<RunInfo> {
        let text = std::fs::read_to_string(Self::path(state_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Runs the daemon with the config at `config_path` until SIGTERM or SIGINT.
///
/// Returns an error, so the process exits non-zero and systemd restarts it, when an essential
/// task ended or panicked: a daemon that cannot page must not stay up looking healthy.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let loaded = Config::load(config_path)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    warn_unreachable(&loaded.config);
    // Started anyway, so the channels that work keep paging; the broken part shows in the log
    // and (for a channel) in /healthz. `check` and a reload refuse such a file.
    for e in &loaded.impaired {
        tracing::error!("config problem, running impaired: {e}");
    }
    run_with(loaded.config, Arc::new(SystemClock)).await
}

/// Logs every way `config` can leave someone unpaged (routes whose alerts reach nobody, on-call
/// gaps ahead), at start and after a reload: the box owner must hear of it before an alert does.
fn warn_unreachable(config: &Config) {
    let overrides = crate::cli::runtime_overrides(config);
    for w in crate::config::reach::unreachable(config, SystemClock.now(), &overrides) {
        tracing::warn!("nobody would be paged: {w}");
    }
}

/// Runs the daemon with an already validated config.
pub async fn run_with(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    crate::fault::arm_from_env();
    let shutdown = CancellationToken::new();
    let (sup, mut ended) = Supervisor::new(shutdown.clone());
    let tracker = sup.tracker().clone();
    let grace = shutdown_grace(&config);

    std::fs::create_dir_all(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot create state_dir {}",
            config.daemon.state_dir.display()
        )
    })?;
    // Event counters for GET /metrics; each part that records holds a clone.
    let metrics = crate::metrics::Metrics::new(clock.now());
    let store = Store::open_observed(
        &config.database_path(),
        clock.clone(),
        Some(metrics.clone()),
    )?;
    let token = intake::read_token(&config).with_context(|| "cannot read http.token_file")?;
    if token.is_none() {
        // On a loopback address only this machine's users can write; elsewhere, anyone who
        // can reach the address can.
        if config.http.listen.ip().is_loopback() {
            tracing::info!("http.token_file is not set: local users can write to the API");
        } else {
            tracing::warn!(
                "http.token_file is not set: anyone who can reach the API can write to it"
            );
        }
    }

    let http = intake::server::bind(config.http.listen)
        .with_context(|| format!("cannot listen on http {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let udp = if config.udp.enabled {
        let sock = tokio::net::UdpSocket::bind(config.udp.listen)
            .await
            .with_context(|| format!("cannot listen on udp {}", config.udp.listen))?;
        Some(sock)
    } else {
        None
    };
    let udp_addr = udp.as_ref().map(|s| s.local_addr()).transpose()?;

    let config_path = config.path.clone();
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let (token_tx, token_rx) = watch::channel(token);

    // Pages caught in flight by a crash or power cut are sent again (at-least-once).
    let recovered = store
        .call(|c, now| Ok(outbox::recover_in_flight(c, now)?))
        .await?;
    if recovered > 0 {
        tracing::warn!(
            pages = recovered,
            "pages were in flight when pagerbox stopped; sending them again"
        );
    }

    // SMS replies, missed calls and DTMF acks: one task owns the command handling.
    let (ack, ack_requests) = crate::ack::channel();
    sup.spawn(
        "ack",
        Role::Essential,
        crate::ack::run(
            crate::ack::Acker::new(
                store.clone(),
                config_rx.clone(),
                crate::ack::DEFAULT_MISSED_CALL_WINDOW,
            ),
            ack_requests,
            clock.clone(),
            sup.heartbeat("ack", ACK_BOUND),
            shutdown.clone(),
        ),
    );

    // The modem: a real device, or the built-in simulator on a pseudo-terminal.
    let mut sim: Option<SimHandle> = None;
    let mut modem: Option<(Modem, watch::Receiver<Health>)> = None;
    let mut selftest: Option<(crate::selftest::SelftestHandle, watch::Receiver<bool>)> = None;
    if config.modem.enabled {
        let device = match &config.modem.device {
            ModemDevice::Path(p) => p.clone(),
            ModemDevice::Simulator => {
                let handle = start_simulator(&config).await?;
                let path = handle.pty_path();
                sim = Some(handle);
                path
            }
        };
        let mut settings = modem_settings(&config.modem, device)?;
        settings.heartbeat = sup.heartbeat("modem", settings.heartbeat_bound());
        let (m, events) = Modem::spawn_supervised(settings, &sup, shutdown.clone());
        let health = m.health();
        // Self-test of the paging path: runs on demand and on schedule; watches the modem.
        let (handle, inbox, runner) = crate::selftest::spawn(crate::selftest::runner::Deps {
            store: store.clone(),
            config: config_rx.clone(),
            modem: m.clone(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
        });
        // Not paging: a dead runner answers "stopped" to the next self-test request.
        sup.spawn("selftest-runner", Role::Auxiliary, runner);
        let (fault_tx, fault_rx) = watch::channel(false);
        sup.spawn(
            "selftest-monitor",
            Role::Essential,
            crate::selftest::monitor::run(crate::selftest::monitor::Deps {
                store: store.clone(),
                config: config_rx.clone(),
                modem: m.clone(),
                health: health.clone(),
                clock: clock.clone(),
                fault: fault_tx,
                shutdown: shutdown.clone(),
            }),
        );
        selftest = Some((handle, fault_rx));
        sup.spawn(
            "modem-events",
            Role::Essential,
            modem_events(
                events,
                EventSinks {
                    modem: m.clone(),
                    store: store.clone(),
                    ack: ack.clone(),
                    clock: clock.clone(),
                    selftest: Some(inbox),
                    metrics: metrics.clone(),
                    tracker: tracker.clone(),
                },
                shutdown.clone(),
            ),
        );
        modem = Some((m, health));
    }

    // Transports and one sender task per channel.
    let mut transports: Vec<Arc<dyn Transport>> = Vec::new();
    if let Some((m, h)) = &modem {
        transports.push(Arc::new(transport::ModemSms::new(m.clone(), h.clone())));
        transports.push(Arc::new(transport::ModemVoice {
            modem: m.clone(),
            health: h.clone(),
            ring_for: config.modem.ring_for,
            ack: ack.clone(),
        }));
    }
    if config.email.enabled {
        // Never fatal: a sender that cannot be built leaves email impaired (in /healthz) and
        // is rebuilt when a reload fixes it, while SMS and voice page.
        transports.push(Arc::new(transport::Email::new(config_rx.clone())));
    }
    if transports.is_empty() {
        tracing::error!("no paging channel is enabled (modem and email both off): incidents are recorded but nobody can be paged");
    }
    let transports = Arc::new(transports);
    let (paging_tx, paging_rx) = watch::channel(sender::health(&transports));
    let paging_tx = Arc::new(paging_tx);
    sup.spawn(
        "paging-health",
        Role::Essential,
        paging_health(
            transports.clone(),
            modem.as_ref().map(|(_, h)| h.clone()),
            paging_tx.clone(),
            sup.heartbeat("paging-health", PAGING_HEALTH_BOUND),
            shutdown.clone(),
        ),
    );
    for t in transports.iter() {
        let name = match t.channel() {
            crate::incident::Channel::Sms => "sender-sms",
            crate::incident::Channel::Voice => "sender-voice",
            crate::incident::Channel::Email => "sender-email",
        };
        sup.spawn(
            name,
            Role::Essential,
            sender::run(
                t.clone(),
                transports.clone(),
                store.clone(),
                config_rx.clone(),
                paging_tx.clone(),
                sup.heartbeat(name, sender::liveness_bound(&**t)),
                shutdown.clone(),
                metrics.clone(),
            ),
        );
    }
    sup.spawn(
        "escalation",
        Role::Essential,
        crate::escalation::engine::run(
            store.clone(),
            config_rx.clone(),
            sup.heartbeat("escalation", ENGINE_BOUND),
            shutdown.clone(),
        ),
    );
    sup.spawn(
        "heartbeat-monitors",
        Role::Essential,
        crate::heartbeat::run(
            store.clone(),
            config_rx.clone(),
            clock.clone(),
            sup.heartbeat("heartbeat-monitors", HEARTBEAT_BOUND),
            shutdown.clone(),
        ),
    );
    // Slack/Teams/webhook notifications: their own tasks and outbox channel, never on the
    // paging senders' path.
    sup.spawn(
        "outbound",
        Role::Essential,
        crate::outbound::run(
            store.clone(),
            config_rx.clone(),
            tracker.clone(),
            metrics.clone(),
            shutdown.clone(),
        ),
    );

    // One verdict on whether pages can go out, for /healthz and the LED alike.
    let health = crate::health::Sources {
        store: store.clone(),
        paging: Some(paging_rx.clone()),
        modem: modem.as_ref().map(|(_, h)| h.clone()),
        liveness: sup.liveness().clone(),
        selftest_fault: selftest.as_ref().map(|(_, f)| f.clone()),
        clock: clock.clone(),
    };

    // The panel: LED shows the state, the button acknowledges.
    let (panel_tx, panel_rx) = watch::channel(PanelState::default());
    if let Some(mut panel) =
        crate::panel::spawn(&config.gpio, panel_rx, shutdown.clone(), &tracker)?
    {
        if let Some(fake) = panel.fake.clone() {
            crate::panel::control::serve(
                fake,
                &config.daemon.state_dir.join("fake-panel.sock"),
                shutdown.clone(),
                &tracker,
            )?;
        }
        let store = store.clone();
        // Ends when the panel's GPIO task is gone: the button no longer acknowledges, which is
        // logged; the phone and the API still do.
        sup.spawn("panel-button", Role::Auxiliary, async move {
            while let Some(ev) = panel.events.recv().await {
                button(&store, ev).await;
            }
        });
    }
    sup.spawn(
        "release-memory",
        Role::Auxiliary,
        release_memory(shutdown.clone()),
    );
    sup.spawn(
        "panel-state",
        Role::Essential,
        publish_panel_state(
            store.clone(),
            health.clone(),
            paging_rx.clone(),
            selftest.as_ref().map(|(_, f)| f.clone()),
            panel_tx,
            sup.heartbeat("panel-state", PANEL_BOUND),
            shutdown.clone(),
        ),
    );

    let intake = Intake {
        store: store.clone(),
        config: config_rx.clone(),
        token: token_rx,
        stats: Arc::new(IntakeStats::default()),
        paging: Some(paging_rx),
        modem: modem.as_ref().map(|(_, h)| h.clone()),
        metrics: metrics.clone(),
        selftest: selftest.as_ref().map(|(h, _)| h.clone()),
        health,
    };
    {
        let (intake, max_body) = (intake.clone(), config.http.max_body_bytes);
        let limits = intake::server::Limits::from_config(&config.http).fit_open_file_limit();
        let shutdown = shutdown.clone();
        sup.spawn("http", Role::Essential, async move {
            if let Err(e) = intake::http::serve(http, intake, max_body, limits, shutdown).await {
                tracing::error!(error = %e, "http intake stopped");
            }
        });
    }
    if let Some(sock) = udp {
        sup.spawn(
            "udp",
            Role::Essential,
            intake::udp::serve(sock, intake.clone(), shutdown.clone()),
        );
    }

    let info = RunInfo {
        pid: std::process::id(),
        http: http_addr,
        udp: udp_addr,
    };
    let run_file = RunInfo::path(&config.daemon.state_dir);
    std::fs::write(&run_file, serde_json::to_vec(&info)?)
        .with_context(|| format!("cannot write {}", run_file.display()))?;
    tracing::info!(http = %http_addr, udp = ?udp_addr, state_dir = %config.daemon.state_dir.display(), "pagerbox is up");

    // systemd: READY once intake and the store are up. The watchdog is fed only while every
    // essential loop has beaten within its bound and the store thread answers: "pages can go
    // out", not "the process exists". A dead modem only degrades paging (/healthz says so).
    if let Some(wd) = crate::service::Watchdog::from_env() {
        let store = store.clone();
        let liveness = sup.liveness().clone();
        sup.spawn(
            "watchdog",
            Role::Essential,
            wd.run(
                move || {
                    let store = store.clone();
                    let late = liveness.late();
                    async move {
                        if !late.is_empty() {
                            return Err(format!("tasks late: {late:?}"));
                        }
                        store
                            .call(|c, _| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                },
                shutdown.clone(),
            ),
        );
    }
    if let Err(e) = crate::service::notify_ready() {
        tracing::warn!(error = %e, "cannot tell systemd we are ready");
    }

    let failed: Option<TaskEnded> = tokio::select! {
        _ = wait_for_signals(config_path.as_deref(), &config_tx, &token_tx) => None,
        e = ended.next() => Some(e),
    };
    match &failed {
        None => tracing::info!("shutting down: finishing work in hand"),
        Some(e) => {
            tracing::error!(task = e.task, why = %e.why, "stopping because an essential task ended; a restart resumes every page")
        }
    }
    let _ = crate::service::notify_stopping();
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "some tasks did not stop within the grace period; pages in flight are sent again at the next start"
        );
    }
    drop(intake);
    drop(modem);
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    drop(store);
    let _ = std::fs::remove_file(&run_file);
    tracing::info!("stopped");
    match failed {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

/// Waits for SIGTERM or SIGINT. SIGHUP reloads the config: the new file is validated first, and
/// a bad one is rejected with its errors logged while the old config stays in force. Secrets
/// come with it: the write token file is read again (a change ends every status page session),
/// and the Opsgenie and Splunk On-Call keys are part of the config itself.
async fn wait_for_signals(
    config_path: Option<&Path>,
    config_tx: &watch::Sender<Arc<Config>>,
    token_tx: &watch::Sender<Option<Arc<crate::config::Secret>>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                let _ = crate::service::notify_reloading();
                let Some(path) = config_path else {
                    let _ = crate::service::notify_ready();
                    tracing::warn!("SIGHUP: no config file to reload");
                    continue;
                };
                let loaded = Config::load(path)
                    .and_then(crate::config::Loaded::strict)
                    .map_err(|e| e.to_string())
                    .and_then(|l| {
                        let token = intake::read_token(&l.config)
                            .map_err(|e| format!("cannot read http.token_file: {e}"))?;
                        Ok((l, token))
                    });
                match loaded {
                    Ok((loaded, token)) => {
                        let old = config_tx.borrow().clone();
                        if loaded.config.http.listen != old.http.listen || loaded.config.daemon.state_dir != old.daemon.state_dir {
                            tracing::warn!("SIGHUP: http.listen and daemon.state_dir changes need a restart; other changes applied");
                        }
                        if loaded.config.email.enabled != old.email.enabled {
                            tracing::warn!("SIGHUP: turning email on or off needs a restart; other [email] changes are applied");
                        }
                        config_tx.send_replace(Arc::new(loaded.config));
                        if intake::publish_token(token_tx, token) {
                            tracing::info!("token changed; sessions ended");
                        }
                        tracing::info!(path = %path.display(), "config reloaded");
                        for w in &loaded.warnings {
                            tracing::warn!("{w}");
                        }
                        warn_unreachable(&config_tx.borrow());
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), "config reload rejected; keeping the running config:\n{e}");
                    }
                }
                let _ = crate::service::notify_ready();
            }
        }
    }
}

/// Builds the modem driver's settings from `[modem]`.
pub fn modem_settings(m: &ModemConfig, device: PathBuf) -> anyhow::Result<Settings> {
    let mut s = Settings::new(device);
    s.profile = m
        .profile
        .parse::<ProfileChoice>()
        .map_err(|e| anyhow::anyhow!("modem.profile: {e}"))?;
    s.baud = m.baud;
    s.pin = match &m.pin_file {
        Some(p) => Some(Pin::new(
            crate::config::read_secret(p)
                .with_context(|| format!("cannot read modem.pin_file {}", p.display()))?
                .expose(),
        )),
        None => None,
    };
    s.smsc = m.smsc.clone();
    s.delivery_reports = m.delivery_reports;
    s.text_mode = m.text_mode;
    s.command_timeout = m.command_timeout;
    s.sms_timeout = m.sms_timeout;
    s.health_interval = m.health_interval;
    Ok(s)
}

/// Starts the built-in modem simulator with its PTY link and control socket in the state dir.
async fn start_simulator(config: &Config) -> anyhow::Result<SimHandle> {
    let sc = &config.modem.simulator;
    let dir = &config.daemon.state_dir;
    let control = sc
        .control
        .clone()
        .unwrap_or_else(|| dir.join("simulator.sock"));
    let cfg = SimConfig {
        profile: sc
            .profile
            .parse()
            .map_err(|e| anyhow::anyhow!("modem.simulator.profile: {e}"))?,
        command_delay: sc.command_delay,
        sms_delay: sc.sms_delay,
        sms_delay_jitter: sc.sms_delay / 2,
        pty_link: dir.join("modem.pty"),
        control_socket: Some(control.clone()),
        delivery_report_delay: sc.sms_delay.max(Duration::from_millis(100)),
        ..SimConfig::default()
    };
    let handle = Simulator::start(cfg)
        .await
        .context("cannot start the built-in modem simulator")?;
    tracing::info!(pty = %handle.pty_path().display(), control = %control.display(), "built-in modem simulator running");
    Ok(handle)
}

/// Where [`modem_events`] sends what the modem reports.
struct EventSinks {
    /// To reject a missed-call acknowledgement unanswered.
    modem: Modem,
    /// Delivery reports land on the page's row and timeline.
    store: Store,
    /// SMS commands and missed calls.
    ack: crate::ack::AckHandle,
    clock: Arc<dyn Clock>,
    /// Takes a self-test's reply before the ack handler sees it.
    selftest: Option<crate::selftest::Inbox>,
    /// Counts delivered/undelivered SMS pages.
    metrics: crate::metrics::Metrics,
    /// Runs the short reject task, so shutdown waits for it.
    tracker: tokio_util::task::TaskTracker,
}

/// Longest wait of the event consumer for one store write or ack decision. Each is normally a
/// few milliseconds; a store that stalls longer must not stop the consumer (events would pile
/// up in the modem driver until it drops delivery reports).
const EVENT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the modem to reject a ringing call (behind a page being submitted).
const REJECT_TIMEOUT: Duration = Duration::from_secs(90);

/// Handles what the modem reports: delivery reports land on the page's timeline; incoming SMS go
/// to the command handler (acks, STATUS, ...); an incoming call from a paged user may be a
/// missed-call acknowledgement and is then rejected unanswered.
///
/// This consumer never awaits a modem request: the driver produces these events, and while it
/// serves a request it does not read more URCs, so a consumer waiting on it while it waits for
/// room for events would stall both. The reject runs as its own short task instead (one at a
/// time: a second call cannot ring while the first is being rejected). Store writes and ack
/// decisions are bounded by [`EVENT_STEP_TIMEOUT`].
async fn modem_events(
    mut events: tokio::sync::mpsc::Receiver<ModemEvent>,
    sinks: EventSinks,
    shutdown: CancellationToken,
) {
    let EventSinks {
        modem,
        store,
        ack,
        clock,
        selftest,
        metrics,
        tracker,
    } = sinks;
    let mut rejecting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => match ev { Some(ev) => ev, None => return },
        };
        match ev {
            ModemEvent::DeliveryReport {
                reference,
                delivered,
                outcome,
                status,
                ..
            } => {
                let detail = format!("{outcome:?} (status {status:#04x})");
                let write = store.call(move |c, now| {
                    Ok(outbox::delivered(
                        c,
                        &reference.to_string(),
                        delivered,
                        &detail,
                        now,
                    )?)
                });
                match tokio::time::timeout(EVENT_STEP_TIMEOUT, write).await {
                    Ok(Ok(Some(_))) => metrics.page(
                        crate::incident::Channel::Sms,
                        if delivered {
                            crate::metrics::PageOutcome::Delivered
                        } else {
                            crate::metrics::PageOutcome::Undelivered
                        },
                    ),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot record a delivery report"),
                    Err(_) => tracing::warn!(
                        reference,
                        waited_s = EVENT_STEP_TIMEOUT.as_secs(),
                        "delivery report not recorded in time; moving on (the page was sent)"
                    ),
                }
            }
            ModemEvent::SmsReceived {
                ref from, ref text, ..
            } if selftest.as_ref().is_some_and(|i| i.offer(from, text)) => {
                tracing::info!("self-test reply received");
            }
            ModemEvent::SmsReceived { ref from, .. } => {
                let Some(msg) = crate::ack::Inbound::from_event(&ev, clock.now()) else {
                    continue;
                };
                match tokio::time::timeout(EVENT_STEP_TIMEOUT, ack.sms(msg)).await {
                    Ok(Ok(outcome)) => tracing::debug!(?outcome, "sms command handled"),
                    Ok(Err(e)) => tracing::error!(error = %e, "sms command could not be handled"),
                    Err(_) => tracing::error!(
                        from = %crate::modem::driver::mask_number(from),
                        waited_s = EVENT_STEP_TIMEOUT.as_secs(),
                        "sms command not handled in time; the sender may need to reply again"
                    ),
                }
            }
            ModemEvent::IncomingCall { from } => {
                let decision =
                    tokio::time::timeout(EVENT_STEP_TIMEOUT, ack.missed_call(from)).await;
                match decision {
                    Ok(Ok(d)) if d.reject => {
                        if rejecting.as_ref().is_some_and(|t| !t.is_finished()) {
                            tracing::debug!("a reject is already on its way to the modem");
                            continue;
                        }
                        let modem = modem.clone();
                        rejecting = Some(tracker.spawn(async move {
                            match tokio::time::timeout(REJECT_TIMEOUT, modem.reject_incoming())
                                .await
                            {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "cannot reject the incoming call")
                                }
                                Err(_) => tracing::warn!(
                                    waited_s = REJECT_TIMEOUT.as_secs(),
                                    "the modem did not reject the incoming call in time"
                                ),
                            }
                        }));
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "incoming call could not be handled"),
                    Err(_) => tracing::error!(
                        waited_s = EVENT_STEP_TIMEOUT.as_secs(),
                        "incoming call not handled in time"
                    ),
                }
            }
            ModemEvent::Dtmf { .. } | ModemEvent::CallEnded => {}
        }
    }
}

/// Gives memory freed after a burst back to the system once a minute. glibc keeps freed heap in
/// its arenas, so a daemon that handled a storm would otherwise stay at its peak size on a small
/// box; trimming idle heap is cheap (it only returns whole free pages).
async fn release_memory(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory held by the allocator; it has no
        // preconditions and is thread-safe in glibc.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Keeps the published paging health current: recomputed when the modem's health changes, and
/// every few seconds for the channels that have no watch of their own (email).
async fn paging_health(
    transports: Arc<Vec<Arc<dyn Transport>>>,
    mut modem: Option<watch::Receiver<Health>>,
    tx: Arc<watch::Sender<PagingHealth>>,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
) {
    let mut said_impaired = false;
    loop {
        beat.beat();
        let h = sender::health(&transports);
        tx.send_if_modified(|old| {
            if *old == h {
                return false;
            }
            if h.impaired() {
                tracing::error!(down = ?h.down, "paging impaired: no channel can send; pages are kept and retried");
                said_impaired = true;
            } else if said_impaired {
                // Only after an impairment that was reported: the first health at start is
                // not a recovery.
                tracing::info!(ready = ?h.ready, "paging restored");
                said_impaired = false;
            }
            *old = h;
            true
        });
        let modem_changed = async {
            match modem.as_mut() {
                Some(m) => m.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            alive = modem_changed => if !alive { modem = None },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The button: a short press acknowledges every triggered incident as "on-site"; a long press
/// resolves the acknowledged ones.
async fn button(store: &Store, ev: PanelEvent) {
    let (from, to) = match ev {
        PanelEvent::AckAll => (Status::Triggered, Status::Acknowledged),
        PanelEvent::ResolveAcked => (Status::Acknowledged, Status::Resolved),
    };
    let open = match store.incidents(ListFilter::Open, 10_000).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "button: cannot read incidents");
            return;
        }
    };
    for i in open.into_iter().filter(|i| i.status == from) {
        let actor = Actor::new("on-site", "button");
        let r = if to == Status::Resolved {
            store.resolve(i.id, actor).await
        } else {
            store.acknowledge(i.id, actor).await
        };
        match r {
            Ok(_) => tracing::info!(incident = i.id, status = %to, "button"),
            Err(e) => {
                tracing::error!(incident = i.id, error = %e, "button: cannot change incident")
            }
        }
    }
}

/// Publishes what the LED shows: open incidents, acknowledged or not, and whether paging works
/// (the same verdict as `/healthz`, see [`crate::health`]).
async fn publish_panel_state(
    store: Store,
    health: crate::health::Sources,
    mut paging: watch::Receiver<PagingHealth>,
    mut selftest_fault: Option<watch::Receiver<bool>>,
    panel: watch::Sender<PanelState>,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
) {
    let mut commits = store.commits();
    loop {
        beat.beat();
        // Mark the watches seen, so the select below waits for their next change.
        paging.borrow_and_update();
        if let Some(f) = selftest_fault.as_mut() {
            f.borrow_and_update();
        }
        let impaired = health.verdict().await.impaired();
        let state = store
            .call(move |c, now| {
                let (unacked, acked, oldest): (i64, i64, Option<i64>) = c.query_row(
                    "SELECT sum(status='triggered'), sum(status='acknowledged'), min(CASE WHEN status='triggered' THEN first_seen END) \
                     FROM incidents WHERE status<>'resolved'",
                    [],
                    |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get::<_, Option<i64>>(1)?.unwrap_or(0), r.get(2)?)),
                )?;
                Ok(PanelState {
                    open_unacked: unacked as usize,
                    open_acked: acked as usize,
                    impaired,
                    oldest_unacked_age: oldest.and_then(|t| (now - crate::store::from_ms(t)).to_std().ok()),
                })
            })
            .await;
        match state {
            Ok(s) => {
                panel.send_if_modified(|old| {
                    let changed = *old != s;
                    *old = s;
                    changed
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "store failing");
                panel.send_modify(|s| s.impaired = true);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = commits.changed() => if r.is_err() { return },
            r = paging.changed() => if r.is_err() { return },
            alive = async {
                match selftest_fault.as_mut() {
                    Some(f) => f.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => if !alive { selftest_fault = None },
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}
