//! Post-incident reports and on-call review numbers.
//!
//! After an incident the team wants one document: what fired, who was paged on which channel and
//! whether the handset confirmed it, who answered and how, how long that took, and empty sections
//! for the root cause, impact and follow-ups. Before an on-call review it wants a few numbers:
//! incidents per service, median and p90 time to acknowledge and resolve, pages per person, and
//! how many pages went out of hours.
//!
//! This module owns the shape of both and nothing else: [`gather`] reads one incident's rows from
//! the store (inside a [`crate::store::Store::call`]; it never writes), [`markdown`] renders a
//! report (pure), [`stats`] aggregates rows (pure). The HTTP endpoints live in
//! `api::reports`, the CLI in `cli::report`.
//!
//! Phone numbers and email addresses never appear whole in a report: a report is pasted into
//! tickets and wikis. Pages name the person (user id and name) and show a masked address.

pub mod markdown;
pub mod stats;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{mask_number, Config};
use crate::incident::{Incident, IncidentId, TimelineEvent};
use crate::store::history::{self, PageRecord};
use crate::store::{queries, StoreError, Tx};

/// Everything a post-incident report shows, gathered in one read transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub incident: Incident,
    /// The daemon's zone (`[daemon] time_zone`); times are shown in UTC and in this zone.
    pub time_zone: String,
    /// When the report was made (the store's clock).
    pub generated_at: DateTime<Utc>,
    /// Acknowledged minus first seen; `None` while nobody has acknowledged (an incident resolved
    /// without an acknowledgement has none either).
    #[serde(rename = "time_to_acknowledge_seconds", with = "opt_secs")]
    pub time_to_acknowledge: Option<std::time::Duration>,
    /// Resolved minus first seen; `None` while open.
    #[serde(rename = "time_to_resolve_seconds", with = "opt_secs")]
    pub time_to_resolve: Option<std::time::Duration>,
    /// Every timeline event, oldest first.
    pub timeline: Vec<TimelineEvent>,
    /// Every outbox row about the incident (its pages, digests listing it, status updates).
    pub pages: Vec<PageEvidence>,
    pub people: People,
}

/// One outbox row with the evidence of what happened to it, as the report shows it: the address
/// masked (see [`mask_address`]) and the person's name added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEvidence {
    #[serde(flatten)]
    pub page: PageRecord,
    /// The user's name from the config, when the user is still there.
    pub user_name: Option<String>,
}

/// Who was paged and who answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct People {
    /// Each person a page or digest was addressed to, in the order first paged.
    pub paged: Vec<PagedPerson>,
    /// The acknowledgement and the resolution, when they happened.
    pub answered: Vec<Answer>,
}

/// A person who was paged about the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagedPerson {
    pub user_id: String,
    pub name: Option<String>,
    /// Channels used, in first-use order.
    pub channels: Vec<String>,
    /// Pages and digests addressed to them.
    pub pages: usize,
    /// How many of those reached the network or the mail relay.
    pub sent: usize,
}

/// An acknowledgement or resolution: who, via which path, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// `acknowledged` or `resolved`.
    pub action: String,
    pub by: String,
    pub name: Option<String>,
    /// `sms`, `voice`, `http`, `cli`, `button`, `alertmanager`, ...
    pub via: String,
    pub at: DateTime<Utc>,
}

