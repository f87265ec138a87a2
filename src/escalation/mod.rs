//! Escalation: policies, routes, per-user notification rules, and the pure decisions of the
//! escalation engine.
//!
//! What lives here is pure and fully tested: which route an alert follows ([`route_for`]), who a
//! step pages at an instant ([`step_targets`]), how each person is reached ([`pages_for_user`]),
//! the dry run ([`plan`]), and the state machine of one incident ([`next_action`],
//! [`EscalationState::apply`]). What does not live here: timers, SQLite rows and sending. The
//! daemon's engine task owns those; it persists [`EscalationState`] with each incident, asks
//! [`next_action`] at `now`, executes the [`Action`], and persists the state after the matching
//! [`Event`] in the same transaction as the pages it queued. That split is what makes a restart
//! mid-escalation carry on at the right step and a wall-clock jump never page a step twice.
//!
//! The config module builds [`Policy`], [`Route`], [`Contact`] and [`Directory`] from TOML and
//! reports the errors of [`Policy::new`] and [`check_routes`] at the right line.

mod plan;
mod policy;
mod reroute;
mod state;

pub mod cli;
pub mod engine;

pub use plan::{
    on_served_channels, pages_for_user, plan, schedules_used, step_targets, Contact, Directory,
    Plan, PlannedPage, Target,
};
pub use policy::{
    check_routes, default_rules, route_for, AlertFacts, NotificationRule, Policy, Route,
    RouteMatch, Step, UrgencyMap,
};
pub use state::{next_action, Action, EscalationState, Event, Next, Phase};

/// What can be wrong with escalation config. Each variant names the policy or route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `repeat = 0`.
    #[error(
        "policy {policy:?}: repeat must be at least 1 (the total number of runs through the steps)"
    )]
    ZeroRepeat { policy: String },
    /// No steps.
    #[error("policy {policy:?} has no steps; expected at least one [[policies.steps]]")]
    NoSteps { policy: String },
    /// A step with neither users nor schedules.
    #[error("policy {policy:?} step {step} names nobody; expected users or schedules")]
    EmptyStep { policy: String, step: usize },
    /// A default route (no `match`) before other routes, which could then never match.
    #[error("route {route:?} has no match (it is a default route) but route {shadowed:?} comes after it; the default route must come last")]
    DefaultRouteNotLast { route: String, shadowed: String },
}
