//! Parsers for the information responses the driver reads: signal, registration, SIM state,
//! operator, message references, stored-message headers, call lists.
//!
//! Each takes one line (with its `+XXX:` prefix) and returns `None` for anything it does not
//! recognise, so a vendor quirk degrades to "unknown" rather than a crash.

use super::{CallEntry, CallState, RegDomain, RegStatus, SimState};

/// Splits a response body at commas outside double quotes; fields are trimmed, quotes kept.
pub fn split_fields(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(body[start..].trim());
    out
}

/// Removes one pair of surrounding double quotes.
pub fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

/// The body after `prefix` (e.g. `+CSQ:`), trimmed.
pub fn body_of<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.trim().strip_prefix(prefix).map(str::trim)
}

/// `+CSQ: <rssi>,<ber>` -> dBm per TS 27.007 §8.5: 0 -> -113, 1 -> -111, 2..=30 -> -109..-53,
/// 31 -> -51 or better; 99 (unknown) -> `None`.
pub fn parse_csq(line: &str) -> Option<Option<i32>> {
    let body = body_of(line, "+CSQ:")?;
    let rssi: i32 = split_fields(body).first()?.parse().ok()?;
    Some(match rssi {
        0..=31 => Some(-113 + 2 * rssi),
        _ => None,
    })
}

/// `+CNMI: <mode>,<mt>,<bm>,<ds>,<bfr>` -> `(mt, ds)`: whether new messages are indicated and
/// status reports routed, the two settings incoming acks and delivery reports depend on.
pub fn parse_cnmi(line: &str) -> Option<(u8, u8)> {
    let fields = split_fields(body_of(line, "+CNMI:")?);
    let mt = fields.get(1)?.parse().ok()?;
    let ds = fields.get(3)?.parse().ok()?;
    Some((mt, ds))
}

/// `+CREG: <n>,<stat>[,...]` (the answer to `AT+CREG?`) -> whether registration URCs are on
/// (`<n>` 1 or 2). `None` for the URC form (`+CREG: <stat>[,"<lac>",...]`), which has no `<n>`.
pub fn parse_creg_reports(line: &str) -> Option<bool> {
    let fields = split_fields(body_of(line, "+CREG:")?);
    let second = fields.get(1)?;
    if second.is_empty() || !second.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = fields.first()?.parse().ok()?;
    Some(n != 0)
}

/// `+CREG:`, `+CGREG:` or `+CEREG:` in either form.
///
/// `as_response` says the line answers a `?` query (`<n>,<stat>[,...]`); otherwise the URC form
/// (`<stat>[,<lac>,<ci>...]`) is assumed. A query answer is also recognised by its second field
/// being a bare number, which a URC never has.
pub fn parse_registration(line: &str, as_response: bool) -> Option<(RegDomain, RegStatus)> {
    let l = line.trim();
    let (prefix, body) = l.split_once(':')?;
    let domain = match prefix {
        "+CREG" => RegDomain::Circuit,
        "+CGREG" => RegDomain::Gprs,
        "+CEREG" => RegDomain::Eps,
        _ => return None,
    };
    let f = split_fields(body.trim());
    let second_is_number = f
        .get(1)
        .is_some_and(|s| !s.is_empty() && s.parse::<u8>().is_ok());
    let stat = if as_response || second_is_number {
        f.get(1)?
    } else {
        f.first()?
    };
    Some((domain, RegStatus::from_code(stat.parse().ok()?)))
}

/// `+CPIN: <code>` -> SIM state.
pub fn parse_cpin(line: &str) -> Option<SimState> {
    let body = unquote(body_of(line, "+CPIN:")?);
    Some(match body {
        "READY" => SimState::Ready,
        "SIM PIN" => SimState::PinRequired,
        "SIM PUK" => SimState::PukRequired,
        "NOT INSERTED" | "SIM REMOVED" => SimState::NotInserted,
        other => SimState::Other(other.to_string()),
    })
}

/// `+COPS: <mode>[,<format>,"<oper>"[,<AcT>]]` -> operator name, `None` when not registered.
pub fn parse_cops(line: &str) -> Option<String> {
    let f = split_fields(body_of(line, "+COPS:")?);
    let name = unquote(f.get(2)?);
    (!name.is_empty()).then(|| name.to_string())
}

/// `+CMGS: <mr>[,<scts>]` -> the message reference the network will quote in a status report.
pub fn parse_cmgs(line: &str) -> Option<u8> {
    let f = split_fields(body_of(line, "+CMGS:")?);
    f.first()?.parse().ok()
}

/// `+CMGL: <index>,<stat>,[<alpha>],<length>` -> index (PDU and text mode alike).
pub fn parse_cmgl_index(line: &str) -> Option<u32> {
    let f = split_fields(body_of(line, "+CMGL:")?);
    f.first()?.parse().ok()
}

