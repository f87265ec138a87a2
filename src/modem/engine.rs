//! The AT engine: runs one command at a time over a byte stream and separates its response from
//! unsolicited result codes.
//!
//! [`AtEngine`] owns the port (anything `AsyncRead + AsyncWrite`: tokio-serial in production,
//! `tokio::io::duplex` in unit tests, the PTY simulator end to end). It is not a task itself:
//! the driver task owns one engine and calls it, which keeps "one task owns the port" true and
//! lets the driver interleave URC handling between commands.
//!
//! Per command: write `text\r`; skip the echo (ATE1 or not); for `AT+CMGS` wait for the `> `
//! prompt, then write the PDU and Ctrl-Z (0x1A); collect information lines until a final result
//! or the command's own deadline. A URC that arrives inside a response (`+CMTI` in the middle of a
//! `+CMGL` listing, `RING` during `AT+CSQ`) goes to the unsolicited queue and never into the
//! response. `+CMT:`/`+CDS:` are two-line URCs: the next line is taken as their body. On a
//! timeout after the prompt, ESC (0x1B) is written so the modem abandons the half-sent message.
//!
//! Failure behaviour: a read of 0 bytes or any I/O error is [`EngineError::PortLost`]; the
//! driver then drops the engine and reopens the port.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, warn};

use super::at::{
    classify, parse_urc, response_prefix, CallResult, CmeError, CmsError, Final, Frame, Line,
    LineDecoder, Urc,
};

/// How long a final-result-looking line right after a text-mode message header waits for more
/// (see [`Command::with_text_bodies`]). A modem writes a message's text and the `OK` after it
/// in one go, so the wait is paid only by an empty message or one whose text is a result code.
pub const TEXT_BODY_GRACE: Duration = Duration::from_millis(200);

/// What errors and logs call a submit (`AT+CMGS=<n>` or `AT+CMGS="<number>"`).
const SUBMIT_LABEL: &str = "AT+CMGS";

/// Ctrl-Z: ends the PDU or text of `AT+CMGS`.
const CTRL_Z: u8 = 0x1a;
/// ESC: abandons a half-entered `AT+CMGS`.
const ESC: u8 = 0x1b;
/// Longest a write to the port may take. A command or a PDU is a few hundred bytes, well under a
/// second even at 9600 baud; a write that blocks longer (a wedged USB endpoint, a tty stopped by
/// flow control that never resumes) means the port is lost, so the driver reopens it instead of
/// waiting forever while health still reads Up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a port must offer to be driven by the engine.
pub trait Port: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Port for T {}

/// One AT command with its own timeout.
#[derive(Clone)]
pub struct Command {
    text: String,
    label: String,
    timeout: Duration,
    payload: Option<String>,
    dial: bool,
    sensitive: bool,
    text_bodies: bool,
}

impl Command {
    /// A command line without the trailing CR, e.g. `AT+CSQ`.
    pub fn new(text: impl Into<String>, timeout: Duration) -> Self {
        let text = text.into();
        Self {
            label: text.clone(),
            text,
            timeout,
            payload: None,
            dial: false,
            sensitive: false,
            text_bodies: false,
        }
    }

    /// A text-mode `AT+CMGR`/`AT+CMGL`: the line after each `+CMGR:`/`+CMGL:` header is a
    /// message's text, which may itself read `OK` or `ERROR` (a reply of "OK" to a page is
    /// likely). Such a line is held for [`TEXT_BODY_GRACE`]: anything that follows it makes it
    /// the text; silence makes it the final result (an empty message, whose blank text line the
    /// decoder drops).
    pub fn with_text_bodies(mut self) -> Self {
        self.text_bodies = true;
        self
    }

    /// `AT+CMGS=<len>` followed, after the prompt, by `payload` and Ctrl-Z.
    pub fn submit(text: impl Into<String>, payload: impl Into<String>, timeout: Duration) -> Self {
        let mut c = Self::new(text, timeout);
        c.label = SUBMIT_LABEL.into();
        c.payload = Some(payload.into());
        c
    }

    /// A dial (`ATD...;`, `ATA`): `NO CARRIER`, `BUSY`, `NO ANSWER`, `NO DIALTONE` end it.
    pub fn dial(text: impl Into<String>, timeout: Duration) -> Self {
        let mut c = Self::new(text, timeout);
        c.label = c.text.chars().take(3).collect();
        c.dial = true;
        c
    }

    /// A command whose text must never be logged or put in an error (`AT+CPIN="1234"`);
    /// `label` is shown instead.
    pub fn secret(text: impl Into<String>, label: &str, timeout: Duration) -> Self {
        let mut c = Self::new(text, timeout);
        c.label = label.into();
        c.sensitive = true;
        c
    }

