//! The concrete transports: SMS and voice over the modem, and email over SMTP or sendmail.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::email::{
    ack_paths, render_digest_email, render_incident_email, sms_went_out, EmailError, EmailMessage,
    EmailSender, IncidentEmail,
};
use super::sender::{
    CallMiss, Delivered, EmailSetupError, Outgoing, SendError, SendFuture, Transport, Unavailable,
};
use crate::config::Config;
use crate::incident::{Channel, IncidentId};
use crate::modem::{CallOptions, CallOutcome, Health, HealthState, Modem, ModemError};
use crate::store::outbox::PageKind;

fn modem_ready(health: &watch::Receiver<Health>) -> Result<(), Unavailable> {
    let h = health.borrow();
    match h.state {
        HealthState::Down => Err(Unavailable::ModemDown {
            reason: h.reason.clone(),
        }),
        _ => Ok(()),
    }
}

/// How many attempts in a row (SMS submits, call set-ups) must fail before the channel reports
/// itself down.
pub const SUBMIT_FAILURES_DOWN: u32 = 3;

/// A channel's attempts that failed in a row (reset by the next success), and the last failure.
/// A modem that answers while the network refuses every attempt pages nobody, and its own
/// health cannot tell: the channel reports itself down from this (while still trying, which is
/// how the recovery is noticed).
#[derive(Debug)]
struct Streak<E> {
    /// What an attempt is, for the log: "SMS submit", "call".
    what: &'static str,
    failures: std::sync::Mutex<(u32, Option<E>)>,
}

impl<E: Clone + std::fmt::Display> Streak<E> {
    fn new(what: &'static str) -> Self {
        Streak {
            what,
            failures: std::sync::Mutex::new((0, None)),
        }
    }

    fn succeeded(&self) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.0 >= SUBMIT_FAILURES_DOWN {
            tracing::info!(
                after = f.0,
                "a {} succeeded again: the channel is restored",
                self.what
            );
        }
        *f = (0, None);
    }

    fn failed(&self, e: E) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.0 = f.0.saturating_add(1);
        if f.0 == SUBMIT_FAILURES_DOWN {
            tracing::error!(failures = f.0, error = %e, "every recent {} failed: the channel is impaired", self.what);
        }
        f.1 = Some(e);
    }

    /// The failures in a row and the last, while they are [`SUBMIT_FAILURES_DOWN`] or more.
    fn failing(&self) -> Option<(u32, E)> {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match &f.1 {
            Some(last) if f.0 >= SUBMIT_FAILURES_DOWN => Some((f.0, last.clone())),
            _ => None,
        }
    }
}

/// The SMS submits that failed in a row (reset by the next success), and the last failure.
#[derive(Debug)]
pub struct SubmitStreak(Streak<Arc<ModemError>>);

impl Default for SubmitStreak {
    fn default() -> Self {
        SubmitStreak(Streak::new("SMS submit"))
    }
}

impl SubmitStreak {
    /// Notes the result of one submit. Only the network's or the modem's refusal counts (a
    /// `+CMS ERROR`, a command that failed or timed out, an answer without a reference): a bad
    /// number or text is the page's problem, and a modem that is down says so in its own health.
    pub fn note(&self, result: Result<(), Arc<ModemError>>) {
        match result {
            Ok(()) => self.0.succeeded(),
            Err(e) => match *e {
                ModemError::Command(_) | ModemError::Part { .. } | ModemError::Protocol { .. } => {
                    self.0.failed(e)
                }
                _ => {}
            },
        }
    }

    /// `Err` while the last [`SUBMIT_FAILURES_DOWN`] submits all failed.
    pub fn health(&self) -> Result<(), Unavailable> {
        match self.0.failing() {
            Some((failures, last)) => Err(Unavailable::SubmitsFailing { failures, last }),
            None => Ok(()),
        }
    }
}

/// The voice calls that could not be set up in a row (reset by the next call that rang), and
/// the last reason.
#[derive(Debug)]
pub struct CallStreak(Streak<String>);

impl Default for CallStreak {
    fn default() -> Self {
        CallStreak(Streak::new("call"))
    }
}

impl CallStreak {
    /// Notes how one call ended. A call that reached the phone counts as a success whatever
    /// the person did (answered, busy, let it ring, rejected it); one the network or the modem
    /// would not set up counts as a failure (`NO CARRIER` before it rang, `NO DIALTONE`, the
    /// dial command refused: a SIM without credit or without voice, a barred line). A bad number
    /// is the page's problem; a down modem and our own hang-up say nothing about the channel.
    pub fn note(&self, result: &Result<CallOutcome, ModemError>) {
        match result {
            Ok(CallOutcome::Answered { .. } | CallOutcome::Busy)
            | Ok(CallOutcome::NoAnswer | CallOutcome::Rejected) => self.0.succeeded(),
            Ok(CallOutcome::NotSetUp(why)) => self.0.failed(why.clone()),
            Err(e @ (ModemError::Command(_) | ModemError::Protocol { .. })) => {
                self.0.failed(e.to_string())
            }
            Ok(CallOutcome::Failed(_)) | Err(_) => {}
        }
    }

