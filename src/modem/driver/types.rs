//! The driver's public vocabulary: settings, events, outcomes, status, health and errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::modem::at::{RegStatus, SimState};
use crate::modem::engine::EngineError;
use crate::modem::pdu::{DeliveryOutcome, PduError};
use crate::modem::profile::{Profile, ProfileChoice};
use crate::supervisor::Heartbeat;

/// A SIM PIN. It has no `Display`, and its `Debug` is redacted, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Wraps a PIN (4 to 8 digits by the standard; not checked here, the SIM decides).
    pub fn new(pin: impl Into<String>) -> Self {
        Self(pin.into().trim().to_string())
    }

    /// The PIN itself, for the one command that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// How to reach and drive the modem. Built by the config module from `[modem]`; start from
/// [`Settings::new`] so fields added later get defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The AT port (serial device or a simulator's PTY link).
    pub device: PathBuf,
    /// Which profile, or detect.
    pub profile: ProfileChoice,
    /// Baud rate for real UARTs.
    pub baud: u32,
    /// SIM PIN. Entered at most while it has never been rejected: a rejected PIN is never
    /// sent again in this process (three wrong tries lock the SIM).
    pub pin: Option<Pin>,
    /// SMSC to set with `AT+CSCA` when the SIM carries none.
    pub smsc: Option<String>,
    /// Ask for status reports (TP-SRR) and turn on their indication.
    pub delivery_reports: bool,
    /// Deadline for ordinary commands.
    pub command_timeout: Duration,
    /// Deadline for one `AT+CMGS` (network round trip).
    pub sms_timeout: Duration,
    /// How often SIM, registration and signal are polled; also the keepalive that catches a
    /// silent modem.
    pub health_interval: Duration,
    /// Text mode (`AT+CMGF=1`) instead of PDU mode, for modems whose PDU mode is broken.
    /// Single-part GSM text only.
    pub text_mode: bool,
    /// First delay before reopening a lost port; doubles per failure, with jitter.
    pub reopen_min: Duration,
    /// Longest delay between reopen attempts. Short, because every second of it is a second
    /// with no paging after the modem is back (a USB modem re-enumerating after a brown-out is
    /// gone for a few seconds), and a failed open or bring-up costs the box next to nothing.
    pub reopen_max: Duration,
    /// How often a call's state is polled with `AT+CLCC`.
    pub call_poll: Duration,
    /// Pause before resubmitting a part after a retryable `+CMS ERROR`.
    pub part_retry_delay: Duration,
    /// How many times one part is submitted at most.
    pub part_attempts: u32,
    /// Read, report and delete incoming messages. The daemon wants this; one-shot tools
    /// (`pagerbox modem status`) turn it off so replies stay stored for the daemon.
    pub receive_messages: bool,
    /// Fed by the driver's request loop on every turn and every finished AT exchange, so a
    /// supervisor can tell a driver that stopped working from one that is merely idle (an idle
    /// driver wakes at least every [`Heartbeat::idle_bound`] to feed it). Detached (watched by
    /// nobody) unless the daemon registers one.
    pub heartbeat: Heartbeat,
}

impl Settings {
    /// Defaults for everything but the device.
    pub fn new(device: impl Into<PathBuf>) -> Self {
        Self {
            device: device.into(),
            profile: ProfileChoice::Auto,
            baud: 115_200,
            pin: None,
            smsc: None,
            delivery_reports: true,
            command_timeout: Duration::from_secs(10),
            sms_timeout: Duration::from_secs(120),
            health_interval: Duration::from_secs(30),
            text_mode: false,
            reopen_min: Duration::from_secs(1),
            reopen_max: Duration::from_secs(10),
            call_poll: Duration::from_secs(1),
            part_retry_delay: Duration::from_secs(2),
            part_attempts: 3,
            receive_messages: true,
            heartbeat: Heartbeat::detached("modem"),
        }
    }

    /// A bound for [`Settings::heartbeat`] that fits these settings. The loop beats on every
    /// turn and after every AT exchange, so the longest silence is the longest exchange it can
    /// be in: an SMS part's submit (`sms_timeout`), the resync after it timed out, and the
    /// pauses between a part's attempts; an idle loop wakes every half bound. Twice that, and
    /// never below two health intervals. A USSD request's wait for the network's answer beats
    /// like the idle loop, so it may be longer.
    pub fn heartbeat_bound(&self) -> Duration {
        let exchange = self
            .sms_timeout
            .saturating_add(self.command_timeout.saturating_mul(2))
            .saturating_add(self.part_retry_delay.saturating_mul(self.part_attempts));
        exchange.max(self.health_interval).saturating_mul(2)
    }

