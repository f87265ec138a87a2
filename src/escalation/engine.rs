//! The escalation engine: the task that executes the pure state machine against the store.
//!
//! Each pass runs in one store transaction: read the escalations that need attention (due, or
//! whose incident changed status), decide with [`next_action`], queue the pages in the outbox,
//! and persist the new [`EscalationState`], all committed together. So a restart in the middle of
//! an escalation carries on at the persisted step, and a step that went out is never repeated.
//! Decisions use the store's clock and the persisted due times, never how long a timer slept; the
//! task sleeps until the next due time (at most [`MAX_SLEEP`], to notice wall-clock jumps) or
//! until a commit or a config reload wakes it.
//!
//! Silences: before a due step is paged (or an escalation exhausted), the pass asks
//! [`crate::silence::holding`]; a matching active silence postpones that step to the silence's
//! end (a persisted due time like any other, so the engine wakes then without polling) and the
//! timeline says so once; when the silence is over the held step pages as usual. See
//! [`crate::silence`] for the rules.
//!
//! Standby: on a route that stands behind a cloud pager, the first step is held until
//! [`crate::store::standby::hold`] says to page (the grace ended, or the standby task found the
//! upstream unable to get an acknowledgement); the page then says why.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::plan::{on_served_channels, pages_for_user, step_targets, Contact, Directory};
use super::state::{next_action, Action, EscalationState, Event, Next, Phase};
use super::{Policy, Route};
use crate::config::Config;
use crate::incident::{Actor, Channel, Incident, IncidentId, Severity, Status};
use crate::notify::text;
use crate::schedule::OverridesBySchedule;
use crate::silence::Silence;
use crate::store::escalations::{self, EscalationRow, StoredPhase};
use crate::store::events::record;
use crate::store::kinds::EventKind;
use crate::store::outbox::{self, NewPage, PageKind};
use crate::store::queries::{incident, transition};
use crate::store::silences as silence_store;
use crate::store::standby::{self as standby_store, Hold as StandbyHold};
use crate::store::{from_ms, Store, StoreError, Tx};

/// Longest the engine sleeps without looking again (catches wall-clock jumps).
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Priority of a page in the outbox: critical first.
pub fn priority(s: Severity) -> i64 {
    match s {
        Severity::Critical => 3,
        Severity::Error => 2,
        Severity::Warning => 1,
        Severity::Info => 0,
    }
}

/// Everything a pass needs from the config, built once per config version.
pub struct Plan {
    pub config: Arc<Config>,
    pub directory: Directory,
    pub policies: HashMap<String, Policy>,
    /// The channels a transport serves (see [`crate::config::served_channels`]).
    pub served: Vec<Channel>,
}

impl Plan {
    /// Indexes a config for the engine.
    pub fn new(config: Arc<Config>) -> Plan {
        let contacts = config
            .users
            .iter()
            .map(|u| Contact {
                id: u.id.clone(),
                phone: u.phone.as_ref().map(|p| p.to_string()),
                email: u.email.clone(),
                rules: u.rules.clone(),
            })
            .collect();
        let served = crate::config::served_channels(&config);
        let directory = Directory::new(contacts, config.schedules.clone())
            .with_channels(served.clone(), config.paging.channels.clone());
        let policies = config
            .policies
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect();
        Plan {
            served,
            config,
            directory,
            policies,
        }
    }

    fn route(&self, id: Option<&str>) -> Option<&Route> {
        self.config.route(id?)
    }
}

/// Runs the engine until `shutdown`, feeding `beat` once per pass (a pass runs at least every
/// [`MAX_SLEEP`]). `next_claims`, in a pair, is told of the pages a pass queued that the senders
/// take next, before the pass commits.
pub async fn run(
    store: Store,
    mut config: watch::Receiver<Arc<Config>>,
    beat: crate::supervisor::Heartbeat,
    next_claims: Option<outbox::NextClaims>,
    shutdown: CancellationToken,
) {
    let mut commits = store.commits();
    let mut clock_steps = store.clock_steps();
    let mut plan = Arc::new(Plan::new(config.borrow_and_update().clone()));
    // At start and after each reload: pages queued for a channel that is now off are moved,
    // and incidents an earlier config left unrouted are routed.
    let mut reroute = true;
    let mut route = true;
    // Whether the last pass failed in a way that fails every pass alike (an error of ours: a
    // constraint, a type mismatch). Nothing escalates then, so the loop must not look alive: it
    // stops beating, goes late in `/healthz` and stops the watchdog being fed. A passing failure
    // (busy, a full disk, which the store's write health shows) keeps the beat.
    let mut stuck = false;
    loop {
        if !stuck {
            beat.beat();
        }
        if reroute {
            let p = plan.clone();
            match store.call(move |c, now| reroute_unserved(c, &p, now)).await {
                Ok(_) => reroute = false,
                Err(e) => {
                    tracing::error!(error = %e, "cannot move pages off a channel that is off; retrying")
                }
            }
        }
        if route {
            route = !route_unrouted(&store, plan.config.clone()).await;
        }
        let (p, told) = (plan.clone(), next_claims.clone());
        let next = match store
            .call(move |c, now| pass_telling(c, &p, told, now))
            .await
        {
            Ok(next) => {
                stuck = false;
                next
            }
            Err(e) => {
                stuck = !e.is_retryable();
                tracing::error!(error = %e, "escalation pass failed; retrying in 1s");
                Some(crate::clock::add(store.now(), Duration::from_secs(1)))
            }
        };
        let sleep = next
            .map(|t| (t - store.now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP)
            .min(beat.idle_bound());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
            // The clock jumped: a step may have come due.
            _ = clock_steps.stepped() => {}
            r = commits.changed() => if r.is_err() { return },
            r = config.changed() => {
                if r.is_err() { return }
                plan = Arc::new(Plan::new(config.borrow_and_update().clone()));
                reroute = true;
                route = true;
            }
        }
    }
}