    /// `Err` while the last [`SUBMIT_FAILURES_DOWN`] calls all failed to set up.
    pub fn health(&self) -> Result<(), Unavailable> {
        match self.0.failing() {
            Some((failures, last)) => Err(Unavailable::CallsFailing { failures, last }),
            None => Ok(()),
        }
    }
}

/// SMS through the modem.
pub struct ModemSms {
    pub modem: Modem,
    pub health: watch::Receiver<Health>,
    /// Recent submit failures, for [`Transport::health`].
    submits: SubmitStreak,
    /// Longest one page may take: see [`ModemSms::new`].
    timeout: Duration,
}

impl ModemSms {
    /// SMS over `modem`, whose health is `health`. A page of up to `max_parts` parts, each of
    /// which the driver may wait `submit_timeout` for, must fit in the transport's timeout, or
    /// a slow but successful send would be cut off and sent again; never below the default.
    pub fn new(
        modem: Modem,
        health: watch::Receiver<Health>,
        submit_timeout: Duration,
        max_parts: usize,
    ) -> ModemSms {
        ModemSms {
            modem,
            health,
            submits: SubmitStreak::default(),
            timeout: sms_page_timeout(submit_timeout, max_parts),
        }
    }
}

/// How long a page of `max_parts` parts may take when each part's submit may take
/// `submit_timeout`.
fn sms_page_timeout(submit_timeout: Duration, max_parts: usize) -> Duration {
    let per_part = submit_timeout.saturating_add(PART_MARGIN);
    let parts = u32::try_from(max_parts.max(1)).unwrap_or(u32::MAX);
    per_part.saturating_mul(parts).max(SMS_TIMEOUT_MIN)
}

/// Per part on top of the submit's own wait: the driver's pauses between a part's attempts and
/// the queue in front of it.
const PART_MARGIN: Duration = Duration::from_secs(10);
/// The SMS transport's timeout at least, as for every transport by default.
const SMS_TIMEOUT_MIN: Duration = Duration::from_secs(180);

impl Transport for ModemSms {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn ready(&self) -> Result<(), Unavailable> {
        modem_ready(&self.health)
    }

    /// Down when the modem is, and also when the last [`SUBMIT_FAILURES_DOWN`] submits all
    /// failed: a modem that answers but whose network refuses every SMS (CMS ERROR 500) pages
    /// nobody. SMS is still tried (that is how the recovery is noticed); the first success
    /// clears it.
    fn health(&self) -> Result<(), Unavailable> {
        self.ready()?;
        self.submits.health()
    }

    fn readiness_changes(&self) -> Option<watch::Receiver<Health>> {
        Some(self.health.clone())
    }

    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let result = self
                .modem
                .send_sms(&msg.page.address, &msg.text)
                .await
                .map_err(Arc::new);
            self.submits
                .note(result.as_ref().map(|_| ()).map_err(Arc::clone));
            match result {
                Ok(r) => Ok(Delivered {
                    reference: Some(
                        r.references
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    detail: format!("{} part(s), message reference {:?}", r.parts, r.references),
                    acknowledged: false,
                }),
                Err(e) => Err(SendError::Modem(e)),
            }
        })
    }
}

/// Where a "1" pressed during a voice page is taken: the ack task, which records the
/// acknowledgement with its confirmation SMS exactly like an SMS reply. A trait rather than the
/// ack task's handle so that notify does not depend on ack (ack routes alerts through escalation,
/// which writes pages with notify's text).
pub trait KeypadAck: Send + Sync {
    /// Acknowledges `incident` for `user`, who pressed "1" during its page; the error says why
    /// it could not be recorded.
    fn keypad_ack<'a>(&'a self, user: &'a str, incident: IncidentId) -> KeypadAckFuture<'a>;
}

/// The answer of [`KeypadAck::keypad_ack`].
pub type KeypadAckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>>;

/// Voice calls through the modem: ring, speak the page where the modem can, listen for "1".
pub struct ModemVoice {
    pub modem: Modem,
    pub health: watch::Receiver<Health>,
    pub ring_for: Duration,
    /// Where a "1" pressed during the call is taken as an acknowledgement (with a confirmation
    /// SMS), exactly like an SMS reply.
    pub ack: Arc<dyn KeypadAck>,
    /// Recent calls that could not be set up, for [`Transport::health`].
    pub calls: CallStreak,
}

impl Transport for ModemVoice {
    fn channel(&self) -> Channel {
        Channel::Voice
    }

