//! Pure rendering of outbound notifications: Slack, Microsoft Teams and the generic pagerbox JSON
//! document, and the HMAC-SHA256 signature of the generic webhook. No I/O, no clock: the caller
//! passes every instant.
//!
//! Formats, from the providers' documentation:
//! - Slack incoming webhooks take `{"text": ..., "blocks": [...]}`; `text` is the fallback shown
//!   in notifications and by clients without blocks (<https://api.slack.com/messaging/webhooks>,
//!   <https://api.slack.com/reference/block-kit/blocks>). In `mrkdwn` text `&`, `<` and `>` are
//!   control characters and must be sent as `&amp;`, `&lt;`, `&gt;`, nothing else escaped
//!   (<https://api.slack.com/reference/surfaces/formatting#escaping>); a section's text is at most
//!   3000 characters, a header's 150.
//! - Microsoft Teams "Workflows" webhooks (Power Automate trigger "When a Teams webhook request is
//!   received", which replaces the retired Office 365 connectors) take a message whose
//!   `attachments` hold an Adaptive Card: `{"type":"message","attachments":[{"contentType":
//!   "application/vnd.microsoft.card.adaptive","contentUrl":null,"content":{...AdaptiveCard...}}]}`
//!   (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>,
//!   "Send Adaptive Cards using an Incoming Webhook"; card schema version 1.4, TextBlock, FactSet
//!   and Action.OpenUrl from <https://adaptivecards.io/explorer/>).
//! - The generic webhook is pagerbox's own document (README, "Outbound notifications").

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{Event, Kind};
use crate::incident::{Severity, Status};
pub use crate::store::outbound::Notice;

/// Slack's limit on a section block's text.
const SLACK_SECTION_MAX: usize = 3000;
/// Slack's limit on a header block's text.
const SLACK_HEADER_MAX: usize = 150;

/// Renders the body for `kind`. The generic document gets its `sent_at` at send time
/// ([`stamp_sent_at`]), so a queued notification says when it really left.
pub fn render(kind: Kind, n: &Notice) -> Value {
    match kind {
        Kind::Slack => slack(n),
        Kind::Teams => teams(n),
        Kind::Webhook => generic(n),
    }
}

/// Escapes text for Slack `mrkdwn` (only `&`, `<`, `>`, as Slack's formatting docs require).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn verb(e: Event) -> &'static str {
    match e {
        Event::Trigger => "triggered",
        Event::Acknowledge => "acknowledged",
        Event::Resolve => "resolved",
    }
}

/// The one-line plain text used as Slack's fallback and Teams' title.
pub fn headline(n: &Notice) -> String {
    let i = &n.incident;
    format!(
        "[{}] #{} {}: {}",
        i.severity.as_str().to_uppercase(),
        i.id,
        verb(n.event),
        i.summary
    )
}

/// Who moved the incident, for the event at hand.
fn by_line(n: &Notice) -> Option<String> {
    let t = match n.event {
        Event::Trigger => return None,
        Event::Acknowledge => n.incident.acknowledged.as_ref()?,
        Event::Resolve => n.incident.resolved.as_ref()?,
    };
    Some(format!("{} by {} via {}", verb(n.event), t.by, t.via))
}

fn slack_emoji(n: &Notice) -> &'static str {
    match (n.event, n.incident.severity) {
        (Event::Resolve, _) => ":white_check_mark:",
        (Event::Acknowledge, _) => ":eyes:",
        (Event::Trigger, Severity::Critical | Severity::Error) => ":rotating_light:",
        (Event::Trigger, _) => ":warning:",
    }
}

fn slack(n: &Notice) -> Value {
    let i = &n.incident;
    let mut fields = vec![format!("*Severity:* {}", i.severity.as_str())];
    if let Some(s) = &i.service {
        fields.push(format!("*Service:* {}", slack_escape(s)));
    }
    if let Some(r) = &i.route {
        fields.push(format!("*Route:* {}", slack_escape(r)));
    }
    fields.push(format!("*Key:* {}", slack_escape(&i.dedup_key)));
    let mut text = format!(
        "{} *#{} {}*\n{}",
        slack_emoji(n),
        i.id,
        verb(n.event),
        slack_escape(&i.summary)
    );
    if let Some(b) = by_line(n) {
        text.push_str(&format!("\n_{}_", slack_escape(&b)));
    }
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": truncate(&format!("#{} {}: {}", i.id, verb(n.event), i.summary), SLACK_HEADER_MAX) }
        }),
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&text, SLACK_SECTION_MAX) }
        }),
        json!({
            "type": "context",
            "elements": fields.iter().map(|f| json!({ "type": "mrkdwn", "text": f })).collect::<Vec<_>>()
        }),
    ];
    let links: Vec<String> = i
        .links
        .iter()
        .filter(|l| l.href.starts_with("http://") || l.href.starts_with("https://"))
        .map(|l| {
            // <url|text>: both escaped; a `|` would end the URL part early.
            let label = l.text.as_deref().unwrap_or(&l.href).replace('|', "/");
            format!(
                "<{}|{}>",
                slack_escape(&l.href.replace('|', "%7C")),
                slack_escape(&label)
            )
        })
        .collect();
    if !links.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&links.join("  "), SLACK_SECTION_MAX) }
        }));
    }
    json!({ "text": slack_escape(&headline(n)), "blocks": blocks })
}

