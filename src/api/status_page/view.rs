//! The status page's HTML: pure functions from a [`Snapshot`] to markup. No I/O, no clock (the
//! snapshot carries `now`).
//!
//! maud escapes every interpolated value, so alert summaries, services and modem operator names
//! (all untrusted) cannot inject markup. Everything is inline: one `<style>` block and no script at
//! all, so the page works with no internet and under a CSP of `default-src 'none'`. Forms are plain
//! HTML POSTs; the page refreshes itself with `<meta http-equiv="refresh">` once logged in.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::incident::{Channel, Incident, Status};
use crate::modem::Health;
use crate::notify::sender::PagingHealth;
use crate::schedule::OnCall;
use crate::store::outbox::Page;
use crate::store::StoreError;

/// How often a logged-in page reloads itself.
pub const REFRESH_SECONDS: u32 = 30;

/// Who is looking, which decides whether buttons are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// No token is configured: everyone may act.
    Open,
    /// A token is configured and this browser holds a valid session.
    LoggedIn,
    /// A token is configured and this browser has not logged in: read only, login form shown.
    Anonymous {
        /// Set after a failed login attempt.
        failed: bool,
    },
}

impl Viewer {
    fn can_act(&self) -> bool {
        matches!(self, Viewer::Open | Viewer::LoggedIn)
    }
}

/// One schedule's line: who is on call now and who is next.
#[derive(Debug, Clone)]
pub struct OnCallRow {
    /// Schedule name shown to people.
    pub schedule: String,
    /// On call now; `None` for a gap.
    pub now: Option<OnCall>,
    /// On call when `now` ends.
    pub next: Option<OnCall>,
}

/// The modem part of the page.
#[derive(Debug, Clone)]
// One value per page render; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum ModemView {
    /// `[modem] enabled = false`.
    Disabled,
    /// The health and readings the driver publishes from its own polls (never a fresh AT
    /// exchange: the page must not queue commands in front of pages).
    Enabled {
        /// Up/degraded/down with reason, registration, operator, signal, SIM, last answer.
        health: Health,
    },
}

/// Everything the page shows, gathered by the handler.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The instant ages are measured from.
    pub now: DateTime<Utc>,
    /// Open incidents, or why they could not be read.
    pub incidents: Result<Vec<Incident>, StoreError>,
    /// One row per schedule.
    pub oncall: Vec<OnCallRow>,
    /// The modem.
    pub modem: ModemView,
    /// Whether email fallback is configured.
    pub email_enabled: bool,
    /// Which channels can send.
    pub paging: Option<PagingHealth>,
    /// Recent outbox rows, newest first, or why they could not be read.
    pub pages: Result<Vec<Page>, StoreError>,
    /// Standby behind a cloud pager, when the daemon runs it.
    pub standby: Option<crate::standby::Status>,
    /// Open incidents for which paging reached nobody ([`crate::store::pages::nobody_reached`]),
    /// or why that could not be read: an unreadable store must show as an error, never as
    /// "everyone was reached".
    pub nobody_paged: Result<Vec<crate::incident::IncidentId>, StoreError>,
}