    fn ready(&self) -> Result<(), Unavailable> {
        modem_ready(&self.health)
    }

    /// Down when the modem is, and also when the last [`SUBMIT_FAILURES_DOWN`] calls all failed
    /// to set up (a SIM without credit or voice service rings nobody while the modem looks
    /// fine). Calls are still tried; the next that rings clears it.
    fn health(&self) -> Result<(), Unavailable> {
        self.ready()?;
        self.calls.health()
    }

    fn timeout(&self) -> Duration {
        self.ring_for + Duration::from_secs(120)
    }

    fn readiness_changes(&self) -> Option<watch::Receiver<Health>> {
        Some(self.health.clone())
    }

    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let opts = CallOptions {
                ring_for: self.ring_for,
                speak: Some(msg.text.clone()),
                repeat: 2,
                listen_dtmf: true,
            };
            let fail = |miss| Err(SendError::Call(miss));
            let result = self.modem.call(&msg.page.address, opts).await;
            self.calls.note(&result);
            match result {
                Ok(CallOutcome::Answered { dtmf }) => {
                    let pressed_one = dtmf == Some('1') && msg.page.kind == PageKind::Page;
                    // The person believes they acknowledged; if that could not be recorded, the
                    // page's own timeline line says so (escalation goes on, as it must).
                    let mut not_recorded = None;
                    if pressed_one {
                        if let (Some(user), Some(id)) = (&msg.page.user_id, msg.page.incident_id) {
                            if let Err(e) = self.ack.keypad_ack(user, id).await {
                                tracing::error!(incident = id, error = %e, "cannot record a DTMF acknowledgement; escalation goes on");
                                not_recorded = Some(e.to_string());
                            }
                        }
                    }
                    Ok(Delivered {
                        reference: None,
                        detail: match (dtmf, not_recorded) {
                            (Some(k), Some(e)) => format!(
                                "answered, pressed {k}, but the acknowledgement could not be recorded ({e}); escalation goes on"
                            ),
                            (Some(k), None) => format!("answered, pressed {k}"),
                            (None, _) => "answered".into(),
                        },
                        // Recorded above through the ack handler (with its confirmation SMS).
                        acknowledged: false,
                    })
                }
                Ok(CallOutcome::Busy) => fail(CallMiss::Busy),
                Ok(CallOutcome::NoAnswer) => fail(CallMiss::NoAnswer),
                Ok(CallOutcome::Rejected) => fail(CallMiss::Rejected),
                Ok(CallOutcome::Failed(why) | CallOutcome::NotSetUp(why)) => {
                    fail(CallMiss::Failed(why))
                }
                Err(e) => Err(SendError::Modem(Arc::new(e))),
            }
        })
    }
}

/// Email: the full incident for pages, a short message for status updates and replies.
///
/// The sender follows the config: when a reload brings new `[email]` settings (or the same
/// settings after a missing password or CA file was put in place), it is rebuilt on next use.
/// A sender that cannot be built leaves email impaired (`health` says why, so `/healthz` shows
/// it) while the other channels page; it never stops the daemon. Turning email on or off
/// (`enabled`) needs a restart: the transport and its sender task exist only when it is on.
pub struct Email {
    config: watch::Receiver<Arc<Config>>,
    built: std::sync::Mutex<Built>,
    /// What the last send and the last check said; shared with the checks
    /// ([`Transport::probe`]), which outlive a borrow of the transport.
    failures: Arc<std::sync::Mutex<Failures>>,
}

/// Why email is not to be trusted now, from sends and from checks, kept apart: a check (connect,
/// TLS, AUTH, NOOP) that passes says nothing of a relay that refuses MAIL FROM or DATA, so it
/// clears only its own failure, while a send that goes through clears both.
#[derive(Default)]
struct Failures {
    /// The last send failed for a reason that is not the recipient's.
    send: Option<Arc<EmailError>>,
    /// A send whose login the relay refused (bad or expired credentials), and until when email
    /// pages wait for it ([`REFUSED_PAUSE`] after it).
    refused: Option<(Arc<EmailError>, tokio::time::Instant)>,
    /// The address whose last message the relay refused for good (its own failure, see
    /// [`EmailError::is_this_messages`]), while no send has gone through since.
    refused_for: Option<String>,
    /// The last check failed, with the sender it checked: a check begun before a reload says
    /// nothing about the new settings.
    check: Option<(Arc<EmailSender>, Arc<EmailError>)>,
}

/// How long email pages wait after the relay refused the box's login before the next one
/// tries. Each try logs in: a relay that locks an account after a few failed logins would otherwise
/// be locked by a handful of queued pages, each retried on its own, well past the fix of the
/// password that caused it. A reload that changes the settings ends the wait at once.
pub const REFUSED_PAUSE: Duration = Duration::from_secs(300);

