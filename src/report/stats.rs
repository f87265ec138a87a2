//! On-call review numbers over a period: pure aggregation over incident and page rows.
//!
//! Definitions (also in the README, so a team knows what it is looking at):
//! - An incident belongs to the period when it was first seen in it, and to its service
//!   (`(none)` when the alert named none).
//! - Time to acknowledge (TTA) = acknowledged at - first seen, over incidents that were
//!   acknowledged; time to resolve (TTR) = resolved at - first seen, over resolved incidents.
//! - Percentiles use the **nearest-rank** method: the p-th percentile of n sorted values is the
//!   value at 1-based rank ceil(p/100 x n). It is always one of the observed values (no
//!   interpolation), which is what a review wants to point at: "the slowest ack in ten took 14m".
//! - A page is an outbox row of kind `page` or `digest` created in the period that reached the
//!   network or mail relay (sent or delivered); its time is when it was first sent.
//! - Out-of-hours: sent outside every `[daemon] business_hours` window, evaluated in the daemon's
//!   time zone (DST-correct: the windows are schedule restrictions, see [`Restriction`]).
//!   Night: sent between 22:00 and 06:00 local time ([`NIGHT`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::markdown::duration;
use super::opt_secs;
use crate::incident::Incident;
use crate::schedule::{utc_to_local, Restriction};
use crate::store::history::PageRecord;

/// The night window, every day, local time.
pub const NIGHT: &str = "Mon-Sun 22:00-06:00";

/// The service name used for incidents that name none.
pub const NO_SERVICE: &str = "(none)";

/// The p-th percentile (0 < p <= 100) of `sorted` (ascending) by the nearest-rank method; `None`
/// for an empty slice. `p` outside (0, 100] is clamped.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(f64::MIN_POSITIVE, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Weekly local-time windows in one zone: business hours, or the night.
#[derive(Debug, Clone)]
pub struct Windows {
    pub tz: Tz,
    pub windows: Vec<Restriction>,
}

impl Windows {
    /// True when `at` falls inside one of the windows. A window that wraps past midnight belongs
    /// to the day it opens on, so the window of the day before is checked too.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let today = utc_to_local(self.tz, at).date();
        let days = [today.pred_opt(), Some(today)];
        self.windows.iter().any(|r| {
            days.iter().flatten().any(|d| {
                r.window_on(self.tz, *d)
                    .is_some_and(|(open, close)| open <= at && at < close)
            })
        })
    }
}

/// The numbers for one service (or for all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub service: String,
    pub incidents: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    #[serde(rename = "tta_median_seconds", with = "opt_secs")]
    pub tta_median: Option<Duration>,
    #[serde(rename = "tta_p90_seconds", with = "opt_secs")]
    pub tta_p90: Option<Duration>,
    #[serde(rename = "ttr_median_seconds", with = "opt_secs")]
    pub ttr_median: Option<Duration>,
    #[serde(rename = "ttr_p90_seconds", with = "opt_secs")]
    pub ttr_p90: Option<Duration>,
}

/// Pages one person got on one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonStats {
    pub user_id: String,
    pub channel: String,
    pub pages: usize,
    pub out_of_hours: usize,
    pub night: usize,
}

/// Everything `pagerbox stats` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub time_zone: String,
    /// The business hours used, as configured.
    pub business_hours: Vec<String>,
    /// Incidents first seen in the period.
    pub incidents: usize,
    /// All services together.
    pub all: ServiceStats,
    /// Per service, by name.
    pub services: Vec<ServiceStats>,
    /// Per person and channel, by user id then channel.
    pub people: Vec<PersonStats>,
    pub pages: usize,
    pub out_of_hours_pages: usize,
    pub night_pages: usize,
}

