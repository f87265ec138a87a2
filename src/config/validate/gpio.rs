//! `[gpio]` -> [`GpioConfig`]: the panel's LED and button pins.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn gpio(&mut self, raw: &RawGpio) -> GpioConfig {
        // The fake panel is compiled only into test builds (`panel::fake`).
        let backends: &[&str] = if cfg!(any(test, feature = "testkit")) {
            &["none", "rppal", "fake"]
        } else {
            &["none", "rppal"]
        };
        let backend = match self.one_of(&raw.backend, "gpio.backend", backends, "none") {
            "rppal" => GpioBackend::Rppal,
            "fake" => GpioBackend::Fake,
            _ => GpioBackend::None,
        };
        let long_press = self.duration(&raw.long_press, "gpio.long_press", Duration::from_secs(3));
        let cfg = GpioConfig {
            backend,
            button_pin: self.int(&raw.button_pin, "gpio.button_pin", 0..=53, 17),
            button_active_low: raw.button_active_low.unwrap_or(true),
            long_press: (!long_press.is_zero()).then_some(long_press),
            led_pin: self.int(&raw.led_pin, "gpio.led_pin", 0..=53, 27),
            buzzer_pin: raw
                .buzzer_pin
                .as_ref()
                .map(|_| self.int(&raw.buzzer_pin, "gpio.buzzer_pin", 0..=53, 22)),
            buzzer_after: self.duration(
                &raw.buzzer_after,
                "gpio.buzzer_after",
                Duration::from_secs(600),
            ),
        };
        // One pin cannot be two things: the GPIO library refuses the second use, and the panel
        // would not start (the box then pages without it). Pins left at their defaults count
        // too. `check` and a reload refuse it; a box that starts with it runs without the panel.
        if cfg.backend == GpioBackend::None {
            return cfg;
        }
        let mut pins = vec![
            (
                "gpio.button_pin",
                cfg.button_pin,
                raw.button_pin.as_ref().and_then(span),
            ),
            (
                "gpio.led_pin",
                cfg.led_pin,
                raw.led_pin.as_ref().and_then(span),
            ),
        ];
        if let Some(b) = cfg.buzzer_pin {
            pins.push(("gpio.buzzer_pin", b, raw.buzzer_pin.as_ref().and_then(span)));
        }
        for (n, (key, pin, at)) in pins.iter().enumerate() {
            if let Some((other, _, _)) = pins[..n].iter().find(|(_, p, _)| p == pin) {
                self.r.impaired(
                    at.clone(),
                    format!("{key}: pin {pin} is already {other} (set both; they must differ)"),
                );
            }
        }
        cfg
    }
}
