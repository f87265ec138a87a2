//! Fault points for the end-to-end failure tests.
//!
//! A failure path that is never exercised does not work: the tests in `tests/` make the real
//! binary's tasks panic, its store answer "busy" or fail with an I/O error, and its modem flood
//! the event queue, then check that every accepted page still goes out. They do it through named
//! fault points placed in the code (`fault::armed("store.busy")`), armed at start from the
//! `PAGERBOX_FAULTS` environment variable or at run time with `POST /v1/faults`.
//!
//! The points exist only in builds with the `fault-injection` cargo feature, which the test
//! command enables and release builds never do: without it [`armed`] is a constant `false` the
//! compiler removes, [`arm`] does nothing, and the HTTP route is not registered.
//!
//! A fault is armed for a number of hits, for a span of time, or both (whichever runs out
//! first); with neither it stays armed until disarmed. Syntax of `PAGERBOX_FAULTS`: a comma list
//! of `NAME`, `NAME=5s` (for a span), `NAME*3` (for three hits), `NAME*3=5s`.

use std::time::Duration;

/// How long and how often a fault fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Arming {
    /// Fires for this long after arming (`None`: no time limit).
    #[serde(default, with = "humantime_serde_opt")]
    pub r#for: Option<Duration>,
    /// Fires this many times (`None`: no count limit).
    #[serde(default)]
    pub times: Option<u32>,
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Parses one `PAGERBOX_FAULTS` entry: `NAME`, `NAME=5s`, `NAME*3`, `NAME*3=5s`.
pub fn parse_entry(entry: &str) -> Result<(String, Arming), String> {
    let entry = entry.trim();
    let (head, span) = match entry.split_once('=') {
        Some((h, s)) => (
            h,
            Some(humantime::parse_duration(s.trim()).map_err(|e| format!("{entry}: {e}"))?),
        ),
        None => (entry, None),
    };
    let (name, times) = match head.split_once('*') {
        Some((n, t)) => (
            n,
            Some(
                t.trim()
                    .parse::<u32>()
                    .map_err(|e| format!("{entry}: {e}"))?,
            ),
        ),
        None => (head, None),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{entry}: no fault name"));
    }
    Ok((name.to_string(), Arming { r#for: span, times }))
}

#[cfg(feature = "fault-injection")]
mod imp {
    use super::Arming;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;

    struct Armed {
        until: Option<Instant>,
        left: Option<u32>,
    }

    static FAULTS: Mutex<Option<HashMap<String, Armed>>> = Mutex::new(None);

    pub fn arm(name: &str, arming: Arming) {
        let mut g = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert_with(HashMap::new).insert(
            name.to_string(),
            Armed {
                // Checked: `for` comes from a request; past the end of `Instant` means never.
                until: arming.r#for.and_then(|d| Instant::now().checked_add(d)),
                left: arming.times,
            },
        );
        tracing::warn!(fault = name, ?arming, "fault point armed");
    }

    pub fn disarm(name: &str) {
        let mut g = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = g.as_mut() {
            m.remove(name);
        }
    }

    pub fn armed(name: &str) -> bool {
        let mut g = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
        let Some(m) = g.as_mut() else { return false };
        let Some(a) = m.get_mut(name) else {
            return false;
        };
        if a.until.is_some_and(|u| Instant::now() >= u) {
            m.remove(name);
            return false;
        }
        if let Some(left) = a.left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                m.remove(name);
            }
        }
        tracing::warn!(fault = name, "fault point fired");
        true
    }
}

/// Whether the fault point `name` fires now (counts one hit). Always `false` without the
/// `fault-injection` feature.
#[inline]
pub fn armed(_name: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        imp::armed(_name)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
    }
}

/// Arms the fault point `name`. Does nothing without the `fault-injection` feature.
pub fn arm(_name: &str, _arming: Arming) {
    #[cfg(feature = "fault-injection")]
    imp::arm(_name, _arming);
}

/// Disarms the fault point `name`. Does nothing without the `fault-injection` feature.
pub fn disarm(_name: &str) {
    #[cfg(feature = "fault-injection")]
    imp::disarm(_name);
}

/// Whether this build has fault points at all.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

/// Arms the faults listed in `PAGERBOX_FAULTS` (see the module docs). Logs and ignores a bad
/// entry; does nothing without the `fault-injection` feature.
pub fn arm_from_env() {
    if !ENABLED {
        return;
    }
    let Ok(list) = std::env::var("PAGERBOX_FAULTS") else {
        return;
    };
    for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
        match parse_entry(entry) {
            Ok((name, arming)) => arm(&name, arming),
            Err(e) => tracing::error!(error = %e, "PAGERBOX_FAULTS: bad entry"),
        }
    }
}

/// A request to arm or disarm a fault point (`POST /v1/faults`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FaultRequest {
    /// The fault point's name.
    pub name: String,
    /// True disarms instead of arming.
    #[serde(default)]
    pub disarm: bool,
    #[serde(flatten)]
    pub arming: Arming,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse() {
        assert_eq!(
            parse_entry("store.busy").unwrap(),
            ("store.busy".into(), Arming::default())
        );
        assert_eq!(
            parse_entry("store.busy=5s").unwrap(),
            (
                "store.busy".into(),
                Arming {
                    r#for: Some(Duration::from_secs(5)),
                    times: None
                }
            )
        );
        assert_eq!(
            parse_entry(" task.panic.engine*1 ").unwrap(),
            (
                "task.panic.engine".into(),
                Arming {
                    r#for: None,
                    times: Some(1)
                }
            )
        );
        assert!(parse_entry("=5s").is_err());
        assert!(parse_entry("x*y").is_err());
        assert!(parse_entry("x=soon").is_err());
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn counted_fault_fires_that_many_times() {
        arm(
            "unit.counted",
            Arming {
                r#for: None,
                times: Some(2),
            },
        );
        assert!(armed("unit.counted"));
        assert!(armed("unit.counted"));
        assert!(!armed("unit.counted"));
    }

    #[cfg(not(feature = "fault-injection"))]
    #[test]
    fn without_the_feature_nothing_fires() {
        arm("unit.never", Arming::default());
        assert!(!armed("unit.never"));
    }
}
