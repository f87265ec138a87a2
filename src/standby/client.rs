//! Asking the upstream about one incident, and telling it about a local acknowledgement.
//!
//! The HTTP client is `ureq` (blocking, already used by outbound notifications and the CLI). Each
//! request runs on tokio's blocking pool with ureq's own connect and overall timeouts, and the
//! await is bounded as well, so an upstream that accepts the connection and never answers costs
//! one blocking thread for at most the timeout and never holds a runtime worker (intake, the
//! escalation engine and the senders keep running). The answer parsers are pure and tested on the
//! providers' documented shapes. Keys are never logged and never put in an error.
//!
//! Shapes, from the providers' documentation:
//! - PagerDuty REST API v2, `GET /incidents?incident_key=KEY` with `Authorization: Token
//!   token=KEY` and `Accept: application/vnd.pagerduty+json;version=2` answers
//!   `{"incidents":[{"id":..,"status":"triggered|acknowledged|resolved","incident_key":..,
//!   "acknowledgements":[{"at":..,"acknowledger":{"summary":NAME,..}}],
//!   "last_status_change_by":{"summary":NAME,..}}],"limit":..,"more":false}`.
//! - PagerDuty Events API v2, `POST /v2/enqueue` with `{"routing_key":..,"event_action":
//!   "acknowledge","dedup_key":..}` answers 202 `{"status":"success",..}`.
//! - Opsgenie Alert API, `GET /v2/alerts/{alias}?identifierType=alias` with `Authorization:
//!   GenieKey KEY` answers `{"data":{"status":"open|closed","acknowledged":bool,"owner":..,
//!   "report":{"acknowledgedBy":..,"closedBy":..}},"requestId":..}`, or 404 for an unknown alias;
//!   `POST /v2/alerts/{alias}/acknowledge?identifierType=alias` with `{"user":..,"source":..,
//!   "note":..}` answers 202.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::decide::{Answer, Check};
use super::{Settings, Upstream};
use crate::outbound::client::{classify, Answer as PostAnswer};

/// Largest answer body read; a bigger one is an error rather than memory spent.
const MAX_BODY: u64 = 1024 * 1024;

/// How much earlier than the local incident the upstream's may have been opened and still be
/// the same occurrence: both get the sender's alert, but not at the same moment (group waits,
/// retries, one of them down for a while).
pub const SAME_OCCURRENCE: Duration = Duration::from_secs(15 * 60);

/// Asks the upstream whether the incident with `key` (dedup key / alias) is acknowledged.
///
/// Dedup keys recur (an Alertmanager group fires again next week, or a minute after it
/// resolved), and the upstream keeps the old incident: PagerDuty lists last month's resolved
/// ones for the key, Opsgenie answers for the alias's last alert. So, with `opened` the local
/// incident's opening: only an upstream incident opened at most [`SAME_OCCURRENCE`] before it
/// is about this one (an older one is [`Answer::Unknown`]), and its acknowledgement or
/// resolution counts only when it came at or after `opened` (an earlier one was about the
/// occurrence before: acknowledged reads as triggered, resolved as unknown). An old resolution
/// never silences a new alert. `None` (the reachability probe) takes any answer.
pub async fn check(settings: &Settings, key: &str, opened: Option<DateTime<Utc>>) -> Check {
    let (url, auth) = match settings.upstream {
        Upstream::PagerDuty => (
            format!(
                "{}/incidents?incident_key={}",
                settings.base_url.trim_end_matches('/'),
                encode(key)
            ),
            format!("Token token={}", settings.key.expose()),
        ),
        Upstream::Opsgenie => (
            format!(
                "{}/v2/alerts/{}?identifierType=alias",
                settings.base_url.trim_end_matches('/'),
                encode(key)
            ),
            format!("GenieKey {}", settings.key.expose()),
        ),
    };
    let upstream = settings.upstream;
    let timeout = settings.timeout;
    let secret = settings.key.expose().to_string();
    let blocking = tokio::task::spawn_blocking(move || {
        // The shared outbound client; this request's deadline also bounds its connect.
        let r = crate::outbound::client::agent()
            .get(&url)
            .timeout(timeout)
            .set("Authorization", &auth)
            .set("Accept", accept(upstream))
            .call();
        let (status, body) = match r {
            Ok(resp) => (resp.status(), read_body(resp)),
            Err(ureq::Error::Status(code, resp)) => (code, read_body(resp)),
            Err(ureq::Error::Transport(t)) => {
                return Check::Failed {
                    error: transport_error(&t, &url, &secret),
                }
            }
        };
        match body {
            Ok(body) => parse(upstream, status, &body, opened),
            Err(e) => Check::Failed {
                error: format!("HTTP {status}: cannot read the answer: {e}"),
            },
        }
    });
    match tokio::time::timeout(timeout + Duration::from_secs(1), blocking).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => Check::Failed {
            error: format!("check thread failed: {e}"),
        },
        Err(_) => Check::Failed {
            error: format!("no answer within {}", humantime::format_duration(timeout)),
        },
    }
}

