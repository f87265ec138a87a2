//! Heartbeat monitors' state (`heartbeats`, `heartbeat_watcher`). Every function takes `now`
//! and runs inside the store's transaction, so a ping, the incident it resolves and the new
//! deadline commit together, and tests can run them at any instant. The rules (what a restart
//! means for a deadline) are pure and live with the monitor's settings (`config::heartbeat`);
//! this file only reads and writes them. The monitor's state types are the table's, here.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::queries;
use super::Tx;
use super::{from_ms, ms};
use super::{AlertAction, AlertInput, Store, StoreError};
use crate::config::heartbeat::{resume, Heartbeat, Resume};
use crate::config::Config;
use crate::incident::{Actor, IncidentId, Status};

/// Whether a monitor is waiting for its next ping or has missed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Pinged (or just configured) and the deadline is ahead.
    Ok,
    /// The deadline passed; an incident was triggered; the next ping makes it `Ok`.
    Late,
}

/// A monitor's state, for `GET /v1/heartbeats` and `pagerbox heartbeat list`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeartbeatStatus {
    /// The monitor's id.
    pub id: String,
    /// `ok` (waiting for the next ping) or `late` (missed; incident triggered).
    pub state: State,
    /// When pagerbox started watching it.
    pub since: DateTime<Utc>,
    /// The last ping, if any.
    pub last_ping: Option<DateTime<Utc>>,
    /// Who sent the last ping (UDP: the address; HTTP: `http` and the client's product name).
    pub last_ping_from: Option<String>,
    /// Pings received since pagerbox started watching it.
    pub pings: i64,
    /// The next ping is due by then (past while late).
    pub due_at: DateTime<Utc>,
    /// The incident opened by the current miss, while late.
    pub incident_id: Option<IncidentId>,
    /// The configured interval.
    pub interval_seconds: f64,
    /// The configured grace.
    pub grace_seconds: f64,
    /// The route a miss is paged on.
    pub route: String,
}

/// One monitor's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub since: DateTime<Utc>,
    pub last_ping: Option<DateTime<Utc>>,
    pub last_ping_from: Option<String>,
    pub pings: i64,
    pub due_at: DateTime<Utc>,
    pub window_ms: i64,
    pub state: State,
    pub incident_id: Option<IncidentId>,
}

pub(crate) fn row(conn: &Tx, id: &str) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(
        "SELECT since, last_ping, last_ping_from, pings, due_at, window_ms, state, incident_id \
         FROM heartbeats WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let state: String = r.get(6)?;
        Ok(Row {
            since: from_ms(r.get(0)?),
            last_ping: r.get::<_, Option<i64>>(1)?.map(from_ms),
            last_ping_from: r.get(2)?,
            pings: r.get(3)?,
            due_at: from_ms(r.get(4)?),
            window_ms: r.get(5)?,
            state: if state == "late" {
                State::Late
            } else {
                State::Ok
            },
            incident_id: r.get(7)?,
        })
    })
    .optional()
}

/// A monitor fired: its id and the incident opened.
pub(crate) type Fired = (String, IncidentId);

fn window_ms(hb: &Heartbeat) -> i64 {
    hb.window().as_millis().min(i64::MAX as u128) as i64
}

/// When the watcher last ran, if it ever did.
pub(crate) fn alive_at(conn: &Tx) -> rusqlite::Result<Option<DateTime<Utc>>> {
    conn.prepare_cached("SELECT alive_at FROM heartbeat_watch WHERE id = 1")?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()
        .map(|t| t.map(from_ms))
}

/// Records that the watcher is running at `now`.
pub(crate) fn mark_alive(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO heartbeat_watch (id, alive_at) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET alive_at = excluded.alive_at",
    )?
    .execute([ms(now)])?;
    Ok(())
}

