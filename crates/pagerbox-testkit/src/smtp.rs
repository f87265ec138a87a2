//! A small SMTP server for TESTS: it lets unit tests and the end-to-end tests in `tests/` send
//! real email over a real socket on 127.0.0.1 and then check what arrived.
//!
//! It is not a mail server. It speaks the subset of RFC 5321 that an SMTP client such as lettre
//! uses to submit one message — EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN and LOGIN (RFC 4954),
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT — and it keeps every accepted message in
//! memory with its envelope, whether the session was under TLS and which user authenticated.
//! It delivers nothing anywhere.
//!
//! Why a crate of its own and not `#[cfg(test)]` in the library: the end-to-end tests in `tests/`
//! drive the daemon against it, and they cannot see the library's test-only code; as a
//! dev-dependency it stays out of the release binary and its dependency list.
//!
//! Why written here rather than taken from a crate: the embeddable servers on crates.io either do
//! not report whether a session used TLS, offer no implicit TLS, or pull in a second TLS stack;
//! none can inject the faults the notifier must survive. What is needed is small, so it is here:
//! - TLS: none, STARTTLS, or implicit (SMTPS) with a fresh self-signed certificate for
//!   `localhost` and `127.0.0.1` made at start; [`SmtpTestServer::ca_pem`] gives it to the client
//!   to trust (the email config's `ca_file`).
//! - AUTH: when [`SmtpTestOptions::credentials`] is set, AUTH is offered (only after STARTTLS when
//!   STARTTLS is on, as real submission servers do) and MAIL is refused until it succeeds.
//! - Faults ([`Fault`]): a reply such as 421/451/550/554 at the greeting, MAIL, RCPT or end of
//!   DATA, or a stall (the server says nothing more), each consumed once, in order;
//!   [`SmtpTestServer::stop_listening`] makes new connections be refused until
//!   [`SmtpTestServer::resume_listening`].
//!
//! Use it from `#[tokio::test]` directly. From a synchronous test (one that runs the daemon as
//! a child process, say), build a multi-thread `tokio::runtime::Runtime`, call
//! `rt.block_on(SmtpTestServer::start(opts))`, and keep `rt` alive as long as the server: its
//! worker threads serve connections between `block_on` calls.
//!
//! One task owns the listening socket (commands reach it over a bounded channel); each
//! connection is its own task. The record of messages and the fault queue are shared by those
//! tasks behind a mutex private to this module. Dropping the [`SmtpTestServer`] stops every task
//! and closes every connection, stalled ones included.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The name the server gives in its greeting and EHLO reply.
const SERVER_NAME: &str = "smtp-test.localhost";
/// Longest command line accepted (RFC 5321 §4.5.3.1.4 says 512; AUTH lines may be longer).
const MAX_LINE: usize = 4096;
/// Largest message accepted, so a runaway client cannot fill memory.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// TLS on the test server's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestTls {
    /// Plain text only; STARTTLS is not offered.
    None,
    /// Plain text first; STARTTLS offered in EHLO.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// An AUTH mechanism the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestAuthMechanism {
    /// RFC 4616: one base64 line `authzid NUL user NUL password`.
    Plain,
    /// The de-facto LOGIN exchange: user and password in two base64 lines.
    Login,
}

impl TestAuthMechanism {
    fn as_str(self) -> &'static str {
        match self {
            TestAuthMechanism::Plain => "PLAIN",
            TestAuthMechanism::Login => "LOGIN",
        }
    }
}

/// How to start a [`SmtpTestServer`].
#[derive(Debug, Clone)]
pub struct SmtpTestOptions {
    /// TLS mode of the port.
    pub tls: TestTls,
    /// The one user and password accepted. `None`: AUTH is not offered and not required.
    pub credentials: Option<(String, String)>,
    /// The mechanisms offered when `credentials` is set, in the order advertised.
    pub auth_mechanisms: Vec<TestAuthMechanism>,
}

impl Default for SmtpTestOptions {
    /// Plain text, no AUTH, PLAIN and LOGIN offered if credentials are added.
    fn default() -> Self {
        SmtpTestOptions {
            tls: TestTls::None,
            credentials: None,
            auth_mechanisms: vec![TestAuthMechanism::Plain, TestAuthMechanism::Login],
        }
    }
}

