//! Monitoring-system states for `pagerbox send --state/--notification-type`: what a Nagios,
//! Icinga or Zabbix notification asks pagerbox to do. Pure, so the mapping the contrib/ commands
//! rely on is tested here and documented in one place.
//!
//! States: OK, UP (and RECOVERY, RESOLVED) resolve; CRITICAL, DOWN, UNREACHABLE trigger
//! `critical`; WARNING triggers `warning`; UNKNOWN triggers `error` (a check that cannot run
//! leaves the service unwatched, which should wake someone at the same urgency as an error).
//! Notification types: PROBLEM follows the state; RECOVERY resolves; ACKNOWLEDGEMENT
//! acknowledges (someone took it in the monitoring UI); flapping, downtime and custom
//! notifications send nothing.

use crate::incident::Severity;

/// What a notification asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send with this action (`trigger`, `acknowledge`, `resolve`) and, for a trigger from a
    /// known state, this severity (`None`: keep `--severity`).
    Send {
        action: &'static str,
        severity: Option<Severity>,
    },
    /// Nothing to send (flapping, downtime, custom notifications), with the reason.
    Ignore(String),
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Maps a monitoring state and notification type (either may be absent) to a decision.
/// Fails on a value it does not know, naming it, rather than guessing.
pub fn decide(state: Option<&str>, notification_type: Option<&str>) -> Result<Decision, String> {
    if let Some(t) = notification_type {
        match norm(t).as_str() {
            "" | "problem" => {}
            "recovery" => {
                return Ok(Decision::Send {
                    action: "resolve",
                    severity: None,
                })
            }
            "acknowledgement" | "acknowledgment" => {
                return Ok(Decision::Send {
                    action: "acknowledge",
                    severity: None,
                })
            }
            "flappingstart" | "flappingstop" | "flappingend" | "flappingdisabled"
            | "downtimestart" | "downtimeend" | "downtimecancelled" | "downtimeremoved"
            | "custom" => return Ok(Decision::Ignore(format!("{t} notification"))),
            _ => return Err(format!("unknown notification type {t:?}")),
        }
    }
    let Some(s) = state else {
        return Ok(Decision::Send {
            action: "trigger",
            severity: None,
        });
    };
    let (action, severity) = match norm(s).as_str() {
        "ok" | "up" | "recovery" | "resolved" => ("resolve", None),
        "critical" | "down" | "unreachable" => ("trigger", Some(Severity::Critical)),
        "warning" => ("trigger", Some(Severity::Warning)),
        "unknown" => ("trigger", Some(Severity::Error)),
        "problem" | "" => ("trigger", None),
        _ => return Err(format!("unknown state {s:?}")),
    };
    Ok(Decision::Send { action, severity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(action: &'static str, severity: Option<Severity>) -> Decision {
        Decision::Send { action, severity }
    }

    #[test]
    fn nagios_service_states() {
        let p = Some("PROBLEM");
        assert_eq!(
            decide(Some("CRITICAL"), p),
            Ok(send("trigger", Some(Severity::Critical)))
        );
        assert_eq!(
            decide(Some("WARNING"), p),
            Ok(send("trigger", Some(Severity::Warning)))
        );
        assert_eq!(
            decide(Some("UNKNOWN"), p),
            Ok(send("trigger", Some(Severity::Error)))
        );
        assert_eq!(
            decide(Some("OK"), Some("RECOVERY")),
            Ok(send("resolve", None))
        );
    }

    #[test]
    fn host_states_and_icinga_spelling() {
        assert_eq!(
            decide(Some("DOWN"), Some("PROBLEM")),
            Ok(send("trigger", Some(Severity::Critical)))
        );
        assert_eq!(
            decide(Some("UNREACHABLE"), None),
            Ok(send("trigger", Some(Severity::Critical)))
        );
        assert_eq!(
            decide(Some("Up"), Some("Recovery")),
            Ok(send("resolve", None))
        );
        assert_eq!(
            decide(Some("CRITICAL"), Some("ACKNOWLEDGEMENT")),
            Ok(send("acknowledge", None))
        );
    }

    #[test]
    fn flapping_and_downtime_send_nothing() {
        for t in [
            "FLAPPINGSTART",
            "DOWNTIMESTART",
            "DowntimeRemoved",
            "CUSTOM",
        ] {
            assert!(
                matches!(decide(Some("CRITICAL"), Some(t)), Ok(Decision::Ignore(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn unknown_values_are_errors_that_name_them() {
        assert!(decide(Some("PURPLE"), None).unwrap_err().contains("PURPLE"));
        assert!(decide(None, Some("BOOM")).unwrap_err().contains("BOOM"));
        assert_eq!(decide(None, None), Ok(send("trigger", None)));
    }
}
