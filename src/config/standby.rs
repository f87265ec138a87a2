//! `[standby]` and routes' `standby`: which routes stand behind a cloud pager, how to reach it
//! and how long it may take. Asking the cloud pager and mirroring its answer are `standby`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Secret;

/// `standby.grace` default: how long the upstream has to get someone to acknowledge.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);
/// `standby.poll_interval` default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// `standby.timeout` default: one request to the upstream, connect included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `standby.max_failures` default: failed checks in a row that end a hold before the grace.
pub const DEFAULT_MAX_FAILURES: u32 = 3;
/// PagerDuty's REST API.
pub const PAGERDUTY_API: &str = "https://api.pagerduty.com";
/// PagerDuty's Events API (acknowledgements).
pub const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com";
/// Opsgenie's API (EU accounts use `https://api.eu.opsgenie.com`).
pub const OPSGENIE_API: &str = "https://api.opsgenie.com";
/// The cloud pager pagerbox stands behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    PagerDuty,
    Opsgenie,
}

impl Upstream {
    /// The config spelling, also the `via` of mirrored acknowledgements.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::PagerDuty => "pagerduty",
            Upstream::Opsgenie => "opsgenie",
        }
    }

    /// The product name, for people.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::PagerDuty => "PagerDuty",
            Upstream::Opsgenie => "Opsgenie",
        }
    }

    /// Reads the config spelling.
    pub fn from_config(s: &str) -> Option<Upstream> {
        match s {
            "pagerduty" => Some(Upstream::PagerDuty),
            "opsgenie" => Some(Upstream::Opsgenie),
            _ => None,
        }
    }
}

/// One route's standby: which upstream, how to reach it, and how long it may take.
#[derive(Debug, Clone)]
pub struct Settings {
    pub upstream: Upstream,
    /// REST API base (PagerDuty) or Alert API base (Opsgenie).
    pub base_url: String,
    /// PagerDuty Events API base, for acknowledgements.
    pub events_url: String,
    /// PagerDuty REST API token or Opsgenie API key (its `Debug` hides it).
    pub key: Secret,
    /// PagerDuty Events API v2 integration (routing) key; acknowledgements need it.
    pub routing_key: Option<Secret>,
    pub grace: Duration,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Failed checks in a row that end the hold before the grace; 0: only the grace does.
    pub max_failures: u32,
}

/// Every standby route, by route id. Empty: no route is in standby.
#[derive(Debug, Clone, Default)]
pub struct StandbyConfig {
    pub routes: BTreeMap<String, Settings>,
}

impl StandbyConfig {
    /// The standby of `route`, if it is in standby mode.
    pub fn for_route(&self, route: Option<&str>) -> Option<&Settings> {
        self.routes.get(route?)
    }

    /// The shortest grace of any route: once the upstream has been unreachable that long,
    /// holds are ending without an answer, and the panel shows the box as impaired.
    pub fn shortest_grace(&self) -> Option<Duration> {
        self.routes.values().map(|s| s.grace).min()
    }
}
