//! Addresses: TP-OA / TP-DA / TP-RA and the SMSC field (3GPP TS 23.040 §9.1.2.5, TS 24.011
//! §8.2.5.1).
//!
//! Owns the mapping between a phone number or alphanumeric sender as text and its semi-octet
//! (or GSM-7 packed) wire form. Type-of-address octets written: `0x91` international (TON 1,
//! NPI 1), `0x81` unknown (TON 0, NPI 1, what a user-typed local number should be sent as),
//! `0xA1` national (only to round-trip a decoded national address), `0xD0` alphanumeric (TON 5).

use std::fmt;

use super::gsm7;
use super::reader::Reader;
use super::PduError;

/// Type of number, as far as pagerbox cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// TON 1: a full number with country code; [`Address::number`] starts with `+`.
    International,
    /// TON 2: a national number (without trunk prefix by the standard's definition).
    National,
    /// TON 5: a sender name such as `"sipgate"`, GSM-7 packed on the wire (at most 11
    /// septets).
    Alphanumeric,
    /// TON 0 and anything else: digits to be interpreted by the network's dialling plan.
    Unknown,
}

/// A party of a short message: sender, destination, status-report recipient or SMSC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// `"+4670..."` for international, digits (and `* # a b c`) for national/unknown, the
    /// text for alphanumeric.
    pub number: String,
    /// How [`Address::number`] is to be read.
    pub kind: AddressKind,
}

/// Most digits an address field may carry (10 octets of semi-octets).
const MAX_DIGITS: usize = 20;
/// Most septets an alphanumeric address may carry (10 octets = 80 bits).
const MAX_ALPHA_SEPTETS: usize = 11;

const TYPE_INTERNATIONAL: u8 = 0x91;
const TYPE_UNKNOWN: u8 = 0x81;
const TYPE_NATIONAL: u8 = 0xA1;
const TYPE_ALPHANUMERIC: u8 = 0xD0;

