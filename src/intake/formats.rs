//! The alert formats pagerbox accepts, as pure functions from bytes to alerts.
//!
//! - pagerbox's own JSON (`POST /v1/alerts`, UDP),
//! - PagerDuty Events API v2 (`POST /v2/enqueue`, and change events on `/v2/change/enqueue`),
//! - Prometheus Alertmanager webhook payload version 4 (`POST /v1/integrations/alertmanager`),
//!   which Grafana's webhook contact point also sends,
//! - the UDP text line `SEVERITY DEDUP_KEY SUMMARY...`,
//! - Opsgenie's Alert API ([`opsgenie`]) and Splunk On-Call's REST endpoint ([`victorops`]).
//!
//! Each parser says exactly what is wrong with a body so the sender can fix it; none of them
//! touches the store, the clock or the network.

pub mod opsgenie;
pub mod victorops;

use serde::Deserialize;
use serde_json::Value;

pub use crate::escalation::ParsedAlert;
use crate::incident::{Link, Severity};
use crate::store::{AlertAction, ChangeInput};

/// Longest summary kept (PagerDuty's own limit); longer ones are cut, not refused.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// Why a body cannot be accepted. A body that fails here will never be accepted, so it is
/// answered 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not JSON at all; says where it broke.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON, but not an acceptable event; one message per problem.
    #[error("invalid event: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// serde_json's message already says where it broke ("... at line 1 column 17").
fn json_error(e: serde_json::Error) -> FormatError {
    FormatError::Json(e.to_string())
}

/// `s` cut to [`MAX_SUMMARY_CHARS`] (ending in `…` when cut): what every way in keeps of a
/// summary, so no page text is built from more.
pub fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_SUMMARY_CHARS {
        s.to_string()
    } else {
        s.chars().take(MAX_SUMMARY_CHARS - 1).chain(['…']).collect()
    }
}

