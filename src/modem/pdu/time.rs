//! Timestamps (TP-SCTS, TP-DT; 3GPP TS 23.040 §9.2.3.11) and the validity period (TP-VP,
//! §9.2.3.12).
//!
//! A timestamp is seven swapped-BCD octets: year, month, day, hour, minute, second, and the
//! time zone in quarter hours with the sign in bit 3. The date and time are local time at the
//! service centre; the result is a `DateTime<FixedOffset>` carrying that offset. Years are
//! taken as 2000..=2099. Decoding is lenient about non-decimal nibbles (some modems emit them
//! in the zone octet) but rejects dates that do not exist.

use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike};

use super::reader::Reader;
use super::PduError;

/// The TP-VP field of an SMS-SUBMIT: how long the service centre keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// TP-VPF = 10: a relative period (the one-octet coding, decoded to its duration).
    Relative(Duration),
    /// TP-VPF = 11: an absolute expiry time.
    Absolute(DateTime<FixedOffset>),
    /// TP-VPF = 01: the enhanced format, kept raw (pagerbox never sends it).
    Enhanced([u8; 7]),
}

fn swapped_bcd(b: u8) -> u32 {
    // Lenient: a nibble above 9 still counts with its value; range checks happen below.
    u32::from(b & 0x0F) * 10 + u32::from(b >> 4)
}

fn to_swapped_bcd(v: u32) -> u8 {
    // Callers pass 0..=99.
    ((v % 10) << 4 | (v / 10)) as u8
}

