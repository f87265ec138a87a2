//! SMS-SUBMIT (3GPP TS 23.040 §9.2.2.2): what pagerbox sends with AT+CMGS, and what the
//! simulator's network side reads back.

use super::address::{Address, AddressKind};
use super::concat::{natural_encoding, split, ConcatInfo, MAX_PARTS};
use super::reader::Reader;
use super::time::{
    decode_timestamp, relative_validity_duration, relative_validity_octet, Validity,
};
use super::userdata::{dcs_for, decode_user_data, encode_user_data, parse_dcs};
use super::{EncodedPdu, Encoding, PduError};

/// How to send a text. `Default` is: no status report, reference 0, up to 255 parts, no
/// validity period, the SIM's SMSC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Set TP-SRR so the network sends an SMS-STATUS-REPORT when the message is delivered or
    /// given up.
    pub request_status_report: bool,
    /// Concatenation reference, chosen by the caller and varied per message so the recipient
    /// does not mix parts of two messages. Only the low 8 bits are sent (IEI 0x00), which is
    /// what keeps 153 septets / 67 UCS-2 units per part.
    pub concat_reference: u16,
    /// Refuse texts that need more parts than this ([`PduError::TooManyParts`]). `None` means
    /// the protocol limit, 255.
    pub max_parts: Option<usize>,
    /// Relative validity period (TP-VPF = 10), rounded up to the next value the one-octet
    /// coding can express and capped at 63 weeks. `None` leaves it to the service centre.
    pub validity_minutes: Option<u32>,
    /// Service centre number. `None` writes the `00` SMSC field: "use the SMSC stored on the
    /// SIM".
    pub smsc: Option<String>,
}

/// A decoded SMS-SUBMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The SMSC field, when the PDU carried one with a non-zero length.
    pub smsc: Option<Address>,
    /// TP-MR. Pagerbox sends 0 and the modem assigns the real one (reported in `+CMGS: <mr>`).
    pub message_reference: u8,
    /// TP-DA.
    pub destination: Address,
    /// TP-SRR.
    pub status_report_requested: bool,
    /// Alphabet from TP-DCS.
    pub encoding: Encoding,
    /// This part's text ([`Encoding::Binary8`] data is Latin-1: one char per octet).
    pub text: String,
    /// Where this part sits when the message is concatenated.
    pub concat: Option<ConcatInfo>,
    /// TP-VP, when present.
    pub validity: Option<Validity>,
}

/// Encode `text` to `to` as one SMS-SUBMIT per part, ready for `AT+CMGS=<tpdu_len>` then the
/// hex. TP-MR is 0 (the modem assigns it). GSM-7 is used when every character fits, else UCS-2;
/// long texts are split with a concatenation header, never cutting an extension character or
/// a surrogate pair.
///
/// Fails when `to` is not a phone number ([`PduError::InvalidAddress`]) or the text needs more
/// parts than allowed ([`PduError::TooManyParts`]).
pub fn encode_submit(
    to: &str,
    text: &str,
    opts: &SubmitOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    let destination = Address::parse(to);
    if destination.kind == AddressKind::Alphanumeric {
        return Err(PduError::InvalidAddress {
            input: to.to_owned(),
            reason: "a destination must be a phone number",
        });
    }
    let mut address = Vec::with_capacity(12);
    destination.encode_tp(&mut address)?;
    let mut smsc = Vec::with_capacity(12);
    match &opts.smsc {
        None => smsc.push(0),
        Some(s) => Address::parse(s).encode_smsc(&mut smsc)?,
    }
    let encoding = natural_encoding(text);
    let parts = split(text, encoding)?.parts;
    let max = opts.max_parts.unwrap_or(MAX_PARTS).min(MAX_PARTS);
    if parts.len() > max {
        return Err(PduError::TooManyParts {
            needed: parts.len(),
            max,
        });
    }
    let validity = opts.validity_minutes.map(relative_validity_octet);
    let total = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            // total <= 255 checked above, so both fit in a u8.
            let concat = (total > 1).then(|| ConcatInfo {
                reference: opts.concat_reference,
                total: total as u8,
                sequence: (i + 1) as u8,
            });
            let mut first_octet = 0x01; // TP-MTI = SMS-SUBMIT
            if validity.is_some() {
                first_octet |= 0x10; // TP-VPF = relative
            }
            if opts.request_status_report {
                first_octet |= 0x20; // TP-SRR
            }
            if concat.is_some() {
                first_octet |= 0x40; // TP-UDHI
            }
            let mut tpdu = Vec::with_capacity(176);
            tpdu.push(first_octet);
            tpdu.push(0x00); // TP-MR: assigned by the modem
            tpdu.extend_from_slice(&address);
            tpdu.push(0x00); // TP-PID: plain short message
            tpdu.push(dcs_for(encoding));
            if let Some(vp) = validity {
                tpdu.push(vp);
            }
            encode_user_data(part, encoding, concat.as_ref(), &mut tpdu)?;
            Ok(EncodedPdu::new(&smsc, &tpdu))
        })
        .collect()
}