/// The sender for one config, or why it could not be made.
struct Built {
    /// The config it was built from (compared by pointer: each reload publishes a new one).
    from: Arc<Config>,
    /// The files the sender read when it was built, as they were then.
    files: FileStamps,
    sender: Result<Arc<EmailSender>, Arc<EmailSetupError>>,
}

/// Device, inode, length and modification and change times of each file `[email]` names (the
/// password and the extra CA certificates), `None` where it could not be read: a reload that
/// leaves `[email]` as it was but follows a rotated password file under the same path must still
/// rebuild. (The change time moves on every write, even one that keeps the length and sets the
/// modification time back.)
#[derive(Debug, PartialEq, Eq)]
struct FileStamps(Vec<Option<[i64; 6]>>);

impl FileStamps {
    fn of(config: &Config) -> FileStamps {
        use std::os::unix::fs::MetadataExt;
        let files = [&config.email.password_file, &config.email.ca_file];
        FileStamps(
            files
                .into_iter()
                .flatten()
                .map(|path| {
                    std::fs::metadata(path).ok().map(|m| {
                        [
                            m.dev() as i64,
                            m.ino() as i64,
                            m.len() as i64,
                            m.mtime(),
                            m.mtime_nsec(),
                            m.ctime()
                                .wrapping_mul(1_000_000_000)
                                .wrapping_add(m.ctime_nsec()),
                        ]
                    })
                })
                .collect(),
        )
    }
}

fn build(config: &Config) -> Result<Arc<EmailSender>, Arc<EmailSetupError>> {
    if !config.email.enabled {
        return Err(Arc::new(EmailSetupError::Disabled));
    }
    EmailSender::new(&config.email)
        .map(Arc::new)
        .map_err(|e| Arc::new(EmailSetupError::Settings(e)))
}

impl Email {
    /// An email transport following `config`. Never fails: a sender that cannot be built is
    /// logged and reported by [`Transport::health`] until a reload fixes it.
    pub fn new(config: watch::Receiver<Arc<Config>>) -> Email {
        let from = config.borrow().clone();
        // Before the build reads them, so a change in between is found at the next look.
        let files = FileStamps::of(&from);
        let sender = build(&from);
        if let Err(why) = &sender {
            tracing::error!(reason = %why, "email cannot be set up; paging goes on without it");
        }
        Email {
            config,
            built: std::sync::Mutex::new(Built {
                from,
                files,
                sender,
            }),
            failures: Default::default(),
        }
    }

    /// The sender for the config in force, rebuilt after a reload that may change it: `[email]`
    /// changed, a file it needs may exist now, or the SMTP password file may hold a new password
    /// under the same path (a rotation), which only a rebuild reads. A rebuilt sender starts
    /// with no failures. A reload that changes none of that (a schedule edited, say) keeps the
    /// sender and what its last send and check said: a relay that refuses every page must not
    /// look healthy again because someone reloaded for another reason.
    fn sender(&self) -> Result<Arc<EmailSender>, Arc<EmailSetupError>> {
        let now = self.config.borrow().clone();
        let mut built = self.built.lock().expect("email state");
        if !Arc::ptr_eq(&built.from, &now) {
            let files = FileStamps::of(&now);
            let same =
                built.sender.is_ok() && built.from.email == now.email && built.files == files;
            built.from = now.clone();
            built.files = files;
            if same {
                return built.sender.clone();
            }
            let was_ok = built.sender.is_ok();
            built.sender = build(&now);
            match &built.sender {
                Ok(_) if !was_ok => tracing::info!("email settings applied"),
                Ok(_) => tracing::debug!("email settings reread"),
                Err(why) => {
                    tracing::error!(reason = %why, "email cannot be set up; paging goes on without it")
                }
            }
            *self.failures.lock().expect("email state") = Failures::default();
        }
        built.sender.clone()
    }
}

/// The status page's address for people reading an email, when the box listens on a specific
/// address (a wildcard or loopback listen has no address someone elsewhere could open).
fn status_page_url(config: &Config) -> Option<String> {
    let listen = config.http.listen;
    let ip = listen.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then(|| format!("http://{listen}/"))
}

/// How much longer than `email.timeout` the sender gives one email attempt.
const EMAIL_TIMEOUT_MARGIN: Duration = Duration::from_secs(30);

impl Transport for Email {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    /// `email.timeout` bounds the whole exchange inside [`Transport::send`], which then records
    /// the failure for [`Transport::health`]; the sender's outer bound comes a margin after the
    /// longest timeout the config takes, so it never cuts the attempt first. Cut from outside,
    /// a relay that stalls would fail every email page while email still looked ready. It is
    /// the same whatever the config says: the sender's lease and liveness bound are sized from
    /// it once, and a reload may raise the timeout.
    fn timeout(&self) -> Duration {
        crate::config::EMAIL_TIMEOUT_MAX.saturating_add(EMAIL_TIMEOUT_MARGIN)
    }

