//! Error codes of `+CME ERROR` (3GPP TS 27.007 §9.2) and `+CMS ERROR` (3GPP TS 27.005 §3.2.5),
//! with names and whether trying again later can help.
//!
//! Modems report these as numbers (`AT+CMEE=1`) or as the verbose text (`AT+CMEE=2`); both
//! forms parse to the same value. Unknown codes and texts are kept, never dropped, so the
//! operator sees what the modem said.

use std::fmt;

/// `(code, name)` for `+CME ERROR`, from 3GPP TS 27.007 §9.2.1 and §9.2.2 (GPRS).
const CME_NAMES: &[(u16, &str)] = &[
    (0, "phone failure"),
    (1, "no connection to phone"),
    (2, "phone-adaptor link reserved"),
    (3, "operation not allowed"),
    (4, "operation not supported"),
    (5, "PH-SIM PIN required"),
    (6, "PH-FSIM PIN required"),
    (7, "PH-FSIM PUK required"),
    (10, "SIM not inserted"),
    (11, "SIM PIN required"),
    (12, "SIM PUK required"),
    (13, "SIM failure"),
    (14, "SIM busy"),
    (15, "SIM wrong"),
    (16, "incorrect password"),
    (17, "SIM PIN2 required"),
    (18, "SIM PUK2 required"),
    (20, "memory full"),
    (21, "invalid index"),
    (22, "not found"),
    (23, "memory failure"),
    (24, "text string too long"),
    (25, "invalid characters in text string"),
    (26, "dial string too long"),
    (27, "invalid characters in dial string"),
    (30, "no network service"),
    (31, "network timeout"),
    (32, "network not allowed - emergency calls only"),
    (40, "network personalization PIN required"),
    (41, "network personalization PUK required"),
    (42, "network subset personalization PIN required"),
    (43, "network subset personalization PUK required"),
    (44, "service provider personalization PIN required"),
    (45, "service provider personalization PUK required"),
    (46, "corporate personalization PIN required"),
    (47, "corporate personalization PUK required"),
    (48, "hidden key required"),
    (49, "EAP method not supported"),
    (50, "incorrect parameters"),
    (100, "unknown"),
    (103, "illegal MS"),
    (106, "illegal ME"),
    (107, "GPRS services not allowed"),
    (111, "PLMN not allowed"),
    (112, "location area not allowed"),
    (113, "roaming not allowed in this location area"),
    (132, "service option not supported"),
    (133, "requested service option not subscribed"),
    (134, "service option temporarily out of order"),
    (148, "unspecified GPRS error"),
    (149, "PDP authentication failure"),
    (150, "invalid mobile class"),
];

/// `(code, name)` for `+CMS ERROR`: 0..=127 are RP causes (3GPP TS 24.011 Annex E-2),
/// 128..=255 TP-FCS values (3GPP TS 23.040 §9.2.3.22), 300.. from TS 27.005 §3.2.5.
const CMS_NAMES: &[(u16, &str)] = &[
    (1, "unassigned (unallocated) number"),
    (8, "operator determined barring"),
    (10, "call barred"),
    (21, "short message transfer rejected"),
    (27, "destination out of service"),
    (28, "unidentified subscriber"),
    (29, "facility rejected"),
    (30, "unknown subscriber"),
    (38, "network out of order"),
    (41, "temporary failure"),
    (42, "congestion"),
    (47, "resources unavailable, unspecified"),
    (50, "requested facility not subscribed"),
    (69, "requested facility not implemented"),
    (81, "invalid short message transfer reference value"),
    (95, "invalid message, unspecified"),
    (96, "invalid mandatory information"),
    (97, "message type non-existent or not implemented"),
    (
        98,
        "message not compatible with short message protocol state",
    ),
    (99, "information element non-existent or not implemented"),
    (111, "protocol error, unspecified"),
    (127, "interworking, unspecified"),
    (128, "telematic interworking not supported"),
    (129, "short message type 0 not supported"),
    (130, "cannot replace short message"),
    (143, "unspecified TP-PID error"),
    (144, "data coding scheme (alphabet) not supported"),
    (145, "message class not supported"),
    (159, "unspecified TP-DCS error"),
    (160, "command cannot be actioned"),
    (161, "command unsupported"),
    (175, "unspecified TP-Command error"),
    (176, "TPDU not supported"),
    (192, "SC busy"),
    (193, "no SC subscription"),
    (194, "SC system failure"),
    (195, "invalid SME address"),
    (196, "destination SME barred"),
    (197, "SM rejected-duplicate SM"),
    (198, "TP-VPF not supported"),
    (199, "TP-VP not supported"),
    (208, "SIM SMS storage full"),
    (209, "no SMS storage capability in SIM"),
    (210, "error in MS"),
    (211, "memory capacity exceeded"),
    (212, "SIM Application Toolkit busy"),
    (213, "SIM data download error"),
    (255, "unspecified error cause"),
    (300, "ME failure"),
    (301, "SMS service of ME reserved"),
    (302, "operation not allowed"),
    (303, "operation not supported"),
    (304, "invalid PDU mode parameter"),
    (305, "invalid text mode parameter"),
    (310, "SIM not inserted"),
    (311, "SIM PIN required"),
    (312, "PH-SIM PIN required"),
    (313, "SIM failure"),
    (314, "SIM busy"),
    (315, "SIM wrong"),
    (316, "SIM PUK required"),
    (317, "SIM PIN2 required"),
    (318, "SIM PUK2 required"),
    (320, "memory failure"),
    (321, "invalid memory index"),
    (322, "memory full"),
    (330, "SMSC address unknown"),
    (331, "no network service"),
    (332, "network timeout"),
    (340, "no +CNMA acknowledgement expected"),
    (500, "unknown error"),
];

