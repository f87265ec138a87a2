//! One decoded line -> what it means: a final result, a call result, or text that is either an
//! information response or an unsolicited result code (URC).
//!
//! Several lines are ambiguous on their own: `+CREG:`, `+CPIN:`, `+CLCC:` and `+CFUN:` are both
//! answers to a query and URCs, and `NO CARRIER`/`BUSY` end a dial but are URCs at any other time.
//! This module only says what a line *can* be; the engine decides with the command in flight
//! (see [`response_prefix`]).

use super::codes::{CmeError, CmsError};
use super::response::{parse_clcc, parse_cpin, parse_registration, split_fields, unquote};
use super::{CallEntry, RegDomain, RegStatus, SimState};

/// A result that ends a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// `OK`.
    Ok,
    /// `ERROR` (errors not enabled with `AT+CMEE`, or a syntax error).
    Error,
    /// `+CME ERROR: n` (equipment, SIM, network).
    Cme(CmeError),
    /// `+CMS ERROR: n` (SMS).
    Cms(CmsError),
}

/// The type of number of a caller ID: the type-of-number bits of the `<type>` octet
/// (TS 24.008 §10.5.4.7), e.g. 145 international, 161 national, 129 unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberType {
    /// International: the digits start with the country code, with or without `+`.
    International,
    /// National: the digits are a number in the network's country, with or without the trunk
    /// prefix `0`.
    National,
    /// Unknown (129, or no `<type>`): the digits carry their own prefix (`+`, `00`, `0`).
    Unknown,
    /// Network-specific, subscriber or abbreviated numbers: not a person's phone number.
    Other(u8),
}

impl NumberType {
    /// Reads a type-of-address octet.
    pub fn from_toa(toa: u8) -> Self {
        match toa & 0x70 {
            0x10 => Self::International,
            0x20 => Self::National,
            0x00 => Self::Unknown,
            _ => Self::Other(toa),
        }
    }
}

/// A caller's number with its type, rewritten into the one form the acknowledgement code reads
/// without guessing: `+` and the country code for international numbers, a leading trunk `0`
/// for national ones (which `daemon.country_code` then completes), unchanged otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerNumber(String);

impl CallerNumber {
    /// The caller as shown by `+CLIP`; `None` when withheld (empty number).
    pub fn new(number: &str, kind: NumberType) -> Option<Self> {
        let n = number.trim();
        if n.is_empty() {
            return None;
        }
        let digits = n.trim_start_matches('+');
        let form = match kind {
            NumberType::International => match digits.strip_prefix("00") {
                // Some networks keep the international prefix even with type 145.
                Some(rest) => format!("+{rest}"),
                None => format!("+{digits}"),
            },
            NumberType::National if n.starts_with('+') => n.to_string(),
            NumberType::National => match digits.strip_prefix('0') {
                Some(_) => digits.to_string(),
                None => format!("0{digits}"),
            },
            NumberType::Unknown | NumberType::Other(_) => n.to_string(),
        };
        Some(Self(form))
    }

    /// The number in the form described on the type.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the string out.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Results that end a dial (`ATD`, `ATA`) but are URCs when a call ends later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// `NO CARRIER`: the call ended or could not be set up.
    NoCarrier,
    /// `BUSY`.
    Busy,
    /// `NO ANSWER`.
    NoAnswer,
    /// `NO DIALTONE`: no network.
    NoDialtone,
    /// `CONNECT [text]` (data calls).
    Connect(Option<String>),
}

/// The meaning of one line taken alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Ends the command in flight.
    Final(Final),
    /// Ends a dial, or reports a call ending (context decides).
    Call(CallResult),
    /// Anything else: an information response or a URC (see [`parse_urc`]).
    Text(String),
}

/// Classifies one trimmed line.
pub fn classify(line: &str) -> Line {
    let l = line.trim();
    match l {
        "OK" => return Line::Final(Final::Ok),
        "ERROR" => return Line::Final(Final::Error),
        "NO CARRIER" => return Line::Call(CallResult::NoCarrier),
        "BUSY" => return Line::Call(CallResult::Busy),
        "NO ANSWER" => return Line::Call(CallResult::NoAnswer),
        "NO DIALTONE" | "NO DIAL TONE" => return Line::Call(CallResult::NoDialtone),
        "CONNECT" => return Line::Call(CallResult::Connect(None)),
        _ => {}
    }
    if let Some(rest) = l.strip_prefix("+CME ERROR:") {
        return Line::Final(Final::Cme(CmeError::parse(rest)));
    }
    if let Some(rest) = l.strip_prefix("+CMS ERROR:") {
        return Line::Final(Final::Cms(CmsError::parse(rest)));
    }
    if let Some(rest) = l.strip_prefix("CONNECT ") {
        return Line::Call(CallResult::Connect(Some(rest.trim().to_string())));
    }
    Line::Text(l.to_string())
}

