//! modem::pdu: the pure SMS PDU codec (3GPP TS 23.040, TS 23.038).
//!
//! Owns turning text into the hex PDUs that `AT+CMGS` takes and turning the hex that `+CMT`,
//! `+CMGR` and `+CDS` give back into values: SMS-SUBMIT (encode for the modem, decode for the
//! simulator), SMS-DELIVER and SMS-STATUS-REPORT (decode for the modem, encode for the
//! simulator), the GSM 7-bit alphabet with its extension table, UCS-2 (UTF-16), concatenation
//! and reassembly. No I/O, no clock, no logging: time is an argument, errors are values.
//!
//! Does not own: sending, retrying or matching status reports to pages (the AT engine), SIM
//! storage, national language shift tables, compressed text, SMS-COMMAND or the report PDUs.
//!
//! Why pagerbox writes this itself: the escape and surrogate-pair split bugs seen in small
//! crates mangle pages silently, and the tables are small. Every decoder reads through a
//! bounds-checked cursor, so no input makes it panic (fuzzed: `fuzz/`).
//!
//! Map:
//! - [`gsm7`]: alphabet, [`is_gsm7`], [`septet_count`], septet packing.
//! - `ucs2`: UTF-16BE user data.
//! - `address`: [`Address`] parsing and wire forms.
//! - `time`: timestamps and [`Validity`].
//! - `concat`: encoding choice, part splitting ([`plan_parts`]), the concatenation header.
//! - `userdata`: TP-DCS / TP-UDL / TP-UD.
//! - `submit`, `deliver`, `status`: the three PDU types.
//! - `reassembly`: [`Reassembler`].

#![warn(missing_docs)]

mod address;
mod concat;
mod deliver;
mod error;
pub mod gsm7;
mod reader;
mod reassembly;
mod status;
mod submit;
mod time;
mod ucs2;
mod userdata;

pub use address::{Address, AddressKind};
pub use concat::{fits, plan_parts, plan_parts_as, ConcatInfo, PartPlan};
pub use deliver::{encode_deliver, Deliver};
pub use error::PduError;
pub use gsm7::{is_gsm7, septet_count};
pub use reassembly::{Incomplete, Part, Reassembler};
pub use status::{encode_status_report, DeliveryOutcome, StatusReport};
pub use submit::{encode_submit, Submit, SubmitOptions};
pub use time::Validity;

use reader::{from_hex, Reader};

/// The alphabet of a message's user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 7-bit default alphabet: 160 septets in one SMS, 153 per concatenated part.
    Gsm7,
    /// UCS-2, really UTF-16BE: 70 units in one SMS, 67 per part.
    Ucs2,
    /// 8-bit data: 140 octets, 134 per part. Text is carried as Latin-1 (see
    /// [`Deliver::text`]).
    Binary8,
}

/// Which way a PDU travels, which decides how the message type bits are read (the same
/// TP-MTI value means different PDUs in each direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Network to phone, what a modem receives: SMS-DELIVER, SMS-STATUS-REPORT.
    MobileTerminated,
    /// Phone to network, what a network receives: SMS-SUBMIT.
    MobileOriginated,
}

/// One encoded PDU, ready for `AT+CMGS=<tpdu_len>` followed by `hex` and Ctrl-Z.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    /// The full PDU including the leading SMSC field (`00` when the SIM's SMSC is to be
    /// used), uppercase hex.
    pub hex: String,
    /// Octets after the SMSC field: the `<length>` AT+CMGS wants.
    pub tpdu_len: usize,
}

impl EncodedPdu {
    /// `tpdu` behind the SMSC field `smsc` (`[0]`: the SIM's SMSC), so the length the command
    /// takes is counted the same way for every kind of PDU.
    fn new(smsc: &[u8], tpdu: &[u8]) -> EncodedPdu {
        let mut pdu = Vec::with_capacity(smsc.len() + tpdu.len());
        pdu.extend_from_slice(smsc);
        pdu.extend_from_slice(tpdu);
        EncodedPdu {
            hex: reader::to_hex(&pdu),
            tpdu_len: tpdu.len(),
        }
    }
}

/// A decoded PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// An incoming message (or one part of it).
    Deliver(Deliver),
    /// An outgoing message (or one part of it), as the network sees it.
    Submit(Submit),
    /// A delivery report for an earlier SUBMIT.
    StatusReport(StatusReport),
}