/// Reads incident `id` and builds its report; `None` when there is no such incident. Runs inside
/// a store transaction (`Store::call`) and only reads.
pub fn gather(
    conn: &Tx,
    id: IncidentId,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Option<Report>, StoreError> {
    let Some(incident) = queries::incident(conn, id)? else {
        return Ok(None);
    };
    let timeline = queries::timeline(conn, id)?;
    let pages = history::pages_for_incident(conn, id)?;
    Ok(Some(build(incident, timeline, &pages, config, now)))
}

/// The report from rows already read: pure, so the rules (durations, people, masking) are tested
/// without a database.
pub fn build(
    incident: Incident,
    timeline: Vec<TimelineEvent>,
    pages: &[PageRecord],
    config: &Config,
    now: DateTime<Utc>,
) -> Report {
    let name = |user: &str| config.user(user).map(|u| u.name.clone());
    // Stakeholder updates have no user id, so the timeline names them by address; the report
    // shows those (and any other number in untrusted text) masked.
    let addresses: Vec<&str> = pages.iter().map(|p| p.address.as_str()).collect();
    let timeline: Vec<TimelineEvent> = timeline
        .into_iter()
        .map(|mut e| {
            e.message = redact(&e.message, &addresses);
            redact_json(&mut e.data, &addresses);
            e
        })
        .collect();
    let since_first = |t: DateTime<Utc>| (t - incident.first_seen).to_std().unwrap_or_default();
    let evidence: Vec<PageEvidence> = pages
        .iter()
        .map(|p| PageEvidence {
            page: PageRecord {
                address: mask_address(&p.address),
                last_error: p.last_error.as_deref().map(|e| redact(e, &addresses)),
                ..p.clone()
            },
            user_name: p.user_id.as_deref().and_then(name),
        })
        .collect();
    let paged = paged_people(pages, config);
    let answered = [
        ("acknowledged", &incident.acknowledged),
        ("resolved", &incident.resolved),
    ]
    .into_iter()
    .filter_map(|(action, t)| {
        t.as_ref().map(|t| Answer {
            action: action.to_string(),
            by: t.by.clone(),
            name: name(&t.by),
            via: t.via.clone(),
            at: t.at,
        })
    })
    .collect();
    Report {
        time_to_acknowledge: incident.acknowledged.as_ref().map(|t| since_first(t.at)),
        time_to_resolve: incident.resolved.as_ref().map(|t| since_first(t.at)),
        time_zone: config.daemon.time_zone.name().to_string(),
        generated_at: now,
        incident,
        timeline,
        pages: evidence,
        people: People { paged, answered },
    }
}

/// Each person paged, once, in the order first paged: how many pages, how many went out, and
/// by which channels. Only pages and digests count: replies and updates wake nobody.
fn paged_people(pages: &[PageRecord], config: &Config) -> Vec<PagedPerson> {
    let name = |user: &str| config.user(user).map(|u| u.name.clone());
    let mut paged: Vec<PagedPerson> = Vec::new();
    for p in pages.iter().filter(|p| p.kind.is_to_person()) {
        let Some(user) = &p.user_id else { continue };
        let i = match paged.iter().position(|x| &x.user_id == user) {
            Some(i) => i,
            None => {
                paged.push(PagedPerson {
                    user_id: user.clone(),
                    name: name(user),
                    channels: Vec::new(),
                    pages: 0,
                    sent: 0,
                });
                paged.len() - 1
            }
        };
        let person = &mut paged[i];
        person.pages += 1;
        person.sent += usize::from(p.was_sent());
        if !person.channels.contains(&p.channel) {
            person.channels.push(p.channel.clone());
        }
    }
    paged
}

/// An address as a report shows it: a phone number with all but its last three digits hidden
/// (as the logs do), an email address with all but the first letter of its local part hidden.
pub fn mask_address(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => mask_number(address),
    }
}

/// `text` with every address in `addresses` masked, and every other phone number (`+` and 8 to
/// 15 digits) masked too.
pub fn redact(text: &str, addresses: &[&str]) -> String {
    let mut out = text.to_string();
    for a in addresses.iter().filter(|a| !a.is_empty()) {
        if out.contains(a) {
            out = out.replace(a, &mask_address(a));
        }
    }
    let chars: Vec<char> = out.chars().collect();
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '+' {
            let digits = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if (8..=15).contains(&digits) {
                let number: String = chars[i..=i + digits].iter().collect();
                result.push_str(&mask_number(&number));
                i += digits + 1;
                continue;
            }
        }
        result.push(chars[i]);
        i += 1;
    }
    result
}

/// [`redact`] over every string in a JSON value.
fn redact_json(v: &mut serde_json::Value, addresses: &[&str]) {
    match v {
        serde_json::Value::String(s) => *s = redact(s, addresses),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|v| redact_json(v, addresses)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|v| redact_json(v, addresses)),
        _ => {}
    }
}

