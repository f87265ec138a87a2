//! SMS-DELIVER (3GPP TS 23.040 §9.2.2.1): what the modem hands pagerbox in `+CMT` / `+CMGR`
//! (acks and replies from the people paged), and what the simulator injects.

use chrono::{DateTime, FixedOffset};

use super::address::Address;
use super::concat::{natural_encoding, split, ConcatInfo, MAX_PARTS};
use super::reader::Reader;
use super::time::{decode_timestamp, encode_timestamp};
use super::userdata::{dcs_for, decode_user_data, encode_user_data, parse_dcs};
use super::{EncodedPdu, Encoding, PduError};

/// A decoded SMS-DELIVER (one part of a message; join parts with
/// [`super::Reassembler`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The SMSC field, when the PDU carried one with a non-zero length.
    pub smsc: Option<Address>,
    /// TP-OA: who sent it (a number or an alphanumeric name).
    pub sender: Address,
    /// TP-SCTS: when the service centre received it, in the centre's local offset; `None`
    /// when the centre's stamp is not a valid time (month 0, a 25th hour): the message is
    /// still read, its stamp is not what anything depends on.
    pub timestamp: Option<DateTime<FixedOffset>>,
    /// Alphabet from TP-DCS.
    pub encoding: Encoding,
    /// The text. [`Encoding::Binary8`] data is given as Latin-1 (each octet becomes the char
    /// U+0000..=U+00FF of the same value), which is lossless: `text.chars().map(|c| c as u8)`
    /// gives the octets back.
    pub text: String,
    /// Where this part sits when the message is concatenated.
    pub concat: Option<ConcatInfo>,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
}

/// Encode an incoming message as one SMS-DELIVER per part (for the simulator). `smsc` `None`
/// writes the empty `00` SMSC field. Long texts get concatenation headers carrying the low 8
/// bits of `concat_reference`. `force` picks the alphabet instead of the natural choice
/// (GSM-7 when possible, else UCS-2), e.g. UCS-2 for plain text as many phones send it; it
/// fails with [`PduError::Unencodable`] if the text does not fit the forced alphabet
/// ([`Encoding::Binary8`] takes chars up to U+00FF, as Latin-1).
pub fn encode_deliver(
    from: &str,
    text: &str,
    timestamp: DateTime<FixedOffset>,
    smsc: Option<&str>,
    concat_reference: u16,
    force: Option<Encoding>,
) -> Result<Vec<EncodedPdu>, PduError> {
    let mut address = Vec::with_capacity(12);
    Address::parse(from).encode_tp(&mut address)?;
    let mut smsc_field = Vec::with_capacity(12);
    match smsc {
        None => smsc_field.push(0),
        Some(s) => Address::parse(s).encode_smsc(&mut smsc_field)?,
    }
    let scts = encode_timestamp(&timestamp)?;
    let encoding = force.unwrap_or_else(|| natural_encoding(text));
    let parts = split(text, encoding)?.parts;
    if parts.len() > MAX_PARTS {
        return Err(PduError::TooManyParts {
            needed: parts.len(),
            max: MAX_PARTS,
        });
    }
    let total = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            // total <= 255 checked above.
            let concat = (total > 1).then(|| ConcatInfo {
                reference: concat_reference,
                total: total as u8,
                sequence: (i + 1) as u8,
            });
            // TP-MTI = SMS-DELIVER, TP-MMS = 1 (no more messages waiting).
            let mut first_octet = 0x04;
            if concat.is_some() {
                first_octet |= 0x40; // TP-UDHI
            }
            let mut tpdu = Vec::with_capacity(176);
            tpdu.push(first_octet);
            tpdu.extend_from_slice(&address);
            tpdu.push(0x00); // TP-PID
            tpdu.push(dcs_for(encoding));
            tpdu.extend_from_slice(&scts);
            encode_user_data(part, encoding, concat.as_ref(), &mut tpdu)?;
            Ok(EncodedPdu::new(&smsc_field, &tpdu))
        })
        .collect()
}

