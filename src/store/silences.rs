//! Runtime silences in SQLite, and the hold marks the engine leaves on escalations.
//!
//! Every function runs inside the caller's store transaction and takes `now`, like
//! [`super::queries`]; the matching rules are [`crate::silence`]'s. A silence row is never deleted: expiring it sets `expired_at`, so the list
//! can show what held incidents recently. `escalations.silenced_by` names the silence (by
//! [`SilenceId::key`]) that postponed an escalation's due step to its end; [`stale_holds`] finds
//! such a step when that silence ended early (expired, or a config window changed), and the
//! engine makes it due at once through the escalation state machine.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::events::record;
use super::kinds::EventKind;
use super::Tx;
use super::{from_ms, ms};
use super::{Store, StoreError};
use crate::config::Config;
use crate::incident::{Actor, IncidentId};
use crate::silence::{Matcher, Silence, SilenceId};

/// A silence as listed over the API: the silence plus its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSilence {
    #[serde(flatten)]
    pub silence: Silence,
    /// `pending`, `active`, `expired` (ended early by someone) or `ended`.
    pub state: &'static str,
    pub created_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
}

impl StoredSilence {
    /// The listing view of a silence at `now`.
    pub fn at(silence: Silence, expired_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let state = if expired_at.is_some() {
            "expired"
        } else if now < silence.starts_at {
            "pending"
        } else if now < silence.ends_at {
            "active"
        } else {
            "ended"
        };
        StoredSilence {
            silence,
            state,
            created_at: None,
            expired_at,
        }
    }
}

const COLUMNS: &str =
    "id, service, matchers, starts_at, ends_at, comment, created_by, created_at, expired_at";

fn from_row(r: &Row<'_>, now: DateTime<Utc>) -> rusqlite::Result<StoredSilence> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let matchers: String = r.get(2)?;
    let matchers: Vec<String> =
        serde_json::from_str(&matchers).map_err(|e| bad(2, e.to_string()))?;
    let matchers = matchers
        .iter()
        .map(|m| Matcher::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(2, e.to_string()))?;
    let silence = Silence {
        id: SilenceId::Runtime(r.get(0)?),
        service: r.get(1)?,
        matchers,
        starts_at: from_ms(r.get(3)?),
        ends_at: from_ms(r.get(4)?),
        comment: r.get(5)?,
        created_by: r.get(6)?,
        repeat: None,
    };
    let mut s = StoredSilence::at(silence, r.get::<_, Option<i64>>(8)?.map(from_ms), now);
    s.created_at = Some(from_ms(r.get(7)?));
    Ok(s)
}

