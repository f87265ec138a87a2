//! Reply wording, as pure functions: how times are shown and how a list is cut to fit one SMS.
//!
//! Replies are short on purpose: each one costs an SMS and is read on a phone at night. Every
//! reply goes through [`clip`] (or is built with [`fit_list`]), so no reply ever needs more parts
//! than its command allows; what does not fit is cut with `...` or counted as `+N more`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::modem::pdu::fits;

/// The command list, one SMS.
pub const HELP: &str = "42a ack, 42r resolve, ACK/RES last page, 42e escalate, 42 n text: note, \
42? details, ONCALL, STATUS, TAKE [2h], PAGE svc text, HELP";

/// [`when`] for a schedule's time: in the schedule's own zone `tz`, where its handoffs are set,
/// named when it is not the box's zone `home` (`Mon 09:00 JST`). Without the name, a person
/// reading "until 09:00" from a schedule kept in another zone would take it for the box's hours.
pub fn when_zoned(tz: Tz, home: Tz, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let shown = when(tz, at, now);
    if tz == home {
        shown
    } else {
        format!("{shown} {}", at.with_timezone(&tz).format("%Z"))
    }
}

/// An instant as people read it in `tz`: `03:12` today, `Mon 09:00` within the next or last six
/// days, `24 Dec 09:00` beyond.
pub fn when(tz: Tz, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    let days = (local.date_naive() - today).num_days().abs();
    if days == 0 {
        local.format("%H:%M").to_string()
    } else if days < 7 {
        local.format("%a %H:%M").to_string()
    } else {
        local.format("%d %b %H:%M").to_string()
    }
}

/// `text` cut (by characters, with `...`) to fit `max_parts` SMS.
pub fn clip(text: &str, max_parts: usize) -> String {
    if fits(text, max_parts) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    // Binary search the longest prefix that fits with "..." appended.
    let (mut lo, mut hi) = (0usize, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate = format!("{}...", chars[..mid].iter().collect::<String>().trim_end());
        if fits(&candidate, max_parts) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    format!("{}...", chars[..lo].iter().collect::<String>().trim_end())
}

/// `head` then as many `items` as fit (joined by `sep`) in `max_parts` SMS, then ` +N more`
/// for the rest. Items are never cut in the middle; the caller keeps them short.
pub fn fit_list(head: &str, items: &[String], sep: &str, max_parts: usize) -> String {
    for keep in (0..=items.len()).rev() {
        let mut text = format!("{head}{}", items[..keep].join(sep));
        if keep < items.len() {
            text.push_str(&format!(" +{} more", items.len() - keep));
        }
        if fits(&text, max_parts) {
            return text;
        }
    }
    clip(head, max_parts)
}

/// `s` cut to at most `n` characters on a word boundary where possible, with `...`.
pub fn shorten(s: &str, n: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= n {
        return s;
    }
    let keep = n.saturating_sub(3);
    let prefix: String = s.chars().take(keep).collect();
    let at_word_end = s.chars().nth(keep).is_some_and(char::is_whitespace);
    let cut = match prefix.rfind(' ') {
        _ if at_word_end => prefix.as_str(),
        Some(i) if i > prefix.len() / 2 => &prefix[..i],
        _ => prefix.as_str(),
    };
    format!("{}...", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Europe::Berlin;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn help_fits_one_sms() {
        assert!(fits(HELP, 1), "{} chars", HELP.len());
    }

    #[test]
    fn times_are_local_and_say_the_day_when_not_today() {
        // 22 Nov 2026 is a Sunday; Berlin is UTC+1.
        assert_eq!(when(Berlin, t(22, 2, 12), t(22, 3, 0)), "03:12");
        assert_eq!(when(Berlin, t(23, 8, 0), t(22, 3, 0)), "Mon 09:00");
        assert_eq!(when(Berlin, t(21, 22, 30), t(22, 3, 0)), "Sat 23:30");
        assert_eq!(when(Berlin, t(30, 8, 0), t(22, 3, 0)), "30 Nov 09:00");
        // A schedule kept in another zone shows its own hours, named.
        let tokyo = chrono_tz::Asia::Tokyo;
        assert_eq!(
            when_zoned(Berlin, Berlin, t(23, 8, 0), t(22, 3, 0)),
            "Mon 09:00"
        );
        assert_eq!(
            when_zoned(tokyo, Berlin, t(23, 0, 0), t(22, 3, 0)),
            "Mon 09:00 JST"
        );
    }

    #[test]
    fn clip_and_fit_list_stay_within_the_parts() {
        let long = "word ".repeat(100);
        let c = clip(&long, 1);
        assert!(fits(&c, 1) && c.ends_with("...") && c.len() > 140, "{c}");
        assert_eq!(clip("short", 1), "short");
        // UCS-2 text has 70 characters per SMS.
        let c = clip(&"ü€".repeat(60), 1);
        assert!(fits(&c, 1) && c.chars().count() > 60, "{c}");

        let items: Vec<String> = (1..=30).map(|i| format!("#{i} CRIT something")).collect();
        let s = fit_list("open: ", &items, "; ", 1);
        assert!(fits(&s, 1), "{s}");
        assert!(s.starts_with("open: #1 CRIT something; #2"), "{s}");
        assert!(s.ends_with(" more"), "{s}");
        assert_eq!(
            fit_list("x: ", &items[..2], "; ", 1),
            "x: #1 CRIT something; #2 CRIT something"
        );
    }

    #[test]
    fn shorten_cuts_on_words() {
        assert_eq!(shorten("disk  full", 20), "disk full");
        assert_eq!(
            shorten("replica lag above five minutes", 20),
            "replica lag above..."
        );
        assert_eq!(shorten("abcdefghijklmnopqrstuvwxyz", 10), "abcdefg...");
    }
}