/// CME codes where the same command may succeed later (SIM still booting, no coverage yet).
const CME_RETRYABLE: &[u16] = &[0, 14, 23, 30, 31, 100, 134, 148];

/// CMS codes where a resubmit may succeed: network or SC congestion, no coverage, the catch-all
/// 500 that SIMCom and Quectel modules answer for transient radio trouble.
const CMS_RETRYABLE: &[u16] = &[
    27, 38, 41, 42, 47, 192, 210, 212, 300, 301, 314, 320, 331, 332, 500,
];

fn name_of(table: &[(u16, &'static str)], code: u16) -> Option<&'static str> {
    table.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

fn code_of(table: &[(u16, &str)], text: &str) -> Option<u16> {
    let text = text.trim();
    table
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(text))
        .map(|(c, _)| *c)
}

/// Reads the part after `+CME ERROR:` or `+CMS ERROR:`: a number, or verbose text that `table`
/// maps back to one; `Err` with the text as sent when the table does not know it.
fn read_code(table: &[(u16, &str)], body: &str) -> Result<u16, String> {
    let body = body.trim();
    if let Ok(n) = body.parse::<u16>() {
        return Ok(n);
    }
    code_of(table, body).ok_or_else(|| body.to_string())
}

/// A `+CME ERROR` value: a known or unknown number, or verbose text that matched no number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmeError {
    /// A numeric code (also what a known verbose text maps back to).
    Code(u16),
    /// Verbose text the table does not know.
    Text(String),
}

/// A `+CMS ERROR` value; see [`CmeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmsError {
    /// A numeric code (also what a known verbose text maps back to).
    Code(u16),
    /// Verbose text the table does not know.
    Text(String),
}

impl CmeError {
    /// Parses the part after `+CME ERROR:`: a number or verbose text.
    pub fn parse(body: &str) -> Self {
        match read_code(CME_NAMES, body) {
            Ok(n) => Self::Code(n),
            Err(text) => Self::Text(text),
        }
    }

    /// The numeric code, if known.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Code(n) => Some(*n),
            Self::Text(_) => None,
        }
    }

    /// The name from TS 27.007, or the modem's own text.
    pub fn name(&self) -> &str {
        match self {
            Self::Code(n) => name_of(CME_NAMES, *n).unwrap_or("unlisted code"),
            Self::Text(t) => t,
        }
    }

    /// Whether the same command may succeed later without anyone changing anything.
    /// A wrong PIN, a missing SIM or a bad parameter are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Code(n) => CME_RETRYABLE.contains(n),
            Self::Text(_) => false,
        }
    }
}