/// Stores a new runtime silence (its id is ignored: the row id becomes its id) and notes it on
/// the global timeline. Returns it with its id.
pub fn add(conn: &Tx, silence: &Silence, now: DateTime<Utc>) -> rusqlite::Result<StoredSilence> {
    let matchers: Vec<String> = silence.matchers.iter().map(Matcher::to_string).collect();
    conn.prepare_cached(
        "INSERT INTO silences (service, matchers, starts_at, ends_at, comment, created_by, created_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?
    .execute(params![
        silence.service,
        serde_json::to_string(&matchers).unwrap_or_else(|_| "[]".into()),
        ms(silence.starts_at),
        ms(silence.ends_at),
        silence.comment,
        silence.created_by,
        ms(now),
    ])?;
    let id = conn.last_insert_rowid();
    let mut stored = Silence {
        id: SilenceId::Runtime(id),
        ..silence.clone()
    };
    stored.created_by = silence.created_by.clone();
    record(
        conn,
        None,
        now,
        EventKind::Silence,
        silence
            .created_by
            .as_deref()
            .map(|b| Actor::new(b, "api"))
            .as_ref(),
        &format!(
            "silence #{id} added: {} .. {}",
            silence.starts_at.format("%Y-%m-%d %H:%M:%S UTC"),
            silence.ends_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Some(&serde_json::json!({ "silence_id": id })),
    )?;
    let mut out = StoredSilence::at(stored, None, now);
    out.created_at = Some(now);
    Ok(out)
}

/// Runtime silences in force at `now` (not expired, started, not ended). Fails open: a row that
/// cannot be read back (a matcher a newer regex engine refuses) is logged and skipped, so the
/// incidents it would hold page rather than the whole escalation pass failing.
pub fn active(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<Vec<Silence>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM silences WHERE expired_at IS NULL AND starts_at <= ?1 AND ends_at > ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([ms(now)], |r| from_row(r, now))?;
    let mut out = Vec::new();
    for row in rows {
        match row {
            Ok(s) => out.push(s.silence),
            Err(e @ rusqlite::Error::FromSqlConversionFailure(..)) => {
                tracing::error!(error = %e, "unreadable silence ignored; what it would hold pages as usual")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Runtime silences that have not ended, or ended (or were expired) at or after `since`; newest
/// first.
pub fn list(
    conn: &Tx,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> rusqlite::Result<Vec<StoredSilence>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM silences WHERE min(ends_at, coalesce(expired_at, ends_at)) >= ?1 ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map([ms(since)], |r| from_row(r, now))?;
    rows.collect()
}

/// The runtime silence with this id.
pub fn by_id(conn: &Tx, id: i64, now: DateTime<Utc>) -> rusqlite::Result<Option<StoredSilence>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM silences WHERE id = ?1"))?
        .query_row([id], |r| from_row(r, now))
        .optional()
}

/// Ends a runtime silence now. Returns the silence and whether this call expired it (`false`:
/// it had already ended or been expired); `None` when there is no such silence. The engine
/// releases the escalations it held in its next pass (woken by this commit).
pub fn expire(
    conn: &Tx,
    id: i64,
    by: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<(StoredSilence, bool)>> {
    let changed = conn
        .prepare_cached(
            "UPDATE silences SET expired_at = ?2 WHERE id = ?1 AND expired_at IS NULL AND ends_at > ?2",
        )?
        .execute(params![id, ms(now)])?
        > 0;
    if changed {
        let actor = Actor::new(by, "api");
        record(
            conn,
            None,
            now,
            EventKind::Silence,
            Some(&actor),
            &format!("silence #{id} expired by {}", actor.who),
            Some(&serde_json::json!({ "silence_id": id })),
        )?;
    }
    Ok(by_id(conn, id, now)?.map(|s| (s, changed)))
}

/// How many escalations a silence holds now: incidents that would page but wait for a silence
/// (runtime or a config window) to end. For `/healthz` and `/metrics`, so a silence that holds
/// more than meant (too long, too wide) shows at the box level, not only on each timeline.
pub fn held_count(conn: &Tx) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM escalations WHERE silenced_by IS NOT NULL AND phase = 'escalating'",
    )?
    .query_row([], |r| r.get(0))
}

/// Marks (or clears, with `None`) which silence holds an incident's escalation.
pub fn set_hold(conn: &Tx, incident: IncidentId, silence: Option<&str>) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE escalations SET silenced_by = ?2 WHERE incident_id = ?1")?
        .execute(params![incident, silence])?;
    Ok(())
}

/// The incidents whose held step waits for a silence that is no longer active at `now`
/// (expired early, removed from the config) or now ends at another time (a config window
/// edited). The engine makes each step due at once and decides again: page, or hold under
/// another silence.
pub fn stale_holds(
    conn: &Tx,
    active: &[Silence],
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<IncidentId>> {
    let keys: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT silenced_by FROM escalations \
             WHERE silenced_by IS NOT NULL AND phase = 'escalating' AND due_at > ?1",
        )?
        .query_map([ms(now)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stale = Vec::new();
    for key in keys {
        // A still-active silence keeps the rows whose due time is its end.
        let keep = active
            .iter()
            .find(|s| s.id.key() == key && s.active_at(now))
            .map(|s| ms(s.ends_at));
        let rows = conn
            .prepare_cached(
                "SELECT incident_id FROM escalations \
                 WHERE silenced_by = ?1 AND phase = 'escalating' AND due_at > ?2 \
                   AND (?3 IS NULL OR due_at <> ?3) ORDER BY incident_id",
            )?
            .query_map(params![key, ms(now), keep], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<IncidentId>>>()?;
        stale.extend(rows);
    }
    Ok(stale)
}

/// The silence operations the API runs, each one store job.
impl Store {
    /// Adds the silence `build` makes from the store's `now` (it may refuse with
    /// [`StoreError::Invalid`], e.g. a window already over); returns it as stored.
    pub async fn add_silence<F>(&self, build: F) -> Result<StoredSilence, StoreError>
    where
        F: FnOnce(DateTime<Utc>) -> Result<Silence, StoreError> + Send + 'static,
    {
        self.call(move |c, now| {
            let s = build(now)?;
            Ok(add(c, &s, now)?)
        })
        .await
    }

    /// Runtime silences and `config`'s windows that are pending, active, or ended within
    /// `recent`: runtime ones newest first, then the config's.
    pub async fn silences(
        &self,
        recent: chrono::Duration,
        config: std::sync::Arc<Config>,
    ) -> Result<Vec<StoredSilence>, StoreError> {
        self.call(move |c, now| {
            let since = crate::clock::sub_signed(now, recent);
            let mut list = list(c, now, since)?;
            list.extend(
                config
                    .silences
                    .iter()
                    .map(|s| s.current(now))
                    .filter(|s| s.ends_at >= since)
                    .map(|s| StoredSilence::at(s, None, now)),
            );
            Ok(list)
        })
        .await
    }

    /// Expires runtime silence `n` now, on behalf of `who`; see [`expire`].
    pub async fn expire_silence(
        &self,
        n: i64,
        who: String,
    ) -> Result<Option<(StoredSilence, bool)>, StoreError> {
        self.call(move |c, now| Ok(expire(c, n, &who, now)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{migrate, MIGRATIONS};

    fn db() -> Tx<'static> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), MIGRATIONS.len() as u32);
        Tx::owned(c)
    }

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(min)
    }

    fn new(service: &str, matchers: &[&str], from: i64, to: i64) -> Silence {
        let mut s = Silence::new(
            SilenceId::Runtime(0),
            Some(service.into()),
            matchers
                .iter()
                .map(|m| Matcher::parse(m).unwrap())
                .collect(),
            t(from),
            t(to),
            "db upgrade".into(),
        )
        .unwrap();
        s.created_by = Some("alice".into());
        s
    }

    #[test]
    fn add_list_active_and_expire() {
        let c = db();
        let a = add(&c, &new("db", &["env=prod", "host=~db.*"], 0, 60), t(0)).unwrap();
        let b = add(&c, &new("web", &[], 30, 90), t(0)).unwrap();
        assert_eq!(a.silence.id, SilenceId::Runtime(1));
        assert_eq!(b.state, "pending");
        let got = by_id(&c, 1, t(1)).unwrap().unwrap();
        assert_eq!(
            got.silence.matchers, a.silence.matchers,
            "matchers round-trip"
        );
        assert_eq!(got.silence.created_by.as_deref(), Some("alice"));
        assert_eq!(got.state, "active");
        let ids = |v: Vec<Silence>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(active(&c, t(10)).unwrap()), [SilenceId::Runtime(1)]);
        assert_eq!(
            ids(active(&c, t(45)).unwrap()),
            [SilenceId::Runtime(1), SilenceId::Runtime(2)]
        );
        let (expired, changed) = expire(&c, 1, "bob", t(50)).unwrap().unwrap();
        assert!(changed);
        assert_eq!(expired.state, "expired");
        assert_eq!(expired.expired_at, Some(t(50)));
        assert!(!expire(&c, 1, "bob", t(51)).unwrap().unwrap().1, "twice");
        assert!(expire(&c, 9, "bob", t(51)).unwrap().is_none());
        assert_eq!(ids(active(&c, t(50)).unwrap()), [SilenceId::Runtime(2)]);
        // An ended silence cannot be expired.
        assert!(!expire(&c, 2, "bob", t(95)).unwrap().unwrap().1);
        // The list keeps recently ended ones.
        let listed: Vec<_> = list(&c, t(95), t(40))
            .unwrap()
            .into_iter()
            .map(|s| (s.silence.id, s.state))
            .collect();
        assert_eq!(
            listed,
            [
                (SilenceId::Runtime(2), "ended"),
                (SilenceId::Runtime(1), "expired")
            ]
        );
        assert_eq!(list(&c, t(95), t(91)).unwrap().len(), 0);
    }

    #[test]
    fn an_unreadable_silence_fails_open() {
        let c = db();
        add(&c, &new("db", &[], 0, 60), t(0)).unwrap();
        c.execute(
            "INSERT INTO silences (service, matchers, starts_at, ends_at, comment, created_at) \
             VALUES ('web', '[\"x=~(\"]', ?1, ?2, 'broken', ?1)",
            params![ms(t(0)), ms(t(60))],
        )
        .unwrap();
        let got: Vec<_> = active(&c, t(1))
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(got, [SilenceId::Runtime(1)]);
    }

    #[test]
    fn holds_of_silences_that_ended_early_are_stale() {
        let c = db();
        c.conn().execute_batch(
            "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen) VALUES \
               (1,'a','triggered','critical','s',0,0),(2,'b','triggered','critical','s',0,0);",
        )
        .unwrap();
        let s = add(&c, &new("db", &[], 0, 60), t(0)).unwrap().silence;
        for id in [1, 2] {
            c.execute(
                "INSERT INTO escalations (incident_id, policy, phase, next_step, next_round, due_at, since, updated_at) \
                 VALUES (?1,'p','escalating',0,0,?2,0,0)",
                params![id, ms(t(60))],
            )
            .unwrap();
            set_hold(&c, id, Some(&s.id.key())).unwrap();
        }
        assert!(stale_holds(&c, std::slice::from_ref(&s), t(10))
            .unwrap()
            .is_empty());
        expire(&c, 1, "bob", t(20)).unwrap();
        let now_active = active(&c, t(20)).unwrap();
        assert_eq!(stale_holds(&c, &now_active, t(20)).unwrap(), [1, 2]);
        // A config window whose end moved releases too.
        let mut moved = s.clone();
        moved.ends_at = t(30);
        assert_eq!(stale_holds(&c, &[moved], t(25)).unwrap(), [1, 2]);
    }
}
