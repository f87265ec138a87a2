//! UCS-2 user data, which in practice (and here) is UTF-16 big-endian (3GPP TS 23.038 §6.2.3).
//!
//! Characters outside the Basic Multilingual Plane (emoji) become surrogate pairs and cost two
//! units; [`super::concat`] makes sure a pair is never split across parts. Decoding is lossy
//! rather than failing: a lone surrogate or an odd trailing octet becomes U+FFFD, so a
//! malformed incoming message is still delivered.

/// Encode text as UTF-16BE octets.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Decode UTF-16BE octets, replacing anything malformed with U+FFFD.
pub(crate) fn decode(octets: &[u8]) -> String {
    let units: Vec<u16> = octets
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let mut text = String::from_utf16_lossy(&units);
    if octets.len() % 2 != 0 {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from python-gsmmodem test/test_pdu.py (TestUcs2).
    #[test]
    fn python_gsmmodem_vectors() {
        let cases: [(&str, &[u8]); 2] = [
            ("あ叶葉", &[0x30, 0x42, 0x53, 0xF6, 0x84, 0x49]),
            ("はい", &[0x30, 0x6F, 0x30, 0x44]),
        ];
        for (text, octets) in cases {
            assert_eq!(encode(text), octets);
            assert_eq!(decode(octets), text);
        }
    }

    #[test]
    fn astral_characters_are_surrogate_pairs() {
        assert_eq!(encode("😀"), vec![0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(decode(&[0xD8, 0x3D, 0xDE, 0x00]), "😀");
    }

    #[test]
    fn malformed_input_is_replaced_not_rejected() {
        assert_eq!(decode(&[0xD8, 0x3D, 0x00, 0x41]), "\u{FFFD}A");
        assert_eq!(decode(&[0x00, 0x41, 0x00]), "A\u{FFFD}");
    }
}
