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

use crate::ack::modem_events;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ModemConfig, ModemDevice};
use crate::incident::Channel;
use crate::intake::{self, Intake, IntakeParts, IntakeStats};
use crate::metrics::Metrics;
use crate::modem::sim::{SimConfig, SimHandle, Simulator};
use crate::modem::{Health, Modem, Pin, ProfileChoice, Settings};
use crate::notify::sender::{self, PagingHealth, Transport};
use crate::notify::{paging_health, transport};
use crate::panel::{bridge, PanelState};
use crate::store::Store;
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
/// The pair's "can this box page" feed wakes every second and does no I/O. While it is stuck the
/// lease goes on being renewed on the last health it passed, so the claims this box holds stay
/// held: the bound is short, so that `/healthz` fails and the watchdog pings stop soon (systemd
/// then restarts the daemon after `WatchdogSec`).
#[cfg(feature = "ha")]
const PAIR_HEALTH_BOUND: Duration = Duration::from_secs(15);
/// A standby round is bounded by the upstream timeout (a minute at most in any sane config).
const STANDBY_BOUND: Duration = Duration::from_secs(180);

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
    let clock = crate::clock::from_env(crate::config::parse_duration)
        .map_err(anyhow::Error::msg)?
        .unwrap_or_else(|| Arc::new(SystemClock));
    warn_unreachable(&loaded.config, clock.now());
    // Started anyway, so the channels that work keep paging; the broken part shows in the log
    // and (for a channel) in /healthz. `check` and a reload refuse such a file.
    for e in &loaded.impaired {
        tracing::error!("config problem, running impaired: {e}");
    }
    run_with(loaded.config, clock).await
}

/// Logs every way `config` can leave someone unpaged (routes whose alerts reach nobody, on-call
/// gaps ahead), at start and after a reload: the box owner must hear of it before an alert does.
fn warn_unreachable(config: &Config, now: chrono::DateTime<chrono::Utc>) {
    let mut overrides = crate::store::overrides::in_force_at(&config.database_path(), now);
    for w in crate::escalation::engine::known_users_only(&mut overrides, config) {
        tracing::warn!("{w}");
    }
    for w in crate::escalation::reach::unreachable(config, now, &overrides) {
        tracing::warn!("nobody would be paged: {w}");
    }
}