fn teams(n: &Notice) -> Value {
    let i = &n.incident;
    // Adaptive Card TextBlock colors: attention (red), warning, good (green).
    let color = match n.event {
        Event::Trigger => "Attention",
        Event::Acknowledge => "Warning",
        Event::Resolve => "Good",
    };
    let mut facts = vec![
        json!({ "title": "Severity", "value": i.severity.as_str() }),
        json!({ "title": "Status", "value": status_of(n.event).as_str() }),
    ];
    if let Some(s) = &i.service {
        facts.push(json!({ "title": "Service", "value": s }));
    }
    if let Some(r) = &i.route {
        facts.push(json!({ "title": "Route", "value": r }));
    }
    facts.push(json!({ "title": "Key", "value": i.dedup_key }));
    facts.push(json!({ "title": "First seen", "value": time(i.first_seen) }));
    if let Some(b) = by_line(n) {
        facts.push(json!({ "title": "By", "value": b }));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            { "type": "TextBlock", "text": headline(n), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true },
            { "type": "TextBlock", "text": i.summary, "wrap": true },
            { "type": "FactSet", "facts": facts }
        ]
    });
    let actions: Vec<Value> = i
        .links
        .iter()
        .filter(|l| l.href.starts_with("http://") || l.href.starts_with("https://"))
        .map(|l| json!({ "type": "Action.OpenUrl", "title": l.text.as_deref().unwrap_or("Link"), "url": l.href }))
        .collect();
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card
        }]
    })
}

fn status_of(e: Event) -> Status {
    match e {
        Event::Trigger => Status::Triggered,
        Event::Acknowledge => Status::Acknowledged,
        Event::Resolve => Status::Resolved,
    }
}

fn generic(n: &Notice) -> Value {
    let i = &n.incident;
    let tr = |t: &Option<crate::incident::Transition>| {
        t.as_ref()
            .map(|t| json!({ "at": time(t.at), "by": t.by, "via": t.via }))
            .unwrap_or(Value::Null)
    };
    json!({
        "event": n.event.name(),
        "occurred_at": time(n.at),
        "incident": {
            "id": i.id,
            "status": status_of(n.event).as_str(),
            "severity": i.severity.as_str(),
            "summary": i.summary,
            "source": i.source,
            "service": i.service,
            "route": i.route,
            "dedup_key": i.dedup_key,
            "alert_count": i.alert_count,
            "first_seen": time(i.first_seen),
            "acknowledged": tr(&i.acknowledged),
            "resolved": tr(&i.resolved),
            "links": i.links,
        }
    })
}

/// Sets `sent_at` on a generic document just before it is signed and sent.
pub fn stamp_sent_at(body: &str, now: DateTime<Utc>) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut m)) => {
            m.insert("sent_at".into(), Value::String(time(now)));
            Value::Object(m).to_string()
        }
        _ => body.to_string(),
    }
}

