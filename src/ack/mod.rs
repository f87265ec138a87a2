//! Acknowledge from anywhere by phone: SMS reply commands, missed-call acks and DTMF acks.
//!
//! This module owns what a person can do with their phone, and nothing about how the phone is
//! reached: the modem driver turns incoming SMS and calls into [`crate::modem::ModemEvent`]s,
//! the daemon hands them to the [`Acker`] (through an [`AckHandle`] and the task [`run`]), and
//! every reply is a row in the outbox (kind `reply`) that the notify senders deliver like any
//! page. Parsing is pure ([`command::parse`]); each action and its reply are written in one store
//! transaction, so an acknowledgement and its confirmation commit together or not at all, and
//! the acknowledgement cancels the incident's queued pages in that same commit (through
//! `store::queries::transition`), so escalation stops at once.
//!
//! Who may: the sender's number is normalised ([`PhoneNumber::readings`] with the configured
//! country code: bare digits are also read as national where no trunk `0` is dialled) and must be
//! exactly one configured user's phone. Anyone else gets no reply at all (no SMS
//! loops, no cost) and is logged with a masked number. A configured user may acknowledge or
//! resolve an incident paged to them or whose escalation policy names them or a schedule they
//! are on; for any other incident they get a refusal naming why (`actions::refusal`), because an
//! ack by someone it does not concern silently stops the escalation paging those responsible.
//! `ACK`/`RES` without a number mean the page that most recently reached the sender's phone
//! (sent or delivered, not queued: `actions::last_paged`), and the confirmation lists the
//! sender's other open incidents paged recently, with the reply that stops each. Alphanumeric senders are never answered.
//! Each sender has a rate limit ([`limit`]) on messages that parse as commands; over it, the
//! first message is answered "slow down" and the rest are ignored, except that an ack or resolve
//! of an incident paged to that sender is always carried out (only its reply is held back): a
//! limit meant to save SIM credit must never keep a person from stopping their own page. Texts
//! that are not commands have a smaller budget of error replies of their own, so junk or an
//! auto-reply loop is answered a few times and then not at all, and never uses up the command
//! budget.
//! The timeline records the user and the path (`sms`, `missed-call`, `dtmf`).
//!
//! Not here: sending (notify), rejecting the call on the modem (the daemon does that when
//! [`CallDecision::reject`] says so), the HTTP/CLI ack paths (they use the store directly).

pub mod command;
pub mod limit;
pub mod modem_events;
pub mod text;

mod actions;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{mask_number, Config, PhoneNumber};
use crate::incident::{IncidentId, Status};
use crate::modem::ModemEvent;
use crate::store::{Store, StoreError, Tx};
use actions::{Reply, Sender};
pub use actions::{REPLY_PRIORITY, TAKE_FALLBACK};
use command::Command;
use limit::{Limiter, Verdict};

/// Default window after a page in which a missed call from the paged person acknowledges.
pub const DEFAULT_MISSED_CALL_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Requests that may wait for the ack task.
pub const QUEUE_CAPACITY: usize = 64;

/// An incoming SMS as the ack handler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Sender as the modem reported it: E.164, national, `00...`, or a name.
    pub from: String,
    /// The decoded text (GSM-7 or UCS-2 already turned into a `String`).
    pub text: String,
    /// The sender is a name, not a number: never answered.
    pub alphanumeric: bool,
    /// When pagerbox received it (the service-centre timestamp is the phone network's clock and
    /// is not used for decisions).
    pub received_at: DateTime<Utc>,
}

impl Inbound {
    /// The SMS in a modem event, if it is one. `received_at` is pagerbox's clock now.
    pub fn from_event(event: &ModemEvent, received_at: DateTime<Utc>) -> Option<Inbound> {
        match event {
            ModemEvent::SmsReceived {
                from,
                text,
                alphanumeric,
                ..
            } => Some(Inbound {
                from: from.clone(),
                text: text.clone(),
                alphanumeric: *alphanumeric,
                received_at,
            }),
            _ => None,
        }
    }
}

/// What handling a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The action (if any) and this reply to `to` were committed together; the reply is queued
    /// in the outbox.
    Replied { to: PhoneNumber, text: String },
    /// Nothing was done and nothing is sent: unknown or alphanumeric sender, rate limit, or a
    /// missed call that acknowledged nothing.
    Ignored { reason: String },
    /// The action was done (an ack or resolve over the rate limit) but its reply, `text`, was
    /// held back by the limit.
    Acted { text: String },
}