/// An unsolicited result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: <mem>,<index>`: a message was stored.
    NewMessage {
        /// Storage, e.g. `SM` or `ME`.
        storage: String,
        /// Index in that storage.
        index: u32,
    },
    /// `+CMT: ...`: a message delivered directly; the next line is its PDU (or text).
    MessageFollows {
        /// The header after `+CMT:`.
        header: String,
    },
    /// `+CDS: <length>`: a status report delivered directly in PDU mode; the next line is its
    /// PDU.
    StatusReportFollows {
        /// The header after `+CDS:`.
        header: String,
    },
    /// `+CDS: <fo>,<mr>,[<ra>],[<tora>],<scts>,<dt>,<st>`: a status report delivered directly
    /// in text mode, whole on this one line (TS 27.005 3.4.1).
    StatusReportText {
        /// The fields after `+CDS:`.
        header: String,
    },
    /// `+CDSI: <mem>,<index>`: a status report was stored.
    StatusReportStored {
        /// Storage, e.g. `SR` or `SM`.
        storage: String,
        /// Index in that storage.
        index: u32,
    },
    /// `RING` or `+CRING: VOICE`.
    Ring,
    /// `+CLIP: "<number>",<type>,...`: the caller of an incoming call.
    CallerId {
        /// The number as the modem shows it, empty when withheld.
        number: String,
        /// What `<type>` says the number is; see [`CallerNumber`].
        kind: NumberType,
    },
    /// `+CLCC: ...` sent unsolicited (SIM800 with `AT+CLCC=1`).
    CallList(CallEntry),
    /// A DTMF key heard in the call: SIM800 `+DTMF:`, SIM7600 `+RXDTMF:`, Quectel `+QTONEDET:`.
    Dtmf {
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        key: char,
    },
    /// `+CREG:`/`+CGREG:`/`+CEREG:` registration change.
    Registration {
        /// Which domain changed.
        domain: RegDomain,
        /// The new state.
        status: RegStatus,
    },
    /// `+CPIN: ...` SIM state change.
    Sim(SimState),
    /// `RDY`: the module (re)booted.
    Ready,
    /// `Call Ready` (SIMCom).
    CallReady,
    /// `SMS Ready` (SIMCom).
    SmsReady,
    /// `+CFUN: n` after boot or a functionality change.
    Functionality(u8),
    /// `+QIND: ...` Quectel indications.
    QuectelIndication(String),
    /// `NORMAL POWER DOWN` / `POWER DOWN`: the module is switching off.
    PowerDown,
    /// SIM7600 `VOICE CALL: BEGIN`: the call is connected.
    VoiceCallBegin,
    /// SIM7600 `VOICE CALL: END: <duration>`.
    VoiceCallEnd,
    /// SIMCom `MISSED_CALL: <time> <number>`.
    MissedCall(String),
    /// `+CTTS: 0` / `+QTTS: 0`: text-to-speech finished playing.
    SpeechDone,
    /// `NO CARRIER`, `BUSY`, `NO ANSWER` outside a dial: a call ended.
    CallEnded(CallResult),
    /// `+CUSD: ...`: the network's answer to a USSD request (see [`super::ussd`]).
    Ussd(super::ussd::UssdAnswer),
}

impl Urc {
    /// True for URCs whose payload is the next line (`+CMT`, `+CDS`).
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Self::MessageFollows { .. } | Self::StatusReportFollows { .. }
        )
    }
}

