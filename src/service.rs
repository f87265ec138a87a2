//! service: the daemon's side of the contract with systemd (`systemd/pagerbox.service`).
//!
//! Owns three things, all sent over the `sd_notify(3)` datagram socket named by `NOTIFY_SOCKET`:
//!
//! - **Lifecycle notices**: [`notify_ready`] once the store is open and intake listens (the unit
//!   is `Type=notify`, so `systemctl start` returns only then), [`notify_reloading`] /
//!   [`notify_ready`] around a SIGHUP reload, and [`notify_stopping`] when shutdown begins.
//! - **The watchdog** (`WatchdogSec=30s`): [`Watchdog::run`] pings systemd only after a
//!   *liveness probe* supplied by the daemon succeeded in time. The probe goes through the real
//!   task loops: no essential task may be late on its heartbeat ([`crate::supervisor`]), and a
//!   `SELECT 1` must make the round trip through the store task's queue. A wedged store, a stuck
//!   engine or sender, a full command channel or a blocked runtime stop the pings and systemd
//!   restarts the daemon.
//!   A free-running timer that pinged unconditionally would defeat the watchdog.
//! - **Detection**: [`watchdog_interval`] and [`under_systemd`] read the environment systemd sets.
//!
//! Everything is a no-op when the daemon does not run under systemd (no `NOTIFY_SOCKET`, no
//! `WATCHDOG_USEC`), e.g. `pagerbox run` from a shell or in the end-to-end tests.
//!
//! Not owned here: signal handling (SIGHUP reload, SIGTERM shutdown) and the reload itself
//! belong to `daemon`; the probe's content belongs to the tasks it asks.
//!
//! # How the daemon wires this (for `daemon.rs`)
//!
//! ```text
//! spawn store task, escalation engine, modem task ...
//! if let Some(watchdog) = Watchdog::from_env() {
//!     tracker.spawn(watchdog.run(
//!         move || async move {
//!             if !liveness.late().is_empty() { return Err("tasks late") }
//!             store.call(|c, _| c.query_row("SELECT 1", ..)).await   // through the store task
//!         },
//!         shutdown.clone()));
//! }
//! bind intake ...
//! service::notify_ready()            // log a warning on Err, never exit because of it
//! on SIGHUP:  notify_reloading(); validate + swap config (or keep the old one); notify_ready()
//! on SIGTERM: notify_stopping(); cancel the token; wait for tasks
//! ```
//!
//! systemd arms the watchdog when start-up completes (READY=1); start-up itself is bounded by
//! `TimeoutStartSec=`. Spawn the pinger before sending READY all the same, so the first ping
//! follows at once (pings before READY are harmless).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Failure to talk to systemd.
///
/// The daemon should log these (`warn`) and carry on: paging must never stop because the
/// service manager's socket went away. A lost READY makes the start time out and systemd
/// restart the daemon, which is the right outcome anyway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Sending a notification datagram to `NOTIFY_SOCKET` failed.
    #[error("cannot send {state} to the service manager (NOTIFY_SOCKET)")]
    Notify {
        /// The state that was being sent, e.g. `READY=1`.
        state: &'static str,
        /// What the socket call said.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether trying again later may succeed. A notification that failed once (socket gone,
    /// buffer full) may well go through on the next attempt, so every variant is retryable;
    /// callers decide whether a retry is worth it (the watchdog simply tries at its next tick).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Notify { .. } => true,
        }
    }
}

/// Whether the daemon was started by systemd with a notification socket (`NOTIFY_SOCKET`).
///
/// Only informational (e.g. to log "running under systemd" at start); the `notify_*`
/// functions already do nothing without the socket.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Tell systemd the daemon is up: store open, intake listening, alerts can be accepted.
///
/// Send it once at start, and again after each reload (with `Type=notify`, RELOADING=1 is
/// ended by READY=1). No-op without `NOTIFY_SOCKET`.
pub fn notify_ready() -> Result<(), Error> {
    send("READY=1", &[NotifyState::Ready])
}

/// Tell systemd a configuration reload (SIGHUP) has begun.
///
/// Must be followed by [`notify_ready`] when the reload is over, whether the new file was
/// accepted or rejected; otherwise the unit stays in state "reloading". No-op without
/// `NOTIFY_SOCKET`.
pub fn notify_reloading() -> Result<(), Error> {
    send("RELOADING=1", &[NotifyState::Reloading])
}

/// Tell systemd the daemon is shutting down (after SIGTERM, before the tasks drain).
///
/// Lets `systemctl status` show "deactivating" while the current AT exchange or commit
/// finishes. No-op without `NOTIFY_SOCKET`.
pub fn notify_stopping() -> Result<(), Error> {
    send("STOPPING=1", &[NotifyState::Stopping])
}