/// What to do with an incoming call, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDecision {
    /// Reject the call unanswered (`Modem::reject_incoming`): the caller is a user who was paged
    /// within the window for a route that takes missed-call acks. False for everyone else: the
    /// call is left alone (it is never answered either way).
    pub reject: bool,
    /// The acknowledgement and confirmation SMS, or why nothing was done.
    pub outcome: Outcome,
}

/// What can go wrong while handling a message. Unknown senders, bad commands and the rate limit
/// are not errors: they are [`Outcome`]s.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AckError {
    /// The store could not run or commit the action; nothing was done and nothing is sent.
    #[error("store failed while handling {what}: {source}")]
    Store {
        /// Which kind of message: `an sms command`, `a missed call`, `a dtmf ack`.
        what: &'static str,
        #[source]
        source: StoreError,
    },
    /// The ack task has stopped (shutdown).
    #[error("ack task has stopped")]
    Stopped,
}

impl AckError {
    /// True when the same message may succeed later (the store was busy or failed to commit).
    pub fn is_retryable(&self) -> bool {
        match self {
            AckError::Store { source, .. } => source.is_retryable(),
            AckError::Stopped => false,
        }
    }
}

/// Handles phone commands. Owns the rate limiter, so exactly one task should own it ([`run`]);
/// everyone else holds an [`AckHandle`].
pub struct Acker {
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    /// Messages that parsed as commands.
    limiter: Limiter,
    /// Error replies to texts that are not commands.
    junk: Limiter,
    missed_call_window: Duration,
}

/// Error replies to non-commands per sender per [`limit::DEFAULT_WINDOW`]: enough for a person
/// who mistyped to learn the syntax, few enough that an auto-reply loop dies at once.
pub const JUNK_REPLY_LIMIT: usize = 3;

/// What the rate limit lets a command do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    /// Under the limit: act and reply.
    Within,
    /// The first over the limit: reply "slow down"; act only on an ack/resolve of a page.
    FirstOver,
    /// Over the limit again: act only on an ack/resolve of a page, reply nothing.
    Over,
}

impl Acker {
    /// An acker over `store` that reads the current config from `config` at every message (so a
    /// reload changes who may send commands at once). `missed_call_window`: how long after a page
    /// a missed call from the paged person acknowledges ([`DEFAULT_MISSED_CALL_WINDOW`]). The
    /// rate limit is [`limit::DEFAULT_LIMIT`] commands per [`limit::DEFAULT_WINDOW`] per sender.
    pub fn new(
        store: Store,
        config: watch::Receiver<Arc<Config>>,
        missed_call_window: Duration,
    ) -> Acker {
        Acker {
            store,
            config,
            limiter: Limiter::new(limit::DEFAULT_LIMIT, limit::DEFAULT_WINDOW),
            junk: Limiter::new(JUNK_REPLY_LIMIT, limit::DEFAULT_WINDOW),
            missed_call_window,
        }
    }

    /// The same acker with another per-sender rate limit (commands, and the error replies to
    /// non-commands in the same window).
    pub fn with_rate_limit(mut self, limit: usize, window: Duration) -> Acker {
        self.limiter = Limiter::new(limit, window);
        self.junk = Limiter::new(JUNK_REPLY_LIMIT.min(limit), window);
        self
    }

    /// The configured user `from` belongs to, with their normalised number. A number that can
    /// be read two ways (bare digits: see [`PhoneNumber::readings`]) belongs to a user only if
    /// exactly one user has one of its readings.
    fn identify(&self, config: &Arc<Config>, from: &str) -> Option<(String, PhoneNumber)> {
        let mut found: Option<(String, PhoneNumber)> = None;
        for number in PhoneNumber::readings(from, &config.daemon.country_code) {
            let Some(user) = config.user_by_phone(&number) else {
                continue;
            };
            match &found {
                Some((id, _)) if *id != user.id => {
                    tracing::warn!(sender = %mask_number(from), "a number that two users' numbers could be is trusted for neither");
                    return None;
                }
                Some(_) => {}
                None => found = Some((user.id.clone(), number)),
            }
        }
        found
    }

