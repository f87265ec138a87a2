//! The escalation state machine of one incident, pure: what is due at instant `now`, and how the
//! state changes when something happened.
//!
//! The engine task (owned by the daemon) persists [`EscalationState`] with the incident, asks
//! [`next_action`] what to do at `now`, does it (page a step, flag exhaustion, re-trigger), and
//! persists `state.apply(event)` in the same transaction as the pages it queued. Decisions
//! depend only on the persisted due time, never on how long a timer slept, so:
//!
//! - a restart carries on at the persisted step;
//! - a step is paged at most once per run: [`EscalationState::apply`] accepts
//!   [`Event::Paged`] only for the step that is due, and the state it returns no longer has that
//!   step due;
//! - the wall clock jumping forward pages the due step once; the next step then waits its full
//!   `wait` from the moment the page went out (a jump never makes steps fire back to back);
//! - the wall clock jumping backwards (before the instant the pending timer was set) is seen as
//!   [`Action::Reschedule`]: the pending wait starts again from the new `now` (how much of it had
//!   passed cannot be known), so a step never fires early, never waits the length of the jump,
//!   and at worst waits one wait longer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Policy;

/// What comes after the current wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Next {
    /// Page step `step` (0-based) of run `round` (0-based). A step one past the policy's last
    /// marks the end of the last run: nothing is left to page, and the incident is flagged
    /// exhausted when it falls due. It is kept as a place, not as [`Next::Exhaust`], so that a
    /// reload that gives the policy more steps or runs carries on from it (see
    /// [`EscalationState::carried_over`]).
    Step { step: usize, round: u32 },
    /// Nothing is left to page, place unknown: what rows written before the end of the last run
    /// was kept as a place read back as.
    Exhaust,
}

/// Where one incident's escalation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Waiting until `due`, then doing `next`.
    Escalating { next: Next, due: DateTime<Utc> },
    /// Acknowledged: nothing is paged. With an ack timeout, at `retrigger_at` the incident
    /// triggers again from the first step. `resume` is where escalate-now continues.
    Acknowledged {
        retrigger_at: Option<DateTime<Utc>>,
        resume: Next,
    },
    /// All runs done without an acknowledgement; the incident stays open, flagged.
    Exhausted,
    /// Resolved: nothing more, ever.
    Resolved,
}

/// The persisted escalation state of one incident. It serializes (serde) to a small JSON object
/// the store can keep in one column; the field names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationState {
    /// Where it is.
    pub phase: Phase,
    /// When the phase (and its due time) was set; a `now` before it means the wall clock went
    /// backwards.
    pub since: DateTime<Utc>,
}

/// What the engine should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due; ask again at `until` (or when an event arrives).
    Wait { until: DateTime<Utc> },
    /// Page `step` of run `round` now (it was due at `due`), then apply [`Event::Paged`].
    Page {
        step: usize,
        round: u32,
        due: DateTime<Utc>,
    },
    /// Flag the incident unacknowledged-exhausted, then apply [`Event::Exhausted`].
    Exhaust,
    /// The ack timeout passed: set the incident back to triggered, then apply
    /// [`Event::Retriggered`].
    Retrigger,
    /// The wall clock went back before the pending timer was set: apply
    /// [`Event::Rescheduled`] to restart the pending wait from `now`.
    Reschedule,
    /// Nothing will become due by itself (acknowledged without timeout, exhausted, resolved).
    Idle,
}

/// Something that happened to the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The engine paged `step` of `round` at `at`.
    Paged {
        step: usize,
        round: u32,
        at: DateTime<Utc>,
    },
    /// The engine flagged the incident exhausted.
    Exhausted { at: DateTime<Utc> },
    /// Somebody acknowledged; `ack_timeout` comes from the incident's route.
    Acknowledged {
        at: DateTime<Utc>,
        ack_timeout: Option<Duration>,
    },
    /// The incident was resolved.
    Resolved { at: DateTime<Utc> },
    /// Somebody asked to escalate now: the pending step fires at once.
    EscalateNow { at: DateTime<Utc> },
    /// The ack timeout passed and the engine set the incident back to triggered.
    Retriggered { at: DateTime<Utc> },
    /// The wall clock was found before `since` (see [`Action::Reschedule`]).
    Rescheduled { at: DateTime<Utc> },
    /// The silence that held the due step ended before the time the step was postponed to (it
    /// expired early, or its window's end moved): the step is due at `at` instead.
    Released { at: DateTime<Utc> },
    /// A silence holds the due step (or exhaustion) until `until`: it is postponed, not done,
    /// so the escalation neither advances nor exhausts during the window (see `crate::silence`).
    Held {
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// `t + d`, saturating at the end of time instead of overflowing.
pub(crate) fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    crate::clock::add(t, d)
}

