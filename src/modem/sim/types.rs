//! The simulator's public vocabulary: configuration, control requests (deliveries, call
//! behaviour, faults) and the network log. Shared by the engine, the owning task, the control
//! socket and the CLI so that all four speak the same words.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::profile::SimProfile;

/// How the simulator behaves. `Default` gives realistic timings and a `/tmp` link; tests use
/// [`SimConfig::fast`] for zero delays.
#[derive(Clone)]
pub struct SimConfig {
    /// Which module to imitate.
    pub profile: SimProfile,
    /// Time between the end of a command line and its response.
    pub command_delay: Duration,
    /// Time between the `Ctrl-Z` of an `AT+CMGS` and `+CMGS: <mr>` (the network round trip).
    pub sms_delay: Duration,
    /// Each submit takes `sms_delay` ± up to this much (uniform, from a fixed seed so runs
    /// repeat), as real round trips vary; zero for exact timing.
    pub sms_delay_jitter: Duration,
    /// Where the symlink to the PTY slave is created; the daemon opens this path as its port.
    /// A file or stale link already there is replaced.
    pub pty_link: PathBuf,
    /// Unix socket for the JSON-lines control protocol; `None`: control only through the
    /// in-process [`super::SimHandle`].
    pub control_socket: Option<PathBuf>,
    /// SIM PIN; `None`: the SIM is unlocked at boot (`+CPIN: READY`).
    pub pin: Option<String>,
    /// The subscriber's own number (`AT+CNUM`), and the recipient in self-tests.
    pub own_number: String,
    /// The service centre address reported by `AT+CSCA?` until changed.
    pub smsc: String,
    /// Time from a submit that requested a status report to the report.
    pub delivery_report_delay: Duration,
    /// Interval between `RING`s of an incoming call.
    pub ring_interval: Duration,
    /// How long an incoming call rings before the caller gives up, and how long the network
    /// lets an unanswered outgoing call ring before `NO ANSWER`.
    pub ring_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            profile: SimProfile::Generic,
            command_delay: Duration::from_millis(200),
            sms_delay: Duration::from_millis(2000),
            sms_delay_jitter: Duration::from_millis(1000),
            pty_link: PathBuf::from("/tmp/pagerbox-modem"),
            control_socket: None,
            pin: None,
            own_number: "+4915100000001".to_string(),
            smsc: "+491710760000".to_string(),
            delivery_report_delay: Duration::from_secs(5),
            ring_interval: Duration::from_secs(3),
            ring_timeout: Duration::from_secs(30),
        }
    }
}

impl SimConfig {
    /// Zero delays for tests and benchmarks; short ring timings so call tests finish quickly.
    pub fn fast(profile: SimProfile, pty_link: PathBuf) -> Self {
        Self {
            profile,
            command_delay: Duration::ZERO,
            sms_delay: Duration::ZERO,
            sms_delay_jitter: Duration::ZERO,
            pty_link,
            delivery_report_delay: Duration::from_millis(50),
            ring_interval: Duration::from_millis(200),
            ring_timeout: Duration::from_secs(2),
            ..Self::default()
        }
    }
}

