//! Silences and maintenance windows: which open incidents must page nobody right now.
//!
//! A [`Silence`] is a time window plus a condition on the incident (an optional service and
//! Alertmanager-style [`Matcher`]s). It comes from the config (`[[silences]]`, maintenance windows
//! planned in advance) or is added at run time over HTTP or the CLI (kept in SQLite by
//! the store's `silences` table). This module owns the pure parts (parsing matchers, matching an
//! incident, window math); it does not decide when to page: the escalation engine asks
//! [`holding`] before it pages a step.
//!
//! What a silence does (the rules the engine follows):
//!
//! - A matching alert is still recorded: the incident, its dedup and its timeline are untouched.
//!   The engine holds the escalation step that is due while a silence matches: no page is queued
//!   (no SMS, voice, email or digest entry) and no "incident opened" stakeholder update goes out.
//!   The timeline says `silenced by #3 until ...` once per hold.
//! - The escalation does not advance or exhaust during the window: the due step (the first step
//!   for a new incident) is postponed to the silence's end, and the engine sleeps until that due
//!   time like any other (it does not poll). When the window ends, or the silence is expired
//!   early, an incident still triggered pages that held step as usual. Why the held step and not
//!   always the first: for a new incident they are the same; for an incident that already paged
//!   step 1 before the silence was added, step 1's people already know, so the next step is the
//!   one that was owed (Alertmanager's rule: a silence stops new and repeat notifications, and the
//!   schedule carries on afterwards where it stood).
//! - Pages queued before the silence matched (an SMS being retried, a voice call scheduled a
//!   minute after an SMS by a notification rule) are not withdrawn: they belong to a decision made
//!   while nothing was silenced.
//! - Acknowledge and resolve work as always. An incident acknowledged or resolved before it ever
//!   paged (held by a silence from the start) sends no stakeholder update either: stakeholders do
//!   not hear of incidents nobody was paged for.
//! - A silence ends at `ends_at` or when expired; ended silences are kept for the list.
//!
//! Matching (Alertmanager semantics): every matcher must match and the service, if given, must
//! equal the incident's. A matcher names a value of the incident: `service`, `source`,
//! `severity`, `summary`, `route` and `dedup_key` are the incident's own fields; a dotted name
//! (`labels.team`, `custom_details.env`) is a path into its details JSON; any other name is looked
//! up in the details as Alertmanager `labels`, then PagerDuty `custom_details`, then the top level
//! of the details (pagerbox's own alerts). A value that is missing counts as the empty string, so
//! `team=""` matches incidents without a team and `team!=db` matches them too. Regular
//! expressions (`=~`, `!~`) are anchored at both ends, as in Alertmanager.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::incident::Incident;

/// What can be wrong with a silence as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A matcher that is not `NAME=VALUE`, `NAME!=VALUE`, `NAME=~REGEX` or `NAME!~REGEX`.
    #[error("matcher {input:?}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")]
    MatcherSyntax { input: String },
    /// A matcher with an empty or invalid name.
    #[error("matcher {input:?}: the name must be non-empty letters, digits, '_', '-' or '.'")]
    MatcherName { input: String },
    /// A regular expression that does not compile.
    #[error("matcher {input:?}: bad regular expression: {message}")]
    Regex { input: String, message: String },
    /// Neither a service nor a matcher that needs a value: the silence would hold every
    /// incident (`foo=`, `severity=~.*` and `x!=y` all match an incident without that value).
    #[error("a silence needs a service or a matcher that an empty value does not satisfy (it would silence everything)")]
    MatchesEverything,
    /// The window ends before (or when) it starts.
    #[error("the silence must end after it starts ({starts} .. {ends})")]
    EmptyWindow {
        starts: DateTime<Utc>,
        ends: DateTime<Utc>,
    },
}

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// `=`: equal.
    #[serde(rename = "=")]
    Equal,
    /// `!=`: not equal.
    #[serde(rename = "!=")]
    NotEqual,
    /// `=~`: the whole value matches the regular expression.
    #[serde(rename = "=~")]
    Regex,
    /// `!~`: the whole value does not match the regular expression.
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One condition on a value of the incident, parsed from `NAME=VALUE` and friends. Invariant: a
/// regex operator always has its compiled (anchored) expression.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

