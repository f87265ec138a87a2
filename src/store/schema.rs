//! Schema migrations, keyed on `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the database from version `i` to `i + 1` and runs in the
//! same transaction as the version bump, so a crash mid-migration leaves the old version intact.
//! Migrations are only ever appended; an old one is never edited.

use rusqlite::Connection;

/// Ordered migrations; index `i` upgrades version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: incidents and their timeline.
    r#"
    CREATE TABLE incidents (
        id               INTEGER PRIMARY KEY,
        dedup_key        TEXT    NOT NULL,
        status           TEXT    NOT NULL CHECK (status IN ('triggered','acknowledged','resolved')),
        severity         TEXT    NOT NULL CHECK (severity IN ('critical','error','warning','info')),
        summary          TEXT    NOT NULL,
        source           TEXT,
        service          TEXT,
        route            TEXT,
        details          TEXT    NOT NULL DEFAULT 'null',
        links            TEXT    NOT NULL DEFAULT '[]',
        alert_count      INTEGER NOT NULL DEFAULT 1,
        first_seen       INTEGER NOT NULL,
        last_seen        INTEGER NOT NULL,
        acknowledged_at  INTEGER,
        acknowledged_by  TEXT,
        acknowledged_via TEXT,
        resolved_at      INTEGER,
        resolved_by      TEXT,
        resolved_via     TEXT
    );
    -- At most one open incident per key: a trigger for an open key only bumps its count.
    CREATE UNIQUE INDEX incidents_open_key ON incidents(dedup_key) WHERE status <> 'resolved';
    CREATE INDEX incidents_status ON incidents(status, id);

    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER REFERENCES incidents(id),
        at          INTEGER NOT NULL,
        kind        TEXT    NOT NULL,
        actor       TEXT,
        via         TEXT,
        message     TEXT    NOT NULL,
        data        TEXT
    );
    CREATE INDEX events_incident ON events(incident_id, id);

    -- PagerDuty change events: recorded on the service's timeline, never paged.
    CREATE TABLE changes (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        service  TEXT,
        source   TEXT,
        summary  TEXT    NOT NULL,
        details  TEXT    NOT NULL DEFAULT 'null',
        links    TEXT    NOT NULL DEFAULT '[]'
    );
    "#,
    // 2: escalation state, the notification outbox and runtime schedule overrides.
    r#"
    -- The next due escalation step of each open incident. Written in the same transaction as the
    -- incident, so an accepted incident always has its paging state.
    CREATE TABLE escalations (
        incident_id  INTEGER PRIMARY KEY REFERENCES incidents(id),
        policy       TEXT    NOT NULL,
        -- escalation::Phase: 'escalating', 'acknowledged', 'exhausted', 'resolved'
        phase        TEXT    NOT NULL,
        -- The next step and run (NULL step: the next thing is exhaustion).
        next_step    INTEGER,
        next_round   INTEGER NOT NULL DEFAULT 0,
        -- Escalating: when the next thing is due. Acknowledged: when the ack times out.
        due_at       INTEGER,
        -- When the phase was set; a clock found before it went backwards.
        since        INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX escalations_due ON escalations(phase, due_at);

    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        -- 'page' (one incident), 'digest' (several incidents grouped or held back by the rate
        -- limit, listed in outbox_items), 'status' (stakeholder update), 'reply' (SMS answer).
        kind        TEXT    NOT NULL DEFAULT 'page',
        incident_id INTEGER REFERENCES incidents(id),
        user_id     TEXT,
        channel     TEXT    NOT NULL CHECK (channel IN ('sms','voice','email')),
        address     TEXT    NOT NULL,
        subject     TEXT,
        body        TEXT    NOT NULL,
        priority    INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        -- Attempts on this channel since the page fell through to it.
        channel_attempts INTEGER NOT NULL DEFAULT 0,
        channel_since    INTEGER NOT NULL,
        state       TEXT    NOT NULL CHECK (state IN ('pending','sending','sent','delivered','failed','cancelled')),
        reference   TEXT,
        last_error  TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE outbox_items (
        outbox_id   INTEGER NOT NULL REFERENCES outbox(id),
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        PRIMARY KEY (outbox_id, incident_id)
    );
    CREATE INDEX outbox_due ON outbox(state, channel, priority DESC, due_at, id);
    CREATE INDEX outbox_user ON outbox(user_id, channel, created_at);
    CREATE INDEX outbox_incident ON outbox(incident_id);

    CREATE TABLE overrides (
        id          INTEGER PRIMARY KEY,
        schedule_id TEXT    NOT NULL,
        user_id     TEXT    NOT NULL,
        from_at     INTEGER NOT NULL,
        until_at    INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        created_by  TEXT,
        deleted_at  INTEGER,
        CHECK (until_at > from_at)
    );
    CREATE INDEX overrides_schedule ON overrides(schedule_id, until_at);
    "#,
    // 3: shift notices already sent, so a restart never sends one twice.
    r#"
    CREATE TABLE shift_notices (
        schedule_id TEXT    NOT NULL,
        user_id     TEXT    NOT NULL,
        shift_from  INTEGER NOT NULL,
        sent_at     INTEGER NOT NULL,
        PRIMARY KEY (schedule_id, user_id, shift_from)
    );
    "#,
    // 4: outcomes of provider requests answered "accepted, will be processed" (Opsgenie's
    // requestId), for the request-status endpoint; pruned after store::requests::KEEP.
    r#"
    CREATE TABLE integration_requests (
        request_id  TEXT    PRIMARY KEY,
        at          INTEGER NOT NULL,
        action      TEXT    NOT NULL,
        success     INTEGER NOT NULL,
        status      TEXT    NOT NULL,
        incident_id INTEGER,
        alias       TEXT
    );
    CREATE INDEX integration_requests_at ON integration_requests(at);
    "#,
    // 5: runtime silences (the config's maintenance windows are not stored), and which
    // silence holds an escalation's due step (crate::silence).
    r#"
    CREATE TABLE silences (
        id          INTEGER PRIMARY KEY,
        service     TEXT,
        -- JSON array of matchers as written: ["alertname=DiskFull", "instance=~db.*"]
        matchers    TEXT    NOT NULL DEFAULT '[]',
        starts_at   INTEGER NOT NULL,
        ends_at     INTEGER NOT NULL,
        comment     TEXT    NOT NULL,
        created_by  TEXT,
        created_at  INTEGER NOT NULL,
        -- Set when someone ended the silence early.
        expired_at  INTEGER,
        CHECK (ends_at > starts_at)
    );
    CREATE INDEX silences_ends ON silences(ends_at);
    -- silence::SilenceId::key of the silence that postponed the due step to its end.
    ALTER TABLE escalations ADD COLUMN silenced_by TEXT;
    CREATE INDEX escalations_silenced ON escalations(silenced_by) WHERE silenced_by IS NOT NULL;
    "#,
    // 6: heartbeat monitors (dead-man's switches) and when the daemon was last known running.
    r#"
    CREATE TABLE heartbeats (
        id             TEXT    PRIMARY KEY,
        -- When pagerbox started watching this monitor (its clock before the first ping).
        since          INTEGER NOT NULL,
        last_ping      INTEGER,
        last_ping_from TEXT,
        pings          INTEGER NOT NULL DEFAULT 0,
        -- A ping must arrive before this, or an incident is triggered.
        due_at         INTEGER NOT NULL,
        -- interval + grace that due_at was computed with, so a config change can move it.
        window_ms      INTEGER NOT NULL,
        state          TEXT    NOT NULL CHECK (state IN ('ok','late')),
        incident_id    INTEGER REFERENCES incidents(id)
    );
    -- One row: the last instant the heartbeat watcher was known to run, so a restart can tell
    -- how long the box was down.
    CREATE TABLE heartbeat_watch (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        alive_at INTEGER NOT NULL
    );
    "#,
    // 7: self-test runs of the paging path (selftest module): each step with its timing, as JSON.
    r#"
    CREATE TABLE selftest_runs (
        id          INTEGER PRIMARY KEY,
        trigger     TEXT    NOT NULL,
        code        TEXT    NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        ok          INTEGER NOT NULL,
        failed_step TEXT,
        steps       TEXT    NOT NULL
    );
    CREATE INDEX selftest_runs_started ON selftest_runs(started_at);
    "#,
    // 8: outbound notifications (Slack, Teams, generic webhooks) share the outbox: a 'webhook'
    // channel, and a cursor over the timeline. SQLite cannot alter a CHECK, so the outbox is
    // rebuilt (create, copy, drop, rename; see sqlite.org/lang_altertable.html section 7) keeping
    // every row and id. outbox_items references outbox, and foreign keys are on (they cannot be
    // switched off inside this transaction), so it is set aside and rebuilt around the drop.
    r#"
    CREATE TABLE outbox_new (
        id          INTEGER PRIMARY KEY,
        -- as before, plus 'outbound' (a Slack/Teams/webhook notification; address = destination id)
        kind        TEXT    NOT NULL DEFAULT 'page',
        incident_id INTEGER REFERENCES incidents(id),
        user_id     TEXT,
        channel     TEXT    NOT NULL CHECK (channel IN ('sms','voice','email','webhook')),
        address     TEXT    NOT NULL,
        subject     TEXT,
        body        TEXT    NOT NULL,
        priority    INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        channel_attempts INTEGER NOT NULL DEFAULT 0,
        channel_since    INTEGER NOT NULL,
        state       TEXT    NOT NULL CHECK (state IN ('pending','sending','sent','delivered','failed','cancelled')),
        reference   TEXT,
        last_error  TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    INSERT INTO outbox_new SELECT id, kind, incident_id, user_id, channel, address, subject, body,
        priority, due_at, attempts, channel_attempts, channel_since, state, reference, last_error,
        created_at, updated_at FROM outbox;
    CREATE TABLE outbox_items_keep AS SELECT outbox_id, incident_id FROM outbox_items;
    DROP TABLE outbox_items;
    DROP TABLE outbox;
    ALTER TABLE outbox_new RENAME TO outbox;
    CREATE TABLE outbox_items (
        outbox_id   INTEGER NOT NULL REFERENCES outbox(id),
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        PRIMARY KEY (outbox_id, incident_id)
    );
    INSERT INTO outbox_items SELECT outbox_id, incident_id FROM outbox_items_keep;
    DROP TABLE outbox_items_keep;
    CREATE INDEX outbox_due ON outbox(state, channel, priority DESC, due_at, id);
    CREATE INDEX outbox_user ON outbox(user_id, channel, created_at);
    CREATE INDEX outbox_incident ON outbox(incident_id);
    -- Outbound queues are per destination, oldest first.
    CREATE INDEX outbox_outbound ON outbox(channel, address, state, id);

    -- The last timeline event the outbound fan-out has looked at. Trigger/ack/resolve events
    -- are written in the same transaction as the incident change; the fan-out turns those after
    -- the cursor into outbox rows and moves the cursor in one transaction, so none is lost or
    -- sent twice across a crash. It starts at the newest event: history is not announced.
    CREATE TABLE outbound_cursor (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        last_event_id INTEGER NOT NULL
    );
    INSERT INTO outbound_cursor (id, last_event_id) SELECT 1, coalesce(max(id), 0) FROM events;
    "#,
    // 9: the store's probe write: when nothing else was written for a while, the store thread
    // updates this one row, so an idle box learns that its disk is full or read-only before an
    // alert needs it.
    r#"
    CREATE TABLE store_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at INTEGER NOT NULL
    );
    INSERT INTO store_probe (id, at) VALUES (1, 0);
    "#,
    // 10: leased claims. A row in 'sending' holds its claim until lease_until (ms); once that has
    // passed, the claim may be taken again (the outcome of that attempt was never recorded).
    // NULL (rows claimed before this version) counts as expired.
    r#"
    ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
    "#,
    // 11: the channel a row's text was written for. A page that falls through from a call to
    // SMS carries the spoken wording and must be written again for SMS; the row says so itself
    // instead of the sender recognising the wording. Rows queued before this version: a page
    // whose text is the spoken form was written for a call.
    r#"
    ALTER TABLE outbox ADD COLUMN written_for TEXT;
    UPDATE outbox SET written_for = channel WHERE kind <> 'outbound';
    UPDATE outbox SET written_for = 'voice' WHERE kind = 'page' AND body LIKE 'pagerbox alert%';
    "#,
    // 12: standby behind a cloud pager. One row per incident of a standby route whose first page
    // was held: the engine pages nobody before hold_until (at most the grace after the incident
    // opened); the standby task moves hold_until earlier (page now) or mirrors the upstream's
    // acknowledgement, and remembers whether a local acknowledgement was queued for the upstream.
    r#"
    CREATE TABLE standby_holds (
        incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
        route TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('held','paged','mirrored')),
        opened_at INTEGER NOT NULL,
        hold_until INTEGER NOT NULL,
        reason TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        checked_at INTEGER,
        last_check TEXT,
        ack_queued INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX standby_holds_state ON standby_holds(state);
    "#,
    // 13: what names a page to a person the same way on both boxes of a pair, written when an
    // escalation step queues it: the step (0-based) and the page's ordinal among this
    // incident's pages to that person on that channel (1-based). Read before every paired send,
    // where deriving them meant a count and a scan of the incident's timeline. NULL on rows
    // queued before this version or by anything but a step; those are still derived.
    r#"
    ALTER TABLE outbox ADD COLUMN step INTEGER;
    ALTER TABLE outbox ADD COLUMN ordinal INTEGER;
    "#,
    // 14: which digests name an incident, looked up by incident (`/healthz` and the status page
    // ask it for every incident that may have reached nobody); the primary key serves only the
    // other direction.
    r#"
    CREATE INDEX outbox_items_incident ON outbox_items(incident_id, outbox_id);
    "#,
];