/// Moves pending pages on channels no transport serves to the person's next served channel
/// (in `paging.channels` order, after their own, then from the start), due now. A page that no
/// served channel can take (a stakeholder's or reply's fixed address, a person with no address
/// on an enabled channel) is failed with a loud log and a note on the timeline, never left
/// pending for ever. Returns how many pages were moved.
pub fn reroute_unserved(conn: &Tx, plan: &Plan, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let order = &plan.config.paging.channels;
    let mut moved = 0;
    for p in outbox::pending_unserved(conn, &plan.served)? {
        let contact = match (&p.user_id, p.kind) {
            (Some(u), PageKind::Page | PageKind::Digest) => plan.directory.contact(u),
            _ => None,
        };
        let after = order
            .iter()
            .position(|x| *x == p.channel)
            .map_or(0, |i| i + 1);
        let next = contact.and_then(|contact| {
            order[after.min(order.len())..]
                .iter()
                .chain(order.iter())
                .copied()
                .find(|c| plan.served.contains(c) && contact.reachable_by(*c))
                .and_then(|c| {
                    let addr = match c {
                        Channel::Sms | Channel::Voice => contact.phone.clone(),
                        Channel::Email => contact.email.clone(),
                    };
                    addr.map(|a| (c, a))
                })
        });
        let why = format!("{} is off", p.channel);
        match next {
            Some((c, address)) => {
                tracing::warn!(page = p.id, from = %p.channel, to = %c, "queued page moved off a channel that is off");
                outbox::move_to_channel(conn, &p, c, &address, &why, now)?;
                moved += 1;
            }
            None => {
                tracing::error!(page = p.id, channel = %p.channel, "queued page cannot be sent: its channel is off and no enabled channel reaches its recipient");
                outbox::fail_pending(
                    conn,
                    &p,
                    &format!("{why} and no enabled channel reaches the recipient"),
                    now,
                )?;
            }
        }
    }
    Ok(moved)
}

/// Routes open incidents that were accepted while no route matched them, with `config`.
/// Returns false when the store could not do it (tried again on the next pass).
async fn route_unrouted(store: &Store, config: Arc<Config>) -> bool {
    match store
        .call(move |c, now| super::reroute::unrouted(c, &config, now))
        .await
    {
        Ok(r) => {
            for (incident, route) in r.routed {
                tracing::warn!(incident, %route, "incident accepted while unrouted is now routed and will page");
            }
            if !r.left.is_empty() {
                let first: Vec<_> = r.left.iter().take(20).collect();
                tracing::error!(count = r.left.len(), first = ?first, "open incidents match no route: nobody is paged for them until a config that routes them is loaded");
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot route incidents left unrouted; retrying");
            false
        }
    }
}

/// Runs one pass at `now`; returns when the next escalation is due.
pub fn pass(
    conn: &Tx,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let silences = active_silences(conn, plan, now)?;
    release_stale(conn, plan, &silences, now)?;
    let rows = attention(conn, now)?;
    let overrides = runtime_overrides(conn, &plan.config, now)?;
    let ctx = Pass {
        plan,
        silences: &silences,
        overrides: &overrides,
        now,
    };
    for row in rows {
        advance(conn, &ctx, row)?;
    }
    shift_notices(conn, plan, &overrides, now)?;
    next_due(conn)
}

/// [`pass`], then tells `next_claims` of the pages it queued that the senders take next. What
/// only speeds a pair up never fails the pass: a read that fails here is logged and skipped.
fn pass_telling(
    conn: &Tx,
    plan: &Plan,
    next_claims: Option<outbox::NextClaims>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let Some(tell) = next_claims else {
        return pass(conn, plan, now);
    };
    let before = outbox::last_id(conn);
    let next = pass(conn, plan, now)?;
    match before.and_then(|after| outbox::next_claims_after(conn, after, now)) {
        Ok(pages) if !pages.is_empty() => tell(conn, &pages),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the pages a pass queued to claim them early")
        }
    }
    Ok(next)
}

/// Makes the steps that silences no longer hold due at once (a silence expired early, or a
/// window's end moved), each through the state machine ([`Event::Released`]).
fn release_stale(
    conn: &Tx,
    plan: &Plan,
    silences: &[Silence],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for id in silence_store::stale_holds(conn, silences, now)? {
        release(conn, id, &plan.config, now)?;
    }
    Ok(())
}