    /// Handles one incoming SMS at `now`: checks the sender, parses the command, runs it and
    /// queues the reply in one transaction. A text that is not a command gets an error reply
    /// that says so (to known senders only).
    pub async fn handle_sms(
        &mut self,
        msg: Inbound,
        now: DateTime<Utc>,
    ) -> Result<Outcome, AckError> {
        if msg.alphanumeric {
            tracing::info!(sender = %mask_number(&msg.from), "sms from an alphanumeric sender ignored");
            return Ok(ignored("alphanumeric sender"));
        }
        let config = self.config.borrow().clone();
        let Some((user, number)) = self.identify(&config, &msg.from) else {
            tracing::info!(sender = %mask_number(&msg.from), "sms from an unknown sender ignored");
            return Ok(ignored("unknown sender"));
        };
        let parsed = command::parse(&msg.text);
        let Some(budget) = self.budget(&parsed, &user, &number, now) else {
            return Ok(ignored("not a command; rate limited"));
        };
        let sender = Sender {
            config,
            user: user.clone(),
            address: Some(number.to_string()),
            via: "sms",
        };
        tracing::info!(
            user = %user,
            command = parsed.as_ref().map(kind).unwrap_or("invalid"),
            over_limit = budget != Budget::Within,
            "sms command"
        );
        let done = self
            .store
            .call(move |conn, _| run_command(conn, &sender, &parsed, budget, now))
            .await
            .map_err(|source| AckError::Store {
                what: "an sms command",
                source,
            })?;
        Ok(match done {
            Done::Replied(reply) => Outcome::Replied {
                to: number,
                text: reply.text,
            },
            Done::Acted(text) => Outcome::Acted { text },
            Done::Nothing => ignored("rate limited"),
        })
    }