fn service_stats(service: &str, incidents: &[&Incident]) -> ServiceStats {
    let mut tta: Vec<Duration> = incidents
        .iter()
        .filter_map(|i| i.acknowledged.as_ref().map(|t| elapsed(i.first_seen, t.at)))
        .collect();
    let mut ttr: Vec<Duration> = incidents
        .iter()
        .filter_map(|i| i.resolved.as_ref().map(|t| elapsed(i.first_seen, t.at)))
        .collect();
    tta.sort();
    ttr.sort();
    ServiceStats {
        service: service.to_string(),
        incidents: incidents.len(),
        acknowledged: tta.len(),
        resolved: ttr.len(),
        tta_median: percentile(&tta, 50.0),
        tta_p90: percentile(&tta, 90.0),
        ttr_median: percentile(&ttr, 50.0),
        ttr_p90: percentile(&ttr, 90.0),
    }
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Aggregates the rows of one period. `incidents` are those first seen in `[since, until]`;
/// `pages` those created in it (others are ignored, so callers may over-fetch).
pub fn compute(
    incidents: &[Incident],
    pages: &[PageRecord],
    business_hours: &Windows,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Stats {
    let night = Windows {
        tz: business_hours.tz,
        windows: vec![NIGHT.parse().expect("the night window parses")],
    };
    let in_period: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.first_seen >= since && i.first_seen <= until)
        .collect();
    let mut by_service: BTreeMap<&str, Vec<&Incident>> = BTreeMap::new();
    for i in &in_period {
        by_service
            .entry(i.service.as_deref().unwrap_or(NO_SERVICE))
            .or_default()
            .push(i);
    }
    let services = by_service
        .iter()
        .map(|(s, list)| service_stats(s, list))
        .collect();
    let mut people: BTreeMap<(String, String), PersonStats> = BTreeMap::new();
    let (mut total, mut ooh, mut nights) = (0, 0, 0);
    for p in pages
        .iter()
        .filter(|p| p.created_at >= since && p.created_at <= until)
        .filter(|p| p.kind.is_to_person() && p.was_sent())
    {
        let at = p.sent_at.unwrap_or(p.updated_at);
        let user = p.user_id.clone().unwrap_or_else(|| "?".into());
        let e = people
            .entry((user.clone(), p.channel.clone()))
            .or_insert_with(|| PersonStats {
                user_id: user,
                channel: p.channel.clone(),
                ..Default::default()
            });
        let out = !business_hours.contains(at);
        let at_night = night.contains(at);
        e.pages += 1;
        e.out_of_hours += usize::from(out);
        e.night += usize::from(at_night);
        total += 1;
        ooh += usize::from(out);
        nights += usize::from(at_night);
    }
    Stats {
        since,
        until,
        time_zone: business_hours.tz.name().to_string(),
        business_hours: business_hours
            .windows
            .iter()
            .map(|r| r.to_string())
            .collect(),
        incidents: in_period.len(),
        all: service_stats("(all)", &in_period),
        services,
        people: people.into_values().collect(),
        pages: total,
        out_of_hours_pages: ooh,
        night_pages: nights,
    }
}

/// Reads `--since`: a duration back from `now` (`30d`, `2w`, `12h`) or an RFC 3339 instant.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let t = t.with_timezone(&Utc);
        // A period that ends before it starts is empty for certain: say so instead of
        // answering zeros that look like a quiet month.
        if t > now {
            return Err(format!("since {s:?} is after now ({now})"));
        }
        return Ok(t);
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("since {s:?} is neither a duration like \"30d\" nor an RFC 3339 time ({e})")
    })?;
    let d = ChronoDuration::from_std(d).map_err(|_| format!("since {s:?} is too long ago"))?;
    now.checked_sub_signed(d)
        .ok_or_else(|| format!("since {s:?} is too long ago"))
}

