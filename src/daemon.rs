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
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::intake::{self, Intake, IntakeStats};
use crate::store::Store;

/// How long shutdown waits for tasks to finish their current work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let loaded = Config::load(config_path)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    run_with(loaded.config, Arc::new(SystemClock)).await
}

/// Runs the daemon with an already validated config.
pub async fn run_with(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    std::fs::create_dir_all(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot create state_dir {}",
            config.daemon.state_dir.display()
        )
    })?;
    let store = Store::open(&config.database_path(), clock.clone())?;
    let token = config
        .read_token()
        .with_context(|| "cannot read http.token_file")?
        .map(Arc::new);
    if token.is_none() {
        tracing::warn!("http.token_file is not set: anyone who can reach the API can write to it");
    }

    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
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
    let intake = Intake {
        store: store.clone(),
        config: config_rx.clone(),
        token,
        stats: Arc::new(IntakeStats::default()),
    };
    tracker.spawn(intake::http::serve(
        http,
        intake.clone(),
        config.http.max_body_bytes,
        shutdown.clone(),
    ));
    if let Some(sock) = udp {
        tracker.spawn(intake::udp::serve(sock, intake.clone(), shutdown.clone()));
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

    wait_for_signals(config_path.as_deref(), &config_tx).await;
    tracing::info!("shutting down: finishing work in hand");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within the grace period");
    }
    drop(intake);
    drop(store);
    let _ = std::fs::remove_file(&run_file);
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT. SIGHUP reloads the config: the new file is validated first, and
/// a bad one is rejected with its errors logged while the old config stays in force.
async fn wait_for_signals(config_path: Option<&Path>, config_tx: &watch::Sender<Arc<Config>>) {
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
                let Some(path) = config_path else {
                    tracing::warn!("SIGHUP: no config file to reload");
                    continue;
                };
                match Config::load(path) {
                    Ok(loaded) => {
                        let old = config_tx.borrow().clone();
                        if loaded.config.http.listen != old.http.listen || loaded.config.daemon.state_dir != old.daemon.state_dir {
                            tracing::warn!("SIGHUP: http.listen and daemon.state_dir changes need a restart; other changes applied");
                        }
                        config_tx.send_replace(Arc::new(loaded.config));
                        tracing::info!(path = %path.display(), "config reloaded");
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), "config reload rejected; keeping the running config:\n{e}");
                    }
                }
            }
        }
    }
}
