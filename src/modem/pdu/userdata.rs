//! TP-DCS, TP-UDL and TP-UD: turning one part's text into user data and back (3GPP TS 23.040
//! §9.2.3.10, §9.2.3.16, §9.2.3.24; TS 23.038 §4).
//!
//! Shared by SMS-SUBMIT and SMS-DELIVER. With a user data header and GSM-7, the header is
//! followed by fill bits so the first character starts on a septet boundary, and TP-UDL counts
//! septets of header, fill and text together.

use super::concat::{concat_header, parse_header, ConcatInfo};
use super::reader::Reader;
use super::{gsm7, ucs2, Encoding, PduError};

/// Decoded user data of one part.
#[derive(Debug)]
pub(crate) struct UserData {
    pub(crate) encoding: Encoding,
    pub(crate) concat: Option<ConcatInfo>,
    pub(crate) text: String,
    /// Octets TP-UD occupied on the wire (header included).
    pub(crate) octets: usize,
}

/// The TP-DCS octet we send: class-less general data coding.
pub(crate) fn dcs_for(encoding: Encoding) -> u8 {
    match encoding {
        Encoding::Gsm7 => 0x00,
        Encoding::Binary8 => 0x04,
        Encoding::Ucs2 => 0x08,
    }
}

/// Read the alphabet from a TP-DCS octet. Reserved codings mean the default alphabet (TS
/// 23.038 §4); compressed text is refused.
pub(crate) fn parse_dcs(dcs: u8, offset: usize) -> Result<Encoding, PduError> {
    let alphabet = |bits: u8| match bits & 0x03 {
        1 => Encoding::Binary8,
        2 => Encoding::Ucs2,
        _ => Encoding::Gsm7,
    };
    Ok(match dcs >> 4 {
        // General data coding (00xx) and automatic deletion (01xx).
        0x0..=0x7 => {
            if dcs & 0x20 != 0 {
                return Err(PduError::Unsupported {
                    what: "compressed user data (TP-DCS bit 5)",
                    offset,
                });
            }
            alphabet(dcs >> 2)
        }
        // Message waiting indication, UCS-2.
        0xE => Encoding::Ucs2,
        // Data coding / message class: bit 2 selects 8-bit data.
        0xF if dcs & 0x04 != 0 => Encoding::Binary8,
        // Reserved groups, message waiting (GSM-7), class with GSM-7.
        _ => Encoding::Gsm7,
    })
}

/// Append TP-UDL and TP-UD for one part's text.
pub(crate) fn encode_user_data(
    text: &str,
    encoding: Encoding,
    concat: Option<&ConcatInfo>,
    out: &mut Vec<u8>,
) -> Result<(), PduError> {
    let header = concat.map(concat_header);
    let header: &[u8] = header.as_ref().map_or(&[], |h| &h[..]);
    let (udl, body) = match encoding {
        Encoding::Gsm7 => {
            let septets =
                gsm7::encode(text).map_err(|ch| PduError::Unencodable { ch, encoding })?;
            let header_bits = header.len() * 8;
            let header_septets = header_bits.div_ceil(7);
            let fill = header_septets * 7 - header_bits;
            (header_septets + septets.len(), gsm7::pack(&septets, fill))
        }
        Encoding::Ucs2 => {
            let body = ucs2::encode(text);
            (header.len() + body.len(), body)
        }
        Encoding::Binary8 => {
            let body = text
                .chars()
                .map(|ch| u8::try_from(ch).map_err(|_| PduError::Unencodable { ch, encoding }))
                .collect::<Result<Vec<u8>, _>>()?;
            (header.len() + body.len(), body)
        }
    };
    // The splitter keeps every part within 160 septets / 140 octets.
    out.push(udl as u8);
    out.extend_from_slice(header);
    out.extend(body);
    Ok(())
}

