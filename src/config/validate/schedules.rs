//! `[[schedules]]` -> [`Schedule`]: layers, restrictions and overrides.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn schedules(
        &mut self,
        raw: &[RawSchedule],
        users: &HashSet<&str>,
        daemon: &DaemonConfig,
    ) -> Vec<Schedule> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for s in raw {
            self.check_id(&s.id, "schedules.id");
            if !seen.insert(s.id.get_ref().clone()) {
                self.r.error(
                    span(&s.id),
                    format!("schedules: duplicate schedule id {:?}", s.id.get_ref()),
                );
            }
            let tz = match &s.time_zone {
                None => daemon.time_zone,
                Some(z) => self
                    .tz(z, "schedules.time_zone")
                    .unwrap_or(daemon.time_zone),
            };
            if s.layers.is_empty() {
                self.r.error(
                    span(&s.id),
                    format!("schedules: schedule {:?} has no layers", s.id.get_ref()),
                );
            }
            let layers = s
                .layers
                .iter()
                .enumerate()
                .filter_map(|(i, l)| self.layer(i, l, users))
                .collect();
            let overrides = self.overrides(&s.overrides, tz, users);
            out.push(Schedule {
                id: s.id.get_ref().clone(),
                name: s.name.clone().unwrap_or_else(|| s.id.get_ref().clone()),
                tz,
                layers,
                overrides,
            });
        }
        out
    }

    /// One `[[schedules.layers]]`; `None` when its shift or start is unreadable (reported).
    fn layer(&mut self, i: usize, l: &RawLayer, users: &HashSet<&str>) -> Option<Layer> {
        for u in l.users.get_ref() {
            self.user_ref(u, "schedules.layers.users", users);
        }
        if l.users.get_ref().is_empty() {
            self.r.error(
                span(&l.users),
                "schedules.layers.users: a layer needs at least one user",
            );
        }
        let shift = match ShiftLength::from_str(l.shift.get_ref()) {
            Ok(x) => Some(x),
            Err(e) => {
                self.r
                    .error(span(&l.shift), format!("schedules.layers.shift: {e}"));
                None
            }
        };
        let start = self.local_time(&l.start, "schedules.layers.start");
        let mut restrictions = Vec::new();
        for r in &l.restrictions {
            match Restriction::from_str(r.get_ref()) {
                Ok(x) => restrictions.push(x),
                Err(e) => self
                    .r
                    .error(span(r), format!("schedules.layers.restrictions: {e}")),
            }
        }
        let (Some(shift), Some(start)) = (shift, start) else {
            return None;
        };
        Some(Layer {
            // Shown as "layer 1": the word comes with the display.
            name: l.name.clone().unwrap_or_else(|| (i + 1).to_string()),
            users: l
                .users
                .get_ref()
                .iter()
                .map(|u| u.get_ref().clone())
                .collect(),
            shift,
            start,
            restrictions,
        })
    }

    /// `[[schedules.overrides]]`: local wall times in the schedule's zone, `until` after `from`.
    fn overrides(
        &mut self,
        raw: &[RawOverride],
        tz: chrono_tz::Tz,
        users: &HashSet<&str>,
    ) -> Vec<Override> {
        let mut overrides = Vec::new();
        for o in raw {
            self.user_ref(&o.user, "schedules.overrides.user", users);
            let from = self.local_time(&o.from, "schedules.overrides.from");
            let until = self.local_time(&o.until, "schedules.overrides.until");
            if let (Some(from), Some(until)) = (from, until) {
                let from = crate::schedule::local_to_utc(tz, from);
                let until = crate::schedule::local_to_utc(tz, until);
                if until <= from {
                    self.r.error(
                        span(&o.until),
                        "schedules.overrides.until: must be after `from`",
                    );
                }
                overrides.push(Override {
                    id: None,
                    user: o.user.get_ref().clone(),
                    from,
                    until,
                    source: OverrideSource::Config,
                });
            }
        }
        overrides
    }
}
