//! `[[policies]]` and `[[routes]]` -> [`Policy`] and [`Route`]: who is paged for what.

use std::collections::BTreeMap;

use super::*;

impl Validator<'_, '_> {
    pub(super) fn policies(
        &mut self,
        raw: &[RawPolicy],
        users: &HashSet<&str>,
        schedules: &HashSet<&str>,
    ) -> Vec<Policy> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in raw {
            self.check_id(&p.id, "policies.id");
            if !seen.insert(p.id.get_ref().clone()) {
                self.r.error(
                    span(&p.id),
                    format!("policies: duplicate policy id {:?}", p.id.get_ref()),
                );
            }
            if p.steps.is_empty() {
                self.r.error(
                    span(&p.id),
                    format!("policies: policy {:?} has no steps", p.id.get_ref()),
                );
            }
            let mut steps = Vec::new();
            for st in &p.steps {
                for u in &st.users {
                    self.user_ref(u, "policies.steps.users", users);
                }
                for s in &st.schedules {
                    if !schedules.contains(s.get_ref().as_str()) {
                        self.r.error(
                            span(s),
                            format!(
                                "policies.steps.schedules: unknown schedule {:?}",
                                s.get_ref()
                            ),
                        );
                    }
                }
                if st.users.is_empty() && st.schedules.is_empty() {
                    self.r.error(
                        span(&p.id),
                        format!(
                            "policies: a step of policy {:?} names no users and no schedules",
                            p.id.get_ref()
                        ),
                    );
                }
                steps.push(Step {
                    users: st.users.iter().map(|u| u.get_ref().clone()).collect(),
                    schedules: st.schedules.iter().map(|s| s.get_ref().clone()).collect(),
                    wait: self.page_delay(
                        &st.wait,
                        "policies.steps.wait",
                        Duration::from_secs(600),
                    ),
                });
            }
            out.push(Policy {
                id: p.id.get_ref().clone(),
                name: p.name.clone().unwrap_or_else(|| p.id.get_ref().clone()),
                repeat: self.int(&p.repeat, "policies.repeat", 1..=100, 1),
                steps,
            });
        }
        out
    }

    pub(super) fn routes(
        &mut self,
        raw: &[RawRoute],
        policies: &HashSet<&str>,
        daemon: &DaemonConfig,
    ) -> Vec<Route> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut default_seen: Option<Range<usize>> = None;
        for r in raw {
            self.check_id(&r.id, "routes.id");
            if !seen.insert(r.id.get_ref().clone()) {
                self.r.error(
                    span(&r.id),
                    format!("routes: duplicate route id {:?}", r.id.get_ref()),
                );
            }
            if !policies.contains(r.policy.get_ref().as_str()) {
                self.r.error(
                    span(&r.policy),
                    format!("routes.policy: unknown policy {:?}", r.policy.get_ref()),
                );
            }
            if r.channels.as_ref().is_some_and(Vec::is_empty) {
                // Like a config with no routes at all: `check` and a reload refuse it, a box
                // that starts with it runs (and says the route pages nobody).
                self.r.impaired(
                    span(&r.id),
                    format!(
                        "routes.channels: route {:?} allows no channel and would page nobody; leave `channels` out to allow them all",
                        r.id.get_ref()
                    ),
                );
            }
            if default_seen.is_some() {
                self.r.error(span(&r.id), format!("routes: route {:?} comes after the default route (the one without `match`) and can never match", r.id.get_ref()));
            }
            let matcher = r.matcher.as_ref().map(|m| self.route_match(m.get_ref()));
            if matcher.is_none() {
                default_seen = Some(r.id.span());
            }
            let urgency = self.route_urgency(r.urgency.as_ref());
            let stakeholders = self.stakeholders(&r.stakeholders);
            let _ = daemon;
            out.push(Route {
                id: r.id.get_ref().clone(),
                policy: r.policy.get_ref().clone(),
                matcher,
                ack_timeout: r.ack_timeout.as_ref().map(|_| {
                    self.duration(
                        &r.ack_timeout,
                        "routes.ack_timeout",
                        Duration::from_secs(1800),
                    )
                }),
                pre_page_delay: self.page_delay(
                    &r.pre_page_delay,
                    "routes.pre_page_delay",
                    Duration::ZERO,
                ),
                urgency,
                runbook: r.runbook.clone(),
                stakeholders,
                missed_call_ack: r.missed_call_ack,
                channels: r.channels.as_ref().map(|cs| {
                    cs.iter()
                        .filter_map(|c| self.channel(c, "routes.channels"))
                        .collect()
                }),
            });
        }
        if let (Some(last), None) = (raw.last(), &default_seen) {
            // Allowed (a box may page only for what it was meant to), but said: an alert no
            // route matches is accepted and pages nobody.
            self.r.warning(
                span(&last.id),
                "routes: no default route (one without `match`): an alert that no route matches \
                 is recorded as unrouted and pages nobody (flagged in /healthz and on the status page)",
            );
        }
        out
    }

    /// `routes.match`: each severity must be one the daemon knows.
    fn route_match(&mut self, m: &RawMatch) -> RouteMatch {
        let mut severity = Vec::new();
        for s in &m.severity {
            match Severity::from_str(s.get_ref()) {
                Ok(x) => severity.push(x),
                Err(e) => self.r.error(span(s), format!("routes.match.severity: {e}")),
            }
        }
        RouteMatch {
            service: m.service.clone(),
            severity,
            source: m.source.clone(),
            routing_key: m.routing_key.clone(),
        }
    }

    /// `routes.urgency`: severity name -> urgency.
    fn route_urgency(&mut self, raw: Option<&BTreeMap<String, S<String>>>) -> UrgencyMap {
        let mut urgency = UrgencyMap::default();
        if let Some(map) = raw {
            for (k, v) in map {
                let Ok(sev) = Severity::from_str(k) else {
                    self.r.error(span(v), format!("routes.urgency: {k:?} is not a severity (critical, error, warning, info)"));
                    continue;
                };
                match Urgency::from_str(v.get_ref()) {
                    Ok(u) => urgency.set(sev, u),
                    Err(e) => self.r.error(span(v), format!("routes.urgency.{k}: {e}")),
                }
            }
        }
        urgency
    }

    /// `routes.stakeholders`: each an E.164 number or an email address.
    fn stakeholders(&mut self, raw: &[S<String>]) -> Vec<String> {
        let mut stakeholders = Vec::new();
        for s in raw {
            let v = s.get_ref();
            if let Some(p) = PhoneNumber::parse_e164(v) {
                stakeholders.push(p.to_string());
            } else if v.parse::<lettre::Address>().is_ok() {
                stakeholders.push(v.clone());
            } else {
                self.r.error(span(s), format!("routes.stakeholders: {v:?} is neither an E.164 number nor an email address"));
            }
        }
        stakeholders
    }
}