/// Decode an SMS-SUBMIT TPDU (first octet onwards). Also returns the TP-UD length in octets.
pub(crate) fn decode_submit(
    r: &mut Reader<'_>,
    smsc: Option<Address>,
) -> Result<(Submit, usize), PduError> {
    let first_octet = r.octet("first octet")?;
    let message_reference = r.octet("message reference")?;
    let destination = Address::decode_tp(r, "destination address")?;
    r.octet("protocol identifier")?;
    let dcs_offset = r.position();
    let encoding = parse_dcs(r.octet("data coding scheme")?, dcs_offset)?;
    let validity = match (first_octet >> 3) & 0x03 {
        0b00 => None,
        0b10 => Some(Validity::Relative(relative_validity_duration(
            r.octet("validity period")?,
        ))),
        0b01 => Some(Validity::Enhanced(r.seven("validity period")?)),
        _ => Some(Validity::Absolute(decode_timestamp(r, "validity period")?)),
    };
    let ud = decode_user_data(r, encoding, first_octet & 0x40 != 0)?;
    Ok((
        Submit {
            smsc,
            message_reference,
            destination,
            status_report_requested: first_octet & 0x20 != 0,
            encoding: ud.encoding,
            text: ud.text,
            concat: ud.concat,
            validity,
        },
        ud.octets,
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::DateTime;

    use super::super::{decode, Direction, Pdu};
    use super::*;

    fn submit(hex: &str) -> Submit {
        match decode(hex, Direction::MobileOriginated, true).unwrap() {
            Pdu::Submit(s) => s,
            other => panic!("not a SUBMIT: {other:?}"),
        }
    }

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 24 * 3600)
    }

    // oFono unit/test-sms.c simple_submit: "hellohello" to +46708251358, TP-VP 0xAA (4 days).
    const OFONO_SIMPLE_SUBMIT: &str = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37";

    #[test]
    fn ofono_simple_submit_encodes_byte_for_byte() {
        let opts = SubmitOptions {
            validity_minutes: Some(4 * 24 * 60),
            ..SubmitOptions::default()
        };
        let pdus = encode_submit("+46708251358", "hellohello", &opts).unwrap();
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].hex, OFONO_SIMPLE_SUBMIT);
        assert_eq!(pdus[0].tpdu_len, 23); // oFono decodes it with tpdu_len 23
    }

    #[test]
    fn ofono_simple_submit_decodes() {
        let s = submit(OFONO_SIMPLE_SUBMIT);
        assert_eq!(s.smsc, None);
        assert_eq!(s.message_reference, 0);
        assert_eq!(s.destination, Address::parse("+46708251358"));
        assert_eq!(s.encoding, Encoding::Gsm7);
        assert_eq!(s.text, "hellohello");
        assert_eq!(s.validity, Some(Validity::Relative(days(4))));
        assert!(!s.status_report_requested);
        assert_eq!(s.concat, None);
    }

    // oFono unit/test-sms.c test_prepare_7bit: SMSC +358405202090, to +358478400241, TP-VP
    // 0xA7 (24 h).
    #[test]
    fn ofono_prepare_7bit_with_smsc_and_validity() {
        let opts = SubmitOptions {
            validity_minutes: Some(24 * 60),
            smsc: Some("+358405202090".into()),
            ..SubmitOptions::default()
        };
        let pdus = encode_submit("+358478400241", "This is testing !", &opts).unwrap();
        assert_eq!(
            pdus[0].hex,
            "079153485002020911000C915348870420140000A71154747A0E4ACF41F4F29C9E769F4121"
        );
        assert_eq!(pdus[0].tpdu_len, pdus[0].hex.len() / 2 - 8);
        let s = submit(&pdus[0].hex);
        assert_eq!(s.smsc, Some(Address::parse("+358405202090")));
        assert_eq!(s.text, "This is testing !");
    }

    // python-gsmmodem test/test_pdu.py test_encodeSmsSubmit: "Hello World!" (no validity) and
    // UCS-2 "世界您好！" with SMSC +44000000000 and 52 weeks validity.
    #[test]
    fn python_gsmmodem_submit_vectors() {
        let pdus =
            encode_submit("+27820001111", "Hello World!", &SubmitOptions::default()).unwrap();
        assert_eq!(
            pdus[0].hex,
            "0001000B917228001011F100000CC8329BFD065DDF72363904"
        );
        let opts = SubmitOptions {
            validity_minutes: Some(52 * 7 * 24 * 60),
            smsc: Some("+44000000000".into()),
            ..SubmitOptions::default()
        };
        let pdus = encode_submit("+123456789", "世界您好！", &opts).unwrap();
        assert_eq!(
            pdus[0].hex,
            "07914400000000F01100099121436587F90008F40A4E16754C60A8597DFF01"
        );
        let s = submit(&pdus[0].hex);
        assert_eq!(
            (s.encoding, s.text.as_str()),
            (Encoding::Ucs2, "世界您好！")
        );
    }

    // python-gsmmodem test/test_pdu.py test_decode: SUBMIT with TP-SRR, MR 0x0D, 3 days.
    #[test]
    fn python_gsmmodem_submit_with_status_report_request() {
        let s = submit("07911326040000F0310D0B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701");
        assert_eq!(s.smsc, Some(Address::parse("+31624000000")));
        assert_eq!(s.destination, Address::parse("+31628870634"));
        assert_eq!(s.message_reference, 0x0D);
        assert!(s.status_report_requested);
        assert_eq!(s.validity, Some(Validity::Relative(days(3))));
        assert_eq!(s.text, "www.diafaan.com");

        let opts = SubmitOptions {
            request_status_report: true,
            validity_minutes: Some(3 * 24 * 60),
            smsc: Some("+31624000000".into()),
            ..SubmitOptions::default()
        };
        let pdus = encode_submit("+31628870634", "www.diafaan.com", &opts).unwrap();
        // Same PDU except TP-MR, which we leave to the modem (0 instead of 0x0D).
        assert_eq!(
            pdus[0].hex,
            "07911326040000F031000B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701"
        );
    }

    // python-gsmmodem test/test_pdu.py test_decode: absolute validity period and 8-bit data.
    #[test]
    fn python_gsmmodem_absolute_validity_and_8bit() {
        let s = submit(
            "0019000B917228001011F100003170013193008017D474BB3CA787DB70903DCC4E93D3F43C885E9ED301",
        );
        assert_eq!(s.text, "Timestamp validity test");
        assert_eq!(
            s.validity,
            Some(Validity::Absolute(
                DateTime::parse_from_rfc3339("2013-07-10T13:39:00+02:00").unwrap()
            ))
        );
        let s = submit("0591721891F101000B917228214365F700040C48656C6C6F20776F726C6421");
        assert_eq!(s.smsc, Some(Address::parse("+2781191")));
        assert_eq!(
            (s.encoding, s.text.as_str()),
            (Encoding::Binary8, "Hello world!")
        );
    }

    // python-gsmmodem test/test_pdu.py: "UCS-2 PDU; User data length is invalid in this PDU
    // (too long)". We report truncation rather than guess.
    #[test]
    fn python_gsmmodem_overlong_udl_is_truncation() {
        let err = decode(
            "0041010C910661345542F60008A0050003000301306F3044",
            Direction::MobileOriginated,
            true,
        )
        .unwrap_err();
        assert!(err.is_truncated(), "{err}");
    }

    // oFono unit/test-sms.c ems_udh_test_1 and ems_udh_test_2: SUBMITs whose user data headers
    // (26 and 35 octets of text formatting) need 1 and 6 fill bits before the text.
    #[test]
    fn ofono_ems_headers_fill_bits() {
        let s = submit(concat!(
            "0041000B915121551532F40000631A0A031906200A032104100A03270504",
            "0A032E05080A043807002B8ACD29A85D9ECFC3E7F21C340EBB41E3B79B1",
            "E4EBB41697A989D1EB340E2379BCC02B1C3F27399059AB7C36C3628EC26",
            "83C66FF65B5E2683E8653C1D"
        ));
        assert_eq!(
            s.text,
            "EMS messages can contain italic, bold, large, small and colored text"
        );
        assert_eq!(s.concat, None);
        let s = submit(concat!(
            "079194712272303351030B915121340195F60000FF80230A030F07230A031",
            "806130A031E0A430A032E0D830A033D14020A035104F60A0355010600159",
            "D9E83D2735018442FCFE98A243DCC4E97C92C90F8CD26B3407537B92C67A",
            "7DD65320B1476934173BA3CBD2ED3D1F277FD8C76299CEF3B280C92A7CF6",
            "83A28CC4E9FDD6532E8FE96935D"
        ));
        assert_eq!(
            s.text,
            "This is a test\nItalied, bold, underlined, and strikethrough.\nNow a right aligned word."
        );
        assert_eq!(s.message_reference, 3);
    }

    // python-gsmmodem test/test_pdu.py test_encodeSmsSubmit_concatenated: a 3-part GSM-7
    // message (reference 0) to +15125551234. Their PDUs set TP-RD (first octet 0x45, "reject
    // duplicates"), which we do not; everything else must match byte for byte: split points,
    // UDH, fill bit and packing.
    #[test]
    fn python_gsmmodem_concatenated_submit() {
        let text = concat!(
            "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor ",
            "incididunt ut labore et dolore magna aliqua.Ut enim ad minim veniam, quinostrud ",
            "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.Duis aute irure ",
            "dolor in reprehenderit in voluptate velit esse cillum doloe eu fugiat nulla pariatur.",
            "Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt ",
            "mollit anim id est laborum"
        );
        let expected = [
            concat!(
                "0045000B915121551532F40000A0050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0A",
                "B7CB741668FC76CFCB637A995E9783C2E4343C3D4F8FD3EE33A8CC4ED359A079990C22BF41E5747D",
                "DE7E9341F4721BFE9683D2EE719A9C26D7DD74509D0E6287C56F791954A683C86FF65B5E06B5C367",
                "77181466A7E3F5B0AB4A0795DDE936284C06B5D3EE741B642FBBD3E1360B14AFA7DD"
            ),
            concat!(
                "0045000B915121551532F40000A0050003000302DE73BABC4E0695F165F9384D0FD3D36F37A8CE66",
                "87DBE337881D16BFE5E939C89D9EA741753A28CC4EC7EB6938A88C0795C3A0F1BBDD7E93DFA0F1DB",
                "3D2FC7EB61BA8B584FCF41E13ABD0C4ACBEBF23288FC66BFE5A0B41B242FC3E56574D94D2ECBD374",
                "50DA0DB2BFD975383D4C2F83EC65769A0E2ACFE765D038CD66D7DB20F29BFD2E83CA"
            ),
            concat!(
                "0045000B915121551532F400008C050003000303EA2073FD9C0ED341EE3A9B1D06C1C3F274985E97",
                "BB8AF871194E2FD7E5A079DA4D07BDC7E370791CA683C675789A1CA687E920F7DB0D82CBDF6972D9",
                "4D6781E675371D947683C675363C0C8AD7D3A0B7D99C1EA7C32072795E96D7DD7450FBCD66A7E9A0",
                "B03BDD06A5C9A0F29C0E6287C56F79BD0D"
            ),
        ];
        let pdus = encode_submit("+15125551234", text, &SubmitOptions::default()).unwrap();
        assert_eq!(pdus.len(), 3);
        let mut joined = String::new();
        for (ours, theirs) in pdus.iter().zip(expected) {
            assert_eq!(&theirs[2..4], "45");
            assert_eq!(ours.hex, format!("0041{}", &theirs[4..]));
            joined.push_str(&submit(theirs).text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn limits_are_enforced() {
        let opts = SubmitOptions {
            max_parts: Some(2),
            ..SubmitOptions::default()
        };
        let err = encode_submit("+1555", &"a".repeat(307), &opts).unwrap_err();
        assert_eq!(err, PduError::TooManyParts { needed: 3, max: 2 });
        assert!(encode_submit("+1555", &"a".repeat(306), &opts).is_ok());
        let err = encode_submit(
            "+1555",
            &"a".repeat(153 * 255 + 1),
            &SubmitOptions::default(),
        );
        assert!(matches!(err, Err(PduError::TooManyParts { max: 255, .. })));
        assert!(matches!(
            encode_submit("Alice", "hi", &SubmitOptions::default()),
            Err(PduError::InvalidAddress { .. })
        ));
    }

    #[test]
    fn long_text_gets_concatenation_headers() {
        let opts = SubmitOptions {
            concat_reference: 0x1234,
            ..SubmitOptions::default()
        };
        let text = "x".repeat(400);
        let pdus = encode_submit("0701234567", &text, &opts).unwrap();
        assert_eq!(pdus.len(), 3);
        for (i, p) in pdus.iter().enumerate() {
            let s = submit(&p.hex);
            assert_eq!(s.destination.kind, AddressKind::Unknown);
            assert_eq!(
                s.concat,
                Some(ConcatInfo {
                    reference: 0x34,
                    total: 3,
                    sequence: i as u8 + 1
                })
            );
            // SMSC "00" + TPDU.
            assert_eq!(p.hex.len(), 2 + 2 * p.tpdu_len);
        }
    }
}
