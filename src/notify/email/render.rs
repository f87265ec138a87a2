//! What an email about incidents says: subject, plain text and HTML, as pure functions of the
//! incident, its timeline and how the reader can act on it.
//!
//! The HTML part is a maud template: every interpolated value is escaped by the template itself,
//! so hostile alert text (a summary or a detail holding markup) shows as text and nothing in this
//! file has to remember to escape it. Links are clickable only for `http`, `https` and `mailto`.

use std::fmt::Write as _;

use maud::{html, Markup, DOCTYPE};

use super::{one_line, EmailMessage};
use crate::incident::{EventKind, Incident, Status, TimelineEvent};

/// Longest summary kept in a subject, in characters.
const SUBJECT_SUMMARY_CHARS: usize = 140;

/// Everything [`render_incident_email`] needs; the caller gathers it from the store and config.
#[derive(Debug, Clone)]
pub struct IncidentEmail<'a> {
    /// The incident as stored, with its current status.
    pub incident: &'a Incident,
    /// The incident's timeline, oldest first.
    pub timeline: &'a [TimelineEvent],
    /// How to acknowledge, e.g. `Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42`.
    pub reply_hint: String,
    /// A runbook URL or a short text from the route or service.
    pub runbook: Option<String>,
    /// The recipient.
    pub to: String,
    /// Zone for the times shown (the recipient's, or the daemon's).
    pub tz: chrono_tz::Tz,
}

/// Renders an incident as an email: subject `[pagerbox] #42 CRIT db: /var on db1 97% full`
/// (with `ACKNOWLEDGED` or `RESOLVED` after the id once it is no longer triggered), and a plain
/// text and an HTML body with summary, status, severity, service, source, route, alert count,
/// acknowledgement, details (pretty JSON), runbook, links, timeline in `tz`, and how to ack.
///
/// Pure: no clock, no I/O. All incident text is HTML-escaped in the HTML part; links are
/// clickable only for `http`, `https` and `mailto`.
pub fn render_incident_email(input: &IncidentEmail<'_>) -> EmailMessage {
    let inc = input.incident;
    EmailMessage {
        to: input.to.clone(),
        subject: subject(inc),
        text: render_text(input),
        html: Some(render_html(input)),
    }
}

fn subject(inc: &Incident) -> String {
    format!("[pagerbox] {}", heading(inc, Some(SUBJECT_SUMMARY_CHARS)))
}

/// `#42 CRIT db: /var on db1 97% full`, on one line, the summary cut to `max_chars` if given.
fn heading(inc: &Incident, max_chars: Option<usize>) -> String {
    let mut s = format!("#{} ", inc.id);
    match inc.status {
        Status::Triggered => {}
        Status::Acknowledged => s.push_str("ACKNOWLEDGED "),
        Status::Resolved => s.push_str("RESOLVED "),
    }
    s.push_str(inc.severity.as_short());
    s.push(' ');
    if let Some(service) = &inc.service {
        s.push_str(&one_line(service));
        s.push_str(": ");
    }
    let summary = one_line(&inc.summary);
    match max_chars {
        Some(max) if summary.chars().count() > max => {
            s.extend(summary.chars().take(max - 1));
            s.push('…');
        }
        _ => s.push_str(&summary),
    }
    s
}

/// The labelled facts shown at the top of both parts, in order.
fn facts(input: &IncidentEmail<'_>) -> Vec<(&'static str, String)> {
    let inc = input.incident;
    let time = |t: &chrono::DateTime<chrono::Utc>| format_time(t, input.tz);
    let mut facts = vec![
        ("Status", inc.status.to_string()),
        ("Severity", inc.severity.to_string()),
    ];
    if let Some(service) = &inc.service {
        facts.push(("Service", service.clone()));
    }
    if let Some(source) = &inc.source {
        facts.push(("Source", source.clone()));
    }
    if let Some(route) = &inc.route {
        facts.push(("Route", route.clone()));
    }
    facts.push(("First seen", time(&inc.first_seen)));
    if inc.alert_count > 1 {
        facts.push((
            "Alerts",
            format!("{} (last {})", inc.alert_count, time(&inc.last_seen)),
        ));
    }
    if let Some(t) = &inc.acknowledged {
        facts.push((
            "Acknowledged",
            format!("by {} via {} at {}", t.by, t.via, time(&t.at)),
        ));
    }
    if let Some(t) = &inc.resolved {
        facts.push((
            "Resolved",
            format!("by {} via {} at {}", t.by, t.via, time(&t.at)),
        ));
    }
    facts.push(("Key", inc.dedup_key.clone()));
    facts
}

