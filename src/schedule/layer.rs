//! One rotation layer: who it has at an instant, and the stretch around that instant in which
//! the answer cannot change.
//!
//! Evaluation is O(1) in the age of the layer: the shift index comes from the local time since
//! the start divided by the shift length, corrected by at most a step or two around a DST
//! change, so a layer that started in 2019 costs the same as one that started today.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;

use super::time::{local_to_utc, saturating_add, utc_to_local, Restriction, ShiftLength};
use super::Error;

/// A rotation: `users` take turns holding the layer, each for one `shift`, handing off at
/// `start` plus whole shifts on the schedule's local clock (so at `start`'s time of day for
/// day and week shifts, and at the same local hours all year for hour shifts).
///
/// Invariants (checked by [`Layer::new`]): `users` is not empty. Before `start` the layer has
/// nobody. Shift `k` (counted from 0 at `start`) belongs to `users[k % users.len()]`. Outside
/// every restriction window (when there are any) the layer has nobody, so lower layers show
/// through.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Name shown as the source of an on-call answer ("weekly", "business hours").
    pub name: String,
    /// User ids in rotation order.
    pub users: Vec<String>,
    /// Length of one shift.
    pub shift: ShiftLength,
    /// The first handoff, schedule-local (read by [`local_to_utc`]).
    pub start: NaiveDateTime,
    /// Windows in which the layer is on call; empty means always.
    pub restrictions: Vec<Restriction>,
}

/// What one layer says at an instant, and a stretch `[from, until)` around that instant on which
/// it says the same. The stretch is not necessarily maximal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerState<'a> {
    pub user: Option<&'a str>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// How far a restriction stretch reaches each side of the instant asked about. Within 12 hours
/// the local date moves by at most one day, which bounds the windows that must be looked at.
const RESTRICTION_REACH: i64 = 12;

impl Layer {
    /// A checked layer. Fails when `users` is empty.
    pub fn new(
        name: impl Into<String>,
        users: Vec<String>,
        shift: ShiftLength,
        start: NaiveDateTime,
        restrictions: Vec<Restriction>,
    ) -> Result<Self, Error> {
        let name = name.into();
        if users.is_empty() {
            return Err(Error::EmptyLayer { layer: name });
        }
        Ok(Layer {
            name,
            users,
            shift,
            start,
            restrictions,
        })
    }

    /// The shift containing `at` as (index, handoff in, handoff out), or `None` before the start.
    pub fn shift_at(
        &self,
        tz: Tz,
        at: DateTime<Utc>,
    ) -> Option<(u64, DateTime<Utc>, DateTime<Utc>)> {
        let start = local_to_utc(tz, self.start);
        if at < start {
            return None;
        }
        // Every handoff is a local time: the start plus k shifts on the schedule's own clock,
        // then placed on the timeline by `local_to_utc`. So "12h" from 08:00 hands off at 08:00
        // and 20:00 local all year, and the shift over a DST change is an hour shorter or longer.
        let step = self.shift.local_step();
        let handoff = |k: i64| match i32::try_from(k)
            .ok()
            .and_then(|k| step.checked_mul(k))
            .and_then(|d| self.start.checked_add_signed(d))
        {
            Some(local) => local_to_utc(tz, local),
            None => DateTime::<Utc>::MAX_UTC,
        };
        let local_elapsed = (utc_to_local(tz, at) - self.start).num_seconds();
        let mut k = local_elapsed.div_euclid(step.num_seconds()).max(0);
        let mut begin = handoff(k);
        // The local clock can disagree with the timeline by the DST offset around a handoff (a
        // fall-back hour repeats, a spring-forward one is missing); these loops run at most a
        // step or two and keep the answer exact. A handoff inside a gap falls on the instant the
        // gap ends, like the next one may: that shift is empty and is stepped over.
        while k > 0 && at < begin {
            k -= 1;
            begin = handoff(k);
        }
        let mut end = handoff(k + 1);
        while at >= end && end != DateTime::<Utc>::MAX_UTC {
            k += 1;
            begin = end;
            end = handoff(k + 1);
        }
        Some((k as u64, begin, end))
    }

