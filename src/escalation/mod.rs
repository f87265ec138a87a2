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
//! The policy and route types themselves are config data (`config::policy`), re-exported here
//! because the engine and the planner are their main readers; the config module builds them,
//! [`Contact`] and [`Directory`] from TOML and reports the errors of [`Policy::new`] and
//! [`check_routes`] at the right line.

mod plan;
pub mod reach;
mod reroute;
mod route;
mod state;

pub mod cli;
pub mod engine;

pub use crate::config::policy::{
    check_routes, default_rules, route_for, AlertFacts, Error, NotificationRule, Policy, Route,
    RouteMatch, Step, UrgencyMap,
};
pub use plan::{
    on_served_channels, pages_for_user, plan, schedules_used, step_targets, Contact, Directory,
    Plan, PlannedPage, Target,
};
pub use route::{bounded, route_alert, ParsedAlert, DETAILS_DEPTH};
pub use state::{next_action, Action, EscalationState, Event, Next, Phase};