    /// What errors and logs call this command.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The deadline for the whole exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The information lines of a successful command, echo and URCs removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Information lines in order.
    pub lines: Vec<String>,
    /// For dials: the call result that ended the command instead of `OK`.
    pub call: Option<CallResult>,
}

impl Response {
    /// The first line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(String::as_str)
    }
}

/// A URC taken off the port, with the body line of `+CMT`/`+CDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsolicited {
    /// What arrived.
    pub urc: Urc,
    /// For two-line URCs, the following line (a PDU, or text in text mode).
    pub body: Option<String>,
    /// When the engine read it off the port. A URC can wait in the queue behind a long command
    /// (an SMS submit can take 20 s and more); what depends on when it came (how long a call has
    /// been silent) must use this, not the time it is handled.
    pub at: Instant,
}

impl Unsolicited {
    /// `urc` (with `body`), read off the port just now.
    fn arrived(urc: Urc, body: Option<String>) -> Self {
        Self {
            urc,
            body,
            at: Instant::now(),
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Plain `ERROR`.
    #[error("ERROR on {command}")]
    Error {
        /// The command's label.
        command: String,
    },
    /// `+CME ERROR`.
    #[error("{code} on {command}")]
    Cme {
        /// The command's label.
        command: String,
        /// The code.
        code: CmeError,
    },
    /// `+CMS ERROR`.
    #[error("{code} on {command}")]
    Cms {
        /// The command's label.
        command: String,
        /// The code.
        code: CmsError,
    },
    /// No final result (or no prompt) before the deadline.
    #[error("no answer to {command} within {timeout:?}")]
    Timeout {
        /// The command's label.
        command: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The port failed or was closed by the far side.
    #[error("port lost during {command}")]
    PortLost {
        /// The command's label, or `read` while idle.
        command: String,
        /// The I/O error (`UnexpectedEof` for a read of 0 bytes).
        #[source]
        source: io::Error,
    },
}

impl EngineError {
    /// The port is gone; the engine must be dropped and the port reopened.
    pub fn is_port_lost(&self) -> bool {
        matches!(self, Self::PortLost { .. })
    }

    /// The modem did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Whether the same command may succeed later. A bare `ERROR` says nothing about why; to a
    /// submit (`AT+CMGS`, from modems that give no `+CMS ERROR` code) it is most often the
    /// network's passing refusal, and a page must not be given up on it at the first attempt (a
    /// modem that refuses every submit is shown down after a few in a row). To anything else it
    /// is the modem refusing the command itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Error { command } => command == SUBMIT_LABEL,
            Self::Cme { code, .. } => code.is_retryable(),
            Self::Cms { code, .. } => code.is_retryable(),
            Self::Timeout { .. } | Self::PortLost { .. } => true,
        }
    }
}

enum Stage {
    AwaitPrompt,
    AwaitFinal,
}

/// The engine; see the module docs.
pub struct AtEngine<P> {
    port: P,
    decoder: LineDecoder,
    unsolicited: VecDeque<Unsolicited>,
    /// A `+CMT`/`+CDS` header waiting for its body line.
    pending_body: Option<Urc>,
    buf: Vec<u8>,
}

/// How many URCs are kept while nobody takes them (a long command, a busy driver). When full,
/// the oldest delivery report goes first, and only when there is none the oldest URC of any
/// kind, with a warning: a lost report costs a "delivered" mark, never a page, while an incoming
/// message or call is what an acknowledgement arrives as. (Stored messages are not lost either
/// way: they are listed again with `AT+CMGL`.)
const MAX_QUEUED_URCS: usize = 1024;

/// Longest wait for the `> ` prompt of a command that sends a payload (`AT+CMGS`). The prompt
/// comes at once on every module; only after the payload does the network's answer take long
/// (the command's own timeout, up to minutes). Waiting the whole submit timeout for a prompt
/// from a modem that went silent would hide it for minutes while health still reads Up.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(10);

impl<P: Port> AtEngine<P> {
    /// Wraps an open port.
    pub fn new(port: P) -> Self {
        Self {
            port,
            decoder: LineDecoder::default(),
            unsolicited: VecDeque::new(),
            pending_body: None,
            buf: vec![0; 1024],
        }
    }