/// Errors of the simulator and its control API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Creating the pseudo-terminal or its link failed.
    #[error("cannot create the PTY at {link}: {source}")]
    Pty {
        /// The link path asked for.
        link: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Binding or using the control socket failed.
    #[error("control socket {path}: {source}")]
    Control {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The simulator task has ended (shut down or panicked).
    #[error("the simulator is not running")]
    Stopped,
    /// The request does not fit the modem's state (e.g. DTMF without an active call).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The PDU codec could not encode an incoming message.
    #[error("cannot encode the message: {0}")]
    Encode(#[source] crate::modem::pdu::PduError),
    /// The codec's own reading of a part it encoded was not an SMS-DELIVER.
    #[error("cannot encode the message: codec produced no DELIVER")]
    NoDeliver,
    /// A wait ended before the awaited thing happened.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A control message could not be written or read as JSON.
    #[error("control protocol: {0}")]
    Protocol(#[source] serde_json::Error),
    /// The simulator closed the control connection before it answered.
    #[error("control protocol: the simulator closed the connection")]
    Closed,
}

impl SimError {
    /// Whether trying again later can help (the simulator is busy with a state, not broken).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SimError::Rejected(_) | SimError::Timeout(_))
    }
}

/// Where the URC announcing an injected event is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrcPlacement {
    /// As soon as possible, between responses.
    #[default]
    Now,
    /// Held and written inside the next multi-line response, after its first information
    /// record (e.g. between two `+CMGL` entries, or between `+CLCC` and `OK`).
    InsideNextResponse,
}

/// Options of an incoming SMS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliverOptions {
    /// Force UCS-2 even when the text fits the GSM alphabet.
    pub ucs2: bool,
    /// Force 8-bit data coding.
    pub binary: bool,
    /// Where the `+CMTI`/`+CMT` URC goes.
    pub placement: UrcPlacement,
    /// Service centre address in the PDU; `None`: the configured one.
    pub smsc: Option<String>,
}

/// What the far phone does with the next outgoing call(s); stays in force until changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "behaviour", content = "after", rename_all = "snake_case")]
pub enum CallBehaviour {
    /// Ring until the control API answers, rejects or ignores, or the network times out.
    #[default]
    Manual,
    /// Ring, then pick up after this long.
    AnswerAfter(#[serde(with = "millis")] Duration),
    /// The callee is busy: `BUSY` right after alerting.
    Busy,
    /// Never picked up: `NO ANSWER` after the ring timeout.
    NoAnswer,
    /// The callee declines: `NO CARRIER` after alerting.
    Reject,
}

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// The modem hangs: input is read and dropped, nothing is answered, no URCs.
    Silence,
    /// The next `count` submits end in a bare `ERROR`.
    SubmitError {
        /// How many submits fail.
        count: u32,
    },
    /// The next `count` submits end in `+CMS ERROR: 500`.
    SubmitCms500 {
        /// How many submits fail.
        count: u32,
    },
    /// Write a burst of garbage bytes now (a torn line, binary junk, a bare CR).
    Garbage,
    /// The device disappears (PTY closed, link removed) and reappears at the same link path
    /// after `after`, rebooted.
    Vanish {
        /// How long the device stays away.
        #[serde(with = "millis")]
        after: Duration,
    },
    /// The module restarts in place without announcing it, as one on a UART in autobaud mode
    /// does after a brown-out: no `RDY`, no banners. Every setting is back at its factory value
    /// (echo on, no caller ID, no registration or status-report indications), the SIM is
    /// locked again if it has a PIN; storage and the message reference counter survive.
    Brownout,
    /// Registration lost: `+CREG: 2` (searching) or `+CREG: 0`; submits get CMS 331.
    LoseRegistration {
        /// `+CREG: 2` (still searching) rather than `+CREG: 0`.
        searching: bool,
    },
    /// The SIM is pulled: `+CPIN: NOT INSERTED`, CME 10 / CMS 310.
    SimMissing,
    /// The next `count` submitted parts are accepted by the network but never reach the handset:
    /// their status reports (when asked for) say TP-ST 0x46, validity period expired, as a
    /// centre reports a message to a phone that stayed off.
    Undeliverable {
        /// How many parts are lost (one per single-part message).
        count: u32,
    },
}

/// A fault name that is not known, or a fault missing its parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?} (expected silence, submit-error, cms500, garbage, vanish, brownout, lose-registration, sim-missing, undeliverable)")]
pub struct UnknownFault(pub String);

