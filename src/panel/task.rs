//! The panel task: the one owner of the LED, the buzzer and the button.
//!
//! It sleeps until the earliest of: a new [`PanelState`], a raw button edge, the next blink
//! toggle, the moment the buzzer is due, or a debounce/long-press decision. Nothing runs on a
//! timer when nothing blinks, so "all quiet" costs no wake-ups.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::button::{ButtonTracker, Gesture};
use super::pattern::{Driver, Pattern, BEEP, FAST_BLINK, SLOW_BLINK};
use super::{Button, Output, PanelEvent, PanelState, Settings};

/// What the LED shows for a state: impaired wins, then unacknowledged, then acknowledged.
pub(super) fn led_pattern(state: &PanelState) -> Pattern {
    if state.impaired {
        FAST_BLINK
    } else if state.open_unacked > 0 {
        SLOW_BLINK
    } else if state.open_acked > 0 {
        Pattern::Steady
    } else {
        Pattern::Off
    }
}

/// Runs the panel until `shutdown` is cancelled or the state sender is dropped, then
/// switches the LED and buzzer off (the hardware backends also reset their pins on drop).
///
/// Button gestures go to `events` with `try_send`: if the daemon is so far behind that the
/// channel is full, the press is dropped with a warning (the person sees the LED unchanged
/// and presses again) rather than freezing the LED. A failing output is logged and the task
/// carries on; a closed button source is logged and the LED and buzzer keep working.
pub async fn run<L: Output, B: Output, K: Button>(
    led: L,
    buzzer: Option<B>,
    mut button: K,
    settings: Settings,
    mut state: watch::Receiver<PanelState>,
    events: mpsc::Sender<PanelEvent>,
    shutdown: CancellationToken,
) {
    let start = Instant::now();
    let mut panel = Outputs {
        led: Driver::new(led, "LED"),
        buzzer: buzzer.map(|b| Driver::new(b, "buzzer")),
        buzzer_after: settings.buzzer_after,
        buzz_due: None,
    };
    let mut tracker = ButtonTracker::new(settings.long_press, button.is_pressed(), start);
    let mut button_open = true;
    let initial = state.borrow_and_update().clone();
    panel.apply(&initial, start);
    tracing::info!(
        long_press_ms = settings.long_press.map(|d| d.as_millis() as u64),
        buzzer = panel.buzzer.is_some(),
        "panel started"
    );

    loop {
        let now = Instant::now();
        let deadline = [
            panel.led.deadline(),
            panel.buzzer.as_ref().and_then(|b| b.deadline()),
            panel.pending_buzz(now),
            tracker.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();

        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            changed = state.changed() => {
                if changed.is_err() {
                    tracing::debug!("panel state sender gone; panel stops");
                    break;
                }
                let s = state.borrow_and_update().clone();
                panel.apply(&s, Instant::now());
            }
            change = button.next_change(), if button_open => match change {
                Ok(pressed) => tracker.on_raw(pressed, Instant::now()),
                Err(err) => {
                    tracing::warn!(error = %err, "panel button input lost; LED keeps working");
                    button_open = false;
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => {}
        }

        let now = Instant::now();
        while let Some(gesture) = tracker.poll(now) {
            handle_gesture(gesture, &events);
        }
        panel.tick(now);
    }

    panel.led.off();
    if let Some(b) = panel.buzzer.as_mut() {
        b.off();
    }
    tracing::info!("panel stopped; LED and buzzer off");
}

fn handle_gesture(gesture: Gesture, events: &mpsc::Sender<PanelEvent>) {
    let event = match gesture {
        Gesture::Pressed => {
            tracing::debug!("panel button down");
            return;
        }
        Gesture::Released { held, short } => {
            tracing::debug!(held_ms = held.as_millis() as u64, short, "panel button up");
            if !short {
                return;
            }
            PanelEvent::AckAll
        }
        Gesture::LongPress => PanelEvent::ResolveAcked,
    };
    tracing::info!(event = ?event, "panel button gesture");
    match events.try_send(event) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(event = ?event, "panel event dropped: daemon is not keeping up");
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::debug!(event = ?event, "panel event dropped: nobody listens");
        }
    }
}

/// The LED and the buzzer with what decides their patterns.
struct Outputs<L, B> {
    led: Driver<L>,
    buzzer: Option<Driver<B>>,
    buzzer_after: Duration,
    /// When the buzzer starts (or started), while something is unacknowledged.
    buzz_due: Option<Instant>,
}

impl<L: Output, B: Output> Outputs<L, B> {
    fn apply(&mut self, state: &PanelState, now: Instant) {
        self.led.show(led_pattern(state), now);
        self.buzz_due = if state.open_unacked == 0 {
            None
        } else {
            match state.oldest_unacked_age {
                Some(age) => Some(now + self.buzzer_after.saturating_sub(age)),
                // Age unknown: count from when we first saw it unacknowledged.
                None => self.buzz_due.or(Some(now + self.buzzer_after)),
            }
        };
        self.update_buzzer(now);
    }

    /// The buzzer start still ahead of us, if any (a deadline for the loop).
    fn pending_buzz(&self, now: Instant) -> Option<Instant> {
        self.buzzer.as_ref()?;
        self.buzz_due.filter(|due| *due > now)
    }

    fn tick(&mut self, now: Instant) {
        self.led.tick(now);
        self.update_buzzer(now);
        if let Some(b) = self.buzzer.as_mut() {
            b.tick(now);
        }
    }

    fn update_buzzer(&mut self, now: Instant) {
        let sound = self.buzz_due.is_some_and(|due| now >= due);
        if let Some(b) = self.buzzer.as_mut() {
            b.show(if sound { BEEP } else { Pattern::Off }, now);
        }
    }
}

#[cfg(test)]
mod tests;
