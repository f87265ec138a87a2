//! Splunk On-Call (VictorOps) REST endpoint bodies, as a pure function.
//!
//! Source of the fields: Splunk On-Call's "REST Endpoint Integration Guide"
//! (<https://help.victorops.com/knowledge-base/rest-endpoint-integration-guide/>): only
//! `message_type` is required (CRITICAL, WARNING, ACKNOWLEDGEMENT, INFO, RECOVERY; the guide's own
//! example writes `critical`, so case does not matter); `entity_id` names the alerting entity and
//! rolls alerts up into one incident (a random one is assigned and returned when absent);
//! `entity_display_name`, `state_message`, `state_start_time` and `timestamp` (seconds since the
//! epoch), `monitoring_tool`, `entity_is_host`, `ack_msg`, `ack_author`; any other field is
//! kept as custom data. Checked against Alertmanager 0.25's `victorops_configs` notifier
//! (tests/fixtures/victorops).

use serde_json::{Map, Value};

use super::{truncate, FormatError, ParsedAlert};
use crate::incident::Severity;
use crate::store::AlertAction;

/// What a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Triggers an incident (severity critical).
    Critical,
    /// Triggers an incident (severity warning; the route's urgency decides how it pages).
    Warning,
    /// A timeline entry that pages nobody: a note on the entity's open incident, else kept as a
    /// change event (it never opens an incident, so a later CRITICAL still pages).
    Info,
    /// Acknowledges the entity's open incident.
    Acknowledgement,
    /// Resolves the entity's open incident.
    Recovery,
}

impl MessageType {
    /// Reads a message type, case-insensitively.
    pub fn parse(s: &str) -> Option<MessageType> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" => Some(MessageType::Critical),
            "WARNING" => Some(MessageType::Warning),
            "INFO" => Some(MessageType::Info),
            "ACKNOWLEDGEMENT" => Some(MessageType::Acknowledgement),
            "RECOVERY" => Some(MessageType::Recovery),
            _ => None,
        }
    }
}

/// One REST endpoint message, read.
#[derive(Debug, Clone, PartialEq)]
pub struct VictorOpsAlert {
    pub message_type: MessageType,
    /// The alert: `entity_id` is its dedup key (`None` when the body had none: the caller
    /// assigns one), the summary is `entity_display_name`, else `state_message`, else
    /// `entity_id`; `monitoring_tool` is the source; `routing_key` the one from the URL.
    pub alert: ParsedAlert,
    /// `ack_author`, for the timeline.
    pub ack_author: Option<String>,
    /// `ack_msg` (acknowledgements) or `state_message` (INFO): text for the timeline.
    pub note: Option<String>,
}

/// A string field; numbers and booleans are read as their text (senders template these).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Seconds since the epoch (number or numeric string) as RFC 3339, for people reading details.
fn epoch_text(v: &Value) -> Option<String> {
    let secs = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }?;
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339())
}

/// Parses a REST endpoint body. `routing_key` is the last path segment of the URL (the route).
///
/// Refused (400): a body that is not a JSON object, a missing or unknown `message_type`, and an
/// ACKNOWLEDGEMENT or RECOVERY without `entity_id` (it could not name an incident).
pub fn parse(body: &[u8], routing_key: Option<&str>) -> Result<VictorOpsAlert, FormatError> {
    let mut fields: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| FormatError::Json(e.to_string()))?;
    let mut take = |k: &str| fields.remove(k);
    let message_type = message_type(take("message_type"))?;
    let entity_id = take("entity_id").as_ref().and_then(text);
    if entity_id.is_none()
        && matches!(
            message_type,
            MessageType::Acknowledgement | MessageType::Recovery
        )
    {
        return Err(FormatError::Invalid(vec![
            "entity_id is required to acknowledge or recover an incident".into(),
        ]));
    }
    let display_name = take("entity_display_name").as_ref().and_then(text);
    let state_message = take("state_message").as_ref().and_then(text);
    let monitoring_tool = take("monitoring_tool").as_ref().and_then(text);
    let ack_author = take("ack_author").as_ref().and_then(text);
    let ack_msg = take("ack_msg").as_ref().and_then(text);
    // The URL's routing key decides the route; one in the body is only kept as data.
    let mut details = Map::new();
    if let Some(s) = &state_message {
        details.insert("state_message".into(), Value::String(s.clone()));
    }
    for key in ["state_start_time", "timestamp"] {
        if let Some(v) = take(key) {
            if let Some(t) = epoch_text(&v) {
                details.insert(format!("{key}_utc"), Value::String(t));
            }
            details.insert(key.into(), v);
        }
    }
    if let Some(t) = &monitoring_tool {
        details.insert("monitoring_tool".into(), Value::String(t.clone()));
    }
    if !fields.is_empty() {
        details.extend(fields);
    }
    let summary = display_name
        .clone()
        .or_else(|| state_message.clone())
        .or_else(|| entity_id.clone())
        .unwrap_or_else(|| "Splunk On-Call alert".into());
    let (action, severity) = action_and_severity(message_type);
    let note = match message_type {
        MessageType::Acknowledgement => ack_msg,
        MessageType::Info => state_message.clone().or_else(|| display_name.clone()),
        _ => None,
    };
    Ok(VictorOpsAlert {
        message_type,
        alert: ParsedAlert {
            action,
            dedup_key: entity_id,
            summary: truncate(&summary),
            severity,
            source: monitoring_tool.or_else(|| Some("victorops".into())),
            service: None,
            details: Value::Object(details),
            links: vec![],
            routing_key: routing_key
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string),
        },
        ack_author,
        note,
    })
}