    /// Runs one command; see the module docs.
    pub async fn execute(&mut self, cmd: &Command) -> Result<Response, EngineError> {
        if cmd.sensitive {
            debug!(command = %cmd.label, "at send (redacted)");
        } else {
            debug!(command = %cmd.text, "at send");
        }
        // Until the prompt, only its short wait; the whole timeout starts with the payload.
        let mut allowed = match cmd.payload {
            Some(_) => cmd.timeout.min(PROMPT_TIMEOUT),
            None => cmd.timeout,
        };
        let mut deadline = Instant::now() + allowed;
        let mut line = Vec::with_capacity(cmd.text.len() + 1);
        line.extend_from_slice(cmd.text.as_bytes());
        line.push(b'\r');
        self.write(&line, &cmd.label).await?;

        let prefix = response_prefix(&cmd.text);
        let mut stage = if cmd.payload.is_some() {
            self.decoder.set_prompt_expected(true);
            Stage::AwaitPrompt
        } else {
            Stage::AwaitFinal
        };
        let mut response = Response::default();
        // A result-code-looking line right after a text-mode header: text or final, decided by
        // whether anything follows it (see `Command::with_text_bodies`).
        let mut held: Option<String> = None;
        loop {
            while let Some(frame) = self.decoder.next_frame() {
                match frame {
                    Frame::Prompt => {
                        if let (Stage::AwaitPrompt, Some(payload)) = (&stage, &cmd.payload) {
                            debug!("at prompt");
                            let mut bytes = Vec::with_capacity(payload.len() + 1);
                            bytes.extend_from_slice(payload.as_bytes());
                            bytes.push(CTRL_Z);
                            self.write(&bytes, &cmd.label).await?;
                            stage = Stage::AwaitFinal;
                            allowed = cmd.timeout;
                            deadline = Instant::now() + allowed;
                        }
                    }
                    Frame::Overlong { dropped } => {
                        warn!(dropped, command = %cmd.label, "overlong line from modem dropped");
                    }
                    Frame::Line(l) => {
                        // A URC in between (a RING, a +CMTI of a burst, with its body) says
                        // nothing of whether the held line was text: keep holding.
                        let urc = self.pending_body.is_some()
                            || matches!(classify(&l), Line::Text(ref t)
                                if !prefix.as_deref().is_some_and(|p| t.starts_with(p))
                                    && parse_urc(t).is_some());
                        if held.is_some() && urc {
                            if let Some(done) =
                                self.on_line(cmd, prefix.as_deref(), l, &mut response)
                            {
                                self.decoder.set_prompt_expected(false);
                                return done;
                            }
                            continue;
                        }
                        if let Some(text) = held.take() {
                            debug!(line = %text, "at recv message text");
                            response.lines.push(text);
                        }
                        if cmd.text_bodies
                            && self.pending_body.is_none()
                            && !matches!(classify(&l), Line::Text(_))
                            && prefix.as_deref().is_some_and(|p| {
                                response.lines.last().is_some_and(|h| h.starts_with(p))
                            })
                        {
                            held = Some(l);
                            continue;
                        }
                        if let Some(done) = self.on_line(cmd, prefix.as_deref(), l, &mut response) {
                            self.decoder.set_prompt_expected(false);
                            return done;
                        }
                    }
                }
            }
            let wait_until = match &held {
                Some(_) => deadline.min(Instant::now() + TEXT_BODY_GRACE),
                None => deadline,
            };
            let read = timeout_at(wait_until, self.port.read(&mut self.buf)).await;
            if read.is_err() {
                if let Some(l) = held.take() {
                    // Nothing followed: it was the final result after an empty message.
                    if let Some(done) = self.on_line(cmd, prefix.as_deref(), l, &mut response) {
                        self.decoder.set_prompt_expected(false);
                        return done;
                    }
                    continue;
                }
            }
            match read {
                Ok(Ok(0)) => return Err(port_closed(&cmd.label)),
                Ok(Ok(n)) => self.decoder.push(&self.buf[..n]),
                Ok(Err(source)) => {
                    return Err(EngineError::PortLost {
                        command: cmd.label.clone(),
                        source,
                    })
                }
                Err(_) => {
                    self.decoder.set_prompt_expected(false);
                    if cmd.payload.is_some() {
                        // Abandon the half-entered message; ignore failure, the timeout wins.
                        let _ =
                            tokio::time::timeout(WRITE_TIMEOUT, self.port.write_all(&[ESC])).await;
                    }
                    return Err(EngineError::Timeout {
                        command: cmd.label.clone(),
                        timeout: allowed,
                    });
                }
            }
        }
    }