/// Tells the upstream that the incident with `key` was acknowledged on the box, by `by`.
pub async fn acknowledge(settings: &Settings, key: &str, by: &str) -> PostAnswer {
    let base = settings.base_url.trim_end_matches('/');
    let (url, headers, body) = match settings.upstream {
        Upstream::PagerDuty => {
            let Some(routing_key) = &settings.routing_key else {
                return PostAnswer::Reject {
                    error: "no routing_key_file: PagerDuty's Events API needs the integration key"
                        .into(),
                };
            };
            (
                format!("{}/v2/enqueue", settings.events_url.trim_end_matches('/')),
                vec![],
                serde_json::json!({
                    "routing_key": routing_key.expose(),
                    "event_action": "acknowledge",
                    "dedup_key": key,
                })
                .to_string(),
            )
        }
        Upstream::Opsgenie => (
            format!(
                "{base}/v2/alerts/{}/acknowledge?identifierType=alias",
                encode(key)
            ),
            vec![(
                "Authorization".to_string(),
                format!("GenieKey {}", settings.key.expose()),
            )],
            serde_json::json!({
                "user": by,
                "source": "pagerbox",
                "note": format!("acknowledged on pagerbox by {by}"),
            })
            .to_string(),
        ),
    };
    let answer = crate::outbound::client::post(url, headers, body, settings.timeout).await;
    // The routing key and GenieKey are credentials: cut them out of any error text.
    let scrub = |e: String| {
        let mut e = e.replace(settings.key.expose(), "<key>");
        if let Some(r) = &settings.routing_key {
            e = e.replace(r.expose(), "<key>");
        }
        e
    };
    match answer {
        PostAnswer::Retry { error, after } => PostAnswer::Retry {
            error: scrub(error),
            after,
        },
        PostAnswer::Reject { error } => PostAnswer::Reject {
            error: scrub(error),
        },
        ok => ok,
    }
}

fn accept(u: Upstream) -> &'static str {
    match u {
        Upstream::PagerDuty => "application/vnd.pagerduty+json;version=2",
        Upstream::Opsgenie => "application/json",
    }
}

fn read_body(resp: ureq::Response) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    resp.into_reader().take(MAX_BODY).read_to_string(&mut s)?;
    Ok(s)
}

/// A transport error without the URL (it carries the incident key) or the key.
fn transport_error(t: &ureq::Transport, url: &str, secret: &str) -> String {
    let mut msg = t.kind().to_string();
    if let Some(m) = t.message() {
        msg.push_str(": ");
        msg.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        msg.push_str(": ");
        msg.push_str(&src.to_string());
    }
    msg.replace(url, "<url>").replace(secret, "<key>")
}

/// Percent-encodes a path or query component (RFC 3986 unreserved characters pass).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What an answer of `status` with `body` says about the local incident opened at `opened`
/// (see [`check`]). Pure.
pub fn parse(upstream: Upstream, status: u16, body: &str, opened: Option<DateTime<Utc>>) -> Check {
    if upstream == Upstream::Opsgenie && status == 404 {
        return Check::Answered(Answer::Unknown);
    }
    if !(200..=299).contains(&status) {
        let error = match classify(status, None) {
            PostAnswer::Retry { error, .. } | PostAnswer::Reject { error } => error,
            PostAnswer::Ok { .. } => format!("HTTP {status}"),
        };
        return Check::Failed { error };
    }
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            return Check::Failed {
                error: format!("HTTP {status}: the answer is not JSON: {e}"),
            }
        }
    };
    let answer = match upstream {
        Upstream::PagerDuty => pagerduty(&v, opened),
        Upstream::Opsgenie => opsgenie(&v, opened),
    };
    match answer {
        Some(a) => Check::Answered(a),
        None => Check::Failed {
            error: format!(
                "HTTP {status}: the answer does not have the documented {} shape",
                upstream.name()
            ),
        },
    }
}