/// Makes the step incident `id` waits for due at `now` rather than when a hold said
/// ([`Event::Released`]): a silence ended early, or the standby task ended a hold because the
/// cloud pager did not get anyone. A step already due, or an escalation that is not escalating,
/// is left as it is. `config` is the config in force.
pub fn release(
    conn: &Tx,
    id: IncidentId,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(e) = escalations::of_incident(conn, id)? else {
        return Ok(());
    };
    let Some(inc) = incident(conn, id)? else {
        return Ok(());
    };
    let policy_of = |name: &str| config.policies.iter().find(|p| p.id == name);
    let state = state_of(&e.row);
    let Some((policy, state)) =
        policy_in_force(conn, config, policy_of, &inc, &e.policy, state, now)?
    else {
        return Ok(());
    };
    if let Some(next) = state.apply(Event::Released { at: now }, policy) {
        escalations::save(conn, id, &policy.id, &row_of(&next), now)?;
    }
    Ok(())
}

/// The policy the escalation of `inc` (in `state`) goes on with, and its state on it: its own
/// policy (`name`), or, when a config reload removed or renamed that, the one its route names in
/// `config`, else the one of the route that matches its alert now. The switch is said on the
/// timeline and in the log, and the escalation keeps its place (the same step and round of the
/// new policy, or its first step when the new one has no such place). `None` when no policy is
/// left for it: the escalation is then exhausted, on the timeline and in the log at error, since
/// nobody can be paged for it any more (said once; a resolved incident's is closed).
fn policy_in_force<'p>(
    conn: &Tx,
    config: &'p Config,
    policy_of: impl Fn(&str) -> Option<&'p Policy>,
    inc: &Incident,
    name: &str,
    state: EscalationState,
    now: DateTime<Utc>,
) -> Result<Option<(&'p Policy, EscalationState)>, StoreError> {
    if let Some(p) = policy_of(name) {
        // A reload may have changed the policy under the same name: the place goes on under
        // the policy as it is now (see `EscalationState::carried_over`), said once, when it moves.
        let carried = state.carried_over(p);
        if carried != state {
            tracing::warn!(
                incident = inc.id,
                policy = name,
                "the reloaded policy changed under its name; the escalation goes on from its place in it as it is now"
            );
            carry_on(
                conn,
                inc.id,
                name,
                &carried,
                &format!(
                    "policy {name:?} changed; escalation goes on with its steps as they are now"
                ),
                serde_json::json!({ "policy": name }),
                now,
            )?;
        }
        return Ok(Some((p, carried)));
    }
    let facts = super::AlertFacts {
        service: inc.service.as_deref(),
        severity: inc.severity,
        source: inc.source.as_deref(),
        routing_key: None,
    };
    let own_route = inc.route.as_deref().and_then(|r| config.route(r));
    let successor = own_route
        .filter(|r| policy_of(&r.policy).is_some())
        .or_else(|| super::route_for(&config.routes, &facts))
        .and_then(|r| policy_of(&r.policy).map(|p| (r, p)));
    let Some((route, policy)) = successor else {
        // A resolved incident's escalation is closed, so no pass looks at it again. One already
        // said and exhausted is left as it is: an acknowledged one stays on the engine's list
        // (the status-change rows come after the due ones, see `needing_attention`), so a reload
        // that brings its policy back hands it over again, ack timeout and all.
        let settled = match (state.phase, inc.status) {
            (Phase::Resolved, _) => None,
            (_, Status::Resolved) => Some(Phase::Resolved),
            (Phase::Exhausted, _) => None,
            _ => {
                policy_gone(conn, inc.id, name, now)?;
                None
            }
        };
        if let Some(phase) = settled {
            save(
                conn,
                inc.id,
                name,
                &EscalationState { phase, since: now },
                now,
            )?;
        }
        return Ok(None);
    };
    tracing::warn!(
        incident = inc.id,
        removed = name,
        policy = %policy.id,
        route = %route.id,
        "the reloaded config has no policy of this incident's; its escalation goes on with its route's"
    );
    let state = state.moved_to(policy);
    carry_on(
        conn,
        inc.id,
        &policy.id,
        &state,
        &format!(
            "policy {name:?} no longer exists; escalation goes on with policy {:?} of route {:?}",
            policy.id, route.id
        ),
        serde_json::json!({ "removed": name, "policy": policy.id, "route": route.id }),
        now,
    )?;
    Ok(Some((policy, state)))
}

/// Stores the escalation of `id` going on with `policy` in `state` after a reload, and says why
/// on its timeline (`message`, `data`).
fn carry_on(
    conn: &Tx,
    id: IncidentId,
    policy: &str,
    state: &EscalationState,
    message: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    record(
        conn,
        Some(id),
        now,
        EventKind::Routed,
        None,
        message,
        Some(&data),
    )?;
    save(conn, id, policy, state, now)
}

/// An escalation whose policy a config reload removed, with no policy to go on with: flagged on
/// the timeline and in the log, and exhausted, since nobody can be paged for it.
fn policy_gone(
    conn: &Tx,
    id: IncidentId,
    policy: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tracing::error!(
        incident = id,
        policy,
        "NOBODY WILL BE PAGED further for this incident: the reloaded config has no policy \
         {policy:?} and no route that names one for it"
    );
    record(
        conn,
        Some(id),
        now,
        EventKind::EscalationError,
        None,
        &format!("policy {policy:?} no longer exists; nobody is paged"),
        None,
    )?;
    let exhausted = EscalationState {
        phase: Phase::Exhausted,
        since: now,
    };
    save(conn, id, policy, &exhausted, now)
}

/// What every escalation of one pass is looked at with.
struct Pass<'a> {
    plan: &'a Plan,
    /// Silences in force at `now`.
    silences: &'a [Silence],
    /// Runtime overrides in force now or later.
    overrides: &'a OverridesBySchedule,
    now: DateTime<Utc>,
}

