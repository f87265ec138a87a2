//! Who is on call at an instant: schedules, rotation layers, restrictions and overrides,
//! evaluated locally with chrono-tz and correct across DST.
//!
//! This module is pure: it takes instants as arguments and never reads the clock, the config
//! file or the store. The config module parses TOML and calls the constructors and `FromStr`
//! parsers here ([`ShiftLength`], [`Restriction`], [`Layer::new`], [`Schedule::new`],
//! [`local_to_utc`]); the store keeps runtime [`Override`]s and hands them in as a slice.
//!
//! # Time semantics
//! - A layer's `start` and every handoff are schedule-local wall times read by
//!   [`local_to_utc`]: a wall time in a spring-forward gap means the first instant after the gap;
//!   an ambiguous one (fall-back) its first occurrence.
//! - Every shift length counts on the zone's local clock: handoff k is the start's local time
//!   plus k shifts. A 09:00 daily handoff stays at 09:00 across DST (that shift lasts 23 or 25
//!   hours), and a "12h" rotation from 08:00 stays at 08:00 and 20:00 (that shift lasts 11 or
//!   13). The shift index is the local time since the start divided by the shift length (O(1)).
//! - Before a layer's start, the layer has nobody.
//! - Restrictions are windows in local time; outside them the layer has nobody.
//! - Layers are listed lowest first; the highest layer that has somebody wins, so lower layers
//!   show through where a higher one is restricted off or not yet started.
//! - Overrides (config and runtime) win over every layer exactly inside `[from, until)`; among
//!   overlapping overrides the latest created wins: runtime after config, then by store row id,
//!   then by position in the list.
//!
//! # Evaluation
//! Each layer answers for an instant with a stretch around it in which its answer cannot change
//! (a shift, cut by restriction edges). The schedule intersects those stretches with override
//! edges into a *segment*; [`Schedule::shifts`] walks segments and merges neighbours with the
//! same person and source. Cost per segment is O(layers + restrictions + overrides), independent
//! of how long ago a rotation started.

mod ics;
mod layer;
mod time;

pub mod cli;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use ics::to_ics;
pub use layer::Layer;
use time::saturating_add;
pub use time::{
    local_days_after, local_to_utc, parse_date_or_time, parse_local, parse_time, utc_to_local,
    Restriction, ShiftLength,
};

/// What can be wrong with schedule input. Every variant keeps the bad input and says what was
/// expected, so the config module can print it after `file:line:column: key:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A shift length that is not a whole number and a unit.
    #[error("bad shift length {input:?}: {reason}; expected a whole number and a unit h, d or w (\"12h\", \"1d\", \"2w\")")]
    ShiftLength { input: String, reason: String },
    /// A restriction that is not `DAYS HH:MM-HH:MM`.
    #[error("bad restriction {input:?}: {reason}; expected days and a local time window like \"Mon-Fri 09:00-18:00\", \"Sat,Sun 10:00-14:00\" or \"Mon-Sun 22:00-06:00\"")]
    Restriction { input: String, reason: String },
    /// A layer with no users.
    #[error("layer {layer:?} has no users; expected at least one user id")]
    EmptyLayer { layer: String },
    /// Two layers of one schedule with the same name (the name is the source shown to people).
    #[error("layer name {layer:?} is used twice; expected unique layer names within a schedule")]
    DuplicateLayer { layer: String },
    /// A schedule with no layers.
    #[error("schedule {schedule:?} has no layers; expected at least one [[schedules.layers]]")]
    NoLayers { schedule: String },
    /// An override whose window is empty or backwards.
    #[error("override for {user:?}: from {from} is not before until {until}")]
    EmptyOverride {
        user: String,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// A time that is neither RFC 3339 nor a local `YYYY-MM-DDTHH:MM`.
    #[error("bad time {input:?}: expected RFC 3339 (\"2026-03-29T01:30:00Z\") or local \"YYYY-MM-DDTHH:MM\", in the years 0 to 9999")]
    Time { input: String },
}

/// Where an override came from. Runtime overrides are newer than every config override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideSource {
    /// `[[schedules.overrides]]` in the config file.
    Config,
    /// Created at run time (HTTP, CLI, SMS `TAKE`) and kept in the store.
    Runtime,
}