fn summary(v: &Value) -> Option<String> {
    v.get("summary")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
}

/// An RFC 3339 stamp of an answer, in UTC.
fn stamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Whether something upstream that happened at `at` can be about the local incident opened at
/// `opened` less `before` (see [`check`]). An unreadable time is not: only a positive answer
/// keeps the box quiet, and an undated one is not positive about this incident.
fn not_before(at: Option<DateTime<Utc>>, opened: Option<DateTime<Utc>>, before: Duration) -> bool {
    let Some(opened) = opened else {
        return true;
    };
    at.is_some_and(|t| t >= crate::clock::sub(opened, before))
}

fn pagerduty(v: &Value, opened: Option<DateTime<Utc>>) -> Option<Answer> {
    let incidents = v.get("incidents")?.as_array()?;
    // Only this occurrence's; an open one wins over a resolved one.
    let current: Vec<&Value> = incidents
        .iter()
        .filter(|i| not_before(stamp(i.get("created_at")), opened, SAME_OCCURRENCE))
        .collect();
    let inc = current
        .iter()
        .find(|i| i.get("status").and_then(Value::as_str) != Some("resolved"))
        .or_else(|| current.first());
    let Some(inc) = inc else {
        return Some(Answer::Unknown);
    };
    let changed_by = inc
        .get("last_status_change_by")
        .and_then(summary)
        .unwrap_or_else(|| "PagerDuty".to_string());
    let changed_at = stamp(inc.get("last_status_change_at"));
    let last_ack = inc
        .get("acknowledgements")
        .and_then(Value::as_array)
        .and_then(|a| a.last());
    Some(match inc.get("status")?.as_str()? {
        "triggered" => Answer::Triggered,
        "acknowledged" => {
            let at = stamp(last_ack.and_then(|a| a.get("at"))).or(changed_at);
            if !not_before(at, opened, Duration::ZERO) {
                return Some(Answer::Triggered);
            }
            Answer::Acknowledged {
                by: last_ack
                    .and_then(|a| a.get("acknowledger"))
                    .and_then(summary)
                    .unwrap_or(changed_by),
            }
        }
        "resolved" => {
            let at = stamp(inc.get("resolved_at")).or(changed_at);
            if !not_before(at, opened, Duration::ZERO) {
                return Some(Answer::Unknown);
            }
            Answer::Resolved { by: changed_by }
        }
        _ => return None,
    })
}