/// `message_type`: required, one of the five Splunk On-Call knows.
fn message_type(v: Option<Value>) -> Result<MessageType, FormatError> {
    match v {
        None => Err(FormatError::Invalid(vec![
            "message_type is required (CRITICAL, WARNING, INFO, ACKNOWLEDGEMENT, RECOVERY)".into(),
        ])),
        Some(v) => {
            let s = text(&v).unwrap_or_default();
            MessageType::parse(&s).ok_or_else(|| {
                FormatError::Invalid(vec![format!(
                    "message_type {s:?} is not one of CRITICAL, WARNING, INFO, ACKNOWLEDGEMENT, RECOVERY"
                )])
            })
        }
    }
}

/// What each message type does here: the three alert levels trigger, the other two act on the
/// open incident.
fn action_and_severity(message_type: MessageType) -> (AlertAction, Severity) {
    match message_type {
        MessageType::Critical => (AlertAction::Trigger, Severity::Critical),
        MessageType::Warning => (AlertAction::Trigger, Severity::Warning),
        MessageType::Info => (AlertAction::Trigger, Severity::Info),
        MessageType::Acknowledgement => (AlertAction::Acknowledge, Severity::Info),
        MessageType::Recovery => (AlertAction::Resolve, Severity::Info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured byte-for-byte from Alertmanager 0.25's victorops notifier (tests/fixtures).
    const AM_CRITICAL: &[u8] =
        include_bytes!("../../../tests/fixtures/victorops/alertmanager-victorops-critical.json");
    const AM_RECOVERY: &[u8] =
        include_bytes!("../../../tests/fixtures/victorops/alertmanager-victorops-recovery.json");
    // The example body of Splunk On-Call's REST Endpoint Integration Guide.
    const DOC_CRITICAL: &[u8] =
        include_bytes!("../../../tests/fixtures/victorops/docs-critical.json");

    #[test]
    fn alertmanager_critical_and_recovery_share_the_entity() {
        let c = parse(AM_CRITICAL, Some("vo-route")).unwrap();
        assert_eq!(c.message_type, MessageType::Critical);
        assert_eq!(c.alert.action, AlertAction::Trigger);
        assert_eq!(c.alert.severity, Severity::Critical);
        assert_eq!(
            c.alert.summary,
            "[FIRING:1] HighLoad (web1:9100 node warning vo)"
        );
        assert_eq!(c.alert.source.as_deref(), Some("Alertmanager"));
        assert_eq!(c.alert.routing_key.as_deref(), Some("vo-route"));
        assert!(c.alert.details["state_message"]
            .as_str()
            .unwrap()
            .starts_with("load15 above 8"));
        let r = parse(AM_RECOVERY, Some("vo-route")).unwrap();
        assert_eq!(r.message_type, MessageType::Recovery);
        assert_eq!(r.alert.action, AlertAction::Resolve);
        assert_eq!(r.alert.dedup_key, c.alert.dedup_key);
        assert_eq!(
            c.alert.dedup_key.as_deref(),
            Some("befc1ba12ebba1e7ed34b47763d3db4825adcc6a89c10b0c0949a5a8eafae19c")
        );
    }

    #[test]
    fn documented_example() {
        let c = parse(DOC_CRITICAL, Some("database")).unwrap();
        assert_eq!(c.message_type, MessageType::Critical);
        assert_eq!(
            c.alert.dedup_key.as_deref(),
            Some("disk space/db01.mycompany.com")
        );
        assert_eq!(c.alert.summary, "Critically Low Disk Space on DB01");
        assert_eq!(c.alert.details["state_start_time"], 1459291320);
        assert_eq!(
            c.alert.details["state_start_time_utc"],
            "2016-03-29T22:42:00+00:00"
        );
    }

    #[test]
    fn message_types_are_case_insensitive() {
        for (t, want) in [
            ("critical", MessageType::Critical),
            ("Warning", MessageType::Warning),
            ("INFO", MessageType::Info),
            ("acknowledgement", MessageType::Acknowledgement),
            ("RECOVERY", MessageType::Recovery),
        ] {
            let body = format!(r#"{{"message_type":"{t}","entity_id":"e"}}"#);
            assert_eq!(parse(body.as_bytes(), None).unwrap().message_type, want);
        }
    }

    #[test]
    fn only_message_type_is_required_to_trigger() {
        let c = parse(br#"{"message_type":"critical"}"#, None).unwrap();
        assert_eq!(c.alert.dedup_key, None, "the caller assigns one");
        assert_eq!(c.alert.summary, "Splunk On-Call alert");
        assert_eq!(c.alert.routing_key, None);
    }

    #[test]
    fn ack_and_info_carry_their_text_and_custom_fields_are_kept() {
        let a = parse(
            br#"{"message_type":"ACKNOWLEDGEMENT","entity_id":"e","ack_author":"alice","ack_msg":"on it"}"#,
            None,
        )
        .unwrap();
        assert_eq!(a.alert.action, AlertAction::Acknowledge);
        assert_eq!(a.ack_author.as_deref(), Some("alice"));
        assert_eq!(a.note.as_deref(), Some("on it"));
        let i = parse(
            br#"{"message_type":"INFO","entity_id":"e","state_message":"deploy done","build":42}"#,
            None,
        )
        .unwrap();
        assert_eq!(i.note.as_deref(), Some("deploy done"));
        assert_eq!(i.alert.details["build"], 42);
    }

    #[test]
    fn refusals() {
        for body in [
            &br#"{"entity_id":"e"}"#[..],
            br#"{"message_type":"PANIC"}"#,
            br#"{"message_type":"RECOVERY"}"#,
            br#"["message_type"]"#,
        ] {
            assert!(
                matches!(
                    parse(body, None),
                    Err(FormatError::Invalid(_) | FormatError::Json(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(parse(b"{", None), Err(FormatError::Json(_))));
    }
}