/// HMAC-SHA256 over `"{timestamp}.{body}"`, as lowercase hex. The timestamp (Unix seconds, also
/// sent in `X-Pagerbox-Timestamp`) is inside the signed bytes, so a receiver that rejects old
/// timestamps cannot be fed a replayed request.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Incident;
    use crate::incident::{Link, Transition};
    use chrono::TimeZone;

    fn incident() -> Incident {
        Incident {
            id: 42,
            dedup_key: "db1/disk".into(),
            status: Status::Triggered,
            severity: Severity::Critical,
            summary: "Disk <90%> full & rising".into(),
            source: Some("db1".into()),
            service: Some("database".into()),
            route: Some("db".into()),
            details: Value::Null,
            links: vec![Link {
                href: "https://grafana.example/d/1?a=1&b=2".into(),
                text: Some("Dash|board".into()),
            }],
            alert_count: 1,
            first_seen: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            last_seen: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            acknowledged: None,
            resolved: None,
        }
    }

    fn notice(event: Event) -> Notice {
        let mut i = incident();
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 10, 0).unwrap();
        if event == Event::Acknowledge {
            i.acknowledged = Some(Transition {
                at,
                by: "alice".into(),
                via: "sms".into(),
            });
        }
        if event == Event::Resolve {
            i.resolved = Some(Transition {
                at,
                by: "bob".into(),
                via: "api".into(),
            });
        }
        Notice {
            event,
            incident: i,
            at,
        }
    }

    #[test]
    fn rfc4231_test_case_2_vector() {
        // RFC 4231 section 4.3: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_dot_body() {
        // RFC 4231 test case 2 again, split as "<timestamp>.<body>": the signed bytes are the
        // timestamp, a dot and the raw body, nothing else.
        let data = b"what do ya want for nothing?";
        let (ts, rest) = (b"1700000000", &data[..]);
        let mut joined = ts.to_vec();
        joined.push(b'.');
        joined.extend_from_slice(rest);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(&joined);
        let expected = hex(&mac.finalize().into_bytes());
        assert_eq!(signature(b"Jefe", 1_700_000_000, data), expected);
        assert_ne!(signature(b"Jefe", 1_700_000_001, data), expected);
    }

    #[test]
    fn slack_escapes_only_the_three_control_characters() {
        assert_eq!(
            slack_escape("a & <b> \"c\" 'd'"),
            "a &amp; &lt;b&gt; \"c\" 'd'"
        );
    }

    #[test]
    fn slack_body_has_fallback_text_and_blocks() {
        let v = render(Kind::Slack, &notice(Event::Trigger));
        assert_eq!(
            v["text"],
            "[CRITICAL] #42 triggered: Disk &lt;90%&gt; full &amp; rising"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        // Header text is plain_text: not escaped.
        assert_eq!(
            blocks[0]["text"]["text"],
            "#42 triggered: Disk <90%> full & rising"
        );
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert!(blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Disk &lt;90%&gt; full &amp; rising"));
        assert_eq!(blocks[2]["type"], "context");
        assert_eq!(
            blocks[3]["text"]["text"],
            "<https://grafana.example/d/1?a=1&amp;b=2|Dash/board>"
        );
    }

    #[test]
    fn slack_ack_says_who() {
        let v = render(Kind::Slack, &notice(Event::Acknowledge));
        assert!(v["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("_acknowledged by alice via sms_"));
    }

    #[test]
    fn slack_long_summary_is_cut_to_the_limits() {
        let mut n = notice(Event::Trigger);
        n.incident.summary = "x".repeat(5000);
        let v = render(Kind::Slack, &n);
        assert!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= 150
        );
        assert!(
            v["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= 3000
        );
    }

    #[test]
    fn teams_body_is_a_message_with_an_adaptive_card() {
        let v = render(Kind::Teams, &notice(Event::Resolve));
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(a["contentUrl"].is_null());
        let c = &a["content"];
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["version"], "1.4");
        assert_eq!(
            c["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        assert_eq!(c["body"][0]["type"], "TextBlock");
        assert_eq!(c["body"][0]["color"], "Good");
        assert_eq!(c["body"][1]["text"], "Disk <90%> full & rising");
        let facts = c["body"][2]["facts"].as_array().unwrap();
        assert!(facts.contains(&json!({"title": "Status", "value": "resolved"})));
        assert!(facts.contains(&json!({"title": "By", "value": "resolved by bob via api"})));
        assert_eq!(c["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            c["actions"][0]["url"],
            "https://grafana.example/d/1?a=1&b=2"
        );
    }

    #[test]
    fn generic_document_fields() {
        let v = render(Kind::Webhook, &notice(Event::Acknowledge));
        assert_eq!(v["event"], "incident.acknowledged");
        assert_eq!(v["occurred_at"], "2026-01-02T03:10:00Z");
        let i = &v["incident"];
        assert_eq!(i["id"], 42);
        assert_eq!(i["status"], "acknowledged");
        assert_eq!(i["severity"], "critical");
        assert_eq!(i["route"], "db");
        assert_eq!(i["dedup_key"], "db1/disk");
        assert_eq!(i["first_seen"], "2026-01-02T03:04:05Z");
        assert_eq!(i["acknowledged"]["by"], "alice");
        assert_eq!(i["acknowledged"]["via"], "sms");
        assert!(i["resolved"].is_null());
        assert_eq!(i["links"][0]["href"], "https://grafana.example/d/1?a=1&b=2");
        let stamped = stamp_sent_at(
            &v.to_string(),
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 11, 0).unwrap(),
        );
        let s: Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(s["sent_at"], "2026-01-02T03:11:00Z");
        assert_eq!(s["event"], "incident.acknowledged");
    }
}