/// Brings the table in line with the configured monitors: a new monitor starts its clock at
/// `now`; a monitor whose interval or grace changed keeps its base (last ping or start) and gets
/// the new window. Monitors no longer configured are forgotten (an incident they opened stays
/// for a person to resolve), so one added back later starts a fresh clock instead of firing on
/// a deadline from before its removal.
pub(crate) fn sync(conn: &Tx, config: &Config, now: DateTime<Utc>) -> rusqlite::Result<()> {
    let stored: Vec<String> = conn
        .prepare_cached("SELECT id FROM heartbeats")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in stored {
        if !config.heartbeats.iter().any(|h| h.id == id) {
            conn.prepare_cached("DELETE FROM heartbeats WHERE id = ?1")?
                .execute([&id])?;
        }
    }
    for hb in &config.heartbeats {
        let w = window_ms(hb);
        match row(conn, &hb.id)? {
            None => {
                conn.prepare_cached(
                    "INSERT INTO heartbeats (id, since, due_at, window_ms, state) \
                     VALUES (?1, ?2, ?3, ?4, 'ok')",
                )?
                .execute(params![
                    hb.id,
                    ms(now),
                    ms(crate::clock::add(now, hb.window())),
                    w
                ])?;
            }
            Some(r) if r.window_ms != w => {
                // Saturating: a stored window from an older config may be anything.
                let due = ms(r.due_at)
                    .saturating_sub(r.window_ms)
                    .saturating_add(w)
                    .clamp(ms(DateTime::<Utc>::MIN_UTC), ms(DateTime::<Utc>::MAX_UTC));
                conn.prepare_cached(
                    "UPDATE heartbeats SET due_at = ?2, window_ms = ?3 WHERE id = ?1",
                )?
                .execute(params![hb.id, due, w])?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// After a (re)start: applies [`resume`] to each monitor using the time the watcher was last
/// known alive, then records that it is alive now. Returns the monitors fired.
pub(crate) fn startup(
    conn: &Tx,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<Fired>, StoreError> {
    let alive = alive_at(conn)?;
    sync(conn, config, now)?;
    let mut fired = Vec::new();
    for hb in &config.heartbeats {
        let Some(r) = row(conn, &hb.id)? else {
            continue;
        };
        if r.state == State::Late {
            continue;
        }
        match resume(r.due_at, alive, now, hb) {
            Resume::Keep => {}
            Resume::Extend(due) => {
                conn.prepare_cached("UPDATE heartbeats SET due_at = ?2 WHERE id = ?1")?
                    .execute(params![hb.id, ms(due)])?;
                tracing::info!(heartbeat = %hb.id, due_at = %due, "heartbeat deadline passed while pagerbox was briefly down; waiting one more window");
            }
            Resume::Fire { down_since } => {
                let why = format!(
                    "pagerbox was down from {} to {} (longer than the interval): no ping could be seen",
                    down_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                let id = fire(conn, config, hb, &r, now, &why)?;
                fired.push((hb.id.clone(), id));
            }
        }
    }
    mark_alive(conn, now)?;
    Ok(fired)
}

/// Fires every monitor whose deadline has passed (once: it is `late` until the next ping),
/// records that the watcher is alive, and returns the fired monitors and the earliest deadline
/// still ahead.
pub(crate) fn check(
    conn: &Tx,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(Vec<Fired>, Option<DateTime<Utc>>), StoreError> {
    sync(conn, config, now)?;
    let mut fired = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    for hb in &config.heartbeats {
        let Some(mut r) = row(conn, &hb.id)? else {
            continue;
        };
        if r.state == State::Late {
            match rearm_after_resolve(conn, hb, &r)? {
                Some(due) => r.due_at = due,
                None => continue,
            }
        }
        if r.due_at <= now {
            let why = format!("no ping within {}", humantime::format_duration(hb.window()));
            let id = fire(conn, config, hb, &r, now, &why)?;
            fired.push((hb.id.clone(), id));
        } else if next.is_none_or(|n| r.due_at < n) {
            next = Some(r.due_at);
        }
    }
    if !config.heartbeats.is_empty() {
        mark_alive(conn, now)?;
    }
    Ok((fired, next))
}

/// A late monitor whose incident someone resolved without a ping having come: watched again, a
/// whole window from the resolution, so a job that is still dead is reported again rather than
/// never (the person may have taken the miss for a blip). Returns the new deadline; `None` while
/// the incident is open (the monitor stays late: one incident per miss).
fn rearm_after_resolve(
    conn: &Tx,
    hb: &Heartbeat,
    r: &Row,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let resolved_at = match r.incident_id {
        Some(id) => match queries::incident(conn, id)? {
            Some(inc) if inc.status == Status::Resolved => inc.resolved.map(|t| t.at),
            Some(_) => return Ok(None),
            None => None,
        },
        None => None,
    };
    let from = resolved_at.unwrap_or(r.due_at);
    let due = crate::clock::add(from, hb.window());
    conn.prepare_cached(
        "UPDATE heartbeats SET state = 'ok', incident_id = NULL, due_at = ?2 WHERE id = ?1",
    )?
    .execute(params![hb.id, ms(due)])?;
    tracing::info!(heartbeat = %hb.id, due_at = %due, "heartbeat's incident was resolved without a ping; watching it again");
    Ok(Some(due))
}

/// Triggers the monitor's incident through its route, exactly as intake does for an alert, and
/// marks the monitor late.
fn fire(
    conn: &Tx,
    config: &Config,
    hb: &Heartbeat,
    r: &Row,
    now: DateTime<Utc>,
    why: &str,
) -> Result<IncidentId, StoreError> {
    let route = config.route(&hb.route);
    let summary = hb.summary.clone().unwrap_or_else(|| {
        format!(
            "heartbeat {} missed: no ping for {}",
            hb.id,
            humantime::format_duration(hb.window())
        )
    });
    let input = AlertInput {
        action: AlertAction::Trigger,
        dedup_key: Some(hb.dedup_key()),
        summary,
        severity: hb.severity,
        source: Some("heartbeat".into()),
        service: Some(hb.service.clone().unwrap_or_else(|| hb.id.clone())),
        details: serde_json::json!({
            "heartbeat": hb.id,
            "reason": why,
            "last_ping": r.last_ping,
            "last_ping_from": r.last_ping_from,
            "watching_since": r.since,
            "due_at": r.due_at,
            "interval": humantime::format_duration(hb.interval).to_string(),
            "grace": humantime::format_duration(hb.grace).to_string(),
        }),
        links: vec![],
        route: route.map(|x| x.id.clone()),
        policy: route.map(|x| x.policy.clone()),
        pre_page_delay: route.map(|x| x.pre_page_delay).unwrap_or_default(),
        page: true,
        actor: Actor::new("pagerbox", "heartbeat"),
    };
    let outcome = queries::apply_alert(conn, &input, now)?;
    let id = outcome
        .incident()
        .map(|i| i.id)
        .ok_or_else(|| StoreError::Invalid("heartbeat trigger opened no incident".into()))?;
    conn.prepare_cached("UPDATE heartbeats SET state = 'late', incident_id = ?2 WHERE id = ?1")?
        .execute(params![hb.id, id])?;
    tracing::warn!(heartbeat = %hb.id, incident = id, reason = why, "heartbeat missed: incident triggered");
    Ok(id)
}

/// Records a ping: the monitor is alive until `now + interval + grace`, and its open incident
/// (if any) is resolved. Returns the new deadline and the incident resolved.
pub(crate) fn ping(
    conn: &Tx,
    hb: &Heartbeat,
    from: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, Option<IncidentId>), StoreError> {
    let due = crate::clock::add(now, hb.window());
    conn.prepare_cached(
        "INSERT INTO heartbeats (id, since, last_ping, last_ping_from, pings, due_at, window_ms, state) \
         VALUES (?1, ?2, ?2, ?3, 1, ?4, ?5, 'ok') \
         ON CONFLICT (id) DO UPDATE SET last_ping = excluded.last_ping, \
         last_ping_from = excluded.last_ping_from, pings = pings + 1, due_at = excluded.due_at, \
         window_ms = excluded.window_ms, state = 'ok', incident_id = NULL",
    )?
    .execute(params![hb.id, ms(now), from, ms(due), window_ms(hb)])?;
    let mut resolved = None;
    if let Some(open) = queries::open_by_key(conn, &hb.dedup_key())? {
        let actor = Actor::new(from, "heartbeat");
        let (inc, changed) = queries::transition(conn, open.id, Status::Resolved, &actor, now)?;
        if changed {
            resolved = Some(inc.id);
        }
    }
    Ok((due, resolved))
}

/// The state of every configured monitor, in config order.
pub(crate) fn list(
    conn: &Tx,
    config: &Config,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<HeartbeatStatus>> {
    let mut out = Vec::new();
    for hb in &config.heartbeats {
        let r = row(conn, &hb.id)?;
        out.push(HeartbeatStatus {
            id: hb.id.clone(),
            state: r.as_ref().map(|r| r.state).unwrap_or(State::Ok),
            since: r.as_ref().map(|r| r.since).unwrap_or(now),
            last_ping: r.as_ref().and_then(|r| r.last_ping),
            last_ping_from: r.as_ref().and_then(|r| r.last_ping_from.clone()),
            pings: r.as_ref().map(|r| r.pings).unwrap_or(0),
            due_at: r
                .as_ref()
                .map(|r| r.due_at)
                .unwrap_or_else(|| crate::clock::add(now, hb.window())),
            incident_id: r.as_ref().and_then(|r| r.incident_id),
            interval_seconds: hb.interval.as_secs_f64(),
            grace_seconds: hb.grace.as_secs_f64(),
            route: hb.route.clone(),
        });
    }
    Ok(out)
}

/// The heartbeat operations, each one store job.
impl Store {
    /// Records a ping of `hb` from `from`; see [`ping`].
    pub async fn heartbeat_ping(
        &self,
        hb: Heartbeat,
        from: String,
    ) -> Result<(DateTime<Utc>, Option<IncidentId>), StoreError> {
        self.call(move |c, now| ping(c, &hb, &from, now)).await
    }

    /// The state of every monitor of `config` (read connection); see [`list`].
    pub async fn heartbeats(
        &self,
        config: std::sync::Arc<Config>,
    ) -> Result<Vec<HeartbeatStatus>, StoreError> {
        self.read(move |c, now| Ok(list(c, &config, now)?)).await
    }

    /// One pass of the watcher: on its first pass after a start (`first`) the restart rule
    /// ([`startup`]), then the overdue monitors ([`check`]). Returns what fired and the next
    /// deadline.
    pub async fn heartbeat_pass(
        &self,
        config: std::sync::Arc<Config>,
        first: bool,
    ) -> Result<(Vec<Fired>, Option<DateTime<Utc>>), StoreError> {
        self.call(move |conn, now| {
            let mut fired = if first && !config.heartbeats.is_empty() {
                startup(conn, &config, now)?
            } else {
                Vec::new()
            };
            let (more, next) = check(conn, &config, now)?;
            fired.extend(more);
            Ok((fired, next))
        })
        .await
    }

    /// Records that the watcher was alive until now (it is stopping); see [`mark_alive`].
    pub async fn heartbeat_watcher_alive(&self) -> Result<(), StoreError> {
        self.call(|c, now| Ok(mark_alive(c, now)?)).await
    }
}

/// Moves the monitors' times `back` ms earlier after the wall clock was stepped back (see
/// `store::rewind`): a ping is still missed after its window in real time, not the window plus
/// the step, and the watcher's last sign of life is not left in the future.
pub(super) fn rewind(conn: &Tx, back: i64, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let now = ms(now);
    let moved = conn.execute(
        "UPDATE heartbeats SET due_at = due_at - ?1 WHERE due_at > ?2",
        params![back, now],
    )?;
    for sql in [
        "UPDATE heartbeats SET since = since - ?1 WHERE since > ?2",
        "UPDATE heartbeats SET last_ping = last_ping - ?1 WHERE last_ping > ?2",
        "UPDATE heartbeat_watch SET alive_at = alive_at - ?1 WHERE alive_at > ?2",
    ] {
        conn.execute(sql, params![back, now])?;
    }
    Ok(moved)
}
