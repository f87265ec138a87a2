//! SMS-STATUS-REPORT (3GPP TS 23.040 §9.2.2.3): the network telling pagerbox whether a page
//! reached the handset (`+CDS`), and what the simulator sends as a delivery report.

use chrono::{DateTime, FixedOffset};

use super::address::Address;
use super::reader::Reader;
use super::time::{decode_timestamp, encode_timestamp};
use super::{EncodedPdu, PduError};

/// A decoded SMS-STATUS-REPORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The SMSC field, when the PDU carried one with a non-zero length.
    pub smsc: Option<Address>,
    /// TP-MR of the SMS-SUBMIT this reports on (the number `+CMGS:` returned).
    pub message_reference: u8,
    /// TP-RA: the destination of that message.
    pub recipient: Address,
    /// TP-SCTS: when the service centre received the original message; `None` when the
    /// centre sent an impossible date (month 00 and the like).
    pub service_centre_time: Option<DateTime<FixedOffset>>,
    /// TP-DT: when it was delivered, or when the status last changed; `None` as above.
    pub discharge_time: Option<DateTime<FixedOffset>>,
    /// TP-ST, raw; see [`StatusReport::outcome`].
    pub status: u8,
}

/// What a status report means for a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// TP-ST 0x00..=0x1F: the message reached the handset.
    Delivered,
    /// TP-ST 0x20..=0x3F: a temporary error, the service centre is still trying.
    Pending,
    /// TP-ST 0x40..=0x7F: a permanent error, or a temporary one the centre gave up on.
    /// Values 0x80..=0xFF are reserved by TS 23.040 §9.2.3.15; they count as failed so that
    /// a page is never taken as delivered on a status nobody defined (escalation goes on).
    Failed,
}

impl DeliveryOutcome {
    /// Classify a raw TP-ST value.
    pub fn from_status(status: u8) -> DeliveryOutcome {
        match status {
            0x00..=0x1F => DeliveryOutcome::Delivered,
            0x20..=0x3F => DeliveryOutcome::Pending,
            _ => DeliveryOutcome::Failed,
        }
    }
}

impl StatusReport {
    /// Whether the page was delivered, is still pending, or failed for good.
    pub fn outcome(&self) -> DeliveryOutcome {
        DeliveryOutcome::from_status(self.status)
    }
}

/// Encode a status report (for the simulator) with an empty `00` SMSC field, as `+CDS` shows
/// it. TP-SRQ is 0 (reporting on an SMS-SUBMIT), no optional parameters.
pub fn encode_status_report(
    reference: u8,
    recipient: &str,
    sc_time: DateTime<FixedOffset>,
    discharge: DateTime<FixedOffset>,
    status: u8,
) -> Result<EncodedPdu, PduError> {
    let mut tpdu = Vec::with_capacity(32);
    tpdu.push(0x06); // TP-MTI = SMS-STATUS-REPORT, TP-MMS = 1
    tpdu.push(reference);
    Address::parse(recipient).encode_tp(&mut tpdu)?;
    tpdu.extend_from_slice(&encode_timestamp(&sc_time)?);
    tpdu.extend_from_slice(&encode_timestamp(&discharge)?);
    tpdu.push(status);
    Ok(EncodedPdu::new(&[0], &tpdu))
}