/// "3d 4h", "2h 5m", "42s": how long ago `then` was.
pub fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:1rem;background:#fafafa;color:#111}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}\
table{border-collapse:collapse;width:100%;background:#fff}\
td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
.critical,.error{color:#b00020;font-weight:bold}.warning{color:#a60}\
.triggered{color:#b00020}.acknowledged{color:#555}\
.up{color:#080}.down{color:#b00020;font-weight:bold}.degraded{color:#a60}\
form.inline{display:inline}button{margin:0 .2rem}\
.box{background:#fff;border:1px solid #ccc;padding:.5rem 1rem;max-width:30rem}\
.err{color:#b00020}";

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

fn who(o: &Option<OnCall>, now: DateTime<Utc>) -> Markup {
    match o {
        None => html! { em { "nobody" } },
        Some(o) => html! {
            strong { (o.user) } " (" (o.source) ")"
            @if let Some(u) = o.until { " until " (u.format("%Y-%m-%d %H:%M UTC")) " (in " (age(u, now)) ")" }
        },
    }
}

/// The whole page. `csrf` goes into every form.
pub fn page(s: &Snapshot, viewer: &Viewer, csrf: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if viewer.can_act() { meta http-equiv="refresh" content=(REFRESH_SECONDS); }
                title { "pagerbox status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "pagerbox status" }
                p { "As of " (s.now.format("%Y-%m-%d %H:%M:%S UTC")) "." }
                (session_box(viewer, csrf))
                (incidents(s, viewer, csrf))
                (oncall(s))
                (health(s))
                (recent_pages(s))
            }
        }
    }
}

fn session_box(viewer: &Viewer, csrf: &str) -> Markup {
    match viewer {
        Viewer::Open => html! {},
        Viewer::LoggedIn => html! {
            form.inline id="logout" method="post" action="/logout" {
                (csrf_field(csrf))
                "Logged in. " button type="submit" { "Log out" }
            }
        },
        Viewer::Anonymous { failed } => html! {
            div.box {
                h2 { "Log in to acknowledge and resolve" }
                @if *failed { p.err id="login-failed" { "Wrong token." } }
                form id="login" method="post" action="/login" {
                    (csrf_field(csrf))
                    label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                    " " button type="submit" id="login-submit" { "Log in" }
                }
            }
        },
    }
}

fn incidents(s: &Snapshot, viewer: &Viewer, csrf: &str) -> Markup {
    html! {
        h2 { "Open incidents" }
        @match &s.nobody_paged {
            Err(e) => p.err id="nobody-paged" {
                "Cannot tell whether paging reached anybody: " (e)
            },
            Ok(ids) if !ids.is_empty() => p.err id="nobody-paged" {
                "NOBODY WAS PAGED for "
                @for (n, id) in ids.iter().enumerate() {
                    @if n > 0 { ", " } "#" (id)
                }
                ": no one their escalation targets can be reached. Check the users' rules, addresses and channels (pagerbox check)."
            },
            Ok(_) => {},
        }
        @match &s.incidents {
            Err(e) => p.err { "Cannot read incidents: " (e) },
            Ok(list) if list.is_empty() => p id="no-incidents" { "No open incidents." },
            Ok(list) => table id="incidents" {
                tr { th { "#" } th { "Severity" } th { "Summary" } th { "Service" } th { "Status" } th { "Age" } th { "Alerts" }
                     @if viewer.can_act() { th { "Actions" } } }
                @for i in list {
                    tr id={ "incident-" (i.id) } {
                        td { (i.id) }
                        td class=(i.severity.as_str()) { (i.severity) }
                        td.summary { (i.summary) }
                        td { (i.service.as_deref().unwrap_or("-")) }
                        td class={ "status " (i.status.as_str()) } {
                            (i.status)
                            @if let Some(a) = &i.acknowledged { " by " (a.by) " via " (a.via) }
                            @if s.nobody_paged.as_ref().is_ok_and(|ids| ids.contains(&i.id)) { " " strong.err { "nobody paged" } }
                        }
                        td { (age(s.now, i.first_seen)) }
                        td { (i.alert_count) }
                        @if viewer.can_act() {
                            td {
                                @if i.status == Status::Triggered {
                                    form.inline method="post" action={ "/ui/incidents/" (i.id) "/acknowledge" } {
                                        (csrf_field(csrf)) button type="submit" class="ack" { "Acknowledge" }
                                    }
                                }
                                form.inline method="post" action={ "/ui/incidents/" (i.id) "/resolve" } {
                                    (csrf_field(csrf)) button type="submit" class="resolve" { "Resolve" }
                                }
                            }
                        }
                    }
                }
            },
        }
    }
}

fn oncall(s: &Snapshot) -> Markup {
    html! {
        h2 { "On call" }
        @if s.oncall.is_empty() { p { "No schedules configured." } }
        @else {
            table id="oncall" {
                tr { th { "Schedule" } th { "Now" } th { "Next" } }
                @for r in &s.oncall {
                    tr { td { (r.schedule) } td { (who(&r.now, s.now)) } td { (who(&r.next, s.now)) } }
                }
            }
        }
    }
}

/// The health table: one row per part that pages (the pair's first, in a pair), each saying
/// whether it works and, when not, why.
fn health(s: &Snapshot) -> Markup {
    // Pair hook: the pair's state, in a pair.
    #[cfg(feature = "ha")]
    let pair = crate::ha::pair::status_row();
    #[cfg(not(feature = "ha"))]
    let pair = html! {};
    html! {
        h2 { "Health" }
        table id="health" {
            (pair)
            (paging_row(s))
            (modem_row(s))
            (email_row(s))
            (standby_row(s))
        }
    }
}

/// Whether paging works: the channels ready, and each one down with its reason.
fn paging_row(s: &Snapshot) -> Markup {
    html! {
        tr {
            th { "Paging" }
            td {
                @match &s.paging {
                    None => "unknown",
                    Some(p) if p.impaired() => span.down { "impaired: no channel can send" },
                    Some(p) => span.up { "ready: " @for (n, c) in p.ready.iter().enumerate() { @if n > 0 { ", " } (c) } },
                }
                @if let Some(p) = &s.paging {
                    @for (c, why) in &p.down { br; span.down { (c) " down: " (why) } }
                }
            }
        }
    }
}

/// The modem's readings as its driver last published them (a page load never sends it a command,
/// which would queue in front of pages).
fn modem_row(s: &Snapshot) -> Markup {
    html! {
        tr {
            th { "Modem" }
            td id="modem" {
                @match &s.modem {
                    ModemView::Disabled => "disabled",
                    ModemView::Enabled { health } => {
                        span class=(health.state.as_str()) { (health.state.as_str()) }
                        @if !health.reason.is_empty() { ": " (health.reason) }
                        " (since " (age(s.now, health.since)) " ago)"
                        br;
                        "Registered: " (if health.registration.is_registered() { "yes" } else { "no" })
                        " (" (health.registration) "); operator: " (health.operator.as_deref().unwrap_or("unknown"))
                        "; signal: " @match health.signal_dbm { Some(d) => { (d) " dBm" }, None => "unknown" }
                        "; SIM: " (format!("{:?}", health.sim))
                        br;
                        "Last answer: " @match health.last_answer {
                            Some(t) => { (age(s.now, t)) " ago" },
                            None => "none yet",
                        }
                        @if health.not_answering(s.now).is_some() {
                            " " span.down { "(not answering)" }
                        }
                        @if health.events_dropped > 0 {
                            "; " span.down { (health.events_dropped) " modem events dropped (event backlog full)" }
                        }
                    },
                }
            }
        }
    }
}

/// Email: off, down (with the reason the paging-health task gave), or ready.
fn email_row(s: &Snapshot) -> Markup {
    let email_down = s
        .paging
        .as_ref()
        .and_then(|p| p.down.iter().find(|(c, _)| *c == Channel::Email));
    html! {
        tr {
            th { "Email" }
            td id="email" {
                @if !s.email_enabled { "disabled" }
                @else if let Some((_, why)) = email_down { span.down { "down: " (why) } }
                @else { span.up { "ready" } }
            }
        }
    }
}

/// The standby behind a cloud pager, when one is configured: whether it answers and how many
/// incidents it holds.
fn standby_row(s: &Snapshot) -> Markup {
    html! {
        @if let Some(sb) = s.standby.as_ref().filter(|sb| sb.enabled) {
            tr {
                th { "Standby" }
                td id="standby" {
                    "Cloud pager: "
                    @match sb.reachability {
                        crate::standby::Reachability::NotAsked => "not asked yet",
                        crate::standby::Reachability::Reachable => span.up { "reachable" },
                        crate::standby::Reachability::Unreachable { since } => span.down { "unreachable for " (age(s.now, since)) },
                    }
                    "; last answer: " @match sb.last_success {
                        Some(t) => { (age(s.now, t)) " ago" },
                        None => "none yet",
                    }
                    "; held: " (sb.held)
                }
            }
        }
    }
}

/// The incident(s) a page is about: its own, or a digest's list.
fn page_incidents(p: &Page) -> String {
    match p.incident_id {
        Some(i) => format!("#{i}"),
        None if !p.items.is_empty() => p
            .items
            .iter()
            .map(|i| format!("#{i}"))
            .collect::<Vec<_>>()
            .join(" "),
        None => "-".into(),
    }
}

fn recent_pages(s: &Snapshot) -> Markup {
    html! {
        h2 { "Recent pages" }
        @match &s.pages {
            Err(e) => p.err { "Cannot read the outbox: " (e) },
            Ok(list) if list.is_empty() => p { "No pages yet." },
            Ok(list) => table id="pages" {
                tr { th { "Time" } th { "Incident" } th { "User" } th { "Channel" } th { "To" } th { "State" } th { "Attempts" } }
                @for p in list {
                    tr {
                        td { (p.created_at.format("%Y-%m-%d %H:%M:%S")) " (" (age(s.now, p.created_at)) " ago)" }
                        td { (page_incidents(p)) }
                        td { (p.user_id.as_deref().unwrap_or("-")) }
                        td { (p.channel) }
                        td { (crate::config::mask_number(&p.address)) }
                        td { (p.state) }
                        td { (p.attempts) }
                    }
                }
            },
        }
    }
}

/// A short HTML page for refusals (403 CSRF, cross-site), with a link back.
pub fn message(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } style { (PreEscaped(STYLE)) } }
            body { h1 { (title) } p.err id="message" { (text) } p { a href="/" { "Back to the status page" } } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Severity;
    use chrono::TimeZone;

    fn incident(summary: &str) -> Incident {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        Incident {
            id: 7,
            dedup_key: "k".into(),
            status: Status::Triggered,
            severity: Severity::Critical,
            summary: summary.into(),
            source: None,
            service: Some("db".into()),
            route: None,
            details: serde_json::Value::Null,
            links: vec![],
            alert_count: 3,
            first_seen: t,
            last_seen: t,
            acknowledged: None,
            resolved: None,
        }
    }

    fn snapshot(incidents: Vec<Incident>) -> Snapshot {
        Snapshot {
            now: Utc.with_ymd_and_hms(2026, 3, 1, 14, 5, 0).unwrap(),
            incidents: Ok(incidents),
            oncall: vec![],
            modem: ModemView::Disabled,
            email_enabled: false,
            paging: None,
            pages: Ok(vec![]),
            standby: None,
            nobody_paged: Ok(vec![]),
        }
    }

    #[test]
    fn incidents_that_paged_nobody_are_flagged() {
        let mut s = snapshot(vec![incident("db down")]);
        let quiet = page(&s, &Viewer::Open, "t").into_string();
        assert!(!quiet.contains("NOBODY WAS PAGED"), "{quiet}");
        s.nobody_paged = Ok(vec![7]);
        let html = page(&s, &Viewer::Open, "t").into_string();
        assert!(html.contains("NOBODY WAS PAGED for #7"), "{html}");
        assert!(html.contains("nobody paged"), "{html}");
    }

    #[test]
    fn a_store_that_cannot_say_who_was_paged_shows_as_an_error() {
        let mut s = snapshot(vec![incident("db down")]);
        s.nobody_paged = Err(StoreError::Busy);
        let html = page(&s, &Viewer::Open, "t").into_string();
        let line = &html[html.find(r#"id="nobody-paged""#).expect("an error line")..];
        let line = &line[..line.find("</p>").unwrap()];
        assert!(
            line.contains("Cannot tell whether paging reached anybody: store queue is full"),
            "{line}"
        );
        assert!(!html.contains("NOBODY WAS PAGED"), "{html}");
        // The incident is still listed, without a claim either way about its pages.
        assert!(
            html.contains("db down") && !html.contains("nobody paged"),
            "{html}"
        );
    }

    #[test]
    fn ages_are_short_words() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(age(t + chrono::Duration::seconds(42), t), "42s");
        assert_eq!(age(t + chrono::Duration::minutes(5), t), "5m");
        assert_eq!(age(t + chrono::Duration::minutes(125), t), "2h 5m");
        assert_eq!(age(t + chrono::Duration::hours(76), t), "3d 4h");
        assert_eq!(age(t, t + chrono::Duration::hours(1)), "0s");
    }

    #[test]
    fn the_modem_line_comes_from_the_published_health() {
        use crate::modem::at::{RegStatus, SimState};
        use crate::modem::{HealthState, Registration};
        let mut s = snapshot(vec![]);
        let mut health = Health::starting(s.now - chrono::Duration::minutes(10));
        health.state = HealthState::Up;
        health.reason = "ready".into();
        health.registration = Registration {
            circuit: Some(RegStatus::Home),
            eps: None,
        };
        health.registered = true;
        health.operator = Some("<b>net</b>".into());
        health.signal_dbm = Some(-71);
        health.sim = SimState::Ready;
        health.sim_ready = true;
        health.last_answer = Some(s.now - chrono::Duration::seconds(4));
        s.modem = ModemView::Enabled {
            health: health.clone(),
        };
        let html = page(&s, &Viewer::Open, "t").into_string();
        let modem = &html[html.find(r#"id="modem""#).unwrap()..];
        let modem = &modem[..modem.find("</td>").unwrap()];
        assert!(modem.contains("Registered: yes (home)"), "{modem}");
        assert!(
            modem.contains("operator: &lt;b&gt;net&lt;/b&gt;"),
            "{modem}"
        );
        assert!(modem.contains("signal: -71 dBm"), "{modem}");
        assert!(modem.contains("SIM: Ready"), "{modem}");
        assert!(modem.contains("Last answer: 4s ago"), "{modem}");
        assert!(!modem.contains("dropped"), "{modem}");
        assert!(!modem.contains("not answering"), "{modem}");

        health.events_dropped = 12;
        health.last_answer = None;
        s.modem = ModemView::Enabled { health };
        let html = page(&s, &Viewer::Open, "t").into_string();
        assert!(html.contains("12 modem events dropped"), "{html}");
        assert!(html.contains("Last answer: none yet"), "{html}");
        // Never answered in the 10 minutes since it started: more than its bound.
        assert!(html.contains("(not answering)"), "{html}");
    }

    #[test]
    fn summaries_are_escaped() {
        let html = page(
            &snapshot(vec![incident("<script>alert(1)</script> & \"x\"")]),
            &Viewer::Open,
            "tok",
        )
        .into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn buttons_carry_the_csrf_token_only_for_those_who_may_act() {
        let s = snapshot(vec![incident("disk full")]);
        let open = page(&s, &Viewer::Open, "tok123").into_string();
        assert!(open.contains(r#"action="/ui/incidents/7/acknowledge""#));
        assert!(open.contains(r#"action="/ui/incidents/7/resolve""#));
        assert!(open.contains(r#"name="csrf" value="tok123""#));
        assert!(open.contains("http-equiv=\"refresh\""));
        assert!(!open.contains(r#"id="login""#));

        let anon = page(&s, &Viewer::Anonymous { failed: true }, "login-tok").into_string();
        assert!(anon.contains("disk full"));
        assert!(!anon.contains("/ui/incidents/7/acknowledge"));
        assert!(anon.contains(r#"id="login""#));
        assert!(anon.contains("Wrong token."));
        assert!(!anon.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn recent_pages_mask_the_phone_number() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let mut s = snapshot(vec![]);
        s.pages = Ok(vec![Page {
            id: 1,
            kind: crate::store::outbox::PageKind::Page,
            incident_id: Some(7),
            user_id: Some("alice".into()),
            channel: Channel::Sms,
            address: "+4915100000011".into(),
            subject: None,
            body: "secret body".into(),
            written_for: Some(Channel::Sms),
            priority: 3,
            due_at: t,
            attempts: 1,
            channel_attempts: 1,
            channel_since: t,
            state: crate::store::kinds::OutboxState::Sent,
            reference: None,
            created_at: t,
            items: vec![],
        }]);
        let html = page(&s, &Viewer::Open, "t").into_string();
        assert!(html.contains("+**********011"), "{html}");
        assert!(!html.contains("4915100000011"));
        assert!(!html.contains("secret body"));
        assert!(html.contains("alice"));

        // A digest is shown with the incidents it lists, not as "-".
        let Ok(pages) = &mut s.pages else {
            unreachable!("set above")
        };
        pages[0].kind = crate::store::outbox::PageKind::Digest;
        pages[0].incident_id = None;
        pages[0].items = vec![7, 9];
        let html = page(&s, &Viewer::Open, "t").into_string();
        assert!(html.contains("<td>#7 #9</td>"), "{html}");
    }
}