/// Runs the daemon with an already validated config: opens the store and the listeners, starts
/// every task under one supervisor, and waits for a signal or for an essential task to end.
pub async fn run_with(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    crate::fault::arm_from_env();
    // Before anything says the daemon is up (run.json, systemd's READY): a SIGHUP or SIGTERM that
    // comes right after must find its handler, not the default action, which ends the process.
    let signals = Signals::install().context("cannot install signal handlers")?;
    let shutdown = CancellationToken::new();
    let (sup, mut ended) = Supervisor::new(shutdown.clone());
    let (metrics, store, token) = open_state(&config, &clock)?;
    let listeners = Listeners::bind(&config).await?;
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let (token_tx, token_rx) = watch::channel(token);
    recover_pages(&store).await?;
    let core = Core {
        sup,
        store,
        config: config_rx,
        clock,
        metrics,
        shutdown,
    };

    let ack = start_ack(&core);
    let (sim, modem) = start_modem(&core, &config, &ack).await?;
    let (paging, pair) = start_paging_paired(&core, &config, modem.as_ref(), &ack)?;
    let standby = start_engines(&core, pair);
    let health = health_sources(&core, &paging, modem.as_ref(), standby);
    start_panel(&core, &config, &health, &paging, modem.as_ref())?;
    let intake = intake_handle(&core, token_rx, paging, modem.as_ref(), health);
    let run_file = start_intake(&core, &config, intake.clone(), listeners)?;
    start_watchdog(&core);
    if let Err(e) = crate::service::notify_ready() {
        tracing::warn!(error = %e, "cannot tell systemd we are ready");
    }

    let failed: Option<TaskEnded> = tokio::select! {
        _ = wait_for_signals(signals, config.path.as_deref(), &config_tx, &token_tx, core.clock.as_ref()) => None,
        e = ended.next() => Some(e),
    };
    stop(&core, shutdown_grace(&config), failed.as_ref()).await;
    drop((intake, modem));
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    drop(core);
    let _ = std::fs::remove_file(&run_file);
    tracing::info!("stopped");
    match failed {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

/// The state the daemon keeps: the state directory, the store (observed by the metrics) and the
/// API token, with a word in the log when writes need no token.
fn open_state(
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(Metrics, Store, Option<Arc<crate::config::Secret>>)> {
    std::fs::create_dir_all(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot create state_dir {}",
            config.daemon.state_dir.display()
        )
    })?;
    // Event counters for GET /metrics; each part that records holds a clone.
    let metrics = Metrics::new(clock.now());
    let store = Store::open_observed(
        &config.database_path(),
        clock.clone(),
        Some(metrics.clone()),
    )?;
    let token = intake::read_token(config).with_context(|| "cannot read http.token_file")?;
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
    Ok((metrics, store, token))
}

/// Starts the senders, and with `[ha]` the pair's coordinator in front of them (a coordinator
/// decides which box sends each page) and the task that feeds it this box's paging health.
fn start_paging_paired(
    core: &Core,
    config: &Config,
    modem: Option<&ModemParts>,
    ack: &crate::ack::AckHandle,
) -> anyhow::Result<(watch::Receiver<PagingHealth>, sender::PairGate)> {
    // Pair hook.
    #[cfg(feature = "ha")]
    let pair = start_pair(core, config)?;
    #[cfg(feature = "ha")]
    let gate = sender::PairGate(pair.as_ref().map(|(gate, _)| gate.clone()));
    #[cfg(not(feature = "ha"))]
    let gate = sender::PairGate::default();
    let paging = start_paging(core, config, modem, ack, gate.clone());
    #[cfg(feature = "ha")]
    if let Some((gate, can_page)) = pair {
        let coordinator = gate.coordinator;
        core.sup.spawn(
            "pair-health",
            Role::Essential,
            crate::ha::pair::feed_health(
                paging.clone(),
                modem.map(|m| m.health.clone()),
                core.sup.liveness().clone(),
                can_page,
                move || coordinator.fed(),
                core.sup.heartbeat("pair-health", PAIR_HEALTH_BOUND),
                core.shutdown.clone(),
            ),
        );
    }
    Ok((paging, gate))
}

/// The handle every API request and UDP datagram is served with.
fn intake_handle(
    core: &Core,
    token: watch::Receiver<Option<Arc<crate::config::Secret>>>,
    paging: watch::Receiver<PagingHealth>,
    modem: Option<&ModemParts>,
    health: crate::health::Sources,
) -> Intake {
    Intake::from(IntakeParts {
        store: core.store.clone(),
        config: core.config.clone(),
        token,
        stats: Arc::new(IntakeStats::default()),
        paging: Some(paging),
        modem: modem.map(|m| m.health.clone()),
        metrics: core.metrics.clone(),
        selftest: modem.map(|m| m.selftest.clone()),
        health,
    })
}

/// What every task is started with: built once by [`run_with`], lent to each `start_*` step.
struct Core {
    sup: Supervisor,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

/// The sockets, bound before any task starts so a port in use fails the start at once.
struct Listeners {
    http: tokio::net::TcpListener,
    udp: Option<tokio::net::UdpSocket>,
}

impl Listeners {
    async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let http = crate::api::server::bind(config.http.listen)
            .with_context(|| format!("cannot listen on http {}", config.http.listen))?;
        let udp = if config.udp.enabled {
            let sock = tokio::net::UdpSocket::bind(config.udp.listen)
                .await
                .with_context(|| format!("cannot listen on udp {}", config.udp.listen))?;
            Some(sock)
        } else {
            None
        };
        Ok(Listeners { http, udp })
    }
}

/// The modem side of the daemon, when there is a modem.
struct ModemParts {
    modem: Modem,
    health: watch::Receiver<Health>,
    selftest: crate::selftest::SelftestHandle,
    /// True while the self-test monitor sees a fault of the paging path.
    selftest_fault: watch::Receiver<bool>,
}

/// One verdict on whether pages can go out, for `/healthz`, the LED and the watchdog alike.
fn health_sources(
    core: &Core,
    paging: &watch::Receiver<PagingHealth>,
    modem: Option<&ModemParts>,
    standby: watch::Receiver<crate::standby::Status>,
) -> crate::health::Sources {
    let (tx, pages_nobody) = watch::channel(Vec::new());
    // Not paging itself: a dead task leaves the last list (and the log said why).
    core.sup.spawn(
        "reach",
        Role::Auxiliary,
        crate::escalation::reach::watch(
            core.config.clone(),
            core.clock.clone(),
            tx,
            core.shutdown.clone(),
        ),
    );
    crate::health::Sources {
        store: core.store.clone(),
        paging: Some(paging.clone()),
        modem: modem.map(|m| m.health.clone()),
        liveness: core.sup.liveness().clone(),
        selftest_fault: modem.map(|m| m.selftest_fault.clone()),
        clock: core.clock.clone(),
        standby: Some(standby),
        pages_nobody: Some(pages_nobody),
    }
}

/// Pages caught in flight by a crash or power cut are sent again (at-least-once).
async fn recover_pages(store: &Store) -> anyhow::Result<()> {
    let recovered = store.recover_in_flight().await?;
    if recovered > 0 {
        tracing::warn!(
            pages = recovered,
            "pages were in flight when pagerbox stopped; sending them again"
        );
    }
    Ok(())
}

/// Pair hook: starts the coordinator and the task that carries acks both ways, when `[ha]` is
/// set. Returns the senders' gate and the coordinator's "this box can page" input.
#[cfg(feature = "ha")]
fn start_pair(
    core: &Core,
    config: &Config,
) -> anyhow::Result<
    Option<(
        crate::ha::pair::Gate,
        watch::Sender<Option<crate::ha::decide::Health>>,
    )>,
> {
    use crate::ha::{coordinator::Coordinator, decide, etcd::Etcd, pair};
    let Some(cfg) = config.ha.clone() else {
        return Ok(None);
    };
    let etcd = Etcd::new(&cfg).context("cannot set up the etcd client of [ha]")?;
    let (records_tx, records_rx) = tokio::sync::mpsc::unbounded_channel();
    // Nothing can page until the paging health says so: no lease before then.
    let (can_page_tx, can_page_rx) = watch::channel(None);
    let name = cfg.name.clone();
    let coordinator = Coordinator::start(
        cfg,
        etcd,
        can_page_rx,
        decide::config_hash(config),
        records_tx,
        core.clock.clone(),
    )
    .context("cannot start the pair coordinator")?;
    pair::publish_mode(coordinator.mode());
    tracing::info!(name = %name, "pair: coordinating pages with the peer through etcd");
    core.sup.spawn(
        "pair-sync",
        Role::Essential,
        pair::sync_transitions(
            core.store.clone(),
            coordinator.clone(),
            core.config.clone(),
            records_rx,
            core.shutdown.clone(),
        ),
    );
    core.sup.spawn(
        "pair-share",
        Role::Essential,
        crate::ha::share::share_intake(
            core.store.clone(),
            coordinator.clone(),
            core.shutdown.clone(),
        ),
    );
    // Auxiliary: a page due before its incident's start is settled settles it itself.
    core.sup.spawn(
        "pair-starts",
        Role::Auxiliary,
        pair::settle_starts(
            core.store.clone(),
            coordinator.clone(),
            core.shutdown.clone(),
        ),
    );
    Ok(Some((pair::Gate { coordinator }, can_page_tx)))
}

/// SMS replies, missed calls and DTMF acks: one task owns the command handling.
fn start_ack(core: &Core) -> crate::ack::AckHandle {
    let (ack, ack_requests) = crate::ack::channel();
    let acker = crate::ack::Acker::new(
        core.store.clone(),
        core.config.clone(),
        crate::ack::DEFAULT_MISSED_CALL_WINDOW,
    );
    core.sup.spawn(
        "ack",
        Role::Essential,
        crate::ack::run(
            acker,
            ack_requests,
            core.clock.clone(),
            core.sup.heartbeat("ack", ACK_BOUND),
            core.shutdown.clone(),
        ),
    );
    ack
}

/// The modem (a real device, or the built-in simulator on a pseudo-terminal), the self-test of
/// the paging path that watches it, and the consumer of what it reports.
async fn start_modem(
    core: &Core,
    config: &Config,
    ack: &crate::ack::AckHandle,
) -> anyhow::Result<(Option<SimHandle>, Option<ModemParts>)> {
    if !config.modem.enabled {
        return Ok((None, None));
    }
    let mut sim = None;
    let device = match &config.modem.device {
        ModemDevice::Path(p) => p.clone(),
        ModemDevice::Simulator => {
            let handle = start_simulator(config).await?;
            let path = handle.pty_path();
            sim = Some(handle);
            path
        }
    };
    let sup = &core.sup;
    let mut settings = modem_settings(&config.modem, device)?;
    settings.heartbeat = sup.heartbeat("modem", settings.heartbeat_bound());
    let (modem, events) =
        Modem::spawn_supervised(settings, sup, core.clock.clone(), core.shutdown.clone());
    let health = modem.health();
    let (selftest, inbox, runner) = crate::selftest::spawn(crate::selftest::runner::Deps {
        store: core.store.clone(),
        config: core.config.clone(),
        modem: modem.clone(),
        clock: core.clock.clone(),
        shutdown: core.shutdown.clone(),
    });
    // Not paging: a dead runner answers "stopped" to the next self-test request.
    sup.spawn("selftest-runner", Role::Auxiliary, runner);
    let (fault_tx, selftest_fault) = watch::channel(false);
    let monitor = crate::selftest::monitor::Deps {
        store: core.store.clone(),
        config: core.config.clone(),
        modem: modem.clone(),
        health: health.clone(),
        clock: core.clock.clone(),
        fault: fault_tx,
        shutdown: core.shutdown.clone(),
    };
    sup.spawn(
        "selftest-monitor",
        Role::Essential,
        crate::selftest::monitor::run(monitor),
    );
    let sinks = modem_events::EventSinks {
        modem: modem.clone(),
        store: core.store.clone(),
        ack: ack.clone(),
        clock: core.clock.clone(),
        selftest: Some(inbox),
        metrics: core.metrics.clone(),
        tracker: sup.tracker().clone(),
        config: core.config.clone(),
        // The senders [`start_paging`] starts with a modem: SMS, voice, and email when enabled.
        channels: [Channel::Sms, Channel::Voice]
            .into_iter()
            .chain(config.email.enabled.then_some(Channel::Email))
            .collect(),
    };
    sup.spawn(
        "modem-events",
        Role::Essential,
        modem_events::run(events, sinks, core.shutdown.clone()),
    );
    Ok((
        sim,
        Some(ModemParts {
            modem,
            health,
            selftest,
            selftest_fault,
        }),
    ))
}

/// Keeps what the daemon started with in a reloaded `config`, saying so: the modem driver and
/// the email sender exist only when they were enabled at start, so turning either on or off
/// needs a restart, as do `[modem]` settings, the sockets and their limits, the SMS part count,
/// the panel's pins (`[gpio]`), the pair's `[ha]` and the state directory. Taking the new
/// values anyway would half-apply them: the escalation engine would queue pages for an email
/// sender that does not exist, or fail every SMS page while the modem runs, and a new UDP port
/// would be reported as in force while nothing listens.
fn keep_running_channels(config: &mut Config, running: &Config) {
    if config.email.enabled != running.email.enabled {
        // The whole section: a file that turns email off was validated without its sending
        // settings (no host, no password file needed), and must not become the settings of
        // the email sender that keeps running.
        tracing::warn!(
            running = running.email.enabled,
            "SIGHUP: turning email on or off needs a restart; until then [email] stays as it is"
        );
        config.email = running.email.clone();
    }
    if config.modem.enabled != running.modem.enabled {
        tracing::warn!(
            running = running.modem.enabled,
            "SIGHUP: turning the modem on or off needs a restart; until then it stays as it is"
        );
        config.modem.enabled = running.modem.enabled;
    }
    // The driver, its transports and the self-test's expectations were made from `[modem]` at
    // start; a changed device, profile or timeout would take effect nowhere, or half.
    if config.modem != running.modem {
        tracing::warn!("SIGHUP: [modem] changes need a restart; the modem keeps its settings until then (other changes applied)");
        config.modem = running.modem.clone();
    }
    // Read once at start: the sockets and their limits, the database's place, and the SMS
    // transport's timeout, which is sized for the longest page.
    let mut restart = Vec::new();
    keep(
        "http.listen",
        &mut config.http.listen,
        &running.http.listen,
        &mut restart,
    );
    keep(
        "http.max_body_bytes",
        &mut config.http.max_body_bytes,
        &running.http.max_body_bytes,
        &mut restart,
    );
    keep(
        "http.header_timeout",
        &mut config.http.header_timeout,
        &running.http.header_timeout,
        &mut restart,
    );
    keep(
        "http.body_timeout",
        &mut config.http.body_timeout,
        &running.http.body_timeout,
        &mut restart,
    );
    keep(
        "http.max_connections",
        &mut config.http.max_connections,
        &running.http.max_connections,
        &mut restart,
    );
    keep(
        "udp.enabled",
        &mut config.udp.enabled,
        &running.udp.enabled,
        &mut restart,
    );
    keep(
        "udp.listen",
        &mut config.udp.listen,
        &running.udp.listen,
        &mut restart,
    );
    keep(
        "daemon.state_dir",
        &mut config.daemon.state_dir,
        &running.daemon.state_dir,
        &mut restart,
    );
    keep(
        "paging.sms_max_parts",
        &mut config.paging.sms_max_parts,
        &running.paging.sms_max_parts,
        &mut restart,
    );
    keep("[gpio]", &mut config.gpio, &running.gpio, &mut restart);
    // The pair's coordinator reads `[ha]` once. Compared by what it shows: the etcd password is
    // masked there (and read at start only anyway).
    if format!("{:?}", config.ha) != format!("{:?}", running.ha) {
        config.ha = running.ha.clone();
        restart.push("[ha]");
    }
    if !restart.is_empty() {
        tracing::warn!(
            "SIGHUP: {} changes need a restart; the running values stay until then (other changes applied)",
            restart.join(", ")
        );
    }
}

/// Puts the running value of a setting read only at start back into a reloaded config, noting
/// `name` in `restart` when the new file changed it.
fn keep<T: PartialEq + Clone>(
    name: &'static str,
    new: &mut T,
    running: &T,
    restart: &mut Vec<&'static str>,
) {
    if new != running {
        *new = running.clone();
        restart.push(name);
    }
}

/// The transports, the task that keeps paging health current, and one sender task per channel.
/// Returns the published paging health.
fn start_paging(
    core: &Core,
    config: &Config,
    modem: Option<&ModemParts>,
    ack: &crate::ack::AckHandle,
    pair: sender::PairGate,
) -> watch::Receiver<PagingHealth> {
    let mut transports: Vec<Arc<dyn Transport>> = Vec::new();
    if let Some(m) = modem {
        transports.push(Arc::new(transport::ModemSms::new(
            m.modem.clone(),
            m.health.clone(),
            config.modem.sms_timeout,
            config.paging.sms_max_parts,
        )));
        transports.push(Arc::new(transport::ModemVoice {
            modem: m.modem.clone(),
            health: m.health.clone(),
            ring_for: config.modem.ring_for,
            ack: Arc::new(ack.clone()),
            calls: transport::CallStreak::default(),
        }));
    }
    if config.email.enabled {
        // Never fatal: a sender that cannot be built leaves email impaired (in /healthz) and
        // is rebuilt when a reload fixes it, while SMS and voice page.
        transports.push(Arc::new(transport::Email::new(core.config.clone())));
    }
    if transports.is_empty() {
        tracing::error!("no paging channel is enabled (modem and email both off): incidents are recorded but nobody can be paged");
    }
    let transports = Arc::new(transports);
    // One publisher of paging health: the paging-health task; senders only ask it to recheck.
    let (paging_tx, paging_rx) = paging_health::channel(&transports);
    let recheck = paging_health::Recheck::default();
    let sup = &core.sup;
    sup.spawn(
        "paging-health",
        Role::Essential,
        paging_health::run(
            transports.clone(),
            modem.map(|m| m.health.clone()),
            paging_tx,
            recheck.clone(),
            sup.heartbeat("paging-health", PAGING_HEALTH_BOUND),
            core.shutdown.clone(),
        ),
    );
    for t in transports.iter() {
        let name = match t.channel() {
            Channel::Sms => "sender-sms",
            Channel::Voice => "sender-voice",
            Channel::Email => "sender-email",
        };
        let task = sender::run_paired(
            t.clone(),
            transports.clone(),
            core.store.clone(),
            core.config.clone(),
            recheck.clone(),
            sup.heartbeat(name, sender::liveness_bound(&**t)),
            core.shutdown.clone(),
            core.metrics.clone(),
            pair.clone(),
        );
        sup.spawn(name, Role::Essential, task);
    }
    paging_rx
}

/// The tasks that turn time into work: escalation, heartbeat monitors, outbound chat and
/// webhook notifications (their own tasks and outbox channel, never on the paging senders' path),
/// and standby behind a cloud pager. Returns the standby status for `/healthz` and the pages.
/// In a pair, outbound notifications pass the same gate as the senders' pages (`pair`).
fn start_engines(core: &Core, pair: sender::PairGate) -> watch::Receiver<crate::standby::Status> {
    let (sup, store, config) = (&core.sup, &core.store, &core.config);
    #[cfg(feature = "ha")]
    let next_claims = pair.0.as_ref().map(|gate| gate.early_claims());
    #[cfg(not(feature = "ha"))]
    let next_claims = None;
    let engine = crate::escalation::engine::run(
        store.clone(),
        config.clone(),
        sup.heartbeat("escalation", ENGINE_BOUND),
        next_claims,
        core.shutdown.clone(),
    );
    sup.spawn("escalation", Role::Essential, engine);
    let monitors = crate::heartbeat::run(
        store.clone(),
        config.clone(),
        core.clock.clone(),
        sup.heartbeat("heartbeat-monitors", HEARTBEAT_BOUND),
        core.shutdown.clone(),
    );
    sup.spawn("heartbeat-monitors", Role::Essential, monitors);
    let outbound = crate::outbound::run(
        store.clone(),
        config.clone(),
        sup.tracker().clone(),
        core.metrics.clone(),
        pair,
        core.shutdown.clone(),
    );
    sup.spawn("outbound", Role::Essential, outbound);
    // Standby: asks the upstream about held pages and tells it about acks made here. The hold's
    // end is in SQLite, so the engine pages when the grace ends even if these tasks are stuck.
    let (standby_tx, standby_rx) = watch::channel(crate::standby::Status::default());
    let standby = crate::standby::run(
        store.clone(),
        config.clone(),
        standby_tx.clone(),
        core.clock.clone(),
        sup.heartbeat("standby", STANDBY_BOUND),
        core.shutdown.clone(),
    );
    sup.spawn("standby", Role::Essential, standby);
    let acks = crate::standby::push_acks(
        store.clone(),
        config.clone(),
        standby_tx,
        core.shutdown.clone(),
    );
    sup.spawn("standby-acks", Role::Essential, acks);
    standby_rx
}

/// The panel (LED shows the state, the button acknowledges), and the idle-memory trimmer.
fn start_panel(
    core: &Core,
    config: &Config,
    health: &crate::health::Sources,
    paging: &watch::Receiver<PagingHealth>,
    modem: Option<&ModemParts>,
) -> anyhow::Result<()> {
    let (sup, tracker) = (&core.sup, core.sup.tracker());
    let (panel_tx, panel_rx) = watch::channel(PanelState::default());
    // The panel is a window on paging, not part of it: one that cannot start (a pin taken by
    // another program, no GPIO device) is logged, and the box pages without it.
    let panel = crate::panel::spawn(&config.gpio, panel_rx, core.shutdown.clone(), tracker)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the panel (LED, button) cannot start; paging goes on without it: no LED shows the state and the button does nothing");
            None
        });
    if let Some(panel) = panel {
        #[cfg(any(test, feature = "testkit"))]
        if let Some(fake) = panel.fake.clone() {
            let socket = config.daemon.state_dir.join("fake-panel.sock");
            crate::panel::control::serve(fake, &socket, core.shutdown.clone(), tracker)?;
        }
        let button = bridge::serve_button(core.store.clone(), panel.events);
        sup.spawn("panel-button", Role::Auxiliary, button);
        // The pin task drives the LED: if it died, the LED would freeze or go dark, which
        // reads as all clear. Ending early is a bug; the daemon restarts (its panic shows).
        let pins = panel.task;
        sup.spawn("panel-pins", Role::Essential, async move {
            if let Err(e) = pins.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        });
    }
    sup.spawn(
        "release-memory",
        Role::Auxiliary,
        release_memory(core.shutdown.clone()),
    );
    let sources = bridge::StateSources {
        store: core.store.clone(),
        health: health.clone(),
        paging: paging.clone(),
        selftest_fault: modem.map(|m| m.selftest_fault.clone()),
        beat: sup.heartbeat("panel-state", PANEL_BOUND),
    };
    let publish = bridge::publish_state(sources, panel_tx, core.shutdown.clone());
    sup.spawn("panel-state", Role::Essential, publish);
    Ok(())
}