/// Moves one escalation on as far as `now` allows: applies what its incident's status implies
/// and what is due (paging a step, exhausting, re-triggering), then saves the state and the
/// silence that holds it.
fn advance(conn: &Tx, ctx: &Pass<'_>, row: Row) -> Result<(), StoreError> {
    let (plan, now) = (ctx.plan, ctx.now);
    let Some(mut inc) = incident(conn, row.incident_id)? else {
        return Ok(());
    };
    let policy_of = |name: &str| plan.policies.get(name);
    let Some((policy, mut state)) = policy_in_force(
        conn,
        &plan.config,
        policy_of,
        &inc,
        &row.policy,
        row.state,
        now,
    )?
    else {
        return Ok(());
    };
    let route = plan.route(inc.route.as_deref());
    // Which silence holds the due step; an incident held since it opened never paged anyone,
    // so its acknowledge and resolve are not announced to stakeholders either.
    let mut hold = row.silenced_by.clone();
    let first = Next::Step { step: 0, round: 0 };
    let never_paged = hold.is_some()
        && matches!(state.phase,
            Phase::Escalating { next, .. } | Phase::Acknowledged { resume: next, .. } if next == first);
    // At most a few steps per incident per pass: each applied event moves the state on.
    for _ in 0..8 {
        let event = match reconcile(&state, &inc, route) {
            Some(e) => Some(e),
            None => due_event(conn, ctx, policy, route, &state, &mut inc, &mut hold)?,
        };
        let Some(ev) = event else { break };
        match state.apply(ev, policy) {
            Some(s) => state = s,
            None => break,
        }
        if matches!(ev, Event::Acknowledged { .. } | Event::Resolved { .. }) && !never_paged {
            stakeholder_update(conn, plan, route, &inc, now)?;
        }
    }
    save(conn, inc.id, &policy.id, &state, now)?;
    // The mark stays while acknowledged, so a later resolve still knows nobody was paged.
    let hold = hold.filter(|_| {
        matches!(
            state.phase,
            Phase::Escalating { .. } | Phase::Acknowledged { .. }
        )
    });
    if hold != row.silenced_by {
        silence_store::set_hold(conn, inc.id, hold.as_deref())?;
    }
    Ok(())
}

/// Does what [`next_action`] says is due for `inc` at the pass's `now` and returns the event
/// that records it, or `None` when nothing is due. A re-trigger updates `inc` so the next look
/// reconciles against the incident as it now is.
fn due_event(
    conn: &Tx,
    ctx: &Pass<'_>,
    policy: &Policy,
    route: Option<&Route>,
    state: &EscalationState,
    inc: &mut Incident,
    hold: &mut Option<String>,
) -> Result<Option<Event>, StoreError> {
    let now = ctx.now;
    Ok(match next_action(state, policy, now) {
        Action::Wait { .. } | Action::Idle => None,
        Action::Page { step, round, .. } => {
            match hold_if_silenced(conn, ctx.silences, inc, hold, now)? {
                Some(held) => Some(held),
                None => Some(page_unless_standby(
                    conn, ctx, policy, route, inc, step, round,
                )?),
            }
        }
        Action::Exhaust => match hold_if_silenced(conn, ctx.silences, inc, hold, now)? {
            Some(held) => Some(held),
            None => {
                tracing::error!(
                    incident = inc.id,
                    policy = %policy.id,
                    runs = policy.repeat,
                    "ESCALATION EXHAUSTED: nobody acknowledged; nobody will be paged for this incident again until someone acts on it"
                );
                record(conn, Some(inc.id), now, EventKind::Exhausted, None, &format!("escalation policy {} ran {} time(s) without an acknowledgement; incident stays open", policy.id, policy.repeat), None)?;
                Some(Event::Exhausted { at: now })
            }
        },
        Action::Retrigger => {
            *inc = transition(
                conn,
                inc.id,
                Status::Triggered,
                &Actor::new("pagerbox", "ack-timeout"),
                now,
            )?
            .0;
            record(conn, Some(inc.id), now, EventKind::Retriggered, None, "acknowledged but not resolved within the route's ack_timeout: escalating again from the first step", None)?;
            Some(Event::Retriggered { at: now })
        }
        Action::Reschedule => {
            tracing::warn!(
                incident = inc.id,
                "wall clock went backwards; restarting the pending wait"
            );
            Some(Event::Rescheduled { at: now })
        }
    })
}

/// Pages due step `step` of run `round`, unless a standby route still holds it for the cloud
/// pager in front of the box. Returns the event that records which.
fn page_unless_standby(
    conn: &Tx,
    ctx: &Pass<'_>,
    policy: &Policy,
    route: Option<&Route>,
    inc: &Incident,
    step: usize,
    round: u32,
) -> Result<Event, StoreError> {
    let (plan, now) = (ctx.plan, ctx.now);
    let standby = plan
        .config
        .standby
        .for_route(inc.route.as_deref())
        .map(|s| s.hold());
    let first = step == 0 && round == 0;
    Ok(match standby_store::hold(conn, standby, inc, first, now)? {
        StandbyHold::Until(until) => Event::Held { until, at: now },
        StandbyHold::Page { reason } => {
            // The page says why the box pages although a cloud pager was supposed to.
            let said = reason.map(|r| Incident {
                summary: format!("{r}: {}", inc.summary),
                ..inc.clone()
            });
            page_step(
                conn,
                plan,
                policy,
                route,
                said.as_ref().unwrap_or(inc),
                step,
                round,
                ctx.overrides,
                now,
            )?;
            Event::Paged {
                step,
                round,
                at: now,
            }
        }
    })
}