impl CmsError {
    /// Parses the part after `+CMS ERROR:`: a number or verbose text.
    pub fn parse(body: &str) -> Self {
        match read_code(CMS_NAMES, body) {
            Ok(n) => Self::Code(n),
            Err(text) => Self::Text(text),
        }
    }

    /// The numeric code, if known.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Code(n) => Some(*n),
            Self::Text(_) => None,
        }
    }

    /// The name from TS 27.005 / TS 24.011 / TS 23.040, or the modem's own text.
    pub fn name(&self) -> &str {
        match self {
            Self::Code(n) => name_of(CMS_NAMES, *n).unwrap_or("unlisted code"),
            Self::Text(t) => t,
        }
    }

    /// Whether resubmitting may succeed (500 unknown, 331 no network, 332 timeout, SC busy...).
    /// 304 invalid PDU, 330 SMSC unknown or 1 unassigned number need a fix, not a retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Code(n) => CMS_RETRYABLE.contains(n),
            Self::Text(_) => false,
        }
    }
}

impl fmt::Display for CmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(n) => write!(f, "+CME ERROR: {n} ({})", self.name()),
            Self::Text(t) => write!(f, "+CME ERROR: {t}"),
        }
    }
}

impl fmt::Display for CmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(n) => write!(f, "+CMS ERROR: {n} ({})", self.name()),
            Self::Text(t) => write!(f, "+CMS ERROR: {t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cme_numeric_codes_have_27007_names() {
        for (code, name) in [
            (3, "operation not allowed"),
            (4, "operation not supported"),
            (10, "SIM not inserted"),
            (11, "SIM PIN required"),
            (12, "SIM PUK required"),
            (13, "SIM failure"),
            (14, "SIM busy"),
            (16, "incorrect password"),
            (30, "no network service"),
            (100, "unknown"),
        ] {
            assert_eq!(
                CmeError::parse(&code.to_string()).name(),
                name,
                "code {code}"
            );
        }
    }

    #[test]
    fn cme_verbose_text_maps_back_to_the_code() {
        assert_eq!(CmeError::parse(" SIM not inserted"), CmeError::Code(10));
        assert_eq!(CmeError::parse("incorrect password"), CmeError::Code(16));
        assert_eq!(CmeError::parse("Incorrect Password"), CmeError::Code(16));
        assert_eq!(
            CmeError::parse("vendor says no"),
            CmeError::Text("vendor says no".into())
        );
    }

    #[test]
    fn cms_codes_have_27005_names() {
        for (code, name) in [
            (300, "ME failure"),
            (304, "invalid PDU mode parameter"),
            (330, "SMSC address unknown"),
            (331, "no network service"),
            (332, "network timeout"),
            (500, "unknown error"),
        ] {
            assert_eq!(
                CmsError::parse(&code.to_string()).name(),
                name,
                "code {code}"
            );
        }
        assert_eq!(CmsError::parse("SMSC address unknown"), CmsError::Code(330));
    }

    #[test]
    fn display_carries_code_and_name() {
        assert_eq!(
            CmsError::Code(500).to_string(),
            "+CMS ERROR: 500 (unknown error)"
        );
        assert_eq!(
            CmeError::Code(16).to_string(),
            "+CME ERROR: 16 (incorrect password)"
        );
        assert_eq!(CmsError::Code(999).name(), "unlisted code");
    }

    #[test]
    fn retryable_semantics() {
        for c in [500, 331, 332, 42, 192] {
            assert!(CmsError::Code(c).is_retryable(), "CMS {c}");
        }
        for c in [304, 330, 1, 310, 311, 305] {
            assert!(!CmsError::Code(c).is_retryable(), "CMS {c}");
        }
        for c in [14, 30, 31, 100] {
            assert!(CmeError::Code(c).is_retryable(), "CME {c}");
        }
        for c in [3, 4, 10, 11, 12, 16] {
            assert!(!CmeError::Code(c).is_retryable(), "CME {c}");
        }
        assert!(!CmsError::Text("odd".into()).is_retryable());
    }

    #[test]
    fn tables_have_unique_codes() {
        for table in [CME_NAMES, CMS_NAMES] {
            let mut codes: Vec<u16> = table.iter().map(|(c, _)| *c).collect();
            let n = codes.len();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), n);
        }
    }
}