/// Decode an SMS-DELIVER TPDU (first octet onwards). Also returns the TP-UD length in octets.
pub(crate) fn decode_deliver(
    r: &mut Reader<'_>,
    smsc: Option<Address>,
) -> Result<(Deliver, usize), PduError> {
    let first_octet = r.octet("first octet")?;
    let sender = Address::decode_tp(r, "originating address")?;
    r.octet("protocol identifier")?;
    let dcs_offset = r.position();
    let encoding = parse_dcs(r.octet("data coding scheme")?, dcs_offset)?;
    let timestamp = match decode_timestamp(r, "service centre time stamp") {
        Ok(t) => Some(t),
        Err(PduError::InvalidTimestamp { .. }) => None,
        Err(e) => return Err(e),
    };
    let ud = decode_user_data(r, encoding, first_octet & 0x40 != 0)?;
    Ok((
        Deliver {
            smsc,
            sender,
            timestamp,
            encoding: ud.encoding,
            text: ud.text,
            concat: ud.concat,
            status_report_indication: first_octet & 0x20 != 0,
        },
        ud.octets,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{decode, AddressKind, Direction, Pdu};
    use super::*;

    fn deliver(hex: &str) -> Deliver {
        match decode(hex, Direction::MobileTerminated, true).unwrap() {
            Pdu::Deliver(d) => d,
            other => panic!("not a DELIVER: {other:?}"),
        }
    }

    fn ts(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    // oFono unit/test-sms.c simple_deliver (also the classic example of the "SMS and the PDU
    // format" page): "How are you?" from +31641600986 via SMSC +31624000000, zone -4 quarters.
    const OFONO_SIMPLE_DELIVER: &str =
        "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07";

    #[test]
    fn a_message_with_an_impossible_centre_stamp_is_still_read() {
        // The same message stamped month 0 by a broken service centre.
        let hex = OFONO_SIMPLE_DELIVER.replace("208062917314480C", "200062917314480C");
        assert_ne!(hex, OFONO_SIMPLE_DELIVER);
        let d = deliver(&hex);
        assert_eq!(d.timestamp, None);
        assert_eq!(d.text, "How are you?");
        assert_eq!(d.sender, Address::parse("+31641600986"));
    }

    #[test]
    fn ofono_simple_deliver() {
        let d = deliver(OFONO_SIMPLE_DELIVER);
        assert_eq!(d.smsc, Some(Address::parse("+31624000000")));
        assert_eq!(d.sender, Address::parse("+31641600986"));
        assert_eq!(d.timestamp, Some(ts("2002-08-26T19:37:41-01:00")));
        assert_eq!(d.timestamp.unwrap().offset().local_minus_utc(), -3600);
        assert_eq!(d.encoding, Encoding::Gsm7);
        assert_eq!(d.text, "How are you?");
        assert_eq!(d.concat, None);
        assert!(!d.status_report_indication);
    }

    #[test]
    fn ofono_simple_deliver_encodes_byte_for_byte() {
        let pdus = encode_deliver(
            "+31641600986",
            "How are you?",
            ts("2002-08-26T19:37:41-01:00"),
            Some("+31624000000"),
            0,
            None,
        )
        .unwrap();
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].hex, OFONO_SIMPLE_DELIVER);
        assert_eq!(pdus[0].tpdu_len, 30); // oFono: encoded_tpdu_len == 30
    }

    // oFono unit/test-sms.c alnum_sender: "Testmail" from the alphanumeric sender "sipgate".
    const OFONO_ALNUM_SENDER: &str =
        "0791447758100650040DD0F334FC1CA6970100008080312170224008D4F29CDE0EA7D9";

    #[test]
    fn ofono_alphanumeric_sender() {
        let d = deliver(OFONO_ALNUM_SENDER);
        assert_eq!(d.smsc, Some(Address::parse("+447785016005")));
        assert_eq!(
            d.sender,
            Address {
                number: "sipgate".into(),
                kind: AddressKind::Alphanumeric
            }
        );
        assert_eq!(d.timestamp, Some(ts("2008-08-13T12:07:22+01:00")));
        assert_eq!(d.text, "Testmail");
        let pdus = encode_deliver(
            "sipgate",
            "Testmail",
            d.timestamp.unwrap(),
            Some("+447785016005"),
            0,
            None,
        )
        .unwrap();
        assert_eq!(pdus[0].hex, OFONO_ALNUM_SENDER);
        assert_eq!(pdus[0].tpdu_len, 27);
    }

    // oFono unit/test-sms.c unicode_deliver: UCS-2 (TP-DCS 0x19, class 1) from an alphanumeric
    // sender, 63 characters.
    #[test]
    fn ofono_unicode_deliver() {
        let d = deliver(concat!(
            "04819999990414D0FBFD7EBFDFEFF77BFE1E001",
            "9512090801361807E00DC00FC00C400E400D600F600C500E500D800F800C",
            "600E600C700E700C900E900CA00EA00DF003100320033003400350036003",
            "7003800390030002000540068006900730020006D0065007300730061006",
            "7006500200069007300200036003300200075006E00690063006F0064006",
            "5002000630068006100720073002E"
        ));
        assert_eq!(d.encoding, Encoding::Ucs2);
        assert_eq!(d.smsc, Some(Address::parse("999999")));
        assert_eq!(d.sender.kind, AddressKind::Alphanumeric);
        assert_eq!(
            d.text,
            "ÜüÄäÖöÅåØøÆæÇçÉéÊêß1234567890 This message is 63 unicode chars."
        );
        assert_eq!(d.text.chars().count(), 63);
    }

    // oFono unit/test-sms.c sms_charset_default: all 128 septets of the default alphabet in one
    // DELIVER (decoded without an SMSC field). The expected text is oFono's UTF-8 bytes.
    #[test]
    fn ofono_default_alphabet() {
        let hex = concat!(
            "0001000B91",
            "5310101010",
            "1000008080",
            "8060402818",
            "0E888462C1",
            "68381E9088",
            "6442A9582E",
            "988C06C4E9",
            "783EA09068",
            "442A994EA8",
            "946AC56AB9",
            "5EB0986C46",
            "ABD96EB89C",
            "6EC7EBF97E",
            "C0A070482C",
            "1A8FC8A472",
            "C96C3A9FD0",
            "A8744AAD5A",
            "AFD8AC76CB",
            "ED7ABFE0B0",
            "784C2E9BCF",
            "E8B47ACD6E",
            "BBDFF0B87C",
            "4EAFDBEFF8",
            "BC7ECFEFFB",
            "FF"
        );
        let expected: &[u8] = &[
            0x40, 0xc2, 0xa3, 0x24, 0xc2, 0xa5, 0xc3, 0xa8, 0xc3, 0xa9, 0xc3, 0xb9, 0xc3, 0xac,
            0xc3, 0xb2, 0xc3, 0x87, 0x0a, 0xc3, 0x98, 0xc3, 0xb8, 0x0d, 0xc3, 0x85, 0xc3, 0xa5,
            0xce, 0x94, 0x5f, 0xce, 0xa6, 0xce, 0x93, 0xce, 0x9b, 0xce, 0xa9, 0xce, 0xa0, 0xce,
            0xa8, 0xce, 0xa3, 0xce, 0x98, 0xce, 0x9e, 0x20, 0xc3, 0x86, 0xc3, 0xa6, 0xc3, 0x9f,
            0xc3, 0x89, 0x20, 0x21, 0x22, 0x23, 0xc2, 0xa4, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
            0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
            0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0xc2, 0xa1, 0x41, 0x42, 0x43, 0x44, 0x45,
            0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0x53,
            0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0xc3, 0x84, 0xc3, 0x96, 0xc3, 0x91, 0xc3,
            0x9c, 0xc2, 0xa7, 0xc2, 0xbf, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
            0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
            0x78, 0x79, 0x7a, 0xc3, 0xa4, 0xc3, 0xb6, 0xc3, 0xb1, 0xc3, 0xbc, 0xc3, 0xa0,
        ];
        let d = match decode(hex, Direction::MobileTerminated, false).unwrap() {
            Pdu::Deliver(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(d.text, std::str::from_utf8(expected).unwrap());
    }

    // oFono unit/test-sms.c sms_charset_default_ext: the extension table (form feed ^ { } \ [
    // ~ ] | €), decoded without an SMSC field.
    #[test]
    fn ofono_extension_table() {
        let hex = concat!(
            "0001000B91",
            "5310101010",
            "100000151B",
            "C58602DAA0",
            "36A9CD6BC3",
            "DBF436BE0D",
            "705306"
        );
        let d = match decode(hex, Direction::MobileTerminated, false).unwrap() {
            Pdu::Deliver(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(d.text, "\u{0C}^ {}\\[~]|€");
    }

    // python-gsmmodem test/test_pdu.py test_decode: three DELIVERs, one with extension
    // characters ('@{tést}!').
    #[test]
    fn python_gsmmodem_delivers() {
        let d = deliver("06917228195339040B917228214365F700003130805120618005D4F29C2E03");
        assert_eq!(d.smsc, Some(Address::parse("+2782913593")));
        assert_eq!(d.sender, Address::parse("+27821234567"));
        assert_eq!(d.timestamp, Some(ts("2013-03-08T15:02:16+02:00")));
        assert_eq!(d.text, "Test2");

        let d = deliver(concat!(
            "07915892000000F0040B915892214365F700007040213252242331493A283D0795C3F33C88FE06C9",
            "CB6132885EC6D341EDF27C1E3E97E7207B3A0C0A5241E377BB1D7693E72E"
        ));
        assert_eq!(d.timestamp, Some(ts("2007-04-12T23:25:42+08:00")));
        assert_eq!(d.text, "It is easy to read text messages via AT commands.");

        let d = deliver("06917228195339040B917228214365F70000313062315352800A800D8A5E98D337A910");
        assert_eq!(d.text, "@{tést}!");
    }

    // python-gsmmodem test/test_pdu.py test_decode: a one-part message with a concatenation
    // header (ref 0xC3, 1 of 1) from a national-format sender.
    #[test]
    fn python_gsmmodem_udh_deliver() {
        let d = deliver(concat!(
            "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E",
            "064941B19CAB060319A5C522289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A8",
            "8C87A7E565D0DB0D82C55EB0DB4B068BCD5C20"
        ));
        assert_eq!(d.sender.number, "2781188");
        assert_eq!(d.smsc, Some(Address::parse("+2781191")));
        assert_eq!(
            d.concat,
            Some(ConcatInfo {
                reference: 0xC3,
                total: 1,
                sequence: 1
            })
        );
        assert_eq!(
            d.text,
            "Hello!You have R 19.50 FREE airtime available. R 19.50 will expire on 01/07/2013. "
        );
    }

    // oFono unit/test-sms.c simple_mwi: a message waiting indication (TP-DCS 0xC8, "store
    // message", GSM-7) with no text.
    #[test]
    fn ofono_message_waiting_indication() {
        let d = deliver("07913366002020F8040B913366600600F100C83180706174148000");
        assert_eq!(d.smsc, Some(Address::parse("+33660002028")));
        assert_eq!(d.sender, Address::parse("+33660660001"));
        assert_eq!(d.timestamp, Some(ts("2013-08-07T16:47:41+02:00")));
        assert_eq!((d.encoding, d.text.as_str()), (Encoding::Gsm7, ""));
    }

    #[test]
    fn forced_ucs2_and_binary() {
        let t = ts("2026-11-22T03:00:00+01:00");
        let pdus = encode_deliver("+4670", "ack 12", t, None, 0, Some(Encoding::Ucs2)).unwrap();
        let d = deliver(&pdus[0].hex);
        assert_eq!((d.encoding, d.text.as_str()), (Encoding::Ucs2, "ack 12"));
        assert_eq!(d.timestamp, Some(t));
        let data = "\u{0}\u{FF}bin";
        let pdus = encode_deliver("+4670", data, t, None, 0, Some(Encoding::Binary8)).unwrap();
        assert_eq!(deliver(&pdus[0].hex).text, data);
        let err = encode_deliver("+4670", "ж", t, None, 0, Some(Encoding::Gsm7)).unwrap_err();
        assert!(matches!(err, PduError::Unencodable { ch: 'ж', .. }));
    }
}