    fn ready(&self) -> Result<(), Unavailable> {
        // A relay that failed is still tried when a page needs it: that is how its return is
        // noticed. Only a sender that cannot exist is not, and a relay that refused the login is
        // left alone for a while (see `REFUSED_PAUSE`).
        self.sender().map_err(Unavailable::EmailSetup)?;
        let failures = self.failures.lock().expect("email state");
        match &failures.refused {
            Some((e, until)) if tokio::time::Instant::now() < *until => {
                Err(Unavailable::EmailFailed(e.clone()))
            }
            _ => Ok(()),
        }
    }

    fn health(&self) -> Result<(), Unavailable> {
        self.ready()?;
        let current = self.sender().ok();
        let failures = self.failures.lock().expect("email state");
        let checked = failures
            .check
            .as_ref()
            .filter(|(of, _)| current.as_ref().is_some_and(|now| Arc::ptr_eq(now, of)));
        match (&failures.send, checked) {
            (Some(e), _) | (None, Some((_, e))) => Err(Unavailable::EmailFailed(e.clone())),
            (None, None) => Ok(()),
        }
    }

    fn probe(&self) -> Option<crate::notify::sender::ProbeFuture> {
        let sender = self.sender().ok()?;
        let failures = self.failures.clone();
        Some(Box::pin(async move {
            let checked = sender.check().await;
            let mut failures = failures.lock().expect("email state");
            match checked {
                Ok(()) => {
                    if failures.check.take().is_some() {
                        tracing::info!("email relay answers its check again");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "email relay check failed: an email page now would fail");
                    failures.check = Some((sender, Arc::new(e)));
                }
            }
        }))
    }

    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let tz = msg.config.daemon.time_zone;
            let user = msg.page.user_id.as_deref().unwrap_or("");
            let status_page = status_page_url(&msg.config);
            let items: Vec<IncidentEmail<'_>> = msg
                .incidents
                .iter()
                .map(|(incident, timeline)| {
                    let route = incident.route.as_deref().and_then(|r| msg.config.route(r));
                    IncidentEmail {
                        incident,
                        timeline,
                        reply_hint: ack_paths(
                            incident.id,
                            sms_went_out(timeline, user),
                            status_page.as_deref(),
                        ),
                        runbook: route.and_then(|r| r.runbook.clone()),
                        to: msg.page.address.clone(),
                        tz,
                    }
                })
                .collect();
            let email = match (msg.page.kind, items.as_slice()) {
                (PageKind::Page, [one, ..]) => render_incident_email(one),
                (PageKind::Digest, [_, ..]) => render_digest_email(&items),
                _ => EmailMessage {
                    to: msg.page.address.clone(),
                    subject: msg.page.subject.clone().unwrap_or_else(|| {
                        let first = msg.text.lines().next().unwrap_or("pagerbox");
                        format!("[pagerbox] {}", first.chars().take(100).collect::<String>())
                    }),
                    text: msg.text.clone(),
                    html: None,
                },
            };
            let sender = self.sender().map_err(SendError::EmailSetup)?;
            match sender.send(&email).await {
                Ok(r) => {
                    *self.failures.lock().expect("email state") = Failures::default();
                    Ok(Delivered {
                        reference: Some(r.response.clone()),
                        detail: r.response,
                        acknowledged: false,
                    })
                }
                Err(e) => {
                    let e = Arc::new(e);
                    let mut failures = self.failures.lock().expect("email state");
                    let to = msg.page.address.trim().to_lowercase();
                    if matches!(
                        *e,
                        EmailError::Recipient { .. } | EmailError::Message { .. }
                    ) {
                        // Never the relay's: it was not even asked.
                        return Err(SendError::Email(e));
                    }
                    if e.is_this_messages()
                        && failures.refused_for.as_ref().is_none_or(|r| *r == to)
                    {
                        // One bad address (a typo in a person's email, a closed mailbox) fails
                        // its page for good and leaves the channel as it was: other people's
                        // email still goes out, and `/healthz` must not say paging is impaired
                        // for it. A second mailbox refused is no longer one person's (a relay
                        // that answers every recipient that way) and falls through to the
                        // channel's failure below.
                        failures.refused_for = Some(to);
                        return Err(SendError::Email(e));
                    }
                    failures.send = Some(e.clone());
                    if e.refuses_login() {
                        tracing::error!(
                            error = %e,
                            wait_s = REFUSED_PAUSE.as_secs(),
                            "the email relay refuses this box's login: email pages wait before \
                             the next login (fix the settings and reload to try at once)"
                        );
                        let until = tokio::time::Instant::now() + REFUSED_PAUSE;
                        failures.refused = Some((e.clone(), until));
                    }
                    Err(SendError::Email(e))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::at::CmsError;
    use crate::modem::engine::EngineError;

    fn cms500() -> Arc<ModemError> {
        Arc::new(ModemError::Part {
            part: 1,
            total: 1,
            source: EngineError::Cms {
                command: "AT+CMGS".into(),
                code: CmsError::Code(500),
            },
        })
    }

    #[test]
    fn sms_is_down_after_three_failed_submits_in_a_row_and_back_on_the_next_success() {
        let s = SubmitStreak::default();
        s.note(Err(cms500()));
        s.note(Err(cms500()));
        assert!(s.health().is_ok(), "two failures are not yet a pattern");
        // A success in between starts the count over.
        s.note(Ok(()));
        s.note(Err(cms500()));
        s.note(Err(cms500()));
        assert!(s.health().is_ok());
        s.note(Err(cms500()));
        let why = s.health().unwrap_err();
        let text = why.to_string();
        assert!(text.contains("last 3 SMS submits failed"), "{text}");
        assert!(text.contains("CMS ERROR: 500"), "{text}");
        // The modem's error is kept as the source, not flattened into the text.
        let source = std::error::Error::source(&why).expect("the last submit's error");
        assert!(source.to_string().contains("CMS ERROR: 500"), "{source}");
        s.note(Err(cms500()));
        assert!(s.health().is_err());
        s.note(Ok(()));
        assert!(s.health().is_ok());
    }

    #[test]
    fn voice_is_down_after_three_calls_that_did_not_set_up_and_back_when_one_rings() {
        let s = CallStreak::default();
        let not_set_up = || Ok(CallOutcome::NotSetUp("no carrier".into()));
        s.note(&not_set_up());
        s.note(&not_set_up());
        assert!(s.health().is_ok(), "two failures are not yet a pattern");
        // Our own hang-up, a bad number and a down modem say nothing about the line.
        s.note(&Ok(CallOutcome::Failed("hung up on request".into())));
        s.note(&Err(ModemError::InvalidNumber { number: "x".into() }));
        s.note(&Err(ModemError::Stopped));
        assert!(s.health().is_ok());
        s.note(&not_set_up());
        let text = s.health().unwrap_err().to_string();
        assert!(
            text.contains("last 3 calls could not be set up: no carrier"),
            "{text}"
        );
        // A call the person did not take still reached the phone: the line works.
        for reached in [
            CallOutcome::NoAnswer,
            CallOutcome::Busy,
            CallOutcome::Rejected,
            CallOutcome::Answered { dtmf: None },
        ] {
            for _ in 0..3 {
                s.note(&not_set_up());
            }
            assert!(s.health().is_err());
            s.note(&Ok(reached.clone()));
            assert!(s.health().is_ok(), "{reached:?}");
        }
    }

    #[test]
    fn the_page_own_errors_and_a_down_modem_do_not_count() {
        let s = SubmitStreak::default();
        for _ in 0..5 {
            s.note(Err(Arc::new(ModemError::InvalidNumber {
                number: "x".into(),
            })));
            s.note(Err(Arc::new(ModemError::Unavailable {
                reason: "not registered".into(),
            })));
            s.note(Err(Arc::new(ModemError::Stopped)));
        }
        assert!(s.health().is_ok());
    }
}

#[cfg(test)]
mod probe_tests {
    use std::path::Path;

    use pagerbox_testkit::smtp::{Fault, SmtpTestOptions, SmtpTestServer, Stage};

    use super::*;

    fn email_to(port: u16) -> Email {
        let text = format!(
            "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             from = \"pagerbox <pagerbox@box.example>\"\ntimeout = \"1s\"\n"
        );
        let config = Config::parse(&text, "t.toml", Path::new("/"))
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        let (_tx, rx) = watch::channel(Arc::new(config));
        Email::new(rx)
    }

    /// A relay that stopped answering is reported by the channel's own check, before any page
    /// needs it; its return is too.
    #[tokio::test]
    async fn the_email_check_reports_a_broken_relay_before_a_page_needs_it() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        let email = email_to(server.addr().port());
        email.probe().expect("email has a check").await;
        assert!(email.health().is_ok());
        server.push_fault(Fault::reply(Stage::Greeting, 554, "5.3.2 not accepting"));
        email.probe().unwrap().await;
        assert!(
            matches!(email.health(), Err(Unavailable::EmailFailed(_))),
            "{:?}",
            email.health()
        );
        email.probe().unwrap().await;
        assert!(email.health().is_ok());
        assert!(server.messages().is_empty(), "a check sends nothing");
        // A send that failed (a relay that greets and authenticates but refuses the message) is
        // not cleared by a check that passes: only a send that goes through clears it.
        email.failures.lock().unwrap().send = Some(Arc::new(EmailError::NotConnected {
            server: "127.0.0.1".into(),
        }));
        email.probe().unwrap().await;
        assert!(matches!(email.health(), Err(Unavailable::EmailFailed(_))));
    }

    fn config_text(port: u16, timeout: &str, tz: &str) -> Arc<Config> {
        let text = format!(
            "[daemon]\ntime_zone = \"{tz}\"\n[email]\nenabled = true\nhost = \"127.0.0.1\"\n\
             port = {port}\ntls = \"none\"\nfrom = \"pagerbox <pagerbox@box.example>\"\n\
             timeout = \"{timeout}\"\n"
        );
        let parsed =
            Config::parse(&text, "t.toml", Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(parsed.config)
    }

    /// A reload for another reason (a time zone, a schedule) keeps what the relay last said:
    /// an email-only box whose relay refuses pages must not turn healthy on an unrelated
    /// reload. A reload that changes `[email]` starts the rebuilt sender afresh.
    #[tokio::test]
    async fn an_email_failure_outlives_a_reload_that_leaves_email_alone() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        let port = server.addr().port();
        let (tx, rx) = watch::channel(config_text(port, "1s", "UTC"));
        let email = Email::new(rx);
        server.push_fault(Fault::reply(Stage::Greeting, 554, "5.3.2 not accepting"));
        email.probe().unwrap().await;
        email.failures.lock().unwrap().send = Some(Arc::new(EmailError::NotConnected {
            server: "127.0.0.1".into(),
        }));
        assert!(matches!(email.health(), Err(Unavailable::EmailFailed(_))));

        tx.send(config_text(port, "1s", "Europe/Berlin")).unwrap();
        assert!(
            matches!(email.health(), Err(Unavailable::EmailFailed(_))),
            "{:?}",
            email.health()
        );
        // Only the send's failure cleared: the check's still names the sender it checked.
        email.failures.lock().unwrap().send = None;
        assert!(matches!(email.health(), Err(Unavailable::EmailFailed(_))));

        tx.send(config_text(port, "2s", "Europe/Berlin")).unwrap();
        assert!(email.health().is_ok(), "{:?}", email.health());
    }
}

#[cfg(test)]
mod refusal_tests {
    use std::path::Path;