/// Somebody else takes over a schedule for `[from, until)`.
///
/// Invariant (checked by [`Override::new`]): `from < until`. An override built by hand with an
/// empty window simply never applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Store row id for runtime overrides (also their creation order); `None` for config ones.
    pub id: Option<i64>,
    /// Who is on call inside the window.
    pub user: String,
    /// First instant covered.
    pub from: DateTime<Utc>,
    /// First instant no longer covered.
    pub until: DateTime<Utc>,
    /// Config or runtime.
    pub source: OverrideSource,
}

impl Override {
    /// A checked override. Fails when `from >= until`.
    pub fn new(
        id: Option<i64>,
        user: impl Into<String>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        source: OverrideSource,
    ) -> Result<Self, Error> {
        let user = user.into();
        if from >= until {
            return Err(Error::EmptyOverride { user, from, until });
        }
        Ok(Override {
            id,
            user,
            from,
            until,
            source,
        })
    }

    /// True when the override covers `at`.
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.until
    }

    /// Creation order: runtime after config, then by row id.
    fn rank(&self) -> (u8, i64) {
        let source = match self.source {
            OverrideSource::Config => 0,
            OverrideSource::Runtime => 1,
        };
        (source, self.id.unwrap_or(i64::MIN))
    }
}

/// Why somebody is on call. JSON: `{"layer":"weekly"}` or `{"override":7}` (`null` for a
/// config override).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Their turn in the named layer.
    Layer(String),
    /// An override; the store row id for runtime overrides, `None` for config ones.
    Override(Option<i64>),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Layer(name) => write!(f, "layer {name}"),
            Source::Override(Some(id)) => write!(f, "override #{id}"),
            Source::Override(None) => f.write_str("override (config)"),
        }
    }
}

/// The answer to "who is on call at this instant". Serializes for `GET /v1/oncall`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnCall {
    /// The user id.
    pub user: String,
    /// Which layer or override put them there.
    pub source: Source,
    /// When this unbroken stretch (same user, same source) began; the look-back stops at
    /// [`LOOK_BEHIND`], so a longer stretch reports where the look-back stopped.
    pub from: DateTime<Utc>,
    /// When it ends; `None` when nothing changes within [`LOOK_AHEAD`].
    pub until: Option<DateTime<Utc>>,
}

/// One piece of the final timeline, after layering and overrides. Serializes for
/// `GET /v1/schedules/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    /// Who is on call; `None` is a gap.
    pub user: Option<String>,
    /// First instant.
    pub from: DateTime<Utc>,
    /// First instant after.
    pub until: DateTime<Utc>,
    /// Why; `None` exactly when `user` is `None`.
    pub source: Option<Source>,
}

/// How far [`Schedule::on_call`] and [`Schedule::next_handoff`] look ahead for a change.
pub const LOOK_AHEAD: Duration = Duration::days(400);
/// How far [`Schedule::on_call`] looks back for the start of a stretch.
pub const LOOK_BEHIND: Duration = Duration::days(35);

/// A named on-call schedule in one time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The id policies refer to.
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// The zone all local times of this schedule are read in.
    pub tz: Tz,
    /// Rotation layers, lowest first.
    pub layers: Vec<Layer>,
    /// Overrides from the config file, in file order (later wins where they overlap).
    pub overrides: Vec<Override>,
}

/// A stretch on which the schedule's answer is constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment<'a> {
    answer: Option<(&'a str, SourceRef<'a>)>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// A borrowed [`Source`], so walking segments does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceRef<'a> {
    Layer(&'a str),
    Override(Option<i64>),
}

impl SourceRef<'_> {
    fn to_owned(self) -> Source {
        match self {
            SourceRef::Layer(n) => Source::Layer(n.to_string()),
            SourceRef::Override(id) => Source::Override(id),
        }
    }
}

