//! `[standby]` and routes' `mode` / `standby = {...}` -> [`crate::config::standby::StandbyConfig`].
//!
//! A child of the validator so it can use its helpers; kept in its own file so standby touches
//! the shared validator in one place only. A route's own `standby` keys win over `[standby]`;
//! the key files are read here, so a missing key fails `pagerbox check` (and a SIGHUP reload,
//! which is how a rotated key is picked up) at its line.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{span, RawRoute, RawStandby, Validator, S};
use crate::config::standby::{
    Settings, StandbyConfig, Upstream, DEFAULT_GRACE, DEFAULT_MAX_FAILURES, DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT, OPSGENIE_API, PAGERDUTY_API, PAGERDUTY_EVENTS,
};
use crate::config::Secret;

/// `[standby]` or a route's `standby` table, each key checked once.
#[derive(Default)]
struct Partial {
    upstream: Option<Upstream>,
    /// Whether `upstream` was written (so a bad value is not also reported as missing).
    upstream_given: bool,
    base_url: Option<String>,
    events_url: Option<String>,
    key: Option<Secret>,
    key_given: bool,
    routing_key: Option<Secret>,
    routing_key_at: Option<std::ops::Range<usize>>,
    grace: Option<Duration>,
    poll_interval: Option<Duration>,
    timeout: Option<Duration>,
    max_failures: Option<u32>,
}

/// The longest `standby.timeout`: one check must end well inside the standby task's liveness
/// bound (three minutes).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

impl Validator<'_, '_> {
    /// Checks one table's keys (each reported once, at its line) without merging.
    fn standby_partial(&mut self, raw: &RawStandby) -> Partial {
        let upstream = raw.upstream.as_ref().and_then(|u| {
            let up = Upstream::from_config(u.get_ref());
            if up.is_none() {
                self.r.error(
                    span(u),
                    format!(
                        "standby.upstream: {:?} is not \"pagerduty\" or \"opsgenie\"",
                        u.get_ref()
                    ),
                );
            }
            up
        });
        let mut url = |v: &Option<S<String>>, key: &str| {
            v.as_ref().map(|u| {
                let s = u.get_ref().trim();
                if !(s.starts_with("https://") || s.starts_with("http://")) {
                    self.r.error(
                        span(u),
                        format!("standby.{key}: must start with https:// (or http:// for a local test stub)"),
                    );
                }
                s.trim_end_matches('/').to_string()
            })
        };
        let base_url = url(&raw.base_url, "base_url");
        let events_url = url(&raw.events_url, "events_url");
        let key = raw
            .key_file
            .as_ref()
            .and_then(|f| self.secret_file(f, "standby.key_file"));
        let routing_key = raw
            .routing_key_file
            .as_ref()
            .and_then(|f| self.secret_file(f, "standby.routing_key_file"));
        let mut positive = |v: &Option<S<String>>, key: &str| {
            let s = v.as_ref()?;
            let d = self.duration(v, key, Duration::ZERO);
            if d.is_zero() {
                self.r
                    .error(span(s), format!("{key}: must be longer than 0"));
                return None;
            }
            Some(d)
        };
        let grace = positive(&raw.grace, "standby.grace");
        let poll_interval = positive(&raw.poll_interval, "standby.poll_interval");
        // A check must end well inside the standby task's liveness bound (a round waits for its
        // checks); an old config with a longer one still starts, at the limit.
        let timeout = positive(&raw.timeout, "standby.timeout").map(|_| {
            let range = Duration::from_millis(1)..=MAX_TIMEOUT;
            self.clamped_duration(&raw.timeout, "standby.timeout", range, MAX_TIMEOUT)
        });
        let max_failures =
            raw.max_failures
                .as_ref()
                .and_then(|n| match u32::try_from(*n.get_ref()) {
                    Ok(n) if n <= 1000 => Some(n),
                    _ => {
                        self.r.error(
                            span(n),
                            "standby.max_failures: must be 0 (only the grace ends a hold) to 1000",
                        );
                        None
                    }
                });
        Partial {
            upstream,
            upstream_given: raw.upstream.is_some(),
            base_url,
            events_url,
            key,
            key_given: raw.key_file.is_some(),
            routing_key,
            routing_key_at: raw.routing_key_file.as_ref().map(|f| f.span()),
            grace,
            poll_interval,
            timeout,
            max_failures,
        }
    }

    pub(super) fn standby(
        &mut self,
        defaults: Option<&S<RawStandby>>,
        routes: &[RawRoute],
    ) -> StandbyConfig {
        let empty = RawStandby::default();
        let raw_base = defaults.map(|d| d.get_ref()).unwrap_or(&empty);
        let whole_box = raw_base.enabled.as_ref().is_some_and(|e| *e.get_ref());
        let base = self.standby_partial(raw_base);
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
            let own =
                self.standby_partial(r.standby.as_ref().map(|s| s.get_ref()).unwrap_or(&empty));
            let at = r
                .standby
                .as_ref()
                .map(|s| s.span())
                .or_else(|| r.mode.as_ref().map(|m| m.span()))
                .or_else(|| defaults.map(|d| d.span()))
                .unwrap_or_else(|| r.id.span());
            if let Some(s) = self.standby_settings(own, &base, at) {
                out.insert(r.id.get_ref().clone(), s);
            }
        }
        StandbyConfig { routes: out }
    }

    fn standby_settings(
        &mut self,
        own: Partial,
        base: &Partial,
        at: std::ops::Range<usize>,
    ) -> Option<Settings> {
        let upstream = own.upstream.or(base.upstream);
        if upstream.is_none() && !own.upstream_given && !base.upstream_given {
            self.r.error(
                Some(at.clone()),
                "standby.upstream: a standby route needs an upstream: \"pagerduty\" or \"opsgenie\"",
            );
        }
        let (api, events) = match upstream {
            Some(Upstream::Opsgenie) => (OPSGENIE_API, ""),
            _ => (PAGERDUTY_API, PAGERDUTY_EVENTS),
        };
        let key = own.key.or_else(|| base.key.clone());
        if key.is_none() && !own.key_given && !base.key_given {
            self.r.error(
                Some(at.clone()),
                "standby.key_file: a standby route needs the upstream's API key (PagerDuty REST API token or Opsgenie API key) in a file",
            );
        }
        let routing_key = match upstream {
            Some(Upstream::Opsgenie) => {
                // Only a route's own table can be wrong here: `[standby]` may serve routes of
                // both kinds.
                if let Some(at) = own.routing_key_at {
                    self.r.error(
                        Some(at),
                        "standby.routing_key_file: only PagerDuty's Events API takes a routing key",
                    );
                }
                None
            }
            _ => own.routing_key.or_else(|| base.routing_key.clone()),
        };
        Some(Settings {
            upstream: upstream?,
            base_url: own
                .base_url
                .or_else(|| base.base_url.clone())
                .unwrap_or_else(|| api.to_string()),
            events_url: own
                .events_url
                .or_else(|| base.events_url.clone())
                .unwrap_or_else(|| events.to_string()),
            key: key?,
            routing_key,
            grace: own.grace.or(base.grace).unwrap_or(DEFAULT_GRACE),
            poll_interval: own
                .poll_interval
                .or(base.poll_interval)
                .unwrap_or(DEFAULT_POLL_INTERVAL),
            timeout: own.timeout.or(base.timeout).unwrap_or(DEFAULT_TIMEOUT),
            max_failures: own
                .max_failures
                .or(base.max_failures)
                .unwrap_or(DEFAULT_MAX_FAILURES),
        })
    }
}