/// Decode an SMS-STATUS-REPORT TPDU. Optional trailing parameters (TP-PI and what it
/// announces) are ignored: pagerbox needs only the status.
pub(crate) fn decode_status_report(
    r: &mut Reader<'_>,
    smsc: Option<Address>,
) -> Result<StatusReport, PduError> {
    r.octet("first octet")?;
    let message_reference = r.octet("message reference")?;
    let recipient = Address::decode_tp(r, "recipient address")?;
    // A bad date is the centre's slip, not a reason to lose the status: an undelivered page
    // must still go on to its next channel. (Each stamp is seven octets either way.)
    let lenient = |r: &mut Reader<'_>, what| match decode_timestamp(r, what) {
        Ok(t) => Ok(Some(t)),
        Err(PduError::InvalidTimestamp { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    let service_centre_time = lenient(r, "service centre time stamp")?;
    let discharge_time = lenient(r, "discharge time")?;
    let status = r.octet("status")?;
    Ok(StatusReport {
        smsc,
        message_reference,
        recipient,
        service_centre_time,
        discharge_time,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{decode, AddressKind, Direction, Pdu};
    use super::*;

    fn report(hex: &str, has_smsc: bool) -> StatusReport {
        match decode(hex, Direction::MobileTerminated, has_smsc).unwrap() {
            Pdu::StatusReport(s) => s,
            other => panic!("not a STATUS-REPORT: {other:?}"),
        }
    }

    fn ts(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    // oFono unit/test-sms.c test_sr_assembly sr_pdu1 (a TPDU without SMSC field): reference 4
    // to +4915259911630, delivered. The zone octet 0x0A is -20 quarters.
    const OFONO_SR1: &str = "06040D91945152991136F00160124130340A0160124130940A00";

    #[test]
    fn ofono_status_report_delivered() {
        let s = report(OFONO_SR1, false);
        assert_eq!(s.message_reference, 4);
        assert_eq!(s.recipient, Address::parse("+4915259911630"));
        assert_eq!(s.service_centre_time, Some(ts("2010-06-21T14:03:43-05:00")));
        assert_eq!(s.discharge_time, Some(ts("2010-06-21T14:03:49-05:00")));
        assert_eq!(s.status, 0);
        assert_eq!(s.outcome(), DeliveryOutcome::Delivered);
        let e = encode_status_report(
            4,
            "+4915259911630",
            s.service_centre_time.unwrap(),
            s.discharge_time.unwrap(),
            0,
        )
        .unwrap();
        assert_eq!(e.hex, format!("00{OFONO_SR1}"));
        assert_eq!(e.tpdu_len, 26); // oFono decodes it with tpdu_len 26
    }

    // oFono unit/test-sms.c sr_pdu2 and sr_pdu3 (national recipient; its zone octet 0xA0 has
    // a non-decimal nibble, which we read leniently).
    #[test]
    fn ofono_status_reports_2_and_3() {
        let s = report(
            "06050D91945152991136F00160124130640A0160124130450A00",
            false,
        );
        assert_eq!(s.message_reference, 5);
        let s = report("0606098121436587F9019012413064A0019012413045A000", false);
        assert_eq!(s.message_reference, 6);
        assert_eq!(
            s.recipient,
            Address {
                number: "123456789".into(),
                kind: AddressKind::Unknown
            }
        );
        assert_eq!(s.outcome(), DeliveryOutcome::Delivered);
    }

    // python-gsmmodem test/test_pdu.py test_decode: STATUS-REPORT with an empty SMSC field,
    // reference 214 to +31628870634.
    #[test]
    fn python_gsmmodem_status_report() {
        let s = report("0006D60B911326880736F4111011719551401110117195714000", true);
        assert_eq!(s.smsc, None);
        assert_eq!(s.message_reference, 214);
        assert_eq!(s.recipient, Address::parse("+31628870634"));
        assert_eq!(s.outcome(), DeliveryOutcome::Delivered);
    }

    // python-gsmmodem test/test_pdu.py: "Semi-invalid status report PDU captured from a ZTE
    // modem" (the recipient digits are garbage; the rest must still decode).
    #[test]
    fn python_gsmmodem_zte_status_report() {
        let s = report(
            "0297F1061C0F910B487228297020F5317062419272803170624192138000",
            true,
        );
        assert_eq!(s.message_reference, 28);
        assert_eq!(s.service_centre_time, Some(ts("2013-07-26T14:29:27+02:00")));
        assert_eq!(s.discharge_time, Some(ts("2013-07-26T14:29:31+02:00")));
        assert_eq!(s.recipient.kind, AddressKind::International);
    }

    #[test]
    fn outcome_ranges() {
        let cases = [
            (0x00, DeliveryOutcome::Delivered),
            (0x1F, DeliveryOutcome::Delivered),
            (0x20, DeliveryOutcome::Pending),
            (0x3F, DeliveryOutcome::Pending),
            (0x40, DeliveryOutcome::Failed),
            (0x63, DeliveryOutcome::Failed),
            (0x7F, DeliveryOutcome::Failed),
            (0x80, DeliveryOutcome::Failed),
        ];
        for (status, outcome) in cases {
            assert_eq!(DeliveryOutcome::from_status(status), outcome, "{status:#x}");
        }
    }

    #[test]
    fn encoded_reports_round_trip() {
        let t = ts("2026-11-22T03:04:05+01:00");
        let e = encode_status_report(200, "0701234567", t, t, 0x45).unwrap();
        let s = report(&e.hex, true);
        assert_eq!(s.message_reference, 200);
        assert_eq!(s.recipient.number, "0701234567");
        assert_eq!(s.status, 0x45);
        assert_eq!(s.outcome(), DeliveryOutcome::Failed);
        assert_eq!(s.discharge_time, Some(t));
    }

    /// A centre that stamps an impossible date (month 00) still reports the status: losing it
    /// would leave an undelivered page looking sent.
    #[test]
    fn a_report_with_an_impossible_date_keeps_its_status() {
        let hex = format!(
            "06040D91945152991136F0{}{}46",
            "0160124130340A", "0100124130940A"
        );
        let s = report(&hex, false);
        assert_eq!(s.message_reference, 4);
        assert_eq!(s.service_centre_time, Some(ts("2010-06-21T14:03:43-05:00")));
        assert_eq!(s.discharge_time, None);
        assert_eq!(s.status, 0x46);
        assert_eq!(s.outcome(), DeliveryOutcome::Failed);
    }
}
