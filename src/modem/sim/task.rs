//! The task that owns one simulated modem: its [`Engine`], its PTY, its output queue, its timers
//! and its network log. Everything else talks to it through [`super::SimHandle`].
//!
//! The task performs the engine's effects in order: writes wait for their delay (one queue, so
//! a response never overtakes an earlier one), URCs held for "inside the next response" are
//! spliced in after that response's first record, timers call back into the engine. Input that
//! arrives while a response is still pending is kept until the response is out, as a module
//! busy with a command does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::engine::{Effect, Engine, Timer};
use super::pty::{Master, Pty};
use super::types::{
    CallBehaviour, DeliverOptions, Fault, NetworkEntry, SimConfig, SimError, UrcPlacement,
};
use crate::clock::Clock;

/// Bytes queued for the PTY writer before further output is dropped (the DTE is not reading).
const WRITER_QUEUE: usize = 256;

type Reply<T> = oneshot::Sender<T>;

/// A request to the simulator task.
pub enum Request {
    DeliverSms {
        from: String,
        text: String,
        opts: DeliverOptions,
        reply: Reply<Result<(), SimError>>,
    },
    CallIn {
        from: Option<String>,
        reply: Reply<Result<(), SimError>>,
    },
    Answer(Reply<Result<(), SimError>>),
    Reject(Reply<Result<(), SimError>>),
    Ignore(Reply<Result<(), SimError>>),
    Dtmf(char, Reply<Result<(), SimError>>),
    SetCallBehaviour(CallBehaviour, Reply<()>),
    Fault(Fault, Reply<()>),
    Heal(Reply<()>),
    SetUssd(String, super::types::UssdReply, Reply<()>),
    StatusReportBurst {
        count: u32,
        first_reference: u8,
        to: String,
        reply: Reply<()>,
    },
    InjectUrc {
        line: String,
        placement: UrcPlacement,
        reply: Reply<()>,
    },
    Log(Reply<Vec<NetworkEntry>>),
    Ringing(Reply<Option<String>>),
    SlavePath(Reply<Option<std::path::PathBuf>>),
    Shutdown(Reply<()>),
}

/// The PTY and the two tasks that move its bytes.
struct Port {
    pty: Pty,
    input: mpsc::Receiver<Vec<u8>>,
    writer: mpsc::Sender<Vec<u8>>,
    tasks: [JoinHandle<()>; 2],
}

impl Port {
    fn open(cfg: &SimConfig) -> Result<Port, SimError> {
        let pty = Pty::create(&cfg.pty_link).map_err(|source| SimError::Pty {
            link: cfg.pty_link.clone(),
            source,
        })?;
        let (in_tx, input) = mpsc::channel::<Vec<u8>>(64);
        let (writer, mut out_rx) = mpsc::channel::<Vec<u8>>(WRITER_QUEUE);
        let m: Master = pty.master();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            loop {
                match m.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if in_tx.send(buf[..n].to_vec()).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "simulator PTY read ended");
                        break;
                    }
                }
            }
        });
        let m = pty.master();
        let writer_task = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if let Err(e) = m.write_all(&bytes).await {
                    tracing::debug!(error = %e, "simulator PTY write failed");
                    break;
                }
            }
        });
        tracing::info!(link = %cfg.pty_link.display(), slave = %pty.slave_path().display(), "simulated modem PTY ready");
        Ok(Port {
            pty,
            input,
            writer,
            tasks: [reader, writer_task],
        })
    }

    async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        drop(self.pty);
    }
}

/// The simulator's owning task.
pub struct SimTask {
    cfg: SimConfig,
    engine: Engine,
    clock: Arc<dyn Clock>,
    rx: mpsc::Receiver<Request>,
    cancel: CancellationToken,
    port: Option<Port>,
    reappear_at: Option<Instant>,
    out: VecDeque<(Duration, Vec<Vec<u8>>)>,
    out_ready_at: Option<Instant>,
    held: VecDeque<Vec<u8>>,
    pending_input: Vec<u8>,
    /// The line being received, for debug logging only.
    rx_line: Vec<u8>,
    /// A line with a PIN just completed: the next write (its echo) is not logged.
    pin_in_flight: bool,
    timers: Vec<(Instant, Timer)>,
    log: Vec<NetworkEntry>,
}