    use pagerbox_testkit::smtp::{Fault, SmtpTestOptions, SmtpTestServer, Stage};

    use super::*;
    use crate::store::outbox::Page;

    /// A reply to send by email, with the config of `port`'s relay.
    fn reply_by_email(port: u16) -> (Email, Outgoing) {
        let text = format!(
            "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             from = \"pagerbox <pagerbox@box.example>\"\ntimeout = \"1s\"\n"
        );
        let config = Arc::new(
            Config::parse(&text, "t.toml", Path::new("/"))
                .unwrap_or_else(|e| panic!("{e}"))
                .config,
        );
        let (_tx, rx) = watch::channel(config.clone());
        let page = Page {
            id: 1,
            kind: PageKind::Reply,
            incident_id: None,
            user_id: None,
            channel: Channel::Email,
            address: "alice@example.org".into(),
            subject: Some("[pagerbox] status".into()),
            body: "all quiet".into(),
            written_for: Some(Channel::Email),
            priority: 0,
            due_at: crate::clock::system_now(),
            attempts: 1,
            channel_attempts: 1,
            channel_since: crate::clock::system_now(),
            state: crate::store::kinds::OutboxState::Sending,
            reference: None,
            created_at: crate::clock::system_now(),
            items: vec![],
        };
        let out = Outgoing {
            page,
            text: "all quiet".into(),
            incidents: vec![],
            config,
        };
        (Email::new(rx), out)
    }

