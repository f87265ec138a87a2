//! Button debounce and press classification: raw level changes in, gestures out.
//!
//! Pure state machine: time comes in as arguments, and [`ButtonTracker::deadline`] tells the
//! caller when to call [`ButtonTracker::poll`] next, so the owner can sleep instead of polling.
//! A level counts once it has been stable for [`DEBOUNCE`]; any observed movement restarts
//! that wait, so contact bounce and glitches shorter than it are ignored.

use std::time::Duration;

use tokio::time::Instant;

use super::DEBOUNCE;

/// A debounced gesture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gesture {
    /// The button went down (stable for the debounce time).
    Pressed,
    /// The held time reached the long-press threshold; the button is still down.
    LongPress,
    /// The button came up after `held`. `short` is true when no long press fired for this
    /// hold, i.e. this release is a short press.
    Released { held: Duration, short: bool },
}

/// Debounce and classification state for one button.
#[derive(Debug)]
pub(super) struct ButtonTracker {
    long_press: Option<Duration>,
    /// Last raw level seen.
    raw: bool,
    /// Debounced level.
    stable: bool,
    /// When the raw level last moved; a pending decision is due at `last_change + DEBOUNCE`.
    last_change: Instant,
    /// A raw movement has not been settled yet.
    settling: bool,
    /// Start of the current hold (the edge after which the level stayed down); `None` when the
    /// button is up, or was already down when we started (such a hold is not a gesture).
    pressed_at: Option<Instant>,
    /// The long press fired for the current hold.
    long_fired: bool,
}

impl ButtonTracker {
    /// Starts with the level read at start-up; a button already down is ignored until it
    /// has been released.
    pub(super) fn new(long_press: Option<Duration>, pressed_now: bool, now: Instant) -> Self {
        ButtonTracker {
            long_press,
            raw: pressed_now,
            stable: pressed_now,
            last_change: now,
            settling: false,
            pressed_at: None,
            long_fired: false,
        }
    }

    /// Records a raw level change observed at `now`. Any movement, even one that reads the
    /// same level again, restarts the debounce wait.
    pub(super) fn on_raw(&mut self, pressed: bool, now: Instant) {
        self.raw = pressed;
        self.last_change = now;
        self.settling = true;
    }

    /// When [`poll`](Self::poll) has something to decide next; `None`: nothing until the next
    /// raw change.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let settle = self.settling.then(|| self.last_change + DEBOUNCE);
        let long = self.long_deadline();
        match (settle, long) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The long-press threshold of the current hold, if one can still fire. Not while a
    /// release is settling: whether that hold ended early is not known yet.
    fn long_deadline(&self) -> Option<Instant> {
        let (start, long) = (self.pressed_at?, self.long_press?);
        (self.stable && self.raw && !self.long_fired).then_some(start + long)
    }