    /// What the sender's rate limit lets this text do at `now`; `None`: a text that is not a
    /// command over its own (smaller) limit, which gets no reply at all.
    fn budget(
        &mut self,
        parsed: &Result<Command, command::ParseError>,
        user: &str,
        number: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Option<Budget> {
        match parsed {
            Err(_) => match self.junk.check(number, now) {
                Verdict::Allowed => Some(Budget::Within),
                Verdict::FirstRefused => {
                    tracing::warn!(user = %user, sender = %number.masked(), "sms texts that are not commands keep coming; not answering them until the window clears");
                    None
                }
                Verdict::Refused => None,
            },
            Ok(_) => Some(match self.limiter.check(number, now) {
                Verdict::Allowed => Budget::Within,
                Verdict::FirstRefused => {
                    tracing::warn!(user = %user, sender = %number.masked(), "sms commands over the rate limit; only acks and resolves of their pages are carried out until the window clears");
                    Budget::FirstOver
                }
                Verdict::Refused => Budget::Over,
            }),
        }
    }

    /// Handles an incoming call at `now` from `from` (`None`: number withheld). A known user
    /// paged within the window acknowledges the still-triggered incidents paged to them whose
    /// route has `missed_call_ack = true`, and gets a confirmation SMS. The decision says whether
    /// to reject the call. A repeated `RING` for the same call acknowledges nothing new and sends
    /// nothing.
    pub async fn handle_missed_call(
        &mut self,
        from: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<CallDecision, AckError> {
        let leave = |reason: &str| CallDecision {
            reject: false,
            outcome: ignored(reason),
        };
        let Some(from) = from.filter(|f| !f.trim().is_empty()) else {
            tracing::info!("incoming call with a withheld number ignored");
            return Ok(leave("withheld number"));
        };
        let config = self.config.borrow().clone();
        let Some((user, number)) = self.identify(&config, &from) else {
            tracing::info!(caller = %mask_number(&from), "incoming call from an unknown number ignored");
            return Ok(leave("unknown caller"));
        };
        let sender = Sender {
            config,
            user: user.clone(),
            address: Some(number.to_string()),
            via: "missed-call",
        };
        let window = self.missed_call_window;
        let done = self
            .store
            .call(move |conn, _| {
                let done = actions::missed_call(conn, &sender, window, now)?;
                if let Some(reply) = &done.reply {
                    actions::queue_reply(conn, &sender, reply, now)?;
                }
                Ok(done)
            })
            .await
            .map_err(|source| AckError::Store {
                what: "a missed call",
                source,
            })?;
        tracing::info!(user = %user, meant = done.meant, acked = done.reply.is_some(), "missed call");
        let outcome = match done.reply {
            Some(r) => Outcome::Replied {
                to: number,
                text: r.text,
            },
            None if done.meant => ignored("nothing left to acknowledge"),
            None => ignored("not paged within the missed-call window"),
        };
        Ok(CallDecision {
            reject: done.meant,
            outcome,
        })
    }

    /// A key press acknowledging `incident` during a page call to `user`: acknowledges exactly
    /// like an SMS reply (timeline `via dtmf`) and confirms by SMS when the user has a phone.
    pub async fn handle_dtmf_ack(
        &mut self,
        user: &str,
        incident: IncidentId,
        now: DateTime<Utc>,
    ) -> Result<Outcome, AckError> {
        let config = self.config.borrow().clone();
        let number = config.user(user).and_then(|u| u.phone.clone());
        let sender = Sender {
            config,
            user: user.to_string(),
            address: number.as_ref().map(|n| n.to_string()),
            via: "dtmf",
        };
        let reply = self
            .store
            .call(move |conn, _| {
                let reply = actions::act(conn, &sender, &[incident], Status::Acknowledged, now)?;
                actions::queue_reply(conn, &sender, &reply, now)?;
                Ok(reply)
            })
            .await
            .map_err(|source| AckError::Store {
                what: "a dtmf ack",
                source,
            })?;
        tracing::info!(user = %user, incident, "dtmf acknowledge");
        Ok(match number {
            Some(to) => Outcome::Replied {
                to,
                text: reply.text,
            },
            None => ignored("acknowledged; user has no phone for a confirmation"),
        })
    }
}

/// The store job of one SMS: runs the command as far as `budget` allows and queues its reply,
/// so the action and its confirmation commit together. A text that is not a command is answered
/// with what is wrong with it.
fn run_command(
    conn: &Tx,
    sender: &Sender,
    parsed: &Result<Command, command::ParseError>,
    budget: Budget,
    now: DateTime<Utc>,
) -> Result<Done, StoreError> {
    let done = match (parsed, budget) {
        (Ok(cmd), Budget::Within) => Done::Replied(actions::execute(conn, sender, cmd, now)?),
        (Ok(cmd), over) => {
            let acted = if actions::acts_on_own_page(conn, &sender.user, cmd)? {
                Some(actions::execute(conn, sender, cmd, now)?)
            } else {
                None
            };
            match (over, acted) {
                (Budget::FirstOver, acted) => Done::Replied(slow_down(acted)),
                (_, Some(r)) => Done::Acted(r.text),
                (_, None) => Done::Nothing,
            }
        }
        (Err(e), _) => Done::Replied(Reply {
            text: text::clip(&e.to_string(), 1),
            incident: None,
        }),
    };
    if let Done::Replied(reply) = &done {
        actions::queue_reply(conn, sender, reply, now)?;
    }
    Ok(done)
}

/// What an SMS command did in the store.
enum Done {
    /// Acted (or not) and queued this reply.
    Replied(Reply),
    /// Acted; the reply (this text) is held back by the rate limit.
    Acted(String),
    /// Nothing: over the rate limit and not an ack/resolve of the sender's page.
    Nothing,
}

/// The one reply to the first command over the rate limit: what it did, if it was an ack or
/// resolve of the sender's page, and that only those are done until the window clears.
fn slow_down(acted: Option<Reply>) -> Reply {
    let done = acted
        .as_ref()
        .map(|r| format!("{}. ", r.text))
        .unwrap_or_default();
    Reply {
        text: text::clip(
            &format!("{done}slow down: too many commands. Until it clears, only ACK/RES of your pages are done, unanswered"),
            1,
        ),
        incident: acted.and_then(|r| r.incident),
    }
}

fn ignored(reason: &str) -> Outcome {
    Outcome::Ignored {
        reason: reason.to_string(),
    }
}

/// The command's name for logs (never its text: notes may hold anything).
fn kind(c: &Command) -> &'static str {
    match c {
        Command::Acknowledge(_) => "acknowledge",
        Command::Resolve(_) => "resolve",
        Command::Escalate(_) => "escalate",
        Command::Note { .. } => "note",
        Command::Details(_) => "details",
        Command::OnCall => "oncall",
        Command::Status => "status",
        Command::Take(_) => "take",
        Command::Page { .. } => "page",
        Command::Help => "help",
    }
}

/// A request to the ack task.
enum Request {
    Sms(Inbound, oneshot::Sender<Result<Outcome, AckError>>),
    Call(
        Option<String>,
        oneshot::Sender<Result<CallDecision, AckError>>,
    ),
    Dtmf(
        String,
        IncidentId,
        oneshot::Sender<Result<Outcome, AckError>>,
    ),
}

/// The receiving end of an [`AckHandle`], given to [`run`].
pub struct Requests(mpsc::Receiver<Request>);

/// Cloneable handle to the ack task. Each method waits until the action and its reply are
/// committed (or failed).
#[derive(Clone)]
pub struct AckHandle {
    tx: mpsc::Sender<Request>,
}

/// A handle and the request queue for [`run`] (bounded by [`QUEUE_CAPACITY`]).
pub fn channel() -> (AckHandle, Requests) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    (AckHandle { tx }, Requests(rx))
}