/// The HTTP and UDP servers, and the run file that says where they listen. Returns the run
/// file's path, removed again at a clean stop.
fn start_intake(
    core: &Core,
    config: &Config,
    intake: Intake,
    listeners: Listeners,
) -> anyhow::Result<PathBuf> {
    let Listeners { http, udp } = listeners;
    let info = RunInfo {
        pid: std::process::id(),
        http: http.local_addr()?,
        udp: udp.as_ref().map(|s| s.local_addr()).transpose()?,
    };
    {
        let (intake, max_body) = (intake.clone(), config.http.max_body_bytes);
        let limits = crate::api::server::Limits::from_config(&config.http).fit_open_file_limit();
        let shutdown = core.shutdown.clone();
        core.sup.spawn("http", Role::Essential, async move {
            if let Err(e) = crate::api::serve(http, intake, max_body, limits, shutdown).await {
                tracing::error!(error = %e, "http intake stopped");
            }
        });
    }
    if let Some(sock) = udp {
        let serve = intake::udp::serve(sock, intake, core.shutdown.clone());
        core.sup.spawn("udp", Role::Essential, serve);
    }
    let run_file = RunInfo::path(&config.daemon.state_dir);
    std::fs::write(&run_file, serde_json::to_vec(&info)?)
        .with_context(|| format!("cannot write {}", run_file.display()))?;
    tracing::info!(http = %info.http, udp = ?info.udp, state_dir = %config.daemon.state_dir.display(), "pagerbox is up");
    Ok(run_file)
}