    /// Handles one line during a command; `Some` ends the command.
    fn on_line(
        &mut self,
        cmd: &Command,
        prefix: Option<&str>,
        l: String,
        response: &mut Response,
    ) -> Option<Result<Response, EngineError>> {
        if let Some(urc) = self.pending_body.take() {
            debug!(line = %l, "at recv body");
            self.queue(Unsolicited::arrived(urc, Some(l)));
            return None;
        }
        if l.eq_ignore_ascii_case(&cmd.text) || cmd.payload.as_deref() == Some(l.as_str()) {
            // Echo of the command or of the PDU.
            return None;
        }
        debug!(line = %l, "at recv");
        let command = || cmd.label.clone();
        match classify(&l) {
            Line::Final(Final::Ok) => Some(Ok(std::mem::take(response))),
            Line::Final(Final::Error) => Some(Err(EngineError::Error { command: command() })),
            Line::Final(Final::Cme(code)) => Some(Err(EngineError::Cme {
                command: command(),
                code,
            })),
            Line::Final(Final::Cms(code)) => Some(Err(EngineError::Cms {
                command: command(),
                code,
            })),
            Line::Call(result) if cmd.dial => {
                response.call = Some(result);
                Some(Ok(std::mem::take(response)))
            }
            Line::Call(result) => {
                self.queue(Unsolicited::arrived(Urc::CallEnded(result), None));
                None
            }
            Line::Text(t) => {
                if prefix.is_some_and(|p| t.starts_with(p)) {
                    response.lines.push(t);
                } else if let Some(urc) = parse_urc(&t) {
                    self.on_urc(urc);
                } else {
                    response.lines.push(t);
                }
                None
            }
        }
    }

    fn on_urc(&mut self, urc: Urc) {
        if urc.has_body() {
            self.pending_body = Some(urc);
        } else {
            self.queue(Unsolicited::arrived(urc, None));
        }
    }

    fn queue(&mut self, u: Unsolicited) {
        if self.unsolicited.len() >= MAX_QUEUED_URCS {
            let report = self.unsolicited.iter().position(|q| {
                matches!(
                    q.urc,
                    Urc::StatusReportFollows { .. }
                        | Urc::StatusReportText { .. }
                        | Urc::StatusReportStored { .. }
                )
            });
            match report {
                Some(i) => {
                    warn!("unsolicited queue full, oldest delivery report dropped");
                    self.unsolicited.remove(i);
                }
                None => {
                    warn!("unsolicited queue full, oldest dropped");
                    self.unsolicited.pop_front();
                }
            }
        }
        self.unsolicited.push_back(u);
    }

    /// Turns frames decoded while no command runs into URCs; other lines are stale answers.
    fn absorb_idle_frames(&mut self) {
        while let Some(frame) = self.decoder.next_frame() {
            let Frame::Line(l) = frame else { continue };
            if let Some(urc) = self.pending_body.take() {
                debug!(line = %l, "at recv body");
                self.queue(Unsolicited::arrived(urc, Some(l)));
                continue;
            }
            debug!(line = %l, "at recv idle");
            match classify(&l) {
                Line::Call(result) => {
                    self.queue(Unsolicited::arrived(Urc::CallEnded(result), None))
                }
                Line::Text(t) => match parse_urc(&t) {
                    Some(urc) => self.on_urc(urc),
                    None => debug!(line = %t, "stray line ignored"),
                },
                Line::Final(_) => debug!(line = %l, "stray final result ignored"),
            }
        }
    }

    /// The next URC taken while idle (or queued during a command). Cancel-safe: state only
    /// changes after a read has completed.
    pub async fn next_unsolicited(&mut self) -> Result<Unsolicited, EngineError> {
        loop {
            self.absorb_idle_frames();
            if let Some(u) = self.unsolicited.pop_front() {
                return Ok(u);
            }
            self.read_some("read").await?;
        }
    }

    /// A URC already queued, without reading.
    pub fn pop_unsolicited(&mut self) -> Option<Unsolicited> {
        self.absorb_idle_frames();
        self.unsolicited.pop_front()
    }

