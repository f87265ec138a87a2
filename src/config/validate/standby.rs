//! `[standby]` and routes' `mode` / `standby = {...}` -> [`crate::standby::StandbyConfig`].
//!
//! A child of the validator so it can use its helpers; kept in its own file so standby touches
//! the shared validator in one place only. A route's own `standby` keys win over `[standby]`;
//! the key files are read here, so a missing key fails `pagerbox check` (and a SIGHUP reload,
//! which is how a rotated key is picked up) at its line.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{span, RawRoute, RawStandby, Validator, S};
use crate::standby::{
    Settings, StandbyConfig, Upstream, DEFAULT_GRACE, DEFAULT_MAX_FAILURES, DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT, OPSGENIE_API, PAGERDUTY_API, PAGERDUTY_EVENTS,
};

impl Validator<'_, '_> {
    pub(super) fn standby(
        &mut self,
        defaults: Option<&S<RawStandby>>,
        routes: &[RawRoute],
    ) -> StandbyConfig {
        let empty = RawStandby::default();
        let base = defaults.map(|d| d.get_ref()).unwrap_or(&empty);
        let whole_box = base.enabled.as_ref().is_some_and(|e| *e.get_ref());
        let mut out = BTreeMap::new();
        for r in routes {
            if let Some(e) = r
                .standby
                .as_ref()
                .and_then(|s| s.get_ref().enabled.as_ref())
            {
                self.r.error(
                    span(e),
                    "routes.standby.enabled: only [standby] has `enabled`; use the route's mode = \"active\" or \"standby\"",
                );
            }
            let on = match r.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
                Some((_, "standby")) => true,
                Some((m, "active")) => {
                    if r.standby.is_some() {
                        self.r.error(
                            span(m),
                            "routes.mode: \"active\" with a standby table; remove one of them",
                        );
                    }
                    false
                }
                Some((m, other)) => {
                    self.r.error(
                        span(m),
                        format!("routes.mode: {other:?} is not \"active\" or \"standby\""),
                    );
                    false
                }
                None => whole_box || r.standby.is_some(),
            };
            if !on {
                continue;
            }
            let own = r.standby.as_ref().map(|s| s.get_ref()).unwrap_or(&empty);
            let at = r
                .standby
                .as_ref()
                .map(|s| s.span())
                .or_else(|| r.mode.as_ref().map(|m| m.span()))
                .or_else(|| defaults.map(|d| d.span()))
                .unwrap_or_else(|| r.id.span());
            if let Some(s) = self.standby_settings(own, base, at) {
                out.insert(r.id.get_ref().clone(), s);
            }
        }
        StandbyConfig { routes: out }
    }

    fn standby_settings(
        &mut self,
        own: &RawStandby,
        base: &RawStandby,
        at: std::ops::Range<usize>,
    ) -> Option<Settings> {
        fn pick<'a, T>(a: &'a Option<T>, b: &'a Option<T>) -> &'a Option<T> {
            if a.is_some() {
                a
            } else {
                b
            }
        }
        let upstream = match pick(&own.upstream, &base.upstream) {
            None => {
                self.r.error(
                    Some(at.clone()),
                    "standby.upstream: a standby route needs an upstream: \"pagerduty\" or \"opsgenie\"",
                );
                None
            }
            Some(u) => match Upstream::from_config(u.get_ref()) {
                Some(u) => Some(u),
                None => {
                    self.r.error(
                        span(u),
                        format!(
                            "standby.upstream: {:?} is not \"pagerduty\" or \"opsgenie\"",
                            u.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let url = |v: &Option<S<String>>, key: &str, default: &str, me: &mut Self| match v {
            None => default.to_string(),
            Some(u) => {
                let s = u.get_ref().trim();
                if !(s.starts_with("https://") || s.starts_with("http://")) {
                    me.r.error(
                        span(u),
                        format!("standby.{key}: must start with https:// (or http:// for a local test stub)"),
                    );
                }
                s.trim_end_matches('/').to_string()
            }
        };
        let (api, events) = match upstream {
            Some(Upstream::Opsgenie) => (OPSGENIE_API, ""),
            _ => (PAGERDUTY_API, PAGERDUTY_EVENTS),
        };
        let base_url = url(pick(&own.base_url, &base.base_url), "base_url", api, self);
        let events_url = url(
            pick(&own.events_url, &base.events_url),
            "events_url",
            events,
            self,
        );
        let key = match pick(&own.key_file, &base.key_file) {
            Some(f) => self.secret_file(f, "standby.key_file"),
            None => {
                self.r.error(
                    Some(at.clone()),
                    "standby.key_file: a standby route needs the upstream's API key (PagerDuty REST API token or Opsgenie API key) in a file",
                );
                None
            }
        };
        let routing_key = pick(&own.routing_key_file, &base.routing_key_file)
            .as_ref()
            .and_then(|f| self.secret_file(f, "standby.routing_key_file"));
        if upstream == Some(Upstream::Opsgenie) {
            if let Some(f) = pick(&own.routing_key_file, &base.routing_key_file) {
                self.r.error(
                    span(f),
                    "standby.routing_key_file: only PagerDuty's Events API takes a routing key",
                );
            }
        }
        let positive = |v: &Option<S<String>>, key: &str, default: Duration, me: &mut Self| {
            let d = me.duration(v, key, default);
            if d.is_zero() {
                if let Some(s) = v {
                    me.r.error(span(s), format!("{key}: must be longer than 0"));
                }
                return default;
            }
            d
        };
        let grace = positive(
            pick(&own.grace, &base.grace),
            "standby.grace",
            DEFAULT_GRACE,
            self,
        );
        let poll_interval = positive(
            pick(&own.poll_interval, &base.poll_interval),
            "standby.poll_interval",
            DEFAULT_POLL_INTERVAL,
            self,
        );
        let timeout = positive(
            pick(&own.timeout, &base.timeout),
            "standby.timeout",
            DEFAULT_TIMEOUT,
            self,
        );
        let max_failures = match pick(&own.max_failures, &base.max_failures) {
            None => DEFAULT_MAX_FAILURES,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(n) if n <= 1000 => n,
                _ => {
                    self.r.error(
                        span(n),
                        "standby.max_failures: must be 0 (only the grace ends a hold) to 1000",
                    );
                    DEFAULT_MAX_FAILURES
                }
            },
        };
        Some(Settings {
            upstream: upstream?,
            base_url,
            events_url,
            key: key?,
            routing_key,
            grace,
            poll_interval,
            timeout,
            max_failures,
        })
    }
}
