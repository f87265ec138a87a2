//! The simulator's side of SMS: what a submitted PDU says, what an incoming message looks like
//! as PDUs, status reports, and how the "phone" reassembles parts for the network log.
//!
//! All PDU work goes through [`crate::modem::pdu`], the same codec the driver uses; this module
//! only adapts its types to what the engine stores and logs. A bug in the codec therefore shows
//! on both sides — the end-to-end tests compare against texts, never against the codec's output.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};

use super::types::{DeliverOptions, NetworkEntry, SimError};
use crate::modem::pdu::{self, Direction, Encoding, Pdu};

/// What the network understood of one submitted PDU (or text-mode message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Destination number, `+` first when international.
    pub to: String,
    /// The text of this part.
    pub text: String,
    /// `gsm7`, `ucs2` or `binary8`.
    pub encoding: String,
    /// TP-SRR.
    pub status_report_requested: bool,
    /// `(reference, total, sequence)` from a concatenation header.
    pub concat: Option<(u16, u8, u8)>,
}

/// One PDU of an incoming message, ready to store or route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverPart {
    /// SMSC field followed by the TPDU, hex.
    pub hex_with_smsc: String,
    /// Octets of the TPDU.
    pub tpdu_len: usize,
    /// The text this part carries (for text mode).
    pub text: String,
}

/// Why a message typed at the simulated modem cannot be sent; the text is what the network log
/// shows beside the `+CMS ERROR`.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The codec refused the PDU.
    #[error("{0}")]
    Codec(#[from] pdu::PduError),
    /// `AT+CMGS=<n>` announced another TPDU length than the PDU has.
    #[error("TPDU is {octets} octets, AT+CMGS announced {announced}")]
    Length {
        /// Octets in the PDU as typed.
        octets: usize,
        /// The length the command announced.
        announced: usize,
    },
    /// A valid PDU, but not one a phone sends.
    #[error("not an SMS-SUBMIT")]
    NotSubmit,
    /// A text-mode message that needs more than the one SMS `AT+CMGW` can store.
    #[error("text needs {0} parts; one is allowed")]
    Parts(usize),
}

/// An encoded status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedReport {
    /// SMSC field followed by the TPDU, hex (for storage and `+CDS:`).
    pub hex_with_smsc: String,
    /// Octets of the TPDU.
    pub tpdu_len: usize,
}

/// Decodes the PDU typed after `AT+CMGS=<tpdu_len>`, with or without a leading SMSC field
/// (the length counts only the TPDU, so the codec's [`pdu::split_smsc`] can tell). The error
/// text says what was wrong (the engine answers `+CMS ERROR: 304`).
pub fn decode_submit(hex: &str, tpdu_len: usize) -> Result<Submitted, SubmitError> {
    let hex = hex.trim();
    let split = pdu::split_smsc(hex, tpdu_len)?;
    if split.tpdu_hex.len() != tpdu_len * 2 {
        return Err(SubmitError::Length {
            octets: split.tpdu_hex.len() / 2,
            announced: tpdu_len,
        });
    }
    match pdu::decode(hex, Direction::MobileOriginated, split.has_smsc_field) {
        Ok(Pdu::Submit(s)) => Ok(Submitted {
            to: s.destination.number,
            text: s.text,
            encoding: encoding_name(s.encoding).to_string(),
            status_report_requested: s.status_report_requested,
            concat: s.concat.map(|c| (c.reference, c.total, c.sequence)),
        }),
        Ok(_) => Err(SubmitError::NotSubmit),
        Err(e) => Err(SubmitError::Codec(e)),
    }
}

/// The PDU as `AT+CMGR` shows a stored SUBMIT: with an SMSC field (`00` added when the DTE
/// gave only the TPDU).
pub fn with_smsc_field(hex: &str, tpdu_len: usize) -> String {
    if hex.len() == tpdu_len * 2 {
        format!("00{hex}")
    } else {
        hex.to_string()
    }
}

/// Encodes a text-mode message written with `AT+CMGW` as one SMS-SUBMIT (SMSC field first);
/// fails if it needs more than one part.
pub fn encode_text_submit(
    to: &str,
    text: &str,
    status_report: bool,
) -> Result<(String, usize), SubmitError> {
    let opts = pdu::SubmitOptions {
        request_status_report: status_report,
        ..pdu::SubmitOptions::default()
    };
    let mut parts = pdu::encode_submit(to, text, &opts)?;
    if parts.len() != 1 {
        return Err(SubmitError::Parts(parts.len()));
    }
    let p = parts.remove(0);
    Ok((p.hex, p.tpdu_len))
}

/// The log's name for an alphabet.
pub fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Gsm7 => "gsm7",
        Encoding::Ucs2 => "ucs2",
        Encoding::Binary8 => "binary8",
    }
}

/// A text-mode submit: the text as typed, coding and status-report flag from `AT+CSMP`.
pub fn text_submit(to: &str, text: &str, csmp: (u8, u8, u8, u8)) -> Submitted {
    let (fo, _vp, _pid, dcs) = csmp;
    let encoding = match dcs & 0x0c {
        0x08 => "ucs2",
        0x04 => "binary8",
        _ => "gsm7",
    };
    Submitted {
        to: to.to_string(),
        text: text.to_string(),
        encoding: encoding.to_string(),
        status_report_requested: fo & 0x20 != 0,
        concat: None,
    }
}