/// What comes after paging `step` of `round`: the next step, the next run's first, or past the
/// last step of the last run (exhausted when due).
fn successor(policy: &Policy, step: usize, round: u32) -> Next {
    place(
        policy,
        Next::Step {
            step: step + 1,
            round,
        },
    )
}

/// Where `next` stands under `policy`: a step past the end of its run is the next run's first
/// step while the policy has another run; any other place is kept as it is (a place the policy
/// does not have exhausts when it falls due).
fn place(policy: &Policy, next: Next) -> Next {
    match next {
        Next::Step { step, round } if step >= policy.steps.len() && round + 1 < policy.repeat => {
            Next::Step {
                step: 0,
                round: round + 1,
            }
        }
        n => n,
    }
}

/// A step the policy still has; a persisted step past the end (the policy got shorter on a
/// config reload) counts as exhausted.
fn exists(policy: &Policy, next: Next) -> bool {
    match next {
        Next::Step { step, round } => step < policy.steps.len() && round < policy.repeat,
        Next::Exhaust => false,
    }
}

impl EscalationState {
    /// This state carried over to `policy` from another one (a reload renamed or replaced its
    /// policy): a place `policy` does not have (it has fewer steps or runs) becomes its first
    /// step, so the escalation pages on rather than ending on the spot. The end of the old
    /// policy's last run cannot be told from a place the new one lacks (the old policy is gone),
    /// so an escalation waiting out its last step starts the new policy over: more pages, never
    /// fewer.
    pub fn moved_to(self, policy: &Policy) -> EscalationState {
        let first = Next::Step { step: 0, round: 0 };
        self.with_next(|n| match n {
            Next::Step { .. } if !exists(policy, n) => first,
            n => n,
        })
    }

    /// This state under `policy` as a reload left it under the same name: a run that lost its
    /// remaining steps goes on with the next run, and the end of the last run goes on with the
    /// steps or runs the reload added, instead of the escalation ending on the spot or never
    /// paging what was added. Every other place is kept.
    pub fn carried_over(self, policy: &Policy) -> EscalationState {
        self.with_next(|n| place(policy, n))
    }

    /// This state with `f` applied to the place it goes on from (escalating or acknowledged).
    fn with_next(self, f: impl Fn(Next) -> Next) -> EscalationState {
        let phase = match self.phase {
            Phase::Escalating { next, due } => Phase::Escalating { next: f(next), due },
            Phase::Acknowledged {
                retrigger_at,
                resume,
            } => Phase::Acknowledged {
                retrigger_at,
                resume: f(resume),
            },
            p => p,
        };
        EscalationState { phase, ..self }
    }

    /// Whether this state escalates towards a step `policy` has (not past its last one, and not
    /// a step a reload removed): what an "escalate now" can promise to page.
    pub fn has_step_ahead(&self, policy: &Policy) -> bool {
        matches!(self.phase, Phase::Escalating { next, .. } if exists(policy, next))
    }

    /// A new incident at `now`: step 1 of run 1 is due after the route's pre-page delay.
    pub fn start(now: DateTime<Utc>, pre_page_delay: Duration) -> Self {
        EscalationState {
            phase: Phase::Escalating {
                next: Next::Step { step: 0, round: 0 },
                due: add(now, pre_page_delay),
            },
            since: now,
        }
    }