impl Fault {
    /// Builds a fault from its CLI name; `count` serves submit faults, `after` vanish.
    pub fn from_name(name: &str, count: u32, after: Duration) -> Result<Fault, UnknownFault> {
        Ok(match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "silence" | "stop-answering" | "hang" => Fault::Silence,
            "submit-error" | "error" => Fault::SubmitError { count },
            "cms500" | "cms-500" | "submit-cms500" => Fault::SubmitCms500 { count },
            "garbage" => Fault::Garbage,
            "vanish" => Fault::Vanish { after },
            "brownout" | "brown-out" | "silent-restart" => Fault::Brownout,
            "lose-registration" | "no-network" => Fault::LoseRegistration { searching: true },
            "deregister" => Fault::LoseRegistration { searching: false },
            "sim-missing" | "no-sim" => Fault::SimMissing,
            "undeliverable" | "undelivered" => Fault::Undeliverable { count },
            _ => return Err(UnknownFault(name.to_string())),
        })
    }
}

impl FromStr for Fault {
    type Err = UnknownFault;

    /// The name alone, with a count of 1 and a 2 s vanish.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::from_name(s, 1, Duration::from_secs(2))
    }
}

/// What the simulated network answers to a USSD code (`AT+CUSD=1,"<code>"`), set per code
/// through the control API. A code with no answer set gets `+CUSD: 4` (operation not
/// supported), as networks answer codes they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum UssdReply {
    /// `+CUSD: 0,"<text>",15` (GSM 7-bit), or with `ucs2` `+CUSD: 0,"<UTF-16 hex>",72`, as
    /// modules show UCS-2 network answers. With `AT+CSCS="UCS2"` the text is hex either way.
    Text {
        /// The network's answer, e.g. "Balance: 12.34 EUR".
        text: String,
        /// Send as UCS-2 (dcs 72, hex string).
        #[serde(default)]
        ucs2: bool,
    },
    /// `+CUSD: 4`: the network does not support the operation.
    NotSupported,
    /// `+CUSD: 2`: the network ended the session without an answer.
    NetworkTerminated,
    /// `OK`, then nothing: the network never answers (the DTE's timeout decides).
    Timeout,
}

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// Dialled by the modem (`ATD`).
    Outgoing,
    /// Placed to the modem (`RING`).
    Incoming,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Picked up; ended by either side afterwards.
    Answered,
    /// The callee was busy.
    Busy,
    /// Nobody picked up before the network timeout (or the control API ignored it).
    NoAnswer,
    /// The callee (outgoing) declined, or the modem rejected an incoming call.
    Rejected,
    /// The modem hung up before the callee answered.
    Cancelled,
    /// An incoming call the modem never answered; the caller gave up.
    Missed,
    /// The call could not be placed (no network, no SIM).
    Failed,
}

