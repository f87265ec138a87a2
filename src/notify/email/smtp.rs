//! Sending one email over SMTP or through the local `sendmail`, and sorting what went wrong.
//!
//! Email is the fallback when the modem cannot page, so it must fail clearly and never hang:
//! - [`EmailSender`] is built once from `[email]`. It reads the password file and the extra CA
//!   file at build time, so a bad path fails at start-up (naming the file), not at 3 a.m.
//! - Each [`EmailSender::send`] opens its own connection (no pool, see Cargo.toml) and the whole
//!   exchange — connect, TLS, AUTH, MAIL, RCPT, DATA — must finish within `[email] timeout`.
//!   lettre bounds only the TCP connect by itself; a relay that accepts and then goes silent
//!   would otherwise hold the email sender forever.
//! - [`EmailError::is_retryable`] sorts failures the way RFC 5321 does: 4xx replies, refused or
//!   timed-out connections and TLS failures are worth another try, and so are the 5xx replies
//!   that refuse the box rather than the message (a bad password, relaying denied: the fix is
//!   the operator's, and the page must still go out after it); other 5xx replies (a bad
//!   recipient) and local configuration problems are not.

use std::fmt;
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

use super::{one_line, EmailMessage};
use crate::config::{read_secret, EmailConfig, EmailTransport, SmtpTls};

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

/// Whether a 5xx reply refuses every message from this box rather than this one: the
/// authentication replies of RFC 4954 (530 authentication required, 534 mechanism too weak, 535
/// credentials invalid, 538 encryption required) and a refusal to relay (550/554 "relay access
/// denied" and its spellings). A page must not be given up for good on one of these: it waits
/// for the relay or the settings to be fixed, with the channel shown down meanwhile.
fn refuses_the_box(code: u16, response: &str) -> bool {
    // Whole phrases: a bad recipient can mention relaying too (Postfix: "Recipient address
    // rejected: User unknown in relay recipient table").
    const RELAY_REFUSED: &[&str] = &[
        "relay access denied",
        "relaying denied",
        "relay denied",
        "unable to relay",
        "not permitted to relay",
        "relay not permitted",
        "relaying not permitted",
        "relaying disallowed",
        "relaying not allowed",
        "relay not allowed",
    ];
    let response = response.to_ascii_lowercase();
    matches!(code, 530 | 534 | 535 | 538)
        || (matches!(code, 550 | 551 | 554) && RELAY_REFUSED.iter().any(|p| response.contains(p)))
}

/// Whether a permanent reply names the destination mailbox as the problem, by its RFC 3463
/// enhanced status code: X.1.1 no such mailbox, X.1.2 bad destination system, X.1.3 bad mailbox
/// syntax, X.1.6 mailbox moved, X.1.10 no mail accepted (null MX), X.2.1 mailbox disabled, X.2.2
/// mailbox full. A reply without one is not trusted to be the recipient's.
fn refuses_the_mailbox(response: &str) -> bool {
    matches!(
        response.split_whitespace().next().unwrap_or(""),
        "5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10" | "5.2.1" | "5.2.2"
    )
}

impl EmailError {
    /// True when the relay refused this box's login (RFC 4954: 530 authentication required,
    /// 534 mechanism too weak, 535 credentials invalid, 538 encryption required): every message
    /// meets the same answer until someone fixes the settings, and each try is one more failed
    /// login. (A refusal to relay is left out: some relays give it per recipient.)
    pub fn refuses_login(&self) -> bool {
        matches!(self, EmailError::Rejected { code, .. } if matches!(code, 530 | 534 | 535 | 538))
    }

    /// True when sending the same message later may succeed: 4xx replies, refused/broken/
    /// timed-out connections, TLS handshake failures, malformed replies, sendmail failures
    /// (sendmail queues locally, so its failures are local and usually passing), and the 5xx
    /// replies that refuse the box rather than the message ([`refuses_the_box`]: an expired
    /// password, relaying denied), which the operator's fix of the relay settings ends. False
    /// for the other 5xx replies (a bad recipient), a bad recipient address, and configuration
    /// problems.
    pub fn is_retryable(&self) -> bool {
        match self {
            EmailError::Rejected { code, response, .. } => {
                (400..500).contains(code) || refuses_the_box(*code, response)
            }
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

    /// True when the failure is the recipient's or the message's own, not the relay's or this
    /// box's: a permanent refusal of the recipient's mailbox ([`refuses_the_mailbox`], e.g.
    /// "550 5.1.1 no such user"), or an address or message that cannot be sent at all. The relay
    /// works; another person's email would go through. Any other permanent refusal (a sender
    /// address the relay will not take, a policy, a size limit) would refuse everyone's.
    pub fn is_this_messages(&self) -> bool {
        match self {
            EmailError::Rejected { code, response, .. } => {
                (500..600).contains(code) && refuses_the_mailbox(response)
            }
            EmailError::Recipient { .. } | EmailError::Message { .. } => true,
            _ => false,
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
        // Dated here rather than by lettre, which formats the time with `httpdate` and panics
        // on a clock before 1970 (a board that lost its time); such a mail says 1970 instead.
        let date = std::time::SystemTime::now().max(std::time::UNIX_EPOCH);
        let builder = Message::builder()
            .date(date)
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
        let pem = crate::config::regular_file(path)
            .and_then(|()| std::fs::read(path))
            .map_err(|source| EmailError::CaFile {
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

#[cfg(test)]
mod tests {
    use super::*;

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