    /// A relay that stalls mid-exchange fails the attempt within `email.timeout` and shows in
    /// the channel's health: the sender's outer bound, which would end the attempt without a
    /// trace, always comes later, also for the longest timeout the config takes.
    #[tokio::test]
    async fn a_stalled_relay_fails_inside_the_senders_bound_and_shows() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        server.push_fault(Fault::stall(Stage::DataEnd));
        let (email, out) = reply_by_email(server.addr().port());
        let attempt = tokio::time::timeout(email.timeout(), email.send(&out)).await;
        assert!(matches!(attempt, Ok(Err(_))), "{attempt:?}");
        assert!(matches!(email.health(), Err(Unavailable::EmailFailed(_))));
        let text = "[email]\nenabled = true\nhost = \"127.0.0.1\"\ntls = \"none\"\n\
                    from = \"pagerbox@box.example\"\ntimeout = \"5m\"\n";
        let config = Config::parse(text, "t.toml", Path::new("/"))
            .unwrap()
            .config;
        let longest = config.email.timeout;
        assert_eq!(longest, Duration::from_secs(300));
        let (_tx, rx) = watch::channel(Arc::new(config));
        assert!(Email::new(rx).timeout() > longest);
    }

    /// A relay that refuses one recipient ("550 no such user"), or an address that is not one,
    /// fails that page and leaves the channel healthy: one person's typo must not turn
    /// `/healthz` red for everyone. A refusal of the box (relaying denied) still shows.
    #[tokio::test]
    async fn one_refused_recipient_does_not_mark_email_failed() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        let (email, mut out) = reply_by_email(server.addr().port());
        server.push_fault(Fault::reply(Stage::Rcpt, 550, "5.1.1 No such user"));
        assert!(email.send(&out).await.is_err());
        assert!(email.health().is_ok(), "{:?}", email.health());
        let good = out.page.address.clone();
        out.page.address = "not an address".into();
        assert!(email.send(&out).await.is_err());
        assert!(email.health().is_ok(), "{:?}", email.health());
        out.page.address = good.clone();
        server.push_fault(Fault::reply(Stage::Rcpt, 554, "5.7.1 Relay access denied"));
        assert!(email.send(&out).await.is_err());
        assert!(
            matches!(email.health(), Err(Unavailable::EmailFailed(_))),
            "{:?}",
            email.health()
        );
        // A send that goes through clears it.
        email.send(&out).await.unwrap();
        assert!(email.health().is_ok(), "{:?}", email.health());
    }

    /// A mailbox refusal for two different people is not one person's bad address (a relay that
    /// answers every recipient that way), and a permanent refusal that does not name the
    /// mailbox (a sender address the relay will not take, a policy) would refuse everyone's mail:
    /// both mark the channel failed, so `/healthz` does not say ok while every email fails.
    #[tokio::test]
    async fn a_refusal_that_is_not_one_persons_marks_email_failed() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        let (email, mut out) = reply_by_email(server.addr().port());
        for _ in 0..2 {
            server.push_fault(Fault::reply(Stage::Rcpt, 550, "5.1.1 User unknown"));
            assert!(email.send(&out).await.is_err());
            assert!(email.health().is_ok(), "{:?}", email.health());
        }
        let alice = out.page.address.clone();
        out.page.address = "bob@example.org".into();
        server.push_fault(Fault::reply(Stage::Rcpt, 550, "5.1.1 User unknown"));
        assert!(email.send(&out).await.is_err());
        assert!(
            matches!(email.health(), Err(Unavailable::EmailFailed(_))),
            "{:?}",
            email.health()
        );
        email.send(&out).await.unwrap();
        assert!(email.health().is_ok(), "{:?}", email.health());
        out.page.address = alice;
        server.push_fault(Fault::reply(
            Stage::Mail,
            553,
            "5.7.1 Sender address rejected",
        ));
        assert!(email.send(&out).await.is_err());
        assert!(
            matches!(email.health(), Err(Unavailable::EmailFailed(_))),
            "{:?}",
            email.health()
        );
    }

    /// A relay that refuses the box's login is left alone for a while: the next pages do not
    /// each log in again. One that refuses a message for a passing reason, or refuses to relay
    /// (some relays say so per recipient), is tried again at once.
    #[tokio::test]
    async fn a_relay_that_refuses_the_login_is_not_tried_again_at_once() {
        let server = SmtpTestServer::start(SmtpTestOptions::default())
            .await
            .unwrap();
        let (email, out) = reply_by_email(server.addr().port());
        server.push_fault(Fault::reply(
            Stage::Mail,
            530,
            "5.7.0 Authentication required",
        ));
        assert!(email.ready().is_ok());
        assert!(email.send(&out).await.is_err());
        assert!(
            matches!(email.ready(), Err(Unavailable::EmailFailed(_))),
            "{:?}",
            email.ready()
        );
        // The pause over, the next page tries (and here gets through).
        {
            let mut failures = email.failures.lock().unwrap();
            let (_, until) = failures.refused.as_mut().unwrap();
            *until = tokio::time::Instant::now();
        }
        assert!(email.ready().is_ok());
        email.send(&out).await.unwrap();
        assert_eq!(server.messages().len(), 1);
        // A passing refusal (greylisting) or a refusal to relay keeps email ready.
        for (code, text) in [
            (451, "4.7.1 try again later"),
            (554, "5.7.1 Relay access denied"),
        ] {
            server.push_fault(Fault::reply(Stage::Rcpt, code, text));
            assert!(email.send(&out).await.is_err());
            assert!(email.ready().is_ok(), "{code}");
        }
    }
}

#[cfg(test)]
mod sms_timeout_tests {
    use super::*;

    #[test]
    fn a_page_of_many_slow_parts_fits_the_transport_timeout() {
        let s = Duration::from_secs;
        assert_eq!(
            sms_page_timeout(s(120), 1),
            s(180),
            "never below the default"
        );
        assert_eq!(sms_page_timeout(s(120), 3), s(390));
        assert_eq!(sms_page_timeout(s(600), 10), s(6100));
        assert_eq!(sms_page_timeout(s(120), 0), s(180));
    }
}