    /// The instant something becomes due by itself, if anything will.
    pub fn due(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Escalating { due, .. } => Some(due),
            Phase::Acknowledged { retrigger_at, .. } => retrigger_at,
            Phase::Exhausted | Phase::Resolved => None,
        }
    }

    /// The state after `event`, or `None` when the event does not apply to this state (a
    /// duplicate or stale event: the engine drops it and pages nothing). Never panics.
    ///
    /// One match on purpose, longer than a screen: each arm is one (phase, event) pair of the
    /// state machine, so the whole transition table reads in one place, and every pair not
    /// listed falls to the one `None` at the end.
    pub fn apply(&self, event: Event, policy: &Policy) -> Option<EscalationState> {
        let to = |phase, since| Some(EscalationState { phase, since });
        match (self.phase, event) {
            (_, Event::Resolved { at }) => match self.phase {
                Phase::Resolved => None,
                _ => to(Phase::Resolved, at),
            },
            (
                Phase::Escalating {
                    next: Next::Step { step, round },
                    ..
                },
                Event::Paged {
                    step: s,
                    round: r,
                    at,
                },
            ) if (s, r) == (step, round) && exists(policy, Next::Step { step, round }) => to(
                Phase::Escalating {
                    next: successor(policy, step, round),
                    due: add(at, policy.steps[step].wait),
                },
                at,
            ),
            (Phase::Escalating { next, .. }, Event::Exhausted { at }) if !exists(policy, next) => {
                to(Phase::Exhausted, at)
            }
            (Phase::Escalating { next, .. }, Event::Acknowledged { at, ack_timeout }) => to(
                Phase::Acknowledged {
                    retrigger_at: ack_timeout.map(|d| add(at, d)),
                    resume: next,
                },
                at,
            ),
            (Phase::Exhausted, Event::Acknowledged { at, ack_timeout }) => to(
                Phase::Acknowledged {
                    retrigger_at: ack_timeout.map(|d| add(at, d)),
                    resume: Next::Exhaust,
                },
                at,
            ),
            (Phase::Escalating { next, .. }, Event::EscalateNow { at }) => {
                to(Phase::Escalating { next, due: at }, at)
            }
            (Phase::Acknowledged { resume, .. }, Event::EscalateNow { at }) => to(
                Phase::Escalating {
                    next: resume,
                    due: at,
                },
                at,
            ),
            (
                Phase::Acknowledged {
                    retrigger_at: Some(t),
                    ..
                },
                Event::Retriggered { at },
            ) if at >= t => to(
                Phase::Escalating {
                    next: Next::Step { step: 0, round: 0 },
                    due: at,
                },
                at,
            ),
            (Phase::Escalating { next, due }, Event::Held { until, at }) if until > due => {
                to(Phase::Escalating { next, due: until }, at)
            }
            // The wait the hold started keeps its start: only its end moves forward to `at`.
            (Phase::Escalating { next, due }, Event::Released { at }) if due > at => {
                to(Phase::Escalating { next, due: at }, self.since)
            }
            (Phase::Escalating { next, due }, Event::Rescheduled { at }) if at < self.since => {
                let remaining = (due - self.since).to_std().unwrap_or(Duration::ZERO);
                to(
                    Phase::Escalating {
                        next,
                        due: add(at, remaining),
                    },
                    at,
                )
            }
            (
                Phase::Acknowledged {
                    retrigger_at: Some(t),
                    resume,
                },
                Event::Rescheduled { at },
            ) if at < self.since => {
                let remaining = (t - self.since).to_std().unwrap_or(Duration::ZERO);
                to(
                    Phase::Acknowledged {
                        retrigger_at: Some(add(at, remaining)),
                        resume,
                    },
                    at,
                )
            }
            _ => None,
        }
    }
}

