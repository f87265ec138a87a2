//! `[daemon]` -> [`DaemonConfig`]: paths, time zone, business hours.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn daemon(&mut self, raw: &RawDaemon) -> DaemonConfig {
        let state_dir = raw
            .state_dir
            .as_ref()
            .map(|s| self.path(s.get_ref()))
            .unwrap_or_else(|| PathBuf::from("/var/lib/pagerbox"));
        let time_zone = raw
            .time_zone
            .as_ref()
            .and_then(|s| self.tz(s, "daemon.time_zone"))
            .unwrap_or(chrono_tz::UTC);
        let country_code = match &raw.country_code {
            None => "1".to_string(),
            Some(s) => {
                let cc = s.get_ref().trim_start_matches('+');
                if (1..=3).contains(&cc.len())
                    && cc.chars().all(|c| c.is_ascii_digit())
                    && !cc.starts_with('0')
                {
                    cc.to_string()
                } else {
                    self.r.error(
                        span(s),
                        format!(
                            "daemon.country_code: {:?} is not a country calling code; write e.g. \"49\"",
                            s.get_ref()
                        ),
                    );
                    "1".to_string()
                }
            }
        };
        let business_hours = self.business_hours(raw.business_hours.as_deref());
        DaemonConfig {
            state_dir,
            time_zone,
            country_code,
            business_hours,
        }
    }

    /// `[daemon] business_hours`: schedule restriction windows; each bad one is reported.
    fn business_hours(&mut self, raw: Option<&[S<String>]>) -> Vec<crate::schedule::Restriction> {
        let Some(raw) = raw else {
            return vec![super::DEFAULT_BUSINESS_HOURS
                .parse()
                .expect("the default business hours parse")];
        };
        let mut out = Vec::new();
        for s in raw {
            match s.get_ref().parse::<crate::schedule::Restriction>() {
                Ok(r) => out.push(r),
                Err(e) => self.r.error(span(s), format!("daemon.business_hours: {e}")),
            }
        }
        out
    }
}
