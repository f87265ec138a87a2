//! Opsgenie Alert API v2 bodies, as pure functions: create, acknowledge/close/add-note, and the
//! `identifier`/`identifierType` pair that names an alert.
//!
//! Source of the field names, limits and defaults: Opsgenie's "Alert API" reference,
//! <https://docs.opsgenie.com/docs/alert-api> (Create Alert: `message` mandatory, 130 characters;
//! `alias` 512; `description` 15000; `tags` 20; `details` a map of strings; `priority` P1..P5,
//! default P3; `user`, `note`, `source`, `entity`, `actions`, `responders`, `visibleTo`.
//! Acknowledge / Close / Add Note: body `user`, `source`, `note`; query
//! `identifierType=id|alias|tiny`, default `id`), checked against what real clients send
//! (tests/fixtures/opsgenie: the Opsgenie Python SDK 2.1.5 and Alertmanager 0.25's notifier).
//!
//! pagerbox has no Opsgenie alert ids: an alert is an incident, so `id` and `tiny` both name the
//! incident number (`42`), and `alias` is the incident's dedup key.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{non_blank, ParsedAlert};
use crate::incident::{IncidentId, Severity};
use crate::store::AlertAction;

/// Opsgenie's limit on `message`; longer messages are cut (the whole text is kept in details).
pub const MAX_MESSAGE_CHARS: usize = 130;
/// Opsgenie's limit on `alias`; a longer alias is refused, since cutting it would change which
/// alert it names.
pub const MAX_ALIAS_CHARS: usize = 512;
/// Opsgenie's limit on `description`; longer ones are cut.
pub const MAX_DESCRIPTION_CHARS: usize = 15_000;
/// Opsgenie's limit on the number of `tags`; extra tags are dropped.
pub const MAX_TAGS: usize = 20;

/// Why an Opsgenie body cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsgenieError {
    /// Not JSON (answered 400): says where it broke.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON, but a field is wrong (answered 422, as Opsgenie does): field name -> message.
    #[error("invalid request: {0:?}")]
    Invalid(BTreeMap<String, String>),
}

impl OpsgenieError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        OpsgenieError::Invalid(BTreeMap::from([(field.to_string(), message.into())]))
    }
}

/// A serde error on a syntactically valid body (wrong type of a field) is a validation error
/// (422); broken JSON is 400.
fn json_error(e: serde_json::Error) -> OpsgenieError {
    match e.classify() {
        serde_json::error::Category::Data => {
            OpsgenieError::invalid("body", format!("Request body is not processable: {e}"))
        }
        _ => OpsgenieError::Json(e.to_string()),
    }
}

/// Opsgenie's five priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

impl Priority {
    /// Reads `P1`..`P5` (case-insensitive).
    pub fn parse(s: &str) -> Option<Priority> {
        match s.trim().to_ascii_uppercase().as_str() {
            "P1" => Some(Priority::P1),
            "P2" => Some(Priority::P2),
            "P3" => Some(Priority::P3),
            "P4" => Some(Priority::P4),
            "P5" => Some(Priority::P5),
            _ => None,
        }
    }

    /// The name Opsgenie uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
            Priority::P5 => "P5",
        }
    }

    /// The pagerbox severity: P1 (critical) -> critical, P2 (high) -> error, P3 (moderate, the
    /// default) -> warning, P4 (low) and P5 (informational) -> info. Routes' `urgency` tables
    /// then decide how each pages, as for any other alert.
    pub fn severity(self) -> Severity {
        match self {
            Priority::P1 => Severity::Critical,
            Priority::P2 => Severity::Error,
            Priority::P3 => Severity::Warning,
            Priority::P4 | Priority::P5 => Severity::Info,
        }
    }

    /// Whether an alert of this priority pages anyone. P5 is Opsgenie's "informational": it is
    /// recorded as an incident but pages nobody.
    pub fn pages(self) -> bool {
        self != Priority::P5
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCreate {
    message: Option<String>,
    alias: Option<String>,
    description: Option<String>,
    priority: Option<String>,
    source: Option<String>,
    entity: Option<String>,
    user: Option<String>,
    note: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    details: Map<String, Value>,
    responders: Option<Value>,
    visible_to: Option<Value>,
}

/// A create-alert request, read.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateAlert {
    /// The alert: `alias` is its dedup key (`None`: pagerbox derives one from source and
    /// message, so identical alerts dedup), `message` its summary, `entity` its service.
    /// `routing_key` is left `None`: the API key decides the route, not the body.
    pub alert: ParsedAlert,
    pub priority: Priority,
    /// Who sent it (`user`), for the timeline.
    pub user: Option<String>,
    /// `note`: added to the incident's timeline.
    pub note: Option<String>,
}

