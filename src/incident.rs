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
    fn every_event_kind_reads_back_as_itself() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(EventKind::parse("page-lost"), None);
    }

    #[test]
    fn a_stored_kind_this_version_does_not_know_is_kept_as_written() {
        let k = TimelineKind::from("page-teleported".to_string());
        assert_eq!(k, TimelineKind::Other("page-teleported".into()));
        assert_eq!(k.known(), None);
        assert_eq!(serde_json::to_value(&k).unwrap(), "page-teleported");
        let known = TimelineKind::from("page-sent".to_string());
        assert_eq!(known, EventKind::PageSent);
        assert_eq!(serde_json::to_value(&known).unwrap(), "page-sent");
        assert_eq!(
            serde_json::from_value::<TimelineKind>("resolved".into()).unwrap(),
            EventKind::Resolved
        );
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

#[cfg(test)]
mod actor_tests {
    use super::*;

    #[test]
    fn a_long_name_is_cut_on_a_character() {
        assert_eq!(Actor::new("alice", "http").who, "alice");
        let long = Actor::new("é".repeat(100_000), "http");
        assert_eq!(long.who, format!("{}...", "é".repeat(ACTOR_MAX_CHARS)));
        let exact = "x".repeat(ACTOR_MAX_CHARS);
        assert_eq!(Actor::new(exact.clone(), "http").who, exact);
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

/// The longest name an [`Actor`] keeps, in characters. Names come from outside (`by` in an API
/// call, a sender's field) and are written on every timeline row, status page and SMS reply
/// that says who acted: a 100 KB name would be stored and shown verbatim every time.
pub const ACTOR_MAX_CHARS: usize = 64;

impl Actor {
    /// An actor; a name longer than [`ACTOR_MAX_CHARS`] is cut there, with `...`.
    pub fn new(who: impl Into<String>, via: impl Into<String>) -> Self {
        let mut who = who.into();
        if let Some((cut, _)) = who.char_indices().nth(ACTOR_MAX_CHARS) {
            who.truncate(cut);
            who.push_str("...");
        }
        Actor {
            who,
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
    /// What happened: the stored name read back through [`TimelineKind`].
    pub kind: TimelineKind,
    pub actor: Option<String>,
    pub via: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

/// What a timeline event records. The stored names are what `GET /v1/incidents/N`, reports and
/// the status page show, and what outbound fan-out and reports select on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A new incident opened.
    Triggered,
    Acknowledged,
    Resolved,
    /// One more alert for the open incident.
    Repeated,
    /// The key opened and resolved too often; pages are damped.
    Flapping,
    /// No route matched: the incident pages nobody.
    Unrouted,
    /// Recorded without paging (`page = false`).
    Recorded,
    /// Queued pages cancelled by an acknowledgement or resolution.
    Cancelled,
    /// A person's note.
    Note,
    /// Rerouted to a policy after a config change.
    Routed,
    /// An escalation step ran (who was paged, how).
    Escalation,
    /// The engine could not run a step.
    EscalationError,
    /// Someone asked to escalate at once.
    EscalateNow,
    /// The policy ran out of repeats without an acknowledgement.
    Exhausted,
    /// Escalation restarted after an acknowledgement timed out.
    Retriggered,
    /// A silence holds the escalation.
    Silenced,
    /// The silence ended; escalation continues.
    Unsilenced,
    /// A runtime silence was added or expired.
    Silence,
    /// A schedule override was added.
    Override,
    OverrideDeleted,
    PageQueued,
    /// Held for a digest (the grouping window or the rate limit).
    PageGrouped,
    /// Nobody reachable on any channel for a step.
    PageUnreachable,
    PageSent,
    PageDelivered,
    PageUndelivered,
    PageRetry,
    PageFallback,
    PageFailed,
    PageCancelled,
    /// A stakeholder status update not sent (nobody to send it to).
    StatusSkipped,
    OutboundSent,
    OutboundRetry,
    OutboundFailed,
    OutboundDropped,
    /// The `page-*` events of an outbox row of kind `reply` (the answer to an SMS command, e.g.
    /// an acknowledgement's confirmation): named apart so that a timeline, `show` and reports
    /// never call a confirmation a page, and "first page sent" never counts one.
    ReplyQueued,
    ReplySent,
    ReplyDelivered,
    ReplyUndelivered,
    ReplyRetry,
    ReplyFallback,
    ReplyFailed,
    ReplyCancelled,
    /// A standby hold opened, ended, or was mirrored from the cloud pager.
    Standby,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 44] = [
        EventKind::Triggered,
        EventKind::Acknowledged,
        EventKind::Resolved,
        EventKind::Repeated,
        EventKind::Flapping,
        EventKind::Unrouted,
        EventKind::Recorded,
        EventKind::Cancelled,
        EventKind::Note,
        EventKind::Routed,
        EventKind::Escalation,
        EventKind::EscalationError,
        EventKind::EscalateNow,
        EventKind::Exhausted,
        EventKind::Retriggered,
        EventKind::Silenced,
        EventKind::Unsilenced,
        EventKind::Silence,
        EventKind::Override,
        EventKind::OverrideDeleted,
        EventKind::PageQueued,
        EventKind::PageGrouped,
        EventKind::PageUnreachable,
        EventKind::PageSent,
        EventKind::PageDelivered,
        EventKind::PageUndelivered,
        EventKind::PageRetry,
        EventKind::PageFallback,
        EventKind::PageFailed,
        EventKind::PageCancelled,
        EventKind::StatusSkipped,
        EventKind::OutboundSent,
        EventKind::OutboundRetry,
        EventKind::OutboundFailed,
        EventKind::OutboundDropped,
        EventKind::ReplyQueued,
        EventKind::ReplySent,
        EventKind::ReplyDelivered,
        EventKind::ReplyUndelivered,
        EventKind::ReplyRetry,
        EventKind::ReplyFallback,
        EventKind::ReplyFailed,
        EventKind::ReplyCancelled,
        EventKind::Standby,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Triggered => "triggered",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Resolved => "resolved",
            EventKind::Repeated => "repeated",
            EventKind::Flapping => "flapping",
            EventKind::Unrouted => "unrouted",
            EventKind::Recorded => "recorded",
            EventKind::Cancelled => "cancelled",
            EventKind::Note => "note",
            EventKind::Routed => "routed",
            EventKind::Escalation => "escalation",
            EventKind::EscalationError => "escalation-error",
            EventKind::EscalateNow => "escalate-now",
            EventKind::Exhausted => "exhausted",
            EventKind::Retriggered => "retriggered",
            EventKind::Silenced => "silenced",
            EventKind::Unsilenced => "unsilenced",
            EventKind::Silence => "silence",
            EventKind::Override => "override",
            EventKind::OverrideDeleted => "override-deleted",
            EventKind::PageQueued => "page-queued",
            EventKind::PageGrouped => "page-grouped",
            EventKind::PageUnreachable => "page-unreachable",
            EventKind::PageSent => "page-sent",
            EventKind::PageDelivered => "page-delivered",
            EventKind::PageUndelivered => "page-undelivered",
            EventKind::PageRetry => "page-retry",
            EventKind::PageFallback => "page-fallback",
            EventKind::PageFailed => "page-failed",
            EventKind::PageCancelled => "page-cancelled",
            EventKind::StatusSkipped => "status-skipped",
            EventKind::OutboundSent => "outbound-sent",
            EventKind::OutboundRetry => "outbound-retry",
            EventKind::OutboundFailed => "outbound-failed",
            EventKind::OutboundDropped => "outbound-dropped",
            EventKind::ReplyQueued => "reply-queued",
            EventKind::ReplySent => "reply-sent",
            EventKind::ReplyDelivered => "reply-delivered",
            EventKind::ReplyUndelivered => "reply-undelivered",
            EventKind::ReplyRetry => "reply-retry",
            EventKind::ReplyFallback => "reply-fallback",
            EventKind::ReplyFailed => "reply-failed",
            EventKind::ReplyCancelled => "reply-cancelled",
            EventKind::Standby => "standby",
        }
    }

    /// The kind a stored name means; `None` for a name this version does not know.
    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The event an incident status change records.
    pub fn of_status(status: Status) -> EventKind {
        match status {
            Status::Triggered => EventKind::Triggered,
            Status::Acknowledged => EventKind::Acknowledged,
            Status::Resolved => EventKind::Resolved,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timeline event's kind as read back from the store: one this version names, or a stored name
/// it does not know (written by a newer version, or by hand), kept as it was so the timeline still
/// shows it instead of failing to load. Serializes to the stored name either way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TimelineKind {
    Known(EventKind),
    Other(String),
}

impl TimelineKind {
    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            TimelineKind::Known(k) => k.as_str(),
            TimelineKind::Other(s) => s,
        }
    }

    /// The kind, when this version knows it.
    pub fn known(&self) -> Option<EventKind> {
        match self {
            TimelineKind::Known(k) => Some(*k),
            TimelineKind::Other(_) => None,
        }
    }
}

impl From<EventKind> for TimelineKind {
    fn from(k: EventKind) -> Self {
        TimelineKind::Known(k)
    }
}

/// Reading a stored name never fails: an unknown one is [`TimelineKind::Other`].
impl From<String> for TimelineKind {
    fn from(s: String) -> Self {
        match EventKind::parse(&s) {
            Some(k) => TimelineKind::Known(k),
            None => TimelineKind::Other(s),
        }
    }
}

impl From<TimelineKind> for String {
    fn from(k: TimelineKind) -> Self {
        match k {
            TimelineKind::Known(k) => k.as_str().to_string(),
            TimelineKind::Other(s) => s,
        }
    }
}

impl fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<EventKind> for TimelineKind {
    fn eq(&self, other: &EventKind) -> bool {
        self.known() == Some(*other)
    }
}

/// Lets callers holding a stored name compare without parsing it first.
impl PartialEq<&str> for TimelineKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
