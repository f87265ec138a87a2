//! `[[silences]]` -> [`Silence`]: maintenance windows, one-off or recurring.

use super::*;

impl Validator<'_, '_> {
    /// `silences.every`: a whole number of days, longer than the window (in local wall time).
    fn recurrence(
        &mut self,
        every: &S<String>,
        tz: chrono_tz::Tz,
        starts: chrono::DateTime<chrono::Utc>,
        ends: chrono::DateTime<chrono::Utc>,
    ) -> Option<crate::silence::Recurrence> {
        let local_start = crate::schedule::utc_to_local(tz, starts);
        let local_end = crate::schedule::utc_to_local(tz, ends);
        let days = parse_duration(every.get_ref())
            .ok()
            .map(|d| d.as_secs())
            .filter(|s| *s > 0 && s % 86_400 == 0 && *s <= MAX_CONFIG_DURATION.as_secs())
            .and_then(|s| u32::try_from(s / 86_400).ok());
        let Some(days) = days else {
            self.r.error(
                span(every),
                format!(
                    "silences.every: {:?} is not a whole number of days up to a year; write e.g. \"1d\" or \"7d\"",
                    every.get_ref()
                ),
            );
            return None;
        };
        if local_end - local_start >= chrono::Duration::days(i64::from(days)) {
            self.r.error(
                span(every),
                "silences.every: the window must be shorter than its repeat period",
            );
            return None;
        }
        Some(crate::silence::Recurrence {
            every_days: days,
            time_zone: tz,
            local_start,
            local_end,
        })
    }

    /// `[[silences]]`: each window's times are RFC 3339 with an offset, or local wall times in
    /// its `time_zone` (default `daemon.time_zone`) converted by the schedule's DST rule.
    pub(super) fn silences(&mut self, raw: &[RawSilence], daemon: &DaemonConfig) -> Vec<Silence> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for s in raw {
            self.check_id(&s.id, "silences.id");
            if !seen.insert(s.id.get_ref().clone()) {
                self.r.error(
                    span(&s.id),
                    format!("silences: duplicate silence id {:?}", s.id.get_ref()),
                );
            }
            let tz = match &s.time_zone {
                None => daemon.time_zone,
                Some(z) => self.tz(z, "silences.time_zone").unwrap_or(daemon.time_zone),
            };
            let mut instant = |v: &S<String>, key: &str| {
                crate::schedule::parse_time(v.get_ref(), tz)
                    .map_err(|_| {
                        self.r.error(
                            span(v),
                            format!(
                                "{key}: {:?} is not a time; write RFC 3339 with an offset \
                                 (\"2026-11-29T02:00:00+01:00\") or a local \"2026-11-29T02:00\" \
                                 in the window's time_zone",
                                v.get_ref()
                            ),
                        )
                    })
                    .ok()
            };
            let starts = instant(&s.starts, "silences.starts");
            let ends = instant(&s.ends, "silences.ends");
            let mut matchers = Vec::new();
            let mut bad_matcher = false;
            for m in &s.matchers {
                match Matcher::parse(m.get_ref()) {
                    Ok(x) => matchers.push(x),
                    Err(e) => {
                        bad_matcher = true;
                        self.r.error(span(m), format!("silences.matchers: {e}"))
                    }
                }
            }
            let (Some(starts), Some(ends), false) = (starts, ends, bad_matcher) else {
                continue;
            };
            match Silence::new(
                SilenceId::Config(s.id.get_ref().clone()),
                s.service.clone(),
                matchers,
                starts,
                ends,
                s.comment.clone().unwrap_or_default(),
            ) {
                Ok(mut x) => {
                    if let Some(every) = &s.every {
                        x.repeat = self.recurrence(every, tz, starts, ends);
                        if x.repeat.is_none() {
                            continue;
                        }
                    }
                    out.push(x)
                }
                Err(e @ crate::silence::Error::EmptyWindow { .. }) => {
                    self.r.error(span(&s.ends), format!("silences.ends: {e}"))
                }
                Err(e) => self.r.error(span(&s.id), format!("silences: {e}")),
            }
        }
        out
    }
}
