//! The GPIO panel on the box: one acknowledge button, one status LED, an optional buzzer.
//!
//! A person standing in the server room must be able to see "something is paging" and say
//! "I have it" without a phone. This module owns the pins and what they mean:
//!
//! - **LED**: off when nothing is open; slow blink while something is unacknowledged; steady
//!   while everything open is acknowledged; fast blink when paging is impaired (impaired wins).
//! - **Buzzer** (optional pin): beeps while an incident has stayed unacknowledged longer than
//!   `gpio.buzzer_after`.
//! - **Button**: debounced; a short press asks to acknowledge every triggered incident
//!   ([`PanelEvent::AckAll`]); a long press (fired when the threshold is reached, while still
//!   held) asks to resolve the acknowledged ones ([`PanelEvent::ResolveAcked`]).
//!
//! The pin task does **not** own incidents: [`bridge`] publishes a [`PanelState`] on a `watch`
//! channel and acts on the [`PanelEvent`]s it receives (the ack itself, the actor name, the
//! timeline).
//!
//! Shape: one task owns the pins, and the hardware sits behind two narrow traits, [`Output`] (LED,
//! buzzer) and [`Button`], with two backends: [`rppal`] on a Raspberry Pi and `fake` for tests.
//! The fake is compiled only into test builds (`cfg(test)` or the `testkit` feature, which the
//! test suite turns on so the real binary accepts `backend = "fake"` end to end); a release
//! build rejects that backend at `pagerbox check`.
//! One task ([`run`]) owns all pins; every pattern is driven from it with `tokio::time`
//! deadlines, so the task sleeps until the next edge, state change or blink and never polls.
//!
//! Submodules: [`bridge`] (incidents to LED, button to acknowledgements); `fake` (recording
//! fake) and `control` (Unix-socket control of the fake for end-to-end tests), both test builds
//! only; [`rppal`] (Raspberry Pi, Linux only), [`cli`]
//! (`pagerbox panel test`); `button` (debounce and press classification) and
//! `pattern` (blink timing) are private pieces of the task.

pub mod bridge;
mod button;
pub mod cli;
#[cfg(all(unix, any(test, feature = "testkit")))]
pub mod control;
#[cfg(any(test, feature = "testkit"))]
pub mod fake;
mod pattern;
#[cfg(target_os = "linux")]
pub mod rppal;
mod task;

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{GpioBackend, GpioConfig};

#[cfg(any(test, feature = "testkit"))]
pub use fake::{FakeButton, FakeOutput, FakePanel, FakeParts, Write};
pub use task::run;

/// How long a button level must stay unchanged before it counts (contact bounce filter).
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Capacity of the [`PanelEvent`] channel. Presses are rare; if the daemon falls this far
/// behind, further presses are dropped with a warning rather than freezing the LED.
pub const EVENT_CAPACITY: usize = 8;

/// What the daemon tells the panel. Published on a `watch` channel whenever it changes; the
/// panel shows the latest value at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PanelState {
    /// Open incidents nobody has acknowledged yet (status triggered).
    pub open_unacked: usize,
    /// Open incidents that are acknowledged but not resolved.
    pub open_acked: usize,
    /// Paging is impaired: modem down and email down, or the store failing. Wins over
    /// everything else on the LED (fast blink).
    pub impaired: bool,
    /// Age of the oldest unacknowledged incident at the moment this state is published.
    /// The buzzer starts once this age passes `gpio.buzzer_after`. An age rather than an
    /// instant because incidents may be older than the box's monotonic clock (after a reboot).
    /// `None` while `open_unacked > 0` means "unknown": the panel counts from when it first
    /// saw the unacknowledged state.
    pub oldest_unacked_age: Option<Duration>,
}

/// What a person asked for at the box. The daemon carries it out (actor `on-site`, via
/// `button`); the panel only reports the gesture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelEvent {
    /// Short press (or any press when long press is disabled): acknowledge every triggered
    /// incident.
    AckAll,
    /// The button was held for `gpio.long_press`: resolve every acknowledged incident. Sent
    /// when the threshold is reached, while the button is still held.
    ResolveAcked,
}

/// The error type of the hardware backends (rppal's on Linux).
#[cfg(target_os = "linux")]
pub type GpioError = ::rppal::gpio::Error;
/// The error type of the hardware backends (none off Linux).
#[cfg(not(target_os = "linux"))]
pub type GpioError = std::io::Error;

/// Panel errors. Opening the hardware fails with context (which pin, what role); writes fail
/// only on a broken backend. None is retryable: a missing or busy GPIO stays so until the
/// operator fixes the config or the wiring.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    /// The GPIO peripheral could not be opened: not a Raspberry Pi, no `/dev/gpiomem`, or no
    /// permission.
    #[error("no Raspberry Pi GPIO: {source}")]
    NoGpio {
        #[source]
        source: GpioError,
    },
    /// One pin could not be claimed (not on this board, or already in use).
    #[error("GPIO pin {pin} ({role}): {source}")]
    Pin {
        pin: u8,
        role: &'static str,
        #[source]
        source: GpioError,
    },
    /// Setting an output failed (only fakes and exotic backends can fail here).
    #[error("cannot set the {role}: {detail}")]
    Write { role: &'static str, detail: String },
    /// The button's edge source has gone away (the backend's interrupt thread ended).
    #[error("button input closed")]
    ButtonClosed,
    /// The configured backend does not exist on this platform.
    #[error("GPIO backend {backend} is not available on this platform")]
    Unsupported { backend: &'static str },
}

/// One on/off output: the LED or the buzzer. `on = true` lights or sounds it.
///
/// Implementations should be cheap (the fast blink writes 8 times a second) and must not
/// block. An error is logged by the task, which keeps running: a dead LED must not stop the
/// button from acknowledging.
pub trait Output: Send + 'static {
    /// Switches the output on or off.
    fn set(&mut self, on: bool) -> Result<(), PanelError>;
}