    /// Decides what is due at `now`. Call until it returns `None`.
    pub(super) fn poll(&mut self, now: Instant) -> Option<Gesture> {
        if self.settling && now >= self.last_change + DEBOUNCE {
            self.settling = false;
            if self.raw != self.stable {
                self.stable = self.raw;
                if self.stable {
                    self.pressed_at = Some(self.last_change);
                    self.long_fired = false;
                    return Some(Gesture::Pressed);
                }
                // Released: the hold ended at the edge after which the level stayed up.
                let start = self.pressed_at.take()?;
                return Some(Gesture::Released {
                    held: self.last_change.saturating_duration_since(start),
                    short: !self.long_fired,
                });
            }
        }
        if self.long_deadline().is_some_and(|at| now >= at) {
            self.long_fired = true;
            return Some(Gesture::LongPress);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(offset_ms, level)` edges, polling at every deadline in between, and returns
    /// the gestures with their offsets.
    fn run(long: Option<Duration>, edges: &[(u64, bool)], until_ms: u64) -> Vec<(u64, Gesture)> {
        let t0 = Instant::now();
        let mut b = ButtonTracker::new(long, false, t0);
        let mut out = Vec::new();
        let mut edges = edges.iter().peekable();
        loop {
            let next_edge = edges.peek().map(|(at, _)| t0 + ms(*at));
            let next = match (b.deadline(), next_edge) {
                (Some(d), Some(e)) if d < e => d,
                (_, Some(e)) => e,
                (Some(d), None) => d,
                (None, None) => break,
            };
            if next > t0 + ms(until_ms) {
                break;
            }
            if Some(next) == next_edge {
                let (_, level) = edges.next().unwrap();
                b.on_raw(*level, next);
            }
            while let Some(g) = b.poll(next) {
                out.push(((next - t0).as_millis() as u64, g));
            }
        }
        out
    }

    #[test]
    fn clean_short_press() {
        let got = run(Some(ms(3000)), &[(0, true), (400, false)], 10_000);
        assert_eq!(
            got,
            vec![
                (50, Gesture::Pressed),
                (
                    450,
                    Gesture::Released {
                        held: ms(400),
                        short: true
                    }
                )
            ]
        );
    }

    #[test]
    fn bouncy_press_and_release_count_once() {
        let edges = [
            (0, true),
            (3, false),
            (7, true),
            (12, false),
            (20, true),
            (500, false),
            (504, true),
            (510, false),
        ];
        let got = run(Some(ms(3000)), &edges, 10_000);
        assert_eq!(
            got,
            vec![
                (70, Gesture::Pressed),
                (
                    560,
                    Gesture::Released {
                        held: ms(490),
                        short: true
                    }
                )
            ]
        );
    }

    #[test]
    fn glitch_shorter_than_debounce_is_ignored() {
        assert_eq!(
            run(Some(ms(3000)), &[(0, true), (30, false)], 10_000),
            vec![]
        );
    }

    #[test]
    fn long_press_fires_at_threshold_while_held() {
        let got = run(Some(ms(3000)), &[(0, true), (5000, false)], 10_000);
        assert_eq!(
            got,
            vec![
                (50, Gesture::Pressed),
                (3000, Gesture::LongPress),
                (
                    5050,
                    Gesture::Released {
                        held: ms(5000),
                        short: false
                    }
                )
            ]
        );
    }

    #[test]
    fn glitch_during_hold_does_not_end_it() {
        let got = run(
            Some(ms(3000)),
            &[(0, true), (1000, false), (1010, true)],
            4000,
        );
        assert_eq!(
            got,
            vec![(50, Gesture::Pressed), (3000, Gesture::LongPress)]
        );
    }

    #[test]
    fn release_just_before_threshold_is_short() {
        // The release starts at 2990 and settles at 3040, after the threshold: the hold was
        // 2990 ms, so no long press.
        let got = run(Some(ms(3000)), &[(0, true), (2990, false)], 10_000);
        assert_eq!(
            got,
            vec![
                (50, Gesture::Pressed),
                (
                    3040,
                    Gesture::Released {
                        held: ms(2990),
                        short: true
                    }
                )
            ]
        );
    }

    #[test]
    fn long_press_disabled_makes_long_hold_short() {
        let got = run(None, &[(0, true), (10_000, false)], 20_000);
        assert_eq!(
            got,
            vec![
                (50, Gesture::Pressed),
                (
                    10_050,
                    Gesture::Released {
                        held: ms(10_000),
                        short: true
                    }
                )
            ]
        );
    }

    #[test]
    fn button_down_at_start_is_not_a_gesture() {
        let t0 = Instant::now();
        let mut b = ButtonTracker::new(Some(ms(3000)), true, t0);
        assert_eq!(
            b.deadline(),
            None,
            "no long press for a hold we did not see start"
        );
        b.on_raw(false, t0 + ms(100));
        assert_eq!(b.poll(t0 + ms(150)), None);
        assert_eq!(b.deadline(), None);
    }
}