fn format_time(t: &chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// Details as pretty JSON, or `None` when there are none worth showing.
fn details_json(details: &serde_json::Value) -> Option<String> {
    match details {
        serde_json::Value::Null => None,
        serde_json::Value::Object(m) if m.is_empty() => None,
        v => serde_json::to_string_pretty(v).ok(),
    }
}

/// Who did a timeline event, as `alice via sms`.
fn event_actor(ev: &TimelineEvent) -> Option<String> {
    match (&ev.actor, &ev.via) {
        (Some(a), Some(v)) => Some(format!("{a} via {v}")),
        (Some(a), None) => Some(a.clone()),
        (None, Some(v)) => Some(format!("via {v}")),
        (None, None) => None,
    }
}

fn render_text(input: &IncidentEmail<'_>) -> String {
    let inc = input.incident;
    let mut t = String::new();
    let _ = writeln!(t, "{}\n", heading(inc, None));
    for (label, value) in facts(input) {
        let _ = writeln!(t, "{:<13} {}", format!("{label}:"), value);
    }
    if inc.status.is_open() && !input.reply_hint.is_empty() {
        let _ = writeln!(t, "\nHow to acknowledge:\n  {}", input.reply_hint);
    }
    if let Some(runbook) = &input.runbook {
        let _ = writeln!(t, "\nRunbook:\n  {runbook}");
    }
    if !inc.links.is_empty() {
        let _ = writeln!(t, "\nLinks:");
        for link in &inc.links {
            match &link.text {
                Some(text) => {
                    let _ = writeln!(t, "  - {text}: {}", link.href);
                }
                None => {
                    let _ = writeln!(t, "  - {}", link.href);
                }
            }
        }
    }
    if let Some(details) = details_json(&inc.details) {
        let _ = writeln!(t, "\nDetails:");
        for line in details.lines() {
            let _ = writeln!(t, "  {line}");
        }
    }
    if !input.timeline.is_empty() {
        let _ = writeln!(t, "\nTimeline ({}):", input.tz.name());
        for ev in input.timeline {
            let _ = write!(t, "  {}  {}", format_time(&ev.at, input.tz), ev.kind);
            if let Some(actor) = event_actor(ev) {
                let _ = write!(t, " ({actor})");
            }
            if !ev.message.is_empty() {
                let _ = write!(t, ": {}", ev.message);
            }
            let _ = writeln!(t);
        }
    }
    let _ = writeln!(t, "\n-- \npagerbox");
    t
}

fn render_html(input: &IncidentEmail<'_>) -> String {
    html_document(&subject(input.incident), html_section(input))
}

/// A whole HTML email around `body`.
fn html_document(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) }
            }
            body style="font-family:sans-serif" {
                (body)
                p style="color:#777" { "pagerbox" }
            }
        }
    }
    .into_string()
}

/// One incident's part of an HTML email: heading, facts, how to ack, runbook, links, details,
/// timeline.
fn html_section(input: &IncidentEmail<'_>) -> Markup {
    let inc = input.incident;
    let runbook = input.runbook.as_deref().map(|r| {
        let trimmed = r.trim();
        // A runbook that is one safe URL is a link; anything else is text, line breaks kept.
        let is_link = is_safe_href(trimmed) && !trimmed.contains(char::is_whitespace);
        (r, trimmed, is_link)
    });
    html! {
        h2 { (heading(inc, None)) }
        table {
            @for (label, value) in facts(input) {
                tr { th align="left" { (label) } td { (value) } }
            }
        }
        @if inc.status.is_open() && !input.reply_hint.is_empty() {
            h3 { "How to acknowledge" }
            p { (input.reply_hint) }
        }
        @if let Some((runbook, trimmed, is_link)) = runbook {
            h3 { "Runbook" }
            @if is_link {
                p { (link_html(trimmed, None)) }
            } @else {
                p style="white-space:pre-wrap" { (runbook) }
            }
        }
        @if !inc.links.is_empty() {
            h3 { "Links" }
            ul {
                @for link in &inc.links {
                    li { (link_html(&link.href, link.text.as_deref())) }
                }
            }
        }
        @if let Some(details) = details_json(&inc.details) {
            h3 { "Details" }
            pre { (details) }
        }
        @if !input.timeline.is_empty() {
            h3 { "Timeline (" (input.tz.name()) ")" }
            table {
                @for ev in input.timeline {
                    tr {
                        td { (format_time(&ev.at, input.tz)) }
                        td { (ev.kind) }
                        td { (event_actor(ev).unwrap_or_default()) }
                        td { (ev.message) }
                    }
                }
            }
        }
    }
}