/// What is due at `now` for an incident in `state` under `policy`. Pure: calling it twice with
/// the same arguments gives the same answer, and it never says [`Action::Page`] for a step the
/// state has already recorded as paged.
pub fn next_action(state: &EscalationState, policy: &Policy, now: DateTime<Utc>) -> Action {
    if state.due().is_some() && now < state.since {
        return Action::Reschedule;
    }
    match state.phase {
        Phase::Escalating { due, .. } if now < due => Action::Wait { until: due },
        Phase::Escalating { next, due } => match next {
            Next::Step { step, round } if exists(policy, next) => Action::Page { step, round, due },
            _ => Action::Exhaust,
        },
        Phase::Acknowledged {
            retrigger_at: Some(t),
            ..
        } if now < t => Action::Wait { until: t },
        Phase::Acknowledged {
            retrigger_at: Some(_),
            ..
        } => Action::Retrigger,
        Phase::Acknowledged {
            retrigger_at: None, ..
        }
        | Phase::Exhausted
        | Phase::Resolved => Action::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::Step;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn t(hhmmss: &str) -> DateTime<Utc> {
        utc(&format!("2026-03-29T{hhmmss}Z"))
    }
    fn min(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    /// Steps wait 10 and 15 minutes; two runs.
    fn policy() -> Policy {
        Policy::new(
            "default",
            "Default",
            2,
            vec![
                Step {
                    users: vec![],
                    schedules: vec!["primary".into()],
                    wait: min(10),
                },
                Step {
                    users: vec!["carol".into()],
                    schedules: vec![],
                    wait: min(15),
                },
            ],
        )
        .unwrap()
    }

    /// Drives the engine loop the way the daemon will: at each `now`, do what is due and apply
    /// the matching event. Returns what was done.
    fn drive(state: &mut EscalationState, p: &Policy, now: DateTime<Utc>) -> Vec<Action> {
        let mut done = Vec::new();
        loop {
            let action = next_action(state, p, now);
            let event = match action {
                Action::Page { step, round, .. } => Event::Paged {
                    step,
                    round,
                    at: now,
                },
                Action::Exhaust => Event::Exhausted { at: now },
                Action::Retrigger => Event::Retriggered { at: now },
                Action::Reschedule => Event::Rescheduled { at: now },
                Action::Wait { .. } | Action::Idle => return done,
            };
            *state = state.apply(event, p).expect("the due event applies");
            done.push(action);
        }
    }

    fn page(step: usize, round: u32, due: &str) -> Action {
        Action::Page {
            step,
            round,
            due: t(due),
        }
    }

    #[test]
    fn a_released_hold_makes_the_held_step_due_at_once_and_only_once() {
        let p = policy();
        let s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        let held = s
            .apply(
                Event::Held {
                    until: t("02:00:00"),
                    at: t("01:00:00"),
                },
                &p,
            )
            .expect("a silence holds the first step");
        let released = held
            .apply(Event::Released { at: t("01:20:00") }, &p)
            .expect("the silence ended early");
        assert_eq!(
            released.phase,
            Phase::Escalating {
                next: Next::Step { step: 0, round: 0 },
                due: t("01:20:00")
            }
        );
        assert_eq!(released.since, held.since);
        assert_eq!(
            next_action(&released, &p, t("01:20:00")),
            page(0, 0, "01:20:00")
        );
        // A step already due is not moved, and an acknowledged escalation is left alone.
        assert_eq!(
            released.apply(Event::Released { at: t("01:30:00") }, &p),
            None
        );
        let acked = held
            .apply(
                Event::Acknowledged {
                    at: t("01:05:00"),
                    ack_timeout: None,
                },
                &p,
            )
            .unwrap();
        assert_eq!(acked.apply(Event::Released { at: t("01:20:00") }, &p), None);
    }

    #[test]
    fn steps_fire_at_their_due_times_through_every_repeat_then_exhaust() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        // (now, what the engine does at that instant)
        let timeline = [
            ("01:00:00", vec![page(0, 0, "01:00:00")]),
            ("01:09:59", vec![]),
            ("01:10:00", vec![page(1, 0, "01:10:00")]),
            ("01:24:59", vec![]),
            ("01:25:00", vec![page(0, 1, "01:25:00")]),
            ("01:35:00", vec![page(1, 1, "01:35:00")]),
            ("01:49:59", vec![]),
            ("01:50:00", vec![Action::Exhaust]),
            ("09:00:00", vec![]),
        ];
        for (now, want) in timeline {
            assert_eq!(drive(&mut s, &p, t(now)), want, "at {now}");
        }
        assert_eq!(s.phase, Phase::Exhausted);
        assert_eq!(next_action(&s, &p, t("10:00:00")), Action::Idle);
    }

    #[test]
    fn pre_page_delay_and_resolve_before_it_pages_nobody() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::from_secs(90));
        assert_eq!(
            next_action(&s, &p, t("01:01:29")),
            Action::Wait {
                until: t("01:01:30")
            }
        );
        s = s.apply(Event::Resolved { at: t("01:01:00") }, &p).unwrap();
        assert_eq!(drive(&mut s, &p, t("01:01:30")), vec![]);
        assert_eq!(
            s.apply(Event::Resolved { at: t("01:02:00") }, &p),
            None,
            "resolving twice is a no-op"
        );
    }

    #[test]
    fn ack_between_steps_stops_the_rest() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        assert_eq!(
            drive(&mut s, &p, t("01:00:00")),
            vec![page(0, 0, "01:00:00")]
        );
        s = s
            .apply(
                Event::Acknowledged {
                    at: t("01:04:00"),
                    ack_timeout: None,
                },
                &p,
            )
            .unwrap();
        for now in ["01:10:00", "01:25:00", "05:00:00"] {
            assert_eq!(drive(&mut s, &p, t(now)), vec![], "at {now}");
        }
        assert_eq!(next_action(&s, &p, t("05:00:00")), Action::Idle);
        // A late Paged event for the step that was due before the ack is stale.
        assert_eq!(
            s.apply(
                Event::Paged {
                    step: 1,
                    round: 0,
                    at: t("01:10:00")
                },
                &p
            ),
            None
        );
    }

    #[test]
    fn ack_timeout_retriggers_from_step_one() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00"));
        drive(&mut s, &p, t("01:10:00")); // step 2 of run 1
        s = s
            .apply(
                Event::Acknowledged {
                    at: t("01:12:00"),
                    ack_timeout: Some(min(30)),
                },
                &p,
            )
            .unwrap();
        assert_eq!(
            next_action(&s, &p, t("01:41:59")),
            Action::Wait {
                until: t("01:42:00")
            }
        );
        assert_eq!(
            drive(&mut s, &p, t("01:42:00")),
            vec![Action::Retrigger, page(0, 0, "01:42:00")],
            "back to triggered, first step, first run"
        );
        assert_eq!(
            drive(&mut s, &p, t("01:52:00")),
            vec![page(1, 0, "01:52:00")]
        );
        // Resolving stops everything, including a pending ack timeout.
        s = s
            .apply(
                Event::Acknowledged {
                    at: t("01:53:00"),
                    ack_timeout: Some(min(30)),
                },
                &p,
            )
            .unwrap();
        s = s.apply(Event::Resolved { at: t("01:54:00") }, &p).unwrap();
        assert_eq!(drive(&mut s, &p, t("03:00:00")), vec![]);
    }

    #[test]
    fn an_exhausted_incident_acked_with_timeout_starts_over() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        for now in ["01:00:00", "01:10:00", "01:25:00", "01:35:00", "01:50:00"] {
            drive(&mut s, &p, t(now));
        }
        assert_eq!(s.phase, Phase::Exhausted);
        s = s
            .apply(
                Event::Acknowledged {
                    at: t("02:00:00"),
                    ack_timeout: Some(min(30)),
                },
                &p,
            )
            .unwrap();
        assert_eq!(
            drive(&mut s, &p, t("02:30:00")),
            vec![Action::Retrigger, page(0, 0, "02:30:00")]
        );
    }

    #[test]
    fn escalate_now_skips_the_rest_of_the_wait() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00"));
        s = s
            .apply(Event::EscalateNow { at: t("01:03:00") }, &p)
            .unwrap();
        assert_eq!(
            drive(&mut s, &p, t("01:03:00")),
            vec![page(1, 0, "01:03:00")]
        );
        // The next step waits its full 15 minutes from the escalation.
        assert_eq!(
            next_action(&s, &p, t("01:03:00")),
            Action::Wait {
                until: t("01:18:00")
            }
        );
        // From acknowledged, escalate-now pages the step that was next.
        s = s
            .apply(
                Event::Acknowledged {
                    at: t("01:05:00"),
                    ack_timeout: None,
                },
                &p,
            )
            .unwrap();
        s = s
            .apply(Event::EscalateNow { at: t("01:06:00") }, &p)
            .unwrap();
        assert_eq!(
            drive(&mut s, &p, t("01:06:00")),
            vec![page(0, 1, "01:06:00")]
        );
        // Nothing to escalate once resolved.
        s = s.apply(Event::Resolved { at: t("01:07:00") }, &p).unwrap();
        assert_eq!(s.apply(Event::EscalateNow { at: t("01:08:00") }, &p), None);
    }

    #[test]
    fn clock_jumping_forward_pages_the_due_step_once() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00"));
        // NTP steps the clock 3 hours forward: every later step is "overdue", but only the
        // due one fires; the next waits its full wait from now.
        assert_eq!(
            drive(&mut s, &p, t("04:00:00")),
            vec![page(1, 0, "01:10:00")]
        );
        assert_eq!(
            next_action(&s, &p, t("04:00:00")),
            Action::Wait {
                until: t("04:15:00")
            }
        );
        // Asking again at the same instant (a timer firing twice) does nothing.
        assert_eq!(drive(&mut s, &p, t("04:00:00")), vec![]);
        // And a replayed Paged event for the step already paged is refused.
        assert_eq!(
            s.apply(
                Event::Paged {
                    step: 1,
                    round: 0,
                    at: t("04:00:01")
                },
                &p
            ),
            None
        );
    }

    #[test]
    fn clock_jumping_backwards_restarts_the_pending_wait_and_never_repeats_a_step() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00"));
        // At 01:04 (6 minutes left) the clock is stepped back an hour to 00:04.
        assert_eq!(next_action(&s, &p, t("00:04:00")), Action::Reschedule);
        assert_eq!(drive(&mut s, &p, t("00:04:00")), vec![Action::Reschedule]);
        // Rescheduling restarts the pending 10-minute wait from the new now (nothing tells how
        // much of it passed before the jump); step 1 is not paged again.
        assert_eq!(
            next_action(&s, &p, t("00:04:00")),
            Action::Wait {
                until: t("00:14:00")
            }
        );
        assert_eq!(drive(&mut s, &p, t("00:13:59")), vec![]);
        assert_eq!(
            drive(&mut s, &p, t("00:14:00")),
            vec![page(1, 0, "00:14:00")]
        );
        // NTP steps the clock forward to the real time again: only the step now due (run 2,
        // step 1) fires; step 2 of run 1 is not paged a second time.
        assert_eq!(
            drive(&mut s, &p, t("01:10:00")),
            vec![page(0, 1, "00:29:00")]
        );
        assert_eq!(
            next_action(&s, &p, t("01:10:00")),
            Action::Wait {
                until: t("01:20:00")
            }
        );
    }

    #[test]
    fn restart_mid_escalation_resumes_from_the_persisted_state() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00"));
        // The daemon stops at 01:05 and comes back at 01:30 with the persisted state.
        let persisted = s;
        let mut restarted = persisted;
        assert_eq!(
            drive(&mut restarted, &p, t("01:30:00")),
            vec![page(1, 0, "01:10:00")]
        );
        assert_eq!(
            next_action(&restarted, &p, t("01:30:00")),
            Action::Wait {
                until: t("01:45:00")
            }
        );
    }

    #[test]
    fn a_policy_shortened_by_a_reload_exhausts_instead_of_panicking() {
        let long = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &long, t("01:00:00")); // step 2 now due at 01:10
        let short = Policy::new("default", "Default", 1, vec![long.steps[0].clone()]).unwrap();
        assert_eq!(drive(&mut s, &short, t("01:10:00")), vec![Action::Exhaust]);
        assert_eq!(s.phase, Phase::Exhausted);
    }

    #[test]
    fn state_round_trips_through_json_for_the_store() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"phase":{"phase":"escalating","next":{"kind":"step","step":1,"round":0},"due":"2026-03-29T01:10:00Z"},"since":"2026-03-29T01:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<EscalationState>(&json).unwrap(), s);
        let acked = s
            .apply(
                Event::Acknowledged {
                    at: t("01:05:00"),
                    ack_timeout: Some(min(30)),
                },
                &p,
            )
            .unwrap();
        let json = serde_json::to_string(&acked).unwrap();
        assert_eq!(
            serde_json::from_str::<EscalationState>(&json).unwrap(),
            acked
        );
    }

    #[test]
    fn a_held_step_waits_for_the_silence_then_pages_the_same_step() {
        let p = policy();
        let mut s = EscalationState::start(t("01:00:00"), Duration::ZERO);
        drive(&mut s, &p, t("01:00:00")); // step 1 paged; step 2 due at 01:10
                                          // A silence until 02:00 holds step 2 when it comes due.
        s = s
            .apply(
                Event::Held {
                    until: t("02:00:00"),
                    at: t("01:10:00"),
                },
                &p,
            )
            .unwrap();
        assert_eq!(
            next_action(&s, &p, t("01:59:59")),
            Action::Wait {
                until: t("02:00:00")
            },
            "nothing advances or exhausts in the window"
        );
        assert_eq!(
            drive(&mut s, &p, t("02:00:00")),
            vec![page(1, 0, "02:00:00")]
        );
        // Holding to a time not after the due time is stale and refused.
        assert_eq!(
            s.apply(
                Event::Held {
                    until: t("02:00:00"),
                    at: t("02:00:00")
                },
                &p
            ),
            None
        );
        // Acknowledging during a hold works as always.
        let held = EscalationState::start(t("03:00:00"), Duration::ZERO)
            .apply(
                Event::Held {
                    until: t("04:00:00"),
                    at: t("03:00:00"),
                },
                &p,
            )
            .unwrap();
        let acked = held
            .apply(
                Event::Acknowledged {
                    at: t("03:30:00"),
                    ack_timeout: None,
                },
                &p,
            )
            .unwrap();
        assert_eq!(drive(&mut acked.clone(), &p, t("04:00:00")), vec![]);
    }

    #[derive(Debug, Clone, Copy)]
    enum Poke {
        /// Advance the clock by this many seconds (negative: an NTP step backwards).
        Clock(i64),
        Ack(Option<u64>),
        EscalateNow,
        Resolve,
    }

    fn arb_poke() -> impl proptest::strategy::Strategy<Value = Poke> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (-7200i64..7200).prop_map(Poke::Clock),
            1 => proptest::option::of(1u64..3600).prop_map(Poke::Ack),
            1 => Just(Poke::EscalateNow),
            1 => Just(Poke::Resolve),
        ]
    }

    proptest::proptest! {
        /// Whatever the clock and people do, within one trigger (between retriggers) each step
        /// of each run is paged at most once, in order; nothing is paged after resolve or while
        /// acknowledged; and a page never goes out before its due time.
        #[test]
        fn no_step_pages_twice_whatever_the_clock_does(pokes in proptest::collection::vec(arb_poke(), 1..60)) {
            let p = policy();
            let mut now = t("01:00:00");
            let mut s = EscalationState::start(now, Duration::from_secs(30));
            let mut paged: Vec<(u32, usize)> = Vec::new();
            for poke in pokes {
                match poke {
                    Poke::Clock(secs) => now += chrono::Duration::seconds(secs),
                    Poke::Ack(timeout) => {
                        if let Some(n) = s.apply(Event::Acknowledged { at: now, ack_timeout: timeout.map(Duration::from_secs) }, &p) {
                            s = n;
                        }
                    }
                    Poke::EscalateNow => {
                        if let Some(n) = s.apply(Event::EscalateNow { at: now }, &p) {
                            s = n;
                        }
                    }
                    Poke::Resolve => {
                        if let Some(n) = s.apply(Event::Resolved { at: now }, &p) {
                            s = n;
                        }
                    }
                }
                let before = s;
                for action in drive(&mut s, &p, now) {
                    match action {
                        Action::Retrigger => paged.clear(),
                        Action::Page { step, round, due } => {
                            proptest::prop_assert!(due <= now, "paged before due");
                            let resolved = matches!(before.phase, Phase::Resolved);
                            proptest::prop_assert!(!resolved, "paged after resolve");
                            if let Some(last) = paged.last() {
                                proptest::prop_assert!((round, step) > *last, "{:?} after {:?}", (round, step), last);
                            }
                            paged.push((round, step));
                        }
                        _ => {}
                    }
                }
                if let Phase::Acknowledged { .. } | Phase::Resolved | Phase::Exhausted = s.phase {
                    let pages = matches!(next_action(&s, &p, now), Action::Page { .. });
                    proptest::prop_assert!(!pages, "a settled incident must not page");
                }
            }
        }
    }
}
