//! Runtime schedule overrides ("I take the pager"), kept in SQLite so they survive restarts.

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::schedule::{Override, OverrideSource, OverridesBySchedule};

use super::events::record;
use super::kinds::EventKind;
use super::Tx;
use super::{from_ms, ms};

/// A stored runtime override.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredOverride {
    pub id: i64,
    pub schedule_id: String,
    pub user_id: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

/// Adds an override and notes it on the timeline (no incident).
pub fn add(
    conn: &Tx,
    schedule: &str,
    user: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    by: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    let id = insert(conn, schedule, user, from, until, by, now)?;
    record(
        conn,
        None,
        now,
        EventKind::Override,
        None,
        &format!("{user} on call for {schedule} from {from} until {until} (by {by})"),
        Some(&serde_json::json!({ "override_id": id })),
    )?;
    Ok(id)
}

/// Adds an override without a timeline note, for a caller that writes its own (the `TAKE`
/// command says who took what in words of its own). Returns its id.
pub fn insert(
    conn: &Tx,
    schedule: &str,
    user: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    by: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO overrides (schedule_id, user_id, from_at, until_at, created_at, created_by) VALUES (?1,?2,?3,?4,?5,?6)",
    )?
    .execute(params![schedule, user, ms(from), ms(until), ms(now), by])?;
    Ok(conn.last_insert_rowid())
}

/// Overrides of a schedule that have not ended and are not deleted.
pub fn list(
    conn: &Tx,
    schedule: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<StoredOverride>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, schedule_id, user_id, from_at, until_at, created_at, created_by FROM overrides \
         WHERE schedule_id=?1 AND deleted_at IS NULL AND until_at > ?2 ORDER BY from_at, id",
    )?;
    let rows = stmt.query_map(params![schedule, ms(now)], |r| {
        Ok(StoredOverride {
            id: r.get(0)?,
            schedule_id: r.get(1)?,
            user_id: r.get(2)?,
            from: from_ms(r.get(3)?),
            until: from_ms(r.get(4)?),
            created_at: from_ms(r.get(5)?),
            created_by: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Deletes an override of a schedule; returns whether one was deleted.
pub fn delete(
    conn: &Tx,
    schedule: &str,
    id: i64,
    by: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE overrides SET deleted_at=?3 WHERE id=?1 AND schedule_id=?2 AND deleted_at IS NULL",
        params![id, schedule, ms(now)],
    )?;
    if n > 0 {
        record(
            conn,
            None,
            now,
            EventKind::OverrideDeleted,
            None,
            &format!("override {id} of {schedule} deleted by {by}"),
            Some(&serde_json::json!({ "override_id": id })),
        )?;
    }
    Ok(n > 0)
}

/// Runtime overrides in force now or later, by schedule.
pub fn in_force(conn: &Tx, now: DateTime<Utc>) -> rusqlite::Result<OverridesBySchedule> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, schedule_id, user_id, from_at, until_at FROM overrides \
         WHERE deleted_at IS NULL AND until_at > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([ms(now)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out: OverridesBySchedule = std::collections::HashMap::new();
    for row in rows {
        let (id, schedule, user, from, until) = row?;
        if let Ok(o) = Override::new(
            Some(id),
            user,
            from_ms(from),
            from_ms(until),
            OverrideSource::Runtime,
        ) {
            out.entry(schedule).or_default().push(o);
        }
    }
    Ok(out)
}

/// [`in_force`] read from the database file at `path` over a read-only connection, for tools
/// that run beside the daemon (`pagerbox check`, `oncall`) and for the daemon's own reachability
/// warnings before its store is open. No database yet (or an unreadable one) means no runtime
/// overrides.
pub fn in_force_at(path: &std::path::Path, now: DateTime<Utc>) -> OverridesBySchedule {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Default::default();
    };
    in_force(&Tx::job(&conn), now).unwrap_or_default()
}