impl Address {
    /// Read a user- or config-supplied address. `"+"` followed by digits is
    /// [`AddressKind::International`]; digits only (and the dialling characters `* #`) is
    /// [`AddressKind::Unknown`] (sent as type `0x81`, which networks read with their national
    /// dialling plan; pagerbox never produces [`AddressKind::National`] from text, because that
    /// type means "without the trunk prefix" and user-typed numbers keep it); anything else is
    /// [`AddressKind::Alphanumeric`]. Spaces, dashes, dots and
    /// parentheses inside something that starts like a phone number are dropped first, so
    /// `"+46 70-825 13 58"` is the number `+46708251358`. Never fails: whether the address
    /// can be encoded is checked by the encoders.
    pub fn parse(s: &str) -> Address {
        let trimmed = s.trim();
        let looks_numeric = trimmed
            .chars()
            .next()
            .is_some_and(|c| c == '+' || c == '(' || is_dial_char(c));
        if looks_numeric {
            let compact: String = trimmed
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect();
            if let Some(digits) = compact.strip_prefix('+') {
                if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                    return Address {
                        number: compact,
                        kind: AddressKind::International,
                    };
                }
            } else if !compact.is_empty() && compact.chars().all(is_dial_char) {
                return Address {
                    number: compact,
                    kind: AddressKind::Unknown,
                };
            }
        }
        Address {
            number: trimmed.to_owned(),
            kind: AddressKind::Alphanumeric,
        }
    }

    fn type_octet(&self) -> u8 {
        match self.kind {
            AddressKind::International => TYPE_INTERNATIONAL,
            AddressKind::National => TYPE_NATIONAL,
            AddressKind::Alphanumeric => TYPE_ALPHANUMERIC,
            AddressKind::Unknown => TYPE_UNKNOWN,
        }
    }

    /// The digits to write as semi-octets (without the `+`), checked.
    fn digits(&self) -> Result<&str, PduError> {
        let digits = match self.kind {
            AddressKind::International => self.number.strip_prefix('+').unwrap_or(&self.number),
            _ => &self.number,
        };
        let invalid = |reason| PduError::InvalidAddress {
            input: self.number.clone(),
            reason,
        };
        if digits.is_empty() {
            return Err(invalid("no digits"));
        }
        if digits.len() > MAX_DIGITS {
            return Err(invalid("more than 20 digits"));
        }
        if !digits.chars().all(|c| {
            is_dial_char(c) || (self.kind != AddressKind::International && "abc".contains(c))
        }) {
            return Err(invalid("only digits and * # a b c can be sent as a number"));
        }
        Ok(digits)
    }

    /// Append this address as TP-OA / TP-DA / TP-RA: length in useful semi-octets, type,
    /// value.
    pub(crate) fn encode_tp(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        if self.kind == AddressKind::Alphanumeric {
            let septets = gsm7::encode(&self.number).map_err(|_| PduError::InvalidAddress {
                input: self.number.clone(),
                reason: "alphanumeric address must be GSM 7-bit text",
            })?;
            if septets.is_empty() || septets.len() > MAX_ALPHA_SEPTETS {
                return Err(PduError::InvalidAddress {
                    input: self.number.clone(),
                    reason: "alphanumeric address must be 1 to 11 septets",
                });
            }
            let semi_octets = (septets.len() * 7).div_ceil(4);
            // At most 11 septets -> at most 20 semi-octets: fits in a u8.
            out.push(semi_octets as u8);
            out.push(TYPE_ALPHANUMERIC);
            out.extend(gsm7::pack(&septets, 0));
            return Ok(());
        }
        let digits = self.digits()?;
        out.push(digits.len() as u8);
        out.push(self.type_octet());
        push_semi_octets(digits, out);
        Ok(())
    }

    /// Append this address as the SMSC field of an AT PDU: length in octets (type included),
    /// type, value. Only numbers can be SMSC addresses.
    pub(crate) fn encode_smsc(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        if self.kind == AddressKind::Alphanumeric {
            return Err(PduError::InvalidAddress {
                input: self.number.clone(),
                reason: "an SMSC address must be a number",
            });
        }
        let digits = self.digits()?;
        out.push((1 + digits.len().div_ceil(2)) as u8);
        out.push(self.type_octet());
        push_semi_octets(digits, out);
        Ok(())
    }

    /// Read a TP-OA / TP-DA / TP-RA.
    pub(crate) fn decode_tp(r: &mut Reader<'_>, what: &'static str) -> Result<Address, PduError> {
        let semi_octets = usize::from(r.octet(what)?);
        let type_octet = r.octet(what)?;
        let value = r.take(semi_octets.div_ceil(2), what)?;
        if (type_octet >> 4) & 0x07 == 5 {
            // Alphanumeric: the length counts semi-octets of packed septets.
            let count = semi_octets * 4 / 7;
            let septets = gsm7::unpack(value, 0, count).unwrap_or_default();
            return Ok(Address {
                number: gsm7::decode(&septets),
                kind: AddressKind::Alphanumeric,
            });
        }
        Ok(number_address(
            type_octet,
            read_semi_octets(value, semi_octets),
        ))
    }

    /// Read the SMSC field. A zero length means "no SMSC given" and yields `None`.
    pub(crate) fn decode_smsc(r: &mut Reader<'_>) -> Result<Option<Address>, PduError> {
        const WHAT: &str = "SMSC address";
        let octets = usize::from(r.octet(WHAT)?);
        if octets == 0 {
            return Ok(None);
        }
        let field = r.take(octets, WHAT)?;
        let type_octet = field[0];
        let value = &field[1..];
        if (type_octet >> 4) & 0x07 == 5 {
            let septets = gsm7::unpack(value, 0, value.len() * 8 / 7).unwrap_or_default();
            return Ok(Some(Address {
                number: gsm7::decode(&septets),
                kind: AddressKind::Alphanumeric,
            }));
        }
        Ok(Some(number_address(
            type_octet,
            read_semi_octets(value, value.len() * 2),
        )))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

fn is_dial_char(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

fn number_address(type_octet: u8, digits: String) -> Address {
    match (type_octet >> 4) & 0x07 {
        1 => Address {
            number: format!("+{digits}"),
            kind: AddressKind::International,
        },
        2 => Address {
            number: digits,
            kind: AddressKind::National,
        },
        _ => Address {
            number: digits,
            kind: AddressKind::Unknown,
        },
    }
}

fn semi_octet_value(c: char) -> u8 {
    match c {
        '*' => 0xA,
        '#' => 0xB,
        'a' => 0xC,
        'b' => 0xD,
        'c' => 0xE,
        // Callers only pass characters accepted by `Address::digits`.
        _ => c.to_digit(10).map_or(0xF, |d| d as u8),
    }
}

/// Write digits as swapped semi-octets, padding an odd count with `F`.
pub(crate) fn push_semi_octets(digits: &str, out: &mut Vec<u8>) {
    let values: Vec<u8> = digits.chars().map(semi_octet_value).collect();
    for pair in values.chunks(2) {
        let high = pair.get(1).copied().unwrap_or(0xF);
        out.push(high << 4 | pair[0]);
    }
}

/// Read up to `count` semi-octets as dialling characters. `F` is filler and is skipped.
fn read_semi_octets(value: &[u8], count: usize) -> String {
    value
        .iter()
        .flat_map(|&b| [b & 0x0F, b >> 4])
        .take(count)
        .filter_map(|n| match n {
            0..=9 => Some(char::from(b'0' + n)),
            0xA => Some('*'),
            0xB => Some('#'),
            0xC => Some('a'),
            0xD => Some('b'),
            0xE => Some('c'),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::reader::{from_hex, to_hex};
    use super::*;

    fn encode(a: &Address) -> String {
        let mut out = Vec::new();
        a.encode_tp(&mut out).unwrap();
        to_hex(&out)
    }

    fn decode(hex: &str) -> Address {
        let bytes = from_hex(hex).unwrap();
        Address::decode_tp(&mut Reader::new(&bytes), "address").unwrap()
    }

    #[test]
    fn parse_classifies() {
        assert_eq!(
            Address::parse("+46 70-825 13 58"),
            Address {
                number: "+46708251358".into(),
                kind: AddressKind::International
            }
        );
        assert_eq!(Address::parse("0701234567").kind, AddressKind::Unknown);
        assert_eq!(Address::parse("*100#").kind, AddressKind::Unknown);
        assert_eq!(Address::parse("12ab").kind, AddressKind::Alphanumeric);
        assert_eq!(Address::parse("sipgate").kind, AddressKind::Alphanumeric);
        assert_eq!(Address::parse("+").kind, AddressKind::Alphanumeric);
        assert_eq!(Address::parse("").kind, AddressKind::Alphanumeric);
    }

    // Vectors from python-gsmmodem test/test_pdu.py (TestSmsPduAddressFields).
    #[test]
    fn python_gsmmodem_address_vectors() {
        let cases = [
            ("+9876543210", "0A918967452301"),
            ("+987654321", "099189674523F1"),
            ("+27829135934", "0B917228195339F4"),
            ("abc", "06D061F118"),
            ("FRANCOIS", "0ED04669D0397C26A7"),
            ("a[]{}€", "14D0E10D6FE3DBA036A94D19"),
        ];
        for (text, hex) in cases {
            let a = Address::parse(text);
            assert_eq!(encode(&a), hex, "{text}");
            assert_eq!(decode(hex), a, "{hex}");
        }
        // Type 0xA1 (national), a local number in the same file.
        assert_eq!(
            decode("0AA11092997856"),
            Address {
                number: "0129998765".into(),
                kind: AddressKind::National
            }
        );
    }

    // SMSC field vectors from python-gsmmodem test/test_pdu.py (TestSmsPduSmscFields).
    #[test]
    fn smsc_field_vectors() {
        for (text, hex) in [
            ("+9876543210", "06918967452301"),
            ("+987654321", "069189674523F1"),
        ] {
            let mut out = Vec::new();
            Address::parse(text).encode_smsc(&mut out).unwrap();
            assert_eq!(to_hex(&out), hex);
            let bytes = from_hex(hex).unwrap();
            let decoded = Address::decode_smsc(&mut Reader::new(&bytes)).unwrap();
            assert_eq!(decoded, Some(Address::parse(text)));
        }
        let none = Address::decode_smsc(&mut Reader::new(&[0])).unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn bad_addresses_are_rejected_on_encode() {
        let mut out = Vec::new();
        let too_long = Address::parse("+123456789012345678901");
        assert!(matches!(
            too_long.encode_tp(&mut out),
            Err(PduError::InvalidAddress { .. })
        ));
        let alpha = Address::parse("a very long sender name");
        assert!(alpha.encode_tp(&mut out).is_err());
        assert!(Address::parse("日本").encode_tp(&mut out).is_err());
        assert!(Address::parse("name").encode_smsc(&mut out).is_err());
        assert!(Address::parse("").encode_tp(&mut out).is_err());
    }

    #[test]
    fn truncated_address_is_reported() {
        let bytes = from_hex("0B9164").unwrap();
        let err = Address::decode_tp(&mut Reader::new(&bytes), "destination").unwrap_err();
        assert!(err.is_truncated(), "{err}");
    }
}