fn cut(s: &str, max: usize) -> (String, bool) {
    if s.chars().count() <= max {
        (s.to_string(), false)
    } else {
        (s.chars().take(max).collect(), true)
    }
}

/// Parses a create-alert body (`POST /v2/alerts`).
///
/// Checks what Opsgenie checks: `message` present and not blank, `priority` one of P1..P5,
/// `alias` at most 512 characters. Lengths Opsgenie limits are cut rather than refused
/// (`message` to 130, `description` to 15000, `tags` to 20), like pagerbox's other formats.
/// `details` values that are not strings are kept as their JSON text. `description`,
/// `priority`, `tags`, `details`, `entity`, `actions`, `responders` and `visibleTo` are kept
/// in the incident's details.
pub fn parse_create(body: &[u8]) -> Result<CreateAlert, OpsgenieError> {
    let raw: RawCreate = serde_json::from_slice(body).map_err(json_error)?;
    let mut errors = BTreeMap::new();
    let message = non_blank(raw.message);
    if message.is_none() {
        errors.insert(
            "message".to_string(),
            "Message can not be empty.".to_string(),
        );
    }
    let priority = read_priority(raw.priority.as_deref(), &mut errors);
    let alias = non_blank(raw.alias);
    if alias
        .as_ref()
        .is_some_and(|a| a.chars().count() > MAX_ALIAS_CHARS)
    {
        errors.insert(
            "alias".to_string(),
            format!("Alias can not be longer than {MAX_ALIAS_CHARS} characters."),
        );
    }
    if !errors.is_empty() {
        return Err(OpsgenieError::Invalid(errors));
    }
    let message = message.unwrap_or_default();
    let (summary, message_cut) = cut(&message, MAX_MESSAGE_CHARS);
    let mut details = Map::new();
    if message_cut {
        details.insert("message".into(), Value::String(message));
    }
    if let Some(d) = non_blank(raw.description) {
        details.insert(
            "description".into(),
            Value::String(cut(&d, MAX_DESCRIPTION_CHARS).0),
        );
    }
    details.insert("priority".into(), Value::String(priority.as_str().into()));
    let tags: Vec<Value> = raw
        .tags
        .into_iter()
        .take(MAX_TAGS)
        .map(Value::String)
        .collect();
    if !tags.is_empty() {
        details.insert("tags".into(), Value::Array(tags));
    }
    if !raw.details.is_empty() {
        details.insert("details".into(), Value::Object(as_text(raw.details)));
    }
    let entity = non_blank(raw.entity);
    if let Some(e) = &entity {
        details.insert("entity".into(), Value::String(e.clone()));
    }
    keep_actions_and_recipients(&mut details, raw.actions, raw.responders, raw.visible_to);
    Ok(CreateAlert {
        alert: ParsedAlert {
            action: AlertAction::Trigger,
            dedup_key: alias,
            summary,
            severity: priority.severity(),
            source: non_blank(raw.source),
            service: entity,
            details: Value::Object(details),
            links: vec![],
            routing_key: None,
        },
        priority,
        user: non_blank(raw.user),
        note: non_blank(raw.note),
    })
}