/// Decode a hex PDU. `has_smsc` says whether it starts with the SMSC field (true for what
/// `+CMT`, `+CMGR` and `+CDS` show; for `AT+CMGS` input see [`decode_with_tpdu_len`]).
/// `direction` decides how TP-MTI is read: DELIVER and STATUS-REPORT are mobile terminated,
/// SUBMIT mobile originated. Octets after the user data are ignored.
///
/// Never panics. Errors: [`PduError::InvalidHex`] / [`PduError::OddHexLength`] for bad hex,
/// [`PduError::Truncated`] when the PDU ends inside a field, other variants for bad values.
pub fn decode(hex: &str, direction: Direction, has_smsc: bool) -> Result<Pdu, PduError> {
    decode_bytes(&from_hex(hex)?, direction, has_smsc)
}

/// [`decode`] for raw octets instead of hex.
pub fn decode_bytes(bytes: &[u8], direction: Direction, has_smsc: bool) -> Result<Pdu, PduError> {
    decode_counting(bytes, direction, has_smsc).map(|(pdu, _)| pdu)
}

/// Decode, also returning the TP-UD length in octets (0 for status reports), for tests.
fn decode_counting(
    bytes: &[u8],
    direction: Direction,
    has_smsc: bool,
) -> Result<(Pdu, usize), PduError> {
    let mut r = Reader::new(bytes);
    let smsc = if has_smsc {
        Address::decode_smsc(&mut r)?
    } else {
        None
    };
    let tpdu_start = r.position();
    let first_octet = *bytes.get(tpdu_start).ok_or(PduError::Truncated {
        what: "first octet",
        offset: tpdu_start,
        needed: 1,
        available: 0,
    })?;
    match (direction, first_octet & 0x03) {
        (Direction::MobileTerminated, 0b00) => {
            deliver::decode_deliver(&mut r, smsc).map(|(d, n)| (Pdu::Deliver(d), n))
        }
        (Direction::MobileTerminated, 0b10) => {
            status::decode_status_report(&mut r, smsc).map(|s| (Pdu::StatusReport(s), 0))
        }
        (Direction::MobileOriginated, 0b01) => {
            submit::decode_submit(&mut r, smsc).map(|(s, n)| (Pdu::Submit(s), n))
        }
        (direction, mti) => Err(PduError::UnsupportedMessageType {
            mti,
            first_octet,
            direction,
        }),
    }
}

/// A PDU split at the end of its SMSC field, from [`split_smsc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPdu<'a> {
    /// Whether the PDU started with an SMSC field at all.
    pub has_smsc_field: bool,
    /// The SMSC address in it (`None` when absent or of zero length: "use the SIM's").
    pub smsc: Option<Address>,
    /// The hex of the TPDU alone.
    pub tpdu_hex: &'a str,
}

/// Tell whether PDU hex sent with `AT+CMGS=<tpdu_len>` carries an SMSC field: the length
/// counts only the TPDU, so any extra leading octets must be exactly one SMSC field. Used by
/// the simulator, which receives both forms.
///
/// Fails with [`PduError::Truncated`] when the hex is shorter than `tpdu_len` and with
/// [`PduError::Invalid`] when the extra octets are not one SMSC field.
pub fn split_smsc(hex: &str, tpdu_len: usize) -> Result<SplitPdu<'_>, PduError> {
    let hex = hex.trim();
    let bytes = from_hex(hex)?;
    if bytes.len() < tpdu_len {
        return Err(PduError::Truncated {
            what: "TPDU of the announced length",
            offset: 0,
            needed: tpdu_len,
            available: bytes.len(),
        });
    }
    let extra = bytes.len() - tpdu_len;
    if extra == 0 {
        return Ok(SplitPdu {
            has_smsc_field: false,
            smsc: None,
            tpdu_hex: hex,
        });
    }
    if usize::from(bytes[0]) + 1 != extra {
        return Err(PduError::Invalid {
            what: "SMSC field length",
            offset: 0,
            found: bytes[0],
            expected: "the octets before the TPDU (PDU length minus the AT+CMGS length, less one)",
        });
    }
    let smsc = Address::decode_smsc(&mut Reader::new(&bytes[..extra]))?;
    Ok(SplitPdu {
        has_smsc_field: true,
        smsc,
        // Hex is ASCII (checked by from_hex), so this is a char boundary.
        tpdu_hex: &hex[extra * 2..],
    })
}

/// [`decode`] for a PDU given with `AT+CMGS=<tpdu_len>`: whether it has an SMSC field is
/// worked out with [`split_smsc`].
pub fn decode_with_tpdu_len(
    hex: &str,
    direction: Direction,
    tpdu_len: usize,
) -> Result<Pdu, PduError> {
    let split = split_smsc(hex, tpdu_len)?;
    decode(hex, direction, split.has_smsc_field)
}

#[cfg(test)]
mod tests;