/// A point of the SMTP conversation where a [`Fault`] can strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Instead of the `220` greeting, when a connection is accepted.
    Greeting,
    /// In answer to `MAIL FROM`.
    Mail,
    /// In answer to `RCPT TO`.
    Rcpt,
    /// In answer to the end of the message data (the final `.`).
    DataEnd,
}

/// A misbehaviour injected into the next session that reaches `stage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this reply (e.g. `451 4.3.0 Try later`) instead of the success reply. With
    /// code 421, or at the greeting, the server closes the connection after the reply, as RFC
    /// 5321 §3.8 has it. At [`Stage::DataEnd`] the message is not recorded.
    Reply {
        /// Where the reply replaces the normal one.
        stage: Stage,
        /// The three-digit reply code.
        code: u16,
        /// What follows the code on the reply line.
        text: String,
    },
    /// Say nothing more: keep the connection open and silent until the server is dropped.
    Stall {
        /// Where the server falls silent.
        stage: Stage,
    },
}

impl Fault {
    /// A reply fault; `text` is what follows the code (an enhanced status code and words).
    pub fn reply(stage: Stage, code: u16, text: impl Into<String>) -> Fault {
        Fault::Reply {
            stage,
            code,
            text: text.into(),
        }
    }

    /// A stall at `stage`.
    pub fn stall(stage: Stage) -> Fault {
        Fault::Stall { stage }
    }

    fn stage(&self) -> Stage {
        match self {
            Fault::Reply { stage, .. } | Fault::Stall { stage } => *stage,
        }
    }
}

/// One message the server accepted (answered `250` to its data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The name given in EHLO/HELO (the last one, after STARTTLS).
    pub helo: String,
    /// The reverse path from `MAIL FROM:<...>`, without the angle brackets.
    pub mail_from: String,
    /// The forward paths from each accepted `RCPT TO:<...>`, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA: dot-unstuffed, lines ending in CRLF, without the final
    /// `.` line.
    pub data: Vec<u8>,
    /// True if the session was under TLS (STARTTLS or implicit) when the message was sent.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub auth_user: Option<String>,
    /// The id in the `250 2.0.0 Ok: queued as <id>` reply.
    pub queue_id: String,
}

impl ReceivedMessage {
    /// The data as text (lossy), for assertions in tests.
    pub fn data_text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A running test SMTP server on 127.0.0.1 with an OS-chosen port.
///
/// Invariant: while listening, `addr()` accepts connections; after `stop_listening` returns,
/// connecting to it is refused until `resume_listening` returns. Dropping it stops everything.
pub struct SmtpTestServer {
    addr: SocketAddr,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    listener: mpsc::Sender<ListenerCommand>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for SmtpTestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpTestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SmtpTestServer {
    /// Binds 127.0.0.1:0, makes a certificate if TLS is on, and starts serving on the current
    /// tokio runtime. Fails only if the socket cannot be bound or the certificate not made.
    pub async fn start(opts: SmtpTestOptions) -> io::Result<SmtpTestServer> {
        let (acceptor, ca_pem) = match opts.tls {
            TestTls::None => (None, None),
            TestTls::StartTls | TestTls::Implicit => {
                let (acceptor, pem) = self_signed_acceptor()?;
                (Some(acceptor), Some(pem))
            }
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared::default());
        let ctx = Arc::new(SessionContext {
            opts,
            acceptor,
            shared: Arc::clone(&shared),
            cancel: cancel.clone(),
        });
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(run_listener(listener, addr, rx, ctx));
        Ok(SmtpTestServer {
            addr,
            ca_pem,
            shared,
            listener: tx,
            cancel,
        })
    }

    /// The address to connect to (127.0.0.1 and the port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server certificate in PEM, to be trusted by the client (write it to `ca_file`).
    /// `None` when TLS is off.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Queues `fault` for the next session that reaches its stage. Faults are consumed once each,
    /// in the order queued; a fault for another stage waits at the head of the queue.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Queues the same fault `n` times (e.g. the next three messages get `451`).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut state = self.shared.lock();
        for _ in 0..n {
            state.faults.push_back(fault.clone());
        }
    }

