//! A recording fake of the panel hardware, for tests and `backend = "fake"`.
//!
//! [`FakePanel::new`] gives a test-side handle and the parts to hand to the panel task: an
//! LED and a buzzer ([`FakeOutput`]) that record every write with its `tokio::time::Instant`,
//! and a [`FakeButton`] the handle presses and releases with raw edges (bounce included).
//! It lives in the library, not under `#[cfg(test)]`, because `tests/` and the daemon's fake
//! backend use it too.
//!
//! The write log is shared between the parts (inside the task) and the handle (in the test)
//! through a std mutex held only for a push or a copy, never across an await: this is a
//! recorder, not shared program state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Button, Output, PanelError};

/// One write to a fake output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// When it was written (tokio time, so paused-time tests get exact values).
    pub at: Instant,
    /// The level written.
    pub on: bool,
}

#[derive(Debug, Default)]
struct Log {
    writes: Vec<Write>,
    fail: bool,
}

type SharedLog = Arc<Mutex<Log>>;

fn lock(log: &SharedLog) -> std::sync::MutexGuard<'_, Log> {
    // A panic while holding this lock can only come from a test assertion elsewhere; the
    // log itself is always consistent, so keep using it.
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// The test's side of a fake panel: press the button, read what the LED and buzzer did.
/// Cheap to clone; all clones see the same hardware.
#[derive(Debug, Clone)]
pub struct FakePanel {
    led: SharedLog,
    buzzer: SharedLog,
    button: Arc<watch::Sender<bool>>,
    button_waits: Arc<AtomicUsize>,
    created: Instant,
}

/// The hardware side, to hand to [`super::spawn_with`] or [`super::run`].
#[derive(Debug)]
pub struct FakeParts {
    pub led: FakeOutput,
    pub buzzer: FakeOutput,
    pub button: FakeButton,
}

/// A fake LED or buzzer: records each write.
#[derive(Debug)]
pub struct FakeOutput {
    role: &'static str,
    log: SharedLog,
}

/// A fake button: raw levels set by [`FakePanel::press`] / [`FakePanel::release`].
#[derive(Debug)]
pub struct FakeButton {
    level: watch::Receiver<bool>,
    waits: Arc<AtomicUsize>,
}

impl FakePanel {
    /// A new fake with the button up and nothing written yet.
    pub fn new() -> (FakePanel, FakeParts) {
        let led = SharedLog::default();
        let buzzer = SharedLog::default();
        let (tx, rx) = watch::channel(false);
        let waits = Arc::new(AtomicUsize::new(0));
        let panel = FakePanel {
            led: led.clone(),
            buzzer: buzzer.clone(),
            button: Arc::new(tx),
            button_waits: waits.clone(),
            created: Instant::now(),
        };
        let parts = FakeParts {
            led: FakeOutput {
                role: "LED",
                log: led,
            },
            buzzer: FakeOutput {
                role: "buzzer",
                log: buzzer,
            },
            button: FakeButton { level: rx, waits },
        };
        (panel, parts)
    }

    /// When this fake was created (the origin of the control socket's write times).
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Raw edge: the button goes down (logical level, polarity already applied).
    pub fn press(&self) {
        self.set_button(true);
    }

    /// Raw edge: the button comes up.
    pub fn release(&self) {
        self.set_button(false);
    }

    /// Sets the raw button level. Setting the same level again still counts as movement
    /// (it restarts the debounce wait), like a bounce too fast to read.
    pub fn set_button(&self, pressed: bool) {
        self.button.send_replace(pressed);
    }

    /// Every LED write so far, oldest first.
    pub fn led_writes(&self) -> Vec<Write> {
        lock(&self.led).writes.clone()
    }

    /// Every buzzer write so far, oldest first.
    pub fn buzzer_writes(&self) -> Vec<Write> {
        lock(&self.buzzer).writes.clone()
    }

    /// The LED's level now (off before any write).
    pub fn led_is_on(&self) -> bool {
        level_at(&self.led_writes(), Instant::now())
    }

    /// The buzzer's level now (off before any write).
    pub fn buzzer_is_on(&self) -> bool {
        level_at(&self.buzzer_writes(), Instant::now())
    }

    /// The buzzer's level at `at` according to the write log.
    pub fn buzzer_on_at(&self, at: Instant) -> bool {
        level_at(&self.buzzer_writes(), at)
    }

    /// Makes LED writes fail (`true`) or work again, to test that a dead LED does not stop
    /// the panel. Failed writes are not recorded.
    pub fn fail_led(&self, fail: bool) {
        lock(&self.led).fail = fail;
    }

    /// How many times the panel task has started waiting for a button change: one per loop
    /// turn of the task, so tests can check it sleeps rather than polls.
    pub fn button_waits(&self) -> usize {
        self.button_waits.load(Ordering::Relaxed)
    }
}

/// The level after the last write at or before `at`.
fn level_at(writes: &[Write], at: Instant) -> bool {
    writes
        .iter()
        .take_while(|w| w.at <= at)
        .last()
        .is_some_and(|w| w.on)
}

impl Output for FakeOutput {
    fn set(&mut self, on: bool) -> Result<(), PanelError> {
        let mut log = lock(&self.log);
        if log.fail {
            return Err(PanelError::Write {
                role: self.role,
                detail: "fake failure".into(),
            });
        }
        log.writes.push(Write {
            at: Instant::now(),
            on,
        });
        Ok(())
    }
}

impl Button for FakeButton {
    fn is_pressed(&self) -> bool {
        *self.level.borrow()
    }

    async fn next_change(&mut self) -> Result<bool, PanelError> {
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.level
            .changed()
            .await
            .map_err(|_| PanelError::ButtonClosed)?;
        Ok(*self.level.borrow_and_update())
    }
}