    /// Who the layer has at `at` and a stretch around `at` with the same answer.
    pub(crate) fn state_at(&self, tz: Tz, at: DateTime<Utc>) -> LayerState<'_> {
        let Some((k, begin, end)) = self.shift_at(tz, at) else {
            return LayerState {
                user: None,
                from: DateTime::<Utc>::MIN_UTC,
                until: local_to_utc(tz, self.start),
            };
        };
        let user = Some(self.users[(k % self.users.len() as u64) as usize].as_str());
        if self.restrictions.is_empty() {
            return LayerState {
                user,
                from: begin,
                until: end,
            };
        }
        let (inside, from, until) = self.restriction_state(tz, at);
        LayerState {
            user: if inside { user } else { None },
            from: from.max(begin),
            until: until.min(end),
        }
    }

    /// Whether `at` is inside any restriction window, and a stretch around `at` without a
    /// window edge in it.
    fn restriction_state(&self, tz: Tz, at: DateTime<Utc>) -> (bool, DateTime<Utc>, DateTime<Utc>) {
        let reach = Duration::hours(RESTRICTION_REACH);
        let (mut from, mut until) = (saturating_add(at, -reach), saturating_add(at, reach));
        let mut inside = false;
        let today = utc_to_local(tz, at).date();
        // A window opening on date D covers local dates D and D+1; instants within 12 hours of
        // `at` have local dates today-1..=today+1, so windows opening today-2..=today+1 suffice.
        for offset in -2..=1 {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            for r in &self.restrictions {
                let Some((open, close)) = r.window_on(tz, date) else {
                    continue;
                };
                if open <= at && at < close {
                    inside = true;
                }
                for edge in [open, close] {
                    if edge <= at {
                        from = from.max(edge);
                    } else {
                        until = until.min(edge);
                    }
                }
            }
        }
        (inside, from, until)
    }
}