/// How late a shift notice may still go out (after a restart, or a pass that ran late); older
/// shift starts are not announced, so a new install does not announce shifts from weeks ago.
const SHIFT_NOTICE_GRACE: chrono::Duration = chrono::Duration::minutes(30);

/// Queues an SMS to each user who opted in (`shift_notices = true`) when their shift starts:
/// "on call for primary until Mon 09:00". Each (schedule, user, shift start) is announced once,
/// remembered in SQLite.
fn shift_notices(
    conn: &Tx,
    plan: &Plan,
    overrides: &OverridesBySchedule,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Notices go by SMS only. On a box without a modem nobody would ever send one, and the
    // queued row would turn `/healthz` red five minutes after every handoff.
    if !plan.served.contains(&Channel::Sms) {
        return Ok(());
    }
    for s in &plan.config.schedules {
        let rt = overrides.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
        let Some(on) = s.on_call(now, rt) else {
            continue;
        };
        if now - on.from > SHIFT_NOTICE_GRACE {
            continue;
        }
        let Some(user) = plan.config.user(&on.user) else {
            continue;
        };
        let (true, Some(phone)) = (user.shift_notices, &user.phone) else {
            continue;
        };
        if !escalations::note_shift_notice(conn, &s.id, &user.id, on.from, now)? {
            continue;
        }
        let until = match on.until {
            Some(t) => format!(" until {}", t.with_timezone(&s.tz).format("%a %H:%M")),
            None => String::new(),
        };
        outbox::enqueue(
            conn,
            &NewPage {
                kind: PageKind::Status,
                incident_id: None,
                user_id: None,
                channel: Channel::Sms,
                address: phone.to_string(),
                subject: None,
                body: format!("pagerbox: you are on call for {}{until}. Reply ONCALL to check, HELP for commands.", s.name),
                priority: 0,
                due_at: now,
            },
            now,
        )?;
    }
    Ok(())
}

/// The event an incident's status implies for its escalation, if the escalation has not seen it.
fn reconcile(state: &EscalationState, inc: &Incident, route: Option<&Route>) -> Option<Event> {
    match (state.phase, inc.status) {
        (Phase::Resolved, _) => None,
        (_, Status::Resolved) => Some(Event::Resolved {
            at: inc.resolved.as_ref().map(|t| t.at).unwrap_or(state.since),
        }),
        (Phase::Escalating { .. } | Phase::Exhausted, Status::Acknowledged) => {
            Some(Event::Acknowledged {
                at: inc
                    .acknowledged
                    .as_ref()
                    .map(|t| t.at)
                    .unwrap_or(state.since),
                ack_timeout: route.and_then(|r| r.ack_timeout),
            })
        }
        _ => None,
    }
}

struct Row {
    incident_id: IncidentId,
    policy: String,
    state: EscalationState,
    /// The silence (key) holding the due step, if any.
    silenced_by: Option<String>,
}

