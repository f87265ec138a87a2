//! What differs between the simulated modules: identity strings, boot banners, the DTMF and TTS
//! commands and their reports, voice-call URCs.
//!
//! Everything here is data taken from the vendors' AT manuals (SIMCom SIM800 Series AT Command
//! Manual V1.09, SIM7500/SIM7600 Series AT Command Manual V1.08–V2.00, Quectel EC25&EC21 AT
//! Commands Manual) and from captures published alongside open-source drivers. The state machine
//! in [`super::engine`] asks this module and never matches on vendor names itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which real module the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SimProfile {
    /// A plain 3GPP TS 27.005/27.007 modem: no banners, no TTS, no DTMF reports.
    #[default]
    Generic,
    /// SIMCom SIM800 (2G): `RDY`/`Call Ready`/`SMS Ready`, `AT+DDET` → `+DTMF: 1`.
    Sim800,
    /// SIMCom SIM7600 (LTE): `PB DONE`, `VOICE CALL: BEGIN/END`, `AT+CTTS`, `+RXDTMF: 1`.
    Sim7600,
    /// Quectel EC25 (LTE): `+QIND: SMS DONE`, `AT+QTTS`, `AT+QTONEDET` → `+QTONEDET: 49`.
    Ec25,
}

/// A profile name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown modem profile {0:?} (expected generic, sim800, sim7600 or ec25)")]
pub struct UnknownProfile(pub String);

impl FromStr for SimProfile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "generic" | "3gpp" => Ok(SimProfile::Generic),
            "sim800" | "sim800l" | "sim800c" => Ok(SimProfile::Sim800),
            "sim7600" | "sim7600e" | "sim7600g" => Ok(SimProfile::Sim7600),
            "ec25" | "eg25" | "quectel" => Ok(SimProfile::Ec25),
            _ => Err(UnknownProfile(s.to_string())),
        }
    }
}

impl fmt::Display for SimProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a profile reports a DTMF key heard during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfReport {
    /// No report at all (generic modems).
    None,
    /// SIM800 after `AT+DDET=1`: `+DTMF:1` (no space, as the manual prints it).
    Sim800,
    /// SIM7600 after `AT+DDET=1`: `+RXDTMF: 1`.
    Sim7600,
    /// EC25 after `AT+QTONEDET=1`: `+QTONEDET: 49` (the key's ASCII code).
    Quectel,
}