#[cfg(test)]
mod tests {
    use super::super::time::parse_local;
    use super::*;
    use chrono_tz::{America, Asia, Australia, Europe, Pacific};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn layer(users: &[&str], shift: &str, start: &str, restrictions: &[&str]) -> Layer {
        Layer::new(
            "l",
            users.iter().map(|u| u.to_string()).collect(),
            shift.parse().unwrap(),
            parse_local(start).unwrap(),
            restrictions.iter().map(|r| r.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    struct Case {
        name: &'static str,
        tz: Tz,
        shift: &'static str,
        start: &'static str,
        at: &'static str,
        /// Expected (user, handoff in, handoff out), all UTC.
        want: Option<(&'static str, &'static str, &'static str)>,
    }

    /// Every rotation case the schedules must get right: one row per zone and DST edge. The expected
    /// instants are worked out by hand from the zone rules, not computed.
    #[test]
    fn rotation_table() {
        let ab = ["alice", "bob"];
        let cases = [
            Case {
                name: "berlin daily 09:00, winter",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-01-05T09:00",
                at: "2026-01-06T12:00:00Z",
                want: Some(("bob", "2026-01-06T08:00:00Z", "2026-01-07T08:00:00Z")),
            },
            Case {
                name: "berlin spring forward: 09:00 stays 09:00, shift is 23h",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-03-28T09:00",
                at: "2026-03-29T06:00:00Z",
                want: Some(("alice", "2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z")),
            },
            Case {
                name: "berlin fall back: shift is 25h",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-10-24T09:00",
                at: "2026-10-25T07:30:00Z",
                want: Some(("alice", "2026-10-24T07:00:00Z", "2026-10-25T08:00:00Z")),
            },
            Case {
                name: "berlin 02:30 handoff on spring-forward day is 03:00 CEST",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-03-27T02:30",
                at: "2026-03-29T00:59:00Z",
                want: Some(("bob", "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z")),
            },
            Case {
                name: "berlin 02:30 handoff on spring-forward day, after",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-03-27T02:30",
                at: "2026-03-29T01:00:00Z",
                want: Some(("alice", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z")),
            },
            Case {
                name: "berlin 02:30 handoff on fall-back day is the first 02:30 (CEST)",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-10-24T02:30",
                at: "2026-10-25T00:30:00Z",
                want: Some(("bob", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z")),
            },
            Case {
                name: "berlin weekly across both DST changes",
                tz: Europe::Berlin,
                shift: "1w",
                start: "2026-03-23T09:00",
                at: "2026-03-30T07:00:00Z",
                want: Some(("bob", "2026-03-30T07:00:00Z", "2026-04-06T07:00:00Z")),
            },
            Case {
                name: "berlin 12h stays at 09:00/21:00 local: the night over spring forward is 11h",
                tz: Europe::Berlin,
                shift: "12h",
                start: "2026-03-28T09:00",
                at: "2026-03-29T06:30:00Z",
                want: Some(("bob", "2026-03-28T20:00:00Z", "2026-03-29T07:00:00Z")),
            },
            Case {
                name: "berlin 12h the day after spring forward is 09:00-21:00 CEST",
                tz: Europe::Berlin,
                shift: "12h",
                start: "2026-03-28T09:00",
                at: "2026-03-29T08:30:00Z",
                want: Some(("alice", "2026-03-29T07:00:00Z", "2026-03-29T19:00:00Z")),
            },
            Case {
                name: "berlin 12h: the night over fall back is 13h",
                tz: Europe::Berlin,
                shift: "12h",
                start: "2026-10-24T09:00",
                at: "2026-10-25T02:00:00Z",
                want: Some(("bob", "2026-10-24T19:00:00Z", "2026-10-25T08:00:00Z")),
            },
            Case {
                name: "new york 8h from 06:00 keeps 06/14/22 local after spring forward",
                tz: America::New_York,
                shift: "8h",
                start: "2026-03-07T06:00",
                at: "2026-03-08T18:30:00Z",
                want: Some(("alice", "2026-03-08T18:00:00Z", "2026-03-09T02:00:00Z")),
            },
            Case {
                name: "berlin 1h: alice's 02:00 turn on spring-forward day is empty, bob's 03:00 follows",
                tz: Europe::Berlin,
                shift: "1h",
                start: "2026-03-29T00:00",
                at: "2026-03-29T01:00:00Z",
                want: Some(("bob", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")),
            },
            Case {
                name: "new york 1h: the 01:00 turn on fall-back day lasts both 01:00 hours",
                tz: America::New_York,
                shift: "1h",
                start: "2026-11-01T00:00",
                at: "2026-11-01T06:30:00Z",
                want: Some(("bob", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z")),
            },
            Case {
                name: "lord howe 12h from 08:00: the night over its 30-minute fall back is 12.5h",
                tz: Australia::Lord_Howe,
                shift: "12h",
                start: "2026-04-04T08:00",
                at: "2026-04-04T21:00:00Z",
                want: Some(("bob", "2026-04-04T09:00:00Z", "2026-04-04T21:30:00Z")),
            },
            Case {
                name: "berlin 36h",
                tz: Europe::Berlin,
                shift: "36h",
                start: "2026-01-05T09:00",
                at: "2026-01-07T00:00:00Z",
                want: Some(("bob", "2026-01-06T20:00:00Z", "2026-01-08T08:00:00Z")),
            },
            Case {
                name: "new york spring forward 2026-03-08",
                tz: America::New_York,
                shift: "1d",
                start: "2026-03-07T09:00",
                at: "2026-03-08T13:30:00Z",
                want: Some(("bob", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z")),
            },
            Case {
                name: "new york fall back 2026-11-01 01:30 first occurrence (EDT)",
                tz: America::New_York,
                shift: "1d",
                start: "2026-10-31T01:30",
                at: "2026-11-01T05:45:00Z",
                want: Some(("bob", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z")),
            },
            Case {
                name: "sydney fall back 2026-04-05: the shift over it is 25h",
                tz: Australia::Sydney,
                shift: "1d",
                start: "2026-04-04T09:00",
                at: "2026-04-04T22:30:00Z",
                want: Some(("alice", "2026-04-03T22:00:00Z", "2026-04-04T23:00:00Z")),
            },
            Case {
                name: "sydney 02:30 on spring-forward day 2026-10-04 is 03:00 AEDT",
                tz: Australia::Sydney,
                shift: "1d",
                start: "2026-10-03T02:30",
                at: "2026-10-03T16:00:00Z",
                want: Some(("bob", "2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z")),
            },
            Case {
                name: "kolkata +05:30",
                tz: Asia::Kolkata,
                shift: "1d",
                start: "2026-01-01T09:00",
                at: "2026-01-02T03:29:59Z",
                want: Some(("alice", "2026-01-01T03:30:00Z", "2026-01-02T03:30:00Z")),
            },
            Case {
                name: "chatham +13:45 -> +12:45 on 2026-04-05 (the shift before is 25h)",
                tz: Pacific::Chatham,
                shift: "1d",
                start: "2026-04-04T09:00",
                at: "2026-04-05T00:00:00Z",
                want: Some(("bob", "2026-04-04T20:15:00Z", "2026-04-05T20:15:00Z")),
            },
            Case {
                name: "chatham 03:00 on spring-forward 2026-09-27 is 03:45",
                tz: Pacific::Chatham,
                shift: "1d",
                start: "2026-09-26T03:00",
                at: "2026-09-26T14:00:00Z",
                want: Some(("bob", "2026-09-26T14:00:00Z", "2026-09-27T13:15:00Z")),
            },
            Case {
                name: "utc",
                tz: chrono_tz::UTC,
                shift: "1d",
                start: "2026-01-01T00:00",
                at: "2026-01-03T00:00:00Z",
                want: Some(("alice", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z")),
            },
            Case {
                name: "year boundary: Dec 31 -> Jan 1 daily",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-12-30T09:00",
                at: "2027-01-01T07:59:59Z",
                want: Some(("bob", "2026-12-31T08:00:00Z", "2027-01-01T08:00:00Z")),
            },
            Case {
                name: "year boundary: ISO week 53 of 2026 into week 1 of 2027",
                tz: Europe::Berlin,
                shift: "1w",
                start: "2026-12-21T09:00",
                at: "2027-01-04T08:00:00Z",
                want: Some(("alice", "2027-01-04T08:00:00Z", "2027-01-11T08:00:00Z")),
            },
            Case {
                name: "started in 2019, evaluated in 2026 (weekly)",
                tz: Europe::Berlin,
                shift: "1w",
                start: "2019-01-07T09:00",
                at: "2026-07-01T12:00:00Z",
                want: Some(("alice", "2026-06-29T07:00:00Z", "2026-07-06T07:00:00Z")),
            },
            Case {
                name: "started in 2019 in winter, 12h, evaluated in summer: still 09:00 local",
                tz: Europe::Berlin,
                shift: "12h",
                start: "2019-01-07T09:00",
                at: "2026-07-01T12:00:00Z",
                want: Some(("alice", "2026-07-01T07:00:00Z", "2026-07-01T19:00:00Z")),
            },
            Case {
                name: "before the start nobody",
                tz: Europe::Berlin,
                shift: "1d",
                start: "2026-01-05T09:00",
                at: "2026-01-05T07:59:59Z",
                want: None,
            },
        ];
        for c in cases {
            let l = layer(&ab, c.shift, c.start, &[]);
            let got = l
                .shift_at(c.tz, utc(c.at))
                .map(|(k, b, e)| (l.users[k as usize % 2].as_str(), b, e));
            let want = c.want.map(|(u, b, e)| (u, utc(b), utc(e)));
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn restrictions_business_hours_and_nights() {
        let tz = Europe::Berlin;
        let l = layer(
            &["carol"],
            "1d",
            "2026-01-05T09:00",
            &["Mon-Fri 09:00-18:00"],
        );
        // (instant, on call?) 2026-01-09 is a Friday, 2026-01-10 a Saturday.
        let cases = [
            ("2026-01-09T07:59:59Z", false),
            ("2026-01-09T08:00:00Z", true),
            ("2026-01-09T16:59:59Z", true),
            ("2026-01-09T17:00:00Z", false),
            ("2026-01-10T10:00:00Z", false),
        ];
        for (at, on) in cases {
            assert_eq!(l.state_at(tz, utc(at)).user.is_some(), on, "{at}");
        }
        // Nights wrap past midnight and belong to the day they start on: Fri night runs into Sat.
        let l = layer(
            &["nina"],
            "1w",
            "2026-01-05T00:00",
            &["Mon-Fri 22:00-06:00"],
        );
        let cases = [
            ("2026-01-09T20:59:59Z", false), // Fri 21:59 CET
            ("2026-01-09T21:00:00Z", true),  // Fri 22:00
            ("2026-01-10T04:59:59Z", true),  // Sat 05:59, Friday's night
            ("2026-01-10T05:00:00Z", false), // Sat 06:00
            ("2026-01-10T22:00:00Z", false), // Sat 23:00: no Saturday night
            ("2026-01-11T23:30:00Z", false), // Mon 00:30: Sunday's night, Sunday not listed
            ("2026-01-12T23:30:00Z", true),  // Tue 00:30: Monday's night
        ];
        for (at, on) in cases {
            assert_eq!(l.state_at(tz, utc(at)).user.is_some(), on, "{at}");
        }
        // Stretch edges are the window edges.
        let s = l.state_at(tz, utc("2026-01-10T01:00:00Z"));
        assert_eq!(
            (s.from, s.until),
            (utc("2026-01-09T21:00:00Z"), utc("2026-01-10T05:00:00Z"))
        );
    }

    #[test]
    fn night_window_across_fall_back_is_one_stretch() {
        let tz = Europe::Berlin;
        let l = layer(&["nina"], "1w", "2026-01-05T00:00", &["Sat 22:00-06:00"]);
        // Sat 2026-10-24 22:00 CEST = 20:00Z to Sun 06:00 CET = 05:00Z: nine hours.
        let s = l.state_at(tz, utc("2026-10-25T01:30:00Z"));
        assert_eq!(s.user, Some("nina"));
        assert_eq!(
            (s.from, s.until),
            (utc("2026-10-24T20:00:00Z"), utc("2026-10-25T05:00:00Z"))
        );
    }

    #[test]
    fn empty_layer_is_rejected() {
        let err = Layer::new(
            "x",
            vec![],
            "1d".parse().unwrap(),
            parse_local("2026-01-01T00:00").unwrap(),
            vec![],
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
    }
}