/// Silences in force at `now`: the config's maintenance windows and the runtime silences.
pub fn active_silences(
    conn: &Tx,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Vec<Silence>, StoreError> {
    let mut out: Vec<Silence> = plan
        .config
        .silences
        .iter()
        .filter_map(|s| s.in_force(now))
        .collect();
    out.extend(silence_store::active(conn, now)?);
    Ok(out)
}

/// The [`Event::Held`] to apply when a silence holds `inc` at `now` (noting it on the timeline
/// when this silence was not already holding it); `None` when nothing holds it, noting on the
/// timeline that a hold is over.
fn hold_if_silenced(
    conn: &Tx,
    silences: &[Silence],
    inc: &Incident,
    hold: &mut Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<Event>, StoreError> {
    match crate::silence::holding(silences, inc, now) {
        Some(s) => {
            let key = s.id.key();
            if hold.as_deref() != Some(key.as_str()) {
                record(
                    conn,
                    Some(inc.id),
                    now,
                    EventKind::Silenced,
                    None,
                    &s.describe(),
                    Some(&serde_json::json!({ "silence": s.id, "until": s.ends_at })),
                )?;
                tracing::info!(incident = inc.id, silence = %key, until = %s.ends_at, "page held by a silence");
            }
            *hold = Some(key);
            Ok(Some(Event::Held {
                until: s.ends_at,
                at: now,
            }))
        }
        None => {
            if let Some(key) = hold.take() {
                record(
                    conn,
                    Some(inc.id),
                    now,
                    EventKind::Unsilenced,
                    None,
                    &format!(
                        "{} is over: paging resumes",
                        crate::silence::SilenceId::from_key(&key)
                            .map(|id| format!("silence {id}"))
                            .unwrap_or(key)
                    ),
                    None,
                )?;
            }
            Ok(None)
        }
    }
}

/// Escalations that are due, or whose incident changed status since the engine last looked.
fn attention(conn: &Tx, now: DateTime<Utc>) -> Result<Vec<Row>, StoreError> {
    Ok(escalations::needing_attention(conn, now)?
        .into_iter()
        .map(|e| Row {
            incident_id: e.incident_id,
            policy: e.policy,
            state: state_of(&e.row),
            silenced_by: e.silenced_by,
        })
        .collect())
}

/// The state machine's view of a stored escalation row.
pub(crate) fn state_of(row: &EscalationRow) -> EscalationState {
    let next = match row.next {
        Some((step, round)) => Next::Step { step, round },
        None => Next::Exhaust,
    };
    let phase = match row.phase {
        StoredPhase::Escalating => Phase::Escalating {
            next,
            due: row.due.unwrap_or_else(|| from_ms(0)),
        },
        StoredPhase::Acknowledged => Phase::Acknowledged {
            retrigger_at: row.due,
            resume: next,
        },
        StoredPhase::Exhausted => Phase::Exhausted,
        StoredPhase::Resolved => Phase::Resolved,
    };
    EscalationState {
        phase,
        since: row.since,
    }
}

/// The stored row of an escalation state.
pub(crate) fn row_of(s: &EscalationState) -> EscalationRow {
    let (phase, next, due) = match s.phase {
        Phase::Escalating { next, due } => (StoredPhase::Escalating, Some(next), Some(due)),
        Phase::Acknowledged {
            retrigger_at,
            resume,
        } => (StoredPhase::Acknowledged, Some(resume), retrigger_at),
        Phase::Exhausted => (StoredPhase::Exhausted, None, None),
        Phase::Resolved => (StoredPhase::Resolved, None, None),
    };
    EscalationRow {
        phase,
        next: match next {
            Some(Next::Step { step, round }) => Some((step, round)),
            _ => None,
        },
        due,
        since: s.since,
    }
}

fn save(
    conn: &Tx,
    id: IncidentId,
    policy: &str,
    s: &EscalationState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    Ok(escalations::save(conn, id, policy, &row_of(s), now)?)
}

fn next_due(conn: &Tx) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(escalations::next_due(conn)?)
}

/// Runtime overrides in force now or later, by schedule, for people `config` still has (their
/// SQL lives with the table). An override names whoever was a user when it was made; after a
/// reload removed them it would still win over the schedule, and every step of it would page
/// nobody. Left out, the layer's person is on call (the reload warns that it names an unknown
/// user).
pub fn runtime_overrides(
    conn: &Tx,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<OverridesBySchedule, StoreError> {
    let mut all = crate::store::overrides::in_force(conn, now)?;
    let _ = known_users_only(&mut all, config);
    Ok(all)
}

/// Drops the overrides naming someone `config` does not have (see [`runtime_overrides`]), and
/// says which, one line each, for the log of a start or reload and for `pagerbox check`.
pub fn known_users_only(overrides: &mut OverridesBySchedule, config: &Config) -> Vec<String> {
    let mut ignored = Vec::new();
    for (schedule, list) in overrides.iter_mut() {
        list.retain(|o| {
            let known = config.user(&o.user).is_some();
            if !known {
                ignored.push(format!(
                    "override{} on schedule {schedule:?} names {:?}, who is not in the config: ignored, the schedule's own person is on call",
                    o.id.map(|id| format!(" #{id}")).unwrap_or_default(),
                    o.user
                ));
            }
            known
        });
    }
    ignored.sort();
    ignored
}

/// What one step pages, decided from the config alone: who, on which channel, when, where and
/// with what text. Pure, so the rules (notification rules, route channel limits, channels that
/// are off) are one value a test can look at; [`queue_step`] then applies what only the store
/// knows (grouping, the SMS rate limit) and writes the pages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepPlan {
    /// The step targets nobody at all (nobody on call for its schedules).
    pub nobody_on_call: bool,
    /// Each person the step targets whose contact is configured, in step order.
    pub targets: Vec<TargetPlan>,
}

/// One person of a [`StepPlan`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetPlan {
    pub user: String,
    /// Why the step pages them (`schedule primary`, `user`).
    pub via: String,
    /// Their pages, in the order their rules give them.
    pub pages: Vec<PlannedPage>,
    /// The channels that are off for them when no enabled channel reaches them at all (then
    /// `pages` is empty); `None` when they can be paged.
    pub unreachable: Option<Vec<Channel>>,
}

/// One page of a [`TargetPlan`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedPage {
    pub channel: Channel,
    /// When it is due (later than the step for a rule with a delay).
    pub at: DateTime<Utc>,
    pub address: String,
    pub subject: Option<String>,
    pub body: String,
}