impl AckHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, AckError>>) -> Request,
    ) -> Result<T, AckError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| AckError::Stopped)?;
        rx.await.map_err(|_| AckError::Stopped)?
    }

    /// Handles an incoming SMS ([`Acker::handle_sms`]).
    pub async fn sms(&self, msg: Inbound) -> Result<Outcome, AckError> {
        self.ask(|tx| Request::Sms(msg, tx)).await
    }

    /// Handles an incoming call ([`Acker::handle_missed_call`]); reject it when told to.
    pub async fn missed_call(&self, from: Option<String>) -> Result<CallDecision, AckError> {
        self.ask(|tx| Request::Call(from, tx)).await
    }

    /// Handles "press 1 to acknowledge" ([`Acker::handle_dtmf_ack`]).
    pub async fn dtmf_ack(&self, user: &str, incident: IncidentId) -> Result<Outcome, AckError> {
        let user = user.to_string();
        self.ask(|tx| Request::Dtmf(user, incident, tx)).await
    }
}

/// A "1" pressed during a voice page is a DTMF acknowledgement ([`AckHandle::dtmf_ack`]).
impl crate::notify::transport::KeypadAck for AckHandle {
    fn keypad_ack<'a>(
        &'a self,
        user: &'a str,
        incident: IncidentId,
    ) -> crate::notify::transport::KeypadAckFuture<'a> {
        Box::pin(async move {
            if crate::fault::armed("ack.keypad") {
                return Err("the acknowledgement was not taken (fault point ack.keypad)".into());
            }
            self.dtmf_ack(user, incident)
                .await
                .map(drop)
                .map_err(Into::into)
        })
    }
}

/// The ack task: handles requests one at a time, with `now` from `clock`, until `shutdown` or
/// until every handle is dropped. A request in hand is finished (committed and answered) before
/// it stops. Store failures are logged and returned to the caller; the task carries on. `beat`
/// is fed once per request and, while idle, at least every half of its bound.
pub async fn run(
    mut acker: Acker,
    mut requests: Requests,
    clock: Arc<dyn Clock>,
    beat: crate::supervisor::Heartbeat,
    shutdown: CancellationToken,
) {
    loop {
        beat.beat();
        let req = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(beat.idle_bound()) => continue,
            r = requests.0.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let now = clock.now();
        match req {
            Request::Sms(msg, tx) => {
                let r = acker.handle_sms(msg, now).await;
                log_failure(&r);
                let _ = tx.send(r);
            }
            Request::Call(from, tx) => {
                let r = acker.handle_missed_call(from, now).await;
                log_failure(&r);
                let _ = tx.send(r);
            }
            Request::Dtmf(user, incident, tx) => {
                let r = acker.handle_dtmf_ack(&user, incident, now).await;
                log_failure(&r);
                let _ = tx.send(r);
            }
        }
    }
}

fn log_failure<T>(r: &Result<T, AckError>) {
    if let Err(e) = r {
        // The person gets no answer and believes they acted while escalation carries on.
        tracing::error!(error = %e, retryable = e.is_retryable(), "phone command failed");
    }
}

#[cfg(test)]
mod tests;