/// `actions`, `responders` and `visibleTo`: kept as data (pagerbox pages by its own routes).
fn keep_actions_and_recipients(
    details: &mut Map<String, Value>,
    actions: Vec<String>,
    responders: Option<Value>,
    visible_to: Option<Value>,
) {
    if !actions.is_empty() {
        details.insert(
            "actions".into(),
            Value::Array(actions.into_iter().map(Value::String).collect()),
        );
    }
    for (k, v) in [("responders", responders), ("visibleTo", visible_to)] {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            details.insert(k.into(), v);
        }
    }
}

/// `priority`: P1..P5, P3 when absent; anything else is reported and read as P3.
fn read_priority(priority: Option<&str>, errors: &mut BTreeMap<String, String>) -> Priority {
    match priority.map(str::trim) {
        None | Some("") => Priority::P3,
        Some(p) => Priority::parse(p).unwrap_or_else(|| {
            errors.insert(
                "priority".to_string(),
                format!("Priority {p:?} is not one of P1, P2, P3, P4, P5."),
            );
            Priority::P3
        }),
    }
}

/// `details` as Opsgenie keeps them: values that are not strings become their JSON text.
fn as_text(details: Map<String, Value>) -> Map<String, Value> {
    details
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => Value::String(s),
                other => Value::String(other.to_string()),
            };
            (k, v)
        })
        .collect()
}

/// The body of acknowledge, close and add-note: all optional, except `note` for add-note.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ActionBody {
    /// Display name of who did it; becomes the actor on the timeline.
    pub user: Option<String>,
    /// Where it came from (Alertmanager sends its alert URL here).
    pub source: Option<String>,
    /// A note added to the timeline with the action.
    pub note: Option<String>,
}

/// Parses the body of acknowledge/close (`note_required = false`) or add-note
/// (`note_required = true`). An empty body is an empty [`ActionBody`].
pub fn parse_action(body: &[u8], note_required: bool) -> Result<ActionBody, OpsgenieError> {
    let mut b: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(body).map_err(json_error)?
    };
    b.user = non_blank(b.user);
    b.source = non_blank(b.source);
    b.note = non_blank(b.note);
    if note_required && b.note.is_none() {
        return Err(OpsgenieError::invalid("note", "Note can not be empty."));
    }
    Ok(b)
}

/// Which alert a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertRef {
    /// `identifierType=alias`: the incident with this dedup key (the open one, else the latest).
    Alias(String),
    /// `identifierType=id` or `tiny`: the incident with this number.
    Incident(IncidentId),
    /// An id or tiny id that is not a pagerbox incident number: no such alert.
    Unknown(String),
}

/// Reads `identifier` with the `identifierType` query parameter (default `id`, as in
/// Opsgenie). `id` and `tiny` both take the incident number, with or without a leading `#`.
pub fn alert_ref(
    identifier: &str,
    identifier_type: Option<&str>,
) -> Result<AlertRef, OpsgenieError> {
    let kind = identifier_type.map(str::trim).unwrap_or("id");
    match kind.to_ascii_lowercase().as_str() {
        "alias" => Ok(AlertRef::Alias(identifier.to_string())),
        "id" | "tiny" | "" => Ok(identifier
            .trim()
            .trim_start_matches('#')
            .parse::<IncidentId>()
            .ok()
            .filter(|n| *n > 0)
            .map(AlertRef::Incident)
            .unwrap_or_else(|| AlertRef::Unknown(identifier.to_string()))),
        other => Err(OpsgenieError::invalid(
            "identifierType",
            format!("Identifier type {other:?} is not one of id, alias, tiny."),
        )),
    }
}