/// Send one unconditional watchdog ping (`WATCHDOG=1`).
///
/// Prefer [`Watchdog::run`], which pings only after a successful liveness probe. This exists
/// for a start-up step that blocks the probed tasks for a long time on purpose. No-op without
/// `NOTIFY_SOCKET`.
pub fn notify_watchdog() -> Result<(), Error> {
    send("WATCHDOG=1", &[NotifyState::Watchdog])
}

/// The watchdog timeout systemd expects pings within (`WatchdogSec=`), if it is enabled for
/// this process.
///
/// Read from `WATCHDOG_USEC`, and only honoured when `WATCHDOG_PID` names this process, so a
/// child that inherited the environment does not think it is watched. `None` when either is
/// missing, malformed or zero, i.e. when not running under a systemd watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec))
    } else {
        None
    }
}

/// Send `states` to systemd; `label` names them in the error.
fn send(label: &'static str, states: &[NotifyState<'_>]) -> Result<(), Error> {
    // `false`: keep NOTIFY_SOCKET set, the daemon notifies many times over its life.
    sd_notify::notify(false, states).map_err(|source| Error::Notify {
        state: label,
        source,
    })
}

/// The watchdog pinger: every [`Watchdog::ping_period`] it runs the daemon's liveness probe and
/// pings systemd only if the probe succeeded within [`Watchdog::probe_timeout`].
///
/// Timing: with `WatchdogSec=30s` the probe runs every 7.5 s and may take up to 7.5 s, so a
/// healthy daemon pings about four times per timeout and one slow or failed probe (an SD card
/// stalling for a few seconds) is survived. A daemon that has not answered for the whole
/// timeout is killed with SIGABRT and restarted (`Restart=always`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watchdog {
    /// The timeout systemd enforces (`WatchdogSec=`).
    timeout: Duration,
}

/// How many probe attempts fit into one watchdog timeout.
const PROBES_PER_TIMEOUT: u32 = 4;

impl Watchdog {
    /// The watchdog systemd configured for this process, or `None` when there is none (then the
    /// daemon simply does not spawn the pinger).
    pub fn from_env() -> Option<Watchdog> {
        watchdog_interval().map(Watchdog::with_timeout)
    }

    /// A watchdog for the given systemd timeout; for tests and for callers that read the
    /// timeout elsewhere. A zero timeout is treated as 1 ms so the loop cannot spin.
    pub fn with_timeout(timeout: Duration) -> Watchdog {
        Watchdog {
            timeout: timeout.max(Duration::from_millis(1)),
        }
    }

    /// The timeout systemd enforces.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often the probe runs (and, when it succeeds, systemd is pinged): a quarter of the
    /// timeout.
    pub fn ping_period(&self) -> Duration {
        self.timeout / PROBES_PER_TIMEOUT
    }

    /// How long one probe may take before it counts as failed: one period, so probes never
    /// overlap.
    pub fn probe_timeout(&self) -> Duration {
        self.ping_period()
    }

    /// Run the pinger until `shutdown` is cancelled.
    ///
    /// `probe` is called once per period; it should round-trip through every task whose death
    /// must restart the daemon (store, escalation engine; not the modem, whose outage is a
    /// degraded state the daemon reports and works around, not a reason to restart). An
    /// `Err` or a timeout withholds that ping and is logged at `warn` with the cause.
    ///
    /// Returns promptly on cancellation, also in the middle of a probe.
    pub async fn run<P, F, E>(self, probe: P, shutdown: CancellationToken)
    where
        P: FnMut() -> F,
        F: Future<Output = Result<(), E>>,
        E: Display,
    {
        self.run_with(probe, shutdown, notify_watchdog).await;
    }