fn non_blank(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// pagerbox's own alert JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnAlert {
    #[serde(default)]
    action: Option<String>,
    dedup_key: Option<String>,
    summary: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    service: Option<String>,
    #[serde(default)]
    details: Value,
    #[serde(default)]
    links: Vec<OwnLink>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OwnLink {
    Href(String),
    Link(Link),
}

/// Parses pagerbox's own JSON: `{"action":"trigger|acknowledge|resolve","dedup_key":...,
/// "summary":...,"severity":...,"source":...,"service":...,"details":{...},"links":[...]}`.
/// `action` defaults to trigger and `severity` to error.
pub fn parse_own(body: &[u8]) -> Result<ParsedAlert, FormatError> {
    let a: OwnAlert = serde_json::from_slice(body).map_err(json_error)?;
    let mut errors = Vec::new();
    let action = match a.action.as_deref().unwrap_or("trigger") {
        "trigger" => AlertAction::Trigger,
        "acknowledge" | "ack" => AlertAction::Acknowledge,
        "resolve" => AlertAction::Resolve,
        other => {
            errors.push(format!(
                "action {other:?} is not one of trigger, acknowledge, resolve"
            ));
            AlertAction::Trigger
        }
    };
    let severity = match a.severity.as_deref() {
        None => Severity::Error,
        Some(s) => s.parse().unwrap_or_else(|e: crate::incident::UnknownName| {
            errors.push(e.to_string());
            Severity::Error
        }),
    };
    let summary = non_blank(a.summary);
    let dedup_key = non_blank(a.dedup_key);
    if action == AlertAction::Trigger && summary.is_none() {
        errors.push("summary is missing or blank".into());
    }
    if action != AlertAction::Trigger && dedup_key.is_none() {
        errors.push("dedup_key is required to acknowledge or resolve".into());
    }
    if !errors.is_empty() {
        return Err(FormatError::Invalid(errors));
    }
    Ok(ParsedAlert {
        action,
        dedup_key,
        summary: truncate(&summary.unwrap_or_default()),
        severity,
        source: non_blank(a.source),
        service: non_blank(a.service),
        details: a.details,
        links: a
            .links
            .into_iter()
            .map(|l| match l {
                OwnLink::Href(href) => Link { href, text: None },
                OwnLink::Link(l) => l,
            })
            .collect(),
        routing_key: None,
    })
}

/// PagerDuty Events API v2 event.
#[derive(Debug, Deserialize)]
struct PdEvent {
    routing_key: Option<String>,
    event_action: Option<String>,
    dedup_key: Option<String>,
    payload: Option<PdPayload>,
    #[serde(default)]
    links: Vec<PdLink>,
    #[serde(default)]
    images: Vec<PdImage>,
    client: Option<String>,
    client_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PdPayload {
    summary: Option<String>,
    source: Option<String>,
    severity: Option<String>,
    timestamp: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    #[serde(default)]
    custom_details: Value,
}

#[derive(Debug, Deserialize)]
struct PdLink {
    href: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PdImage {
    src: Option<String>,
    href: Option<String>,
    alt: Option<String>,
}

/// Parses a PagerDuty Events API v2 event, checking what PagerDuty checks: `routing_key`,
/// `event_action`, and for triggers `payload.summary`, `payload.source` and `payload.severity`;
/// for acknowledge and resolve, `dedup_key`. The messages follow PagerDuty's wording.
/// `payload.group` becomes the service (PagerDuty's "logical grouping"), else `component`.
pub fn parse_pagerduty(body: &[u8]) -> Result<ParsedAlert, FormatError> {
    let e: PdEvent = serde_json::from_slice(body).map_err(json_error)?;
    let mut errors = Vec::new();
    let routing_key = non_blank(e.routing_key);
    if routing_key.is_none() {
        errors.push("'routing_key' is missing or blank".to_string());
    }
    let action = pd_action(e.event_action.as_deref(), &mut errors);
    let dedup_key = non_blank(e.dedup_key);
    let mut summary = None;
    let mut source = None;
    let mut severity = Severity::Error;
    let mut details = serde_json::Map::new();
    let mut service = None;
    if action == AlertAction::Trigger {
        match e.payload {
            None => errors.push("'payload' is missing or blank".to_string()),
            Some(p) => {
                summary = non_blank(p.summary);
                source = non_blank(p.source);
                if summary.is_none() {
                    errors.push("'payload.summary' is missing or blank".to_string());
                }
                if source.is_none() {
                    errors.push("'payload.source' is missing or blank".to_string());
                }
                if let Some(s) = pd_severity(p.severity.as_deref(), &mut errors) {
                    severity = s;
                }
                service = non_blank(p.group.clone()).or_else(|| non_blank(p.component.clone()));
                for (k, v) in [
                    ("timestamp", p.timestamp),
                    ("component", p.component),
                    ("group", p.group),
                    ("class", p.class),
                ] {
                    if let Some(v) = v {
                        details.insert(k.into(), Value::String(v));
                    }
                }
                if !p.custom_details.is_null() {
                    details.insert("custom_details".into(), p.custom_details);
                }
            }
        }
    } else if dedup_key.is_none() {
        errors.push(format!(
            "'dedup_key' is required for event_action {}",
            if action == AlertAction::Resolve {
                "resolve"
            } else {
                "acknowledge"
            }
        ));
    }
    if !errors.is_empty() {
        return Err(FormatError::Invalid(errors));
    }
    let links = pd_links_and_extras(e.links, e.images, e.client, e.client_url, &mut details);
    Ok(ParsedAlert {
        action,
        dedup_key,
        summary: truncate(&summary.unwrap_or_default()),
        severity,
        source,
        service,
        details: if details.is_empty() {
            Value::Null
        } else {
            Value::Object(details)
        },
        links,
        routing_key,
    })
}

/// `event_action`: trigger, acknowledge or resolve; a wrong one is reported (and read as trigger
/// so the other checks still run).
fn pd_action(action: Option<&str>, errors: &mut Vec<String>) -> AlertAction {
    match action {
        Some("trigger") => AlertAction::Trigger,
        Some("acknowledge") => AlertAction::Acknowledge,
        Some("resolve") => AlertAction::Resolve,
        Some(other) => {
            errors.push(format!(
                "'event_action' is invalid ({other:?}); must be one of trigger, acknowledge, resolve"
            ));
            AlertAction::Trigger
        }
        None => {
            errors.push("'event_action' is missing or blank".to_string());
            AlertAction::Trigger
        }
    }
}

/// `payload.severity`: PagerDuty's four levels; `None` (reported) when missing or unknown.
fn pd_severity(severity: Option<&str>, errors: &mut Vec<String>) -> Option<Severity> {
    match severity {
        None | Some("") => {
            errors.push("'payload.severity' is missing or blank".to_string());
            None
        }
        Some("critical") => Some(Severity::Critical),
        Some("error") => Some(Severity::Error),
        Some("warning") => Some(Severity::Warning),
        Some("info") => Some(Severity::Info),
        Some(other) => {
            errors.push(format!(
                "'payload.severity' is invalid ({other:?}); must be one of critical, error, warning, info"
            ));
            None
        }
    }
}

/// `links`, `images`, `client` and `client_url`: the links to show, the rest kept in `details`.
fn pd_links_and_extras(
    links: Vec<PdLink>,
    images: Vec<PdImage>,
    client: Option<String>,
    client_url: Option<String>,
    details: &mut serde_json::Map<String, Value>,
) -> Vec<Link> {
    let mut links: Vec<Link> = links
        .into_iter()
        .filter_map(|l| {
            Some(Link {
                href: l.href?,
                text: l.text,
            })
        })
        .collect();
    let images: Vec<Value> = images
        .into_iter()
        .filter_map(|i| {
            let src = i.src?;
            Some(serde_json::json!({ "src": src, "href": i.href, "alt": i.alt }))
        })
        .collect();
    if !images.is_empty() {
        details.insert("images".into(), Value::Array(images));
    }
    if let Some(c) = client {
        details.insert("client".into(), Value::String(c));
    }
    if let Some(url) = client_url {
        links.push(Link {
            href: url,
            text: Some("client".into()),
        });
    }
    links
}

/// PagerDuty change event.
#[derive(Debug, Deserialize)]
struct PdChange {
    routing_key: Option<String>,
    payload: Option<PdChangePayload>,
    #[serde(default)]
    links: Vec<PdLink>,
}

#[derive(Debug, Deserialize)]
struct PdChangePayload {
    summary: Option<String>,
    source: Option<String>,
    timestamp: Option<String>,
    #[serde(default)]
    custom_details: Value,
}

/// Parses a PagerDuty change event (`/v2/change/enqueue`). Returns the routing key too.
pub fn parse_pagerduty_change(body: &[u8]) -> Result<(Option<String>, ChangeInput), FormatError> {
    let c: PdChange = serde_json::from_slice(body).map_err(json_error)?;
    let mut errors = Vec::new();
    let routing_key = non_blank(c.routing_key);
    if routing_key.is_none() {
        errors.push("'routing_key' is missing or blank".to_string());
    }
    let Some(p) = c.payload else {
        errors.push("'payload' is missing or blank".to_string());
        return Err(FormatError::Invalid(errors));
    };
    let summary = non_blank(p.summary);
    if summary.is_none() {
        errors.push("'payload.summary' is missing or blank".to_string());
    }
    if !errors.is_empty() {
        return Err(FormatError::Invalid(errors));
    }
    let mut details = serde_json::Map::new();
    if let Some(t) = p.timestamp {
        details.insert("timestamp".into(), Value::String(t));
    }
    if !p.custom_details.is_null() {
        details.insert("custom_details".into(), p.custom_details);
    }
    Ok((
        routing_key,
        ChangeInput {
            summary: truncate(&summary.unwrap_or_default()),
            source: non_blank(p.source),
            service: None,
            details: Value::Object(details),
            links: c
                .links
                .into_iter()
                .filter_map(|l| {
                    Some(Link {
                        href: l.href?,
                        text: l.text,
                    })
                })
                .collect(),
        },
    ))
}

/// Alertmanager (and Grafana) webhook payload, version 4.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmPayload {
    version: Option<String>,
    #[serde(default)]
    alerts: Option<Vec<AmAlert>>,
    receiver: Option<String>,
    external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: Option<String>,
    #[serde(default)]
    labels: serde_json::Map<String, Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, Value>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: Option<String>,
    // Grafana extras.
    #[serde(rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(rename = "silenceURL")]
    silence_url: Option<String>,
    value_string: Option<String>,
}

fn label<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Parses an Alertmanager webhook (payload version 4) or Grafana webhook body into one alert
/// per entry of `alerts`. Each alert is keyed by its `fingerprint` (stable across firing and
/// resolved); `status: resolved` resolves. Severity comes from the `severity` label (unknown or
/// absent: error). The summary is the `summary` annotation, else `description`, else the
/// `alertname` label; the service is the `service` label, else `job`.
pub fn parse_alertmanager(body: &[u8]) -> Result<Vec<ParsedAlert>, FormatError> {
    let p: AmPayload = serde_json::from_slice(body).map_err(json_error)?;
    let Some(alerts) = p.alerts else {
        return Err(FormatError::Invalid(vec!["'alerts' is missing".into()]));
    };
    if let Some(v) = &p.version {
        if v != "4" && v != "1" {
            return Err(FormatError::Invalid(vec![format!(
                "payload version {v:?} is not supported (expected \"4\")"
            )]));
        }
    }
    let mut out = Vec::with_capacity(alerts.len());
    let mut errors = Vec::new();
    for (i, a) in alerts.into_iter().enumerate() {
        let action = match a.status.as_deref() {
            Some("firing") => AlertAction::Trigger,
            Some("resolved") => AlertAction::Resolve,
            other => {
                errors.push(format!(
                    "alerts[{i}].status {other:?} is not firing or resolved"
                ));
                continue;
            }
        };
        let key = am_key(&a);
        let Some(key) = key else {
            errors.push(format!("alerts[{i}] has neither fingerprint nor labels"));
            continue;
        };
        let summary = label(&a.annotations, "summary")
            .or_else(|| label(&a.annotations, "description"))
            .or_else(|| label(&a.labels, "alertname"))
            .unwrap_or("alert")
            .to_string();
        let severity = label(&a.labels, "severity")
            .and_then(|s| s.parse::<Severity>().ok())
            .unwrap_or(Severity::Error);
        let links = am_links(&a);
        // Go's zero time means "not ended".
        let ends_at = a.ends_at.filter(|e| !e.starts_with("0001-01-01"));
        let mut details = serde_json::Map::new();
        details.insert("labels".into(), Value::Object(a.labels.clone()));
        details.insert("annotations".into(), Value::Object(a.annotations.clone()));
        for (k, v) in [
            ("startsAt", a.starts_at),
            ("endsAt", ends_at),
            ("receiver", p.receiver.clone()),
            ("externalURL", p.external_url.clone()),
            ("valueString", a.value_string),
        ] {
            if let Some(v) = v {
                details.insert(k.into(), Value::String(v));
            }
        }
        out.push(ParsedAlert {
            action,
            dedup_key: Some(key),
            summary: truncate(&summary),
            severity,
            source: label(&a.labels, "instance")
                .or_else(|| label(&a.labels, "job"))
                .map(str::to_string)
                .or_else(|| Some("alertmanager".into())),
            service: label(&a.labels, "service")
                .or_else(|| label(&a.labels, "job"))
                .map(str::to_string),
            details: Value::Object(details),
            links,
            routing_key: None,
        });
    }
    if !errors.is_empty() {
        return Err(FormatError::Invalid(errors));
    }
    Ok(out)
}

/// The dedup key of one alert: its fingerprint, else (Grafana before 9) its sorted label set.
fn am_key(a: &AmAlert) -> Option<String> {
    a.fingerprint.clone().filter(|f| !f.is_empty()).or_else(|| {
        // Grafana before 9 has no fingerprint: key on the sorted label set.
        (!a.labels.is_empty()).then(|| {
            let mut kv: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            kv.sort();
            kv.join(",")
        })
    })
}

/// The links an alert carries: source, runbook, dashboard, panel and silence, when present.
fn am_links(a: &AmAlert) -> Vec<Link> {
    let mut links = Vec::new();
    for (url, text) in [
        (a.generator_url.clone(), "source"),
        (
            label(&a.annotations, "runbook_url").map(str::to_string),
            "runbook",
        ),
        (a.dashboard_url.clone(), "dashboard"),
        (a.panel_url.clone(), "panel"),
        (a.silence_url.clone(), "silence"),
    ] {
        if let Some(href) = url.filter(|u| !u.is_empty()) {
            links.push(Link {
                href,
                text: Some(text.into()),
            });
        }
    }
    links
}

/// What a UDP datagram asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Datagram {
    Alert(ParsedAlert),
    /// `heartbeat ID`: a ping for a heartbeat monitor.
    Heartbeat(String),
}

/// Parses one UDP datagram: pagerbox JSON when it starts with `{`, otherwise a text line.
///
/// Lines: `SEVERITY DEDUP_KEY SUMMARY...` triggers (e.g. `critical disk-db1 /var on db1 is 97%
/// full`); `resolve DEDUP_KEY [text]` and `ack DEDUP_KEY [text]` act on the key's incident;
/// `heartbeat ID` pings a heartbeat monitor. One trailing newline is allowed.
pub fn parse_datagram(data: &[u8]) -> Result<Datagram, FormatError> {
    let trimmed = data.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        return parse_own(trimmed).map(Datagram::Alert);
    }
    let text = std::str::from_utf8(trimmed).map_err(|_| {
        FormatError::Invalid(vec!["datagram is neither JSON nor UTF-8 text".into()])
    })?;
    if text.contains('\n') {
        return Err(FormatError::Invalid(vec![
            "one alert per datagram: found more than one line".into(),
        ]));
    }
    let mut words = text.splitn(3, char::is_whitespace);
    let first = words.next().unwrap_or("");
    let key = words.next().map(str::trim).filter(|k| !k.is_empty());
    let rest = words.next().map(str::trim).unwrap_or("");
    let usage = || {
        FormatError::Invalid(vec![
            "expected \"SEVERITY DEDUP_KEY SUMMARY...\", \"resolve KEY\", \"ack KEY\" or \"heartbeat ID\"".into(),
        ])
    };
    let key = key.ok_or_else(usage)?;
    match first.to_ascii_lowercase().as_str() {
        "heartbeat" => Ok(Datagram::Heartbeat(key.to_string())),
        "resolve" | "ack" | "acknowledge" => Ok(Datagram::Alert(ParsedAlert {
            action: if first.eq_ignore_ascii_case("resolve") {
                AlertAction::Resolve
            } else {
                AlertAction::Acknowledge
            },
            dedup_key: Some(key.to_string()),
            summary: rest.to_string(),
            severity: Severity::Info,
            source: None,
            service: None,
            details: Value::Null,
            links: vec![],
            routing_key: None,
        })),
        sev => {
            let severity: Severity = sev.parse().map_err(|_| usage())?;
            if rest.is_empty() {
                return Err(FormatError::Invalid(vec![
                    "summary is missing after the dedup key".into(),
                ]));
            }
            Ok(Datagram::Alert(ParsedAlert {
                action: AlertAction::Trigger,
                dedup_key: Some(key.to_string()),
                summary: truncate(rest),
                severity,
                source: Some("udp".into()),
                service: None,
                details: Value::Null,
                links: vec![],
                routing_key: None,
            }))
        }
    }
}

#[cfg(test)]
#[path = "formats/tests.rs"]
mod tests;