/// Plans step `step` of `policy` for `inc` at `now` (see [`StepPlan`]).
pub(crate) fn plan_step(
    plan: &Plan,
    policy: &Policy,
    route: Option<&Route>,
    inc: &Incident,
    step: usize,
    overrides: &OverridesBySchedule,
    now: DateTime<Utc>,
) -> StepPlan {
    let cfg = &plan.config;
    let urgency = cfg.urgency(inc.route.as_deref(), inc.severity);
    let on_call = step_targets(policy, step, now, &plan.directory, overrides);
    let nobody_on_call = on_call.is_empty();
    let targets = on_call
        .into_iter()
        .filter_map(|t| {
            let contact = plan.directory.contact(&t.user)?;
            let mut wanted = pages_for_user(contact, urgency, now);
            if let Some(r) = route {
                wanted.retain(|(c, _)| r.allows(*c));
            }
            // Channels that are off queue nothing: their pages go to the person's next channel.
            let (wanted, lost) = on_served_channels(
                &wanted,
                contact,
                urgency,
                &plan.served,
                &cfg.paging.channels,
                |c| route.is_none_or(|r| r.allows(c)),
            );
            let unreachable = wanted.is_empty().then_some(lost);
            let pages = wanted
                .into_iter()
                .filter_map(|(channel, at)| {
                    let address = match channel {
                        Channel::Sms | Channel::Voice => contact.phone.clone(),
                        Channel::Email => contact.email.clone(),
                    }?;
                    let body = match channel {
                        Channel::Sms => text::sms_page(
                            inc,
                            route.and_then(|r| r.runbook.as_deref()),
                            cfg.paging.sms_max_parts,
                        ),
                        Channel::Voice => text::voice_page(inc),
                        Channel::Email => text::sms_page(inc, None, 10),
                    };
                    Some(PlannedPage {
                        channel,
                        at,
                        address,
                        subject: (channel == Channel::Email).then(|| text::email_subject(inc)),
                        body,
                    })
                })
                .collect();
            Some(TargetPlan {
                user: t.user,
                via: t.via,
                pages,
                unreachable,
            })
        })
        .collect();
    StepPlan {
        nobody_on_call,
        targets,
    }
}

/// Queues the pages of one step: the [`plan_step`] plan, with leading-edge grouping and the
/// per-person SMS rate limit applied, and the step on the timeline.
#[allow(clippy::too_many_arguments)]
fn page_step(
    conn: &Tx,
    plan: &Plan,
    policy: &Policy,
    route: Option<&Route>,
    inc: &Incident,
    step: usize,
    round: u32,
    overrides: &OverridesBySchedule,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let planned = plan_step(plan, policy, route, inc, step, overrides, now);
    queue_step(conn, plan, route, inc, step, round, &planned, now)
}

/// Writes a [`StepPlan`]: each person's pages (or their place in a digest), the step's timeline
/// entry, a loud note when it reached nobody, and on the first step the stakeholders' update.
#[allow(clippy::too_many_arguments)]
fn queue_step(
    conn: &Tx,
    plan: &Plan,
    route: Option<&Route>,
    inc: &Incident,
    step: usize,
    round: u32,
    planned: &StepPlan,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if planned.nobody_on_call {
        record(
            conn,
            Some(inc.id),
            now,
            EventKind::Escalation,
            None,
            &format!(
                "step {} (run {}): nobody is on call for this step",
                step + 1,
                round + 1
            ),
            None,
        )?;
        nobody_paged(conn, inc.id, step, round, "nobody is on call for it", now)?;
        return Ok(());
    }
    let mut said = Vec::new();
    // Whether this step queued anything for anybody (a page, or a place in a digest).
    let mut queued = false;
    for target in &planned.targets {
        let (how, any) = queue_target(conn, &plan.config, route, inc, step, target, now)?;
        queued |= any;
        said.push(format!(
            "{} ({}) by {}",
            target.user,
            target.via,
            if how.is_empty() {
                "no channel".into()
            } else {
                how.join(", ")
            }
        ));
    }
    record(
        conn,
        Some(inc.id),
        now,
        EventKind::Escalation,
        None,
        &format!(
            "step {} (run {}): paging {}",
            step + 1,
            round + 1,
            said.join("; ")
        ),
        Some(&serde_json::json!({ "step": step, "round": round })),
    )?;
    if !queued {
        nobody_paged(
            conn,
            inc.id,
            step,
            round,
            "no one it targets can be reached on an enabled channel",
            now,
        )?;
    }
    if step == 0 && round == 0 {
        stakeholder_update(conn, plan, route, inc, now)?;
    }
    Ok(())
}

