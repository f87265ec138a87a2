//! The GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1) and its extension table (§6.2.1.1),
//! plus septet packing (§6.1.2.1).
//!
//! Owns: character <-> septet mapping, septet costs (an extension character costs two septets:
//! ESC + code) and packing septets into octets with leading fill bits (needed after a user data
//! header so the text starts on a septet boundary). Does not own: national language shift tables
//! (not supported; a message using them decodes with the default tables), or choosing between
//! GSM-7 and UCS-2 (that is the `concat` module, see [`super::plan_parts`]).
//!
//! The tables are written out here rather than taken from a crate: they are 138 entries, and the
//! extension-table handling is exactly where small crates have been wrong.

/// The escape septet that introduces an extension-table character.
pub(crate) const ESC: u8 = 0x1B;

/// The basic character set, indexed by septet value. `ESC` (0x1B) is never produced by
/// [`encode`] for itself; on decode a lone escape is handled in [`decode`].
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (code after ESC, character). Each costs two septets.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

fn basic_code(c: char) -> Option<u8> {
    if c == '\u{1B}' {
        return None;
    }
    // The table has 128 entries, so the index always fits in a septet.
    BASIC.iter().position(|&b| b == c).map(|i| i as u8)
}

fn extension_code(c: char) -> Option<u8> {
    EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(code, _)| code)
}

/// How many septets `c` costs in the default alphabet: 1 for the basic set, 2 for the
/// extension table (ESC + code), `None` if it cannot be written in GSM-7 at all.
pub fn char_septets(c: char) -> Option<usize> {
    if basic_code(c).is_some() {
        Some(1)
    } else if extension_code(c).is_some() {
        Some(2)
    } else {
        None
    }
}

/// Whether every character of `text` can be sent in the GSM 7-bit default alphabet (basic set
/// or extension table). When false, the text must go as UCS-2.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| char_septets(c).is_some())
}

/// How many septets `text` costs in GSM-7, counting extension characters (`€ { } [ ] ~ \ ^ |`
/// and form feed) as two. `None` if the text is not GSM-7 encodable (see [`is_gsm7`]).
pub fn septet_count(text: &str) -> Option<usize> {
    text.chars().map(char_septets).sum()
}

/// Map text to unpacked septet values. Fails with the first character that has no GSM-7 form.
pub(crate) fn encode(text: &str) -> Result<Vec<u8>, char> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(code) = basic_code(c) {
            out.push(code);
        } else if let Some(code) = extension_code(c) {
            out.push(ESC);
            out.push(code);
        } else {
            return Err(c);
        }
    }
    Ok(out)
}

/// Map unpacked septets to text. Never fails: an escape followed by a code the extension table
/// does not define shows the basic character for that code (TS 23.038 §6.2.1.1 note), ESC ESC
/// shows a space (reserved for a further table), and a trailing lone escape is dropped.
pub(crate) fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = iter.next() {
        if s != ESC {
            out.push(BASIC[usize::from(s)]);
            continue;
        }
        match iter.next() {
            None => {}
            Some(ESC) => out.push(' '),
            Some(code) => match EXTENSION.iter().find(|&&(c, _)| c == code) {
                Some(&(_, ch)) => out.push(ch),
                None => out.push(BASIC[usize::from(code)]),
            },
        }
    }
    out
}

/// Pack septets into octets, least significant bit first (TS 23.038 §6.1.2.1.1), after
/// `fill_bits` zero bits (0..=6). The result has `ceil((fill_bits + 7 * n) / 8)` octets.
pub(crate) fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let total_bits = fill_bits + 7 * septets.len();
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = fill_bits + 7 * i;
        let (idx, shift) = (bit / 8, bit % 8);
        let value = u16::from(s & 0x7F) << shift;
        out[idx] |= (value & 0xFF) as u8;
        if value > 0xFF {
            // The high part only exists when the septet crosses an octet boundary, and then
            // the next octet is inside `out` because total_bits covers this septet.
            out[idx + 1] |= (value >> 8) as u8;
        }
    }
    out
}