/// The key from an `Authorization: GenieKey <key>` header value (scheme case-insensitive).
pub fn genie_key(authorization: &str) -> Option<&str> {
    let (scheme, key) = authorization.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("GenieKey") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from the Opsgenie Python SDK 2.1.5 and Alertmanager 0.25 (tests/fixtures/opsgenie).
    const SDK_CREATE: &[u8] =
        include_bytes!("../../../tests/fixtures/opsgenie/sdk-python-create.json");
    const SDK_ACK: &[u8] =
        include_bytes!("../../../tests/fixtures/opsgenie/sdk-python-acknowledge.json");
    const SDK_NOTE: &[u8] = include_bytes!("../../../tests/fixtures/opsgenie/sdk-python-note.json");
    const AM_CREATE: &[u8] =
        include_bytes!("../../../tests/fixtures/opsgenie/alertmanager-opsgenie-create.json");
    const AM_CLOSE: &[u8] =
        include_bytes!("../../../tests/fixtures/opsgenie/alertmanager-opsgenie-close.json");
    // The sample request of "Create Alert" in Opsgenie's Alert API reference.
    const DOC_CREATE: &[u8] =
        include_bytes!("../../../tests/fixtures/opsgenie/docs-create-alert.json");

    #[test]
    fn sdk_create_maps_every_field() {
        let c = parse_create(SDK_CREATE).unwrap();
        assert_eq!(c.priority, Priority::P1);
        assert_eq!(c.alert.severity, Severity::Critical);
        assert_eq!(c.alert.dedup_key.as_deref(), Some("disk-db1"));
        assert_eq!(c.alert.summary, "Disk almost full on db1");
        assert_eq!(c.alert.source.as_deref(), Some("sdk-test"));
        assert_eq!(c.alert.service.as_deref(), Some("db1"));
        assert_eq!(c.user.as_deref(), Some("monitor"));
        assert_eq!(c.note.as_deref(), Some("created from the SDK"));
        let d = &c.alert.details;
        assert_eq!(d["description"], "/var on db1 is 97% full");
        assert_eq!(d["tags"], serde_json::json!(["db", "disk"]));
        assert_eq!(d["details"]["used"], "97%");
        assert_eq!(d["entity"], "db1");
        assert_eq!(d["actions"], serde_json::json!(["Restart"]));
        assert_eq!(d["priority"], "P1");
        assert!(d.get("message").is_none(), "short messages are not copied");
    }

    #[test]
    fn alertmanager_create_uses_its_alias_and_priority() {
        let c = parse_create(AM_CREATE).unwrap();
        assert_eq!(
            c.alert.dedup_key.as_deref(),
            Some("17c4e445d234645c9e547ff6d32a864af0ebdadcd1902771c24c8d366637ff41")
        );
        assert_eq!(c.priority, Priority::P2);
        assert_eq!(c.alert.severity, Severity::Error);
        assert_eq!(
            c.alert.summary,
            "[FIRING:1] DiskFull (db1:9100 node critical)"
        );
        assert_eq!(c.alert.details["details"]["instance"], "db1:9100");
        assert!(c.alert.details["description"]
            .as_str()
            .unwrap()
            .starts_with("Filesystem /var on db1"));
        assert_eq!(c.alert.service, None);
    }

    #[test]
    fn documented_sample_is_accepted() {
        let c = parse_create(DOC_CREATE).unwrap();
        assert_eq!(c.alert.summary, "An example alert message");
        assert_eq!(
            c.alert.dedup_key.as_deref(),
            Some("Life is too short for no alias")
        );
        assert_eq!(c.priority, Priority::P1);
        assert_eq!(c.alert.service.as_deref(), Some("An example entity"));
        assert_eq!(c.alert.details["details"]["key1"], "value1");
        assert!(c.alert.details["responders"].is_array());
        assert!(c.alert.details["visibleTo"].is_array());
        assert_eq!(c.note, None);
    }

    #[test]
    fn priority_maps_to_severity_and_p5_does_not_page() {
        let cases = [
            ("P1", Severity::Critical, true),
            ("p2", Severity::Error, true),
            ("P3", Severity::Warning, true),
            ("P4", Severity::Info, true),
            ("P5", Severity::Info, false),
        ];
        for (p, sev, pages) in cases {
            let body = format!(r#"{{"message":"m","priority":"{p}"}}"#);
            let c = parse_create(body.as_bytes()).unwrap();
            assert_eq!((c.alert.severity, c.priority.pages()), (sev, pages), "{p}");
        }
        let c = parse_create(br#"{"message":"m"}"#).unwrap();
        assert_eq!(c.priority, Priority::P3, "Opsgenie's default");
    }

    #[test]
    fn validation_errors_name_the_field() {
        let Err(OpsgenieError::Invalid(e)) = parse_create(br#"{"message":"  ","priority":"P9"}"#)
        else {
            panic!("expected a validation error")
        };
        assert_eq!(e["message"], "Message can not be empty.");
        assert!(e["priority"].contains("P9"));
        let long_alias = format!(r#"{{"message":"m","alias":"{}"}}"#, "a".repeat(513));
        assert!(matches!(
            parse_create(long_alias.as_bytes()),
            Err(OpsgenieError::Invalid(e)) if e.contains_key("alias")
        ));
        assert!(matches!(
            parse_create(br#"{"message":"m""#),
            Err(OpsgenieError::Json(_))
        ));
        assert!(matches!(
            parse_create(br#"{"message":"m","tags":"x"}"#),
            Err(OpsgenieError::Invalid(e)) if e.contains_key("body")
        ));
    }

    #[test]
    fn limits_cut_long_fields() {
        let body = serde_json::json!({
            "message": "m".repeat(200),
            "description": "d".repeat(16_000),
            "tags": (0..30).map(|i| format!("t{i}")).collect::<Vec<_>>(),
            "details": {"n": 3, "s": "x"},
        });
        let c = parse_create(body.to_string().as_bytes()).unwrap();
        assert_eq!(c.alert.summary.chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(c.alert.details["message"].as_str().unwrap().len(), 200);
        assert_eq!(
            c.alert.details["description"].as_str().unwrap().len(),
            MAX_DESCRIPTION_CHARS
        );
        assert_eq!(c.alert.details["tags"].as_array().unwrap().len(), MAX_TAGS);
        assert_eq!(c.alert.details["details"]["n"], "3");
    }

    #[test]
    fn action_bodies() {
        let a = parse_action(SDK_ACK, false).unwrap();
        assert_eq!(a.user.as_deref(), Some("alice"));
        assert_eq!(a.note.as_deref(), Some("mine"));
        let close = parse_action(AM_CLOSE, false).unwrap();
        assert_eq!(
            close.source.as_deref(),
            Some("http://vm:19093/#/alerts?receiver=og")
        );
        assert_eq!(close.user, None);
        assert_eq!(parse_action(b"", false).unwrap(), ActionBody::default());
        let n = parse_action(SDK_NOTE, true).unwrap();
        assert_eq!(n.note.as_deref(), Some("looking at it"));
        assert!(matches!(
            parse_action(br#"{"user":"a"}"#, true),
            Err(OpsgenieError::Invalid(e)) if e.contains_key("note")
        ));
    }

    #[test]
    fn identifiers() {
        assert_eq!(alert_ref("42", None).unwrap(), AlertRef::Incident(42));
        assert_eq!(
            alert_ref("#42", Some("tiny")).unwrap(),
            AlertRef::Incident(42)
        );
        assert_eq!(
            alert_ref("disk-db1", Some("alias")).unwrap(),
            AlertRef::Alias("disk-db1".into())
        );
        assert_eq!(
            alert_ref("8743a1b2-11da-480e-8493-744660987bef", Some("id")).unwrap(),
            AlertRef::Unknown("8743a1b2-11da-480e-8493-744660987bef".into())
        );
        assert!(alert_ref("1", Some("name")).is_err());
    }

    #[test]
    fn genie_key_header() {
        assert_eq!(genie_key("GenieKey abc-123"), Some("abc-123"));
        assert_eq!(genie_key("geniekey  abc "), Some("abc"));
        assert_eq!(genie_key("Bearer abc"), None);
        assert_eq!(genie_key("GenieKey "), None);
    }
}