/// Encodes an incoming message as one or more SMS-DELIVER PDUs (SMSC field first).
pub fn encode_deliver(
    from: &str,
    text: &str,
    timestamp: DateTime<FixedOffset>,
    smsc: Option<&str>,
    concat_reference: u16,
    opts: &DeliverOptions,
) -> Result<Vec<DeliverPart>, SimError> {
    let force = if opts.ucs2 {
        Some(Encoding::Ucs2)
    } else if opts.binary {
        Some(Encoding::Binary8)
    } else {
        None
    };
    let parts = pdu::encode_deliver(from, text, timestamp, smsc, concat_reference, force)
        .map_err(SimError::Encode)?;
    parts
        .into_iter()
        .map(|p| {
            // Each part's own text, for text mode, as the codec reads it back.
            let text = match pdu::decode(&p.hex, Direction::MobileTerminated, true) {
                Ok(Pdu::Deliver(d)) => d.text,
                Ok(_) => return Err(SimError::NoDeliver),
                Err(e) => return Err(SimError::Encode(e)),
            };
            Ok(DeliverPart {
                hex_with_smsc: p.hex,
                tpdu_len: p.tpdu_len,
                text,
            })
        })
        .collect()
}

/// Encodes an SMS-STATUS-REPORT for message reference `reference` (`status` as TP-ST: 0
/// delivered).
pub fn encode_status_report(
    reference: u8,
    recipient: &str,
    sc_time: DateTime<FixedOffset>,
    discharge: DateTime<FixedOffset>,
    status: u8,
) -> Result<EncodedReport, pdu::PduError> {
    let p = pdu::encode_status_report(reference, recipient, sc_time, discharge, status)?;
    Ok(EncodedReport {
        hex_with_smsc: p.hex,
        tpdu_len: p.tpdu_len,
    })
}

/// Hex of UTF-16 code units (as `AT+CSCS="UCS2"` and `AT+CTTS=1` use) to text.
pub fn ucs2_hex_to_string(hex: &str) -> Option<String> {
    if hex.len() % 4 != 0 {
        return None;
    }
    let units: Option<Vec<u16>> = (0..hex.len())
        .step_by(4)
        .map(|i| u16::from_str_radix(hex.get(i..i + 4)?, 16).ok())
        .collect();
    String::from_utf16(&units?).ok()
}

/// Text to hex of UTF-16 code units, upper case.
pub fn string_to_ucs2_hex(s: &str) -> String {
    s.encode_utf16().map(|u| format!("{u:04X}")).collect()
}

/// Parts received so far of one concatenated message: `(text, message reference, SRR)` by
/// sequence number, keyed by `(recipient, concat reference, total)`.
type PendingParts = HashMap<(String, u16, u8), Vec<Option<(String, u8, bool)>>>;

/// Groups submitted parts into whole messages, as the recipient's phone does.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: PendingParts,
}

impl Assembler {
    /// Adds one submitted part (its message reference `mr`); returns the whole message once
    /// complete. A single-part message is complete at once. A part repeated with the same
    /// sequence number replaces the earlier copy (a retried submit).
    pub fn push(&mut self, sub: &Submitted, mr: u8, now: DateTime<Utc>) -> Option<NetworkEntry> {
        let Some((reference, total, seq)) = sub.concat.filter(|c| c.1 > 1) else {
            return Some(NetworkEntry::Sms {
                at: now,
                to: sub.to.clone(),
                text: sub.text.clone(),
                encoding: sub.encoding.clone(),
                parts: 1,
                message_references: vec![mr],
                status_report_requested: sub.status_report_requested,
            });
        };
        if seq == 0 || seq > total {
            return None;
        }
        let key = (sub.to.clone(), reference, total);
        let parts = self
            .pending
            .entry(key.clone())
            .or_insert_with(|| vec![None; usize::from(total)]);
        parts[usize::from(seq - 1)] = Some((sub.text.clone(), mr, sub.status_report_requested));
        if parts.iter().any(Option::is_none) {
            return None;
        }
        let parts = self.pending.remove(&key)?;
        let parts: Vec<(String, u8, bool)> = parts.into_iter().flatten().collect();
        Some(NetworkEntry::Sms {
            at: now,
            to: sub.to.clone(),
            text: parts.iter().map(|p| p.0.as_str()).collect(),
            encoding: sub.encoding.clone(),
            parts: total,
            message_references: parts.iter().map(|p| p.1).collect(),
            status_report_requested: parts.iter().any(|p| p.2),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucs2_hex_round_trips_including_surrogates() {
        let s = "Grüße 👋";
        let hex = string_to_ucs2_hex(s);
        assert!(hex.starts_with("0047007200FC"));
        assert_eq!(ucs2_hex_to_string(&hex).as_deref(), Some(s));
        assert_eq!(ucs2_hex_to_string("004"), None);
        assert_eq!(ucs2_hex_to_string("D83D"), None);
    }

    #[test]
    fn text_submit_reads_csmp() {
        let s = text_submit("+491", "hi", (49, 167, 0, 8));
        assert!(s.status_report_requested);
        assert_eq!(s.encoding, "ucs2");
        assert!(!text_submit("+491", "hi", (17, 167, 0, 0)).status_report_requested);
    }

    #[test]
    fn assembler_waits_for_all_parts_in_any_order() {
        let t0 = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        let part = |seq: u8, text: &str| Submitted {
            to: "+4917".into(),
            text: text.into(),
            encoding: "gsm7".into(),
            status_report_requested: false,
            concat: Some((7, 3, seq)),
        };
        let mut a = Assembler::default();
        assert!(a.push(&part(2, "b"), 11, t0).is_none());
        assert!(a.push(&part(1, "a"), 10, t0).is_none());
        let Some(NetworkEntry::Sms {
            text,
            parts,
            message_references,
            ..
        }) = a.push(&part(3, "c"), 12, t0)
        else {
            panic!("expected a whole message");
        };
        assert_eq!(text, "abc");
        assert_eq!(parts, 3);
        assert_eq!(message_references, vec![10, 11, 12]);
    }
}
