//! What each command does to the store, run inside one store transaction together with the
//! reply it queues: an acknowledgement and its confirmation SMS commit together or not at all.
//!
//! Every function here takes the open connection and `now`, like `store::queries`, so the store
//! thread decides when to commit and tests can run them at any instant.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::command::{Command, Target};
use super::text::{clip, fit_list, shorten, when, when_zoned, HELP};
use crate::config::Config;
use crate::escalation::engine::{row_of, runtime_overrides, state_of};
use crate::escalation::{Event, Phase};
use crate::incident::{Actor, Channel, Incident, IncidentId, Status};
use crate::store::events::record;
use crate::store::kinds::EventKind;
use crate::store::outbox::{enqueue, NewPage, PageKind};
use crate::store::queries;
use crate::store::{escalations, overrides, pages};
use crate::store::{AlertAction, AlertOutcome, ListFilter, StoreError, Tx};

/// Replies are queued above every page priority (critical pages are 3): the person is waiting.
pub const REPLY_PRIORITY: i64 = 4;
/// How long `TAKE` lasts when the schedule has no handoff ahead (a single-person rotation).
pub const TAKE_FALLBACK: Duration = Duration::from_secs(12 * 3600);
/// How many of a user's newest pages `ACK` alone looks through for one still open.
const LAST_PAGED_SCAN: i64 = 200;
/// Most open incidents `STATUS` looks at.
const STATUS_SCAN: usize = 100;

/// Who sent a command and where the answer goes.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub config: Arc<Config>,
    /// The configured user.
    pub user: String,
    /// E.164 address for the reply, if there is one to send to.
    pub address: Option<String>,
    /// The path recorded on the timeline: `sms`, `missed-call`, `dtmf`.
    pub via: &'static str,
}

impl Sender {
    fn actor(&self) -> Actor {
        Actor::new(self.user.clone(), self.via)
    }

    fn when(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        when(self.config.daemon.time_zone, at, now)
    }

    /// A time of `schedule`, as its replies show it (see [`when_zoned`]).
    fn when_of(
        &self,
        schedule: &crate::schedule::Schedule,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> String {
        when_zoned(schedule.tz, self.config.daemon.time_zone, at, now)
    }
}

/// The answer to a command, before it is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub text: String,
    /// The incident it is about, so it shows on that timeline.
    pub incident: Option<IncidentId>,
}

impl Reply {
    fn new(text: impl Into<String>, incident: Option<IncidentId>) -> Reply {
        Reply {
            text: clip(&text.into(), 1),
            incident,
        }
    }
}

/// Queues `reply` to the sender in the outbox (if the sender has an address). Returns the
/// address it goes to.
pub(crate) fn queue_reply(
    conn: &Tx,
    sender: &Sender,
    reply: &Reply,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let Some(address) = &sender.address else {
        return Ok(None);
    };
    enqueue(
        conn,
        &NewPage {
            kind: PageKind::Reply,
            incident_id: reply.incident,
            user_id: Some(sender.user.clone()),
            channel: Channel::Sms,
            address: address.clone(),
            subject: None,
            body: reply.text.clone(),
            priority: REPLY_PRIORITY,
            due_at: now,
        },
        now,
    )?;
    Ok(Some(address.clone()))
}