/// Read TP-UDL and TP-UD. `udhi` is the TP-UDHI bit of the first octet.
pub(crate) fn decode_user_data(
    r: &mut Reader<'_>,
    encoding: Encoding,
    udhi: bool,
) -> Result<UserData, PduError> {
    let udl_offset = r.position();
    let udl = usize::from(r.octet("user data length")?);
    let octets = match encoding {
        Encoding::Gsm7 => (udl * 7).div_ceil(8),
        Encoding::Ucs2 | Encoding::Binary8 => udl,
    };
    let ud_offset = r.position();
    let ud = r.take(octets, "user data")?;
    let (concat, header_octets) = if udhi {
        let Some(&udhl) = ud.first() else {
            return Err(PduError::Invalid {
                what: "user data length",
                offset: udl_offset,
                found: 0,
                expected: "room for the user data header that TP-UDHI announces",
            });
        };
        let end = 1 + usize::from(udhl);
        if end > ud.len() {
            return Err(PduError::Invalid {
                what: "user data header length",
                offset: ud_offset,
                found: udhl,
                expected: "a header that fits in the user data",
            });
        }
        let concat = parse_header(&ud[1..end]).map_err(|()| PduError::Invalid {
            what: "user data header",
            offset: ud_offset,
            found: udhl,
            expected: "information elements that fit in the header",
        })?;
        (concat, end)
    } else {
        (None, 0)
    };
    let body = &ud[header_octets..];
    let text = match encoding {
        Encoding::Gsm7 => {
            let header_bits = header_octets * 8;
            let header_septets = header_bits.div_ceil(7);
            let fill = header_septets * 7 - header_bits;
            let invalid = PduError::Invalid {
                what: "user data length",
                offset: udl_offset,
                // A u8 read above.
                found: udl as u8,
                expected: "septets enough for the user data header",
            };
            let count = udl.checked_sub(header_septets).ok_or(invalid.clone())?;
            let septets = gsm7::unpack(body, fill, count).ok_or(invalid)?;
            gsm7::decode(&septets)
        }
        Encoding::Ucs2 => ucs2::decode(body),
        // Latin-1: every octet maps to the code point of the same value, so the text is a
        // lossless view of the data.
        Encoding::Binary8 => body.iter().map(|&b| char::from(b)).collect(),
    };
    Ok(UserData {
        encoding,
        concat,
        text,
        octets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_groups() {
        assert_eq!(parse_dcs(0x00, 0).unwrap(), Encoding::Gsm7);
        assert_eq!(parse_dcs(0x08, 0).unwrap(), Encoding::Ucs2);
        assert_eq!(parse_dcs(0x04, 0).unwrap(), Encoding::Binary8);
        // Class 1 UCS-2 (oFono unit/test-sms.c unicode_deliver uses 0x19).
        assert_eq!(parse_dcs(0x19, 0).unwrap(), Encoding::Ucs2);
        // Automatic deletion group (01xx), GSM-7, class 3.
        assert_eq!(parse_dcs(0x43, 0).unwrap(), Encoding::Gsm7);
        assert_eq!(parse_dcs(0xC8, 0).unwrap(), Encoding::Gsm7);
        assert_eq!(parse_dcs(0xE0, 0).unwrap(), Encoding::Ucs2);
        assert_eq!(parse_dcs(0xF4, 0).unwrap(), Encoding::Binary8);
        assert_eq!(parse_dcs(0xF0, 0).unwrap(), Encoding::Gsm7);
        assert!(matches!(
            parse_dcs(0x20, 7),
            Err(PduError::Unsupported { offset: 7, .. })
        ));
        for enc in [Encoding::Gsm7, Encoding::Ucs2, Encoding::Binary8] {
            assert_eq!(parse_dcs(dcs_for(enc), 0).unwrap(), enc);
        }
    }

    fn round_trip(text: &str, encoding: Encoding, concat: Option<ConcatInfo>) -> UserData {
        let mut out = Vec::new();
        encode_user_data(text, encoding, concat.as_ref(), &mut out).unwrap();
        let ud = decode_user_data(&mut Reader::new(&out), encoding, concat.is_some()).unwrap();
        assert_eq!(ud.octets, out.len() - 1);
        ud
    }

    #[test]
    fn header_and_fill_round_trip() {
        let info = ConcatInfo {
            reference: 7,
            total: 2,
            sequence: 2,
        };
        for enc in [Encoding::Gsm7, Encoding::Ucs2, Encoding::Binary8] {
            let ud = round_trip("Hi @ there", enc, Some(info));
            assert_eq!(ud.text, "Hi @ there");
            assert_eq!(ud.concat, Some(info));
            assert_eq!(ud.encoding, enc);
            assert_eq!(round_trip("", enc, None).text, "");
        }
        let full = "x".repeat(153);
        assert_eq!(round_trip(&full, Encoding::Gsm7, Some(info)).octets, 140);
    }

    #[test]
    fn header_claims_more_than_data() {
        // UDL 2 septets (2 octets), UDHI set, UDHL 5.
        let bytes = [0x02, 0x05, 0x00];
        let err = decode_user_data(&mut Reader::new(&bytes), Encoding::Gsm7, true).unwrap_err();
        assert!(matches!(err, PduError::Invalid { .. }), "{err}");
        let err = decode_user_data(&mut Reader::new(&[0x00]), Encoding::Ucs2, true).unwrap_err();
        assert!(matches!(err, PduError::Invalid { .. }), "{err}");
        let err =
            decode_user_data(&mut Reader::new(&[0x05, 1]), Encoding::Ucs2, false).unwrap_err();
        assert!(err.is_truncated());
    }
}