/// The raw (undebounced) acknowledge button. `pressed` is the logical state: the backend
/// has already applied the wiring polarity (`gpio.button_active_low`).
pub trait Button: Send + 'static {
    /// The level right now, read once at start so a button held (or a line stuck) at boot is
    /// not taken for a press.
    fn is_pressed(&self) -> bool;

    /// Waits for the next raw level change and returns the new level. Several quick changes
    /// may be folded into one (the debouncer only needs "something moved, now it reads X").
    /// Must be cancel-safe (the task drops the wait whenever something else wakes it).
    /// Fails with [`PanelError::ButtonClosed`] when the source is gone for good.
    fn next_change(&mut self) -> impl Future<Output = Result<bool, PanelError>> + Send;
}

/// A running panel task as the daemon sees it.
#[derive(Debug)]
pub struct Panel {
    /// Gestures from the button. Ends when the task ends.
    pub events: mpsc::Receiver<PanelEvent>,
    /// The panel task (also tracked by the daemon's `TaskTracker`); it returns after
    /// `shutdown` is cancelled (LED and buzzer off) or when the state sender is dropped.
    pub task: JoinHandle<()>,
    /// With `backend = "fake"`: the handle to press the button and read the LED.
    #[cfg(any(test, feature = "testkit"))]
    pub fake: Option<FakePanel>,
}

/// Opens the configured backend and spawns the panel task on `tracker`, so the daemon's
/// shutdown wait covers "LED and buzzer off". `backend = "none"` gives `Ok(None)`: no task,
/// no events. `fake` returns the [`FakePanel`] in [`Panel::fake`]. Fails (before spawning
/// anything) when the hardware cannot be opened, e.g.
/// "no Raspberry Pi GPIO: Unknown Raspberry Pi model" on a PC.
pub fn spawn(
    cfg: &GpioConfig,
    state: watch::Receiver<PanelState>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<Option<Panel>, PanelError> {
    match cfg.backend {
        GpioBackend::None => Ok(None),
        #[cfg(any(test, feature = "testkit"))]
        GpioBackend::Fake => {
            tracing::warn!(
                "gpio.backend is \"fake\": the panel is simulated, no real LED or button"
            );
            let (fake, parts) = FakePanel::new();
            let buzzer = cfg.buzzer_pin.map(|_| parts.buzzer);
            let (events, task) = spawn_with(
                parts.led,
                buzzer,
                parts.button,
                cfg,
                state,
                shutdown,
                tracker,
            );
            Ok(Some(Panel {
                events,
                task,
                fake: Some(fake),
            }))
        }
        // Config validation refuses "fake" in builds without it; this keeps the match total.
        #[cfg(not(any(test, feature = "testkit")))]
        GpioBackend::Fake => Err(PanelError::Unsupported { backend: "fake" }),
        GpioBackend::Rppal => spawn_rppal(cfg, state, shutdown, tracker),
    }
}

#[cfg(target_os = "linux")]
fn spawn_rppal(
    cfg: &GpioConfig,
    state: watch::Receiver<PanelState>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<Option<Panel>, PanelError> {
    let hw = rppal::RppalPanel::open(cfg)?;
    let (events, task) = spawn_with(hw.led, hw.buzzer, hw.button, cfg, state, shutdown, tracker);
    Ok(Some(Panel {
        events,
        task,
        #[cfg(any(test, feature = "testkit"))]
        fake: None,
    }))
}

#[cfg(not(target_os = "linux"))]
fn spawn_rppal(
    _cfg: &GpioConfig,
    _state: watch::Receiver<PanelState>,
    _shutdown: CancellationToken,
    _tracker: &TaskTracker,
) -> Result<Option<Panel>, PanelError> {
    Err(PanelError::Unsupported { backend: "rppal" })
}

/// Spawns the panel task on given hardware (any backend) on `tracker`. Returns the event
/// receiver and the task handle.
pub fn spawn_with<L: Output, B: Output, K: Button>(
    led: L,
    buzzer: Option<B>,
    button: K,
    cfg: &GpioConfig,
    state: watch::Receiver<PanelState>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> (mpsc::Receiver<PanelEvent>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
    let settings = Settings::from_config(cfg);
    let task = tracker.spawn(run(led, buzzer, button, settings, state, tx, shutdown));
    (rx, task)
}

/// The timing the task needs from `[gpio]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Hold this long for [`PanelEvent::ResolveAcked`]; `None`: every press is a short press.
    pub long_press: Option<Duration>,
    /// Unacknowledged this long before the buzzer sounds.
    pub buzzer_after: Duration,
}

impl Settings {
    /// Takes the timing out of the validated config.
    pub fn from_config(cfg: &GpioConfig) -> Self {
        Settings {
            long_press: cfg.long_press,
            buzzer_after: cfg.buzzer_after,
        }
    }
}