    /// How long the modem may go without answering before it counts as not answering
    /// ([`Health::not_answering`]): the driver's health poll makes it answer at least once per
    /// `health_interval` while the port is open, and one submit may take `sms_timeout`; three
    /// missed polls on top of that is not a slow network any more.
    pub fn answer_bound(&self) -> Duration {
        self.health_interval
            .saturating_mul(3)
            .saturating_add(self.sms_timeout)
    }
}

/// What happened on the modem that the rest of the daemon should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemEvent {
    /// A complete incoming SMS (multipart already joined; parts that never all arrive are
    /// delivered joined as far as they got after the reassembly timeout).
    SmsReceived {
        /// Sender number (`+49...`) or alphanumeric name.
        from: String,
        /// The text.
        text: String,
        /// Service-centre timestamp with its zone.
        timestamp: DateTime<FixedOffset>,
        /// The sender is a name, not a number (cannot be replied to).
        alphanumeric: bool,
    },
    /// A status report for a message sent earlier.
    DeliveryReport {
        /// The TP-MR that `+CMGS` returned for the part.
        reference: u8,
        /// Who it was sent to.
        recipient: String,
        /// `outcome == Delivered`.
        delivered: bool,
        /// Delivered, still pending, or failed.
        outcome: DeliveryOutcome,
        /// Raw TP-ST.
        status: u8,
    },
    /// Someone is calling the modem.
    IncomingCall {
        /// The caller, when shown.
        from: Option<String>,
    },
    /// A key pressed during a call.
    Dtmf {
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        key: char,
    },
    /// A call (either direction) ended.
    CallEnded,
}

/// What `send_sms` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReceipt {
    /// TP-MR of each part, in order; status reports quote these.
    pub references: Vec<u8>,
    /// How many parts were sent.
    pub parts: usize,
}

/// How to place a voice page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOptions {
    /// How long to let it ring before giving up.
    pub ring_for: Duration,
    /// What to say once answered (modems with TTS only).
    pub speak: Option<String>,
    /// How many times to say it.
    pub repeat: u32,
    /// Listen for a key press ("1" = acknowledge).
    pub listen_dtmf: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            ring_for: Duration::from_secs(30),
            speak: None,
            repeat: 2,
            listen_dtmf: true,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// Picked up; `dtmf` is the first key pressed, if any.
    Answered {
        /// The key (`'1'` acknowledges).
        dtmf: Option<char>,
    },
    /// The callee was busy.
    Busy,
    /// Rang out without an answer.
    NoAnswer,
    /// Rang, then the callee declined.
    Rejected,
    /// The network or the modem would not set the call up: `NO CARRIER` as the dial's result or
    /// after the call was seen dialling and never ringing, `NO DIALTONE`. Says something about
    /// the line (no credit, no voice service, barred), not about the person called.
    NotSetUp(String),
    /// Ended for a reason of ours or the modem's (hung up on request, shutting down, port lost,
    /// a data connection); the reason says which.
    Failed(String),
}

/// Both registrations the modem reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registration {
    /// `+CREG` (2G/3G circuit switched).
    pub circuit: Option<RegStatus>,
    /// `+CEREG` (LTE).
    pub eps: Option<RegStatus>,
}

impl Registration {
    /// Whether SMS can go out in either domain.
    pub fn is_registered(&self) -> bool {
        self.circuit.is_some_and(RegStatus::is_registered)
            || self.eps.is_some_and(RegStatus::is_registered)
    }

    /// The most useful state to show: a registered one if any, else the circuit one.
    pub fn best(&self) -> Option<RegStatus> {
        [self.circuit, self.eps]
            .into_iter()
            .flatten()
            .find(|s| s.is_registered())
            .or(self.circuit)
            .or(self.eps)
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.best() {
            Some(s) => f.write_str(s.as_str()),
            None => f.write_str("unknown"),
        }
    }
}

/// A snapshot for `pagerbox modem status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemStatus {
    /// `AT+CGMI`.
    pub manufacturer: String,
    /// `AT+CGMM`.
    pub model: String,
    /// `AT+CGMR`.
    pub revision: String,
    /// `AT+CGSN`, when the modem tells.
    pub imei: Option<String>,
    /// SIM state.
    pub sim: SimState,
    /// Network registration.
    pub registration: Registration,
    /// `AT+COPS?` operator name.
    pub operator: Option<String>,
    /// `AT+CSQ` in dBm; `None` when unknown (99).
    pub signal_dbm: Option<i32>,
    /// Profile in use.
    pub profile: Profile,
}

