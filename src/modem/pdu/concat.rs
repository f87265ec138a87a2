//! Choosing the encoding, splitting text into parts, and the concatenation header (3GPP TS
//! 23.040 §9.2.3.24.1 / .8).
//!
//! Owns the rule that decides how many SMS a text costs. Splitting works on whole characters,
//! so an extension character (ESC + code, two septets) or a character outside the BMP (a UTF-16
//! surrogate pair, two units) is never cut across two parts: if it does not fit, it moves
//! wholly to the next part. Encoders and [`plan_parts`] use the same splitter, so the plan a
//! page-text builder sees is exactly what will be sent.
//!
//! Long messages carry a 6-octet user data header with IEI 0x00 (8-bit reference): 153 septets,
//! 67 UCS-2 units or 134 octets per part. Decoding also understands IEI 0x08 (16-bit
//! reference).

use super::{gsm7, Encoding, PduError};

/// Where a part sits in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConcatInfo {
    /// Reference shared by all parts of one message (8 or 16 bits on the wire).
    pub reference: u16,
    /// Number of parts, 1..=255.
    pub total: u8,
    /// This part's number, 1..=total.
    pub sequence: u8,
}

/// What a text will cost, from [`plan_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// The encoding the encoders will choose: GSM-7 when every character fits, else UCS-2.
    pub encoding: Encoding,
    /// Number of SMS. May exceed 255, in which case the encoders refuse the text.
    pub parts: usize,
    /// Capacity of each part in units: 160/70/140 for a single SMS, 153/67/134 per part of a
    /// concatenated one (units are septets, UTF-16 code units or octets).
    pub units_per_part: usize,
    /// Units the whole text needs (extension characters count 2 septets, astral characters 2
    /// UTF-16 units).
    pub units_used: usize,
}

/// Octets of the concatenation header we write: UDHL, IEI 0x00, IEDL 3, ref, total, seq.
pub(crate) const CONCAT_UDH_OCTETS: usize = 6;
/// The most parts an 8-bit part counter allows.
pub(crate) const MAX_PARTS: usize = 255;

fn capacity(encoding: Encoding, concatenated: bool) -> usize {
    match (encoding, concatenated) {
        (Encoding::Gsm7, false) => 160,
        (Encoding::Gsm7, true) => 153,
        (Encoding::Ucs2, false) => 70,
        (Encoding::Ucs2, true) => 67,
        (Encoding::Binary8, false) => 140,
        (Encoding::Binary8, true) => 134,
    }
}

/// Units one character costs in `encoding`, or `None` if it cannot be written in it.
fn char_units(c: char, encoding: Encoding) -> Option<usize> {
    match encoding {
        Encoding::Gsm7 => gsm7::char_septets(c),
        Encoding::Ucs2 => Some(c.len_utf16()),
        Encoding::Binary8 => (u32::from(c) <= 0xFF).then_some(1),
    }
}

/// The encoding the encoders pick when not forced.
pub(crate) fn natural_encoding(text: &str) -> Encoding {
    if gsm7::is_gsm7(text) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// A text split into parts.
pub(crate) struct Split<'a> {
    pub(crate) parts: Vec<&'a str>,
    pub(crate) units_used: usize,
    pub(crate) units_per_part: usize,
}

/// Split `text` into the slices that go into each part, never cutting a character. An empty
/// text is one empty part.
pub(crate) fn split(text: &str, encoding: Encoding) -> Result<Split<'_>, PduError> {
    let mut units_used = 0;
    for c in text.chars() {
        units_used += char_units(c, encoding).ok_or(PduError::Unencodable { ch: c, encoding })?;
    }
    let single = capacity(encoding, false);
    if units_used <= single {
        return Ok(Split {
            parts: vec![text],
            units_used,
            units_per_part: single,
        });
    }
    let per_part = capacity(encoding, true);
    let mut parts = Vec::with_capacity(units_used / per_part + 1);
    let (mut start, mut used) = (0, 0);
    for (i, c) in text.char_indices() {
        // Checked above: every character has a cost.
        let cost = char_units(c, encoding).unwrap_or(1);
        if used + cost > per_part {
            parts.push(&text[start..i]);
            start = i;
            used = 0;
        }
        used += cost;
    }
    parts.push(&text[start..]);
    Ok(Split {
        parts,
        units_used,
        units_per_part: per_part,
    })
}

/// What `text` will cost as SMS with the encoding the encoders choose (GSM-7 when it fits,
/// else UCS-2): a page-text builder uses this to fit a page into one SMS. Exact: it runs the
/// same splitter as [`super::encode_submit`], including moving an extension character or
/// surrogate pair that would straddle a boundary to the next part.
pub fn plan_parts(text: &str) -> PartPlan {
    let encoding = natural_encoding(text);
    match split(text, encoding) {
        Ok(s) => PartPlan {
            encoding,
            parts: s.parts.len(),
            units_per_part: s.units_per_part,
            units_used: s.units_used,
        },
        // Unreachable: UCS-2 encodes every char and GSM-7 is only chosen when it fits.
        Err(_) => PartPlan {
            encoding,
            parts: 0,
            units_per_part: 0,
            units_used: 0,
        },
    }
}

/// Whether `text` fits in at most `max_parts` SMS (at least one). Page texts, SMS replies and
/// standby reasons are cut to fit with it, so what is counted is what the modem will send.
pub fn fits(text: &str, max_parts: usize) -> bool {
    plan_parts(text).parts <= max_parts.max(1)
}

/// Like [`plan_parts`] but for a given encoding (as when the simulator forces UCS-2). Fails
/// with [`PduError::Unencodable`] when a character does not fit that encoding.
pub fn plan_parts_as(text: &str, encoding: Encoding) -> Result<PartPlan, PduError> {
    let s = split(text, encoding)?;
    Ok(PartPlan {
        encoding,
        parts: s.parts.len(),
        units_per_part: s.units_per_part,
        units_used: s.units_used,
    })
}

