//! The one error type of the PDU codec.
//!
//! Decoding errors say where (octet offset into the decoded bytes, SMSC field included when
//! present) and what was expected, and keep "the input ended early" ([`PduError::Truncated`])
//! apart from "the input is wrong" (everything else): "need more bytes" is never "bad bytes".

use super::{Direction, Encoding};

/// Why a PDU could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The hex text has a character that is not a hex digit.
    #[error("invalid hex digit {found:?} at character {position}")]
    InvalidHex {
        /// Character index (after trimming surrounding whitespace).
        position: usize,
        /// The offending character.
        found: char,
    },
    /// The hex text has an odd number of digits, so it is not whole octets.
    #[error("hex text has an odd number of digits ({len})")]
    OddHexLength {
        /// Number of hex digits.
        len: usize,
    },
    /// The input ended before a field was complete: more octets would be needed.
    #[error("PDU truncated at octet {offset}: {what} needs {needed} octet(s), {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Octet offset where the field starts.
        offset: usize,
        /// Octets the field needs.
        needed: usize,
        /// Octets that were left.
        available: usize,
    },
    /// A field has a value the codec cannot accept.
    #[error("invalid {what} at octet {offset}: found {found:#04x}, expected {expected}")]
    Invalid {
        /// The field being read.
        what: &'static str,
        /// Octet offset of the field.
        offset: usize,
        /// The value found.
        found: u8,
        /// What would have been acceptable.
        expected: &'static str,
    },
    /// The message type indicator names a PDU this codec does not handle in that direction
    /// (e.g. SMS-SUBMIT-REPORT, SMS-COMMAND).
    #[error("unsupported message type {mti:#04b} in a {direction:?} PDU (first octet {first_octet:#04x})")]
    UnsupportedMessageType {
        /// TP-MTI, the two low bits of the first octet.
        mti: u8,
        /// The first octet of the TPDU.
        first_octet: u8,
        /// Direction the caller said the PDU travels.
        direction: Direction,
    },
    /// A feature this codec deliberately does not implement (e.g. compressed user data).
    #[error("unsupported {what} at octet {offset}")]
    Unsupported {
        /// What is unsupported.
        what: &'static str,
        /// Octet offset of the field.
        offset: usize,
    },
    /// A 7-octet timestamp does not name a real date and time.
    #[error("invalid timestamp at octet {offset}: {raw:02X?}")]
    InvalidTimestamp {
        /// Octet offset of the timestamp.
        offset: usize,
        /// The raw semi-octets.
        raw: [u8; 7],
    },
    /// An address cannot be encoded (empty, too long, bad characters, alphanumeric where only
    /// a number is allowed).
    #[error("cannot encode address {input:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        input: String,
        /// Why it cannot be encoded.
        reason: &'static str,
    },
    /// A character has no representation in the chosen (or forced) encoding.
    #[error("character {ch:?} cannot be encoded as {encoding:?}")]
    Unencodable {
        /// The first character that does not fit.
        ch: char,
        /// The encoding that was asked for.
        encoding: Encoding,
    },
    /// The text needs more parts than allowed (the caller's `max_parts`, or 255, the most a
    /// concatenation header can count).
    #[error("text needs {needed} parts, more than the limit of {max}")]
    TooManyParts {
        /// Parts the text needs.
        needed: usize,
        /// The limit.
        max: usize,
    },
    /// A timestamp cannot be written as a TP-SCTS (year outside 2000..=2099, or an offset that
    /// is not a whole number of quarter hours within ±19:45).
    #[error("cannot encode timestamp {timestamp}: {reason}")]
    UnencodableTimestamp {
        /// The timestamp, RFC 3339.
        timestamp: String,
        /// Why it cannot be encoded.
        reason: &'static str,
    },
}

impl PduError {
    /// True when the input ended early (more octets would have been needed), as opposed to
    /// input that is wrong. A caller that may hold a partial PDU can wait for more; a caller
    /// holding a complete PDU should treat both as a bad PDU.
    pub fn is_truncated(&self) -> bool {
        matches!(self, PduError::Truncated { .. })
    }
}
