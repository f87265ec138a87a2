//! Pure USSD answer parsing: the `+CUSD: <m>[,<str>,<dcs>]` result (3GPP TS 27.007 §7.15).
//!
//! `<dcs>` is a cell-broadcast data coding scheme (3GPP TS 23.038 §5): 15 (`0x0F`) is the GSM
//! 7-bit default alphabet, which the module converts to the current TE character set (`+CSCS`);
//! 72 (`0x48`) is UCS-2, which modules show as hex of the UTF-16 code units (SIM800 Series AT
//! Command Manual V1.09 §3.2.53; Huawei EM770W AT spec §6.8; Quectel EC25 AT manual `+CUSD`).
//! 8-bit data also comes as hex. SIM800 also answers `+CUSD: 4` whenever USSD fails.
//!
//! No I/O, no clock, no logs.

/// `<m>` of `+CUSD`: what the network said about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UssdStatus {
    /// 0: answer given, no further action.
    Done,
    /// 1: the network asks for a reply (a menu); the session stays open.
    ActionRequired,
    /// 2: the network ended the session.
    NetworkTerminated,
    /// 3: another local client answered.
    OtherClient,
    /// 4: operation not supported (also SIM800's answer to any USSD failure).
    NotSupported,
    /// 5: the network timed out.
    NetworkTimeout,
    /// Any other value.
    Other(u8),
}

impl UssdStatus {
    fn from_code(n: u8) -> Self {
        match n {
            0 => Self::Done,
            1 => Self::ActionRequired,
            2 => Self::NetworkTerminated,
            3 => Self::OtherClient,
            4 => Self::NotSupported,
            5 => Self::NetworkTimeout,
            n => Self::Other(n),
        }
    }

    /// Whether the network gave an answer text worth reading (0 or 1).
    pub fn answered(self) -> bool {
        matches!(self, Self::Done | Self::ActionRequired)
    }

    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Done => "answered",
            Self::ActionRequired => "answered, reply expected",
            Self::NetworkTerminated => "terminated by the network",
            Self::OtherClient => "answered by another client",
            Self::NotSupported => "operation not supported",
            Self::NetworkTimeout => "network timed out",
            Self::Other(_) => "unknown status",
        }
    }
}

/// One `+CUSD` result, text decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UssdAnswer {
    /// `<m>`.
    pub status: UssdStatus,
    /// `<str>` decoded per `<dcs>`; `None` when absent.
    pub text: Option<String>,
    /// `<dcs>` as given; `None` when absent.
    pub dcs: Option<u8>,
}

/// Whether `dcs` (TS 23.038 §5, CBS coding groups) says the text is UCS-2.
pub fn dcs_is_ucs2(dcs: u8) -> bool {
    match dcs >> 4 {
        // 0001 0001: UCS-2 preceded by a language indication.
        0x1 => dcs & 0x0F == 0x01,
        // 01xx: general data coding; bits 3..2 = 10 is UCS-2.
        0x4..=0x7 => (dcs >> 2) & 0x03 == 0x02,
        // 1001: message with user data header; same alphabet bits.
        0x9 => (dcs >> 2) & 0x03 == 0x02,
        _ => false,
    }
}