/// Parses a text line as a URC, or `None` when it is not one (an information response).
///
/// `+CREG:` and friends are read in their URC form (first field the state); the engine does not
/// call this for lines that answer the command in flight.
pub fn parse_urc(line: &str) -> Option<Urc> {
    let l = line.trim();
    match l {
        "RING" => return Some(Urc::Ring),
        "RDY" => return Some(Urc::Ready),
        "Call Ready" => return Some(Urc::CallReady),
        "SMS Ready" => return Some(Urc::SmsReady),
        "NORMAL POWER DOWN" | "POWER DOWN" | "UNDER-VOLTAGE POWER DOWN" => {
            return Some(Urc::PowerDown)
        }
        "VOICE CALL: BEGIN" => return Some(Urc::VoiceCallBegin),
        _ => {}
    }
    if l.starts_with("VOICE CALL: END") {
        return Some(Urc::VoiceCallEnd);
    }
    if let Some(rest) = l.strip_prefix("MISSED_CALL:") {
        return Some(Urc::MissedCall(rest.trim().to_string()));
    }
    let (prefix, body) = l.split_once(':')?;
    let body = body.trim();
    match prefix {
        "+CMTI" => {
            let (storage, index) = storage_index(body)?;
            Some(Urc::NewMessage { storage, index })
        }
        "+CDSI" => {
            let (storage, index) = storage_index(body)?;
            Some(Urc::StatusReportStored { storage, index })
        }
        "+CMT" => Some(Urc::MessageFollows {
            header: body.to_string(),
        }),
        // Told apart by shape, not by the mode we think the modem is in: the PDU form's header
        // is one number, the text form's has the report's fields. Taking a text-mode report's
        // next line as its body would swallow whatever came next (a `+CMTI`, a `+CMGS`).
        "+CDS" if split_fields(body).len() >= 5 => Some(Urc::StatusReportText {
            header: body.to_string(),
        }),
        "+CDS" => Some(Urc::StatusReportFollows {
            header: body.to_string(),
        }),
        "+CRING" => Some(Urc::Ring),
        "+CLIP" => {
            let fields = split_fields(body);
            let kind = fields
                .get(1)
                .and_then(|t| t.trim().parse::<u8>().ok())
                .map_or(NumberType::Unknown, NumberType::from_toa);
            Some(Urc::CallerId {
                number: unquote(fields.first()?).to_string(),
                kind,
            })
        }
        "+CLCC" => parse_clcc(l).map(Urc::CallList),
        "+DTMF" | "+RXDTMF" => dtmf_key(split_fields(body).first()?).map(|key| Urc::Dtmf { key }),
        "+QTONEDET" => {
            let f = split_fields(body);
            let v = f.first()?.trim();
            let key = match v.parse::<u32>() {
                // Quectel reports the ASCII code of the key ('1' = 49).
                Ok(n) if n >= 35 => char::from_u32(n).and_then(|c| dtmf_key(&c.to_string())),
                _ => dtmf_key(v),
            }?;
            Some(Urc::Dtmf { key })
        }
        "+CREG" | "+CGREG" | "+CEREG" => {
            let (domain, status) = parse_registration(l, false)?;
            Some(Urc::Registration { domain, status })
        }
        "+CPIN" => parse_cpin(l).map(Urc::Sim),
        "+CFUN" => body.parse().ok().map(Urc::Functionality),
        "+CUSD" => super::ussd::parse_cusd(l).map(Urc::Ussd),
        "+QIND" => Some(Urc::QuectelIndication(body.to_string())),
        "+CTTS" | "+QTTS" if body == "0" => Some(Urc::SpeechDone),
        _ => None,
    }
}

fn storage_index(body: &str) -> Option<(String, u32)> {
    let f = split_fields(body);
    let storage = unquote(f.first()?).to_string();
    let index = f.get(1)?.trim().parse().ok()?;
    Some((storage, index))
}

