//! What a page says, as pure functions: SMS, voice and digest text.
//!
//! An SMS page fits in one message whenever possible (160 GSM-7 characters, or 70 when the text
//! needs UCS-2): `#42 CRIT db: /var on db1 97% full. Reply 42a ack, 42r resolve`. The summary is
//! cut on a word boundary to fit `max_parts`; the incident id and the reply code are never cut,
//! because they are what the person needs to act.

use crate::incident::{Incident, Severity};
use crate::modem::pdu::fits;

/// Cuts `summary` to the longest word-boundary prefix for which `make(prefix)` fits.
///
/// A longer prefix never fits where a shorter one does not (it has as many characters or more,
/// and a character that forces UCS-2 stays in it), so the longest fitting cut is found by
/// bisection: a few dozen encodings even for a summary of thousands of words, not one per word.
fn fit_summary(summary: &str, max_parts: usize, make: impl Fn(&str) -> String) -> String {
    let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let full = make(&summary);
    if fits(&full, max_parts) {
        return full;
    }
    // "..." is GSM-7, unlike "…", so the cut does not force UCS-2.
    let cut = |end: usize| make(&format!("{}...", &summary[..end]));
    // Word boundaries first; if not even one word fits, cut inside it, by characters.
    let words: Vec<usize> = summary.match_indices(' ').map(|(i, _)| i).collect();
    if let Some(end) = longest_fitting(&words, |&end| fits(&cut(end), max_parts)) {
        return cut(end);
    }
    let chars: Vec<usize> = summary.char_indices().map(|(i, _)| i).collect();
    match longest_fitting(&chars, |&end| fits(&cut(end), max_parts)) {
        Some(end) => cut(end),
        None => make(""),
    }
}

/// The last of `ends` (ascending) for which `fits` holds, given that it holds for a prefix of
/// `ends` and for none after.
fn longest_fitting(ends: &[usize], fits: impl Fn(&usize) -> bool) -> Option<usize> {
    let fitting = ends.partition_point(fits);
    fitting.checked_sub(1).map(|i| ends[i])
}

/// Most characters of a service name a page shows. The name comes from the alert and nothing
/// bounds it; the summary is cut to fit, but the service sits in the fixed head, and a long one
/// would make the page too long to send at all (or to speak, or to fit a subject line).
const SERVICE_SHOWN: usize = 40;

/// The incident's service as pages show it: cut to [`SERVICE_SHOWN`] characters, `...` marking
/// a cut (GSM-7 has no ellipsis character; one would turn the whole SMS into UCS-2).
pub(crate) fn service_shown(incident: &Incident) -> Option<String> {
    let s = incident.service.as_deref()?;
    Some(if s.chars().count() > SERVICE_SHOWN {
        let cut: String = s.chars().take(SERVICE_SHOWN - 3).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    })
}

/// The SMS page for one incident.
pub fn sms_page(incident: &Incident, runbook: Option<&str>, max_parts: usize) -> String {
    let id = incident.id;
    let head = match service_shown(incident) {
        Some(s) => format!("#{id} {} {s}: ", incident.severity.as_short()),
        None => format!("#{id} {} ", incident.severity.as_short()),
    };
    let tail = format!(". Reply {id}a ack, {id}r resolve");
    let text = fit_summary(&incident.summary, max_parts, |s| format!("{head}{s}{tail}"));
    match runbook {
        Some(rb) if fits(&format!("{text} {rb}"), max_parts) => format!("{text} {rb}"),
        _ => text,
    }
}

