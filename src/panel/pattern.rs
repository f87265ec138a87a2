//! On/off patterns for one output (LED or buzzer), driven by deadlines.
//!
//! A [`Driver`] owns one [`Output`] and the pattern it shows. The owner asks for
//! [`Driver::deadline`] and calls [`Driver::tick`] when it passes; a steady pattern has no
//! deadline, so a lit or dark LED costs no wake-ups at all. Writes happen only when the
//! level changes.

use std::time::Duration;

use tokio::time::Instant;

use super::Output;

/// Slow blink: something is unacknowledged.
pub(super) const SLOW_BLINK: Pattern = Pattern::Blink {
    on: Duration::from_secs(1),
    off: Duration::from_secs(1),
};
/// Fast blink: paging is impaired.
pub(super) const FAST_BLINK: Pattern = Pattern::Blink {
    on: Duration::from_millis(125),
    off: Duration::from_millis(125),
};
/// Buzzer: short beeps with long gaps, noticeable without being unbearable.
pub(super) const BEEP: Pattern = Pattern::Blink {
    on: Duration::from_millis(500),
    off: Duration::from_secs(2),
};

/// What an output shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pattern {
    Off,
    Steady,
    /// Starts with `on`, then alternates.
    Blink {
        on: Duration,
        off: Duration,
    },
}

/// One output and its pattern.
pub(super) struct Driver<O> {
    output: O,
    role: &'static str,
    pattern: Pattern,
    /// Level last written; `None` before the first write or after a failed one.
    level: Option<bool>,
    /// Next toggle of a blink.
    next: Option<Instant>,
    /// The last write failed (log once per failure streak, not 8 times a second).
    failing: bool,
}

impl<O: Output> Driver<O> {
    /// Takes the output and switches it off.
    pub(super) fn new(output: O, role: &'static str) -> Self {
        let mut d = Driver {
            output,
            role,
            pattern: Pattern::Off,
            level: None,
            next: None,
            failing: false,
        };
        d.write(false);
        d
    }

    /// Shows `pattern` from `now`. The same pattern again keeps its phase (a new incident
    /// while already blinking does not restart the blink); a different one starts at once.
    pub(super) fn show(&mut self, pattern: Pattern, now: Instant) {
        if pattern == self.pattern {
            return;
        }
        self.pattern = pattern;
        match pattern {
            Pattern::Off => {
                self.next = None;
                self.write(false);
            }
            Pattern::Steady => {
                self.next = None;
                self.write(true);
            }
            Pattern::Blink { on, .. } => {
                self.next = Some(now + on);
                self.write(true);
            }
        }
    }

    /// When the next toggle is due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Toggles a blink whose deadline has passed. Each phase is timed from the previous
    /// deadline so the rhythm does not drift; if the task fell more than a phase behind, it
    /// restarts from `now` instead of catching up with a burst.
    pub(super) fn tick(&mut self, now: Instant) {
        let (Pattern::Blink { on, off }, Some(due)) = (self.pattern, self.next) else {
            return;
        };
        if now < due {
            return;
        }
        let turn_on = self.level != Some(true);
        let phase = if turn_on { on } else { off };
        let mut next = due + phase;
        if next <= now {
            next = now + phase;
        }
        self.next = Some(next);
        self.write(turn_on);
    }

    /// Switches off for good (shutdown).
    pub(super) fn off(&mut self) {
        self.pattern = Pattern::Off;
        self.next = None;
        self.level = None;
        self.write(false);
    }

    fn write(&mut self, on: bool) {
        if self.level == Some(on) {
            return;
        }
        match self.output.set(on) {
            Ok(()) => {
                self.level = Some(on);
                if self.failing {
                    tracing::info!(role = self.role, "panel output works again");
                    self.failing = false;
                }
            }
            Err(err) => {
                self.level = None;
                if !self.failing {
                    tracing::warn!(role = self.role, error = %err, "panel output write failed");
                    self.failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::fake::FakePanel;

    #[tokio::test(start_paused = true)]
    async fn blink_alternates_without_drift_and_writes_only_changes() {
        let (fake, parts) = FakePanel::new();
        let t0 = Instant::now();
        let mut d = Driver::new(parts.led, "LED");
        d.show(SLOW_BLINK, t0);
        d.show(SLOW_BLINK, t0); // same pattern: no restart, no write
        for _ in 0..6 {
            let due = d.deadline().unwrap();
            d.tick(due);
        }
        let levels: Vec<bool> = fake.led_writes().iter().map(|w| w.on).collect();
        assert_eq!(
            levels,
            vec![false, true, false, true, false, true, false, true],
            "off at start, on at show, then one write per toggle"
        );
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(7)));
    }

    #[tokio::test(start_paused = true)]
    async fn late_tick_restarts_phase_from_now() {
        let (_fake, parts) = FakePanel::new();
        let t0 = Instant::now();
        let mut d = Driver::new(parts.led, "LED");
        d.show(FAST_BLINK, t0);
        let late = t0 + Duration::from_secs(5);
        d.tick(late);
        assert_eq!(d.deadline(), Some(late + Duration::from_millis(125)));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_write_is_retried_on_next_change() {
        let (fake, parts) = FakePanel::new();
        let t0 = Instant::now();
        let mut d = Driver::new(parts.led, "LED");
        fake.fail_led(true);
        d.show(Pattern::Steady, t0);
        assert!(!fake.led_is_on());
        fake.fail_led(false);
        d.show(Pattern::Off, t0);
        d.show(Pattern::Steady, t0);
        assert!(fake.led_is_on());
    }
}