fn opsgenie(v: &Value, opened: Option<DateTime<Utc>>) -> Option<Answer> {
    let data = v.get("data")?;
    let created = stamp(data.get("createdAt"));
    if data.get("status").is_some() && !not_before(created, opened, SAME_OCCURRENCE) {
        return Some(Answer::Unknown);
    }
    let report = data.get("report");
    // `report.ackTime` and `report.closeTime` are milliseconds after the alert's creation;
    // without them, the alert's last update.
    let after_creation = |k: &str| {
        let ms = report.and_then(|r| r.get(k)).and_then(Value::as_u64)?;
        let ms = i64::try_from(ms).ok()?;
        created?.checked_add_signed(chrono::TimeDelta::try_milliseconds(ms)?)
    };
    let updated = stamp(data.get("updatedAt"));
    let field = |k: &str| {
        report
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let owner = data
        .get("owner")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(match data.get("status")?.as_str()? {
        "closed" => {
            let at = after_creation("closeTime").or(updated);
            if !not_before(at, opened, Duration::ZERO) {
                return Some(Answer::Unknown);
            }
            Answer::Resolved {
                by: field("closedBy").unwrap_or_else(|| "Opsgenie".into()),
            }
        }
        "open" if data.get("acknowledged").and_then(Value::as_bool) == Some(true) => {
            let at = after_creation("ackTime").or(updated);
            if !not_before(at, opened, Duration::ZERO) {
                return Some(Answer::Triggered);
            }
            Answer::Acknowledged {
                by: field("acknowledgedBy")
                    .or(owner)
                    .unwrap_or_else(|| "Opsgenie".into()),
            }
        }
        "open" => Answer::Triggered,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const PD: Upstream = Upstream::PagerDuty;
    const OG: Upstream = Upstream::Opsgenie;

    #[test]
    fn pagerduty_answers() {
        let acked = r#"{"incidents":[{"id":"PT4KHLK","type":"incident","status":"acknowledged",
            "incident_key":"baf7cf21b1da41b4b0221008339ff357",
            "acknowledgements":[{"at":"2015-11-10T00:32:52Z","acknowledger":{"id":"PXPGF42",
            "type":"user_reference","summary":"Earline Greenholt"}}],
            "last_status_change_by":{"id":"PXPGF42","type":"user_reference","summary":"Earline Greenholt"}}],
            "limit":25,"offset":0,"more":false}"#;
        assert_eq!(
            parse(PD, 200, acked, None),
            Check::Answered(Answer::Acknowledged {
                by: "Earline Greenholt".into()
            })
        );
        let triggered = r#"{"incidents":[{"id":"P1","status":"triggered","acknowledgements":[]}]}"#;
        assert_eq!(
            parse(PD, 200, triggered, None),
            Check::Answered(Answer::Triggered)
        );
        let resolved = r#"{"incidents":[{"id":"P1","status":"resolved",
            "last_status_change_by":{"summary":"Bob"}}]}"#;
        assert_eq!(
            parse(PD, 200, resolved, None),
            Check::Answered(Answer::Resolved { by: "Bob".into() })
        );
        assert_eq!(
            parse(PD, 200, r#"{"incidents":[],"limit":25,"more":false}"#, None),
            Check::Answered(Answer::Unknown)
        );
        // An old resolved incident with the same key does not hide an open one.
        let both = r#"{"incidents":[{"status":"resolved"},{"status":"triggered"}]}"#;
        assert_eq!(
            parse(PD, 200, both, None),
            Check::Answered(Answer::Triggered)
        );
    }

    #[test]
    fn opsgenie_answers() {
        let acked = r#"{"data":{"id":"70413a06","tinyId":"1791","alias":"event_573","status":"open",
            "acknowledged":true,"owner":"morpheus@opsgenie.com",
            "report":{"ackTime":15702,"acknowledgedBy":"agent_smith@opsgenie.com"}},
            "took":0.004,"requestId":"43a29c5c"}"#;
        assert_eq!(
            parse(OG, 200, acked, None),
            Check::Answered(Answer::Acknowledged {
                by: "agent_smith@opsgenie.com".into()
            })
        );
        let open = r#"{"data":{"status":"open","acknowledged":false},"requestId":"x"}"#;
        assert_eq!(
            parse(OG, 200, open, None),
            Check::Answered(Answer::Triggered)
        );
        let closed =
            r#"{"data":{"status":"closed","acknowledged":false,"report":{"closedBy":"neo"}}}"#;
        assert_eq!(
            parse(OG, 200, closed, None),
            Check::Answered(Answer::Resolved { by: "neo".into() })
        );
        assert_eq!(
            parse(
                OG,
                404,
                r#"{"message":"Alert does not exist","took":0.002}"#,
                None
            ),
            Check::Answered(Answer::Unknown)
        );
    }

    /// A key that recurs: the upstream still lists the last occurrence's incident. Only one
    /// opened at most 15 minutes before the local one (at 10:00) answers for it, and its
    /// acknowledgement or resolution only when it came after 10:00: an older resolution is
    /// "unknown" and an older acknowledgement "triggered", never a reason to stay quiet.
    #[test]
    fn an_older_occurrence_upstream_is_no_answer_about_this_one() {
        let opened = Some(Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap());
        let pd = |created: &str, status: &str, changed: &str| {
            format!(
                r#"{{"incidents":[{{"id":"P0","status":"{status}","created_at":"{created}",
                "last_status_change_at":"{changed}","last_status_change_by":{{"summary":"Bob"}}}}],
                "limit":25,"more":false}}"#
            )
        };
        let og = |created: &str, status: &str, report: &str| {
            format!(
                r#"{{"data":{{"status":"{status}","acknowledged":{acked},"createdAt":"{created}",
                "report":{report}}}}}"#,
                acked = report.contains("ackTime")
            )
        };
        let bob = || Answer::Resolved { by: "Bob".into() };
        let neo = || Answer::Resolved { by: "neo".into() };
        let week_old = pd("2026-11-30T10:00:00Z", "resolved", "2026-11-30T10:05:00Z");
        // (upstream, body, the local incident's opening, the answer), in words:
        let cases = [
            // last week's resolution is no answer; the probe (no local incident) still reads it;
            (PD, week_old.clone(), opened, Answer::Unknown),
            (PD, week_old, None, bob()),
            // fired 09:55, resolved or acknowledged 09:58, fired again (the box's opened 10:00);
            (PD, pd("2026-12-07T09:55:00Z", "resolved", "2026-12-07T09:58:00Z"), opened, Answer::Unknown),
            (PD, pd("2026-12-07T09:55:00Z", "acknowledged", "2026-12-07T09:58:00Z"), opened, Answer::Triggered),
            // resolved after the box's incident opened: about this one;
            (PD, pd("2026-12-07T09:59:58Z", "resolved", "2026-12-07T10:03:00+00:00"), opened, bob()),
            // this occurrence's incident answers, whatever the old one says; undated ones do not;
            (
                PD,
                r#"{"incidents":[
                {"id":"P2","status":"acknowledged","created_at":"2026-12-07T09:50:00+01:00"},
                {"id":"P1","status":"acknowledged","created_at":"2026-12-07T09:59:00Z",
                 "acknowledgements":[{"at":"2026-12-07T10:01:00Z","acknowledger":{"summary":"Ann"}}]},
                {"id":"P3","status":"resolved"},
                {"id":"P0","status":"resolved","created_at":"2026-11-30T10:00:00Z"}]}"#
                    .to_string(),
                opened,
                Answer::Acknowledged { by: "Ann".into() },
            ),
            // Opsgenie: closed last week; undated;
            (OG, og("2026-11-30T10:00:00.396Z", "closed", r#"{"closeTime":60503,"closedBy":"neo"}"#), opened, Answer::Unknown),
            (OG, r#"{"data":{"status":"closed","report":{"closedBy":"neo"}}}"#.to_string(), opened, Answer::Unknown),
            // created 09:58 and closed 60.5 s later (09:59): the occurrence before; 3 minutes
            // later: this one; acknowledged 15.7 s after creation: before this one opened.
            (OG, og("2026-12-07T09:58:00Z", "closed", r#"{"closeTime":60503,"closedBy":"neo"}"#), opened, Answer::Unknown),
            (OG, og("2026-12-07T09:58:00Z", "closed", r#"{"closeTime":180000,"closedBy":"neo"}"#), opened, neo()),
            (OG, og("2026-12-07T09:58:00Z", "open", r#"{"ackTime":15702,"acknowledgedBy":"neo"}"#), opened, Answer::Triggered),
        ];
        for (upstream, body, opened, want) in cases {
            assert_eq!(
                parse(upstream, 200, &body, opened),
                Check::Answered(want),
                "{upstream:?} {opened:?} {body}"
            );
        }
    }

    #[test]
    fn errors_are_failures() {
        for (u, status, body) in [
            (PD, 401, r#"{"error":{"message":"Unauthorized"}}"#),
            (PD, 404, "{}"),
            (PD, 503, ""),
            (PD, 200, "<html>"),
            (PD, 200, r#"{"incidents":[{"status":"sleeping"}]}"#),
            (PD, 200, r#"{"something":"else"}"#),
            (OG, 500, "{}"),
            (OG, 200, r#"{"data":{}}"#),
        ] {
            assert!(
                matches!(parse(u, status, body, None), Check::Failed { .. }),
                "{u:?} {status} {body}"
            );
        }
    }

    #[test]
    fn keys_are_encoded() {
        assert_eq!(encode("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        assert_eq!(encode("Abc-1.2_3~"), "Abc-1.2_3~");
    }
}
