//! A modem simulator that speaks AT on a pseudo-terminal, so pagerbox can be developed, tested
//! and demonstrated without hardware.
//!
//! It imitates a module of a chosen [`SimProfile`] (generic 3GPP, SIMCom SIM800, SIMCom SIM7600,
//! Quectel EC25) closely enough that the daemon opens its PTY exactly like `/dev/ttyUSB2`
//! and that third-party AT clients can identify it, send and read SMS through it. A "network"
//! behind it records every submitted message and call as the far phone would see them, and a
//! control API injects incoming messages, calls, DTMF keys and faults.
//!
//! | part        | owns                                                                     |
//! |-------------|--------------------------------------------------------------------------|
//! | `command`   | pure: one AT command line into commands (chaining, quoting)              |
//! | `engine`    | pure: the modem's state machine, bytes in → effects out                  |
//! | `profile`   | vendor data: identity, banners, DTMF/TTS commands                        |
//! | `storage`   | message storages `SM`/`ME`/`MT` and their indexes                        |
//! | `sms`       | the simulator's use of the PDU codec; reassembly for the log             |
//! | `pty`       | the PTY, its raw-mode slave and the symlink                              |
//! | `task`      | the one task owning a simulator: effects, delays, timers, the log        |
//! | [`control`] | the JSON-lines control protocol over a Unix socket                       |
//! | [`cli`]     | `pagerbox simulator` and `pagerbox simulator ctl`                        |
//!
//! What it does not own: the driver (`modem`), the PDU codec (`modem::pdu`). docs/modem.md lists
//! the commands, the profiles and where the simulator knowingly differs from real modules.

#![warn(missing_docs)]

pub mod cli;
mod command;
pub mod control;
mod engine;
mod profile;
mod pty;
mod sms;
mod storage;
mod task;
pub mod types;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use profile::{SimProfile, UnknownProfile};
pub use types::{
    CallBehaviour, CallDirection, CallOutcome, DeliverOptions, Fault, NetworkEntry, SimConfig,
    SimError, UrcPlacement, UssdReply,
};

use crate::clock::{Clock, SystemClock};
use task::{Request, SimTask};

/// Capacity of the request channel to the simulator task.
const REQUESTS: usize = 32;

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Creates the PTY and its link, powers the modem on (banners follow after the configured
    /// delays) and, if configured, binds the control socket. Must run inside a tokio runtime.
    ///
    /// Fails if the PTY, the link or the control socket cannot be created.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        Self::start_with_clock(cfg, Arc::new(SystemClock)).await
    }

    /// Like [`Simulator::start`], with the wall clock used for message time stamps and the log.
    pub async fn start_with_clock(
        cfg: SimConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<SimHandle, SimError> {
        let (tx, rx) = mpsc::channel(REQUESTS);
        let cancel = CancellationToken::new();
        let control = cfg.control_socket.clone();
        let handle = SimHandle {
            tx,
            pty_link: cfg.pty_link.clone(),
            cancel: cancel.clone(),
        };
        let task = SimTask::new(cfg, clock, rx, cancel.clone())?;
        tokio::spawn(task.run());
        if let Some(path) = control {
            if let Err(e) = control::serve(&path, handle.clone(), cancel.clone()).await {
                handle.clone().shutdown().await;
                return Err(e);
            }
        }
        Ok(handle)
    }
}

/// A handle to the task that owns a simulated modem. Cheap to clone; every method is a message
/// to that task. Methods fail with [`SimError::Stopped`] once it has shut down.
#[derive(Clone)]
pub struct SimHandle {
    tx: mpsc::Sender<Request>,
    pty_link: PathBuf,
    cancel: CancellationToken,
}

impl SimHandle {
    /// The link path the daemon should open as its serial port.
    pub fn pty_path(&self) -> PathBuf {
        self.pty_link.clone()
    }