    /// Drops every fault not yet consumed.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Closes the listening socket: new connections are refused (ECONNREFUSED) from when this
    /// returns. Sessions already open go on.
    pub async fn stop_listening(&self) {
        let (tx, rx) = oneshot::channel();
        if self.listener.send(ListenerCommand::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Listens again on the same address. Fails if the port was taken meanwhile.
    pub async fn resume_listening(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.listener
            .send(ListenerCommand::Resume(tx))
            .await
            .map_err(|_| io::Error::other("test SMTP server has stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("test SMTP server has stopped"))?
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().messages.clone()
    }

    /// How many connections were accepted so far (refused ones are not counted).
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Waits until at least `n` messages were accepted and returns all of them; `None` if that
    /// does not happen within `timeout`.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<ReceivedMessage>> {
        let wait = async {
            loop {
                let notified = self.shared.arrived.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let state = self.shared.lock();
                    if state.messages.len() >= n {
                        return state.messages.clone();
                    }
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

/// State shared by the connection tasks of one server.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken each time a message is recorded.
    arrived: Notify,
}

#[derive(Default)]
struct State {
    messages: Vec<ReceivedMessage>,
    faults: VecDeque<Fault>,
    connections: usize,
    next_queue_id: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a session task must not hide the messages from the test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the head fault if it is for `stage`.
    fn take_fault(&self, stage: Stage) -> Option<Fault> {
        let mut state = self.lock();
        if state.faults.front().map(Fault::stage) == Some(stage) {
            state.faults.pop_front()
        } else {
            None
        }
    }
}

enum ListenerCommand {
    Stop(oneshot::Sender<()>),
    Resume(oneshot::Sender<io::Result<()>>),
}

struct SessionContext {
    opts: SmtpTestOptions,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

/// Makes a self-signed certificate for `localhost` and `127.0.0.1` and a TLS acceptor with it,
/// on the ring provider (the one lettre uses).
fn self_signed_acceptor() -> io::Result<(TlsAcceptor, String)> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(io::Error::other)?;
    let pem = certified.cert.pem();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(vec![cert], key.into())
    .map_err(io::Error::other)?;
    Ok((TlsAcceptor::from(Arc::new(config)), pem))
}

/// Owns the listening socket: accepts connections and obeys stop/resume.
async fn run_listener(
    listener: TcpListener,
    addr: SocketAddr,
    mut commands: mpsc::Receiver<ListenerCommand>,
    ctx: Arc<SessionContext>,
) {
    let mut listener = Some(listener);
    loop {
        let accepted = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            command = commands.recv() => match command {
                None => return,
                Some(ListenerCommand::Stop(reply)) => {
                    listener = None;
                    let _ = reply.send(());
                }
                Some(ListenerCommand::Resume(reply)) => {
                    if listener.is_none() {
                        match TcpListener::bind(addr).await {
                            Ok(l) => {
                                listener = Some(l);
                                let _ = reply.send(Ok(()));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    } else {
                        let _ = reply.send(Ok(()));
                    }
                }
            },
            accepted = accepted => {
                let Ok((stream, _peer)) = accepted else {
                    // E.g. out of file descriptors: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                ctx.shared.lock().connections += 1;
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    let cancel = ctx.cancel.clone();
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = serve_connection(stream, &ctx) => {}
                    }
                });
            }
        }
    }
}

/// Runs one connection to its end, upgrading to TLS when asked.
async fn serve_connection(tcp: TcpStream, ctx: &SessionContext) -> io::Result<()> {
    let mut session = Session::default();
    match (ctx.opts.tls, &ctx.acceptor) {
        (TestTls::Implicit, Some(acceptor)) => {
            let tls = acceptor.accept(tcp).await?;
            session.tls = true;
            run_session(tls, &mut session, ctx, true).await?;
        }
        (_, acceptor) => {
            if let Some(tcp) = run_session(tcp, &mut session, ctx, true).await? {
                let Some(acceptor) = acceptor else {
                    return Ok(());
                };
                let tls = acceptor.accept(tcp).await?;
                // RFC 3207 §4.2: the client starts over with EHLO; nothing from before is kept.
                session = Session {
                    tls: true,
                    ..Session::default()
                };
                run_session(tls, &mut session, ctx, false).await?;
            }
        }
    }
    Ok(())
}

/// What one SMTP session knows.
#[derive(Default)]
struct Session {
    tls: bool,
    helo: Option<String>,
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }
}

/// What a fault check decided.
enum FaultAction {
    /// No fault: go on normally.
    Proceed,
    /// A reply was sent instead; `close` if the connection must end.
    Replied { close: bool },
    /// Stall forever (until the server is dropped).
    Stall,
}

/// Runs commands on `stream` until QUIT, EOF, or STARTTLS. Returns the stream when the client
/// asked for STARTTLS and got `220`, so the caller can wrap it in TLS.
async fn run_session<S>(
    stream: S,
    session: &mut Session,
    ctx: &SessionContext,
    greet: bool,
) -> io::Result<Option<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    if greet {
        match check_fault(&mut io, ctx, Stage::Greeting).await? {
            FaultAction::Proceed => {
                reply(
                    &mut io,
                    &format!("220 {SERVER_NAME} ESMTP pagerbox test server"),
                )
                .await?
            }
            FaultAction::Replied { .. } => return Ok(None),
            FaultAction::Stall => return stall().await,
        }
    }
    loop {
        let Some(line) = read_line(&mut io).await? else {
            return Ok(None);
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                session.helo = Some(arg);
                session.reset_transaction();
                let mut lines = vec![SERVER_NAME.to_string(), "8BITMIME".into()];
                lines.push("SMTPUTF8".into());
                lines.push(format!("SIZE {MAX_MESSAGE}"));
                if ctx.opts.tls == TestTls::StartTls && !session.tls {
                    lines.push("STARTTLS".into());
                }
                if auth_offered(session, ctx) {
                    let mechs: Vec<&str> = ctx
                        .opts
                        .auth_mechanisms
                        .iter()
                        .map(|m| m.as_str())
                        .collect();
                    lines.push(format!("AUTH {}", mechs.join(" ")));
                }
                multiline_reply(&mut io, 250, &lines).await?;
            }
            "HELO" => {
                session.helo = Some(arg);
                session.reset_transaction();
                reply(&mut io, &format!("250 {SERVER_NAME}")).await?;
            }
            "STARTTLS" => {
                if ctx.opts.tls == TestTls::StartTls && !session.tls {
                    reply(&mut io, "220 2.0.0 Ready to start TLS").await?;
                    // The client waits for this reply before its handshake, so nothing is
                    // left in the read buffer.
                    return Ok(Some(io.into_inner()));
                }
                reply(&mut io, "502 5.5.1 STARTTLS not available").await?;
            }
            "AUTH" => {
                if !auth_offered(session, ctx) {
                    reply(&mut io, "503 5.5.1 AUTH not available").await?;
                } else if session.auth_user.is_some() {
                    reply(&mut io, "503 5.5.1 Already authenticated").await?;
                } else {
                    authenticate(&mut io, session, ctx, &arg).await?;
                }
            }
            "MAIL" => {
                if session.helo.is_none() {
                    reply(&mut io, "503 5.5.1 Say EHLO first").await?;
                } else if ctx.opts.credentials.is_some() && session.auth_user.is_none() {
                    reply(&mut io, "530 5.7.0 Authentication required").await?;
                } else if session.mail_from.is_some() {
                    reply(&mut io, "503 5.5.1 Nested MAIL command").await?;
                } else if let Some(path) = path_argument(&arg, "FROM:") {
                    match check_fault(&mut io, ctx, Stage::Mail).await? {
                        FaultAction::Proceed => {
                            session.mail_from = Some(path);
                            reply(&mut io, "250 2.1.0 Ok").await?;
                        }
                        FaultAction::Replied { close: true } => return Ok(None),
                        FaultAction::Replied { close: false } => {}
                        FaultAction::Stall => return stall().await,
                    }
                } else {
                    reply(&mut io, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                }
            }
            "RCPT" => {
                if session.mail_from.is_none() {
                    reply(&mut io, "503 5.5.1 Need MAIL command").await?;
                } else if let Some(path) = path_argument(&arg, "TO:") {
                    match check_fault(&mut io, ctx, Stage::Rcpt).await? {
                        FaultAction::Proceed => {
                            session.rcpt_to.push(path);
                            reply(&mut io, "250 2.1.5 Ok").await?;
                        }
                        FaultAction::Replied { close: true } => return Ok(None),
                        FaultAction::Replied { close: false } => {}
                        FaultAction::Stall => return stall().await,
                    }
                } else {
                    reply(&mut io, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
                }
            }
            "DATA" => {
                if session.rcpt_to.is_empty() {
                    reply(&mut io, "503 5.5.1 Need RCPT command").await?;
                    continue;
                }
                reply(&mut io, "354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut io).await? else {
                    return Ok(None);
                };
                let close = match check_fault(&mut io, ctx, Stage::DataEnd).await? {
                    FaultAction::Proceed => {
                        let id = record(session, ctx, data);
                        reply(&mut io, &format!("250 2.0.0 Ok: queued as {id}")).await?;
                        false
                    }
                    FaultAction::Replied { close } => close,
                    FaultAction::Stall => return stall().await,
                };
                session.reset_transaction();
                if close {
                    return Ok(None);
                }
            }
            "RSET" => {
                session.reset_transaction();
                reply(&mut io, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut io, "250 2.0.0 Ok").await?,
            "VRFY" => reply(&mut io, "252 2.0.0 Cannot VRFY user").await?,
            "QUIT" => {
                reply(&mut io, "221 2.0.0 Bye").await?;
                return Ok(None);
            }
            _ => reply(&mut io, "500 5.5.2 Command not recognized").await?,
        }
    }
}

/// AUTH is offered when credentials are configured and, on a STARTTLS port, only under TLS.
fn auth_offered(session: &Session, ctx: &SessionContext) -> bool {
    ctx.opts.credentials.is_some() && (ctx.opts.tls != TestTls::StartTls || session.tls)
}

/// Runs the AUTH exchange for the mechanism in `arg` and replies 235 or 535.
async fn authenticate<S>(
    io: &mut BufReader<S>,
    session: &mut Session,
    ctx: &SessionContext,
    arg: &str,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut words = arg.split_whitespace();
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_string);
    let offered = |m: TestAuthMechanism| ctx.opts.auth_mechanisms.contains(&m);
    let (user, password) = match mechanism.as_str() {
        "PLAIN" if offered(TestAuthMechanism::Plain) => {
            let response = match initial {
                Some(r) => r,
                None => match challenge(io, "").await? {
                    Some(r) => r,
                    None => return Ok(()),
                },
            };
            let decoded = decode_base64(&response).unwrap_or_default();
            let mut parts = decoded.split('\0');
            let _authzid = parts.next();
            let user = parts.next().unwrap_or("").to_string();
            let password = parts.next().unwrap_or("").to_string();
            (user, password)
        }
        "LOGIN" if offered(TestAuthMechanism::Login) => {
            let user = match initial {
                Some(r) => r,
                None => match challenge(io, "VXNlcm5hbWU6").await? {
                    Some(r) => r,
                    None => return Ok(()),
                },
            };
            let Some(password) = challenge(io, "UGFzc3dvcmQ6").await? else {
                return Ok(());
            };
            (
                decode_base64(&user).unwrap_or_default(),
                decode_base64(&password).unwrap_or_default(),
            )
        }
        _ => {
            return reply(io, "504 5.5.4 Unrecognized authentication type").await;
        }
    };
    let accepted = ctx
        .opts
        .credentials
        .as_ref()
        .is_some_and(|(u, p)| *u == user && *p == password);
    if accepted {
        session.auth_user = Some(user);
        reply(io, "235 2.7.0 Authentication successful").await
    } else {
        reply(io, "535 5.7.8 Authentication credentials invalid").await
    }
}

/// Sends a `334` challenge and reads the answer. `None` when the client cancelled with `*` (a
/// `501` has then been sent) or closed the connection.
async fn challenge<S>(io: &mut BufReader<S>, text: &str) -> io::Result<Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    reply(io, &format!("334 {text}")).await?;
    match read_line(io).await? {
        Some(line) if line.trim() == "*" => {
            reply(io, "501 5.7.0 Authentication cancelled").await?;
            Ok(None)
        }
        Some(line) => Ok(Some(line.trim().to_string())),
        None => Ok(None),
    }
}

fn decode_base64(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Reads `FROM:<path> params` / `TO:<path> params` and returns the path without brackets.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}

/// Applies the head fault if it is for `stage`.
async fn check_fault<S>(
    io: &mut BufReader<S>,
    ctx: &SessionContext,
    stage: Stage,
) -> io::Result<FaultAction>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match ctx.shared.take_fault(stage) {
        None => Ok(FaultAction::Proceed),
        Some(Fault::Stall { .. }) => Ok(FaultAction::Stall),
        Some(Fault::Reply { code, text, .. }) => {
            reply(io, &format!("{code} {text}")).await?;
            Ok(FaultAction::Replied {
                close: code == 421 || stage == Stage::Greeting,
            })
        }
    }
}

/// Keeps the connection open and silent; the connection task is cancelled when the server drops.
async fn stall<T>() -> io::Result<T> {
    std::future::pending().await
}

/// Records an accepted message and returns its queue id.
fn record(session: &Session, ctx: &SessionContext, data: Vec<u8>) -> String {
    let mut state = ctx.shared.lock();
    state.next_queue_id += 1;
    let queue_id = format!("TEST{:06}", state.next_queue_id);
    state.messages.push(ReceivedMessage {
        helo: session.helo.clone().unwrap_or_default(),
        mail_from: session.mail_from.clone().unwrap_or_default(),
        rcpt_to: session.rcpt_to.clone(),
        data,
        tls: session.tls,
        auth_user: session.auth_user.clone(),
        queue_id: queue_id.clone(),
    });
    drop(state);
    ctx.shared.arrived.notify_waiters();
    queue_id
}

/// Reads one line without its CRLF. `None` at EOF. Errors on a line longer than [`MAX_LINE`].
async fn read_line<S>(io: &mut BufReader<S>) -> io::Result<Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let n = (&mut *io)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n >= MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        // EOF in the middle of a line: the client went away.
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads message data up to the `.` line, undoing dot-stuffing (RFC 5321 §4.5.2). `None` at EOF.
async fn read_data<S>(io: &mut BufReader<S>) -> io::Result<Option<Vec<u8>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = io.read_until(b'\n', &mut line).await?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(data));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message too big",
            ));
        }
        data.extend_from_slice(line);
    }
}

