//! A scripted fake modem for tests, in the spirit of embedded-hal-mock's serial mock: a list of
//! expected commands with canned replies, plus spontaneous output (URCs) and port loss.
//!
//! It lives beside the [`PortOpener`] trait it implements, compiled only into test builds
//! (`cfg(test)` or the `testkit` feature).
//! The fake is strict: the first command that differs from the script is recorded as a failure
//! and everything after it is answered `ERROR`; [`FakeModem::done`] fails unless every step was
//! used and nothing differed. Commands that arrive after the script is used up are recorded and
//! not answered (a silent modem).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::port::PortOpener;

const CTRL_Z: u8 = 0x1a;
const ESC: u8 = 0x1b;

#[derive(Debug, Clone)]
enum Reply {
    Bytes(Vec<u8>),
    /// Prompt, read the payload up to Ctrl-Z, then these bytes (or nothing if `None`).
    Submit(Option<Vec<u8>>),
}

#[derive(Debug, Clone)]
enum Step {
    Expect { command: String, reply: Reply },
    Send(Vec<u8>),
    Pause(Duration),
    Close,
}

fn framed(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What the fake should see and say, in order.
#[derive(Debug, Clone, Default)]
pub struct Script {
    steps: VecDeque<Step>,
    echo: bool,
}

impl Script {
    /// An empty script (echo off).
    pub fn new() -> Self {
        Self::default()
    }

    /// Echo every command back, like a modem before `ATE0`; `ATE0` turns echo off.
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// Expect `command`, answer each of `lines` framed as `\r\n<line>\r\n`.
    pub fn expect(mut self, command: &str, lines: &[&str]) -> Self {
        self.steps.push_back(Step::Expect {
            command: command.into(),
            reply: Reply::Bytes(framed(lines)),
        });
        self
    }

    /// Expect `command`, answer `OK`.
    pub fn ok(self, command: &str) -> Self {
        self.expect(command, &["OK"])
    }

    /// Expect `command`, answer these exact bytes.
    pub fn raw(mut self, command: &str, bytes: &[u8]) -> Self {
        self.steps.push_back(Step::Expect {
            command: command.into(),
            reply: Reply::Bytes(bytes.to_vec()),
        });
        self
    }

    /// Expect `command`, say nothing (a hung modem).
    pub fn silent(self, command: &str) -> Self {
        self.raw(command, b"")
    }

    /// Expect an `AT+CMGS=<n>`: send the prompt, read the PDU up to Ctrl-Z, then answer `lines`.
    pub fn submit(mut self, command: &str, lines: &[&str]) -> Self {
        self.steps.push_back(Step::Expect {
            command: command.into(),
            reply: Reply::Submit(Some(framed(lines))),
        });
        self
    }

    /// Like [`Script::submit`] but never answer after the PDU.
    pub fn submit_silent(mut self, command: &str) -> Self {
        self.steps.push_back(Step::Expect {
            command: command.into(),
            reply: Reply::Submit(None),
        });
        self
    }

    /// Send lines unprompted (URCs).
    pub fn send(mut self, lines: &[&str]) -> Self {
        self.steps.push_back(Step::Send(framed(lines)));
        self
    }

    /// Send raw bytes unprompted (junk, partial lines).
    pub fn send_raw(mut self, bytes: &[u8]) -> Self {
        self.steps.push_back(Step::Send(bytes.to_vec()));
        self
    }

    /// Wait before the next step.
    pub fn pause(mut self, d: Duration) -> Self {
        self.steps.push_back(Step::Pause(d));
        self
    }

    /// Close the port (the device vanished).
    pub fn close(mut self) -> Self {
        self.steps.push_back(Step::Close);
        self
    }
}

/// Progress of a running fake.
#[derive(Debug, Clone, Default)]
pub struct FakeState {
    /// Steps not yet used.
    pub remaining: Vec<String>,
    /// Mismatches seen.
    pub failures: Vec<String>,
    /// Every command line and payload received, in order (`<ESC>` for an abort).
    pub received: Vec<String>,
}

/// A running fake modem; see the module docs.
pub struct FakeModem {
    state: watch::Receiver<FakeState>,
}

impl FakeModem {
    /// Runs `script` against one end of a stream (e.g. `tokio::io::duplex`).
    pub fn spawn<S>(io: S, script: Script) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let initial = FakeState {
            remaining: script.steps.iter().map(|s| format!("{s:?}")).collect(),
            ..FakeState::default()
        };
        let (tx, rx) = watch::channel(initial);
        tokio::spawn(run(io, script, tx));
        Self { state: rx }
    }

    /// Waits (up to 5 s of tokio time) for the script to be used up; fails on mismatches or
    /// unused steps.
    pub async fn done(&self) -> Result<(), String> {
        self.done_within(Duration::from_secs(5)).await
    }

    /// [`FakeModem::done`] with a longer wait, for scripts that include timed polls.
    pub async fn done_within(&self, wait: Duration) -> Result<(), String> {
        let mut rx = self.state.clone();
        let _ = tokio::time::timeout(
            wait,
            rx.wait_for(|s| s.remaining.is_empty() || !s.failures.is_empty()),
        )
        .await;
        let s = self.state.borrow().clone();
        if !s.failures.is_empty() {
            return Err(format!(
                "fake modem: {:?} (received {:?})",
                s.failures, s.received
            ));
        }
        if !s.remaining.is_empty() {
            return Err(format!(
                "fake modem: script not used up, next {:?} (received {:?})",
                s.remaining, s.received
            ));
        }
        Ok(())
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<String> {
        self.state.borrow().received.clone()
    }
}

async fn run<S>(mut io: S, mut script: Script, tx: watch::Sender<FakeState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut pending: VecDeque<u8> = VecDeque::new();
    let mut failed = false;
    let mut buf = [0u8; 512];
    loop {
        let step = script.steps.pop_front();
        tx.send_modify(|s| {
            if !s.remaining.is_empty() && step.is_some() {
                s.remaining.remove(0);
            }
        });
        match step {
            Some(Step::Send(bytes)) => {
                if io.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Some(Step::Pause(d)) => tokio::time::sleep(d).await,
            Some(Step::Close) => return,
            Some(Step::Expect { command, reply }) => {
                let mut aborts = Vec::new();
                let got = read_until(&mut io, &mut pending, &mut buf, b'\r', &mut aborts).await;
                tx.send_modify(|s| s.received.append(&mut aborts));
                let Some(got) = got else {
                    tx.send_modify(|s| s.failures.push(format!("port closed, expected {command}")));
                    return;
                };
                tx.send_modify(|s| s.received.push(got.clone()));
                if script.echo && io.write_all(format!("{got}\r").as_bytes()).await.is_err() {
                    return;
                }
                if got.eq_ignore_ascii_case("ATE0") {
                    script.echo = false;
                }
                if failed || got != command {
                    if !failed {
                        tx.send_modify(|s| {
                            s.failures
                                .push(format!("expected {command:?}, got {got:?}"))
                        });
                    }
                    failed = true;
                    let _ = io.write_all(b"\r\nERROR\r\n").await;
                    continue;
                }
                match reply {
                    Reply::Bytes(b) => {
                        if io.write_all(&b).await.is_err() {
                            return;
                        }
                    }
                    Reply::Submit(after) => {
                        if io.write_all(b"\r\n> ").await.is_err() {
                            return;
                        }
                        let Some(payload) = read_payload(&mut io, &mut pending, &mut buf).await
                        else {
                            return;
                        };
                        let aborted = payload == "<ESC>";
                        tx.send_modify(|s| s.received.push(payload));
                        if let (Some(b), false) = (after, aborted) {
                            if io.write_all(&b).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            None => {
                // Script used up: record anything else, answer nothing.
                let mut aborts = Vec::new();
                let got = read_until(&mut io, &mut pending, &mut buf, b'\r', &mut aborts).await;
                tx.send_modify(|s| s.received.append(&mut aborts));
                let Some(got) = got else { return };
                tx.send_modify(|s| s.received.push(got));
            }
        }
    }
}

async fn fill<S: AsyncRead + Unpin>(
    io: &mut S,
    pending: &mut VecDeque<u8>,
    buf: &mut [u8],
) -> Option<()> {
    match io.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            pending.extend(&buf[..n]);
            Some(())
        }
    }
}

async fn read_until<S: AsyncRead + Unpin>(
    io: &mut S,
    pending: &mut VecDeque<u8>,
    buf: &mut [u8],
    end: u8,
    pending_abort: &mut Vec<String>,
) -> Option<String> {
    loop {
        if let Some(pos) = pending.iter().position(|&b| b == end) {
            let bytes: Vec<u8> = pending.drain(..=pos).collect();
            let aborted = bytes.contains(&ESC);
            // Control bytes (ESC after an abandoned submit, stray Ctrl-Z, LF) are not part of
            // a command line.
            let kept: Vec<u8> = bytes.into_iter().filter(|&b| b >= 0x20).collect();
            let text = String::from_utf8_lossy(&kept).trim().to_string();
            if text.is_empty() && !aborted {
                continue;
            }
            if aborted {
                pending_abort.push("<ESC>".into());
            }
            if text.is_empty() {
                continue;
            }
            return Some(text);
        }
        fill(io, pending, buf).await?;
    }
}

async fn read_payload<S: AsyncRead + Unpin>(
    io: &mut S,
    pending: &mut VecDeque<u8>,
    buf: &mut [u8],
) -> Option<String> {
    loop {
        if let Some(pos) = pending.iter().position(|&b| b == CTRL_Z || b == ESC) {
            let bytes: Vec<u8> = pending.drain(..=pos).collect();
            if bytes[pos] == ESC {
                return Some("<ESC>".into());
            }
            return Some(String::from_utf8_lossy(&bytes[..pos]).trim().to_string());
        }
        fill(io, pending, buf).await?;
    }
}

/// A [`PortOpener`] that hands out one duplex stream per open, each driven by the next script;
/// an `Err` entry makes that open fail (device missing). When the list is used up, opens fail.
pub struct ScriptedOpener {
    plan: VecDeque<Result<Script, io::ErrorKind>>,
    fakes: mpsc::UnboundedSender<FakeModem>,
}

impl ScriptedOpener {
    /// The opener and a receiver that yields each [`FakeModem`] as its port is opened.
    pub fn new(
        plan: Vec<Result<Script, io::ErrorKind>>,
    ) -> (Self, mpsc::UnboundedReceiver<FakeModem>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                plan: plan.into(),
                fakes: tx,
            },
            rx,
        )
    }
}

impl PortOpener for ScriptedOpener {
    type Port = tokio::io::DuplexStream;

    async fn open(&mut self) -> io::Result<Self::Port> {
        match self.plan.pop_front() {
            Some(Ok(script)) => {
                let (ours, theirs) = tokio::io::duplex(4096);
                let _ = self.fakes.send(FakeModem::spawn(theirs, script));
                Ok(ours)
            }
            Some(Err(kind)) => Err(io::Error::new(kind, "scripted open failure")),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no more scripted ports",
            )),
        }
    }

    fn describe(&self) -> String {
        "scripted fake".into()
    }
}