impl SimProfile {
    /// The lower-case name used on the command line and in the control protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            SimProfile::Generic => "generic",
            SimProfile::Sim800 => "sim800",
            SimProfile::Sim7600 => "sim7600",
            SimProfile::Ec25 => "ec25",
        }
    }

    /// `AT+CGMI` / `AT+GMI`.
    pub fn manufacturer(self) -> &'static str {
        match self {
            SimProfile::Generic => "pagerbox",
            SimProfile::Sim800 => "SIMCOM_Ltd",
            SimProfile::Sim7600 => "SIMCOM INCORPORATED",
            SimProfile::Ec25 => "Quectel",
        }
    }

    /// `AT+CGMM` / `AT+GMM`.
    pub fn model(self) -> &'static str {
        match self {
            SimProfile::Generic => "Simulated 3GPP modem",
            SimProfile::Sim800 => "SIMCOM_SIM800",
            SimProfile::Sim7600 => "SIMCOM_SIM7600E-H",
            SimProfile::Ec25 => "EC25",
        }
    }

    /// `AT+CGMR` / `AT+GMR` information text.
    pub fn revision(self) -> &'static str {
        match self {
            SimProfile::Generic => "pagerbox-sim 1.0",
            SimProfile::Sim800 => "Revision:1418B04SIM800C24",
            SimProfile::Sim7600 => "+CGMR: LE11B12SIM7600M22",
            SimProfile::Ec25 => "Revision: EC25EFAR06A06M4G",
        }
    }

    /// `ATI` information lines.
    pub fn identification(self, imei: &str) -> Vec<String> {
        match self {
            SimProfile::Generic => vec![format!("{} {}", self.manufacturer(), self.model())],
            SimProfile::Sim800 => vec!["SIM800 R14.18".to_string()],
            SimProfile::Sim7600 => vec![
                format!("Manufacturer: {}", self.manufacturer()),
                format!("Model: {}", self.model()),
                "Revision: LE11B12SIM7600M22".to_string(),
                "SVN: 01".to_string(),
                format!("IMEI: {imei}"),
                "+GCAP: +CGSM".to_string(),
            ],
            SimProfile::Ec25 => vec![
                "Quectel".to_string(),
                "EC25".to_string(),
                "Revision: EC25EFAR06A06M4G".to_string(),
            ],
        }
    }

    /// URCs sent after power-on before the SIM is read, in order.
    pub fn boot_banners(self) -> &'static [&'static str] {
        match self {
            SimProfile::Generic => &[],
            SimProfile::Sim800 => &["RDY", "+CFUN: 1"],
            SimProfile::Sim7600 => &["RDY"],
            SimProfile::Ec25 => &["RDY", "+CFUN: 1"],
        }
    }

    /// URCs sent once the SIM is ready (after `+CPIN: READY`), in order.
    pub fn ready_banners(self) -> &'static [&'static str] {
        match self {
            SimProfile::Generic => &[],
            SimProfile::Sim800 => &["Call Ready", "SMS Ready"],
            SimProfile::Sim7600 => &["SMS DONE", "PB DONE"],
            SimProfile::Ec25 => &["+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"],
        }
    }

    /// Whether the module reports SIM state changes with an unsolicited `+CPIN:`.
    pub fn reports_cpin(self) -> bool {
        !matches!(self, SimProfile::Generic)
    }

    /// Whether the module is LTE-capable (has `AT+CEREG`, reports an access technology).
    pub fn has_lte(self) -> bool {
        !matches!(self, SimProfile::Sim800)
    }

    /// The command that switches DTMF detection on, and how keys are then reported.
    pub fn dtmf(self) -> (Option<&'static str>, DtmfReport) {
        match self {
            SimProfile::Generic => (None, DtmfReport::None),
            SimProfile::Sim800 => (Some("+DDET"), DtmfReport::Sim800),
            SimProfile::Sim7600 => (Some("+DDET"), DtmfReport::Sim7600),
            SimProfile::Ec25 => (Some("+QTONEDET"), DtmfReport::Quectel),
        }
    }

    /// The text-to-speech command (`+CTTS` or `+QTTS`), if the module can speak.
    pub fn tts_command(self) -> Option<&'static str> {
        match self {
            SimProfile::Sim7600 => Some("+CTTS"),
            SimProfile::Ec25 => Some("+QTTS"),
            SimProfile::Generic | SimProfile::Sim800 => None,
        }
    }

    /// Whether voice calls are framed by `VOICE CALL: BEGIN` / `VOICE CALL: END: hhmmss`.
    pub fn voice_call_urcs(self) -> bool {
        matches!(self, SimProfile::Sim7600)
    }

    /// The command reading the SIM's ICCID, and the prefix of its answer (`None`: bare digits).
    pub fn iccid_commands(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            SimProfile::Generic => &[("+CCID", Some("+CCID: ")), ("+ICCID", Some("+ICCID: "))],
            SimProfile::Sim800 => &[("+CCID", None)],
            SimProfile::Sim7600 => &[("+CICCID", Some("+ICCID: ")), ("+CCID", Some("+CCID: "))],
            SimProfile::Ec25 => &[("+QCCID", Some("+QCCID: ")), ("+CCID", Some("+CCID: "))],
        }
    }

    /// Whether `AT+CMGR` on an empty slot answers a bare `OK` (SIM800) instead of
    /// `+CMS ERROR: 321`.
    pub fn empty_read_is_ok(self) -> bool {
        matches!(self, SimProfile::Sim800)
    }

    /// The access technology in `+COPS`/`+CREG` (0 GSM, 7 E-UTRAN); `None` where the module
    /// does not report one.
    pub fn access_technology(self) -> Option<u8> {
        if self.has_lte() {
            Some(7)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_round_trip() {
        for p in [
            SimProfile::Generic,
            SimProfile::Sim800,
            SimProfile::Sim7600,
            SimProfile::Ec25,
        ] {
            assert_eq!(p.as_str().parse::<SimProfile>(), Ok(p));
        }
        assert_eq!("SIM-7600".parse::<SimProfile>(), Ok(SimProfile::Sim7600));
        assert!("huawei".parse::<SimProfile>().is_err());
    }

    #[test]
    fn dtmf_reporting_matches_the_manuals() {
        assert_eq!(
            SimProfile::Sim800.dtmf(),
            (Some("+DDET"), DtmfReport::Sim800)
        );
        assert_eq!(SimProfile::Ec25.dtmf().0, Some("+QTONEDET"));
        assert_eq!(SimProfile::Generic.dtmf().1, DtmfReport::None);
    }
}