/// Runs `cmd` for `sender` at `now` and returns the reply (not yet queued).
pub(crate) fn execute(
    conn: &Tx,
    sender: &Sender,
    cmd: &Command,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    match cmd {
        Command::Acknowledge(target) | Command::Resolve(target) => {
            let to = if matches!(cmd, Command::Acknowledge(_)) {
                Status::Acknowledged
            } else {
                Status::Resolved
            };
            let ids = match target {
                Target::Incident(id) => {
                    let Some(inc) = queries::incident(conn, *id)? else {
                        return Ok(not_found(*id));
                    };
                    if let Some(why) = refusal(conn, sender, &inc, now)? {
                        return Ok(Reply::new(why, Some(*id)));
                    }
                    vec![*id]
                }
                Target::LastPaged => {
                    let ids = last_paged(conn, &sender.user)?;
                    if ids.is_empty() {
                        return Ok(Reply::new(
                            "nothing paged to you is open. Send STATUS",
                            None,
                        ));
                    }
                    ids
                }
            };
            let reply = act(conn, sender, &ids, to, now)?;
            with_others(conn, sender, reply, &ids, to, now)
        }
        Command::Escalate(id) => escalate(conn, sender, *id, now),
        Command::Note { incident, text } => {
            if queries::incident(conn, *incident)?.is_none() {
                return Ok(not_found(*incident));
            }
            record(
                conn,
                Some(*incident),
                now,
                EventKind::Note,
                Some(&sender.actor()),
                text,
                None,
            )?;
            Ok(Reply::new(
                format!("#{incident} note added"),
                Some(*incident),
            ))
        }
        Command::Details(id) => details(conn, sender, *id, now),
        Command::OnCall => on_call(conn, sender, now),
        Command::Status => status(conn),
        Command::Take(duration) => take(conn, sender, *duration, now),
        Command::Page { service, summary } => page(conn, sender, service, summary, now),
        Command::Help => Ok(Reply::new(HELP, None)),
    }
}

fn not_found(id: IncidentId) -> Reply {
    Reply::new(format!("#{id} not found"), None)
}

/// `#42 already resolved by bob 03:12` / `#42 already acked by bob 03:12`, or `None` when the
/// incident can still move to `to`.
fn already(sender: &Sender, inc: &Incident, to: Status, now: DateTime<Utc>) -> Option<String> {
    let (what, t) = match (inc.status, to) {
        (Status::Resolved, _) => ("resolved", inc.resolved.as_ref()),
        (Status::Acknowledged, Status::Acknowledged) => ("acked", inc.acknowledged.as_ref()),
        _ => return None,
    };
    Some(match t {
        Some(t) => format!(
            "#{} already {what} by {} {}",
            inc.id,
            t.by,
            sender.when(t.at, now)
        ),
        None => format!("#{} already {what}", inc.id),
    })
}

/// Acknowledges or resolves `ids`; the reply names what changed, then what could not.
pub(crate) fn act(
    conn: &Tx,
    sender: &Sender,
    ids: &[IncidentId],
    to: Status,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    let mut changed = Vec::new();
    let mut others = Vec::new();
    for &id in ids {
        let Some(inc) = queries::incident(conn, id)? else {
            others.push(format!("#{id} not found"));
            continue;
        };
        if let Some(msg) = already(sender, &inc, to, now) {
            others.push(msg);
            continue;
        }
        let (_, did) = queries::transition(conn, id, to, &sender.actor(), now)?;
        if did {
            changed.push(format!("#{id}"));
        }
    }
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(match to {
            Status::Acknowledged => format!("{} acked by {}", changed.join(" "), sender.user),
            _ => format!("{} resolved", changed.join(" ")),
        });
    }
    parts.extend(others);
    if parts.is_empty() {
        parts.push(format!("nothing changed: {}", to));
    }
    let incident = if ids.len() == 1 && queries::incident(conn, ids[0])?.is_some() {
        Some(ids[0])
    } else {
        None
    };
    Ok(Reply::new(parts.join("; "), incident))
}

/// True when `cmd` acknowledges or resolves incidents paged to `user` (`ACK` alone always
/// means their own last page; `42a` only if #42 was in a page or digest for them, in any
/// state: a failed or queued page is still theirs to stop). Such a
/// command is carried out even over the rate limit: stopping one's own page must always work.
pub(crate) fn acts_on_own_page(conn: &Tx, user: &str, cmd: &Command) -> Result<bool, StoreError> {
    let target = match cmd {
        Command::Acknowledge(t) | Command::Resolve(t) => t,
        _ => return Ok(false),
    };
    Ok(match target {
        Target::LastPaged => true,
        Target::Incident(id) => pages::was_paged_to(conn, user, *id)?,
    })
}

