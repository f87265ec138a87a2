//! Whole-codec tests: round trips through encode, decode and reassembly, part boundaries, the
//! AT+CMGS SMSC split, and decoder robustness (properties over random input).

use chrono::{DateTime, FixedOffset};
use proptest::prelude::*;

use super::*;

fn ts(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn decode_submit(p: &EncodedPdu) -> (Submit, usize) {
    let bytes = from_hex(&p.hex).unwrap();
    match decode_counting(&bytes, Direction::MobileOriginated, true).unwrap() {
        (Pdu::Submit(s), n) => (s, n),
        (other, _) => panic!("not a SUBMIT: {other:?}"),
    }
}

fn decode_deliver(p: &EncodedPdu) -> (Deliver, usize) {
    let bytes = from_hex(&p.hex).unwrap();
    match decode_counting(&bytes, Direction::MobileTerminated, true).unwrap() {
        (Pdu::Deliver(d), n) => (d, n),
        (other, _) => panic!("not a DELIVER: {other:?}"),
    }
}

#[test]
fn euro_at_part_boundary_decodes_intact() {
    // 152 septets fill part 1 to one short of 153; the € (ESC + 0x65) must move to part 2.
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
    let pdus = encode_submit("+4670", &text, &SubmitOptions::default()).unwrap();
    assert_eq!(pdus.len(), 2);
    let (first, _) = decode_submit(&pdus[0]);
    let (second, _) = decode_submit(&pdus[1]);
    assert_eq!(first.text, "a".repeat(152));
    assert!(second.text.starts_with('€'), "{}", second.text);
    assert_eq!(format!("{}{}", first.text, second.text), text);
}

#[test]
fn one_euro_in_160_chars_needs_two_parts() {
    let text = format!("{}€", "a".repeat(159));
    assert_eq!(plan_parts(&text).parts, 2);
    assert_eq!(
        encode_submit("+4670", &text, &SubmitOptions::default())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn emoji_at_ucs2_boundary_moves_to_next_part() {
    let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(5));
    let pdus = encode_deliver("+4670", &text, ts("2026-11-22T03:00:00Z"), None, 3, None).unwrap();
    assert_eq!(pdus.len(), 2);
    let (first, n) = decode_deliver(&pdus[0]);
    assert_eq!(first.text, "ж".repeat(66));
    assert_eq!(n, 6 + 66 * 2);
    let (second, _) = decode_deliver(&pdus[1]);
    assert!(second.text.starts_with('😀'));
    let mut r = Reassembler::default();
    assert_eq!(r.insert(first, ts("2026-11-22T03:00:00Z").to_utc()), None);
    let whole = r
        .insert(second, ts("2026-11-22T03:00:01Z").to_utc())
        .unwrap();
    assert_eq!(whole.text, text);
}

#[test]
fn split_smsc_tells_both_forms_apart() {
    let with = encode_submit(
        "+46708251358",
        "hi",
        &SubmitOptions {
            smsc: Some("+31624000000".into()),
            ..SubmitOptions::default()
        },
    )
    .unwrap()
    .remove(0);
    let s = split_smsc(&with.hex, with.tpdu_len).unwrap();
    assert!(s.has_smsc_field);
    assert_eq!(s.smsc, Some(Address::parse("+31624000000")));
    assert_eq!(s.tpdu_hex.len(), with.tpdu_len * 2);

    // The same TPDU without any SMSC field, as some hosts send it.
    let bare = s.tpdu_hex.to_owned();
    let s = split_smsc(&bare, with.tpdu_len).unwrap();
    assert!(!s.has_smsc_field);
    match decode_with_tpdu_len(&bare, Direction::MobileOriginated, with.tpdu_len).unwrap() {
        Pdu::Submit(sub) => assert_eq!(sub.text, "hi"),
        other => panic!("{other:?}"),
    }
    match decode_with_tpdu_len(&with.hex, Direction::MobileOriginated, with.tpdu_len).unwrap() {
        Pdu::Submit(sub) => assert_eq!(sub.smsc, Some(Address::parse("+31624000000"))),
        other => panic!("{other:?}"),
    }

    // "00" + TPDU: an SMSC field of zero length.
    let zero_smsc = format!("00{bare}");
    let s = split_smsc(&zero_smsc, with.tpdu_len).unwrap();
    assert!(s.has_smsc_field);
    assert_eq!(s.smsc, None);

    assert!(split_smsc(&bare, with.tpdu_len + 1)
        .unwrap_err()
        .is_truncated());
    assert!(matches!(
        split_smsc(&format!("0000{bare}"), with.tpdu_len),
        Err(PduError::Invalid { .. })
    ));
}

#[test]
fn wrong_direction_is_unsupported_not_misread() {
    let pdus = encode_submit("+4670", "x", &SubmitOptions::default()).unwrap();
    let err = decode(&pdus[0].hex, Direction::MobileTerminated, true).unwrap_err();
    assert!(matches!(
        err,
        PduError::UnsupportedMessageType {
            mti: 0b01,
            direction: Direction::MobileTerminated,
            ..
        }
    ));
    assert!(decode("", Direction::MobileTerminated, true)
        .unwrap_err()
        .is_truncated());
    assert!(decode("00", Direction::MobileTerminated, true)
        .unwrap_err()
        .is_truncated());
    assert!(matches!(
        decode("zz", Direction::MobileTerminated, true),
        Err(PduError::InvalidHex { .. })
    ));
}

#[test]
fn every_prefix_of_a_valid_pdu_is_truncated() {
    let pdus = encode_deliver(
        "sipgate",
        &"€x".repeat(100),
        ts("2026-11-22T03:00:00+05:45"),
        Some("+31624000000"),
        7,
        None,
    )
    .unwrap();
    let bytes = from_hex(&pdus[0].hex).unwrap();
    for len in 0..bytes.len() {
        let err = decode_bytes(&bytes[..len], Direction::MobileTerminated, true).unwrap_err();
        assert!(err.is_truncated(), "prefix {len}: {err}");
    }
    assert!(decode_bytes(&bytes, Direction::MobileTerminated, true).is_ok());
}

/// Characters the properties draw from: everything, weighted towards the cases that break
/// codecs (GSM basic set, extension characters, astral characters).
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::char::range('a', 'z'),
        2 => proptest::sample::select(vec!['@', '£', 'Δ', 'é', 'Ñ', '\n', '\r', ' ', 'ß']),
        2 => proptest::sample::select(vec!['€', '{', '}', '[', ']', '~', '\\', '^', '|', '\u{0C}']),
        1 => proptest::char::range('\u{1F300}', '\u{1FAFF}'),
        1 => any::<char>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(text_char(), 0..1000).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn submit_round_trips(text in text(), reference in any::<u16>(), srr in any::<bool>()) {
        let plan = plan_parts(&text);
        let opts = SubmitOptions {
            request_status_report: srr,
            concat_reference: reference,
            ..SubmitOptions::default()
        };
        let pdus = encode_submit("+46708251358", &text, &opts).unwrap();
        prop_assert_eq!(pdus.len(), plan.parts);
        let mut r: Reassembler<Submit> = Reassembler::default();
        let now = ts("2026-11-22T03:00:00Z").to_utc();
        let mut whole = None;
        for p in &pdus {
            prop_assert_eq!(p.hex.len(), 2 + 2 * p.tpdu_len);
            let (s, ud_octets) = decode_submit(p);
            prop_assert!(ud_octets <= 140, "user data {} octets", ud_octets);
            prop_assert_eq!(s.encoding, plan.encoding);
            prop_assert_eq!(s.status_report_requested, srr);
            prop_assert_eq!(s.message_reference, 0);
            if let Some(done) = r.insert(s, now) {
                prop_assert!(whole.is_none());
                whole = Some(done);
            }
        }
        prop_assert_eq!(whole.map(|s| s.text), Some(text));
    }

    #[test]
    fn deliver_round_trips(
        text in text(),
        reference in any::<u16>(),
        force_ucs2 in any::<bool>(),
    ) {
        let force = force_ucs2.then_some(Encoding::Ucs2);
        let plan = match force {
            Some(e) => plan_parts_as(&text, e).unwrap(),
            None => plan_parts(&text),
        };
        let t = ts("2026-11-22T03:04:05-03:30");
        let pdus = encode_deliver("Pagerbox", &text, t, Some("+31624000000"), reference, force)
            .unwrap();
        prop_assert_eq!(pdus.len(), plan.parts);
        let mut r = Reassembler::default();
        let now = t.to_utc();
        let mut whole = None;
        // Feed parts in reverse to exercise out-of-order arrival.
        for p in pdus.iter().rev() {
            let (d, ud_octets) = decode_deliver(p);
            prop_assert!(ud_octets <= 140, "user data {} octets", ud_octets);
            prop_assert_eq!(d.timestamp, Some(t));
            prop_assert_eq!(d.encoding, plan.encoding);
            prop_assert_eq!(&d.sender.number, "Pagerbox");
            if let Some(done) = r.insert(d, now) {
                whole = Some(done);
            }
        }
        prop_assert_eq!(whole.map(|d| d.text), Some(text));
        prop_assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn decoders_never_panic_on_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        has_smsc in any::<bool>(),
    ) {
        for direction in [Direction::MobileTerminated, Direction::MobileOriginated] {
            let _ = decode_bytes(&bytes, direction, has_smsc);
            let _ = decode(&reader::to_hex(&bytes), direction, has_smsc);
            let _ = decode_with_tpdu_len(&reader::to_hex(&bytes), direction, bytes.len() / 2);
        }
    }

    #[test]
    fn decoders_never_panic_on_mutated_pdus(
        index in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
        text in text(),
    ) {
        // Valid PDUs with one octet changed and a random cut: reaches deeper than noise.
        let t = ts("2026-11-22T03:04:05+01:00");
        let mut pdus = encode_deliver("+4670", &text, t, None, 1, None).unwrap();
        pdus.extend(encode_submit("+4670", &text, &SubmitOptions::default()).unwrap());
        pdus.push(encode_status_report(1, "+4670", t, t, 0).unwrap());
        for p in pdus {
            let mut bytes = from_hex(&p.hex).unwrap();
            let i = index.index(bytes.len());
            bytes[i] = value;
            bytes.truncate(cut.index(bytes.len() + 1));
            for direction in [Direction::MobileTerminated, Direction::MobileOriginated] {
                let _ = decode_bytes(&bytes, direction, true);
                let _ = decode_bytes(&bytes, direction, false);
            }
        }
    }

    #[test]
    fn decoders_never_panic_on_strings(s in ".{0,300}") {
        let _ = decode(&s, Direction::MobileTerminated, true);
        let _ = split_smsc(&s, 3);
    }
}