/// Written the way [`Matcher::parse`] reads it back to the same matcher: this is how runtime
/// silences are stored, so a value that would read back differently is quoted. Unquoted, an
/// equality with a value starting with `~` (`service="~.*"`) would come back as the regex `.*`
/// and silence every incident, and a value with spaces at its ends would lose them.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.value;
        let quote = v.starts_with(['~', '=', '"']) || v.ends_with('"') || v.trim() != v.as_str();
        if quote {
            write!(f, "{}{}\"{v}\"", self.name, self.op.as_str())
        } else {
            write!(f, "{}{}{v}", self.name, self.op.as_str())
        }
    }
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Matcher {
    /// Builds a matcher; compiles the expression of `=~`/`!~` (anchored at both ends).
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, Error> {
        let input = format!("{name}{}{value}", op.as_str());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(Error::MatcherName { input });
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    Error::Regex {
                        input: input.clone(),
                        message: e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .trim_start_matches("error: ")
                            .to_string(),
                    }
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses `NAME=VALUE`, `NAME!=VALUE`, `NAME=~REGEX` or `NAME!~REGEX`. Pure. The value may be
    /// empty and may contain `=`; surrounding double quotes around it are removed
    /// (`team="db ops"`).
    pub fn parse(s: &str) -> Result<Matcher, Error> {
        let syntax = || Error::MatcherSyntax {
            input: s.to_string(),
        };
        let pos = s.find(['=', '!']).ok_or_else(syntax)?;
        let (name, rest) = (s[..pos].trim(), &s[pos..]);
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(syntax());
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Matcher::new(name, op, value)
    }

    /// Whether `value` (the empty string when missing) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the incident satisfies the matcher (see the module doc for names).
    pub fn matches(&self, inc: &Incident) -> bool {
        self.matches_value(&value_of(inc, &self.name).unwrap_or_default())
    }
}

/// The value an incident has under `name`, as the matchers see it (see the module doc).
pub fn value_of(inc: &Incident, name: &str) -> Option<String> {
    match name {
        "service" => return inc.service.clone(),
        "source" => return inc.source.clone(),
        "severity" => return Some(inc.severity.as_str().to_string()),
        "summary" => return Some(inc.summary.clone()),
        "route" => return inc.route.clone(),
        "dedup_key" => return Some(inc.dedup_key.clone()),
        _ => {}
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if name.contains('.') {
        let mut v = &inc.details;
        for part in name.split('.') {
            v = v.get(part)?;
        }
        return scalar(v);
    }
    ["labels", "custom_details"]
        .iter()
        .find_map(|section| inc.details.get(section).and_then(|s| s.get(name)))
        .or_else(|| inc.details.get(name))
        .and_then(scalar)
}

/// Where a silence was defined; together with the id it names the silence on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum SilenceId {
    /// A `[[silences]]` entry of the config, by its `id`.
    Config(String),
    /// A runtime silence, by its row id.
    Runtime(i64),
}

impl SilenceId {
    /// The stable key stored with a held escalation (`config:ID` or `runtime:N`).
    pub fn key(&self) -> String {
        match self {
            SilenceId::Config(id) => format!("config:{id}"),
            SilenceId::Runtime(n) => format!("runtime:{n}"),
        }
    }

    /// The id back from [`SilenceId::key`].
    pub fn from_key(key: &str) -> Option<SilenceId> {
        match key.split_once(':')? {
            ("config", id) => Some(SilenceId::Config(id.to_string())),
            ("runtime", n) => n.parse().ok().map(SilenceId::Runtime),
            _ => None,
        }
    }

    /// Parses what a user types for a runtime silence: `3` or `#3`.
    pub fn parse_runtime(s: &str) -> Option<i64> {
        s.trim().trim_start_matches('#').parse().ok()
    }
}

impl fmt::Display for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SilenceId::Config(id) => write!(f, "maintenance window {id:?}"),
            SilenceId::Runtime(n) => write!(f, "#{n}"),
        }
    }
}

/// One silence: a window and a condition on incidents. Invariants (checked by [`Silence::new`]):
/// `starts_at < ends_at`, and a service or at least one matcher is given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    /// Serialized flat: `"kind": "runtime", "id": 3` or `"kind": "config", "id": "db-upgrade"`.
    #[serde(flatten)]
    pub id: SilenceId,
    /// The incident's service must equal this, when given.
    pub service: Option<String>,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: Option<String>,
    /// A config window that repeats (`every = "7d"`); `starts_at`/`ends_at` are then its first
    /// occurrence, and [`Silence::in_force`] gives the occurrence at an instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Recurrence>,
}