/// systemd: READY once intake and the store are up. The watchdog is fed only while every
/// essential loop has beaten within its bound and the store thread answers: "pages can go
/// out", not "the process exists". A dead modem only degrades paging (/healthz says so).
fn start_watchdog(core: &Core) {
    let Some(wd) = crate::service::Watchdog::from_env() else {
        return;
    };
    let store = core.store.clone();
    let liveness = core.sup.liveness().clone();
    let check = move || {
        let store = store.clone();
        let late = liveness.late();
        async move {
            if !late.is_empty() {
                return Err(Unhealthy::Late(late));
            }
            store.ping().await.map_err(Unhealthy::Store)
        }
    };
    core.sup.spawn(
        "watchdog",
        Role::Essential,
        wd.run(check, core.shutdown.clone()),
    );
}

/// Why a SIGHUP reload was rejected (the running config stays).
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    /// The config path is not a regular file now (a FIFO given at start, or swapped for one):
    /// reading it again could block the daemon.
    #[error("{0}")]
    NotAFile(#[source] std::io::Error),
    /// The new file does not load, or loads only impaired.
    #[error("{0}")]
    Config(#[source] crate::config::ConfigError),
    /// The write token file named by the new config cannot be read.
    #[error("cannot read http.token_file: {0}")]
    Token(#[source] std::io::Error),
}

/// Why the watchdog is not fed this period (logged with its cause).
#[derive(Debug, thiserror::Error)]
enum Unhealthy {
    /// Essential loops have not beaten within their bounds.
    #[error("tasks late: {0:?}")]
    Late(Vec<crate::supervisor::Late>),
    /// The store thread did not answer a trivial query.
    #[error("{0}")]
    Store(#[source] crate::store::StoreError),
}

/// Stops every task at a safe point: cancels the one token and waits up to `grace` for tasks
/// to finish the unit of work in hand.
async fn stop(core: &Core, grace: Duration, failed: Option<&TaskEnded>) {
    match failed {
        None => tracing::info!("shutting down: finishing work in hand"),
        Some(e) => {
            tracing::error!(task = e.task, why = %e.why, "stopping because an essential task ended; a restart resumes every page")
        }
    }
    let _ = crate::service::notify_stopping();
    core.shutdown.cancel();
    let tracker = core.sup.tracker();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "some tasks did not stop within the grace period; pages in flight are sent again at the next start"
        );
    }
}

/// The signals the daemon acts on, caught from the moment they are installed (a signal that
/// comes before [`wait_for_signals`] listens waits for it).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Waits for SIGTERM or SIGINT. SIGHUP reloads the config: the new file is validated first, and
/// a bad one is rejected with its errors logged while the old config stays in force. Secrets
/// come with it: the write token file is read again (a change ends every status page session),
/// and the Opsgenie and Splunk On-Call keys are part of the config itself.
async fn wait_for_signals(
    signals: Signals,
    config_path: Option<&Path>,
    config_tx: &watch::Sender<Arc<Config>>,
    token_tx: &watch::Sender<Option<Arc<crate::config::Secret>>>,
    clock: &dyn Clock,
) {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
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
                let loaded = crate::config::regular_file(path)
                    .map_err(ReloadError::NotAFile)
                    .and_then(|()| {
                        Config::load(path)
                            .and_then(crate::config::Loaded::strict)
                            .map_err(ReloadError::Config)
                    })
                    .and_then(|l| {
                        let token = intake::read_token(&l.config).map_err(ReloadError::Token)?;
                        Ok((l, token))
                    });
                match loaded {
                    Ok((loaded, token)) => {
                        let old = config_tx.borrow().clone();
                        let mut config = loaded.config;
                        keep_running_channels(&mut config, &old);
                        config_tx.send_replace(Arc::new(config));
                        if intake::publish_token(token_tx, token) {
                            tracing::info!("token changed; sessions ended");
                        }
                        tracing::info!(path = %path.display(), "config reloaded");
                        for w in &loaded.warnings {
                            tracing::warn!("{w}");
                        }
                        warn_unreachable(&config_tx.borrow(), clock.now());
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
    // A PIN file that cannot be read (a permission changed) must not keep the daemon from
    // starting: without the PIN a locked SIM does not register, and the modem's health says
    // so on /healthz; not starting would say nothing anywhere but the journal.
    s.pin = match &m.pin_file {
        Some(p) => match crate::config::read_secret(p) {
            Ok(pin) => Some(Pin::new(pin.expose())),
            Err(e) => {
                tracing::error!(path = %p.display(), error = %e, "cannot read modem.pin_file; the modem starts without the SIM PIN (a locked SIM will not register)");
                None
            }
        },
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, "t.toml", Path::new("/"))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .config
    }

    /// A PIN file that cannot be read leaves the modem without the PIN (its health then says
    /// why it does not register) instead of keeping the daemon from starting.
    #[test]
    fn an_unreadable_pin_file_does_not_stop_the_modem() {
        let mut m = config("").modem;
        m.pin_file = Some("/nonexistent/pagerbox-pin".into());
        let s = modem_settings(&m, "/dev/null".into()).unwrap();
        assert!(s.pin.is_none());
    }

    /// `[ha]` is read once at start: a reload keeps the running one instead of reporting new
    /// timings as in force that the coordinator never takes.
    #[cfg(feature = "ha")]
    #[test]
    fn a_reload_keeps_the_running_pair_settings() {
        let ha = |fallback: &str| {
            format!(
                "[ha]\nname = \"a\"\npeer_urls = [\"http://192.0.2.2:8080\"]\n\
                 etcd_endpoints = [\"http://192.0.2.1:2379\", \"http://192.0.2.2:2379\", \"http://192.0.2.3:2379\"]\nfallback_after = \"{fallback}\"\n"
            )
        };
        let running = config(&ha("60s"));
        let mut reloaded = config(&ha("20s"));
        keep_running_channels(&mut reloaded, &running);
        let kept = reloaded.ha.expect("[ha]");
        assert_eq!(kept.fallback_after, Duration::from_secs(60));
        let mut removed = config("");
        keep_running_channels(&mut removed, &running);
        assert!(removed.ha.is_some(), "removing [ha] needs a restart too");
    }

    /// A reload that turns email off keeps the running email sender's whole section, not only
    /// its switch: the file that turns it off was validated without its sending settings.
    #[test]
    fn a_reload_turning_email_off_keeps_the_running_email_settings() {
        let running = config(
            "[email]\nenabled = true\nhost = \"relay.example\"\nport = 2525\ntls = \"none\"\n\
             from = \"pagerbox@box.example\"\n",
        );
        let mut reloaded = config("[email]\nenabled = false\n");
        assert_ne!(reloaded.email, running.email);
        keep_running_channels(&mut reloaded, &running);
        assert_eq!(reloaded.email, running.email);
        assert!(reloaded.email.enabled);
    }
}
