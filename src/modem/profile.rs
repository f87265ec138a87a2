//! Modem profiles: what differs between a plain 3GPP modem, SIMCom SIM800, SIMCom SIM7600 and
//! Quectel EC25/EG25, in one place.
//!
//! The driver speaks standard TS 27.005/27.007 everywhere it can and asks the profile only for
//! the vendor parts: how to hang up, whether and how to speak (TTS), how DTMF detection is
//! switched on, whether LTE registration (`+CEREG`) exists. A generic modem can still page: a
//! ringing call is a page even when nothing can be spoken or heard.

use std::fmt;
use std::str::FromStr;

/// The profile asked for in config: a fixed one, or `Auto` to detect from `AT+CGMI`/`AT+CGMM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProfileChoice {
    /// Detect from the manufacturer and model strings.
    #[default]
    Auto,
    /// Plain 3GPP.
    Generic,
    /// SIMCom SIM800.
    Sim800,
    /// SIMCom SIM7600.
    Sim7600,
    /// Quectel EC25/EG25.
    Ec25,
}

impl ProfileChoice {
    /// The fixed profile, `None` for `Auto`.
    pub fn fixed(self) -> Option<Profile> {
        match self {
            Self::Auto => None,
            Self::Generic => Some(Profile::Generic),
            Self::Sim800 => Some(Profile::Sim800),
            Self::Sim7600 => Some(Profile::Sim7600),
            Self::Ec25 => Some(Profile::Ec25),
        }
    }
}

impl From<Profile> for ProfileChoice {
    fn from(p: Profile) -> Self {
        match p {
            Profile::Generic => Self::Generic,
            Profile::Sim800 => Self::Sim800,
            Profile::Sim7600 => Self::Sim7600,
            Profile::Ec25 => Self::Ec25,
        }
    }
}

impl FromStr for ProfileChoice {
    type Err = UnknownProfile;

    /// `auto`, `generic`, `sim800`, `sim7600`, `ec25` (also `eg25`), case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        s.parse::<Profile>().map(Self::from)
    }
}

impl fmt::Display for ProfileChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fixed() {
            None => f.write_str("auto"),
            Some(p) => f.write_str(p.as_str()),
        }
    }
}

/// A profile name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown modem profile {0:?} (expected auto, generic, sim800, sim7600 or ec25)")]
pub struct UnknownProfile(pub String);

/// A modem family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Any TS 27.005/27.007 modem: SMS in PDU mode, `ATD`, `ATH`; no TTS, no DTMF reports.
    Generic,
    /// SIMCom SIM800 (2G): `AT+DDET` for DTMF (`+DTMF:`), no TTS assumed (firmware dependent).
    Sim800,
    /// SIMCom SIM7600 (LTE): `AT+CTTS` speaks, `+RXDTMF:` reports keys.
    Sim7600,
    /// Quectel EC25/EG25 (LTE): `AT+QTTS` speaks, `AT+QTONEDET` reports keys (`+QTONEDET:`).
    Ec25,
}