    /// [`Watchdog::run`] with the ping itself injected, so the timing logic is testable with
    /// paused time and without a socket.
    async fn run_with<P, F, E, S>(self, mut probe: P, shutdown: CancellationToken, mut ping: S)
    where
        P: FnMut() -> F,
        F: Future<Output = Result<(), E>>,
        E: Display,
        S: FnMut() -> Result<(), Error>,
    {
        let mut ticker = tokio::time::interval(self.ping_period());
        // After a long stall, carry on at the normal pace rather than bursting missed pings.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut missed: u32 = 0;
        tracing::debug!(
            timeout_ms = self.timeout.as_millis() as u64,
            period_ms = self.ping_period().as_millis() as u64,
            "watchdog pinger started"
        );
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let outcome = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                outcome = tokio::time::timeout(self.probe_timeout(), probe()) => outcome,
            };
            match outcome {
                Ok(Ok(())) => {
                    if missed > 0 {
                        tracing::info!(missed, "liveness probe healthy again");
                    }
                    missed = 0;
                    if let Err(err) = ping() {
                        tracing::warn!(cause = %err, "watchdog ping not delivered");
                    }
                }
                Ok(Err(err)) => {
                    missed += 1;
                    tracing::warn!(
                        cause = %err,
                        missed,
                        "liveness probe failed; watchdog not pinged"
                    );
                }
                Err(_elapsed) => {
                    missed += 1;
                    tracing::warn!(
                        timeout_ms = self.probe_timeout().as_millis() as u64,
                        missed,
                        "liveness probe timed out; watchdog not pinged"
                    );
                }
            }
        }
        tracing::debug!("watchdog pinger stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::net::UnixDatagram;
    use std::rc::Rc;
    use std::sync::{Mutex, MutexGuard};

    /// The notification functions read process-wide environment variables; every test that
    /// sets or relies on them holds this lock so they cannot see each other's values.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    fn env_lock() -> MutexGuard<'static, ()> {
        ENV_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fake systemd notification socket in a fresh temp dir, exported as NOTIFY_SOCKET for
    /// as long as it lives.
    struct FakeSystemd {
        _dir: tempfile::TempDir,
        socket: UnixDatagram,
    }

    impl FakeSystemd {
        fn new() -> FakeSystemd {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("notify.sock");
            let socket = UnixDatagram::bind(&path).expect("bind fake NOTIFY_SOCKET");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("read timeout");
            std::env::set_var("NOTIFY_SOCKET", &path);
            FakeSystemd { _dir: dir, socket }
        }

        fn recv(&self) -> String {
            let mut buf = [0u8; 512];
            let n = self.socket.recv(&mut buf).expect("a notification datagram");
            String::from_utf8(buf[..n].to_vec()).expect("utf-8 notification")
        }

        fn pending(&self) -> Option<String> {
            self.socket.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 512];
            let got = self
                .socket
                .recv(&mut buf)
                .ok()
                .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
            self.socket.set_nonblocking(false).expect("blocking");
            got
        }
    }

    impl Drop for FakeSystemd {
        fn drop(&mut self) {
            std::env::remove_var("NOTIFY_SOCKET");
        }
    }

    #[test]
    fn lifecycle_notices_reach_the_socket() {
        let _env = env_lock();
        let systemd = FakeSystemd::new();
        assert!(under_systemd());

        notify_ready().expect("ready");
        assert_eq!(systemd.recv(), "READY=1\n");
        notify_reloading().expect("reloading");
        assert_eq!(systemd.recv(), "RELOADING=1\n");
        notify_stopping().expect("stopping");
        assert_eq!(systemd.recv(), "STOPPING=1\n");
        notify_watchdog().expect("watchdog");
        assert_eq!(systemd.recv(), "WATCHDOG=1\n");
    }

    #[test]
    fn notices_are_noops_without_systemd() {
        let _env = env_lock();
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!under_systemd());
        notify_ready().expect("no socket is not an error");
        notify_stopping().expect("no socket is not an error");
        notify_watchdog().expect("no socket is not an error");
    }

    #[test]
    fn a_vanished_socket_is_a_notify_error() {
        let _env = env_lock();
        let dir = tempfile::tempdir().expect("temp dir");
        std::env::set_var("NOTIFY_SOCKET", dir.path().join("gone.sock"));
        let err = notify_ready().expect_err("nobody listens");
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(matches!(
            err,
            Error::Notify {
                state: "READY=1",
                ..
            }
        ));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("READY=1"), "{err}");
    }

    #[test]
    fn watchdog_interval_needs_our_pid() {
        let _env = env_lock();
        std::env::set_var("WATCHDOG_USEC", "30000000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        assert_eq!(watchdog_interval(), Some(Duration::from_secs(30)));
        assert_eq!(
            Watchdog::from_env().map(|w| w.ping_period()),
            Some(Duration::from_millis(7500))
        );

        // Inherited from a parent: not ours to ping.
        std::env::set_var("WATCHDOG_PID", (std::process::id() + 1).to_string());
        assert_eq!(watchdog_interval(), None);

        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        std::env::set_var("WATCHDOG_USEC", "not a number");
        assert_eq!(watchdog_interval(), None);
        std::env::set_var("WATCHDOG_USEC", "0");
        assert_eq!(watchdog_interval(), None);

        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
        assert_eq!(watchdog_interval(), None);
        assert_eq!(Watchdog::from_env(), None);
    }

    #[test]
    fn periods_divide_the_timeout() {
        let w = Watchdog::with_timeout(Duration::from_secs(30));
        assert_eq!(w.timeout(), Duration::from_secs(30));
        assert_eq!(w.ping_period(), Duration::from_millis(7500));
        assert_eq!(w.probe_timeout(), w.ping_period());
        // Zero would make tokio's interval panic; it is clamped.
        assert!(Watchdog::with_timeout(Duration::ZERO).ping_period() > Duration::ZERO);
    }

    /// Run the pinger for `virtual_time` of paused tokio time with the given probe and count the
    /// pings it sends.
    async fn pings_within<P, F>(virtual_time: Duration, probe: P) -> u32
    where
        P: FnMut() -> F,
        F: Future<Output = Result<(), String>>,
    {
        let pings = Rc::new(Cell::new(0u32));
        let counter = pings.clone();
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        let watchdog = Watchdog::with_timeout(Duration::from_secs(30));
        let run = watchdog.run_with(probe, shutdown, move || {
            counter.set(counter.get() + 1);
            Ok(())
        });
        let stop = async move {
            tokio::time::sleep(virtual_time).await;
            stopper.cancel();
        };
        tokio::join!(run, stop);
        pings.get()
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_probe_pings_every_period() {
        // Ticks at 0, 7.5, 15, 22.5, 30 s; the 37.5 s tick is after shutdown at 31 s.
        let pings = pings_within(Duration::from_secs(31), || async { Ok(()) }).await;
        assert_eq!(pings, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_probe_withholds_pings() {
        let pings = pings_within(Duration::from_secs(120), || async {
            Err("store task gone".to_string())
        })
        .await;
        assert_eq!(pings, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn wedged_probe_withholds_pings() {
        // A store stuck in a blocking call never answers its oneshot.
        let pings = pings_within(Duration::from_secs(120), || {
            std::future::pending::<Result<(), String>>()
        })
        .await;
        assert_eq!(pings, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_probe_counts_as_failed() {
        // Answers, but only after the probe timeout (7.5 s): as good as wedged.
        let pings = pings_within(Duration::from_secs(60), || async {
            tokio::time::sleep(Duration::from_secs(8)).await;
            Ok(())
        })
        .await;
        assert_eq!(pings, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn pings_resume_when_the_probe_recovers() {
        // Probes 1-3 fail (a stall shorter than the timeout), later ones succeed.
        let calls = Rc::new(Cell::new(0u32));
        let pings = pings_within(Duration::from_secs(31), move || {
            let calls = calls.clone();
            async move {
                calls.set(calls.get() + 1);
                if calls.get() <= 3 {
                    Err("busy".to_string())
                } else {
                    Ok(())
                }
            }
        })
        .await;
        // 5 ticks in 31 s, the first 3 failed.
        assert_eq!(pings, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_interrupts_a_pending_probe() {
        let shutdown = CancellationToken::new();
        let watchdog = Watchdog::with_timeout(Duration::from_secs(30));
        let run = watchdog.run_with(
            std::future::pending::<Result<(), String>>,
            shutdown.clone(),
            || Ok(()),
        );
        let started = tokio::time::Instant::now();
        let stop = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            shutdown.cancel();
        };
        tokio::join!(run, stop);
        // Returned at the cancellation, not at the 7.5 s probe timeout.
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn watchdog_pings_reach_the_socket_only_when_alive() {
        let _env = env_lock();
        let systemd = FakeSystemd::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");

        // Healthy: a real WATCHDOG=1 datagram arrives.
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            let watchdog = Watchdog::with_timeout(Duration::from_millis(200));
            let task =
                tokio::spawn(watchdog.run(|| async { Ok::<(), String>(()) }, shutdown.clone()));
            tokio::time::sleep(Duration::from_millis(120)).await;
            shutdown.cancel();
            task.await.expect("pinger ends");
        });
        assert_eq!(systemd.recv(), "WATCHDOG=1\n");
        while systemd.pending().is_some() {}

        // Wedged: nothing arrives.
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            let watchdog = Watchdog::with_timeout(Duration::from_millis(200));
            let task = tokio::spawn(watchdog.run(
                || async { Err::<(), String>("engine gone".into()) },
                shutdown.clone(),
            ));
            tokio::time::sleep(Duration::from_millis(120)).await;
            shutdown.cancel();
            task.await.expect("pinger ends");
        });
        assert_eq!(systemd.pending(), None);
    }
}
