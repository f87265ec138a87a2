//! The domain words shared by every module: severity, status, urgency, channel, and the
//! incident and timeline records the store keeps.
//!
//! These are plain data. Who may change an incident, and how, belongs to [`crate::store`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad an alert is. Ordered: `Critical` is the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// The lowercase name used in config, JSON and the UDP line format.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// The four-letter form used in SMS page text (`CRIT`, `ERR`, `WARN`, `INFO`).
    pub fn as_short(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARN",
            Severity::Error => "ERR",
            Severity::Critical => "CRIT",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the known words; carries the bad input and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {input:?}: expected one of {expected}")]
pub struct UnknownName {
    /// What kind of word was being read ("severity", "channel", ...).
    pub what: &'static str,
    /// The input as given.
    pub input: String,
    /// The accepted words, comma separated.
    pub expected: &'static str,
}

impl FromStr for Severity {
    type Err = UnknownName;

    /// Accepts the four names in any case, plus the common aliases monitoring tools send
    /// (`crit`, `err`, `warn`, `information`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" => Ok(Severity::Critical),
            "error" | "err" => Ok(Severity::Error),
            "warning" | "warn" => Ok(Severity::Warning),
            "info" | "information" | "informational" => Ok(Severity::Info),
            _ => Err(UnknownName {
                what: "severity",
                input: s.to_string(),
                expected: "critical, error, warning, info",
            }),
        }
    }
}

/// Where an incident is in its life. Moves only forward: triggered -> acknowledged -> resolved
/// (an ack timeout may move acknowledged back to triggered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Triggered,
    Acknowledged,
    Resolved,
}

impl Status {
    /// The lowercase name stored in SQLite and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    /// True while the incident still needs someone.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "triggered" => Ok(Status::Triggered),
            "acknowledged" => Ok(Status::Acknowledged),
            "resolved" => Ok(Status::Resolved),
            _ => Err(UnknownName {
                what: "status",
                input: s.to_string(),
                expected: "triggered, acknowledged, resolved",
            }),
        }
    }
}

/// How urgently a person is reached. Low urgency never calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    High,
    Low,
}

impl FromStr for Urgency {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "high" => Ok(Urgency::High),
            "low" => Ok(Urgency::Low),
            _ => Err(UnknownName {
                what: "urgency",
                input: s.to_string(),
                expected: "high, low",
            }),
        }
    }
}

/// A way of reaching a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Voice,
    Email,
}

impl Channel {
    /// The lowercase name used in config and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sms" => Ok(Channel::Sms),
            "voice" => Ok(Channel::Voice),
            "email" => Ok(Channel::Email),
            _ => Err(UnknownName {
                what: "channel",
                input: s.to_string(),
                expected: "sms, voice, email",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_parses_names_and_aliases_in_any_case() {
        assert_eq!("CRITICAL".parse::<Severity>(), Ok(Severity::Critical));
        assert_eq!("warn".parse::<Severity>(), Ok(Severity::Warning));
        assert_eq!(" info ".parse::<Severity>(), Ok(Severity::Info));
        let err = "sev1".parse::<Severity>().unwrap_err();
        assert!(err.to_string().contains("sev1"), "{err}");
        assert!(Severity::Critical > Severity::Error);
    }

    #[test]
    fn names_round_trip() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        for s in [Status::Triggered, Status::Acknowledged, Status::Resolved] {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        for c in [Channel::Sms, Channel::Voice, Channel::Email] {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
        }
    }
}