/// `+CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>[,<alpha>]]`.
pub fn parse_clcc(line: &str) -> Option<CallEntry> {
    let f = split_fields(body_of(line, "+CLCC:")?);
    let id = f.first()?.parse().ok()?;
    let incoming = f.get(1)? == &"1";
    let state = CallState::from_code(f.get(2)?.parse().ok()?);
    let voice = f.get(3).is_none_or(|m| *m == "0");
    let number = f
        .get(5)
        .map(|n| unquote(n).to_string())
        .filter(|n| !n.is_empty());
    Some(CallEntry {
        id,
        incoming,
        state,
        voice,
        number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_respect_quotes() {
        assert_eq!(
            split_fields("0,0,\"Telekom.de, LTE\",7"),
            vec!["0", "0", "\"Telekom.de, LTE\"", "7"]
        );
        assert_eq!(split_fields(""), vec![""]);
        assert_eq!(unquote("\"SM\""), "SM");
        assert_eq!(unquote("SM"), "SM");
    }

    #[test]
    fn indication_settings_are_read_back() {
        assert_eq!(parse_cnmi("+CNMI: 2,1,0,1,0"), Some((1, 1)));
        assert_eq!(parse_cnmi("+CNMI: 0,0,0,0,0"), Some((0, 0)));
        assert_eq!(parse_cnmi("+CNMI: 2,1"), None, "too short to say");
        assert_eq!(parse_cnmi("+CNMI: x,y,z,w,v"), None);
        assert_eq!(parse_creg_reports("+CREG: 1,1"), Some(true));
        assert_eq!(parse_creg_reports("+CREG: 0,5"), Some(false));
        assert_eq!(
            parse_creg_reports("+CREG: 1,\"1A2B\",\"B3C4\""),
            None,
            "URC form"
        );
        assert_eq!(parse_creg_reports("+CREG: 1"), None, "URC form");
    }

    #[test]
    fn csq_to_dbm_per_27007() {
        assert_eq!(parse_csq("+CSQ: 0,0"), Some(Some(-113)));
        assert_eq!(parse_csq("+CSQ: 1,0"), Some(Some(-111)));
        assert_eq!(parse_csq("+CSQ: 17,99"), Some(Some(-79)));
        assert_eq!(parse_csq("+CSQ: 31,0"), Some(Some(-51)));
        assert_eq!(parse_csq("+CSQ: 99,99"), Some(None));
        assert_eq!(parse_csq("+CREG: 0,1"), None);
    }

    #[test]
    fn registration_forms() {
        assert_eq!(
            parse_registration("+CREG: 0,1", true),
            Some((RegDomain::Circuit, RegStatus::Home))
        );
        assert_eq!(
            parse_registration("+CREG: 2,5,\"00C3\",\"0000F3A1\"", true),
            Some((RegDomain::Circuit, RegStatus::Roaming))
        );
        assert_eq!(
            parse_registration("+CEREG: 2", false),
            Some((RegDomain::Eps, RegStatus::Searching))
        );
        // A query answer is recognised even when the caller did not say so.
        assert_eq!(
            parse_registration("+CGREG: 1,3", false),
            Some((RegDomain::Gprs, RegStatus::Denied))
        );
        assert!(RegStatus::Home.is_registered());
        assert!(RegStatus::Roaming.is_registered());
        assert!(!RegStatus::Searching.is_registered());
    }

    #[test]
    fn cpin_states() {
        assert_eq!(parse_cpin("+CPIN: READY"), Some(SimState::Ready));
        assert_eq!(parse_cpin("+CPIN: SIM PIN"), Some(SimState::PinRequired));
        assert_eq!(parse_cpin("+CPIN: SIM PUK"), Some(SimState::PukRequired));
        assert_eq!(
            parse_cpin("+CPIN: NOT INSERTED"),
            Some(SimState::NotInserted)
        );
        assert_eq!(
            parse_cpin("+CPIN: NOT READY"),
            Some(SimState::Other("NOT READY".into()))
        );
    }

    #[test]
    fn operator_message_reference_and_indexes() {
        assert_eq!(
            parse_cops("+COPS: 0,0,\"Telekom.de\",7").as_deref(),
            Some("Telekom.de")
        );
        assert_eq!(parse_cops("+COPS: 0"), None);
        assert_eq!(parse_cmgs("+CMGS: 217"), Some(217));
        assert_eq!(parse_cmgs("+CMGS: 5,\"26/11/22,10:00:00+04\""), Some(5));
        assert_eq!(parse_cmgs("+CMGS: 300"), None);
        assert_eq!(parse_cmgl_index("+CMGL: 7,0,,24"), Some(7));
        assert_eq!(
            parse_cmgl_index("+CMGL: 2,\"REC UNREAD\",\"+491511\",,\"26/11/22\""),
            Some(2)
        );
    }

    #[test]
    fn clcc_entries() {
        let e = parse_clcc("+CLCC: 1,0,0,0,0,\"+4915112345678\",145").unwrap();
        assert_eq!(e.state, CallState::Active);
        assert_eq!(e.number.as_deref(), Some("+4915112345678"));
        assert!(e.voice && !e.incoming);
        let e = parse_clcc("+CLCC: 2,1,4,0,0,\"\",128").unwrap();
        assert_eq!(e.state, CallState::Incoming);
        assert!(e.incoming);
        assert_eq!(e.number, None);
        assert_eq!(parse_clcc("+CLCC: x"), None);
    }
}