/// Brings the database up to the newest version. Refuses a database from a newer pagerbox.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let target = MIGRATIONS.len() as u32;
    if current > target {
        return Err(rusqlite::Error::ToSqlConversionFailure(
            format!(
                "database schema version {current} is newer than this pagerbox knows ({target}); \
                 refusing to touch it"
            )
            .into(),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() as u32);
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() as u32);
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as u32);
    }

    #[test]
    fn upgrades_a_version_one_database_keeping_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO incidents (dedup_key,status,severity,summary,first_seen,last_seen) \
             VALUES ('k','triggered','critical','s',0,0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        conn.execute("SELECT count(*) FROM outbox", []).ok();
    }

    #[test]
    fn written_for_migration_marks_spoken_pages_as_written_for_a_call() {
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("ADD COLUMN written_for"))
            .expect("written_for migration");
        let mut conn = Connection::open_in_memory().unwrap();
        for m in &MIGRATIONS[..before] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", before as u32)
            .unwrap();
        // A call that fell through to SMS (spoken text), an SMS page, and a webhook row.
        conn.execute_batch(
            "INSERT INTO outbox (kind, channel, address, body, priority, due_at, state, \
               channel_since, created_at, updated_at) VALUES \
             ('page', 'sms', '+49', 'pagerbox alert. Incident 1.', 3, 0, 'pending', 0, 0, 0), \
             ('page', 'sms', '+49', '#1 crit db: disk full', 3, 0, 'pending', 0, 0, 0), \
             ('outbound', 'webhook', 'slack', '{}', 0, 0, 'pending', 0, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let got: Vec<Option<String>> = conn
            .prepare("SELECT written_for FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(got, [Some("voice".into()), Some("sms".into()), None]);
    }

    #[test]
    fn outbound_migration_keeps_outbox_rows_and_allows_webhook() {
        // Build the database as it was just before the outbound migration, with pages in it.
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE outbound_cursor"))
            .expect("outbound migration");
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        for m in &MIGRATIONS[..before] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", before as u32)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO incidents (id,dedup_key,status,severity,summary,first_seen,last_seen) \
               VALUES (7,'k','triggered','critical','s',0,0); \
             INSERT INTO events (incident_id,at,kind,message) VALUES (7,0,'triggered','t'); \
             INSERT INTO outbox (id,kind,incident_id,user_id,channel,address,body,priority,due_at,\
               channel_since,state,created_at,updated_at) \
               VALUES (3,'digest',7,'alice','sms','+491','b',3,5,5,'pending',5,5); \
             INSERT INTO outbox_items (outbox_id,incident_id) VALUES (3,7);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (i64, String, String, i64) = conn
            .query_row(
                "SELECT id, kind, channel, due_at FROM outbox WHERE incident_id=7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (3, "digest".into(), "sms".into(), 5));
        let items: i64 = conn
            .query_row(
                "SELECT count(*) FROM outbox_items WHERE outbox_id=3",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(items, 1);
        // The cursor starts after existing history.
        let cursor: i64 = conn
            .query_row("SELECT last_event_id FROM outbound_cursor", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(cursor, 1);
        conn.execute(
            "INSERT INTO outbox (kind,incident_id,channel,address,body,priority,due_at,channel_since,\
             state,created_at,updated_at) VALUES ('outbound',7,'webhook','w','{}',0,0,0,'pending',0,0)",
            [],
        )
        .unwrap();
        assert!(conn
            .execute(
                "INSERT INTO outbox (kind,channel,address,body,priority,due_at,channel_since,\
                 state,created_at,updated_at) VALUES ('page','fax','x','b',0,0,0,'pending',0,0)",
                [],
            )
            .is_err());
        // Foreign keys still hold after the rebuild.
        assert!(conn
            .execute(
                "INSERT INTO outbox_items (outbox_id,incident_id) VALUES (999,7)",
                []
            )
            .is_err());
        let fk: Vec<String> = conn
            .prepare("PRAGMA foreign_key_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(fk.is_empty(), "{fk:?}");
        let idx: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name='outbox' \
                 AND name IN ('outbox_due','outbox_user','outbox_incident','outbox_outbound')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(idx, 4);
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
