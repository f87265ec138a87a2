//! `[modem]` -> [`ModemConfig`]: the serial port and how the daemon talks to it.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn modem(&mut self, raw: &RawModem) -> ModemConfig {
        let device = match &raw.device {
            None => ModemDevice::Simulator,
            Some(s) if s.get_ref() == "simulator" => ModemDevice::Simulator,
            Some(s) => ModemDevice::Path(PathBuf::from(s.get_ref())),
        };
        let profiles = ["auto", "generic", "sim800", "sim7600", "ec25"];
        let profile = self.one_of(&raw.profile, "modem.profile", &profiles, "auto");
        let sim_profile = self.one_of(
            &raw.simulator.profile,
            "modem.simulator.profile",
            &profiles[1..],
            "sim7600",
        );
        let smsc = raw.smsc.as_ref().map(|s| {
            if PhoneNumber::parse_e164(s.get_ref()).is_none() {
                self.r.error(
                    span(s),
                    format!("modem.smsc: {:?} is not an E.164 number", s.get_ref()),
                );
            }
            s.get_ref().clone()
        });
        ModemConfig {
            enabled: raw.enabled.unwrap_or(true),
            device,
            profile: profile.to_string(),
            baud: self.int(&raw.baud, "modem.baud", 1200..=4_000_000, 115_200),
            pin_file: raw.pin_file.as_ref().map(|s| self.path(s.get_ref())),
            smsc,
            delivery_reports: raw.delivery_reports.unwrap_or(true),
            text_mode: raw.text_mode.unwrap_or(false),
            // Kept within bounds: these set how soon a wedged exchange or a silent modem is
            // noticed (the heartbeat and answer bounds grow with them), and a zero would time
            // out every command.
            command_timeout: self.clamped_duration(
                &raw.command_timeout,
                "modem.command_timeout",
                Duration::from_millis(500)..=Duration::from_secs(120),
                Duration::from_secs(10),
            ),
            // 120 s: the longest answer time the manuals give for `AT+CMGS` (Quectel EC25,
            // SIMCom SIM7600; SIM800: 60 s). A submit timed out early is sent again, so the
            // person gets it twice, and the resync that follows can find the modem still busy.
            sms_timeout: self.clamped_duration(
                &raw.sms_timeout,
                "modem.sms_timeout",
                Duration::from_secs(1)..=Duration::from_secs(600),
                Duration::from_secs(120),
            ),
            health_interval: self.clamped_duration(
                &raw.health_interval,
                "modem.health_interval",
                Duration::from_millis(100)..=Duration::from_secs(600),
                Duration::from_secs(30),
            ),
            ring_for: self.clamped_duration(
                &raw.ring_for,
                "modem.ring_for",
                Duration::from_secs(1)..=Duration::from_secs(300),
                Duration::from_secs(30),
            ),
            simulator: SimulatorConfig {
                profile: sim_profile.to_string(),
                command_delay: self.duration(
                    &raw.simulator.command_delay,
                    "modem.simulator.command_delay",
                    Duration::from_millis(200),
                ),
                sms_delay: self.duration(
                    &raw.simulator.sms_delay,
                    "modem.simulator.sms_delay",
                    Duration::from_secs(1),
                ),
                control: raw
                    .simulator
                    .control
                    .as_ref()
                    .map(|s| self.path(s.get_ref())),
            },
        }
    }
}