/// Queues one person's planned pages. Returns how each was sent (for the step's timeline entry)
/// and whether anything was queued for them (a page, or a place in a digest).
fn queue_target(
    conn: &Tx,
    cfg: &Config,
    route: Option<&Route>,
    inc: &Incident,
    step: usize,
    target: &TargetPlan,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, bool), StoreError> {
    let user = &target.user;
    if let Some(lost) = &target.unreachable {
        let why = if lost.is_empty() {
            "no notification rule".to_string()
        } else {
            format!(
                "{} is off and no enabled channel reaches them",
                lost.iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        tracing::error!(incident = inc.id, %user, %why, "a person this step pages cannot be reached on any enabled channel");
        record(
            conn,
            Some(inc.id),
            now,
            EventKind::PageUnreachable,
            None,
            &format!("{user} cannot be paged: {why}"),
            Some(&serde_json::json!({ "user": user, "channels": lost })),
        )?;
    }
    let mut how = Vec::new();
    let mut queued = false;
    for page in &target.pages {
        let channel = page.channel;
        how.push(if page.at > now {
            format!("{channel} at {}", page.at.format("%H:%M:%S"))
        } else {
            channel.to_string()
        });
        if channel == Channel::Sms && page.at <= now {
            if let Some((why, until)) = hold_back(conn, cfg, route, user, now)? {
                hold_for_digest(conn, inc, user, &page.address, &why, until, now)?;
                queued = true;
                continue;
            }
        }
        outbox::enqueue_step_page(
            conn,
            &NewPage {
                kind: PageKind::Page,
                incident_id: Some(inc.id),
                user_id: Some(user.clone()),
                channel,
                address: page.address.clone(),
                subject: page.subject.clone(),
                body: page.body.clone(),
                priority: priority(inc.severity),
                due_at: page.at,
            },
            step,
            now,
        )?;
        queued = true;
    }
    Ok((how, queued))
}

/// Puts `inc` in `user`'s pending SMS digest (queueing one due at `until` if none waits) instead
/// of paging now, and says why on the timeline.
fn hold_for_digest(
    conn: &Tx,
    inc: &Incident,
    user: &str,
    address: &str,
    why: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The digest already waiting goes at its own time, which the timeline must say.
    let (digest, due) = match outbox::pending_digest(conn, user, Channel::Sms)? {
        Some(d) => (d.id, d.due_at),
        None => (
            outbox::enqueue(
                conn,
                &NewPage {
                    kind: PageKind::Digest,
                    incident_id: None,
                    user_id: Some(user.to_string()),
                    channel: Channel::Sms,
                    address: address.to_string(),
                    subject: None,
                    body: String::new(),
                    priority: priority(inc.severity),
                    due_at: until,
                },
                now,
            )?,
            until,
        ),
    };
    outbox::add_item(conn, digest, inc.id)?;
    record(
        conn,
        Some(inc.id),
        now,
        EventKind::PageGrouped,
        None,
        &format!(
            "sms to {user} held for a digest in {}s: {why}",
            (due - now).num_seconds().max(0)
        ),
        Some(&serde_json::json!({ "outbox_id": digest })),
    )?;
    Ok(())
}

/// Says loudly, on the timeline and in the log, that a step paged nobody at all. The incident is
/// then flagged on the status page and in `/healthz` ([`crate::store::pages::nobody_reached`])
/// until someone is paged for it or it is closed: an alert that reaches no one must never look
/// like one that is being handled.
fn nobody_paged(
    conn: &Tx,
    incident: crate::incident::IncidentId,
    step: usize,
    round: u32,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tracing::error!(
        incident,
        step = step + 1,
        run = round + 1,
        why,
        "NOBODY WAS PAGED for this incident"
    );
    record(
        conn,
        Some(incident),
        now,
        EventKind::PageUnreachable,
        None,
        &format!(
            "NOBODY WAS PAGED: step {} (run {}) reached nobody: {why}",
            step + 1,
            round + 1
        ),
        Some(&serde_json::json!({ "step": step, "round": round, "nobody": true })),
    )?;
    Ok(())
}

/// Whether an SMS to `user` now must wait for a digest, and until when: the grouping window
/// (another page of the same route went out to them less than `group_window` ago: leading edge,
/// so the first page of a storm is never delayed) or the rate limit.
fn hold_back(
    conn: &Tx,
    cfg: &Config,
    route: Option<&Route>,
    user: &str,
    now: DateTime<Utc>,
) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    let window = crate::clock::delta(cfg.paging.group_window);
    if let Some(route) = route {
        if !window.is_zero() {
            if let Some(last) = outbox::last_route_page(
                conn,
                user,
                Channel::Sms,
                &route.id,
                crate::clock::sub_signed(now, window),
                now,
            )? {
                return Ok(Some((
                    format!(
                        "another {} page went out at {}",
                        route.id,
                        last.format("%H:%M:%S")
                    ),
                    crate::clock::add_signed(last, window),
                )));
            }
        }
    }
    let rl_window = crate::clock::delta(cfg.paging.rate_limit_window);
    let sent = outbox::count_recent(
        conn,
        user,
        Channel::Sms,
        crate::clock::sub_signed(now, rl_window),
    )?;
    if sent >= cfg.paging.rate_limit_count as i64 {
        return Ok(Some((
            format!(
                "rate limit: {sent} SMS in the last {}",
                humantime::format_duration(cfg.paging.rate_limit_window)
            ),
            crate::clock::add_signed(now, rl_window / 2),
        )));
    }
    Ok(None)
}

/// Queues a short status message to the route's stakeholders (trigger, acknowledge, resolve).
fn stakeholder_update(
    conn: &Tx,
    plan: &Plan,
    route: Option<&Route>,
    inc: &Incident,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(route) = route else { return Ok(()) };
    if route.stakeholders.is_empty() {
        return Ok(());
    }
    let what = match (&inc.status, &inc.acknowledged, &inc.resolved) {
        (Status::Resolved, _, Some(t)) => format!("resolved by {}", t.by),
        (Status::Acknowledged, Some(t), _) => format!("acknowledged by {}", t.by),
        _ => format!("{} incident opened", inc.severity),
    };
    let body = text::status_update(inc, &what);
    for s in &route.stakeholders {
        let channel = if s.starts_with('+') {
            Channel::Sms
        } else {
            Channel::Email
        };
        if !plan.served.contains(&channel) {
            // A stakeholder's address fixes the channel; one that is off queues nothing.
            tracing::warn!(incident = inc.id, %channel, "status update not queued: its channel is off");
            record(
                conn,
                Some(inc.id),
                now,
                EventKind::StatusSkipped,
                None,
                &format!("status update to a stakeholder not sent: {channel} is off"),
                None,
            )?;
            continue;
        }
        outbox::enqueue(
            conn,
            &NewPage {
                kind: PageKind::Status,
                incident_id: Some(inc.id),
                user_id: None,
                channel,
                address: s.clone(),
                subject: (channel == Channel::Email)
                    .then(|| format!("[pagerbox] #{} {what}", inc.id)),
                body: body.clone(),
                priority: 0,
                due_at: now,
            },
            now,
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "engine/tests.rs"]
mod tests;
