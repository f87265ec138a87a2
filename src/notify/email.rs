//! The email channel: turns an incident into an email and hands it to an SMTP relay or the local
//! `sendmail`, and says whether a failure is worth retrying.
//!
//! Email is the fallback when the modem cannot page, so it must fail clearly and never hang:
//! - [`EmailSender`] is built once from `[email]`. It reads the password file and the extra CA
//!   file at build time, so a bad path fails at start-up (naming the file), not at 3 a.m.
//! - Each [`EmailSender::send`] opens its own connection (no pool, see Cargo.toml) and the whole
//!   exchange — connect, TLS, AUTH, MAIL, RCPT, DATA — must finish within `[email] timeout`.
//!   lettre bounds only the TCP connect by itself; a relay that accepts and then goes silent
//!   would otherwise hold the email sender forever.
//! - [`EmailError::is_retryable`] sorts failures the way RFC 5321 does: 4xx replies, refused or
//!   timed-out connections and TLS failures are worth another try; 5xx replies (bad recipient,
//!   bad password) and local configuration problems are not.
//! - [`render_incident_email`] is a pure function: incident + timeline -> subject, plain text and
//!   HTML. Every piece of alert text is escaped in the HTML part, and only `http`, `https` and
//!   `mailto` links become clickable.
//!
//! This module does not decide when to send, to whom, or what happens after a failure: that is
//! the outbox in [`crate::notify`]. It never logs addresses, bodies or secrets.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::AddressError;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::sendmail;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{self};
use lettre::{AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;

use crate::config::{read_secret, EmailConfig, EmailTransport, SmtpTls};
use crate::incident::{Incident, Status, TimelineEvent};

/// One email to send. Plain data; build it with [`render_incident_email`] or by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// One recipient, as `addr@example.org` or `Name <addr@example.org>`.
    pub to: String,
    /// The subject, any Unicode; line breaks are replaced by spaces when sent.
    pub subject: String,
    /// The plain-text body; always sent.
    pub text: String,
    /// An HTML alternative of the same content. When present the email is
    /// `multipart/alternative` with the text part first.
    pub html: Option<String>,
}

/// What the relay said when it accepted a message; the outbox stores it as the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReceipt {
    /// The final reply, e.g. `250 2.0.0 Ok: queued as 4F2A1C`. For sendmail: `sendmail: accepted`.
    pub response: String,
}

/// A failure to build the sender or to send one email.
///
/// Variants carry the file, server or address involved and keep the lettre error as the source.
/// None of them can hold the SMTP password: it is only ever inside lettre's `Credentials`, whose
/// `Debug` hides it.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// `password_file` could not be read (or was empty).
    #[error("cannot read the SMTP password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `ca_file` could not be read.
    #[error("cannot read the SMTP CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `ca_file` holds no usable PEM certificate.
    #[error("the SMTP CA file {path} holds no usable PEM certificate: {reason}")]
    CaInvalid { path: PathBuf, reason: String },
    /// The `[email]` settings do not fit together.
    #[error("email settings: {reason}")]
    Config { reason: String },
    /// `from` is not an email address.
    #[error("email `from` {address:?} is not a valid address: {source}")]
    FromAddress {
        address: String,
        #[source]
        source: AddressError,
    },
    /// `transport = "sendmail"` but no sendmail program was found.
    #[error("email transport is sendmail but no sendmail program was found in {searched}")]
    SendmailNotFound { searched: String },
    /// The recipient of one message is not an email address.
    #[error("recipient {address:?} is not a valid email address: {source}")]
    Recipient {
        address: String,
        #[source]
        source: AddressError,
    },
    /// The message could not be assembled.
    #[error("cannot build the email: {source}")]
    Message {
        #[source]
        source: lettre::error::Error,
    },
    /// The relay answered with a 4xx or 5xx reply (at any step, AUTH included).
    #[error("SMTP server {server} replied {code} {response}")]
    Rejected {
        server: String,
        /// The three-digit reply code, e.g. 451 or 550.
        code: u16,
        /// The reply text after the code, e.g. `5.1.1 No such user`.
        response: String,
        #[source]
        source: smtp::Error,
    },
    /// The TCP connection could not be made or broke (refused, unreachable, reset).
    #[error("cannot talk to SMTP server {server}: {source}")]
    Connection {
        server: String,
        #[source]
        source: smtp::Error,
    },
    /// The TLS handshake failed (certificate not trusted, name mismatch, protocol error).
    #[error("TLS with SMTP server {server} failed: {source}")]
    Tls {
        server: String,
        #[source]
        source: smtp::Error,
    },
    /// The whole exchange did not finish within `[email] timeout`.
    #[error("SMTP server {server} did not finish within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    /// The relay cannot serve this client as configured: STARTTLS or AUTH not offered, or
    /// lettre refused the exchange for another local reason.
    #[error("SMTP server {server} cannot take mail from this client: {source}")]
    Unsupported {
        server: String,
        #[source]
        source: smtp::Error,
    },
    /// The relay sent something that is not SMTP.
    #[error("SMTP server {server} sent a malformed reply: {source}")]
    Protocol {
        server: String,
        #[source]
        source: smtp::Error,
    },
    /// The connection check (NOOP) got no good answer.
    #[error("SMTP server {server} did not answer NOOP")]
    NotConnected { server: String },
    /// The sendmail program failed, or exited non-zero (its stderr is in the source).
    #[error("sendmail {command} failed: {source}")]
    Sendmail {
        command: PathBuf,
        #[source]
        source: sendmail::Error,
    },
}

