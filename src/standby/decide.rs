//! The standby decision, as a pure function: given how old an incident is, the grace, the last
//! upstream answer and how many checks in a row failed, hold the local escalation, page locally
//! (and say why), or mirror what the upstream already did. No I/O, no clock.
//!
//! The rule is safe-side: only a positive answer from the upstream (acknowledged or resolved)
//! keeps pagerbox quiet for good. Silence, errors, timeouts and "no such incident" never extend
//! the hold past the grace, and enough consecutive failures end it sooner.

use std::time::Duration;

use super::Upstream;
pub use crate::store::standby::{Answer, Check, Mirror, PageReason};

/// What is known about one held incident when deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub upstream: Upstream,
    /// Time since the incident opened.
    pub age: Duration,
    pub grace: Duration,
    /// The latest check, if any ran yet.
    pub last: Option<&'a Check>,
    /// Checks in a row that failed (see [`Check::is_failure`]), the latest included.
    pub failures: u32,
    /// Consecutive failures that end the hold before the grace; 0: only the grace ends it.
    pub max_failures: u32,
}

/// The decision for one held incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Keep holding the local escalation.
    Hold,
    /// Page locally now.
    Page(PageReason),
    /// Acknowledge or resolve locally as the upstream did; page nobody.
    Mirror(Mirror),
}

/// Decides for one held incident. Pure.
pub fn decide(f: &Facts<'_>) -> Decision {
    let upstream = f.upstream;
    match f.last {
        Some(Check::Answered(Answer::Acknowledged { by })) => {
            return Decision::Mirror(Mirror::Acknowledge { by: by.clone() })
        }
        Some(Check::Answered(Answer::Resolved { by })) => {
            return Decision::Mirror(Mirror::Resolve { by: by.clone() })
        }
        _ => {}
    }
    let failing = f.last.is_some_and(Check::is_failure);
    if f.age < f.grace {
        if failing && f.max_failures > 0 && f.failures >= f.max_failures {
            return Decision::Page(match f.last {
                Some(Check::Answered(Answer::Unknown)) => PageReason::UnknownUpstream { upstream },
                _ => PageReason::Unreachable {
                    upstream,
                    failures: f.failures,
                },
            });
        }
        return Decision::Hold;
    }
    Decision::Page(match f.last {
        None => PageReason::NoAnswer {
            upstream,
            grace: f.grace,
        },
        Some(Check::Answered(Answer::Unknown)) => PageReason::UnknownUpstream { upstream },
        Some(Check::Failed { .. }) => PageReason::Unreachable {
            upstream,
            failures: f.failures,
        },
        Some(Check::Answered(_)) => PageReason::NotAcknowledged {
            upstream,
            grace: f.grace,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PD: Upstream = Upstream::PagerDuty;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn acked() -> Check {
        Check::Answered(Answer::Acknowledged { by: "Ann".into() })
    }
    fn resolved() -> Check {
        Check::Answered(Answer::Resolved { by: "Bob".into() })
    }
    fn triggered() -> Check {
        Check::Answered(Answer::Triggered)
    }
    fn unknown() -> Check {
        Check::Answered(Answer::Unknown)
    }
    fn failed() -> Check {
        Check::Failed {
            error: "connection refused".into(),
        }
    }

    #[test]
    fn table() {
        let (a, r, t, u, x) = (acked(), resolved(), triggered(), unknown(), failed());
        let not_acked = Decision::Page(PageReason::NotAcknowledged {
            upstream: PD,
            grace: s(300),
        });
        let unreachable = |n| {
            Decision::Page(PageReason::Unreachable {
                upstream: PD,
                failures: n,
            })
        };
        let unknown_up = Decision::Page(PageReason::UnknownUpstream { upstream: PD });
        // (age, last, failures, max_failures, expected)
        let cases: Vec<(u64, Option<&Check>, u32, u32, Decision)> = vec![
            // Nothing asked yet: hold within the grace, page when it ends.
            (0, None, 0, 3, Decision::Hold),
            (
                300,
                None,
                0,
                3,
                Decision::Page(PageReason::NoAnswer {
                    upstream: PD,
                    grace: s(300),
                }),
            ),
            // A positive answer mirrors, inside or after the grace.
            (
                10,
                Some(&a),
                0,
                3,
                Decision::Mirror(Mirror::Acknowledge { by: "Ann".into() }),
            ),
            (
                900,
                Some(&a),
                0,
                3,
                Decision::Mirror(Mirror::Acknowledge { by: "Ann".into() }),
            ),
            (
                10,
                Some(&r),
                0,
                3,
                Decision::Mirror(Mirror::Resolve { by: "Bob".into() }),
            ),
            // Still triggered: hold until the grace ends, then page.
            (10, Some(&t), 0, 3, Decision::Hold),
            (299, Some(&t), 0, 3, Decision::Hold),
            (300, Some(&t), 0, 3, not_acked.clone()),
            (301, Some(&t), 0, 0, not_acked),
            // Failures: hold while fewer than max, page at max, and always at the grace.
            (10, Some(&x), 1, 3, Decision::Hold),
            (10, Some(&x), 2, 3, Decision::Hold),
            (10, Some(&x), 3, 3, unreachable(3)),
            (10, Some(&x), 7, 3, unreachable(7)),
            (10, Some(&x), 9, 0, Decision::Hold),
            (300, Some(&x), 1, 3, unreachable(1)),
            (300, Some(&x), 1, 0, unreachable(1)),
            // Unknown incident counts as a failure, and pages at the grace.
            (10, Some(&u), 1, 3, Decision::Hold),
            (10, Some(&u), 3, 3, unknown_up.clone()),
            (300, Some(&u), 1, 3, unknown_up),
        ];
        for (i, (age, last, failures, max_failures, want)) in cases.into_iter().enumerate() {
            let got = decide(&Facts {
                upstream: PD,
                age: s(age),
                grace: s(300),
                last,
                failures,
                max_failures,
            });
            assert_eq!(
                got, want,
                "case {i}: age {age}s, {last:?}, {failures}/{max_failures}"
            );
        }
    }

    #[test]
    fn failure_kinds() {
        assert!(failed().is_failure());
        assert!(unknown().is_failure());
        assert!(!triggered().is_failure());
        assert!(!acked().is_failure());
        assert!(unknown().reached());
        assert!(!failed().reached());
    }

    #[test]
    fn reasons_fit_an_sms() {
        let r = PageReason::NotAcknowledged {
            upstream: PD,
            grace: s(300),
        };
        assert_eq!(r.describe(), "PagerDuty not acked in 5m");
        let r = PageReason::Unreachable {
            upstream: Upstream::Opsgenie,
            failures: 3,
        };
        assert_eq!(r.describe(), "Opsgenie unreachable (3 failed checks)");
        for r in [
            PageReason::UnknownUpstream { upstream: PD },
            PageReason::NoAnswer {
                upstream: PD,
                grace: s(2),
            },
        ] {
            assert!(crate::modem::pdu::fits(&r.describe(), 1));
        }
    }
}