    /// Reads and interprets whatever arrives for `quiet` after the last byte (at most `max`),
    /// so stale answers from before a (re)open or a timeout cannot end the next command.
    /// URCs found are kept.
    pub async fn drain(&mut self, quiet: Duration, max: Duration) -> Result<(), EngineError> {
        let end = Instant::now() + max;
        loop {
            let until = (Instant::now() + quiet).min(end);
            match timeout_at(until, self.port.read(&mut self.buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err(port_closed("drain")),
                Ok(Ok(n)) => {
                    self.decoder.push(&self.buf[..n]);
                    self.absorb_idle_frames();
                }
                Ok(Err(source)) => {
                    return Err(EngineError::PortLost {
                        command: "drain".into(),
                        source,
                    })
                }
            }
            if Instant::now() >= end {
                break;
            }
        }
        // A partial line now is noise; start the next answer clean.
        self.absorb_idle_frames();
        Ok(())
    }

    /// Re-synchronises: drains, then sends `AT` up to `attempts` times until the modem gives a
    /// final result. Any final result proves the line is alive: some emulators and firmware
    /// answer a bare `AT` with `ERROR` or `+CME ERROR` while working perfectly, and the commands
    /// that follow judge whether the modem can page. Only silence and a lost port fail.
    pub async fn resync(&mut self, attempts: u32, each: Duration) -> Result<(), EngineError> {
        let mut last = None;
        for _ in 0..attempts.max(1) {
            self.drain(Duration::from_millis(50), each).await?;
            match self.execute(&Command::new("AT", each)).await {
                // The `OK` taken may have been a late answer to the command that timed out (a
                // submit the network took after all), and the `AT`'s own then follows: swallow
                // it now, or it would end the next command with nothing read.
                Ok(_) => return self.drain(Duration::from_millis(50), each).await,
                Err(e) if e.is_port_lost() => return Err(e),
                Err(e) if !e.is_timeout() => {
                    debug!(answer = %e, "modem refuses a bare AT but answers: line alive");
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(EngineError::Timeout {
            command: "AT".into(),
            timeout: each,
        }))
    }

    /// Writes raw bytes (e.g. ESC) outside a command.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        self.write(bytes, "raw").await
    }

    async fn read_some(&mut self, label: &str) -> Result<(), EngineError> {
        match self.port.read(&mut self.buf).await {
            Ok(0) => Err(port_closed(label)),
            Ok(n) => {
                self.decoder.push(&self.buf[..n]);
                Ok(())
            }
            Err(source) => Err(EngineError::PortLost {
                command: label.into(),
                source,
            }),
        }
    }

    async fn write(&mut self, bytes: &[u8], label: &str) -> Result<(), EngineError> {
        let r = tokio::time::timeout(WRITE_TIMEOUT, async {
            self.port.write_all(bytes).await?;
            self.port.flush().await
        })
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("write blocked for {WRITE_TIMEOUT:?}"),
            ))
        });
        r.map_err(|source| EngineError::PortLost {
            command: label.into(),
            source,
        })
    }
}