/// Decode a 7-octet timestamp.
pub(crate) fn decode_timestamp(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<DateTime<FixedOffset>, PduError> {
    let offset = r.position();
    let raw = r.seven(what)?;
    timestamp_from_raw(raw).ok_or(PduError::InvalidTimestamp { offset, raw })
}

fn timestamp_from_raw(raw: [u8; 7]) -> Option<DateTime<FixedOffset>> {
    let year = 2000 + i32::try_from(swapped_bcd(raw[0])).ok()?;
    let date = NaiveDate::from_ymd_opt(year, swapped_bcd(raw[1]), swapped_bcd(raw[2]))?;
    let time = date.and_hms_opt(
        swapped_bcd(raw[3]),
        swapped_bcd(raw[4]),
        swapped_bcd(raw[5]),
    )?;
    let tz = raw[6];
    let quarters = i32::from(tz & 0x07) * 10 + i32::from(tz >> 4);
    let seconds = quarters * 15 * 60;
    let zone = FixedOffset::east_opt(if tz & 0x08 != 0 { -seconds } else { seconds })?;
    zone.from_local_datetime(&time).single()
}

/// Encode a timestamp as seven octets.
pub(crate) fn encode_timestamp(t: &DateTime<FixedOffset>) -> Result<[u8; 7], PduError> {
    let fail = |reason| PduError::UnencodableTimestamp {
        timestamp: t.to_rfc3339(),
        reason,
    };
    let local = t.naive_local();
    let year = local.year();
    if !(2000..=2099).contains(&year) {
        return Err(fail("year must be 2000..=2099"));
    }
    let offset = t.offset().local_minus_utc();
    if offset % (15 * 60) != 0 {
        return Err(fail("offset must be a whole number of quarter hours"));
    }
    let quarters = offset.unsigned_abs() / (15 * 60);
    if quarters > 79 {
        return Err(fail("offset must be within ±19:45"));
    }
    let mut zone = to_swapped_bcd(quarters);
    if offset < 0 {
        zone |= 0x08;
    }
    Ok([
        to_swapped_bcd(year as u32 - 2000),
        to_swapped_bcd(local.month()),
        to_swapped_bcd(local.day()),
        to_swapped_bcd(local.hour()),
        to_swapped_bcd(local.minute()),
        // A leap second is written as second 59.
        to_swapped_bcd(local.second().min(59)),
        zone,
    ])
}

/// The relative TP-VP octet for at least `minutes` of validity: the smallest coding that is
/// not shorter, capped at 63 weeks (0xFF).
pub(crate) fn relative_validity_octet(minutes: u32) -> u8 {
    const HOUR_12: u32 = 12 * 60;
    const DAY: u32 = 24 * 60;
    const WEEK: u32 = 7 * DAY;
    let vp = if minutes <= HOUR_12 {
        minutes.div_ceil(5).saturating_sub(1)
    } else if minutes <= DAY {
        143 + (minutes - HOUR_12).div_ceil(30)
    } else if minutes <= 30 * DAY {
        166 + minutes.div_ceil(DAY)
    } else {
        (192 + minutes.div_ceil(WEEK)).min(255)
    };
    vp as u8
}

/// The duration a relative TP-VP octet stands for.
pub(crate) fn relative_validity_duration(vp: u8) -> Duration {
    let vp = u64::from(vp);
    let minutes = match vp {
        0..=143 => (vp + 1) * 5,
        144..=167 => 12 * 60 + (vp - 143) * 30,
        168..=196 => (vp - 166) * 24 * 60,
        _ => (vp - 192) * 7 * 24 * 60,
    };
    Duration::from_secs(minutes * 60)
}

#[cfg(test)]
mod tests {
    use super::super::reader::from_hex;
    use super::*;

    fn ts(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    // Vectors from python-gsmmodem test/test_pdu.py (TestTimestamp).
    #[test]
    fn python_gsmmodem_timestamp_vectors() {
        let cases = [
            ("2015-11-27T00:00:00+00:00", "51117200000000"),
            ("2015-11-27T00:00:00+02:00", "51117200000080"),
            ("2007-04-12T23:25:42+08:00", "70402132522423"),
            ("2007-04-12T23:25:42-08:00", "7040213252242B"),
        ];
        for (text, hex) in cases {
            let t = ts(text);
            let raw = from_hex(hex).unwrap();
            assert_eq!(encode_timestamp(&t).unwrap().to_vec(), raw, "{text}");
            let decoded = decode_timestamp(&mut Reader::new(&raw), "ts").unwrap();
            assert_eq!(decoded, t);
            assert_eq!(decoded.offset(), t.offset());
        }
    }

    #[test]
    fn impossible_timestamps_are_errors() {
        let raw = from_hex("51317200000000").unwrap(); // month 13
        let err = decode_timestamp(&mut Reader::new(&raw), "ts").unwrap_err();
        assert!(matches!(err, PduError::InvalidTimestamp { offset: 0, .. }));
        let err = decode_timestamp(&mut Reader::new(&raw[..3]), "ts").unwrap_err();
        assert!(err.is_truncated());
        assert!(encode_timestamp(&ts("1999-12-31T23:59:59+00:00")).is_err());
        assert!(encode_timestamp(&ts("2026-01-01T00:00:00+00:10")).is_err());
        assert!(encode_timestamp(&ts("2026-01-01T00:00:00-05:45")).is_ok());
    }

    // TP-VP vectors from python-gsmmodem test/test_pdu.py (TestRelativeValidityPeriod), plus
    // 0xAA (4 days) from oFono unit/test-sms.c simple_submit and 0xA7 (24 h) from its
    // test_prepare_7bit.
    #[test]
    fn relative_validity_vectors() {
        let cases = [
            (30, 5),
            (16 * 60, 151),
            (3 * 24 * 60, 169),
            (5 * 7 * 24 * 60, 197),
            (4 * 24 * 60, 0xAA),
            (24 * 60, 0xA7),
        ];
        for (minutes, vp) in cases {
            assert_eq!(relative_validity_octet(minutes), vp, "{minutes} min");
            assert_eq!(
                relative_validity_duration(vp),
                Duration::from_secs(u64::from(minutes) * 60)
            );
        }
    }

    #[test]
    fn relative_validity_never_shortens() {
        for minutes in (0..700_000).step_by(7) {
            let vp = relative_validity_octet(minutes);
            let got = relative_validity_duration(vp).as_secs() / 60;
            if minutes <= 63 * 7 * 24 * 60 {
                assert!(got >= u64::from(minutes), "{minutes} -> {vp} -> {got}");
            }
            if vp > 0 && vp < 255 {
                let shorter = relative_validity_duration(vp - 1).as_secs() / 60;
                assert!(
                    shorter < u64::from(minutes),
                    "{minutes} could use {}",
                    vp - 1
                );
            }
        }
    }
}