/// A window repeated every `every_days` days at the same local wall times in `time_zone`: a
/// weekly Sunday 02:00-04:00 stays 02:00-04:00 local across DST. Each occurrence's local times
/// become instants by the schedule's rule (`schedule::local_to_utc`): a time in the spring-forward
/// gap means the first instant after it, a repeated autumn time its first occurrence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recurrence {
    pub every_days: u32,
    #[serde(serialize_with = "tz_name")]
    pub time_zone: chrono_tz::Tz,
    pub local_start: chrono::NaiveDateTime,
    pub local_end: chrono::NaiveDateTime,
}

fn tz_name<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

impl Recurrence {
    /// Occurrence `k` (0 = the first) as instants.
    fn occurrence(&self, k: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let shift = chrono::Duration::days(k * i64::from(self.every_days));
        let at = |t: chrono::NaiveDateTime| {
            t.checked_add_signed(shift)
                .map(|t| crate::schedule::local_to_utc(self.time_zone, t))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        (at(self.local_start), at(self.local_end))
    }

    /// The occurrence in force at `now`, or else the next one to start.
    pub fn upcoming(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let local_now = crate::schedule::utc_to_local(self.time_zone, now);
        let period = i64::from(self.every_days.max(1)) * 86_400;
        let k = (local_now - self.local_start)
            .num_seconds()
            .div_euclid(period)
            .max(0);
        // Local and real time differ by at most a DST shift, so the answer is among these.
        (k.saturating_sub(1).max(0)..=k.saturating_add(2))
            .map(|k| self.occurrence(k))
            .find(|(_, end)| *end > now)
            .unwrap_or_else(|| self.occurrence(k.saturating_add(2)))
    }
}

impl Silence {
    /// Checks the invariants.
    pub fn new(
        id: SilenceId,
        service: Option<String>,
        matchers: Vec<Matcher>,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        comment: String,
    ) -> Result<Silence, Error> {
        let service = service.filter(|s| !s.is_empty());
        // As Alertmanager: some matcher must need a value, or every incident lacking one (all
        // of them, for a made-up name) is held and nobody is paged.
        if service.is_none() && matchers.iter().all(|m| m.matches_value("")) {
            return Err(Error::MatchesEverything);
        }
        // Compared in whole milliseconds, the precision the store keeps: a window shorter than
        // that would be stored empty and break the table's CHECK.
        if ends_at.timestamp_millis() <= starts_at.timestamp_millis() {
            return Err(Error::EmptyWindow {
                starts: starts_at,
                ends: ends_at,
            });
        }
        Ok(Silence {
            id,
            service,
            matchers,
            starts_at,
            ends_at,
            comment,
            created_by: None,
            repeat: None,
        })
    }

    /// This silence as it stands at `now` if it is in force then; for a repeating window, the
    /// occurrence in force (its own `starts_at`/`ends_at`), so the hold ends with the occurrence.
    pub fn in_force(&self, now: DateTime<Utc>) -> Option<Silence> {
        let s = self.current(now);
        s.active_at(now).then_some(s)
    }

    /// For a repeating window the occurrence in force at `now` or else the next one; any other
    /// silence as it is. For listing.
    pub fn current(&self, now: DateTime<Utc>) -> Silence {
        let mut s = self.clone();
        if let Some(r) = &self.repeat {
            (s.starts_at, s.ends_at) = r.upcoming(now);
        }
        s
    }

    /// In force at `now`: `starts_at <= now < ends_at`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether the incident matches (ignoring time).
    pub fn matches(&self, inc: &Incident) -> bool {
        self.service
            .as_ref()
            .is_none_or(|s| inc.service.as_deref() == Some(s.as_str()))
            && self.matchers.iter().all(|m| m.matches(inc))
    }

    /// What the timeline says when it holds an incident.
    pub fn describe(&self) -> String {
        let mut what: Vec<String> = self
            .service
            .iter()
            .map(|s| format!("service={s}"))
            .collect();
        what.extend(self.matchers.iter().map(Matcher::to_string));
        let comment = if self.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", self.comment)
        };
        format!(
            "silenced by {} until {} ({}){comment}; nobody is paged until then",
            self.id,
            self.ends_at.format("%Y-%m-%d %H:%M:%S UTC"),
            what.join(", ")
        )
    }
}