/// Renders a digest (several incidents in one page) as one email carrying, for each incident,
/// everything a single page's email does: facts, how to ack it, runbook, links, details and
/// timeline. A digest that fell through to email must be as actionable as the pages it groups.
/// `items` must not be empty; the subject names the count and the first incidents.
pub fn render_digest_email(items: &[IncidentEmail<'_>]) -> EmailMessage {
    let heads: Vec<String> = items
        .iter()
        .map(|i| format!("#{} {}", i.incident.id, i.incident.severity.as_short()))
        .collect();
    let subject = format!(
        "[pagerbox] {} incident{}: {}",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        heads.join(", ")
    );
    let text = items
        .iter()
        .map(render_text)
        .collect::<Vec<_>>()
        .join("\n========================================\n\n");
    let body = html! {
        @for (n, item) in items.iter().enumerate() {
            @if n > 0 { hr; }
            (html_section(item))
        }
    };
    EmailMessage {
        to: items.first().map(|i| i.to.clone()).unwrap_or_default(),
        subject: one_line(&subject),
        text,
        html: Some(html_document(&subject, body)),
    }
}

/// How to acknowledge incident `id`, by every path that works for the person reading: the SMS
/// reply only when a page SMS actually went out to them (an email that falls back from SMS must
/// not send them looking for a text that never came), the status page when its address is known,
/// the CLI and the API.
pub fn ack_paths(
    id: crate::incident::IncidentId,
    sms_sent: bool,
    status_page: Option<&str>,
) -> String {
    let mut paths = Vec::new();
    if sms_sent {
        paths.push(format!("reply {id}a to the page SMS ({id}r resolves)"));
    }
    if let Some(url) = status_page {
        paths.push(format!("the status page {url}"));
    }
    paths.push(format!("run: pagerbox ack {id}"));
    paths.push(format!("or POST /v1/incidents/{id}/acknowledge"));
    format!("Acknowledge #{id}: {}", paths.join("; "))
}

/// True when the timeline shows a page SMS to `user` that went out (sent or delivered).
pub fn sms_went_out(timeline: &[TimelineEvent], user: &str) -> bool {
    let prefix = format!("sms to {user} ");
    timeline.iter().any(|e| {
        matches!(
            e.kind.known(),
            Some(EventKind::PageSent | EventKind::PageDelivered)
        ) && e.message.starts_with(&prefix)
    })
}

/// A link as HTML: an `<a>` for safe schemes, plain text otherwise (so a `javascript:` href from
/// an alert can never be clicked).
fn link_html(href: &str, text: Option<&str>) -> Markup {
    let label = text.unwrap_or(href);
    html! {
        @if is_safe_href(href) {
            a href=(href) { (label) }
        } @else if text.is_some() {
            (label) ": " (href)
        } @else {
            (label)
        }
    }
}

fn is_safe_href(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Link, Severity, Transition};
    use chrono::TimeZone as _;

    fn incident() -> Incident {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 5).unwrap();
        Incident {
            id: 42,
            dedup_key: "db1/var".into(),
            status: Status::Triggered,
            severity: Severity::Critical,
            summary: "/var on db1 97% full".into(),
            source: Some("prometheus".into()),
            service: Some("db".into()),
            route: Some("db".into()),
            details: serde_json::json!({"mount": "/var", "used": 0.97}),
            links: vec![
                Link {
                    href: "https://grafana.example.org/d/db1?a=1&b=2".into(),
                    text: Some("Grafana".into()),
                },
                Link {
                    href: "javascript:alert(1)".into(),
                    text: Some("evil".into()),
                },
            ],
            alert_count: 3,
            first_seen: t0,
            last_seen: t0 + chrono::Duration::minutes(2),
            acknowledged: None,
            resolved: None,
        }
    }

    fn timeline() -> Vec<TimelineEvent> {
        vec![TimelineEvent {
            id: 1,
            at: chrono::Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 5).unwrap(),
            kind: EventKind::Triggered.into(),
            actor: Some("alertmanager".into()),
            via: Some("http".into()),
            message: "first alert".into(),
            data: serde_json::Value::Null,
        }]
    }

    fn input<'a>(inc: &'a Incident, tl: &'a [TimelineEvent]) -> IncidentEmail<'a> {
        IncidentEmail {
            incident: inc,
            timeline: tl,
            reply_hint: "Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42".into(),
            runbook: Some("https://wiki.example.org/runbooks/disk-full".into()),
            to: "alice@example.org".into(),
            tz: chrono_tz::Europe::Berlin,
        }
    }

    #[test]
    fn subject_has_id_severity_service_and_summary() {
        let inc = incident();
        let tl = timeline();
        let msg = render_incident_email(&input(&inc, &tl));
        assert_eq!(msg.subject, "[pagerbox] #42 CRIT db: /var on db1 97% full");
        assert_eq!(msg.to, "alice@example.org");

        let mut resolved = incident();
        resolved.status = Status::Resolved;
        resolved.service = None;
        resolved.summary = "line one\r\nBcc: x@evil".into();
        let msg = render_incident_email(&input(&resolved, &tl));
        assert_eq!(
            msg.subject,
            "[pagerbox] #42 RESOLVED CRIT line one  Bcc: x@evil"
        );
    }

    #[test]
    fn long_summary_is_cut_in_the_subject_only() {
        let mut inc = incident();
        inc.summary = "é".repeat(300);
        let msg = render_incident_email(&input(&inc, &[]));
        let kept = msg.subject.chars().filter(|c| *c == 'é').count();
        assert_eq!(kept, SUBJECT_SUMMARY_CHARS - 1);
        assert!(msg.subject.ends_with('…'));
        assert!(msg.text.contains(&"é".repeat(300)));
    }

    #[test]
    fn html_escapes_alert_text() {
        let mut inc = incident();
        inc.summary = "<script>alert('x')</script> & \"quotes\"".into();
        inc.details = serde_json::json!({"note": "<img src=x onerror=alert(1)>"});
        let mut tl = timeline();
        tl[0].message = "<b>bold</b>".into();
        let msg = render_incident_email(&input(&inc, &tl));
        let html = msg.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>bold"), "{html}");
        // maud escapes `&`, `<`, `>` and `"`; every attribute it writes is double-quoted, so a
        // single quote cannot end one and is left as it is.
        assert!(
            html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quotes&quot;"),
            "{html}"
        );
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // The plain part is plain: no escaping there.
        assert!(msg.text.contains("<script>alert('x')</script>"));
    }

    #[test]
    fn a_hostile_link_cannot_leave_its_attribute_or_inject_markup() {
        let mut inc = incident();
        inc.links = vec![Link {
            href: "https://x.example/\" onmouseover=\"alert(1)".into(),
            text: Some("<script>steal()</script>".into()),
        }];
        let msg = render_incident_email(&IncidentEmail {
            runbook: Some("see <iframe src=//evil>".into()),
            ..input(&inc, &[])
        });
        let html = msg.html.unwrap();
        assert!(
            html.contains(
                "<a href=\"https://x.example/&quot; onmouseover=&quot;alert(1)\">\
                 &lt;script&gt;steal()&lt;/script&gt;</a>"
            ),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<iframe"), "{html}");
        assert!(html.contains("see &lt;iframe src=//evil&gt;"), "{html}");
    }

    #[test]
    fn links_are_present_and_only_safe_schemes_are_clickable() {
        let inc = incident();
        let tl = timeline();
        let msg = render_incident_email(&input(&inc, &tl));
        let html = msg.html.unwrap();
        assert!(
            html.contains("<a href=\"https://grafana.example.org/d/db1?a=1&amp;b=2\">Grafana</a>")
        );
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(html.contains("evil: javascript:alert(1)"));
        assert!(html.contains(
            "<a href=\"https://wiki.example.org/runbooks/disk-full\">https://wiki.example.org/runbooks/disk-full</a>"
        ));
        assert!(msg
            .text
            .contains("  - Grafana: https://grafana.example.org/d/db1?a=1&b=2"));
        assert!(msg
            .text
            .contains("Runbook:\n  https://wiki.example.org/runbooks/disk-full"));
    }

    #[test]
    fn body_has_facts_details_timeline_in_zone_and_ack_hint() {
        let inc = incident();
        let tl = timeline();
        let msg = render_incident_email(&input(&inc, &tl));
        let text = &msg.text;
        assert!(
            text.starts_with("#42 CRIT db: /var on db1 97% full\n"),
            "{text}"
        );
        for expected in [
            "Status:       triggered",
            "Severity:     critical",
            "Service:      db",
            "Source:       prometheus",
            "Alerts:       3 (last 2026-07-01 14:02:05 CEST)",
            "\"mount\": \"/var\"",
            "Timeline (Europe/Berlin):",
            // 12:00:05 UTC is 14:00:05 in Berlin in summer.
            "2026-07-01 14:00:05 CEST  triggered (alertmanager via http): first alert",
            "Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let html = msg.html.unwrap();
        assert!(html.contains("<td>2026-07-01 14:00:05 CEST</td><td>triggered</td>"));
        assert!(html.contains("<pre>{\n  &quot;mount&quot;: &quot;/var&quot;"));
    }

    #[test]
    fn resolved_incident_shows_who_and_no_ack_hint() {
        let mut inc = incident();
        inc.status = Status::Resolved;
        inc.resolved = Some(Transition {
            at: chrono::Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap(),
            by: "bob".into(),
            via: "sms".into(),
        });
        let msg = render_incident_email(&input(&inc, &[]));
        assert!(msg
            .text
            .contains("Resolved:     by bob via sms at 2026-01-10 09:00:00 CET"));
        assert!(!msg.text.contains("How to acknowledge"));
    }

    #[test]
    fn utf8_survives_rendering() {
        let mut inc = incident();
        inc.summary = "Überlauf auf 東京 ✓".into();
        inc.service = Some("Dienst-ä".into());
        let msg = render_incident_email(&input(&inc, &[]));
        assert_eq!(
            msg.subject,
            "[pagerbox] #42 CRIT Dienst-ä: Überlauf auf 東京 ✓"
        );
        assert!(msg.text.contains("Überlauf auf 東京 ✓"));
        assert!(msg.html.unwrap().contains("Überlauf auf 東京 ✓"));
    }

    #[test]
    fn the_ack_paths_offer_the_sms_reply_only_when_an_sms_went_out() {
        let without = ack_paths(42, false, None);
        assert_eq!(
            without,
            "Acknowledge #42: run: pagerbox ack 42; or POST /v1/incidents/42/acknowledge"
        );
        assert!(!without.contains("SMS"));
        let with = ack_paths(42, true, Some("http://10.0.0.5:8080/"));
        assert_eq!(
            with,
            "Acknowledge #42: reply 42a to the page SMS (42r resolves); the status page \
             http://10.0.0.5:8080/; run: pagerbox ack 42; or POST /v1/incidents/42/acknowledge"
        );
        let sent = |kind: &str, message: &str| TimelineEvent {
            kind: String::from(kind).into(),
            message: message.into(),
            ..timeline()[0].clone()
        };
        assert!(sms_went_out(
            &[sent("page-sent", "sms to alice sent (attempt 1): ok")],
            "alice"
        ));
        assert!(!sms_went_out(
            &[sent("page-sent", "email to alice sent (attempt 1): ok")],
            "alice"
        ));
        assert!(!sms_went_out(
            &[sent("page-retry", "sms to alice failed (attempt 1)")],
            "alice"
        ));
        assert!(!sms_went_out(
            &[sent("page-sent", "sms to alicia sent (attempt 1)")],
            "alice"
        ));
    }

    #[test]
    fn a_digest_email_carries_every_incident_with_its_own_ack_path() {
        let mut a = incident();
        let mut b = incident();
        a.id = 7;
        b.id = 9;
        b.summary = "api 5xx <high>".into();
        let tl = timeline();
        let items = [
            IncidentEmail {
                reply_hint: ack_paths(7, false, None),
                ..input(&a, &tl)
            },
            IncidentEmail {
                reply_hint: ack_paths(9, false, None),
                ..input(&b, &tl)
            },
        ];
        let m = render_digest_email(&items);
        assert!(
            m.subject
                .starts_with("[pagerbox] 2 incidents: #7 CRIT, #9 CRIT"),
            "{}",
            m.subject
        );
        for needle in [
            "pagerbox ack 7",
            "pagerbox ack 9",
            "api 5xx <high>",
            "Timeline (",
        ] {
            assert!(m.text.contains(needle), "{needle}: {}", m.text);
        }
        let html = m.html.unwrap();
        assert!(html.contains("api 5xx &lt;high&gt;"), "{html}");
        assert!(html.contains("pagerbox ack 9"), "{html}");
        assert_eq!(html.matches("<!DOCTYPE html>").count(), 1);
    }
}