/// The user data header for one part (UDHL included): IEI 0x00 with the low 8 bits of the
/// reference.
pub(crate) fn concat_header(info: &ConcatInfo) -> [u8; CONCAT_UDH_OCTETS] {
    [
        0x05,
        0x00,
        0x03,
        (info.reference & 0xFF) as u8,
        info.total,
        info.sequence,
    ]
}

/// Find a concatenation element in a user data header (the octets after UDHL). Malformed or
/// unknown elements are skipped; a concatenation element whose sequence is 0 or beyond the
/// total is ignored, as TS 23.040 §9.2.3.24.1 requires. `Err(())` when an element runs past
/// the end of the header.
pub(crate) fn parse_header(header: &[u8]) -> Result<Option<ConcatInfo>, ()> {
    let mut found = None;
    let mut rest = header;
    while !rest.is_empty() {
        let [iei, len, tail @ ..] = rest else {
            return Err(());
        };
        let len = usize::from(*len);
        if tail.len() < len {
            return Err(());
        }
        let data = &tail[..len];
        let info = match (*iei, data) {
            (0x00, &[reference, total, sequence]) => Some(ConcatInfo {
                reference: u16::from(reference),
                total,
                sequence,
            }),
            (0x08, &[hi, lo, total, sequence]) => Some(ConcatInfo {
                reference: u16::from_be_bytes([hi, lo]),
                total,
                sequence,
            }),
            _ => None,
        };
        if let Some(info) = info {
            if info.total > 0 && info.sequence > 0 && info.sequence <= info.total {
                found = Some(info);
            }
        }
        rest = &tail[len..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_part_limits() {
        let p = plan_parts(&"a".repeat(160));
        assert_eq!(
            (p.encoding, p.parts, p.units_per_part),
            (Encoding::Gsm7, 1, 160)
        );
        let p = plan_parts(&"a".repeat(161));
        assert_eq!((p.parts, p.units_per_part, p.units_used), (2, 153, 161));
        let p = plan_parts(&"ж".repeat(70));
        assert_eq!(
            (p.encoding, p.parts, p.units_per_part),
            (Encoding::Ucs2, 1, 70)
        );
        assert_eq!(plan_parts(&"ж".repeat(71)).parts, 2);
        assert_eq!(plan_parts("").parts, 1);
    }

    #[test]
    fn euro_costs_two_septets_and_tips_into_two_parts() {
        let text = format!("{}€", "a".repeat(159));
        assert_eq!(text.chars().count(), 160);
        let p = plan_parts(&text);
        assert_eq!(
            (p.encoding, p.units_used, p.parts),
            (Encoding::Gsm7, 161, 2)
        );
        let text = format!("{}€", "a".repeat(158));
        assert_eq!(plan_parts(&text).parts, 1);
    }

    #[test]
    fn euro_at_boundary_moves_to_next_part() {
        // 152 septets, then € (2 septets) would end at 154 > 153: it must open part 2.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let s = split(&text, Encoding::Gsm7).unwrap();
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[0], "a".repeat(152));
        assert!(s.parts[1].starts_with('€'));
    }

    #[test]
    fn surrogate_pair_at_boundary_moves_to_next_part() {
        // 66 units, then an emoji (2 units) would end at 68 > 67.
        let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
        let s = split(&text, Encoding::Ucs2).unwrap();
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[0], "ж".repeat(66));
        assert!(s.parts[1].starts_with('😀'));
    }

    #[test]
    fn forced_encodings() {
        assert_eq!(
            plan_parts_as("abc", Encoding::Ucs2).unwrap().units_per_part,
            70
        );
        assert_eq!(
            plan_parts_as("ж", Encoding::Gsm7).unwrap_err(),
            PduError::Unencodable {
                ch: 'ж',
                encoding: Encoding::Gsm7
            }
        );
        assert!(plan_parts_as("ÿ", Encoding::Binary8).is_ok());
        assert!(plan_parts_as("Ā", Encoding::Binary8).is_err());
    }

    // Concatenation IE vectors from python-gsmmodem test/test_pdu.py (TestUdhConcatenation):
    // 8-bit "0003170301" and 16-bit "080401800402".
    #[test]
    fn header_vectors() {
        assert_eq!(
            parse_header(&[0x00, 0x03, 0x17, 0x03, 0x01]),
            Ok(Some(ConcatInfo {
                reference: 23,
                total: 3,
                sequence: 1
            }))
        );
        assert_eq!(
            parse_header(&[0x08, 0x04, 0x01, 0x80, 0x04, 0x02]),
            Ok(Some(ConcatInfo {
                reference: 384,
                total: 4,
                sequence: 2
            }))
        );
        let info = ConcatInfo {
            reference: 0x117,
            total: 3,
            sequence: 1,
        };
        assert_eq!(concat_header(&info), [0x05, 0x00, 0x03, 0x17, 0x03, 0x01]);
    }

    #[test]
    fn bad_headers() {
        assert_eq!(parse_header(&[0x00, 0x03, 0x17]), Err(()));
        assert_eq!(parse_header(&[0x00]), Err(()));
        // Sequence 0 and sequence > total are ignored, other elements skipped.
        assert_eq!(parse_header(&[0x00, 0x03, 0x17, 0x03, 0x00]), Ok(None));
        assert_eq!(parse_header(&[0x00, 0x03, 0x17, 0x03, 0x04]), Ok(None));
        assert_eq!(parse_header(&[0x24, 0x01, 0x01]), Ok(None));
    }
}