/// Can the modem page right now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Registered, SIM ready, answering.
    Up,
    /// Pages go out but something is off (weak signal, slow answers).
    Degraded,
    /// Pages cannot go out: port lost, SIM problem, not registered, not answering.
    Down,
}

impl HealthState {
    /// Lower-case word for logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// The driver's last known state of the modem, published on a watch channel.
///
/// Readers (the status page, `/metrics`, `/healthz`) take it from here and never ask the
/// modem: an AT command per page load would queue in front of pages. The driver refreshes the
/// readings with its own health poll (every `health_interval`). Receivers are woken when
/// `state` or `reason` changes or a reading changes at a poll; `last_answer` and
/// `events_dropped` are updated in place without waking anyone (they change with every
/// command), so read them with `borrow()` when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Up, degraded or down.
    pub state: HealthState,
    /// Why, in words an operator understands ("SIM PIN rejected", "port lost").
    pub reason: String,
    /// When `state` last changed.
    pub since: DateTime<Utc>,
    /// Last `AT+CSQ` reading in dBm; `None` when unknown (99, or not read yet).
    pub signal_dbm: Option<i32>,
    /// Registered (home or roaming) in either domain at the last check.
    pub registered: bool,
    /// The SIM answered `READY` at the last check.
    pub sim_ready: bool,
    /// Both registrations as last read (`+CREG`/`+CEREG`).
    pub registration: Registration,
    /// The network operator (`AT+COPS?`) as last read; `None` until read or when unregistered.
    pub operator: Option<String>,
    /// The SIM state as last read.
    pub sim: SimState,
    /// When the modem last completed an AT exchange (any final result, `ERROR` included).
    /// `None` until it first answers. A modem that has not answered within a few health
    /// intervals is not answering, whatever `state` says: see [`Health::silent_for`].
    pub last_answer: Option<DateTime<Utc>>,
    /// Events the driver dropped because the daemon did not take them in time and its backlog
    /// was full (delivery reports first); counts up for the life of the process.
    pub events_dropped: u64,
    /// How long the modem may stay silent before [`Health::not_answering`] says so; from
    /// [`Settings::answer_bound`].
    pub answer_bound: Duration,
}

impl Health {
    /// The state before the port was first opened.
    pub fn starting(now: DateTime<Utc>) -> Self {
        Self {
            state: HealthState::Down,
            reason: "starting".into(),
            since: now,
            signal_dbm: None,
            registered: false,
            sim_ready: false,
            registration: Registration::default(),
            operator: None,
            sim: SimState::Unknown,
            last_answer: None,
            events_dropped: 0,
            answer_bound: Settings::new("").answer_bound(),
        }
    }

    /// `Some(silence)` when the modem has not answered within its own [`Health::answer_bound`]
    /// of `now`: for `/healthz` ("the modem has not answered within its bound").
    pub fn not_answering(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.silent_for(self.answer_bound, now)
    }

    /// `Some(silence)` when the modem has not answered within `bound` of `now` (counting from
    /// `since` when it never answered).
    pub fn silent_for(&self, bound: Duration, now: DateTime<Utc>) -> Option<Duration> {
        let from = self.last_answer.unwrap_or(self.since);
        let silence = (now - from).to_std().unwrap_or_default();
        (silence > bound).then_some(silence)
    }
}