impl Schedule {
    /// A checked schedule: at least one layer, unique layer names.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        tz: Tz,
        layers: Vec<Layer>,
        overrides: Vec<Override>,
    ) -> Result<Self, Error> {
        let id = id.into();
        if layers.is_empty() {
            return Err(Error::NoLayers { schedule: id });
        }
        for (i, l) in layers.iter().enumerate() {
            if layers[..i].iter().any(|o| o.name == l.name) {
                return Err(Error::DuplicateLayer {
                    layer: l.name.clone(),
                });
            }
        }
        Ok(Schedule {
            id,
            name: name.into(),
            tz,
            layers,
            overrides,
        })
    }

    /// The answer at `at` and a stretch around it on which the answer cannot change.
    fn segment<'a>(&'a self, at: DateTime<Utc>, runtime: &'a [Override]) -> Segment<'a> {
        let mut from = DateTime::<Utc>::MIN_UTC;
        let mut until = DateTime::<Utc>::MAX_UTC;
        let mut answer = None;
        for layer in &self.layers {
            let s = layer.state_at(self.tz, at);
            from = from.max(s.from);
            until = until.min(s.until);
            if let Some(user) = s.user {
                answer = Some((user, SourceRef::Layer(layer.name.as_str())));
            }
        }
        let mut winner: Option<(&Override, (u8, i64), usize)> = None;
        for (i, o) in self.overrides.iter().chain(runtime).enumerate() {
            for edge in [o.from, o.until] {
                if edge <= at {
                    from = from.max(edge);
                } else {
                    until = until.min(edge);
                }
            }
            let newer = match winner {
                None => true,
                Some((_, rank, j)) => (o.rank(), i) > (rank, j),
            };
            if o.covers(at) && newer {
                winner = Some((o, o.rank(), i));
            }
        }
        if let Some((o, _, _)) = winner {
            answer = Some((o.user.as_str(), SourceRef::Override(o.id)));
        }
        Segment {
            answer,
            from,
            until,
        }
    }

    /// Only who is on call at `at` (no stretch, no source): one segment evaluation, several
    /// times cheaper than [`Schedule::on_call`]. What the escalation engine needs per step.
    pub fn user_at<'a>(
        &'a self,
        at: DateTime<Utc>,
        runtime_overrides: &'a [Override],
    ) -> Option<&'a str> {
        self.segment(at, runtime_overrides)
            .answer
            .map(|(user, _)| user)
    }

    /// Who is on call at `at`, from which layer or override, and for how long; `None` when
    /// nobody is (a gap). `runtime_overrides` are this schedule's overrides from the store.
    pub fn on_call(&self, at: DateTime<Utc>, runtime_overrides: &[Override]) -> Option<OnCall> {
        let seg = self.segment(at, runtime_overrides);
        let (user, source) = seg.answer?;
        let horizon = saturating_add(at, LOOK_AHEAD);
        let mut until = seg.until;
        let mut changes = false;
        while until != DateTime::<Utc>::MAX_UTC && until < horizon {
            let next = self.segment(until, runtime_overrides);
            if next.answer != seg.answer {
                changes = true;
                break;
            }
            until = next.until;
        }
        let mut from = seg.from;
        while from != DateTime::<Utc>::MIN_UTC && from > saturating_add(at, -LOOK_BEHIND) {
            let prev = self.segment(from - Duration::nanoseconds(1), runtime_overrides);
            if prev.answer != seg.answer {
                break;
            }
            from = prev.from;
        }
        Some(OnCall {
            user: user.to_string(),
            source: source.to_owned(),
            from,
            until: changes.then_some(until),
        })
    }

    /// The final timeline on `[from, to)`: contiguous shifts that tile it exactly (the first
    /// starts at `from`, each starts where the one before ends, the last ends at `to`), with
    /// neighbours merged when they have the same user and source. Gaps are shifts with no user.
    /// Empty when `from >= to`.
    pub fn shifts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        runtime_overrides: &[Override],
    ) -> Vec<Shift> {
        let mut out: Vec<Shift> = Vec::new();
        let mut last_answer = None;
        let mut t = from;
        while t < to {
            let seg = self.segment(t, runtime_overrides);
            let end = seg.until.min(to);
            match out.last_mut() {
                Some(prev) if last_answer == Some(seg.answer) => prev.until = end,
                _ => out.push(Shift {
                    user: seg.answer.map(|(u, _)| u.to_string()),
                    from: t,
                    until: end,
                    source: seg.answer.map(|(_, s)| s.to_owned()),
                }),
            }
            last_answer = Some(seg.answer);
            t = end;
        }
        out
    }

    /// The windows in `[from, to)` in which nobody is on call.
    pub fn gaps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        runtime_overrides: &[Override],
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.shifts(from, to, runtime_overrides)
            .into_iter()
            .filter(|s| s.user.is_none())
            .map(|s| (s.from, s.until))
            .collect()
    }

    /// The first instant after `after` at which a different person (or nobody) is on call;
    /// `None` when that does not happen within [`LOOK_AHEAD`]. A change of source alone (the
    /// same person's override starting) is not a handoff.
    pub fn next_handoff(
        &self,
        after: DateTime<Utc>,
        runtime_overrides: &[Override],
    ) -> Option<DateTime<Utc>> {
        let user = self
            .segment(after, runtime_overrides)
            .answer
            .map(|(u, _)| u);
        let mut t = after;
        while t < saturating_add(after, LOOK_AHEAD) {
            let seg = self.segment(t, runtime_overrides);
            if seg.answer.map(|(u, _)| u) != user {
                return Some(t);
            }
            if seg.until == DateTime::<Utc>::MAX_UTC {
                return None;
            }
            t = seg.until;
        }
        None
    }
}