impl SimTask {
    /// Opens the PTY and powers the modem on; fails if the PTY cannot be made.
    pub fn new(
        cfg: SimConfig,
        clock: Arc<dyn Clock>,
        rx: mpsc::Receiver<Request>,
        cancel: CancellationToken,
    ) -> Result<SimTask, SimError> {
        let port = Port::open(&cfg)?;
        let engine = Engine::new(cfg.clone(), clock.now());
        let mut task = SimTask {
            cfg,
            engine,
            clock,
            rx,
            cancel,
            port: Some(port),
            reappear_at: None,
            out: VecDeque::new(),
            out_ready_at: None,
            held: VecDeque::new(),
            pending_input: Vec::new(),
            rx_line: Vec::new(),
            pin_in_flight: false,
            timers: Vec::new(),
            log: Vec::new(),
        };
        let fx = task.engine.power_on(task.clock.now());
        task.apply(fx);
        Ok(task)
    }

    /// Runs until shut down or until every handle is gone.
    pub async fn run(mut self) {
        let mut shutdown_reply = None;
        loop {
            let next_timer = self.timers.iter().map(|(t, _)| *t).min();
            let out_at = self.out_ready_at;
            let reappear = self.reappear_at;
            let port_input = async {
                match self.port.as_mut() {
                    Some(p) => p.input.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                req = self.rx.recv() => match req {
                    None => break,
                    Some(Request::Shutdown(reply)) => {
                        shutdown_reply = Some(reply);
                        break;
                    }
                    Some(req) => self.request(req).await,
                },
                bytes = port_input => match bytes {
                    Some(b) => {
                        self.log_received(&b);
                        self.input(&b);
                    }
                    None => {
                        // The reader stopped: the PTY is unusable; keep serving control requests.
                        if let Some(p) = self.port.take() {
                            p.close().await;
                        }
                    }
                },
                _ = sleep_opt(out_at) => self.write_head(),
                _ = sleep_opt(next_timer) => self.fire_timers(),
                _ = sleep_opt(reappear) => self.reappear(),
            }
        }
        self.cancel.cancel();
        if let Some(p) = self.port.take() {
            p.close().await;
        }
        if let Some(r) = shutdown_reply {
            let _ = r.send(());
        }
    }

    // Long on purpose: one arm per control request, each a call into the engine and its reply.
    async fn request(&mut self, req: Request) {
        let now = self.clock.now();
        match req {
            Request::DeliverSms {
                from,
                text,
                opts,
                reply,
            } => {
                let r = self.engine.deliver_sms(&from, &text, opts, now);
                let _ = reply.send(r.map(|fx| self.apply(fx)));
            }
            Request::CallIn { from, reply } => {
                let r = self.engine.call_in(from.as_deref(), now);
                let _ = reply.send(r.map(|fx| self.apply(fx)));
            }
            Request::Answer(reply) => {
                let r = self.engine.answer(now);
                let _ = reply.send(r.map(|fx| self.apply(fx)));
            }
            Request::Reject(reply) => {
                let r = self.engine.reject(now);
                let _ = reply.send(r.map(|fx| self.apply(fx)));
            }
            Request::Ignore(reply) => {
                let r = self.engine.ignore(now);
                let _ = reply.send(r.map(|fx| self.apply(fx)));
            }
            Request::Dtmf(key, reply) => {
                let r = self.engine.dtmf(key, now);
                let _ = reply.send(r.map(|fx| self.apply(fx)));
            }
            Request::SetCallBehaviour(b, reply) => {
                self.engine.set_call_behaviour(b);
                let _ = reply.send(());
            }
            Request::Fault(f, reply) => {
                let fx = self.engine.fault(f, now);
                self.apply(fx);
                self.settle_vanish().await;
                let _ = reply.send(());
            }
            Request::SetUssd(code, r, reply) => {
                self.engine.set_ussd(&code, r);
                let _ = reply.send(());
            }
            Request::Heal(reply) => {
                let fx = self.engine.heal(now);
                self.apply(fx);
                let _ = reply.send(());
            }
            Request::StatusReportBurst {
                count,
                first_reference,
                to,
                reply,
            } => {
                let fx = self
                    .engine
                    .status_report_burst(count, first_reference, &to, now);
                self.apply(fx);
                let _ = reply.send(());
            }
            Request::InjectUrc {
                line,
                placement,
                reply,
            } => {
                if !self.engine.is_silent() {
                    let bytes = format!("\r\n{line}\r\n").into_bytes();
                    match placement {
                        UrcPlacement::Now => self.push_out(Duration::ZERO, vec![bytes]),
                        UrcPlacement::InsideNextResponse => self.held.push_back(bytes),
                    }
                }
                let _ = reply.send(());
            }
            Request::Log(reply) => {
                let _ = reply.send(self.log.clone());
            }
            Request::Ringing(reply) => {
                let _ = reply.send(self.engine.ringing_out().map(str::to_string));
            }
            Request::SlavePath(reply) => {
                let _ = reply.send(self.port.as_ref().map(|p| p.pty.slave_path().to_path_buf()));
            }
            Request::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    fn input(&mut self, bytes: &[u8]) {
        if !self.out.is_empty() {
            self.pending_input.extend_from_slice(bytes);
            return;
        }
        let fx = self.engine.input(bytes, self.clock.now());
        self.apply(fx);
    }

    /// Performs effects; a vanish is finished by [`Self::settle_vanish`].
    fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Write { delay, chunks } => self.push_out(delay, chunks),
                Effect::HoldUrc(b) => self.held.push_back(b),
                Effect::Log(entry) => {
                    tracing::debug!(kind = entry.kind(), "simulator network log");
                    self.log.push(entry);
                }
                Effect::Schedule { after, timer } => {
                    self.timers.push((Instant::now() + after, timer));
                }
                Effect::Vanish(after) => {
                    self.reappear_at = Some(Instant::now() + after);
                }
            }
        }
    }