/// Parses a `+CUSD:` line (with its prefix). `None` when the line is not one.
///
/// UCS-2 text (by `<dcs>`) given as hex is decoded; hex that does not decode is kept as it
/// came, so nothing the network said is lost. With dcs 17 the two-character language
/// indication that starts the text is dropped.
pub fn parse_cusd(line: &str) -> Option<UssdAnswer> {
    let body = line.trim().strip_prefix("+CUSD:")?.trim();
    let (status, rest) = match body.split_once(',') {
        Some((m, rest)) => (m.trim(), Some(rest.trim())),
        None => (body, None),
    };
    let status = UssdStatus::from_code(status.parse().ok()?);
    let Some(rest) = rest else {
        return Some(UssdAnswer {
            status,
            text: None,
            dcs: None,
        });
    };
    // The string is quoted and may itself contain commas; the dcs follows the closing quote.
    let (raw, dcs) = if let Some(inner) = rest.strip_prefix('"') {
        match inner.rfind('"') {
            Some(end) => {
                let after = inner[end + 1..].trim().trim_start_matches(',').trim();
                (&inner[..end], after.parse::<u8>().ok())
            }
            // No closing quote: a torn line; take what there is.
            None => (inner, None),
        }
    } else {
        match rest.rsplit_once(',') {
            Some((s, d)) => (s.trim(), d.trim().parse::<u8>().ok()),
            None => (rest, None),
        }
    };
    let text = match dcs {
        Some(d) if dcs_is_ucs2(d) => {
            let decoded = ucs2_hex(raw).unwrap_or_else(|| raw.to_string());
            if d == 0x11 {
                decoded.chars().skip(2).collect()
            } else {
                decoded
            }
        }
        _ => raw.to_string(),
    };
    Some(UssdAnswer {
        status,
        text: Some(text),
        dcs,
    })
}

/// Hex of UTF-16 code units to text; `None` if it is not that.
fn ucs2_hex(hex: &str) -> Option<String> {
    if hex.is_empty() || hex.len() % 4 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let units: Option<Vec<u16>> = (0..hex.len())
        .step_by(4)
        .map(|i| u16::from_str_radix(hex.get(i..i + 4)?, 16).ok())
        .collect();
    String::from_utf16(&units?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_text_answer() {
        let a = parse_cusd("+CUSD: 0,\"Balance: 12.34 EUR, valid until 01.02.2027\",15").unwrap();
        assert_eq!(a.status, UssdStatus::Done);
        assert_eq!(
            a.text.as_deref(),
            Some("Balance: 12.34 EUR, valid until 01.02.2027")
        );
        assert_eq!(a.dcs, Some(15));
    }

    #[test]
    fn ucs2_hex_answer_with_dcs_72() {
        // "Ваш баланс: 150.25 руб." as UTF-16BE hex, as modules show UCS-2 network answers.
        let a = parse_cusd(
            "+CUSD: 0,\"041204300448002004310430043B0430043D0441003A0020003100350030002E003200350020044004430431002E\",72",
        )
        .unwrap();
        assert_eq!(a.text.as_deref(), Some("Ваш баланс: 150.25 руб."));
        let b = parse_cusd(
            "+CUSD: 1,\"0047007500740068006100620065006E003A00200033002C00350030002020AC\",72",
        )
        .unwrap();
        assert_eq!(b.status, UssdStatus::ActionRequired);
        assert_eq!(b.text.as_deref(), Some("Guthaben: 3,50 €"));
    }

    #[test]
    fn status_only_answers() {
        let a = parse_cusd("+CUSD: 4").unwrap();
        assert_eq!(a.status, UssdStatus::NotSupported);
        assert_eq!(a.text, None);
        assert!(!a.status.answered());
        assert_eq!(
            parse_cusd("+CUSD: 2").unwrap().status,
            UssdStatus::NetworkTerminated
        );
        assert_eq!(
            parse_cusd("+CUSD:5").unwrap().status,
            UssdStatus::NetworkTimeout
        );
    }

    #[test]
    fn bad_hex_under_ucs2_dcs_is_kept_verbatim() {
        let a = parse_cusd("+CUSD: 0,\"Balance 5\",72").unwrap();
        assert_eq!(a.text.as_deref(), Some("Balance 5"));
    }

    #[test]
    fn not_a_cusd_line() {
        assert_eq!(parse_cusd("+CUSD: x"), None);
        assert_eq!(parse_cusd("+CSQ: 21,0"), None);
    }

    #[test]
    fn dcs_classification_follows_ts_23_038() {
        assert!(!dcs_is_ucs2(0x0F));
        assert!(!dcs_is_ucs2(0x00));
        assert!(dcs_is_ucs2(0x48));
        assert!(dcs_is_ucs2(0x11));
        assert!(!dcs_is_ucs2(0x44)); // 8-bit data
        assert!(!dcs_is_ucs2(0x10)); // GSM 7-bit with language indication
    }
}