async fn reply<S>(io: &mut BufReader<S>, line: &str) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = io.get_mut();
    stream.write_all(line.as_bytes()).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await
}

/// Sends `code-line` for all but the last line and `code line` for the last (RFC 5321 §4.2.1).
async fn multiline_reply<S>(io: &mut BufReader<S>, code: u16, lines: &[String]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        text.push_str(&format!("{code}{sep}{line}\r\n"));
    }
    let stream = io.get_mut();
    stream.write_all(text.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw client: sends lines and reads replies, so the server is tested without lettre.
    struct RawClient {
        io: BufReader<TcpStream>,
    }

    impl RawClient {
        async fn connect(addr: SocketAddr) -> RawClient {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            RawClient {
                io: BufReader::new(tcp),
            }
        }

        /// Reads one whole reply (all its lines) and returns it joined with `\n`.
        async fn read_reply(&mut self) -> String {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                let n = self.io.read_line(&mut line).await.expect("read");
                assert!(n > 0, "server closed the connection; got {lines:?}");
                let line = line.trim_end().to_string();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return lines.join("\n");
                }
            }
        }

        async fn send(&mut self, line: &str) -> String {
            self.io
                .get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .expect("write");
            self.read_reply().await
        }
    }

    #[tokio::test]
    async fn records_a_message_with_dot_unstuffing() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        let mut c = RawClient::connect(server.addr()).await;
        assert!(c.read_reply().await.starts_with("220 "));
        let ehlo = c.send("EHLO client.test").await;
        assert!(ehlo.contains("250-8BITMIME"), "{ehlo}");
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        assert!(c
            .send("MAIL FROM:<a@x.test> BODY=8BITMIME")
            .await
            .starts_with("250"));
        assert!(c.send("RCPT TO:<b@y.test>").await.starts_with("250"));
        assert!(c.send("DATA").await.starts_with("354"));
        let end = c
            .send("Subject: hi\r\n\r\n..leading dot\r\nline two\r\n.")
            .await;
        assert!(end.starts_with("250 2.0.0 Ok: queued as TEST"), "{end}");
        assert!(c.send("QUIT").await.starts_with("221"));

        let messages = server.messages();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m.helo, "client.test");
        assert_eq!(m.mail_from, "a@x.test");
        assert_eq!(m.rcpt_to, vec!["b@y.test".to_string()]);
        assert_eq!(
            m.data_text(),
            "Subject: hi\r\n\r\n.leading dot\r\nline two\r\n"
        );
        assert!(!m.tls);
        assert_eq!(m.auth_user, None);
        assert!(end.ends_with(&m.queue_id));
    }

    #[tokio::test]
    async fn requires_auth_and_checks_plain_and_login() {
        let server = SmtpTestServer::start(SmtpTestOptions {
            credentials: Some(("pager".into(), "s3cret".into())),
            ..SmtpTestOptions::default()
        })
        .await
        .unwrap();
        let mut c = RawClient::connect(server.addr()).await;
        c.read_reply().await;
        let ehlo = c.send("EHLO c").await;
        assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
        assert!(c.send("MAIL FROM:<a@x>").await.starts_with("530"));
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let wrong = c
            .send(&format!("AUTH PLAIN {}", b64("\0pager\0nope")))
            .await;
        assert!(wrong.starts_with("535 5.7.8"), "{wrong}");
        assert!(c.send("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
        assert!(c.send(&b64("pager")).await.starts_with("334 UGFzc3dvcmQ6"));
        assert!(c.send(&b64("s3cret")).await.starts_with("235"));
        assert!(c.send("MAIL FROM:<a@x>").await.starts_with("250"));
    }

    #[tokio::test]
    async fn faults_are_consumed_once_at_their_stage() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        server.push_fault(Fault::reply(Stage::Rcpt, 550, "5.1.1 No such user"));
        server.push_fault(Fault::reply(Stage::Greeting, 421, "4.3.2 Busy"));

        let mut c = RawClient::connect(server.addr()).await;
        // The RCPT fault is at the head, so this greeting is normal.
        assert!(c.read_reply().await.starts_with("220"));
        c.send("EHLO c").await;
        c.send("MAIL FROM:<a@x>").await;
        assert_eq!(c.send("RCPT TO:<b@y>").await, "550 5.1.1 No such user");
        assert!(c.send("RCPT TO:<b@y>").await.starts_with("250"));

        let mut c2 = RawClient::connect(server.addr()).await;
        assert_eq!(c2.read_reply().await, "421 4.3.2 Busy");
        let mut rest = Vec::new();
        c2.io.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "connection closed after 421");
    }

    #[tokio::test]
    async fn stop_listening_refuses_and_resume_accepts() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        server.stop_listening().await;
        let err = TcpStream::connect(server.addr()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        server.resume_listening().await.unwrap();
        let mut c = RawClient::connect(server.addr()).await;
        assert!(c.read_reply().await.starts_with("220"));
        assert_eq!(server.connections(), 1);
    }

    #[test]
    fn path_argument_reads_brackets_and_ignores_parameters() {
        assert_eq!(
            path_argument("FROM:<a@b> SIZE=10", "FROM:"),
            Some("a@b".to_string())
        );
        assert_eq!(path_argument("to: <c@d>", "TO:"), Some("c@d".to_string()));
        assert_eq!(path_argument("FROM:<>", "FROM:"), Some(String::new()));
        assert_eq!(path_argument("FROM:a@b", "FROM:"), None);
        assert_eq!(path_argument("TO:<a@b>", "FROM:"), None);
    }
}