/// Runtime overrides of every schedule, by schedule id, in the order the store lists them.
pub type OverridesBySchedule = HashMap<String, Vec<Override>>;

/// `pagerbox check` warnings: one line per window in `[now, now + horizon)` in which a schedule
/// has nobody on call, in the schedule's local time, e.g.
/// `schedule "primary": nobody on call from 2026-12-01 18:00 CET to 2026-12-02 09:00 CET`.
/// Pass only the schedules some policy uses; a schedule nobody pages may well have gaps.
pub fn gap_warnings(
    schedules: &[&Schedule],
    now: DateTime<Utc>,
    horizon: Duration,
    overrides: &OverridesBySchedule,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in schedules {
        let rt = overrides.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
        let end = saturating_add(now, horizon);
        for (from, until) in s.gaps(now, end, rt) {
            out.push(format!(
                "schedule {:?}: nobody on call from {} to {}{}",
                s.id,
                format_local(s.tz, from),
                format_local(s.tz, until),
                if until == end {
                    " (and possibly later)"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

/// `2026-12-01 18:00 CET`: an instant in a schedule's zone, as people read it.
pub fn format_local(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn layer(name: &str, users: &[&str], shift: &str, start: &str, restrictions: &[&str]) -> Layer {
        Layer::new(
            name,
            users.iter().map(|u| u.to_string()).collect(),
            shift.parse().unwrap(),
            parse_local(start).unwrap(),
            restrictions.iter().map(|r| r.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    /// The schedule of config/pagerbox.example.toml.
    fn example() -> Schedule {
        Schedule::new(
            "primary",
            "Primary on-call",
            Europe::Berlin,
            vec![
                layer("weekly", &["alice", "bob"], "1w", "2026-01-05T09:00", &[]),
                layer(
                    "business hours",
                    &["carol"],
                    "1d",
                    "2026-01-05T09:00",
                    &["Mon-Fri 09:00-18:00"],
                ),
            ],
            vec![Override::new(
                None,
                "bob",
                local_to_utc(Europe::Berlin, parse_local("2026-12-24T00:00").unwrap()),
                local_to_utc(Europe::Berlin, parse_local("2026-12-27T00:00").unwrap()),
                OverrideSource::Config,
            )
            .unwrap()],
        )
        .unwrap()
    }

    fn who(s: &Schedule, at: &str, rt: &[Override]) -> Option<(String, Source)> {
        s.on_call(utc(at), rt).map(|o| (o.user, o.source))
    }

    fn runtime(id: i64, user: &str, from: &str, until: &str) -> Override {
        Override::new(
            Some(id),
            user,
            utc(from),
            utc(until),
            OverrideSource::Runtime,
        )
        .unwrap()
    }

    #[test]
    fn higher_layer_wins_and_lower_shows_through() {
        let s = example();
        let weekly = |u: &str| Some((u.to_string(), Source::Layer("weekly".into())));
        let carol = Some(("carol".to_string(), Source::Layer("business hours".into())));
        let cases = [
            ("2026-01-05T07:59:59Z", None),            // before every layer starts
            ("2026-01-05T08:00:00Z", carol.clone()),   // Mon 09:00: business hours on top
            ("2026-01-05T17:00:00Z", weekly("alice")), // Mon 18:00: restricted off, alice shows
            ("2026-01-10T12:00:00Z", weekly("alice")), // Saturday
            ("2026-01-12T07:59:59Z", weekly("alice")), // Mon 08:59, still alice's week
            ("2026-01-12T08:00:00Z", carol.clone()),   // Mon 09:00 both hand off; carol on top
            ("2026-01-12T17:00:00Z", weekly("bob")),   // bob's week shows through
            ("2026-07-01T06:59:59Z", weekly("bob")),   // CEST: Wed 08:59 (week 26: bob)
            ("2026-07-01T07:00:00Z", carol.clone()),   // Wed 09:00 CEST
        ];
        for (at, want) in cases {
            assert_eq!(
                s.user_at(utc(at), &[]),
                want.as_ref().map(|w| w.0.as_str()),
                "{at}"
            );
            assert_eq!(who(&s, at, &[]), want, "{at}");
        }
    }

    #[test]
    fn higher_layer_before_its_start_lets_lower_show() {
        let s = Schedule::new(
            "s",
            "s",
            Europe::Berlin,
            vec![
                layer("base", &["alice"], "1d", "2026-01-01T00:00", &[]),
                layer("new", &["bob"], "1d", "2026-02-01T00:00", &[]),
            ],
            vec![],
        )
        .unwrap();
        assert_eq!(who(&s, "2026-01-31T22:59:59Z", &[]).unwrap().0, "alice");
        assert_eq!(who(&s, "2026-01-31T23:00:00Z", &[]).unwrap().0, "bob");
    }

    #[test]
    fn overrides_win_exactly_inside_and_latest_created_wins() {
        let s = example();
        // Config override: bob from Dec 24 00:00 CET (Dec 23 23:00Z) to Dec 27 00:00 CET.
        assert_eq!(
            who(&s, "2026-12-23T22:59:59Z", &[]).unwrap().1,
            Source::Layer("weekly".into())
        );
        assert_eq!(
            who(&s, "2026-12-23T23:00:00Z", &[]),
            Some(("bob".into(), Source::Override(None)))
        );
        assert_eq!(
            who(&s, "2026-12-24T10:00:00Z", &[]).unwrap().0,
            "bob",
            "beats business hours"
        );
        assert_eq!(who(&s, "2026-12-26T22:59:59Z", &[]).unwrap().0, "bob");
        assert_ne!(
            who(&s, "2026-12-26T23:00:00Z", &[]).unwrap().1,
            Source::Override(None)
        );
        // Runtime overrides beat config ones; among runtime ones the higher row id wins,
        // whatever order they are passed in.
        let rt = [
            runtime(9, "erin", "2026-12-25T00:00:00Z", "2026-12-25T06:00:00Z"),
            runtime(4, "dave", "2026-12-24T12:00:00Z", "2026-12-25T12:00:00Z"),
        ];
        let cases = [
            ("2026-12-24T11:59:59Z", "bob", Source::Override(None)),
            ("2026-12-24T12:00:00Z", "dave", Source::Override(Some(4))),
            ("2026-12-25T00:00:00Z", "erin", Source::Override(Some(9))),
            ("2026-12-25T06:00:00Z", "dave", Source::Override(Some(4))),
            ("2026-12-25T12:00:00Z", "bob", Source::Override(None)),
        ];
        for (at, user, source) in cases {
            assert_eq!(who(&s, at, &rt), Some((user.to_string(), source)), "{at}");
        }
    }

    #[test]
    fn on_call_reports_the_whole_stretch() {
        let s = example();
        let o = s.on_call(utc("2026-01-09T20:00:00Z"), &[]).unwrap();
        assert_eq!(o.user, "alice");
        // Fri 18:00 CET (carol's window ends) to Mon 09:00 CET (bob's week, carol on top).
        assert_eq!(o.from, utc("2026-01-09T17:00:00Z"));
        assert_eq!(o.until, Some(utc("2026-01-12T08:00:00Z")));
        // A single-user layer never hands off: no until within the look-ahead.
        let solo = Schedule::new(
            "s",
            "s",
            chrono_tz::UTC,
            vec![layer("l", &["z"], "1d", "2026-01-01T00:00", &[])],
            vec![],
        )
        .unwrap();
        let o = solo.on_call(utc("2026-06-01T00:00:00Z"), &[]).unwrap();
        assert_eq!(o.until, None);
        assert!(o.from <= utc("2026-06-01T00:00:00Z") - LOOK_BEHIND);
        assert_eq!(solo.next_handoff(utc("2026-06-01T00:00:00Z"), &[]), None);
    }

    #[test]
    fn next_handoff_is_the_next_change_of_person() {
        let s = example();
        let cases = [
            ("2026-01-09T20:00:00Z", Some("2026-01-12T08:00:00Z")), // alice -> carol
            ("2026-01-12T08:00:00Z", Some("2026-01-12T17:00:00Z")), // carol -> bob
            ("2026-01-01T00:00:00Z", Some("2026-01-05T08:00:00Z")), // nobody -> carol
        ];
        for (after, want) in cases {
            assert_eq!(s.next_handoff(utc(after), &[]), want.map(utc), "{after}");
        }
        // Alice's own override during alice's week is not a handoff.
        let rt = [runtime(
            1,
            "alice",
            "2026-01-10T00:00:00Z",
            "2026-01-11T00:00:00Z",
        )];
        assert_eq!(
            s.next_handoff(utc("2026-01-09T20:00:00Z"), &rt),
            Some(utc("2026-01-12T08:00:00Z"))
        );
    }

    #[test]
    fn shifts_tile_and_merge_across_a_dst_week() {
        let s = example();
        let from = utc("2026-03-27T00:00:00Z");
        let to = utc("2026-03-31T00:00:00Z");
        let got: Vec<(Option<String>, DateTime<Utc>, DateTime<Utc>)> = s
            .shifts(from, to, &[])
            .into_iter()
            .map(|x| (x.user, x.from, x.until))
            .collect();
        let want = [
            ("bob", "2026-03-27T00:00:00Z", "2026-03-27T08:00:00Z"), // Fri 01:00 CET
            ("carol", "2026-03-27T08:00:00Z", "2026-03-27T17:00:00Z"), // Fri 09-18 CET
            ("bob", "2026-03-27T17:00:00Z", "2026-03-30T07:00:00Z"), // weekend; Mon 09:00 CEST
            ("carol", "2026-03-30T07:00:00Z", "2026-03-30T16:00:00Z"), // Mon 09-18 CEST
            ("alice", "2026-03-30T16:00:00Z", "2026-03-31T00:00:00Z"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(u, a, b)| (Some(u.to_string()), utc(a), utc(b)))
            .collect();
        assert_eq!(got, want);
        assert!(s.shifts(to, from, &[]).is_empty());
    }

    #[test]
    fn gaps_and_gap_warnings_name_local_windows() {
        let s = Schedule::new(
            "day",
            "Day desk",
            Europe::Berlin,
            vec![layer(
                "desk",
                &["alice"],
                "1d",
                "2026-01-05T09:00",
                &["Mon-Fri 09:00-18:00"],
            )],
            vec![],
        )
        .unwrap();
        let now = utc("2026-01-09T12:00:00Z"); // Fri 13:00 CET
        let gaps = s.gaps(now, now + Duration::days(3), &[]);
        assert_eq!(
            gaps,
            vec![(utc("2026-01-09T17:00:00Z"), utc("2026-01-12T08:00:00Z"))]
        );
        let w = gap_warnings(&[&s], now, Duration::days(3), &OverridesBySchedule::new());
        assert_eq!(
            w,
            vec![
                "schedule \"day\": nobody on call from 2026-01-09 18:00 CET to 2026-01-12 09:00 CET"
                    .to_string()
            ]
        );
        // A runtime override that fills the weekend removes the warning for it.
        let mut rt = OverridesBySchedule::new();
        rt.insert(
            "day".into(),
            vec![runtime(
                1,
                "bob",
                "2026-01-09T17:00:00Z",
                "2026-01-12T08:00:00Z",
            )],
        );
        assert!(gap_warnings(&[&s], now, Duration::days(3), &rt).is_empty());
        // The 28-day check of the example schedule has no gaps at all.
        assert!(gap_warnings(
            &[&example()],
            utc("2026-02-01T00:00:00Z"),
            Duration::days(28),
            &OverridesBySchedule::new()
        )
        .is_empty());
    }

    #[test]
    fn evaluation_at_the_ends_of_time_does_not_panic() {
        let mut s = example();
        s.layers.push(layer(
            "nights",
            &["nina"],
            "12h",
            "2026-01-05T22:00",
            &["Mon-Sun 22:00-06:00"],
        ));
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert_eq!(s.on_call(min, &[]), None, "before every start");
        let late = max - Duration::days(2);
        assert!(s.on_call(late, &[]).is_some());
        let shifts = s.shifts(late, max, &[]);
        assert_eq!((shifts[0].from, shifts.last().unwrap().until), (late, max));
        assert!(s.next_handoff(late, &[]).is_some());
        assert_eq!(s.shifts(min, min + Duration::days(1), &[]).len(), 1);
        assert!(s.on_call(max, &[]).is_some());
        assert_eq!(s.next_handoff(max, &[]), None);
    }

    #[test]
    fn answers_serialize_for_the_http_api() {
        let s = example();
        let o = s.on_call(utc("2026-01-09T20:00:00Z"), &[]).unwrap();
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"user":"alice","source":{"layer":"weekly"},"from":"2026-01-09T17:00:00Z","until":"2026-01-12T08:00:00Z"}"#
        );
        let shifts = s.shifts(
            utc("2026-12-23T23:00:00Z"),
            utc("2026-12-24T00:00:00Z"),
            &[],
        );
        assert_eq!(
            serde_json::to_string(&shifts).unwrap(),
            r#"[{"user":"bob","from":"2026-12-23T23:00:00Z","until":"2026-12-24T00:00:00Z","source":{"override":null}}]"#
        );
    }

    #[test]
    fn schedule_new_validates() {
        assert!(matches!(
            Schedule::new("x", "x", chrono_tz::UTC, vec![], vec![]),
            Err(Error::NoLayers { .. })
        ));
        let l = layer("a", &["u"], "1d", "2026-01-01T00:00", &[]);
        assert!(matches!(
            Schedule::new("x", "x", chrono_tz::UTC, vec![l.clone(), l], vec![]),
            Err(Error::DuplicateLayer { .. })
        ));
        let t = utc("2026-01-01T00:00:00Z");
        assert!(matches!(
            Override::new(None, "u", t, t, OverrideSource::Config),
            Err(Error::EmptyOverride { .. })
        ));
    }

    // ---- property tests ----

    const ZONES: [Tz; 6] = [
        Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Australia::Sydney,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Pacific::Chatham,
        chrono_tz::UTC,
    ];
    const SHIFTS: [&str; 6] = ["1h", "12h", "36h", "1d", "3d", "1w"];
    const RESTRICTIONS: [&str; 5] = [
        "Mon-Fri 09:00-18:00",
        "Sat,Sun 10:00-14:00",
        "Mon-Sun 22:00-06:00",
        "Sun 02:30-03:30",
        "Sat 02:00-02:00",
    ];
    /// 2025-01-01T00:00Z and a window of a bit over two years, so every DST change is hit.
    const T0: i64 = 1_735_689_600;
    const SPAN: i64 = 800 * 86_400;

    fn arb_layer() -> impl Strategy<Value = Layer> {
        (
            1usize..4,
            0..SHIFTS.len(),
            0i64..(SPAN / 60),
            proptest::collection::vec(0..RESTRICTIONS.len(), 0..3),
        )
            .prop_map(|(n, shift, start_min, rs)| {
                let start = DateTime::from_timestamp(T0 + start_min * 60 - SPAN / 4, 0)
                    .unwrap()
                    .naive_utc();
                Layer::new(
                    "l",
                    (0..n).map(|i| format!("u{i}")).collect(),
                    SHIFTS[shift].parse().unwrap(),
                    start,
                    rs.into_iter()
                        .map(|i| RESTRICTIONS[i].parse().unwrap())
                        .collect(),
                )
                .unwrap()
            })
    }

    fn arb_schedule() -> impl Strategy<Value = Schedule> {
        (0..ZONES.len(), proptest::collection::vec(arb_layer(), 1..4)).prop_map(
            |(z, mut layers)| {
                for (i, l) in layers.iter_mut().enumerate() {
                    l.name = format!("layer{i}");
                }
                Schedule::new("s", "s", ZONES[z], layers, vec![]).unwrap()
            },
        )
    }

    fn instant(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(T0 + secs, 0).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// A layer is in exactly one shift at any instant after its start (so it names at most
        /// one user), the shift contains the instant, and the next shift begins where it ends.
        #[test]
        fn each_layer_yields_at_most_one_user(l in arb_layer(), z in 0..ZONES.len(), secs in 0..SPAN) {
            let tz = ZONES[z];
            let at = instant(secs);
            match l.shift_at(tz, at) {
                None => prop_assert!(at < local_to_utc(tz, l.start)),
                Some((k, begin, end)) => {
                    prop_assert!(begin <= at && at < end);
                    prop_assert_eq!(l.shift_at(tz, begin).map(|x| x.0), Some(k));
                    prop_assert_eq!(l.shift_at(tz, end).map(|x| x.0), Some(k + 1));
                    if k > 0 {
                        prop_assert_eq!(l.shift_at(tz, begin - Duration::nanoseconds(1)).map(|x| x.0), Some(k - 1));
                    }
                    let st = l.state_at(tz, at);
                    prop_assert!(st.from <= at && at < st.until);
                    // The stretch really is constant: check both ends.
                    prop_assert_eq!(l.state_at(tz, st.from).user, st.user);
                    prop_assert_eq!(l.state_at(tz, st.until - Duration::nanoseconds(1)).user, st.user);
                }
            }
        }

        /// Shifts tile [from, to): no overlap, no hole, no empty shift, neighbours differ, and
        /// every shift agrees with a point evaluation inside it.
        #[test]
        fn shifts_tile_the_window(s in arb_schedule(), start in 0..SPAN, len_min in 1i64..(10 * 24 * 60), probe in 0.0f64..1.0) {
            let from = instant(start);
            let to = from + Duration::minutes(len_min);
            let shifts = s.shifts(from, to, &[]);
            prop_assert!(!shifts.is_empty());
            prop_assert_eq!(shifts[0].from, from);
            prop_assert_eq!(shifts.last().unwrap().until, to);
            for w in shifts.windows(2) {
                prop_assert_eq!(w[0].until, w[1].from);
                prop_assert!((&w[0].user, &w[0].source) != (&w[1].user, &w[1].source));
            }
            for sh in &shifts {
                prop_assert!(sh.from < sh.until);
                prop_assert_eq!(sh.user.is_none(), sh.source.is_none());
                let span = (sh.until - sh.from).num_seconds();
                let t = sh.from + Duration::seconds((span as f64 * probe) as i64);
                let point = s.on_call(t, &[]).map(|o| (o.user, o.source));
                prop_assert_eq!(point, sh.user.clone().zip(sh.source.clone()));
            }
        }

        /// An override wins exactly inside [from, until) and changes nothing outside it.
        #[test]
        fn override_wins_exactly_inside_its_window(s in arb_schedule(), start in 0..SPAN, len in 1i64..(3 * 86_400), probe in -86_400i64..(4 * 86_400)) {
            let o = Override::new(Some(1), "zed", instant(start), instant(start + len), OverrideSource::Runtime).unwrap();
            let rt = [o.clone()];
            for t in [o.from - Duration::nanoseconds(1), o.from, o.until - Duration::nanoseconds(1), o.until, instant(start + probe)] {
                let with = s.on_call(t, &rt).map(|x| (x.user, x.source));
                if o.covers(t) {
                    prop_assert_eq!(with, Some(("zed".to_string(), Source::Override(Some(1)))));
                } else {
                    prop_assert_eq!(with, s.on_call(t, &[]).map(|x| (x.user, x.source)));
                }
            }
        }
    }
}