/// The spoken form of the page, for text-to-speech on a call.
pub fn voice_page(incident: &Incident) -> String {
    let sev = match incident.severity {
        Severity::Critical => "critical",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let service = service_shown(incident)
        .map(|s| format!(" Service {s}."))
        .unwrap_or_default();
    // TTS engines on modems read plain ASCII best; keep the summary short.
    let summary: String = incident.summary.chars().take(200).collect();
    format!(
        "pagerbox alert. Incident {}. {sev}.{service} {summary}. Press 1 to acknowledge.",
        incident.id
    )
}

/// One SMS for several incidents (grouping window or rate-limit overflow):
/// `3 new: #42 CRIT db down; #43 ERR api 5xx; #44 WARN ... Reply 42a ack, STATUS for all`.
pub fn sms_digest(incidents: &[Incident], max_parts: usize) -> String {
    let Some(first) = incidents.first() else {
        return String::new();
    };
    let tail = format!(" Reply {}a ack, STATUS for all", first.id);
    let more = |rest: usize| {
        if rest > 0 {
            format!(" +{rest} more.")
        } else {
            String::new()
        }
    };
    let mut text = format!("{} new:", incidents.len());
    for (n, i) in incidents.iter().enumerate() {
        let head = format!(" #{} {}", i.id, i.severity.as_short());
        let rest_after = incidents.len() - n - 1;
        let item = |summary: &str| match summary {
            "" => format!("{head};"),
            s => format!("{head} {s};"),
        };
        let whole = item(&i.summary);
        if fits(
            &format!("{text}{whole}{}{tail}", more(rest_after)),
            max_parts,
        ) {
            text.push_str(&whole);
            continue;
        }
        // This one does not fit whole: its summary is cut to what fits, so the digest still
        // names it. Dropping it instead left a digest that named no incident at all when the
        // first summary was long, or in a script that needs UCS-2 (70 characters a part).
        let cut = fit_summary(&i.summary, max_parts, |s| {
            format!("{text}{}{}{tail}", item(s), more(rest_after))
        });
        if fits(&cut, max_parts) {
            return cut;
        }
        return format!("{text}{}{tail}", more(incidents.len() - n));
    }
    format!("{text}{tail}")
}

/// Subject line of a page email.
pub fn email_subject(incident: &Incident) -> String {
    match service_shown(incident) {
        Some(s) => format!(
            "[pagerbox] #{} {} {s}: {}",
            incident.id,
            incident.severity.as_short(),
            incident.summary
        ),
        None => format!(
            "[pagerbox] #{} {} {}",
            incident.id,
            incident.severity.as_short(),
            incident.summary
        ),
    }
}

/// A short stakeholder update: `#42 db: acknowledged by alice (db1 /var full)`.
pub fn status_update(incident: &Incident, what: &str) -> String {
    let service = service_shown(incident)
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    let text = format!("#{}{service}: {what}", incident.id);
    fit_summary(&incident.summary, 1, |s| format!("{text} ({s})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Status;
    use crate::modem::pdu::plan_parts;

    fn incident(id: i64, service: Option<&str>, summary: &str) -> Incident {
        Incident {
            id,
            dedup_key: "k".into(),
            status: Status::Triggered,
            severity: Severity::Critical,
            summary: summary.into(),
            source: None,
            service: service.map(Into::into),
            route: None,
            details: serde_json::Value::Null,
            links: vec![],
            alert_count: 1,
            first_seen: crate::clock::system_now(),
            last_seen: crate::clock::system_now(),
            acknowledged: None,
            resolved: None,
        }
    }

    #[test]
    fn short_page_is_exactly_the_documented_form() {
        let i = incident(42, Some("db"), "/var on db1 97% full");
        assert_eq!(
            sms_page(&i, None, 1),
            "#42 CRIT db: /var on db1 97% full. Reply 42a ack, 42r resolve"
        );
    }

    /// Nothing bounds an alert's service; a page still fits, naming the service's start.
    #[test]
    fn a_long_service_is_cut_so_every_page_can_go_out() {
        let service = "s".repeat(3000);
        let i = incident(9, Some(&service), "disk full");
        let t = sms_page(&i, None, 1);
        assert!(fits(&t, 1), "{t}");
        let shown = format!("{}...", "s".repeat(37));
        assert_eq!(
            t,
            format!("#9 CRIT {shown}: disk full. Reply 9a ack, 9r resolve")
        );
        assert!(voice_page(&i).contains(&format!("Service {shown}.")));
        assert!(email_subject(&i).len() < 100);
        let update = status_update(&i, "acknowledged by alice");
        assert!(fits(&update, 1), "{update}");
        // A short one is shown whole.
        let i = incident(9, Some(&"s".repeat(40)), "disk full");
        assert!(sms_page(&i, None, 1).contains(&format!("{}:", "s".repeat(40))));
    }

    #[test]
    fn long_summary_is_cut_on_a_word_and_keeps_the_reply_code() {
        let i = incident(
            7,
            Some("api"),
            &"the upstream load balancer reports many errors ".repeat(10),
        );
        let t = sms_page(&i, None, 1);
        assert!(t.chars().count() <= 160, "{} {t}", t.len());
        assert!(
            t.ends_with("... Reply 7a ack, 7r resolve")
                || t.ends_with(". Reply 7a ack, 7r resolve"),
            "{t}"
        );
        assert!(t.contains("...."), "cut marked: {t}");
        assert!(plan_parts(&t).parts == 1);
    }

    /// The longest cut, one encoding per candidate: what the bisection must agree with.
    fn fit_by_trying_every_cut(summary: &str, make: impl Fn(&str) -> String) -> String {
        let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
        if fits(&make(&summary), 1) {
            return make(&summary);
        }
        let words = summary.match_indices(' ').map(|(i, _)| i).rev();
        let chars = summary.char_indices().map(|(i, _)| i).rev();
        words
            .chain(chars)
            .map(|end| make(&format!("{}...", &summary[..end])))
            .find(|t| fits(t, 1))
            .unwrap_or_else(|| make(""))
    }

    #[test]
    fn the_cut_is_the_longest_that_fits() {
        let make = |s: &str| format!("#7 CRIT api: {s}. Reply 7a ack, 7r resolve");
        let summaries = [
            "the upstream load balancer reports many errors ".repeat(10),
            "x".repeat(500),
            format!("short {}", "y".repeat(300)),
            "Серверная база данных недоступна уже пять минут подряд ".repeat(3),
            format!(
                "{} ошибка {}",
                "disk full on db1 ".repeat(4),
                "z ".repeat(50)
            ),
            "a ".repeat(200),
        ];
        for s in &summaries {
            assert_eq!(
                fit_summary(s, 1, make),
                fit_by_trying_every_cut(s, make),
                "{s}"
            );
        }
    }

    #[test]
    fn a_huge_unbroken_summary_is_cut_in_few_encodings() {
        let tried = std::cell::Cell::new(0);
        let make = |s: &str| {
            tried.set(tried.get() + 1);
            format!("#7 CRIT api: {s}. Reply 7a ack, 7r resolve")
        };
        let t = fit_summary(&"x".repeat(40_000), 1, make);
        assert_eq!(plan_parts(&t).parts, 1, "{t}");
        assert!(t.contains("x..."), "{t}");
        // Trying every cut from the longest down would encode about 40,000 candidates.
        assert!(tried.get() < 100, "{} encodings", tried.get());
    }

    #[test]
    fn unicode_summary_fits_in_70() {
        let i = incident(
            9,
            None,
            "Серверная база данных недоступна уже пять минут подряд",
        );
        let t = sms_page(&i, None, 1);
        assert!(t.chars().count() <= 70, "{t}");
        assert_eq!(plan_parts(&t).parts, 1);
        assert!(
            t.starts_with("#9 CRIT ") && t.ends_with("Reply 9a ack, 9r resolve"),
            "{t}"
        );
    }

    #[test]
    fn runbook_only_when_it_fits() {
        let i = incident(1, Some("db"), "down");
        assert!(sms_page(&i, Some("https://wiki/rb"), 1).ends_with(" https://wiki/rb"));
        let long = incident(1, Some("db"), &"x ".repeat(60));
        assert!(!sms_page(&long, Some("https://wiki/runbooks/db"), 1).contains("wiki"));
    }

    #[test]
    fn more_parts_allow_more_text() {
        let i = incident(3, None, &"word ".repeat(100));
        assert_eq!(plan_parts(&sms_page(&i, None, 2)).parts, 2);
        assert!(sms_page(&i, None, 2).len() > sms_page(&i, None, 1).len());
    }

    #[test]
    fn digest_lists_what_fits_and_counts_the_rest() {
        let list: Vec<Incident> = (42..47)
            .map(|n| incident(n, None, &format!("service {n} is down")))
            .collect();
        let t = sms_digest(&list, 1);
        assert!(t.starts_with("5 new: #42 CRIT service 42 is down;"), "{t}");
        assert!(t.ends_with("Reply 42a ack, STATUS for all"), "{t}");
        assert_eq!(plan_parts(&t).parts, 1, "{t}");
        let many: Vec<Incident> = (1..40)
            .map(|n| incident(n, None, "a rather long summary of a failure"))
            .collect();
        let t = sms_digest(&many, 1);
        assert_eq!(plan_parts(&t).parts, 1, "{t}");
        assert!(t.contains("more."), "{t}");
    }

    /// Summaries too long for the digest, or in a script that makes it UCS-2, are cut, not
    /// dropped: the digest names the incidents, and every one it shows has its id and severity.
    #[test]
    fn digest_cuts_a_long_or_non_latin_summary_instead_of_dropping_it() {
        let list = [
            incident(
                13,
                None,
                "Репликация базы данных остановлена на сервере db-main-01, отставание растёт",
            ),
            incident(
                14,
                None,
                "Диск /var на сервере db-main-02 заполнен на 97 процентов, срочно",
            ),
            incident(15, None, &"x".repeat(500)),
        ];
        for parts in [1, 2] {
            let t = sms_digest(&list, parts);
            assert!(t.starts_with("3 new: #13 CRIT Репликация"), "{t}");
            assert!(t.ends_with("Reply 13a ack, STATUS for all"), "{t}");
            assert!(plan_parts(&t).parts <= parts, "{t}");
        }
        let long = [
            incident(7, None, &"word ".repeat(400)),
            incident(8, None, "b"),
        ];
        let t = sms_digest(&long, 1);
        assert!(t.starts_with("2 new: #7 CRIT word word"), "{t}");
        assert!(t.contains("...; +1 more."), "{t}");
        assert_eq!(plan_parts(&t).parts, 1, "{t}");
    }

    #[test]
    fn voice_text_says_how_to_ack() {
        let t = voice_page(&incident(42, Some("db"), "disk full"));
        assert_eq!(
            t,
            "pagerbox alert. Incident 42. critical. Service db. disk full. Press 1 to acknowledge."
        );
    }
}