    /// The PTY slave the link currently points at (`None` while vanished).
    pub async fn slave_path(&self) -> Result<Option<PathBuf>, SimError> {
        self.ask(Request::SlavePath).await
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, SimError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// An SMS arrives from `from` (any text; split into parts and encoded as the codec decides,
    /// or forced by `opts`). Stored with `+CMTI`, or routed as `+CMT`, per the DTE's `AT+CNMI`.
    /// While the modem is unregistered or without SIM the network holds it and delivers it on
    /// recovery. Fails if the text cannot be encoded.
    pub async fn deliver_sms(
        &self,
        from: &str,
        text: &str,
        opts: DeliverOptions,
    ) -> Result<(), SimError> {
        self.ask(|reply| Request::DeliverSms {
            from: from.to_string(),
            text: text.to_string(),
            opts,
            reply,
        })
        .await?
    }

    /// A call to the modem: `RING` (and `+CLIP` if enabled) every ring interval until the DTE
    /// answers (`ATA`) or rejects (`ATH`), the caller gives up ([`SimHandle::reject`]) or the
    /// ring timeout passes. Fails if a call is already up or the modem is not registered.
    pub async fn call_in(&self, from: Option<&str>) -> Result<(), SimError> {
        self.ask(|reply| Request::CallIn {
            from: from.map(str::to_string),
            reply,
        })
        .await?
    }

    /// The far phone picks up the ringing outgoing call (`+CLCC` state 0 from now on).
    pub async fn answer(&self) -> Result<(), SimError> {
        self.ask(Request::Answer).await?
    }

    /// The far side declines the ringing outgoing call, hangs up a call in progress, or the
    /// caller of an incoming call gives up: `NO CARRIER`.
    pub async fn reject(&self) -> Result<(), SimError> {
        self.ask(Request::Reject).await?
    }

    /// The far phone lets the ringing outgoing call ring out: `NO ANSWER` now.
    pub async fn ignore(&self) -> Result<(), SimError> {
        self.ask(Request::Ignore).await?
    }

    /// The far side presses `key` (0-9, *, #, A-D) during the active call; reported as the
    /// profile does if the DTE enabled detection, and recorded in the call's log entry.
    pub async fn dtmf(&self, key: char) -> Result<(), SimError> {
        self.ask(|reply| Request::Dtmf(key, reply)).await?
    }

    /// What the far phone does with the next outgoing calls (until changed).
    pub async fn set_call_behaviour(&self, b: CallBehaviour) -> Result<(), SimError> {
        self.ask(|reply| Request::SetCallBehaviour(b, reply)).await
    }

    /// Injects a fault; see [`Fault`]. A vanish has closed the PTY when this returns.
    pub async fn fault(&self, f: Fault) -> Result<(), SimError> {
        self.ask(|reply| Request::Fault(f, reply)).await
    }

    /// Sets what the network answers to the USSD `code` (e.g. `*100#`); see [`UssdReply`].
    /// Survives `heal` and reboots (it is the network, not the module).
    pub async fn set_ussd(&self, code: &str, reply: UssdReply) -> Result<(), SimError> {
        self.ask(|r| Request::SetUssd(code.to_string(), reply, r))
            .await
    }

    /// Clears all faults (a vanish still reappears on its own schedule).
    pub async fn heal(&self) -> Result<(), SimError> {
        self.ask(Request::Heal).await
    }

    /// `count` status reports (for `to`, references from `first_reference` up, wrapping) at
    /// once, routed as `AT+CNMI` says (`+CDS` or stored with `+CDSI`); each is logged. Tests
    /// use it to flood the DTE's event path while something else is going on (a ringing call).
    pub async fn status_report_burst(
        &self,
        count: u32,
        first_reference: u8,
        to: &str,
    ) -> Result<(), SimError> {
        self.ask(|reply| Request::StatusReportBurst {
            count,
            first_reference,
            to: to.to_string(),
            reply,
        })
        .await
    }

    /// Writes an arbitrary URC line (e.g. `RING`, `+CMTI: "SM",3`) now or inside the next
    /// multi-line response, for tests that prove the driver separates URCs from responses.
    pub async fn inject_urc(&self, line: &str, placement: UrcPlacement) -> Result<(), SimError> {
        self.ask(|reply| Request::InjectUrc {
            line: line.to_string(),
            placement,
            reply,
        })
        .await
    }

    /// Everything the network saw so far, oldest first.
    pub async fn network_log(&self) -> Result<Vec<NetworkEntry>, SimError> {
        self.ask(Request::Log).await
    }

    /// The number an outgoing call is ringing at now (dialled, not yet answered), if any: what
    /// the far phone would show as an incoming call.
    pub async fn ringing(&self) -> Result<Option<String>, SimError> {
        self.ask(Request::Ringing).await
    }

    /// Waits until the log holds an entry matching `pred` and returns the first such entry.
    pub async fn wait_for_log(
        &self,
        pred: impl Fn(&NetworkEntry) -> bool,
        timeout: Duration,
    ) -> Result<NetworkEntry, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.network_log().await?.into_iter().find(|e| pred(e)) {
                return Ok(e);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A token cancelled when the simulator stops (for serving loops tied to it).
    pub fn stopped(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops the simulator: closes the PTY, removes the link and the control socket. Returns
    /// once the task has finished; harmless if it already has.
    pub async fn shutdown(self) {
        let _ = self.ask(Request::Shutdown).await;
        self.cancel.cancel();
    }
}
