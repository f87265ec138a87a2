//! `[[outbound]]`: the chat and webhook destinations announced beside paging, and the words of
//! their config (receiver format, events). Sending is `outbound`'s.

use std::time::Duration;

use super::Secret;

/// Pending notifications kept per destination before the oldest are dropped.
pub const DEFAULT_MAX_QUEUED: usize = 100;
/// Header carrying `sha256=<hex>` on generic webhooks.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Pagerbox-Signature";
/// Which receiver format a destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams Workflows webhook (Adaptive Card).
    Teams,
    /// pagerbox's JSON document, signed with HMAC-SHA256.
    Webhook,
}

impl Kind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Teams => "teams",
            Kind::Webhook => "webhook",
        }
    }
}

/// An incident transition that can be announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Event {
    /// The config spelling (`events = ["trigger", ...]`).
    pub fn from_config(s: &str) -> Option<Event> {
        match s {
            "trigger" => Some(Event::Trigger),
            "acknowledge" => Some(Event::Acknowledge),
            "resolve" => Some(Event::Resolve),
            _ => None,
        }
    }

    /// The timeline event kind written by the store for this transition.
    pub fn from_timeline(kind: &str) -> Option<Event> {
        match kind {
            "triggered" => Some(Event::Trigger),
            "acknowledged" => Some(Event::Acknowledge),
            "resolved" => Some(Event::Resolve),
            _ => None,
        }
    }

    /// The name receivers see: `incident.triggered`, `incident.acknowledged`, `incident.resolved`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Trigger => "incident.triggered",
            Event::Acknowledge => "incident.acknowledged",
            Event::Resolve => "incident.resolved",
        }
    }
}

/// One `[[outbound]]` destination.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Names the destination's queue (the outbox `address`); stable across restarts.
    pub id: String,
    pub kind: Kind,
    /// A credential for Slack and Teams: never logged (its `Debug` hides it).
    pub url: Secret,
    /// HMAC-SHA256 key; required for `webhook`, unused otherwise.
    pub secret: Option<Secret>,
    /// Header for `sha256=<hex>`.
    pub signature_header: String,
    /// Route ids whose incidents are announced; empty means every incident.
    pub routes: Vec<String>,
    pub events: Vec<Event>,
    /// Pending notifications kept before the oldest are dropped.
    pub max_queued: usize,
    /// Hard limit on one POST, connect included.
    pub timeout: Duration,
}

impl Destination {
    /// Whether an incident on `route` is announced here.
    pub fn wants_route(&self, route: Option<&str>) -> bool {
        self.routes.is_empty() || route.is_some_and(|r| self.routes.iter().any(|x| x == r))
    }
}