/// One thing the "network" saw, as the far phone would show it. Serialized as one JSON object
/// with a `kind` field; `log` prints one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetworkEntry {
    /// One submitted PDU (a part of a concatenated message, or a whole single message).
    SmsPart {
        /// When the network accepted it.
        at: DateTime<Utc>,
        /// Destination number as encoded (`+` first when international).
        to: String,
        /// The reference the modem gave it (`+CMGS: <mr>`).
        message_reference: u8,
        /// This part's text.
        text: String,
        /// `gsm7`, `ucs2` or `binary8`.
        encoding: String,
        /// Whether the PDU asked for a status report (TP-SRR).
        status_report_requested: bool,
        /// `(reference, total, sequence)` when the PDU carries a concatenation header.
        concat: Option<(u16, u8, u8)>,
    },
    /// A whole message as the recipient's phone shows it, once all its parts arrived.
    Sms {
        /// When the last part arrived.
        at: DateTime<Utc>,
        /// Destination number.
        to: String,
        /// The reassembled text.
        text: String,
        /// `gsm7`, `ucs2` or `binary8`.
        encoding: String,
        /// How many parts it came in.
        parts: u8,
        /// The parts' message references, in part order.
        message_references: Vec<u8>,
        /// Whether any part asked for a status report.
        status_report_requested: bool,
    },
    /// A submit the modem refused (fault, no network, bad PDU), with the result it gave.
    SmsRefused {
        /// When it was refused.
        at: DateTime<Utc>,
        /// The final result code sent to the DTE (`+CMS ERROR: 500`).
        result: String,
        /// Why, in words.
        reason: String,
    },
    /// A status report sent back to the modem.
    StatusReport {
        /// When it was sent.
        at: DateTime<Utc>,
        /// The reference of the message it reports on.
        message_reference: u8,
        /// The recipient of that message.
        to: String,
        /// TP-ST (0: delivered).
        status: u8,
        /// `cds`, `cdsi` or `discarded` (per `AT+CNMI` `<ds>`).
        routed: String,
    },
    /// An incoming message handed to the modem (one entry per message, all parts).
    SmsIn {
        /// When it arrived.
        at: DateTime<Utc>,
        /// Sender.
        from: String,
        /// The whole text.
        text: String,
        /// How many PDUs it took.
        parts: usize,
        /// Where each part went: `SM:1`, `cmt`, `later` (arrives after a pause), or a rejection.
        routed: String,
    },
    /// A finished call.
    Call {
        /// When it started.
        at: DateTime<Utc>,
        /// Who called whom.
        direction: CallDirection,
        /// The far number (empty when withheld).
        number: String,
        /// How it ended.
        outcome: CallOutcome,
        /// Text the modem spoke (TTS) while the call was up.
        spoken: Vec<String>,
        /// DTMF keys the far side pressed.
        dtmf: String,
        /// Time from answer to hang-up (zero if never answered).
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// A text-to-speech request, whether or not a call was up.
    Tts {
        /// When it was requested.
        at: DateTime<Utc>,
        /// What was to be spoken.
        text: String,
        /// Whether a call was active (only then the far side hears it).
        in_call: bool,
    },
    /// A fault was injected.
    Fault {
        /// When.
        at: DateTime<Utc>,
        /// Which.
        fault: Fault,
    },
    /// All faults were cleared.
    Heal {
        /// When.
        at: DateTime<Utc>,
    },
}

impl NetworkEntry {
    /// The `kind` tag, for filtering.
    pub fn kind(&self) -> &'static str {
        match self {
            NetworkEntry::SmsPart { .. } => "sms_part",
            NetworkEntry::Sms { .. } => "sms",
            NetworkEntry::SmsRefused { .. } => "sms_refused",
            NetworkEntry::StatusReport { .. } => "status_report",
            NetworkEntry::SmsIn { .. } => "sms_in",
            NetworkEntry::Call { .. } => "call",
            NetworkEntry::Tts { .. } => "tts",
            NetworkEntry::Fault { .. } => "fault",
            NetworkEntry::Heal { .. } => "heal",
        }
    }
}

/// Serde helper: a `Duration` as integer milliseconds.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Deserializes from milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_parse() {
        assert_eq!("silence".parse::<Fault>(), Ok(Fault::Silence));
        assert_eq!(
            Fault::from_name("cms500", 3, Duration::ZERO),
            Ok(Fault::SubmitCms500 { count: 3 })
        );
        assert_eq!(
            Fault::from_name("vanish", 1, Duration::from_millis(300)),
            Ok(Fault::Vanish {
                after: Duration::from_millis(300)
            })
        );
        assert!("melt".parse::<Fault>().is_err());
    }

    #[test]
    fn faults_and_behaviours_serialize_as_tagged_json() {
        let j = serde_json::to_string(&Fault::SubmitError { count: 2 }).unwrap();
        assert_eq!(j, r#"{"fault":"submit_error","count":2}"#);
        let b: CallBehaviour =
            serde_json::from_str(r#"{"behaviour":"answer_after","after":1500}"#).unwrap();
        assert_eq!(b, CallBehaviour::AnswerAfter(Duration::from_millis(1500)));
        let j = serde_json::to_string(&CallBehaviour::Busy).unwrap();
        assert_eq!(j, r#"{"behaviour":"busy"}"#);
    }
}
