//! The domain words shared by every module: severity, status, urgency, channel, and the
//! incident and timeline records the store keeps.
//!
//! These are plain data. Who may change an incident, and how, belongs to the store.

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
    /// Every paging channel, in the default fall-through order.
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Voice, Channel::Email];

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

/// The short numeric id a person types in an SMS reply (`42a`).
pub type IncidentId = i64;

/// Who did something and through which path (`alice` via `sms`, `api` via `http`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// A user id, a token holder, or a system name such as `alertmanager`.
    pub who: String,
    /// The path: `http`, `cli`, `sms`, `voice`, `button`, `udp`, `pagerduty`, `alertmanager`...
    pub via: String,
}

impl Actor {
    /// An actor.
    pub fn new(who: impl Into<String>, via: impl Into<String>) -> Self {
        Actor {
            who: who.into(),
            via: via.into(),
        }
    }
}

/// A link attached to an incident (dashboards, runbooks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub dedup_key: String,
    pub status: Status,
    pub severity: Severity,
    pub summary: String,
    pub source: Option<String>,
    pub service: Option<String>,
    /// The route that chose its escalation policy.
    pub route: Option<String>,
    pub details: serde_json::Value,
    pub links: Vec<Link>,
    /// How many alerts carried this key while the incident was open.
    pub alert_count: i64,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub acknowledged: Option<Transition>,
    pub resolved: Option<Transition>,
}

/// When and by whom an incident was acknowledged or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: chrono::DateTime<chrono::Utc>,
    pub by: String,
    pub via: String,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// `triggered`, `repeated`, `acknowledged`, `resolved`, `note`, `page`, ...
    pub kind: String,
    pub actor: Option<String>,
    pub via: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}