/// The open incidents of the page or digest that most recently *reached* `user`'s phone and
/// still has any: what a person means by `ACK` alone is the page they just read or heard.
///
/// Reached means sent on SMS or voice (not `sending`: an SMS claimed but waiting for the modem
/// behind a call has not reached the phone), ordered by when it went out or was reported
/// delivered, never by when it was queued: a page queued before a digest, whose unanswered call fell back to SMS after the
/// digest went out, is the newer one for the person holding the phone. A page still waiting in
/// the outbox, or one that only went by email, is not what they are answering.
pub(crate) fn last_paged(conn: &Tx, user: &str) -> Result<Vec<IncidentId>, StoreError> {
    for page in pages::reached_phone(conn, user, LAST_PAGED_SCAN)? {
        let mut open = Vec::new();
        for id in page.incidents {
            if queries::incident(conn, id)?.is_some_and(|i| i.status.is_open()) {
                open.push(id);
            }
        }
        if !open.is_empty() {
            return Ok(open);
        }
    }
    Ok(Vec::new())
}

/// Why `sender` may not acknowledge or resolve `inc`, or `None` when they may.
///
/// The policy: a person may stop an incident that was paged to them (in a page or digest, in
/// any state), or one whose escalation policy (the one it follows now, else its route's) names
/// them directly or names a schedule they are on (in a layer, or by an override in force).
/// Anyone else is a configured user, but not one this incident concerns: acking it would stop
/// the escalation that is paging the people who are responsible, so they get a short refusal
/// that says why, and can still see it with `42?` or raise it with a note.
pub(crate) fn refusal(
    conn: &Tx,
    sender: &Sender,
    inc: &Incident,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    if pages::was_paged_to(conn, &sender.user, inc.id)? {
        return Ok(None);
    }
    let route_policy = || {
        let route = inc.route.as_deref()?;
        let r = sender.config.route(route)?;
        Some(r.policy.clone())
    };
    let Some(policy_id) = pages::escalation_policy(conn, inc.id)?.or_else(route_policy) else {
        return Ok(Some(format!(
            "#{} not changed: it was not paged to you and has no escalation policy",
            inc.id
        )));
    };
    let Some(policy) = sender.config.policies.iter().find(|p| p.id == policy_id) else {
        return Ok(Some(format!(
            "#{} not changed: it was not paged to you",
            inc.id
        )));
    };
    if policy.steps.iter().any(|s| s.users.contains(&sender.user)) {
        return Ok(None);
    }
    let overrides = runtime_overrides(conn, &sender.config, now)?;
    let on_schedule = |id: &str| {
        let in_layer = sender
            .config
            .schedules
            .iter()
            .filter(|s| s.id == id)
            .any(|s| s.layers.iter().any(|l| l.users.contains(&sender.user)));
        let by_override = overrides
            .get(id)
            .is_some_and(|list| list.iter().any(|o| o.user == sender.user));
        in_layer || by_override
    };
    if policy.schedule_ids().into_iter().any(on_schedule) {
        return Ok(None);
    }
    Ok(Some(format!(
        "#{} not changed: it was not paged to you and you are not on policy {}",
        inc.id, policy.id
    )))
}

/// How far back `ACK`/`RES` look for the sender's other open incidents to mention.
pub const RECENT_OTHERS: Duration = Duration::from_secs(60 * 60);

/// `reply` followed by the other incidents paged to the sender within [`RECENT_OTHERS`] that
/// the command left waiting, and how to stop each: `#9 acked by alice. Also open: #7 (7a)`.
/// Someone who acked the page they just read must not believe every page is stopped.
fn with_others(
    conn: &Tx,
    sender: &Sender,
    reply: Reply,
    done: &[IncidentId],
    to: Status,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    let since = crate::clock::sub(now, RECENT_OTHERS);
    let letter = if to == Status::Resolved { 'r' } else { 'a' };
    let mut items = Vec::new();
    for id in pages::paged_since(conn, &sender.user, since)? {
        if done.contains(&id) {
            continue;
        }
        let waiting = queries::incident(conn, id)?.is_some_and(|i| match to {
            Status::Resolved => i.status.is_open(),
            _ => i.status == Status::Triggered,
        });
        if waiting {
            items.push(format!("#{id} ({id}{letter})"));
        }
    }
    if items.is_empty() {
        return Ok(reply);
    }
    Ok(Reply {
        text: fit_list(&format!("{}. Also open: ", reply.text), &items, ", ", 1),
        incident: reply.incident,
    })
}

