//! `[[heartbeats]]` -> heartbeats: a check that pages when a sender goes quiet.

use super::*;

impl Validator<'_, '_> {
    /// `[[heartbeats]]`: ids unique, the route must exist, interval at least a second.
    pub(super) fn heartbeats(
        &mut self,
        raw: &[RawHeartbeat],
        routes: &[Route],
    ) -> Vec<crate::config::heartbeat::Heartbeat> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for h in raw {
            self.check_id(&h.id, "heartbeats.id");
            if !seen.insert(h.id.get_ref().clone()) {
                self.r.error(
                    span(&h.id),
                    format!("heartbeats: duplicate heartbeat id {:?}", h.id.get_ref()),
                );
            }
            if !routes.iter().any(|r| &r.id == h.route.get_ref()) {
                self.r.error(
                    span(&h.route),
                    format!(
                        "heartbeats.route: unknown route {:?}; name the id of a [[routes]] entry",
                        h.route.get_ref()
                    ),
                );
            }
            let interval = self.duration(
                &Some(h.interval.clone()),
                "heartbeats.interval",
                Duration::from_secs(60),
            );
            if interval < Duration::from_secs(1) {
                self.r.error(
                    span(&h.interval),
                    "heartbeats.interval: must be at least 1s".to_string(),
                );
            }
            let grace = self.duration(
                &h.grace,
                "heartbeats.grace",
                crate::config::heartbeat::default_grace(interval),
            );
            let severity = match &h.severity {
                None => Severity::Critical,
                Some(s) => Severity::from_str(s.get_ref()).unwrap_or_else(|e| {
                    self.r.error(span(s), format!("heartbeats.severity: {e}"));
                    Severity::Critical
                }),
            };
            out.push(crate::config::heartbeat::Heartbeat {
                id: h.id.get_ref().clone(),
                interval,
                grace,
                route: h.route.get_ref().clone(),
                summary: h.summary.clone(),
                severity,
                service: h.service.clone(),
            });
        }
        out
    }
}
