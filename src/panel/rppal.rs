//! Raspberry Pi backend: the panel's pins through `rppal` (BCM numbering).
//!
//! LED and buzzer are push-pull outputs, high = on. The button is an input with the internal
//! pull-up (active-low wiring, button to GND: the default) or pull-down (active-high wiring,
//! button to 3V3), and an rppal asynchronous interrupt on both edges. rppal calls us on its
//! own interrupt thread; we forward the new logical level into a `watch` channel that the
//! panel task awaits, so no thread ever blocks on the task and a burst of bounces costs one
//! wake-up. Debouncing is done by the task (testable with paused time), not by rppal.
//!
//! Reset on drop: our outputs write low first, then rppal puts every pin back in the mode it
//! had and switches the pull resistor off. Drop runs on a normal exit, including after SIGTERM
//! or Ctrl-C because the daemon and `panel test` catch those; it cannot run on SIGKILL or a
//! power cut (the LED then stays as it was until the next start).
//!
//! On a machine that is not a Raspberry Pi, [`RppalPanel::open`] fails with
//! [`PanelError::NoGpio`] ("no Raspberry Pi GPIO: Unknown Raspberry Pi model"); it never
//! panics, so `pagerbox check`-style callers can report it.

use rppal::gpio::{Event, Gpio, InputPin, Level, OutputPin, Trigger};
use tokio::sync::watch;

use super::{Button, Output, PanelError};
use crate::config::GpioConfig;

/// The opened pins, ready for [`super::spawn_with`].
#[derive(Debug)]
pub struct RppalPanel {
    pub led: RppalOutput,
    pub buzzer: Option<RppalOutput>,
    pub button: RppalButton,
}

/// An output pin (LED or buzzer), high = on. Writes low when dropped.
#[derive(Debug)]
pub struct RppalOutput {
    pin: OutputPin,
}

/// The button pin with its interrupt. Dropping it stops the interrupt thread and resets
/// the pin.
#[derive(Debug)]
pub struct RppalButton {
    /// Kept for its interrupt and its reset on drop.
    pin: InputPin,
    active_low: bool,
    level: watch::Receiver<bool>,
}

impl RppalPanel {
    /// Opens the GPIO peripheral and claims the configured pins. Fails without side effects
    /// on pins not yet claimed: claimed ones are released (and reset) as the error returns.
    pub fn open(cfg: &GpioConfig) -> Result<RppalPanel, PanelError> {
        let gpio = Gpio::new().map_err(|source| PanelError::NoGpio { source })?;
        let led = RppalOutput::open(&gpio, cfg.led_pin, "LED")?;
        let buzzer = cfg
            .buzzer_pin
            .map(|pin| RppalOutput::open(&gpio, pin, "buzzer"))
            .transpose()?;
        let button = RppalButton::open(&gpio, cfg.button_pin, cfg.button_active_low)?;
        Ok(RppalPanel {
            led,
            buzzer,
            button,
        })
    }
}

impl RppalOutput {
    fn open(gpio: &Gpio, pin: u8, role: &'static str) -> Result<Self, PanelError> {
        let pin = gpio
            .get(pin)
            .map_err(|source| PanelError::Pin { pin, role, source })?
            .into_output_low();
        Ok(RppalOutput { pin })
    }
}

impl Output for RppalOutput {
    fn set(&mut self, on: bool) -> Result<(), PanelError> {
        self.pin.write(if on { Level::High } else { Level::Low });
        Ok(())
    }
}

impl Drop for RppalOutput {
    fn drop(&mut self) {
        self.pin.set_low();
    }
}

impl RppalButton {
    fn open(gpio: &Gpio, pin_no: u8, active_low: bool) -> Result<Self, PanelError> {
        let role = "button";
        let pin = gpio.get(pin_no).map_err(|source| PanelError::Pin {
            pin: pin_no,
            role,
            source,
        })?;
        let mut pin = if active_low {
            pin.into_input_pullup()
        } else {
            pin.into_input_pulldown()
        };
        let pressed = move |level_high: bool| level_high != active_low;
        let (tx, rx) = watch::channel(pressed(pin.is_high()));
        pin.set_async_interrupt(Trigger::Both, None, move |event: Event| {
            // Runs on rppal's interrupt thread: never blocks, never fails (a send with no
            // receiver left only means the panel is gone).
            tx.send_replace(pressed(event.trigger == Trigger::RisingEdge));
        })
        .map_err(|source| PanelError::Pin {
            pin: pin_no,
            role,
            source,
        })?;
        Ok(RppalButton {
            pin,
            active_low,
            level: rx,
        })
    }
}

impl Button for RppalButton {
    fn is_pressed(&self) -> bool {
        self.pin.is_high() != self.active_low
    }

    async fn next_change(&mut self) -> Result<bool, PanelError> {
        self.level
            .changed()
            .await
            .map_err(|_| PanelError::ButtonClosed)?;
        Ok(*self.level.borrow_and_update())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GpioBackend;
    use std::time::Duration;

    fn cfg() -> GpioConfig {
        GpioConfig {
            backend: GpioBackend::Rppal,
            button_pin: 17,
            button_active_low: true,
            long_press: Some(Duration::from_secs(3)),
            led_pin: 27,
            buzzer_pin: Some(22),
            buzzer_after: Duration::from_secs(600),
        }
    }

    fn is_pi() -> bool {
        std::fs::read_to_string("/proc/device-tree/compatible")
            .map(|s| s.contains("raspberrypi") || s.contains("brcm,bcm"))
            .unwrap_or(false)
    }

    #[test]
    fn opening_on_a_non_pi_fails_with_a_clear_error() {
        if is_pi() {
            eprintln!("skipped: this machine is a Raspberry Pi");
            return;
        }
        let err = RppalPanel::open(&cfg()).expect_err("no GPIO on this machine");
        assert!(matches!(err, PanelError::NoGpio { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("no Raspberry Pi GPIO: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn spawn_with_rppal_backend_on_a_non_pi_fails_before_spawning() {
        if is_pi() {
            eprintln!("skipped: this machine is a Raspberry Pi");
            return;
        }
        let (_tx, rx) = watch::channel(super::super::PanelState::default());
        let tracker = tokio_util::task::TaskTracker::new();
        let err =
            super::super::spawn(&cfg(), rx, Default::default(), &tracker).expect_err("no GPIO");
        assert!(tracker.is_empty(), "nothing spawned");
        assert!(err.to_string().contains("no Raspberry Pi GPIO"), "{err}");
    }
}