/// What a missed call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissedCall {
    /// The caller was paged within the window for a route that takes missed-call acks: the call
    /// is meant for us and can be rejected.
    pub meant: bool,
    /// The reply, when something was acknowledged.
    pub reply: Option<Reply>,
}

/// A missed call from `sender` at `now`: acknowledges the still-triggered incidents paged to them
/// within `window` whose route has `missed_call_ack = true`.
pub(crate) fn missed_call(
    conn: &Tx,
    sender: &Sender,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<MissedCall, StoreError> {
    let since = crate::clock::sub(now, window);
    // `updated_at` of a sent page is when it went out (or its delivery report came).
    let reached = pages::reached_between(conn, &sender.user, since, now)?;
    let takes_missed_call = |inc: &Incident| {
        inc.route.as_deref().is_some_and(|id| {
            sender
                .config
                .routes
                .iter()
                .any(|r| r.id == id && r.missed_call_ack)
        })
    };
    let mut meant = false;
    let mut ids: Vec<IncidentId> = Vec::new();
    for page in reached {
        for id in page.incidents {
            let Some(inc) = queries::incident(conn, id)? else {
                continue;
            };
            if !takes_missed_call(&inc) {
                continue;
            }
            meant = true;
            if inc.status == Status::Triggered && !ids.contains(&inc.id) {
                ids.push(inc.id);
            }
        }
    }
    if ids.is_empty() {
        return Ok(MissedCall { meant, reply: None });
    }
    let reply = act(conn, sender, &ids, Status::Acknowledged, now)?;
    Ok(MissedCall {
        meant,
        reply: Some(Reply::new(
            format!("{} (missed call)", reply.text),
            reply.incident,
        )),
    })
}

/// Escalate now: the pending step of the incident's escalation becomes due at `now`. The state
/// machine decides the new state ([`crate::escalation::EscalationState::apply`] with
/// [`Event::EscalateNow`]): escalating keeps its next step and makes it due; acknowledged goes
/// back to triggered and resumes where the ack stopped it. The engine's next pass (woken by this
/// commit) pages the step.
fn escalate(
    conn: &Tx,
    sender: &Sender,
    id: IncidentId,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    let Some(inc) = queries::incident(conn, id)? else {
        return Ok(not_found(id));
    };
    if let Some(msg) = already(sender, &inc, Status::Resolved, now) {
        return Ok(Reply::new(msg, Some(id)));
    }
    let Some(stored) = escalations::of_incident(conn, id)? else {
        return Ok(Reply::new(
            format!("#{id} has no escalation policy"),
            Some(id),
        ));
    };
    let state = state_of(&stored.row);
    match state.phase {
        Phase::Escalating { .. } | Phase::Acknowledged { .. } => {}
        Phase::Exhausted => {
            return Ok(Reply::new(
                format!("#{id} escalation exhausted: everyone was paged"),
                Some(id),
            ))
        }
        Phase::Resolved => return Ok(Reply::new(format!("#{id} is not escalating"), Some(id))),
    }
    // A policy a reload removed pages nobody: say so rather than promise an escalation.
    let Some(policy) = sender
        .config
        .policies
        .iter()
        .find(|p| p.id == stored.policy)
    else {
        return Ok(Reply::new(
            format!(
                "#{id} not escalated: its policy {} is no longer configured",
                stored.policy
            ),
            Some(id),
        ));
    };
    // A silence in force over the incident: the engine would hold the step again at once,
    // paging nobody. (The escalation's own mark of a hold can outlive the silence while the
    // incident is acknowledged, so the silences themselves are asked.)
    let mut silences: Vec<crate::silence::Silence> = sender
        .config
        .silences
        .iter()
        .filter_map(|s| s.in_force(now))
        .collect();
    silences.extend(crate::store::silences::active(conn, now)?);
    if let Some(s) = crate::silence::holding(&silences, &inc, now) {
        return Ok(Reply::new(
            format!(
                "#{id} not escalated: held by silence {}; it pages when that ends",
                s.id
            ),
            Some(id),
        ));
    }
    // Under the policy as a reload left it, as the engine will see it.
    let state = state.carried_over(policy);
    let Some(next) = state.apply(Event::EscalateNow { at: now }, policy) else {
        return Ok(Reply::new(format!("#{id} is not escalating"), Some(id)));
    };
    // Past the last step (a one-step policy run once, or its last step already paged) the engine
    // would end the escalation at once: say so rather than promise one.
    if !next.has_step_ahead(policy) {
        return Ok(Reply::new(
            format!(
                "#{id} not escalated: everyone on policy {} was already paged",
                stored.policy
            ),
            Some(id),
        ));
    }
    // Acknowledged (whether or not the engine has seen the ack yet): back to triggered, or the
    // engine would take the ack again and page nobody.
    if inc.status == Status::Acknowledged {
        queries::transition(conn, id, Status::Triggered, &sender.actor(), now)?;
    }
    escalations::save(conn, id, &stored.policy, &row_of(&next), now)?;
    record(
        conn,
        Some(id),
        now,
        EventKind::EscalateNow,
        Some(&sender.actor()),
        &format!(
            "escalate now requested by {} via {}",
            sender.user, sender.via
        ),
        None,
    )?;
    Ok(Reply::new(format!("#{id} escalating now"), Some(id)))
}

/// `#42 CRIT db: disk full. acked by alice 03:05. 3 alerts since 02:58. Runbook: URL`, in at
/// most two SMS; the summary is cut, the runbook never.
fn details(
    conn: &Tx,
    sender: &Sender,
    id: IncidentId,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    let Some(inc) = queries::incident(conn, id)? else {
        return Ok(not_found(id));
    };
    let state = match (&inc.status, &inc.acknowledged, &inc.resolved) {
        (Status::Resolved, _, Some(t)) => {
            format!("resolved by {} {}", t.by, sender.when(t.at, now))
        }
        (Status::Acknowledged, Some(t), _) => {
            format!("acked by {} {}", t.by, sender.when(t.at, now))
        }
        (s, _, _) => match owners(conn, id)?.as_slice() {
            [] => s.to_string(),
            users => format!("{s}, paged {}", users.join(",")),
        },
    };
    let runbook = inc
        .route
        .as_deref()
        .and_then(|r| sender.config.route(r))
        .and_then(|r| r.runbook.clone());
    let head = match crate::notify::text::service_shown(&inc) {
        Some(s) => format!("#{id} {} {s}: ", inc.severity.as_short()),
        None => format!("#{id} {} ", inc.severity.as_short()),
    };
    let tail = format!(
        ". {state}. {} alert{} since {}.{}",
        inc.alert_count,
        if inc.alert_count == 1 { "" } else { "s" },
        sender.when(inc.first_seen, now),
        runbook
            .map(|r| format!(" Runbook: {r}"))
            .unwrap_or_default()
    );
    let summary = inc.summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut n = summary.chars().count();
    loop {
        let text = format!("{head}{}{tail}", shorten(&summary, n));
        if crate::modem::pdu::fits(&text, 2) || n == 0 {
            return Ok(Reply {
                text: clip(&text, 2),
                incident: Some(id),
            });
        }
        n = n.saturating_sub(8.max(n / 8));
    }
}

/// Users paged for an incident, first paged first.
fn owners(conn: &Tx, id: IncidentId) -> Result<Vec<String>, StoreError> {
    Ok(pages::paged_users(conn, id)?)
}

/// `primary: alice until Mon 09:00; secondary: bob until 18:00`.
fn on_call(conn: &Tx, sender: &Sender, now: DateTime<Utc>) -> Result<Reply, StoreError> {
    let overrides = runtime_overrides(conn, &sender.config, now)?;
    let items: Vec<String> = sender
        .config
        .schedules
        .iter()
        .map(|s| {
            let rt = overrides.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
            match s.on_call(now, rt) {
                None => format!("{}: nobody", s.id),
                Some(o) => match o.until {
                    Some(u) => format!("{}: {} until {}", s.id, o.user, sender.when_of(s, u, now)),
                    None => format!("{}: {}", s.id, o.user),
                },
            }
        })
        .collect();
    if items.is_empty() {
        return Ok(Reply::new("no schedules configured", None));
    }
    Ok(Reply::new(fit_list("", &items, "; ", 1), None))
}

/// `2 open: #42 CRIT db disk full: acked alice; #43 ERR api 5xx: paged bob`.
fn status(conn: &Tx) -> Result<Reply, StoreError> {
    let mut open = queries::list(conn, ListFilter::Open, STATUS_SCAN)?;
    if open.is_empty() {
        return Ok(Reply::new("no open incidents", None));
    }
    // Oldest first: the one waiting longest leads.
    open.reverse();
    let mut items = Vec::new();
    for inc in &open {
        let owner = match (&inc.status, &inc.acknowledged) {
            (Status::Acknowledged, Some(t)) => format!("acked {}", t.by),
            _ => match owners(conn, inc.id)?.as_slice() {
                [] => "not paged".to_string(),
                users => format!("paged {}", users.join(",")),
            },
        };
        items.push(format!(
            "#{} {} {}: {owner}",
            inc.id,
            inc.severity.as_short(),
            shorten(&inc.summary, 20)
        ));
    }
    Ok(Reply::new(
        fit_list(&format!("{} open: ", open.len()), &items, "; ", 1),
        None,
    ))
}

/// `TAKE`: a runtime override for the sender on every schedule they are in a layer of, from now
/// until `duration` later or, without one, the schedule's next handoff.
fn take(
    conn: &Tx,
    sender: &Sender,
    duration: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    let overrides = runtime_overrides(conn, &sender.config, now)?;
    let add = |d: Duration| crate::clock::add(now, d);
    let mut taken = Vec::new();
    for s in &sender.config.schedules {
        if !s.layers.iter().any(|l| l.users.contains(&sender.user)) {
            continue;
        }
        let rt = overrides.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
        let until = match duration {
            Some(d) => add(d),
            None => s
                .next_handoff(now, rt)
                .filter(|t| *t > now)
                .unwrap_or_else(|| add(TAKE_FALLBACK)),
        };
        let override_id = overrides::insert(
            conn,
            &s.id,
            &sender.user,
            now,
            until,
            &format!("{} via {}", sender.user, sender.via),
            now,
        )?;
        record(
            conn,
            None,
            now,
            EventKind::Override,
            Some(&sender.actor()),
            &format!(
                "{} takes schedule {} until {}",
                sender.user,
                s.id,
                crate::schedule::format_local(s.tz, until)
            ),
            Some(
                &serde_json::json!({ "schedule": s.id, "until": until, "override_id": override_id }),
            ),
        )?;
        taken.push(format!("{} until {}", s.id, sender.when_of(s, until, now)));
    }
    if taken.is_empty() {
        return Ok(Reply::new("you are in no schedule: nothing to take", None));
    }
    Ok(Reply::new(
        fit_list("you are on call for ", &taken, ", ", 1),
        None,
    ))
}

/// `PAGE svc summary`: an incident through the normal intake path (routing, dedup, escalation).
fn page(
    conn: &Tx,
    sender: &Sender,
    service: &str,
    summary: &str,
    now: DateTime<Utc>,
) -> Result<Reply, StoreError> {
    let parsed = crate::escalation::ParsedAlert {
        action: AlertAction::Trigger,
        dedup_key: None,
        summary: crate::intake::formats::truncate(summary),
        // A person paging by hand means it is urgent.
        severity: crate::incident::Severity::Critical,
        source: Some(format!("sms:{}", sender.user)),
        service: Some(service.to_string()),
        details: serde_json::json!({ "raised_by": sender.user, "via": sender.via }),
        links: vec![],
        routing_key: None,
    };
    let input = crate::escalation::route_alert(&sender.config, parsed, sender.actor());
    Ok(match queries::apply_alert(conn, &input, now)? {
        AlertOutcome::Created(i) => Reply::new(format!("#{} opened", i.id), Some(i.id)),
        AlertOutcome::Repeated(i) => Reply::new(
            format!("#{} already open ({} alerts)", i.id, i.alert_count),
            Some(i.id),
        ),
        AlertOutcome::Changed(i) | AlertOutcome::Unchanged(i) => {
            Reply::new(format!("#{} is {}", i.id, i.status), Some(i.id))
        }
        AlertOutcome::NotFound(_) => Reply::new("not opened", None),
    })
}