impl EmailError {
    /// True when sending the same message later may succeed without anyone changing it:
    /// 4xx replies, refused/broken/timed-out connections, TLS handshake failures, malformed
    /// replies, sendmail failures (sendmail queues locally, so its failures are local and
    /// usually passing). False for 5xx replies (bad recipient, 535 bad password), a bad
    /// recipient address, and configuration problems.
    pub fn is_retryable(&self) -> bool {
        match self {
            EmailError::Rejected { code, .. } => (400..500).contains(code),
            EmailError::Connection { .. }
            | EmailError::Tls { .. }
            | EmailError::Timeout { .. }
            | EmailError::Protocol { .. }
            | EmailError::NotConnected { .. }
            | EmailError::Sendmail { .. } => true,
            EmailError::PasswordFile { .. }
            | EmailError::CaFile { .. }
            | EmailError::CaInvalid { .. }
            | EmailError::Config { .. }
            | EmailError::FromAddress { .. }
            | EmailError::SendmailNotFound { .. }
            | EmailError::Recipient { .. }
            | EmailError::Message { .. }
            | EmailError::Unsupported { .. } => false,
        }
    }

    /// The SMTP reply code when the relay answered with one.
    pub fn code(&self) -> Option<u16> {
        match self {
            EmailError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Sorts a lettre SMTP error into a variant.
    fn from_smtp(server: &str, source: smtp::Error) -> EmailError {
        let server = server.to_string();
        if let Some(code) = source.status() {
            let response = std::error::Error::source(&source)
                .map(|s| s.to_string())
                .unwrap_or_default();
            return EmailError::Rejected {
                server,
                code: u16::from(code),
                response,
                source,
            };
        }
        if source.is_tls() || has_rustls_cause(&source) {
            return EmailError::Tls { server, source };
        }
        if source.is_client() {
            return EmailError::Unsupported { server, source };
        }
        if source.is_response() {
            return EmailError::Protocol { server, source };
        }
        EmailError::Connection { server, source }
    }
}

/// True if a `rustls::Error` is somewhere in the chain (lettre reports handshake failures as
/// connection errors wrapping an `io::Error` that wraps the rustls error).
fn has_rustls_cause(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// Sends email as `[email]` says. Built once; cheap to clone (the settings are shared, not the
/// connections); `send` may run concurrently, each call on its own connection.
#[derive(Clone)]
pub struct EmailSender {
    transport: Transport,
    from: Mailbox,
    timeout: Duration,
    /// `host:port` or the sendmail path, for error messages.
    server: String,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// The sendmail program; its lettre transport is made per send (it holds only the path,
    /// and is not `Clone`).
    Sendmail {
        command: PathBuf,
    },
}

impl fmt::Debug for EmailSender {
    /// Shows where mail goes, never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Sendmail { .. } => "sendmail",
        };
        f.debug_struct("EmailSender")
            .field("transport", &kind)
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where sendmail is looked for after `PATH`.
const SENDMAIL_DIRS: [&str; 2] = ["/usr/sbin", "/usr/lib"];

impl EmailSender {
    /// Builds the sender from `[email]`: parses `from`, reads `password_file` and `ca_file`,
    /// and for sendmail finds the program. Fails with an error naming the bad file or setting;
    /// such errors are never retryable. Does not connect (see [`EmailSender::check`]).
    ///
    /// Refuses a username/password over `tls = "none"` unless the host is loopback, so the
    /// password is never sent in clear over a network.
    pub fn new(cfg: &EmailConfig) -> Result<EmailSender, EmailError> {
        Self::build(cfg, None)
    }

    /// [`EmailSender::new`] with an explicit sendmail program (tests use a script).
    fn build(
        cfg: &EmailConfig,
        sendmail_command: Option<&Path>,
    ) -> Result<EmailSender, EmailError> {
        let from: Mailbox = cfg.from.parse().map_err(|source| EmailError::FromAddress {
            address: cfg.from.clone(),
            source,
        })?;
        let timeout = cfg.timeout;
        match cfg.transport {
            EmailTransport::Sendmail => {
                let command = match sendmail_command {
                    Some(c) => c.to_path_buf(),
                    None => find_sendmail()?,
                };
                Ok(EmailSender {
                    transport: Transport::Sendmail {
                        command: command.clone(),
                    },
                    from,
                    timeout,
                    server: command.display().to_string(),
                })
            }
            EmailTransport::Smtp => {
                let server = format!("{}:{}", cfg.host, cfg.port);
                let credentials = credentials(cfg)?;
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
                        .port(cfg.port)
                        .timeout(Some(cfg.timeout));
                builder = match cfg.tls {
                    SmtpTls::StartTls => builder.tls(Tls::Required(tls_parameters(cfg)?)),
                    SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls_parameters(cfg)?)),
                    SmtpTls::None => builder.tls(Tls::None),
                };
                if let Some(credentials) = credentials {
                    builder = builder.credentials(credentials);
                }
                Ok(EmailSender {
                    transport: Transport::Smtp(builder.build()),
                    from,
                    timeout,
                    server,
                })
            }
        }
    }

    /// Sends one message and returns the relay's final reply.
    ///
    /// The whole exchange is bounded by `[email] timeout`; on timeout the connection is dropped
    /// and [`EmailError::Timeout`] (retryable) returned. A timeout after the relay queued the
    /// message but before its reply arrived means the message may be sent twice on retry:
    /// paging prefers a duplicate to a loss. With sendmail, a timed-out program is left to
    /// finish on its own (tokio reaps it); its message may still go out.
    pub async fn send(&self, msg: &EmailMessage) -> Result<SmtpReceipt, EmailError> {
        let message = self.message(msg)?;
        let timed_out = || EmailError::Timeout {
            server: self.server.clone(),
            timeout: self.timeout,
        };
        match &self.transport {
            Transport::Smtp(transport) => {
                let response = tokio::time::timeout(self.timeout, transport.send(message))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| EmailError::from_smtp(&self.server, e))?;
                let text: Vec<&str> = response.message().collect();
                tracing::debug!(server = %self.server, code = %response.code(), "email accepted");
                Ok(SmtpReceipt {
                    response: format!("{} {}", response.code(), text.join(" ")),
                })
            }
            Transport::Sendmail { command } => {
                let transport = AsyncSendmailTransport::<Tokio1Executor>::new_with_command(command);
                tokio::time::timeout(self.timeout, transport.send(message))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|source| EmailError::Sendmail {
                        command: command.clone(),
                        source,
                    })?;
                tracing::debug!(command = %command.display(), "email handed to sendmail");
                Ok(SmtpReceipt {
                    response: "sendmail: accepted".to_string(),
                })
            }
        }
    }

    /// Checks that mail could be sent now, for the health report: for SMTP it connects, does
    /// TLS and AUTH as configured, and sends NOOP (lettre's `test_connection`), within
    /// `[email] timeout`; for sendmail it checks the program is still there.
    pub async fn check(&self) -> Result<(), EmailError> {
        match &self.transport {
            Transport::Smtp(transport) => {
                let connected = tokio::time::timeout(self.timeout, transport.test_connection())
                    .await
                    .map_err(|_| EmailError::Timeout {
                        server: self.server.clone(),
                        timeout: self.timeout,
                    })?
                    .map_err(|e| EmailError::from_smtp(&self.server, e))?;
                if connected {
                    Ok(())
                } else {
                    Err(EmailError::NotConnected {
                        server: self.server.clone(),
                    })
                }
            }
            Transport::Sendmail { command } => {
                if is_executable(command) {
                    Ok(())
                } else {
                    Err(EmailError::SendmailNotFound {
                        searched: command.display().to_string(),
                    })
                }
            }
        }
    }

    /// Assembles the MIME message: `multipart/alternative` (text, then HTML) or plain text.
    /// lettre encodes the subject as RFC 2047 words and the bodies as quoted-printable or
    /// base64 as needed, so any Unicode travels over a 7-bit relay.
    fn message(&self, msg: &EmailMessage) -> Result<Message, EmailError> {
        let to: Mailbox = msg.to.parse().map_err(|source| EmailError::Recipient {
            address: msg.to.clone(),
            source,
        })?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id(&self.from)))
            .subject(one_line(&msg.subject));
        let built = match &msg.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                msg.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(msg.text.clone())),
        };
        built.map_err(|source| EmailError::Message { source })
    }
}