/// The stats as plain-text tables for a terminal.
pub fn render_table(s: &Stats) -> String {
    let tz: Tz = s.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let d = |d: Option<Duration>| d.map(duration).unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "on-call stats {} .. {} ({})",
        s.since.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        s.until.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
        s.time_zone
    );
    let _ = writeln!(
        w,
        "{} incident(s), {} page(s), {} out of hours (outside {}), {} at night (22:00-06:00)\n",
        s.incidents,
        s.pages,
        s.out_of_hours_pages,
        s.business_hours.join("; "),
        s.night_pages
    );
    let _ = writeln!(
        w,
        "{:<20} {:>9} {:>6} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "SERVICE", "INCIDENTS", "ACKED", "RESOLVED", "TTA p50", "TTA p90", "TTR p50", "TTR p90"
    );
    for r in s.services.iter().chain(std::iter::once(&s.all)) {
        let _ = writeln!(
            w,
            "{:<20} {:>9} {:>6} {:>9} {:>10} {:>10} {:>10} {:>10}",
            r.service,
            r.incidents,
            r.acknowledged,
            r.resolved,
            d(r.tta_median),
            d(r.tta_p90),
            d(r.ttr_median),
            d(r.ttr_p90)
        );
    }
    let _ = writeln!(w);
    if s.people.is_empty() {
        let _ = writeln!(w, "no pages sent");
    } else {
        let _ = writeln!(
            w,
            "{:<20} {:<8} {:>6} {:>12} {:>6}",
            "PERSON", "CHANNEL", "PAGES", "OUT OF HOURS", "NIGHT"
        );
        for p in &s.people {
            let _ = writeln!(
                w,
                "{:<20} {:<8} {:>6} {:>12} {:>6}",
                p.user_id, p.channel, p.pages, p.out_of_hours, p.night
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{incident, page};
    use super::*;
    use crate::incident::Transition;
    use chrono::TimeZone;
    use chrono_tz::Europe::Berlin;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn office() -> Windows {
        Windows {
            tz: Berlin,
            windows: vec!["Mon-Fri 09:00-17:00".parse().unwrap()],
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        // The worked example of the nearest-rank method (Wikipedia, "Percentile"):
        // 15, 20, 35, 40, 50 -> p30 = 20, p40 = 20, p50 = 35, p100 = 50.
        let v = secs(&[15, 20, 35, 40, 50]);
        assert_eq!(percentile(&v, 30.0), Some(Duration::from_secs(20)));
        assert_eq!(percentile(&v, 40.0), Some(Duration::from_secs(20)));
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_secs(35)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_secs(50)));
        // 3, 6, 7, 8, 8, 10, 13, 15, 16, 20 -> p25 = 7, p50 = 8, p75 = 15, p90 = 16, p100 = 20.
        let v = secs(&[3, 6, 7, 8, 8, 10, 13, 15, 16, 20]);
        assert_eq!(percentile(&v, 25.0), Some(Duration::from_secs(7)));
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_secs(8)));
        assert_eq!(percentile(&v, 75.0), Some(Duration::from_secs(15)));
        assert_eq!(percentile(&v, 90.0), Some(Duration::from_secs(16)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_secs(20)));
        // One value is every percentile; none gives none; p0 is the minimum.
        assert_eq!(percentile(&secs(&[9]), 90.0), Some(Duration::from_secs(9)));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 0.0), Some(Duration::from_secs(3)));
    }

    #[test]
    fn business_hours_follow_berlin_across_both_dst_changes() {
        let h = office();
        // Friday 2026-03-27, CET (UTC+1): 08:30Z is 09:30 local, inside; 16:30Z is 17:30, outside.
        assert!(h.contains(utc("2026-03-27T08:30:00Z")));
        assert!(!h.contains(utc("2026-03-27T16:30:00Z")));
        assert!(!h.contains(utc("2026-03-27T07:59:59Z")), "08:59:59 CET");
        assert!(h.contains(utc("2026-03-27T08:00:00Z")), "09:00 CET opens");
        // Monday 2026-03-30, CEST (UTC+2) after the spring change: 07:30Z is 09:30 local, inside;
        // 15:30Z is 17:30 local, outside (it would be inside at the old offset).
        assert!(h.contains(utc("2026-03-30T07:30:00Z")));
        assert!(!h.contains(utc("2026-03-30T15:30:00Z")));
        assert!(h.contains(utc("2026-03-30T14:59:59Z")), "16:59:59 CEST");
        // Weekend: never.
        assert!(!h.contains(utc("2026-03-28T10:00:00Z")));
        // Monday 2026-10-26 after the autumn change, CET again: 08:00Z is 09:00 local.
        assert!(h.contains(utc("2026-10-26T08:00:00Z")));
        assert!(!h.contains(utc("2026-10-26T07:30:00Z")), "08:30 CET");
    }

    #[test]
    fn the_night_wraps_midnight_and_the_dst_night_is_one_stretch() {
        let night = Windows {
            tz: Berlin,
            windows: vec![NIGHT.parse().unwrap()],
        };
        // 2026-03-29 is the spring-forward night in Berlin: 02:00 CET -> 03:00 CEST.
        assert!(night.contains(utc("2026-03-28T21:00:00Z")), "22:00 CET");
        assert!(night.contains(utc("2026-03-29T01:30:00Z")), "03:30 CEST");
        assert!(night.contains(utc("2026-03-29T03:59:00Z")), "05:59 CEST");
        assert!(!night.contains(utc("2026-03-29T04:00:00Z")), "06:00 CEST");
        assert!(!night.contains(utc("2026-03-28T20:59:00Z")), "21:59 CET");
    }

    fn inc(id: i64, service: Option<&str>, tta_min: Option<i64>, ttr_min: Option<i64>) -> Incident {
        let mut i = incident();
        i.id = id;
        i.service = service.map(str::to_string);
        i.first_seen = utc("2026-11-16T10:00:00Z") + ChronoDuration::hours(id);
        let tr = |m: i64| Transition {
            at: i.first_seen + ChronoDuration::minutes(m),
            by: "alice".into(),
            via: "sms".into(),
        };
        i.acknowledged = tta_min.map(tr);
        i.resolved = ttr_min.map(tr);
        i
    }

    #[test]
    fn per_service_medians_p90s_and_pages() {
        let since = utc("2026-11-01T00:00:00Z");
        let until = utc("2026-12-01T00:00:00Z");
        let mut incidents: Vec<Incident> = (1..=10)
            .map(|n| inc(n, Some("db"), Some(n), Some(10 * n)))
            .collect();
        incidents.push(inc(11, None, None, Some(5)));
        incidents.push(inc(12, None, None, None));
        // Seen before the period: left out.
        let mut old = inc(13, Some("db"), Some(100), None);
        old.first_seen = utc("2026-10-01T00:00:00Z");
        incidents.push(old);

        let mut pages = Vec::new();
        // Monday 2026-11-16: 10:00 CET (inside), 20:00 CET (out, not night), 23:30 CET (night).
        for (id, at, user, channel, state) in [
            (1, "2026-11-16T09:00:00Z", "alice", "sms", "delivered"),
            (2, "2026-11-16T19:00:00Z", "alice", "sms", "sent"),
            (3, "2026-11-16T22:30:00Z", "alice", "voice", "sent"),
            (4, "2026-11-16T22:30:00Z", "bob", "sms", "delivered"),
            (5, "2026-11-16T22:30:00Z", "bob", "sms", "cancelled"),
            (6, "2026-11-16T22:30:00Z", "bob", "sms", "failed"),
        ] {
            let mut p = page(id, user, channel, state);
            p.created_at = utc(at);
            p.sent_at = matches!(state, "sent" | "delivered").then(|| utc(at));
            pages.push(p);
        }
        let mut status = page(7, "carol", "sms", "sent");
        status.kind = crate::store::kinds::PageKind::Status;
        status.created_at = utc("2026-11-16T22:30:00Z");
        pages.push(status);

        let s = compute(&incidents, &pages, &office(), since, until);
        assert_eq!(s.incidents, 12);
        assert_eq!(s.services.len(), 2);
        let db = &s.services[1];
        assert_eq!(db.service, "db");
        assert_eq!((db.incidents, db.acknowledged, db.resolved), (10, 10, 10));
        // TTA 1..=10 minutes: nearest-rank p50 = 5th = 5m, p90 = 9th = 9m.
        assert_eq!(db.tta_median, Some(Duration::from_secs(5 * 60)));
        assert_eq!(db.tta_p90, Some(Duration::from_secs(9 * 60)));
        assert_eq!(db.ttr_median, Some(Duration::from_secs(50 * 60)));
        assert_eq!(db.ttr_p90, Some(Duration::from_secs(90 * 60)));
        let none = &s.services[0];
        assert_eq!(none.service, NO_SERVICE);
        assert_eq!(
            (none.incidents, none.acknowledged, none.resolved),
            (2, 0, 1)
        );
        assert_eq!(none.tta_median, None);
        assert_eq!(none.ttr_p90, Some(Duration::from_secs(5 * 60)));
        assert_eq!((s.all.incidents, s.all.resolved), (12, 11));

        // Sent pages only, kinds page/digest only.
        assert_eq!(s.pages, 4);
        assert_eq!(s.out_of_hours_pages, 3);
        assert_eq!(s.night_pages, 2);
        let people: Vec<(&str, &str, usize, usize, usize)> = s
            .people
            .iter()
            .map(|p| {
                (
                    p.user_id.as_str(),
                    p.channel.as_str(),
                    p.pages,
                    p.out_of_hours,
                    p.night,
                )
            })
            .collect();
        assert_eq!(
            people,
            [
                ("alice", "sms", 2, 1, 0),
                ("alice", "voice", 1, 1, 1),
                ("bob", "sms", 1, 1, 1)
            ]
        );
        let table = render_table(&s);
        assert!(table.contains("db"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("db ") && l.contains("5m 00s") && l.contains("9m 00s")),
            "{table}"
        );
        let back: Stats = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn since_is_a_duration_back_or_an_instant() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        assert_eq!(
            parse_since("30d", now).unwrap(),
            now - ChronoDuration::days(30)
        );
        assert_eq!(
            parse_since("2026-11-01T00:00:00+01:00", now).unwrap(),
            utc("2026-10-31T23:00:00Z")
        );
        assert!(parse_since("last month", now)
            .unwrap_err()
            .contains("neither a duration"));
        assert!(parse_since("9999-12-31T23:59:59Z", now)
            .unwrap_err()
            .contains("after now"));
    }
}
