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
        GpioConfig {
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
        }
    }
}