fn port_closed(label: &str) -> EngineError {
    EngineError::PortLost {
        command: label.into(),
        source: io::Error::new(io::ErrorKind::UnexpectedEof, "port closed by the far side"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::at::{CallResult, RegDomain, RegStatus};
    use crate::modem::fake::{FakeModem, Script};

    const T: Duration = Duration::from_secs(5);

    fn setup(script: Script) -> (AtEngine<tokio::io::DuplexStream>, FakeModem) {
        let (a, b) = tokio::io::duplex(4096);
        (AtEngine::new(a), FakeModem::spawn(b, script))
    }

    /// A port that takes no more bytes (nobody reads the other end, as a wedged USB endpoint)
    /// is lost after the write deadline, not waited on forever.
    #[tokio::test(start_paused = true)]
    async fn a_write_that_blocks_is_a_lost_port() {
        let (a, _held) = tokio::io::duplex(8);
        let mut e = AtEngine::new(a);
        let long = format!("AT+CMGS={}", "0".repeat(64));
        let started = tokio::time::Instant::now();
        let r = e
            .execute(&Command::new(long, Duration::from_secs(600)))
            .await;
        assert!(matches!(r, Err(ref err) if err.is_port_lost()), "{r:?}");
        assert!(started.elapsed() <= WRITE_TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn command_with_echo_returns_only_information_lines() {
        let script = Script::new()
            .echo()
            .expect("AT+CSQ", &["+CSQ: 17,99", "OK"])
            .ok("ATE0")
            .expect("AT+CGMM", &["SIMCOM_SIM7600E-H", "OK"]);
        let (mut e, fake) = setup(script);
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CSQ: 17,99"]);
        e.execute(&Command::new("ATE0", T)).await.unwrap();
        let r = e.execute(&Command::new("AT+CGMM", T)).await.unwrap();
        assert_eq!(r.lines, vec!["SIMCOM_SIM7600E-H"]);
        fake.done().await.unwrap();
    }

    /// A text-mode message whose text reads like a result code (`OK`, `ERROR`, `BUSY`) is the
    /// text, not the end of the answer; after an empty message the `OK` still ends it.
    #[tokio::test(start_paused = true)]
    async fn a_text_mode_message_reading_ok_is_its_text_not_the_final_result() {
        let h1 = "+CMGL: 1,\"REC UNREAD\",\"+4915112345678\",,\"26/11/22,10:00:00+04\"";
        let h2 = "+CMGL: 2,\"REC UNREAD\",\"+4915112345678\",,\"26/11/22,10:01:00+04\"";
        let h3 = "+CMGL: 3,\"REC UNREAD\",\"+4915112345678\",,\"26/11/22,10:02:00+04\"";
        let r1 = "+CMGR: \"REC UNREAD\",\"+4915112345678\",,\"26/11/22,10:00:00+04\"";
        let script = Script::new()
            .expect("AT+CMGR=1", &[r1, "OK", "OK"])
            .expect("AT+CMGR=2", &[r1, "OK"])
            .expect(
                "AT+CMGL=\"ALL\"",
                &[h1, "OK", h2, "ERROR", h3, "BUSY", "OK"],
            )
            .expect("AT+CMGR=4", &[r1, "OK", "RING", "+CMTI: \"SM\",5"])
            .expect("AT+CMGR=5", &[r1, "OK", "RING", "OK"])
            .expect("AT+CMGR=3", &[r1, "OK", "OK"])
            .expect("AT+CSQ", &["+CSQ: 17,99", "OK"]);
        let (mut e, fake) = setup(script);
        let read = |i: u32| Command::new(format!("AT+CMGR={i}"), T).with_text_bodies();
        let r = e.execute(&read(1)).await.unwrap();
        assert_eq!(r.lines, vec![r1, "OK"]);
        // An empty message: its blank line is gone, the OK is the final result.
        let r = e.execute(&read(2)).await.unwrap();
        assert_eq!(r.lines, vec![r1]);
        let list = Command::new("AT+CMGL=\"ALL\"", T).with_text_bodies();
        let r = e.execute(&list).await.unwrap();
        assert_eq!(r.lines, vec![h1, "OK", h2, "ERROR", h3, "BUSY"]);
        // URCs right after the held line decide nothing: an empty message stays empty, a text
        // of OK stays its text, and the URCs are kept.
        let r = e.execute(&read(4)).await.unwrap();
        assert_eq!(r.lines, vec![r1]);
        let r = e.execute(&read(5)).await.unwrap();
        assert_eq!(r.lines, vec![r1, "OK"]);
        let urcs: Vec<Urc> = std::iter::from_fn(|| e.pop_unsolicited().map(|u| u.urc)).collect();
        assert_eq!(urcs.len(), 3, "{urcs:?}");
        // Without the flag (PDU mode), the old reading: the first OK ends the command...
        let r = e.execute(&Command::new("AT+CMGR=3", T)).await.unwrap();
        assert_eq!(r.lines, vec![r1]);
        // ...and its stray OK is taken as the next command's answer. With the flag, no stray
        // is left behind, as the first test above showed: AT+CSQ after it would get its own.
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert!(r.lines.is_empty(), "{r:?}");
        drop(fake);
    }

    #[tokio::test(start_paused = true)]
    async fn urcs_inside_a_cmgl_listing_are_separated() {
        let script = Script::new().expect(
            "AT+CMGL=4",
            &[
                "+CMGL: 1,1,,24",
                "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07",
                "+CMTI: \"SM\",3",
                "RING",
                "+CMT: ,24",
                "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07",
                "+CMGL: 2,1,,24",
                "0791",
                "OK",
            ],
        );
        let (mut e, fake) = setup(script);
        let r = e.execute(&Command::new("AT+CMGL=4", T)).await.unwrap();
        assert_eq!(r.lines.len(), 4);
        assert_eq!(r.lines[0], "+CMGL: 1,1,,24");
        assert_eq!(r.lines[2], "+CMGL: 2,1,,24");
        assert_eq!(r.lines[3], "0791");
        let u1 = e.pop_unsolicited().unwrap();
        assert_eq!(
            u1.urc,
            Urc::NewMessage {
                storage: "SM".into(),
                index: 3
            }
        );
        assert_eq!(e.pop_unsolicited().unwrap().urc, Urc::Ring);
        let cmt = e.pop_unsolicited().unwrap();
        assert!(matches!(cmt.urc, Urc::MessageFollows { .. }));
        assert!(cmt.body.unwrap().starts_with("07911326"));
        assert!(e.pop_unsolicited().is_none());
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn query_answer_with_urc_prefix_is_a_response_but_urc_form_elsewhere_is_not() {
        let script = Script::new()
            .expect("AT+CREG?", &["+CREG: 0,1", "OK"])
            .expect("AT+CSQ", &["+CREG: 5", "+CSQ: 20,0", "OK"]);
        let (mut e, fake) = setup(script);
        let r = e.execute(&Command::new("AT+CREG?", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CREG: 0,1"]);
        assert!(e.pop_unsolicited().is_none());
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CSQ: 20,0"]);
        assert_eq!(
            e.pop_unsolicited().unwrap().urc,
            Urc::Registration {
                domain: RegDomain::Circuit,
                status: RegStatus::Roaming
            }
        );
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn submit_waits_for_prompt_then_sends_pdu_and_ctrl_z() {
        let script = Script::new()
            .echo()
            .submit("AT+CMGS=23", &["+CMGS: 42", "OK"]);
        let (mut e, fake) = setup(script);
        let pdu = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37";
        let r = e
            .execute(&Command::submit("AT+CMGS=23", pdu, T))
            .await
            .unwrap();
        assert_eq!(r.lines, vec!["+CMGS: 42"]);
        fake.done().await.unwrap();
        assert_eq!(
            fake.received(),
            vec!["AT+CMGS=23".to_string(), pdu.to_string()]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn submit_timeout_after_prompt_sends_esc() {
        let script = Script::new().submit_silent("AT+CMGS=10").ok("AT");
        let (mut e, fake) = setup(script);
        let err = e
            .execute(&Command::submit(
                "AT+CMGS=10",
                "00AA",
                Duration::from_secs(60),
            ))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(err.is_retryable());
        assert_eq!(err.to_string(), "no answer to AT+CMGS within 60s");
        // The engine is usable again after the abort.
        e.resync(1, T).await.unwrap();
        fake.done().await.unwrap();
        assert_eq!(fake.received()[1..3], ["00AA", "<ESC>"]);
    }

    #[tokio::test(start_paused = true)]
    async fn missing_prompt_times_out_and_aborts_with_esc() {
        let script = Script::new().silent("AT+CMGS=10");
        let (mut e, fake) = setup(script);
        let err = e
            .execute(&Command::submit("AT+CMGS=10", "00AA", T))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cms_500_is_a_retryable_error_with_its_name() {
        let script = Script::new().submit("AT+CMGS=23", &["+CMS ERROR: 500"]);
        let (mut e, fake) = setup(script);
        let err = e
            .execute(&Command::submit("AT+CMGS=23", "0011", T))
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "+CMS ERROR: 500 (unknown error) on AT+CMGS"
        );
        fake.done().await.unwrap();
    }

    /// A bare `ERROR` (a modem that gives no `+CMS ERROR` code) to a submit may pass; to any other
    /// command it is the command refused.
    #[tokio::test(start_paused = true)]
    async fn a_bare_error_is_retryable_for_a_submit_only() {
        let script = Script::new()
            .submit("AT+CMGS=23", &["ERROR"])
            .expect("AT+CSCA?", &["ERROR"]);
        let (mut e, fake) = setup(script);
        let err = e
            .execute(&Command::submit("AT+CMGS=23", "0011", T))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let err = e.execute(&Command::new("AT+CSCA?", T)).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cms_304_and_cme_16_are_not_retryable() {
        let script = Script::new()
            .submit("AT+CMGS=23", &["+CMS ERROR: 304"])
            .expect("AT+CPIN=\"0000\"", &["+CME ERROR: incorrect password"]);
        let (mut e, fake) = setup(script);
        let err = e
            .execute(&Command::submit("AT+CMGS=23", "0011", T))
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        let err = e
            .execute(&Command::secret("AT+CPIN=\"0000\"", "AT+CPIN", T))
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        // The PIN never shows in the error.
        assert_eq!(
            err.to_string(),
            "+CME ERROR: 16 (incorrect password) on AT+CPIN"
        );
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn silent_modem_times_out() {
        let script = Script::new().silent("AT+CSQ");
        let (mut e, fake) = setup(script);
        let err = e
            .execute(&Command::new("AT+CSQ", Duration::from_secs(3)))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn closed_port_is_port_lost() {
        let script = Script::new().close();
        let (mut e, fake) = setup(script);
        fake.done().await.unwrap();
        let err = e.execute(&Command::new("AT", T)).await.unwrap_err();
        assert!(err.is_port_lost(), "{err}");
        assert!(e.next_unsolicited().await.unwrap_err().is_port_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn dial_ends_on_busy_but_no_carrier_elsewhere_is_a_urc() {
        let script = Script::new()
            .expect("ATD+4912345;", &["BUSY"])
            .expect("AT+CSQ", &["+CSQ: 10,0", "NO CARRIER", "OK"]);
        let (mut e, fake) = setup(script);
        let r = e.execute(&Command::dial("ATD+4912345;", T)).await.unwrap();
        assert_eq!(r.call, Some(CallResult::Busy));
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CSQ: 10,0"]);
        assert_eq!(
            e.pop_unsolicited().unwrap().urc,
            Urc::CallEnded(CallResult::NoCarrier)
        );
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn junk_and_nuls_before_an_answer_are_tolerated() {
        let script = Script::new().raw("AT", b"\x00\x00\xff\xfe\r\n\x00\r\nOK\r\n");
        let (mut e, fake) = setup(script);
        let r = e
            .execute(&Command::new("AT", Duration::from_secs(2)))
            .await
            .unwrap();
        // The junk line is kept as text, never taken as the result.
        assert_eq!(r.lines.len(), 1);
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_two_line_cmt_and_cds_urcs() {
        let script = Script::new()
            .send(&["+CMT: ,24", "0791AA", "+CDS: 25"])
            .send_raw(b"\r\n0006")
            .send_raw(b"040D91\r\n");
        let (mut e, fake) = setup(script);
        let u = e.next_unsolicited().await.unwrap();
        assert_eq!(u.body.as_deref(), Some("0791AA"));
        let u = e.next_unsolicited().await.unwrap();
        assert!(matches!(u.urc, Urc::StatusReportFollows { .. }));
        assert_eq!(u.body.as_deref(), Some("0006040D91"));
        fake.done().await.unwrap();
    }

    /// A modem that never shows the prompt is given up on after the prompt's short wait, not
    /// after the submit's minutes; once the prompt came, the submit has its whole timeout.
    #[tokio::test(start_paused = true)]
    async fn the_prompt_has_a_short_wait_and_the_submit_its_whole_timeout() {
        let script = Script::new().expect("AT+CMGS=5", &[]);
        let (mut e, _fake) = setup(script);
        let started = tokio::time::Instant::now();
        let long = Duration::from_secs(120);
        let r = e
            .execute(&Command::submit("AT+CMGS=5", "0011000B91", long))
            .await;
        assert!(matches!(r, Err(ref err) if err.is_timeout()), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(11),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_resync_swallows_the_answer_that_follows_a_late_one() {
        // The timed-out submit's OK arrives as the resync's AT goes out, then the AT's own.
        let script = Script::new()
            .expect("AT", &["OK", "OK"])
            .expect("AT+CSQ", &["+CSQ: 5,0", "OK"]);
        let (mut e, fake) = setup(script);
        e.resync(2, Duration::from_secs(1)).await.unwrap();
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CSQ: 5,0"]);
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn drain_swallows_a_stale_answer_before_the_next_command() {
        // A late OK from a timed-out command must not end the next command.
        let script = Script::new()
            .send(&["OK", "+CMTI: \"SM\",1"])
            .expect("AT+CSQ", &["+CSQ: 5,0", "OK"]);
        let (mut e, fake) = setup(script);
        e.drain(Duration::from_millis(50), Duration::from_secs(1))
            .await
            .unwrap();
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CSQ: 5,0"]);
        assert!(matches!(
            e.pop_unsolicited().unwrap().urc,
            Urc::NewMessage { index: 1, .. }
        ));
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn resync_retries_until_ok() {
        let script = Script::new().silent("AT").ok("AT");
        let (mut e, fake) = setup(script);
        e.resync(3, Duration::from_secs(1)).await.unwrap();
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn resync_takes_any_final_result_as_alive() {
        let script = Script::new()
            .expect("AT", &["ERROR"])
            .expect("AT", &["+CME ERROR: 100"])
            .expect("AT", &["+CMS ERROR: 500"]);
        let (mut e, fake) = setup(script);
        for _ in 0..3 {
            e.resync(1, Duration::from_secs(1)).await.unwrap();
        }
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn resync_fails_on_silence() {
        let script = Script::new().silent("AT").silent("AT");
        let (mut e, fake) = setup(script);
        let err = e.resync(2, Duration::from_secs(1)).await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        fake.done().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn overlong_line_in_a_response_is_dropped() {
        let mut bytes = b"\r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'A', 5000));
        bytes.extend_from_slice(b"\r\n+CSQ: 9,0\r\nOK\r\n");
        let script = Script::new().raw("AT+CSQ", &bytes);
        let (mut e, fake) = setup(script);
        let r = e.execute(&Command::new("AT+CSQ", T)).await.unwrap();
        assert_eq!(r.lines, vec!["+CSQ: 9,0"]);
        fake.done().await.unwrap();
    }
}