fn dtmf_key(s: &str) -> Option<char> {
    let s = unquote(s.trim());
    let mut chars = s.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let c = c.to_ascii_uppercase();
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// The prefix of the information response a command produces, e.g. `AT+CREG?` -> `+CREG:`.
///
/// Lines with this prefix answer the command even when the same text could be a URC. `None`
/// for basic commands (`ATI`, `ATD`) whose answers carry no prefix.
pub fn response_prefix(command: &str) -> Option<String> {
    let c = command.trim();
    let rest = c
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("AT"))
        .map(|_| &c[2..])?;
    let first = rest.chars().next()?;
    if !matches!(first, '+' | '^' | '$' | '#') {
        return None;
    }
    let end = rest.find(['=', '?', ';']).unwrap_or(rest.len());
    Some(format!("{}:", rest[..end].to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::at::CallState;

    #[test]
    fn finals() {
        assert_eq!(classify("OK"), Line::Final(Final::Ok));
        assert_eq!(classify(" ERROR "), Line::Final(Final::Error));
        assert_eq!(
            classify("+CME ERROR: 10"),
            Line::Final(Final::Cme(CmeError::Code(10)))
        );
        assert_eq!(
            classify("+CME ERROR: SIM PIN required"),
            Line::Final(Final::Cme(CmeError::Code(11)))
        );
        assert_eq!(
            classify("+CMS ERROR: 500"),
            Line::Final(Final::Cms(CmsError::Code(500)))
        );
        assert_eq!(
            classify("+CMS ERROR: network timeout"),
            Line::Final(Final::Cms(CmsError::Code(332)))
        );
    }

    #[test]
    fn call_results() {
        assert_eq!(classify("NO CARRIER"), Line::Call(CallResult::NoCarrier));
        assert_eq!(classify("BUSY"), Line::Call(CallResult::Busy));
        assert_eq!(classify("NO ANSWER"), Line::Call(CallResult::NoAnswer));
        assert_eq!(classify("NO DIALTONE"), Line::Call(CallResult::NoDialtone));
        assert_eq!(classify("CONNECT"), Line::Call(CallResult::Connect(None)));
        assert_eq!(
            classify("CONNECT 115200"),
            Line::Call(CallResult::Connect(Some("115200".into())))
        );
    }

    #[test]
    fn text_lines_are_not_finals() {
        assert_eq!(classify("+CSQ: 17,99"), Line::Text("+CSQ: 17,99".into()));
        assert_eq!(classify("OKAY"), Line::Text("OKAY".into()));
        assert_eq!(
            classify("SIM800 R14.18"),
            Line::Text("SIM800 R14.18".into())
        );
    }

    #[test]
    fn sms_urcs() {
        assert_eq!(
            parse_urc("+CMTI: \"SM\",3"),
            Some(Urc::NewMessage {
                storage: "SM".into(),
                index: 3
            })
        );
        assert_eq!(
            parse_urc("+CDSI: \"SR\",12"),
            Some(Urc::StatusReportStored {
                storage: "SR".into(),
                index: 12
            })
        );
        let cmt = parse_urc("+CMT: ,24").unwrap();
        assert!(cmt.has_body());
        assert_eq!(
            cmt,
            Urc::MessageFollows {
                header: ",24".into()
            }
        );
        let cds = parse_urc("+CDS: 25").unwrap();
        assert!(cds.has_body());
        assert!(!parse_urc("RING").unwrap().has_body());
    }

    #[test]
    fn caller_id_carries_its_number_type() {
        let kind = |l: &str| match parse_urc(l) {
            Some(Urc::CallerId { kind, .. }) => kind,
            other => panic!("not a caller id: {other:?}"),
        };
        assert_eq!(
            kind("+CLIP: \"4915112345678\",145"),
            NumberType::International
        );
        assert_eq!(
            kind("+CLIP: \"015112345678\",129,\"\",0"),
            NumberType::Unknown
        );
        assert_eq!(kind("+CLIP: \"15112345678\",161"), NumberType::National);
        assert_eq!(kind("+CLIP: \"15112345678\""), NumberType::Unknown);
        assert_eq!(kind("+CLIP: \"1234\",193"), NumberType::Other(193));
    }

    #[test]
    fn caller_numbers_are_rewritten_by_type() {
        let form = |n: &str, t: u8| {
            CallerNumber::new(n, NumberType::from_toa(t)).map(CallerNumber::into_string)
        };
        // International (145): '+' added when the modem leaves it out, kept when present.
        assert_eq!(
            form("4915112345678", 145).as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(
            form("+4915112345678", 145).as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(
            form("004915112345678", 145).as_deref(),
            Some("+4915112345678")
        );
        // National (161): a trunk '0' so the country code completes it.
        assert_eq!(form("15112345678", 161).as_deref(), Some("015112345678"));
        assert_eq!(form("015112345678", 161).as_deref(), Some("015112345678"));
        // Unknown (129): the digits carry their own prefix.
        assert_eq!(form("015112345678", 129).as_deref(), Some("015112345678"));
        assert_eq!(
            form("+4915112345678", 129).as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(
            form("004915112345678", 129).as_deref(),
            Some("004915112345678")
        );
        // Withheld.
        assert_eq!(form("", 128), None);
    }

    #[test]
    fn call_urcs() {
        assert_eq!(parse_urc("RING"), Some(Urc::Ring));
        assert_eq!(parse_urc("+CRING: VOICE"), Some(Urc::Ring));
        assert_eq!(
            parse_urc("+CLIP: \"+4915112345678\",145,\"\",0,\"\",0"),
            Some(Urc::CallerId {
                number: "+4915112345678".into(),
                kind: NumberType::International,
            })
        );
        assert_eq!(parse_urc("VOICE CALL: BEGIN"), Some(Urc::VoiceCallBegin));
        assert_eq!(
            parse_urc("VOICE CALL: END: 000012"),
            Some(Urc::VoiceCallEnd)
        );
        assert_eq!(
            parse_urc("MISSED_CALL: 10:22AM +4915112345678"),
            Some(Urc::MissedCall("10:22AM +4915112345678".into()))
        );
        let Some(Urc::CallList(e)) = parse_urc("+CLCC: 1,0,3,0,0,\"+4915112345678\",145,\"\"")
        else {
            panic!("clcc")
        };
        assert_eq!(e.state, CallState::Alerting);
        assert!(!e.incoming);
    }

    #[test]
    fn dtmf_reports_of_each_vendor() {
        assert_eq!(parse_urc("+DTMF:1"), Some(Urc::Dtmf { key: '1' }));
        assert_eq!(parse_urc("+DTMF: 5,160"), Some(Urc::Dtmf { key: '5' }));
        assert_eq!(parse_urc("+RXDTMF: #"), Some(Urc::Dtmf { key: '#' }));
        assert_eq!(parse_urc("+QTONEDET: 49"), Some(Urc::Dtmf { key: '1' }));
        assert_eq!(parse_urc("+QTONEDET: 42"), Some(Urc::Dtmf { key: '*' }));
        assert_eq!(parse_urc("+QTONEDET: 7"), Some(Urc::Dtmf { key: '7' }));
        assert_eq!(parse_urc("+DTMF: x"), None);
    }

    #[test]
    fn state_urcs() {
        assert_eq!(
            parse_urc("+CREG: 5"),
            Some(Urc::Registration {
                domain: RegDomain::Circuit,
                status: RegStatus::Roaming
            })
        );
        assert_eq!(
            parse_urc("+CEREG: 1,\"00C3\",\"0000F3A1\",7"),
            Some(Urc::Registration {
                domain: RegDomain::Eps,
                status: RegStatus::Home
            })
        );
        assert_eq!(
            parse_urc("+CPIN: NOT INSERTED"),
            Some(Urc::Sim(SimState::NotInserted))
        );
        assert_eq!(parse_urc("+CPIN: READY"), Some(Urc::Sim(SimState::Ready)));
        assert_eq!(parse_urc("RDY"), Some(Urc::Ready));
        assert_eq!(parse_urc("Call Ready"), Some(Urc::CallReady));
        assert_eq!(parse_urc("SMS Ready"), Some(Urc::SmsReady));
        assert_eq!(parse_urc("+CFUN: 1"), Some(Urc::Functionality(1)));
        assert_eq!(
            parse_urc("+QIND: SMS DONE"),
            Some(Urc::QuectelIndication("SMS DONE".into()))
        );
        assert_eq!(parse_urc("NORMAL POWER DOWN"), Some(Urc::PowerDown));
        assert_eq!(parse_urc("+CTTS: 0"), Some(Urc::SpeechDone));
    }

    #[test]
    fn responses_are_not_urcs() {
        assert_eq!(parse_urc("+CSQ: 20,0"), None);
        assert_eq!(parse_urc("+CMGS: 4"), None);
        assert_eq!(parse_urc("SIMCOM_SIM7600E-H"), None);
        assert_eq!(parse_urc("0891683108200805F0"), None);
    }

    #[test]
    fn prefixes_of_commands() {
        assert_eq!(response_prefix("AT+CREG?").as_deref(), Some("+CREG:"));
        assert_eq!(response_prefix("AT+CMGS=23").as_deref(), Some("+CMGS:"));
        assert_eq!(response_prefix("at+cmgl=4").as_deref(), Some("+CMGL:"));
        assert_eq!(response_prefix("AT+CLCC").as_deref(), Some("+CLCC:"));
        assert_eq!(response_prefix("ATI"), None);
        assert_eq!(response_prefix("ATD+4912345;"), None);
        assert_eq!(response_prefix("AT"), None);
    }
}