/// A fresh `Message-ID` in the sender's own domain: `<pagerbox.1767225600123456789.9f3c2a1b@box.example>`.
///
/// Relays are not required to add one, and large receivers (Gmail) refuse mail without it, or
/// a relay that accepted it bounces it later while the page stands as sent. The id is made
/// here, for every message, from the clock and 64 random bits, so two emails never share one
/// (a receiver may drop the second of two with the same id as a duplicate).
fn message_id(from: &Mailbox) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "<pagerbox.{nanos}.{:016x}@{}>",
        fastrand::u64(..),
        from.email.domain()
    )
}

/// Username and password from the config, the password read from its file now.
fn credentials(cfg: &EmailConfig) -> Result<Option<Credentials>, EmailError> {
    let (user, path) = match (&cfg.username, &cfg.password_file) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(EmailError::Config {
                reason: "username is set but password_file is not".to_string(),
            })
        }
        (None, Some(path)) => {
            return Err(EmailError::Config {
                reason: format!(
                    "password_file {} is set but username is not",
                    path.display()
                ),
            })
        }
        (Some(user), Some(path)) => (user, path),
    };
    if cfg.tls == SmtpTls::None && !is_loopback(&cfg.host) {
        return Err(EmailError::Config {
            reason: format!(
                "tls = \"none\" with a username would send the password in clear to {}; \
                 use starttls or implicit, or a relay on loopback",
                cfg.host
            ),
        });
    }
    let secret = read_secret(path).map_err(|source| EmailError::PasswordFile {
        path: path.clone(),
        source,
    })?;
    Ok(Some(Credentials::new(
        user.clone(),
        secret.expose().to_string(),
    )))
}

