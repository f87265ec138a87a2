//! Pure AT layer: bytes -> lines -> meaning. No I/O, no clock, no logging.
//!
//! - [`decoder`]: a bounded line decoder that tolerates echo, junk, NULs, any CR/LF mix and the
//!   `> ` prompt that has no line end.
//! - [`line`](mod@line): what one line is: final result, call result, URC or information text.
//! - [`response`]: parsers for the information responses the driver reads.
//! - [`ussd`]: the `+CUSD` answer of a USSD request (balance checks), text decoded.
//! - [`codes`]: `+CME ERROR` / `+CMS ERROR` code tables, names and retry semantics.
//!
//! What this module does not do: decide which command a line answers (the engine knows the
//! command in flight), talk to a port, or decode PDUs (see `modem::pdu`).

pub mod codes;
pub mod decoder;
pub mod line;
pub mod response;
pub mod ussd;

pub use codes::{CmeError, CmsError};
pub use decoder::{Frame, LineDecoder};
pub use line::{
    classify, parse_urc, response_prefix, CallResult, CallerNumber, Final, Line, NumberType, Urc,
};

/// Which registration a `+CREG`/`+CGREG`/`+CEREG` line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegDomain {
    /// Circuit switched (`+CREG`): what SMS and voice need on 2G/3G.
    Circuit,
    /// Packet switched 2G/3G (`+CGREG`).
    Gprs,
    /// LTE (`+CEREG`): SMS over LTE needs this on 4G-only networks.
    Eps,
}

/// `<stat>` of a registration report (TS 27.007 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegStatus {
    /// 0: not registered, not searching.
    NotRegistered,
    /// 1: registered, home network.
    Home,
    /// 2: not registered, searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown (e.g. out of coverage).
    Unknown,
    /// 5: registered, roaming.
    Roaming,
    /// 6..: other states; 6 and 7 (SMS only) count as registered.
    Other(u8),
}

impl RegStatus {
    /// From the numeric `<stat>`.
    pub fn from_code(n: u8) -> Self {
        match n {
            0 => Self::NotRegistered,
            1 => Self::Home,
            2 => Self::Searching,
            3 => Self::Denied,
            4 => Self::Unknown,
            5 => Self::Roaming,
            n => Self::Other(n),
        }
    }

    /// Whether SMS can be sent in this state.
    pub fn is_registered(self) -> bool {
        matches!(self, Self::Home | Self::Roaming | Self::Other(6 | 7))
    }

    /// A short human word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRegistered => "not registered",
            Self::Home => "home",
            Self::Searching => "searching",
            Self::Denied => "denied",
            Self::Unknown => "unknown",
            Self::Roaming => "roaming",
            Self::Other(6 | 7) => "SMS only",
            Self::Other(_) => "other",
        }
    }
}

/// SIM state from `+CPIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimState {
    /// Unlocked and usable.
    Ready,
    /// Waiting for the PIN.
    PinRequired,
    /// Locked: needs the PUK (a person must act).
    PukRequired,
    /// No SIM (`+CPIN: NOT INSERTED` or `+CME ERROR: 10`).
    NotInserted,
    /// Not yet known (port down, not asked yet).
    Unknown,
    /// Any other state the modem reported, e.g. `NOT READY` while booting.
    Other(String),
}

impl SimState {
    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            Self::Ready => "ready".into(),
            Self::PinRequired => "PIN required".into(),
            Self::PukRequired => "PUK required".into(),
            Self::NotInserted => "not inserted".into(),
            Self::Unknown => "unknown".into(),
            Self::Other(s) => s.clone(),
        }
    }
}

/// `<stat>` of a call in `+CLCC` (TS 27.007 §7.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// 0: connected.
    Active,
    /// 1: on hold.
    Held,
    /// 2: outgoing, dialling.
    Dialing,
    /// 3: outgoing, the far end is ringing.
    Alerting,
    /// 4: incoming, ringing here.
    Incoming,
    /// 5: incoming while another call is up.
    Waiting,
    /// 6 (SIMCom): disconnected.
    Disconnected,
    /// Anything else.
    Other(u8),
}

impl CallState {
    /// From the numeric `<stat>`.
    pub fn from_code(n: u8) -> Self {
        match n {
            0 => Self::Active,
            1 => Self::Held,
            2 => Self::Dialing,
            3 => Self::Alerting,
            4 => Self::Incoming,
            5 => Self::Waiting,
            6 => Self::Disconnected,
            n => Self::Other(n),
        }
    }
}

/// One line of `+CLCC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEntry {
    /// Call id (`<idx>`).
    pub id: u8,
    /// `<dir>` = 1: mobile terminated.
    pub incoming: bool,
    /// `<stat>`.
    pub state: CallState,
    /// `<mode>` = 0: voice.
    pub voice: bool,
    /// The far end, when shown.
    pub number: Option<String>,
}