    /// Closes the PTY if a vanish was requested and it is still open.
    async fn settle_vanish(&mut self) {
        if self.reappear_at.is_some() {
            if let Some(p) = self.port.take() {
                p.close().await;
                tracing::info!("simulated modem vanished");
            }
            self.out.clear();
            self.out_ready_at = None;
            self.held.clear();
            self.pending_input.clear();
        }
    }

    fn reappear(&mut self) {
        self.reappear_at = None;
        match Port::open(&self.cfg) {
            Ok(p) => {
                self.port = Some(p);
                let fx = self.engine.power_on(self.clock.now());
                self.apply(fx);
                tracing::info!("simulated modem reappeared");
            }
            Err(e) => {
                tracing::warn!(error = %e, "simulated modem could not reappear; retrying");
                self.reappear_at = Some(Instant::now() + Duration::from_millis(500));
            }
        }
    }

    fn push_out(&mut self, delay: Duration, chunks: Vec<Vec<u8>>) {
        if self.out.is_empty() {
            self.out_ready_at = Some(Instant::now() + delay);
        }
        self.out.push_back((delay, chunks));
        if self.out_ready_at.is_some_and(|t| t <= Instant::now()) {
            // Write what is due at once: keeps zero-delay runs free of extra wake-ups.
            self.write_head();
        }
    }

    fn write_head(&mut self) {
        while let Some((_, chunks)) = self.out.pop_front() {
            let mut bytes = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                bytes.extend_from_slice(c);
                if i == 0 && chunks.len() >= 2 {
                    while let Some(h) = self.held.pop_front() {
                        bytes.extend_from_slice(&h);
                    }
                }
            }
            self.send(bytes);
            match self.out.front() {
                Some((delay, _)) if !delay.is_zero() => {
                    self.out_ready_at = Some(Instant::now() + *delay);
                    return;
                }
                Some(_) => continue,
                None => {
                    self.out_ready_at = None;
                    let input = std::mem::take(&mut self.pending_input);
                    if !input.is_empty() {
                        self.input(&input);
                    }
                    return;
                }
            }
        }
        self.out_ready_at = None;
    }

    fn send(&mut self, bytes: Vec<u8>) {
        let text = String::from_utf8_lossy(&bytes);
        let secret = std::mem::take(&mut self.pin_in_flight)
            || self
                .rx_line
                .to_ascii_uppercase()
                .windows(5)
                .any(|w| w == b"CPIN=")
            || text.to_ascii_uppercase().contains("CPIN=");
        if secret {
            tracing::debug!(bytes = "<echo of AT+CPIN redacted>", "simulator sent");
        } else {
            tracing::debug!(bytes = %text.escape_debug(), "simulator sent");
        }
        if let Some(p) = self.port.as_ref() {
            if p.writer.try_send(bytes).is_err() {
                tracing::debug!("simulator output dropped: the DTE is not reading");
            }
        }
    }

    /// Logs received input line by line at debug, never showing a PIN or PUK.
    fn log_received(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\r' || b == 0x1a || self.rx_line.len() >= 512 {
                let line = String::from_utf8_lossy(&self.rx_line).into_owned();
                self.rx_line.clear();
                if line.to_ascii_uppercase().contains("CPIN=") {
                    self.pin_in_flight = true;
                    tracing::debug!(line = "AT+CPIN=<redacted>", "simulator received");
                } else if !line.trim().is_empty() {
                    tracing::debug!(line = %line.escape_debug(), "simulator received");
                }
            } else if b != b'\n' {
                self.rx_line.push(b);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let (due, rest): (Vec<_>, Vec<_>) = self.timers.drain(..).partition(|(t, _)| *t <= now);
        self.timers = rest;
        let mut due = due;
        due.sort_by_key(|(t, _)| *t);
        for (_, timer) in due {
            let fx = self.engine.timer(timer, self.clock.now());
            self.apply(fx);
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}