/// TLS parameters for `host`: the public web roots plus the certificates in `ca_file`.
fn tls_parameters(cfg: &EmailConfig) -> Result<TlsParameters, EmailError> {
    let mut builder = TlsParameters::builder(cfg.host.clone());
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|source| EmailError::CaFile {
            path: path.clone(),
            source,
        })?;
        let invalid = |reason: String| EmailError::CaInvalid {
            path: path.clone(),
            reason,
        };
        // lettre accepts a file without any certificate silently; count them first.
        let count = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .try_fold(0usize, |n, c| c.map(|_| n + 1))
            .map_err(|e| invalid(e.to_string()))?;
        if count == 0 {
            return Err(invalid("no BEGIN CERTIFICATE block".to_string()));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| invalid(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| EmailError::Config {
        reason: format!("TLS settings for {}: {e}", cfg.host),
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Finds `sendmail` in `PATH`, then in the usual system directories.
fn find_sendmail() -> Result<PathBuf, EmailError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(SENDMAIL_DIRS.iter().map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join("sendmail"))
        .find(|p| is_executable(p))
        .ok_or_else(|| EmailError::SendmailNotFound {
            searched: format!("PATH, {}", SENDMAIL_DIRS.join(", ")),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Replaces control characters (line breaks above all) by spaces, for header values.
fn one_line(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.trim().to_string()
}

/// Longest summary kept in a subject, in characters.
const SUBJECT_SUMMARY_CHARS: usize = 140;

/// Everything [`render_incident_email`] needs; the caller gathers it from the store and config.
#[derive(Debug, Clone)]
pub struct IncidentEmail<'a> {
    /// The incident as stored, with its current status.
    pub incident: &'a Incident,
    /// The incident's timeline, oldest first.
    pub timeline: &'a [TimelineEvent],
    /// How to acknowledge, e.g. `Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42`.
    pub reply_hint: String,
    /// A runbook URL or a short text from the route or service.
    pub runbook: Option<String>,
    /// The recipient.
    pub to: String,
    /// Zone for the times shown (the recipient's, or the daemon's).
    pub tz: chrono_tz::Tz,
}

/// Renders an incident as an email: subject `[pagerbox] #42 CRIT db: /var on db1 97% full`
/// (with `ACKNOWLEDGED` or `RESOLVED` after the id once it is no longer triggered), and a plain
/// text and an HTML body with summary, status, severity, service, source, route, alert count,
/// acknowledgement, details (pretty JSON), runbook, links, timeline in `tz`, and how to ack.
///
/// Pure: no clock, no I/O. All incident text is HTML-escaped in the HTML part; links are
/// clickable only for `http`, `https` and `mailto`.
pub fn render_incident_email(input: &IncidentEmail<'_>) -> EmailMessage {
    let inc = input.incident;
    EmailMessage {
        to: input.to.clone(),
        subject: subject(inc),
        text: render_text(input),
        html: Some(render_html(input)),
    }
}

fn subject(inc: &Incident) -> String {
    format!("[pagerbox] {}", heading(inc, Some(SUBJECT_SUMMARY_CHARS)))
}

/// `#42 CRIT db: /var on db1 97% full`, on one line, the summary cut to `max_chars` if given.
fn heading(inc: &Incident, max_chars: Option<usize>) -> String {
    let mut s = format!("#{} ", inc.id);
    match inc.status {
        Status::Triggered => {}
        Status::Acknowledged => s.push_str("ACKNOWLEDGED "),
        Status::Resolved => s.push_str("RESOLVED "),
    }
    s.push_str(inc.severity.as_short());
    s.push(' ');
    if let Some(service) = &inc.service {
        s.push_str(&one_line(service));
        s.push_str(": ");
    }
    let summary = one_line(&inc.summary);
    match max_chars {
        Some(max) if summary.chars().count() > max => {
            s.extend(summary.chars().take(max - 1));
            s.push('…');
        }
        _ => s.push_str(&summary),
    }
    s
}

/// The labelled facts shown at the top of both parts, in order.
fn facts(input: &IncidentEmail<'_>) -> Vec<(&'static str, String)> {
    let inc = input.incident;
    let time = |t: &chrono::DateTime<chrono::Utc>| format_time(t, input.tz);
    let mut facts = vec![
        ("Status", inc.status.to_string()),
        ("Severity", inc.severity.to_string()),
    ];
    if let Some(service) = &inc.service {
        facts.push(("Service", service.clone()));
    }
    if let Some(source) = &inc.source {
        facts.push(("Source", source.clone()));
    }
    if let Some(route) = &inc.route {
        facts.push(("Route", route.clone()));
    }
    facts.push(("First seen", time(&inc.first_seen)));
    if inc.alert_count > 1 {
        facts.push((
            "Alerts",
            format!("{} (last {})", inc.alert_count, time(&inc.last_seen)),
        ));
    }
    if let Some(t) = &inc.acknowledged {
        facts.push((
            "Acknowledged",
            format!("by {} via {} at {}", t.by, t.via, time(&t.at)),
        ));
    }
    if let Some(t) = &inc.resolved {
        facts.push((
            "Resolved",
            format!("by {} via {} at {}", t.by, t.via, time(&t.at)),
        ));
    }
    facts.push(("Key", inc.dedup_key.clone()));
    facts
}

fn format_time(t: &chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// Details as pretty JSON, or `None` when there are none worth showing.
fn details_json(details: &serde_json::Value) -> Option<String> {
    match details {
        serde_json::Value::Null => None,
        serde_json::Value::Object(m) if m.is_empty() => None,
        v => serde_json::to_string_pretty(v).ok(),
    }
}

/// Who did a timeline event, as `alice via sms`.
fn event_actor(ev: &TimelineEvent) -> Option<String> {
    match (&ev.actor, &ev.via) {
        (Some(a), Some(v)) => Some(format!("{a} via {v}")),
        (Some(a), None) => Some(a.clone()),
        (None, Some(v)) => Some(format!("via {v}")),
        (None, None) => None,
    }
}

fn render_text(input: &IncidentEmail<'_>) -> String {
    let inc = input.incident;
    let mut t = String::new();
    let _ = writeln!(t, "{}\n", heading(inc, None));
    for (label, value) in facts(input) {
        let _ = writeln!(t, "{:<13} {}", format!("{label}:"), value);
    }
    if inc.status.is_open() && !input.reply_hint.is_empty() {
        let _ = writeln!(t, "\nHow to acknowledge:\n  {}", input.reply_hint);
    }
    if let Some(runbook) = &input.runbook {
        let _ = writeln!(t, "\nRunbook:\n  {runbook}");
    }
    if !inc.links.is_empty() {
        let _ = writeln!(t, "\nLinks:");
        for link in &inc.links {
            match &link.text {
                Some(text) => {
                    let _ = writeln!(t, "  - {text}: {}", link.href);
                }
                None => {
                    let _ = writeln!(t, "  - {}", link.href);
                }
            }
        }
    }
    if let Some(details) = details_json(&inc.details) {
        let _ = writeln!(t, "\nDetails:");
        for line in details.lines() {
            let _ = writeln!(t, "  {line}");
        }
    }
    if !input.timeline.is_empty() {
        let _ = writeln!(t, "\nTimeline ({}):", input.tz.name());
        for ev in input.timeline {
            let _ = write!(t, "  {}  {}", format_time(&ev.at, input.tz), ev.kind);
            if let Some(actor) = event_actor(ev) {
                let _ = write!(t, " ({actor})");
            }
            if !ev.message.is_empty() {
                let _ = write!(t, ": {}", ev.message);
            }
            let _ = writeln!(t);
        }
    }
    let _ = writeln!(t, "\n-- \npagerbox");
    t
}

fn render_html(input: &IncidentEmail<'_>) -> String {
    html_document(&subject(input.incident), &html_section(input))
}

/// A whole HTML email around `body`.
fn html_document(title: &str, body: &str) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    h.push_str(&escape_html(title));
    h.push_str("</title></head>\n<body style=\"font-family:sans-serif\">\n");
    h.push_str(body);
    h.push_str("<p style=\"color:#777\">pagerbox</p>\n</body></html>\n");
    h
}

/// One incident's part of an HTML email: heading, facts, how to ack, runbook, links, details,
/// timeline.
fn html_section(input: &IncidentEmail<'_>) -> String {
    let inc = input.incident;
    let mut h = String::new();
    let _ = writeln!(h, "<h2>{}</h2>", escape_html(&heading(inc, None)));
    h.push_str("<table>\n");
    for (label, value) in facts(input) {
        let _ = writeln!(
            h,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(label),
            escape_html(&value)
        );
    }
    h.push_str("</table>\n");
    if inc.status.is_open() && !input.reply_hint.is_empty() {
        let _ = writeln!(
            h,
            "<h3>How to acknowledge</h3>\n<p>{}</p>",
            escape_html(&input.reply_hint)
        );
    }
    if let Some(runbook) = &input.runbook {
        h.push_str("<h3>Runbook</h3>\n");
        if is_safe_href(runbook.trim()) && !runbook.trim().contains(char::is_whitespace) {
            let _ = writeln!(h, "<p>{}</p>", link_html(runbook.trim(), None));
        } else {
            let _ = writeln!(
                h,
                "<p style=\"white-space:pre-wrap\">{}</p>",
                escape_html(runbook)
            );
        }
    }
    if !inc.links.is_empty() {
        h.push_str("<h3>Links</h3>\n<ul>\n");
        for link in &inc.links {
            let _ = writeln!(
                h,
                "<li>{}</li>",
                link_html(&link.href, link.text.as_deref())
            );
        }
        h.push_str("</ul>\n");
    }
    if let Some(details) = details_json(&inc.details) {
        let _ = writeln!(h, "<h3>Details</h3>\n<pre>{}</pre>", escape_html(&details));
    }
    if !input.timeline.is_empty() {
        let _ = writeln!(
            h,
            "<h3>Timeline ({})</h3>\n<table>",
            escape_html(input.tz.name())
        );
        for ev in input.timeline {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&format_time(&ev.at, input.tz)),
                escape_html(&ev.kind),
                escape_html(&event_actor(ev).unwrap_or_default()),
                escape_html(&ev.message)
            );
        }
        h.push_str("</table>\n");
    }
    h
}

/// Renders a digest (several incidents in one page) as one email carrying, for each incident,
/// everything a single page's email does: facts, how to ack it, runbook, links, details and
/// timeline. A digest that fell through to email must be as actionable as the pages it groups.
/// `items` must not be empty; the subject names the count and the first incidents.
pub fn render_digest_email(items: &[IncidentEmail<'_>]) -> EmailMessage {
    let heads: Vec<String> = items
        .iter()
        .map(|i| format!("#{} {}", i.incident.id, i.incident.severity.as_short()))
        .collect();
    let subject = format!(
        "[pagerbox] {} incident{}: {}",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        heads.join(", ")
    );
    let text = items
        .iter()
        .map(render_text)
        .collect::<Vec<_>>()
        .join("\n========================================\n\n");
    let body: String = items
        .iter()
        .map(html_section)
        .collect::<Vec<_>>()
        .join("<hr>\n");
    EmailMessage {
        to: items.first().map(|i| i.to.clone()).unwrap_or_default(),
        subject: one_line(&subject),
        text,
        html: Some(html_document(&subject, &body)),
    }
}

/// How to acknowledge incident `id`, by every path that works for the person reading: the SMS
/// reply only when a page SMS actually went out to them (an email that falls back from SMS must
/// not send them looking for a text that never came), the status page when its address is known,
/// the CLI and the API.
pub fn ack_paths(
    id: crate::incident::IncidentId,
    sms_sent: bool,
    status_page: Option<&str>,
) -> String {
    let mut paths = Vec::new();
    if sms_sent {
        paths.push(format!("reply {id}a to the page SMS ({id}r resolves)"));
    }
    if let Some(url) = status_page {
        paths.push(format!("the status page {url}"));
    }
    paths.push(format!("run: pagerbox ack {id}"));
    paths.push(format!("or POST /v1/incidents/{id}/acknowledge"));
    format!("Acknowledge #{id}: {}", paths.join("; "))
}

/// True when the timeline shows a page SMS to `user` that went out (sent or delivered).
pub fn sms_went_out(timeline: &[TimelineEvent], user: &str) -> bool {
    let prefix = format!("sms to {user} ");
    timeline.iter().any(|e| {
        matches!(e.kind.as_str(), "page-sent" | "page-delivered") && e.message.starts_with(&prefix)
    })
}

/// A link as HTML: an `<a>` for safe schemes, plain escaped text otherwise (so a
/// `javascript:` href from an alert can never be clicked).
fn link_html(href: &str, text: Option<&str>) -> String {
    let label = escape_html(text.unwrap_or(href));
    if is_safe_href(href) {
        format!("<a href=\"{}\">{label}</a>", escape_html(href))
    } else if text.is_some() {
        format!("{label}: {}", escape_html(href))
    } else {
        label
    }
}

fn is_safe_href(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Link, Severity, Transition};
    use chrono::TimeZone as _;

    fn incident() -> Incident {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 5).unwrap();
        Incident {
            id: 42,
            dedup_key: "db1/var".into(),
            status: Status::Triggered,
            severity: Severity::Critical,
            summary: "/var on db1 97% full".into(),
            source: Some("prometheus".into()),
            service: Some("db".into()),
            route: Some("db".into()),
            details: serde_json::json!({"mount": "/var", "used": 0.97}),
            links: vec![
                Link {
                    href: "https://grafana.example.org/d/db1?a=1&b=2".into(),
                    text: Some("Grafana".into()),
                },
                Link {
                    href: "javascript:alert(1)".into(),
                    text: Some("evil".into()),
                },
            ],
            alert_count: 3,
            first_seen: t0,
            last_seen: t0 + chrono::Duration::minutes(2),
            acknowledged: None,
            resolved: None,
        }
    }

    fn timeline() -> Vec<TimelineEvent> {
        vec![TimelineEvent {
            id: 1,
            at: chrono::Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 5).unwrap(),
            kind: "triggered".into(),
            actor: Some("alertmanager".into()),
            via: Some("http".into()),
            message: "first alert".into(),
            data: serde_json::Value::Null,
        }]
    }

    fn input<'a>(inc: &'a Incident, tl: &'a [TimelineEvent]) -> IncidentEmail<'a> {
        IncidentEmail {
            incident: inc,
            timeline: tl,
            reply_hint: "Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42".into(),
            runbook: Some("https://wiki.example.org/runbooks/disk-full".into()),
            to: "alice@example.org".into(),
            tz: chrono_tz::Europe::Berlin,
        }
    }

    #[test]
    fn subject_has_id_severity_service_and_summary() {
        let inc = incident();
        let tl = timeline();
        let msg = render_incident_email(&input(&inc, &tl));
        assert_eq!(msg.subject, "[pagerbox] #42 CRIT db: /var on db1 97% full");
        assert_eq!(msg.to, "alice@example.org");

        let mut resolved = incident();
        resolved.status = Status::Resolved;
        resolved.service = None;
        resolved.summary = "line one\r\nBcc: x@evil".into();
        let msg = render_incident_email(&input(&resolved, &tl));
        assert_eq!(
            msg.subject,
            "[pagerbox] #42 RESOLVED CRIT line one  Bcc: x@evil"
        );
    }

    #[test]
    fn long_summary_is_cut_in_the_subject_only() {
        let mut inc = incident();
        inc.summary = "é".repeat(300);
        let msg = render_incident_email(&input(&inc, &[]));
        let kept = msg.subject.chars().filter(|c| *c == 'é').count();
        assert_eq!(kept, SUBJECT_SUMMARY_CHARS - 1);
        assert!(msg.subject.ends_with('…'));
        assert!(msg.text.contains(&"é".repeat(300)));
    }

    #[test]
    fn html_escapes_alert_text() {
        let mut inc = incident();
        inc.summary = "<script>alert('x')</script> & \"quotes\"".into();
        inc.details = serde_json::json!({"note": "<img src=x onerror=alert(1)>"});
        let mut tl = timeline();
        tl[0].message = "<b>bold</b>".into();
        let msg = render_incident_email(&input(&inc, &tl));
        let html = msg.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>bold"), "{html}");
        assert!(html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // The plain part is plain: no escaping there.
        assert!(msg.text.contains("<script>alert('x')</script>"));
    }

    #[test]
    fn links_are_present_and_only_safe_schemes_are_clickable() {
        let inc = incident();
        let tl = timeline();
        let msg = render_incident_email(&input(&inc, &tl));
        let html = msg.html.unwrap();
        assert!(
            html.contains("<a href=\"https://grafana.example.org/d/db1?a=1&amp;b=2\">Grafana</a>")
        );
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(html.contains("evil: javascript:alert(1)"));
        assert!(html.contains(
            "<a href=\"https://wiki.example.org/runbooks/disk-full\">https://wiki.example.org/runbooks/disk-full</a>"
        ));
        assert!(msg
            .text
            .contains("  - Grafana: https://grafana.example.org/d/db1?a=1&b=2"));
        assert!(msg
            .text
            .contains("Runbook:\n  https://wiki.example.org/runbooks/disk-full"));
    }

    #[test]
    fn body_has_facts_details_timeline_in_zone_and_ack_hint() {
        let inc = incident();
        let tl = timeline();
        let msg = render_incident_email(&input(&inc, &tl));
        let text = &msg.text;
        assert!(
            text.starts_with("#42 CRIT db: /var on db1 97% full\n"),
            "{text}"
        );
        for expected in [
            "Status:       triggered",
            "Severity:     critical",
            "Service:      db",
            "Source:       prometheus",
            "Alerts:       3 (last 2026-07-01 14:02:05 CEST)",
            "\"mount\": \"/var\"",
            "Timeline (Europe/Berlin):",
            // 12:00:05 UTC is 14:00:05 in Berlin in summer.
            "2026-07-01 14:00:05 CEST  triggered (alertmanager via http): first alert",
            "Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let html = msg.html.unwrap();
        assert!(html.contains("<td>2026-07-01 14:00:05 CEST</td><td>triggered</td>"));
        assert!(html.contains("<pre>{\n  &quot;mount&quot;: &quot;/var&quot;"));
    }

    #[test]
    fn resolved_incident_shows_who_and_no_ack_hint() {
        let mut inc = incident();
        inc.status = Status::Resolved;
        inc.resolved = Some(Transition {
            at: chrono::Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap(),
            by: "bob".into(),
            via: "sms".into(),
        });
        let msg = render_incident_email(&input(&inc, &[]));
        assert!(msg
            .text
            .contains("Resolved:     by bob via sms at 2026-01-10 09:00:00 CET"));
        assert!(!msg.text.contains("How to acknowledge"));
    }

    #[test]
    fn utf8_survives_rendering() {
        let mut inc = incident();
        inc.summary = "Überlauf auf 東京 ✓".into();
        inc.service = Some("Dienst-ä".into());
        let msg = render_incident_email(&input(&inc, &[]));
        assert_eq!(
            msg.subject,
            "[pagerbox] #42 CRIT Dienst-ä: Überlauf auf 東京 ✓"
        );
        assert!(msg.text.contains("Überlauf auf 東京 ✓"));
        assert!(msg.html.unwrap().contains("Überlauf auf 東京 ✓"));
    }

    #[test]
    fn the_ack_paths_offer_the_sms_reply_only_when_an_sms_went_out() {
        let without = ack_paths(42, false, None);
        assert_eq!(
            without,
            "Acknowledge #42: run: pagerbox ack 42; or POST /v1/incidents/42/acknowledge"
        );
        assert!(!without.contains("SMS"));
        let with = ack_paths(42, true, Some("http://10.0.0.5:8080/"));
        assert_eq!(
            with,
            "Acknowledge #42: reply 42a to the page SMS (42r resolves); the status page \
             http://10.0.0.5:8080/; run: pagerbox ack 42; or POST /v1/incidents/42/acknowledge"
        );
        let sent = |kind: &str, message: &str| TimelineEvent {
            kind: kind.into(),
            message: message.into(),
            ..timeline()[0].clone()
        };
        assert!(sms_went_out(
            &[sent("page-sent", "sms to alice sent (attempt 1): ok")],
            "alice"
        ));
        assert!(!sms_went_out(
            &[sent("page-sent", "email to alice sent (attempt 1): ok")],
            "alice"
        ));
        assert!(!sms_went_out(
            &[sent("page-retry", "sms to alice failed (attempt 1)")],
            "alice"
        ));
        assert!(!sms_went_out(
            &[sent("page-sent", "sms to alicia sent (attempt 1)")],
            "alice"
        ));
    }

    #[test]
    fn a_digest_email_carries_every_incident_with_its_own_ack_path() {
        let mut a = incident();
        let mut b = incident();
        a.id = 7;
        b.id = 9;
        b.summary = "api 5xx <high>".into();
        let tl = timeline();
        let items = [
            IncidentEmail {
                reply_hint: ack_paths(7, false, None),
                ..input(&a, &tl)
            },
            IncidentEmail {
                reply_hint: ack_paths(9, false, None),
                ..input(&b, &tl)
            },
        ];
        let m = render_digest_email(&items);
        assert!(
            m.subject
                .starts_with("[pagerbox] 2 incidents: #7 CRIT, #9 CRIT"),
            "{}",
            m.subject
        );
        for needle in [
            "pagerbox ack 7",
            "pagerbox ack 9",
            "api 5xx <high>",
            "Timeline (",
        ] {
            assert!(m.text.contains(needle), "{needle}: {}", m.text);
        }
        let html = m.html.unwrap();
        assert!(html.contains("api 5xx &lt;high&gt;"), "{html}");
        assert!(html.contains("pagerbox ack 9"), "{html}");
        assert_eq!(html.matches("<!DOCTYPE html>").count(), 1);
    }

    #[test]
    fn escape_html_escapes_the_five_characters() {
        assert_eq!(escape_html("a<b>&\"'c"), "a&lt;b&gt;&amp;&quot;&#39;c");
        assert_eq!(escape_html("plain ü"), "plain ü");
    }

    fn config(dir: &Path) -> EmailConfig {
        EmailConfig {
            enabled: true,
            transport: EmailTransport::Smtp,
            host: "smtp.example.org".into(),
            port: 587,
            tls: SmtpTls::StartTls,
            username: Some("pager".into()),
            password_file: Some(dir.join("password")),
            ca_file: None,
            from: "pagerbox <pagerbox@example.org>".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn missing_password_file_is_named_and_not_retryable() {
        let dir = tempfile::tempdir().unwrap();
        let err = EmailSender::new(&config(dir.path())).unwrap_err();
        assert!(matches!(err, EmailError::PasswordFile { .. }), "{err:?}");
        assert!(err.to_string().contains("password"), "{err}");
        assert!(err
            .to_string()
            .contains(&dir.path().join("password").display().to_string()));
        assert!(!err.is_retryable());
    }

    #[test]
    fn password_never_shows_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "hunter2-secret\n").unwrap();
        let cfg = config(dir.path());
        let sender = EmailSender::new(&cfg).unwrap();
        let shown = format!("{sender:?} {cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("smtp.example.org:587"), "{shown}");
    }

    #[test]
    fn inconsistent_settings_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "pw\n").unwrap();

        let mut cfg = config(dir.path());
        cfg.password_file = None;
        let err = EmailSender::new(&cfg).unwrap_err();
        assert!(matches!(err, EmailError::Config { .. }), "{err:?}");

        let mut cfg = config(dir.path());
        cfg.tls = SmtpTls::None;
        let err = EmailSender::new(&cfg).unwrap_err();
        assert!(err.to_string().contains("in clear"), "{err}");
        assert!(!err.is_retryable());
        cfg.host = "127.0.0.1".into();
        EmailSender::new(&cfg).expect("loopback relay may take a password without TLS");

        let mut cfg = config(dir.path());
        cfg.from = "not an address".into();
        let err = EmailSender::new(&cfg).unwrap_err();
        assert!(matches!(err, EmailError::FromAddress { .. }), "{err:?}");
    }

    #[test]
    fn ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "pw\n").unwrap();
        let mut cfg = config(dir.path());
        cfg.ca_file = Some(dir.path().join("ca.pem"));
        let err = EmailSender::new(&cfg).unwrap_err();
        assert!(matches!(err, EmailError::CaFile { .. }), "{err:?}");

        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let err = EmailSender::new(&cfg).unwrap_err();
        assert!(matches!(err, EmailError::CaInvalid { .. }), "{err:?}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[tokio::test]
    async fn bad_recipient_address_is_not_retryable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "pw\n").unwrap();
        let sender = EmailSender::new(&config(dir.path())).unwrap();
        let err = sender
            .send(&EmailMessage {
                to: "alice at example".into(),
                subject: "s".into(),
                text: "t".into(),
                html: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, EmailError::Recipient { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }

    fn sendmail_script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("fake-sendmail");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn sendmail_config(dir: &Path) -> EmailConfig {
        EmailConfig {
            transport: EmailTransport::Sendmail,
            username: None,
            password_file: None,
            ..config(dir)
        }
    }

    #[tokio::test]
    async fn sendmail_gets_the_message_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.eml");
        let script = sendmail_script(
            dir.path(),
            &format!("echo \"$@\" > '{0}.args'\ncat > '{0}'", out.display()),
        );
        let sender = EmailSender::build(&sendmail_config(dir.path()), Some(&script)).unwrap();
        sender.check().await.unwrap();
        let receipt = sender
            .send(&EmailMessage {
                to: "alice@example.org".into(),
                subject: "Grüße".into(),
                text: "body text".into(),
                html: None,
            })
            .await
            .unwrap();
        assert_eq!(receipt.response, "sendmail: accepted");
        let sent = std::fs::read_to_string(&out).unwrap();
        assert!(sent.contains("To: alice@example.org"), "{sent}");
        assert!(sent.contains("body text"), "{sent}");
        let args = std::fs::read_to_string(dir.path().join("out.eml.args")).unwrap();
        assert!(args.contains("alice@example.org"), "{args}");
    }

    #[tokio::test]
    async fn sendmail_failure_is_retryable_and_keeps_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let script = sendmail_script(dir.path(), "cat >/dev/null\necho 'queue full' >&2\nexit 75");
        let sender = EmailSender::build(&sendmail_config(dir.path()), Some(&script)).unwrap();
        let err = sender
            .send(&EmailMessage {
                to: "alice@example.org".into(),
                subject: "s".into(),
                text: "t".into(),
                html: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, EmailError::Sendmail { .. }), "{err:?}");
        assert!(err.to_string().contains("queue full"), "{err}");
        assert!(err.is_retryable());

        std::fs::remove_file(&script).unwrap();
        let err = sender.check().await.unwrap_err();
        assert!(
            matches!(err, EmailError::SendmailNotFound { .. }),
            "{err:?}"
        );
    }
}