/// The silence that holds `inc` at `now`, if any: of all active silences that match, the one
/// that ends last (so one hold covers overlapping windows; when it ends a later pass looks again).
pub fn holding<'s>(
    silences: &'s [Silence],
    inc: &Incident,
    now: DateTime<Utc>,
) -> Option<&'s Silence> {
    silences
        .iter()
        .filter(|s| s.active_at(now) && s.matches(inc))
        .max_by_key(|s| s.ends_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Severity, Status};
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn incident(service: Option<&str>, details: Value) -> Incident {
        Incident {
            id: 1,
            dedup_key: "k".into(),
            status: Status::Triggered,
            severity: Severity::Critical,
            summary: "disk full".into(),
            source: Some("db1".into()),
            service: service.map(str::to_string),
            route: Some("default".into()),
            details,
            links: vec![],
            alert_count: 1,
            first_seen: utc("2026-11-22T03:00:00Z"),
            last_seen: utc("2026-11-22T03:00:00Z"),
            acknowledged: None,
            resolved: None,
        }
    }

    fn m(s: &str) -> Matcher {
        Matcher::parse(s).unwrap()
    }

    #[test]
    fn parses_the_four_operators_and_round_trips() {
        for (input, name, op, value) in [
            (
                "alertname=DiskFull",
                "alertname",
                MatchOp::Equal,
                "DiskFull",
            ),
            ("env!=prod", "env", MatchOp::NotEqual, "prod"),
            ("instance=~db[0-9]+", "instance", MatchOp::Regex, "db[0-9]+"),
            ("job!~node.*", "job", MatchOp::NotRegex, "node.*"),
            ("team=", "team", MatchOp::Equal, ""),
            ("query=a=b", "query", MatchOp::Equal, "a=b"),
            ("labels.team=db", "labels.team", MatchOp::Equal, "db"),
        ] {
            let got = m(input);
            assert_eq!(
                (got.name.as_str(), got.op, got.value.as_str()),
                (name, op, value),
                "{input}"
            );
            assert_eq!(got.to_string(), input);
        }
        assert_eq!(m("team=\"db ops\"").value, "db ops");
    }

    /// Runtime silences are stored as their matchers' text: every matcher reads back as itself,
    /// above all an equality whose value starts with `~`, which unquoted reads back as a regex
    /// (`service=~.*` holds every incident).
    #[test]
    fn every_matcher_reads_back_from_its_text_as_itself() {
        let values = [
            "~.*", " db", "db ", "\"x\"", "a\"", "\"a", "=y", "", "db ops", "~",
        ];
        for op in [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ] {
            for v in values {
                let Ok(original) = Matcher::new("service", op, v) else {
                    continue;
                };
                let text = original.to_string();
                let back = Matcher::parse(&text).unwrap();
                assert_eq!(back, original, "{op:?} {v:?} written as {text:?}");
            }
        }
        let stored = Matcher::new("service", MatchOp::Equal, "~.*")
            .unwrap()
            .to_string();
        assert!(!m(&stored).matches(&incident(Some("web"), json!({}))));
    }

    #[test]
    fn rejects_bad_matchers_with_what_was_expected() {
        assert!(matches!(
            Matcher::parse("justaname"),
            Err(Error::MatcherSyntax { .. })
        ));
        assert!(matches!(
            Matcher::parse("=value"),
            Err(Error::MatcherName { .. })
        ));
        assert!(matches!(
            Matcher::parse("a b=c"),
            Err(Error::MatcherName { .. })
        ));
        let e = Matcher::parse("x=~(unclosed").unwrap_err();
        assert!(matches!(e, Error::Regex { .. }), "{e}");
        assert!(e.to_string().contains("x=~(unclosed"), "{e}");
        assert!(matches!(
            Matcher::parse("x!value"),
            Err(Error::MatcherSyntax { .. })
        ));
    }

    #[test]
    fn matches_alertmanager_labels_pagerduty_details_and_own_fields() {
        let am = incident(
            Some("db"),
            json!({"labels": {"alertname": "DiskFull", "instance": "db12:9100", "severity": "page"}, "annotations": {}}),
        );
        assert!(m("alertname=DiskFull").matches(&am));
        assert!(m("instance=~db[0-9]+:9100").matches(&am));
        assert!(!m("instance=~db1").matches(&am), "regex is anchored");
        assert!(m("labels.severity=page").matches(&am));
        assert!(
            m("severity=critical").matches(&am),
            "severity is the incident's"
        );
        assert!(m("service=db").matches(&am));
        assert!(m("source=db1").matches(&am));
        let pd = incident(
            None,
            json!({"custom_details": {"env": "prod", "cpu": 97}, "component": "api"}),
        );
        assert!(m("env=prod").matches(&pd));
        assert!(m("cpu=97").matches(&pd), "numbers compare as text");
        assert!(m("component=api").matches(&pd), "top-level detail");
        assert!(m("custom_details.env!=staging").matches(&pd));
        let own = incident(Some("web"), json!({"used": "97%"}));
        assert!(m("used=97%").matches(&own));
    }

    #[test]
    fn a_missing_value_is_the_empty_string() {
        let inc = incident(None, Value::Null);
        assert!(m("team=").matches(&inc));
        assert!(m("team!=db").matches(&inc));
        assert!(!m("team=db").matches(&inc));
        assert!(m("team!~.+").matches(&inc));
        assert!(!m("service=db").matches(&inc));
    }

    fn silence(id: i64, service: Option<&str>, matchers: &[&str], from: &str, to: &str) -> Silence {
        Silence::new(
            SilenceId::Runtime(id),
            service.map(str::to_string),
            matchers.iter().map(|s| m(s)).collect(),
            utc(from),
            utc(to),
            "maintenance".into(),
        )
        .unwrap()
    }

    #[test]
    fn every_condition_must_hold_and_the_window_is_half_open() {
        let inc = incident(Some("db"), json!({"labels": {"env": "prod"}}));
        let s = silence(
            1,
            Some("db"),
            &["env=prod"],
            "2026-11-22T03:00:00Z",
            "2026-11-22T05:00:00Z",
        );
        assert!(s.matches(&inc));
        assert!(!s.active_at(utc("2026-11-22T02:59:59Z")));
        assert!(s.active_at(utc("2026-11-22T03:00:00Z")));
        assert!(s.active_at(utc("2026-11-22T04:59:59Z")));
        assert!(!s.active_at(utc("2026-11-22T05:00:00Z")), "ends_at is out");
        let other_service = incident(Some("web"), json!({"labels": {"env": "prod"}}));
        assert!(!s.matches(&other_service));
        let other_env = incident(Some("db"), json!({"labels": {"env": "dev"}}));
        assert!(!s.matches(&other_env));
    }

    #[test]
    fn holding_picks_the_matching_active_silence_that_ends_last() {
        let inc = incident(Some("db"), Value::Null);
        let list = vec![
            silence(
                1,
                Some("db"),
                &[],
                "2026-11-22T03:00:00Z",
                "2026-11-22T04:00:00Z",
            ),
            silence(
                2,
                None,
                &["service=~d.*"],
                "2026-11-22T03:30:00Z",
                "2026-11-22T06:00:00Z",
            ),
            silence(
                3,
                Some("web"),
                &[],
                "2026-11-22T03:00:00Z",
                "2026-11-22T09:00:00Z",
            ),
            silence(
                4,
                Some("db"),
                &[],
                "2026-11-22T07:00:00Z",
                "2026-11-22T09:00:00Z",
            ),
        ];
        let id = |t: &str| holding(&list, &inc, utc(t)).map(|s| s.id.clone());
        assert_eq!(id("2026-11-22T02:00:00Z"), None);
        assert_eq!(id("2026-11-22T03:10:00Z"), Some(SilenceId::Runtime(1)));
        assert_eq!(id("2026-11-22T03:40:00Z"), Some(SilenceId::Runtime(2)));
        assert_eq!(id("2026-11-22T06:30:00Z"), None, "the gap pages");
        assert_eq!(id("2026-11-22T07:00:00Z"), Some(SilenceId::Runtime(4)));
    }

    #[test]
    fn a_silence_needs_a_condition_and_a_window() {
        let t = utc("2026-11-22T03:00:00Z");
        assert_eq!(
            Silence::new(SilenceId::Runtime(1), None, vec![], t, t, String::new()),
            Err(Error::MatchesEverything)
        );
        assert_eq!(
            Silence::new(
                SilenceId::Runtime(1),
                Some(String::new()),
                vec![],
                t,
                t + chrono::Duration::hours(1),
                String::new()
            ),
            Err(Error::MatchesEverything),
            "an empty service is no condition"
        );
        let end = t + chrono::Duration::hours(1);
        for everything in [&["foo="][..], &["severity=~.*"], &["severity!=info", "x="]] {
            let matchers = everything
                .iter()
                .map(|m| Matcher::parse(m).unwrap())
                .collect();
            assert_eq!(
                Silence::new(SilenceId::Runtime(1), None, matchers, t, end, String::new()),
                Err(Error::MatchesEverything),
                "{everything:?}"
            );
        }
        let some: Vec<Matcher> = ["severity=~.+", "foo="]
            .iter()
            .map(|m| Matcher::parse(m).unwrap())
            .collect();
        assert!(Silence::new(SilenceId::Runtime(1), None, some, t, end, String::new()).is_ok());
        assert!(matches!(
            Silence::new(
                SilenceId::Runtime(1),
                Some("db".into()),
                vec![],
                t,
                t,
                String::new()
            ),
            Err(Error::EmptyWindow { .. })
        ));
    }

    #[test]
    fn a_weekly_window_keeps_its_local_times_across_dst() {
        // Sundays 02:30-03:30 Berlin, from 2026-03-22 (CET).
        let local = |s: &str| crate::schedule::parse_local(s).unwrap();
        let mut s = silence(
            1,
            Some("db"),
            &[],
            "2026-03-22T01:30:00Z",
            "2026-03-22T02:30:00Z",
        );
        s.id = SilenceId::Config("weekly".into());
        s.repeat = Some(Recurrence {
            every_days: 7,
            time_zone: chrono_tz::Europe::Berlin,
            local_start: local("2026-03-22T02:30"),
            local_end: local("2026-03-22T03:30"),
        });
        let window = |now: &str| {
            s.in_force(utc(now))
                .map(|x| (x.starts_at.to_rfc3339(), x.ends_at.to_rfc3339()))
        };
        let w = |a: &str, b: &str| Some((utc(a).to_rfc3339(), utc(b).to_rfc3339()));
        assert_eq!(window("2026-03-22T01:29:59Z"), None);
        assert_eq!(
            window("2026-03-22T02:00:00Z"),
            w("2026-03-22T01:30:00Z", "2026-03-22T02:30:00Z")
        );
        assert_eq!(window("2026-03-22T02:30:00Z"), None, "end is out");
        // 2026-03-29: 02:30 falls in the spring gap, so the window opens at 03:00 CEST (01:00Z)
        // and ends at 03:30 CEST: half an hour long.
        assert_eq!(window("2026-03-29T00:59:59Z"), None);
        assert_eq!(
            window("2026-03-29T01:00:00Z"),
            w("2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z")
        );
        // A summer Sunday: 02:30-03:30 CEST.
        assert_eq!(
            window("2026-07-05T00:45:00Z"),
            w("2026-07-05T00:30:00Z", "2026-07-05T01:30:00Z")
        );
        assert_eq!(window("2026-07-06T00:45:00Z"), None, "a Monday");
        // 2026-10-25: 02:30 happens twice; the first (CEST, 00:30Z) opens it, 03:30 CET closes
        // it: two hours.
        assert_eq!(
            window("2026-10-25T02:00:00Z"),
            w("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z")
        );
        // Listing shows the next occurrence while none is in force, and none before the first.
        assert_eq!(
            s.current(utc("2026-03-23T00:00:00Z")).starts_at,
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            s.current(utc("2026-01-01T00:00:00Z")).starts_at,
            utc("2026-03-22T01:30:00Z")
        );
        assert_eq!(window("2026-03-15T01:45:00Z"), None, "not before the first");
    }

    #[test]
    fn the_timeline_text_names_the_silence_and_its_end() {
        let s = silence(
            3,
            Some("db"),
            &["env=prod"],
            "2026-11-22T03:00:00Z",
            "2026-11-22T05:00:00Z",
        );
        assert_eq!(
            s.describe(),
            "silenced by #3 until 2026-11-22 05:00:00 UTC (service=db, env=prod): maintenance; nobody is paged until then"
        );
        assert_eq!(
            SilenceId::Config("db-upgrade".into()).key(),
            "config:db-upgrade"
        );
        assert_eq!(SilenceId::parse_runtime("#12"), Some(12));
    }
}