/// Unpack `count` septets from `octets`, skipping `fill_bits` leading bits. `None` when the
/// octets are too few to hold them.
pub(crate) fn unpack(octets: &[u8], fill_bits: usize, count: usize) -> Option<Vec<u8>> {
    let needed = (fill_bits + 7 * count).div_ceil(8);
    if octets.len() < needed {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = fill_bits + 7 * i;
        let (idx, shift) = (bit / 8, bit % 8);
        let low = u16::from(octets[idx]);
        let high = octets.get(idx + 1).copied().map_or(0, u16::from);
        out.push((((high << 8 | low) >> shift) & 0x7F) as u8);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        for c in ['€', '{', '}', '[', ']', '~', '\\', '^', '|', '\u{0C}'] {
            assert_eq!(char_septets(c), Some(2), "{c:?}");
        }
        assert_eq!(septet_count("a€b"), Some(4));
        assert_eq!(septet_count("日本"), None);
        assert!(is_gsm7("Hello @£$ ΔΦ é"));
        assert!(!is_gsm7("tab\there"));
        assert!(!is_gsm7("\u{1B}"));
    }

    #[test]
    fn every_table_character_round_trips() {
        let all: String = BASIC
            .iter()
            .filter(|&&c| c != '\u{1B}')
            .copied()
            .chain(EXTENSION.iter().map(|&(_, c)| c))
            .collect();
        let septets = encode(&all).unwrap();
        assert_eq!(septets.len(), 127 + 2 * EXTENSION.len());
        assert_eq!(decode(&septets), all);
        for fill in 0..7 {
            let packed = pack(&septets, fill);
            assert_eq!(unpack(&packed, fill, septets.len()).unwrap(), septets);
        }
    }

    // Vectors from python-gsmmodem test/test_pdu.py (TestGsm7: plaintext, unpacked, packed).
    #[test]
    fn python_gsmmodem_packing_vectors() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("123", b"123", &[49, 217, 12]),
            (
                "Hello World!",
                &[
                    0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x20, 0x57, 0x6F, 0x72, 0x6C, 0x64, 0x21,
                ],
                &[200, 50, 155, 253, 6, 93, 223, 114, 54, 57, 4],
            ),
            (
                "[{abc}]~",
                &[
                    0x1B, 0x3C, 0x1B, 0x28, 0x61, 0x62, 0x63, 0x1B, 0x29, 0x1B, 0x3E, 0x1B, 0x3D,
                ],
                &[27, 222, 6, 21, 22, 143, 55, 169, 141, 111, 211, 3],
            ),
            (
                "{åΦΓΛΩΠΨΣΘ€}",
                &[27, 40, 15, 18, 19, 20, 21, 22, 23, 24, 25, 27, 101, 27, 41],
                &[27, 212, 67, 50, 161, 84, 44, 23, 76, 102, 83, 222, 164, 0],
            ),
        ];
        for &(text, septets, packed) in cases {
            assert_eq!(encode(text).unwrap(), septets, "{text}");
            assert_eq!(pack(septets, 0), packed, "{text}");
            assert_eq!(unpack(packed, 0, septets.len()).unwrap(), septets, "{text}");
            assert_eq!(decode(septets), text);
        }
    }

    // "hellohello" user data from the SMS-SUBMIT in oFono unit/test-sms.c (simple_submit).
    #[test]
    fn ofono_hellohello_packs() {
        let septets = encode("hellohello").unwrap();
        assert_eq!(pack(&septets, 0), hex("E8329BFD4697D9EC37"));
    }

    #[test]
    fn fill_bits_shift_the_text() {
        // One fill bit: the first septet starts at bit 1 of the first octet.
        assert_eq!(pack(&[0x7F], 1), vec![0xFE]);
        assert_eq!(pack(&[0x7F, 0x01], 1), vec![0xFE, 0x01]);
        assert_eq!(unpack(&[0xFE, 0x01], 1, 2).unwrap(), vec![0x7F, 0x01]);
        assert_eq!(unpack(&[0xFE], 1, 2), None);
    }

    #[test]
    fn unknown_escape_shows_basic_character() {
        assert_eq!(decode(&[ESC, 0x41]), "A");
        assert_eq!(decode(&[ESC, ESC]), " ");
        assert_eq!(decode(&[0x41, ESC]), "A");
        assert_eq!(encode("\u{1B}"), Err('\u{1B}'));
    }
}