impl Profile {
    /// Picks a profile from the `AT+CGMI`/`AT+CGMM`/`ATI` answers; `Generic` when unknown.
    pub fn detect(manufacturer: &str, model: &str) -> Self {
        let m = format!("{manufacturer} {model}").to_ascii_uppercase();
        if m.contains("SIM7600") || m.contains("SIM7500") || m.contains("SIM7000") {
            Self::Sim7600
        } else if m.contains("SIM800") || m.contains("SIM900") {
            Self::Sim800
        } else if m.contains("EC25")
            || m.contains("EG25")
            || m.contains("EC21")
            || m.contains("EG21")
        {
            Self::Ec25
        } else {
            Self::Generic
        }
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Sim800 => "sim800",
            Self::Sim7600 => "sim7600",
            Self::Ec25 => "ec25",
        }
    }

    /// How to end a call (also rejects a ringing one). `AT+CHUP` ends voice calls on SIMCom and
    /// Quectel; plain `ATH` is the portable choice.
    pub fn hang_up_command(self) -> &'static str {
        match self {
            Self::Generic => "ATH",
            Self::Sim800 | Self::Sim7600 | Self::Ec25 => "AT+CHUP",
        }
    }

    /// The command that turns DTMF detection on, if one is needed.
    pub fn dtmf_enable_command(self) -> Option<&'static str> {
        match self {
            // SIM7600 firmware differs on whether +RXDTMF needs AT+DDET; asking is harmless
            // (an ERROR is ignored) and makes detection certain where it is needed.
            Self::Sim800 | Self::Sim7600 => Some("AT+DDET=1"),
            Self::Ec25 => Some("AT+QTONEDET=1"),
            Self::Generic => None,
        }
    }

    /// Whether keys pressed by the callee are reported.
    pub fn reports_dtmf(self) -> bool {
        !matches!(self, Self::Generic)
    }

    /// The command that speaks `text` into the call, if the modem has TTS. Text is reduced to
    /// printable ASCII without quotes (mode 2 is ASCII on both vendors).
    pub fn speak_command(self, text: &str) -> Option<String> {
        let clean: String = text
            .chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                ' '..='~' => c,
                _ => ' ',
            })
            .collect();
        match self {
            Self::Sim7600 => Some(format!("AT+CTTS=2,\"{clean}\"")),
            Self::Ec25 => Some(format!("AT+QTTS=2,\"{clean}\"")),
            Self::Sim800 | Self::Generic => None,
        }
    }

    /// Whether the modem has LTE registration (`AT+CEREG?`).
    pub fn has_lte(self) -> bool {
        matches!(self, Self::Sim7600 | Self::Ec25 | Self::Generic)
    }

    /// The soft reset: full functionality with a reboot (TS 27.007 `+CFUN=1,1`, all four).
    pub fn reset_command(self) -> &'static str {
        "AT+CFUN=1,1"
    }
}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "generic" => Ok(Self::Generic),
            "sim800" => Ok(Self::Sim800),
            "sim7600" => Ok(Self::Sim7600),
            "ec25" | "eg25" => Ok(Self::Ec25),
            _ => Err(UnknownProfile(s.to_string())),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_from_identification_strings() {
        assert_eq!(
            Profile::detect("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H"),
            Profile::Sim7600
        );
        assert_eq!(
            Profile::detect("SIMCOM_Ltd", "SIMCOM_SIM800L"),
            Profile::Sim800
        );
        assert_eq!(Profile::detect("Quectel", "EC25"), Profile::Ec25);
        assert_eq!(Profile::detect("Quectel", "EG25-G"), Profile::Ec25);
        assert_eq!(Profile::detect("huawei", "E3372"), Profile::Generic);
    }

    #[test]
    fn parses_config_names() {
        assert_eq!("auto".parse::<ProfileChoice>(), Ok(ProfileChoice::Auto));
        assert_eq!("SIM800".parse::<ProfileChoice>(), Ok(ProfileChoice::Sim800));
        assert_eq!("eg25".parse::<ProfileChoice>(), Ok(ProfileChoice::Ec25));
        assert!("nokia".parse::<ProfileChoice>().is_err());
        assert_eq!(ProfileChoice::Sim7600.to_string(), "sim7600");
    }

    #[test]
    fn speech_is_ascii_without_quotes() {
        assert_eq!(
            Profile::Sim7600
                .speak_command("Disk \"full\" on db1 – ack 1")
                .as_deref(),
            Some("AT+CTTS=2,\"Disk 'full' on db1   ack 1\"")
        );
        assert!(Profile::Generic.speak_command("x").is_none());
        assert!(Profile::Ec25
            .speak_command("x")
            .unwrap()
            .starts_with("AT+QTTS=2,"));
    }
}