/// `Option<Duration>` as seconds (with millisecond precision) in JSON.
pub(crate) mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64((d.as_millis() as f64) / 1000.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Severity, Status, Transition};
    use chrono::TimeZone;
    use std::path::Path;

    pub(crate) fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    pub(crate) fn config() -> Config {
        Config::parse(
            "[daemon]\ntime_zone = \"Europe/Berlin\"\n[[users]]\nid = \"alice\"\nname = \"Alice A\"\nphone = \"+4915100000011\"\n",
            "t.toml",
            Path::new("/"),
        )
        .unwrap()
        .config
    }

    pub(crate) fn incident() -> Incident {
        Incident {
            id: 7,
            dedup_key: "disk|db1".into(),
            status: Status::Resolved,
            severity: Severity::Critical,
            summary: "disk | full\nnow".into(),
            source: Some("db1".into()),
            service: Some("db".into()),
            route: Some("default".into()),
            details: serde_json::Value::Null,
            links: vec![],
            alert_count: 2,
            first_seen: t(0),
            last_seen: t(1),
            acknowledged: Some(Transition {
                at: t(3),
                by: "alice".into(),
                via: "sms".into(),
            }),
            resolved: Some(Transition {
                at: t(45),
                by: "bob".into(),
                via: "cli".into(),
            }),
        }
    }

    pub(crate) fn page(id: i64, user: &str, channel: &str, state: &str) -> PageRecord {
        PageRecord {
            id,
            kind: crate::store::kinds::PageKind::Page,
            incident_id: Some(7),
            user_id: Some(user.into()),
            channel: channel.into(),
            address: if channel == "email" {
                "alice@example.org".into()
            } else {
                "+4915100000011".into()
            },
            state: crate::store::kinds::OutboxState::parse(state).expect("a stored state"),
            reference: (state == "delivered").then(|| "17".into()),
            attempts: 1,
            last_error: None,
            created_at: t(0),
            updated_at: t(1),
            sent_at: (state != "cancelled").then(|| t(0)),
            delivered_at: (state == "delivered").then(|| t(1)),
        }
    }

    #[test]
    fn durations_people_and_masking() {
        let pages = [
            page(1, "alice", "sms", "delivered"),
            page(2, "alice", "voice", "cancelled"),
            page(3, "bob", "email", "sent"),
        ];
        let r = build(incident(), vec![], &pages, &config(), t(60));
        assert_eq!(
            r.time_to_acknowledge,
            Some(std::time::Duration::from_secs(180))
        );
        assert_eq!(
            r.time_to_resolve,
            Some(std::time::Duration::from_secs(45 * 60))
        );
        assert_eq!(r.time_zone, "Europe/Berlin");
        assert_eq!(r.people.paged.len(), 2);
        let alice = &r.people.paged[0];
        assert_eq!(
            (alice.name.as_deref(), alice.pages, alice.sent),
            (Some("Alice A"), 2, 1)
        );
        assert_eq!(alice.channels, ["sms", "voice"]);
        assert_eq!(r.people.answered[0].action, "acknowledged");
        assert_eq!(r.people.answered[0].name.as_deref(), Some("Alice A"));
        assert_eq!(r.people.answered[1].by, "bob");
        assert_eq!(r.pages[0].page.address, "+**********011");
        assert_eq!(r.pages[2].page.address, "a***@example.org");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["time_to_acknowledge_seconds"], 180.0);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn stakeholder_addresses_and_stray_numbers_are_masked_in_the_timeline() {
        let mut status = page(4, "x", "email", "sent");
        status.user_id = None;
        status.address = "ops@example.org".into();
        let event = TimelineEvent {
            id: 1,
            at: t(0),
            kind: crate::incident::EventKind::PageSent.into(),
            actor: None,
            via: None,
            message: "email to ops@example.org sent; sms from +447700900123 ignored".into(),
            data: serde_json::json!({ "from": "+447700900123", "outbox_id": 4 }),
        };
        let r = build(incident(), vec![event], &[status], &config(), t(1));
        assert_eq!(
            r.timeline[0].message,
            "email to o***@example.org sent; sms from +*********123 ignored"
        );
        assert_eq!(r.timeline[0].data["from"], "+*********123");
        assert_eq!(r.timeline[0].data["outbox_id"], 4);
        assert_eq!(
            redact("ref +123 and 2026-11-22", &[]),
            "ref +123 and 2026-11-22"
        );
    }

    #[test]
    fn an_open_incident_has_no_durations() {
        let mut i = incident();
        i.acknowledged = None;
        i.resolved = None;
        i.status = Status::Triggered;
        let r = build(i, vec![], &[], &config(), t(5));
        assert_eq!((r.time_to_acknowledge, r.time_to_resolve), (None, None));
        assert!(r.people.answered.is_empty() && r.people.paged.is_empty());
    }
}