/// Why a modem request failed.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// The port is down or the modem cannot page now; the notifier should fall back.
    #[error("modem unavailable: {reason}")]
    Unavailable {
        /// The health reason at the time.
        reason: String,
    },
    /// A command failed.
    #[error(transparent)]
    Command(#[from] EngineError),
    /// One part of an SMS failed after its retries.
    #[error("{source}, part {part}/{total}")]
    Part {
        /// 1-based part number.
        part: usize,
        /// Parts in the message.
        total: usize,
        /// The last failure.
        #[source]
        source: EngineError,
    },
    /// The text or number cannot be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(#[from] PduError),
    /// The number is not dialable.
    #[error("invalid phone number {number:?}")]
    InvalidNumber {
        /// What was given.
        number: String,
    },
    /// The modem answered something the driver cannot use.
    #[error("unexpected answer to {command}: {detail}")]
    Protocol {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// The modem task has stopped (shutdown).
    #[error("modem task stopped")]
    Stopped,
    /// The daemon is not taking events and the driver's event backlog is full, so an event was
    /// not handed over. A message stored on the SIM stays there and is read again later.
    #[error("modem event backlog full; {kind} not handed over")]
    Backlogged {
        /// What kind of event (`sms`, `delivery_report`, ...).
        kind: &'static str,
    },
    /// A USSD code with characters a network does not take (digits, `*`, `#` only).
    #[error("invalid USSD code {code:?}")]
    InvalidUssd {
        /// What was given.
        code: String,
    },
    /// The network did not answer a USSD request in time (the session was cancelled).
    #[error("no answer to USSD {code} within {after:?}")]
    UssdTimeout {
        /// The code sent.
        code: String,
        /// How long we waited.
        after: Duration,
    },
}

impl ModemError {
    /// Whether trying again later may succeed. A stopped modem task is retryable: the task ends
    /// at shutdown (the page is resumed after the restart) or when it failed (the supervisor
    /// restarts the daemon), and either way the page must not be failed for good because of it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. }
            | Self::UssdTimeout { .. }
            | Self::Backlogged { .. }
            | Self::Stopped => true,
            Self::Command(e) | Self::Part { source: e, .. } => e.is_retryable(),
            Self::Encode(_)
            | Self::InvalidNumber { .. }
            | Self::Protocol { .. }
            | Self::InvalidUssd { .. } => false,
        }
    }
}

/// Masks a phone number for logs at info and above. The daemon has one masking policy (all but
/// the last three digits hidden), so that two log lines about the same number never show more
/// of it together than either does alone.
pub use crate::config::mask_number;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::at::CmsError;

    #[test]
    fn pin_never_shows_in_debug() {
        let s = Settings {
            pin: Some(Pin::new("4711")),
            ..Settings::new("/dev/null")
        };
        assert!(!format!("{s:?}").contains("4711"));
    }

    #[test]
    fn part_error_names_code_command_and_part() {
        let e = ModemError::Part {
            part: 2,
            total: 3,
            source: EngineError::Cms {
                command: "AT+CMGS".into(),
                code: CmsError::Code(500),
            },
        };
        assert_eq!(
            e.to_string(),
            "+CMS ERROR: 500 (unknown error) on AT+CMGS, part 2/3"
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn a_stopped_modem_is_retryable() {
        assert!(ModemError::Stopped.is_retryable());
        assert!(!ModemError::InvalidNumber { number: "x".into() }.is_retryable());
    }

    #[test]
    fn silence_counts_from_the_last_answer_or_from_the_start() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-06T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = Health::starting(t0);
        let bound = Duration::from_secs(90);
        assert_eq!(
            h.silent_for(bound, t0 + chrono::Duration::seconds(60)),
            None
        );
        assert_eq!(
            h.silent_for(bound, t0 + chrono::Duration::seconds(100)),
            Some(Duration::from_secs(100))
        );
        h.last_answer = Some(t0 + chrono::Duration::seconds(50));
        assert_eq!(
            h.silent_for(bound, t0 + chrono::Duration::seconds(100)),
            None
        );
        assert!(h
            .silent_for(bound, t0 + chrono::Duration::seconds(141))
            .is_some());
        // A clock that went backwards is not silence.
        assert_eq!(h.silent_for(bound, t0), None);
        // Its own bound: three health polls and one submit (defaults: 3 x 30 s + 120 s).
        assert_eq!(h.answer_bound, Duration::from_secs(210));
        assert!(h
            .not_answering(t0 + chrono::Duration::seconds(260))
            .is_none());
        assert_eq!(
            h.not_answering(t0 + chrono::Duration::seconds(261)),
            Some(Duration::from_secs(211))
        );
    }

    #[test]
    fn heartbeat_bound_covers_the_longest_exchange_and_two_polls() {
        let s = Settings::new("/dev/null");
        // 120 s submit + 2 x 10 s resync + 3 x 2 s retry pauses, doubled.
        assert_eq!(s.heartbeat_bound(), Duration::from_secs(292));
        let slow_polls = Settings {
            health_interval: Duration::from_secs(600),
            ..Settings::new("/dev/null")
        };
        assert_eq!(slow_polls.heartbeat_bound(), Duration::from_secs(1200));
    }

    #[test]
    fn masks_numbers_as_every_other_log_line_does() {
        assert_eq!(mask_number("+4915112345678"), "+**********678");
        assert_eq!(
            mask_number("+4915112345678"),
            crate::config::PhoneNumber::parse_e164("+4915112345678")
                .unwrap()
                .masked()
        );
    }
}
