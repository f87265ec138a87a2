use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::clock::ManualClock;
use tokio_util::sync::CancellationToken;

fn alert(key: &str, action: AlertAction) -> AlertInput {
    AlertInput {
        action,
        dedup_key: Some(key.to_string()),
        summary: format!("summary of {key}"),
        severity: Severity::Error,
        source: None,
        service: Some("svc".into()),
        details: serde_json::Value::Null,
        links: vec![],
        route: None,
        policy: Some("p".into()),
        pre_page_delay: Duration::ZERO,
        page: true,
        actor: Actor::new("t", "test"),
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap(),
    ))
}

#[tokio::test]
async fn concurrent_alerts_are_all_committed_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = Store::open(&path, clock()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.apply_alert(alert(&format!("k{}", i % 50), AlertAction::Trigger))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        if let AlertOutcome::Created(_) = t.await.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 50);
    drop(store);
    // Reopen: everything answered is on disk.
    let store = Store::open(&path, clock()).unwrap();
    let open = store.incidents(ListFilter::Open, 1000).await.unwrap();
    assert_eq!(open.len(), 50);
    assert_eq!(open.iter().map(|i| i.alert_count).sum::<i64>(), 200);
}

#[tokio::test]
async fn a_failing_job_does_not_undo_its_batch_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let a = store.clone();
    let b = store.clone();
    let (ok, bad) = tokio::join!(
        a.apply_alert(alert("good", AlertAction::Trigger)),
        b.call(|c, _| -> Result<(), StoreError> {
            c.execute(
                "INSERT INTO changes (at, summary) VALUES (0, 'half-done')",
                [],
            )?;
            Err(StoreError::Invalid("fails after writing".into()))
        })
    );
    assert!(matches!(ok.unwrap(), AlertOutcome::Created(_)));
    assert!(bad.is_err());
    let n: i64 = store
        .call(|c, _| Ok(c.query_row("SELECT count(*) FROM changes", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(n, 0, "the failed job's write was rolled back");
}

#[tokio::test]
async fn locked_database_answers_a_retryable_error_and_loses_nothing_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path, clock()).unwrap();
    store
        .apply_alert(alert("before", AlertAction::Trigger))
        .await
        .unwrap();
    // Another process holds the write lock: the store cannot begin its transaction.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = store
        .apply_alert(alert("during", AlertAction::Trigger))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    other.execute_batch("ROLLBACK").unwrap();
    let open = store.incidents(ListFilter::All, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].dedup_key, "before");
    store
        .apply_alert(alert("after", AlertAction::Trigger))
        .await
        .unwrap();
}

#[tokio::test]
async fn commits_are_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let mut rx = store.commits();
    let before = *rx.borrow_and_update();
    store
        .apply_alert(alert("x", AlertAction::Trigger))
        .await
        .unwrap();
    rx.changed().await.unwrap();
    assert_ne!(*rx.borrow(), before);
}

#[tokio::test]
async fn repeats_alone_do_not_wake_the_commit_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let mut rx = store.commits();
    store
        .apply_alert(alert("x", AlertAction::Trigger))
        .await
        .unwrap();
    rx.changed().await.unwrap();
    rx.borrow_and_update();
    let repeated = store
        .apply_alert(alert("x", AlertAction::Trigger))
        .await
        .unwrap();
    assert!(matches!(repeated, AlertOutcome::Repeated(ref i) if i.alert_count == 2));
    let group = store
        .apply_alerts(vec![
            alert("x", AlertAction::Trigger),
            alert("x", AlertAction::Trigger),
        ])
        .await
        .unwrap();
    assert_eq!(group.len(), 2);
    assert!(
        !rx.has_changed().unwrap(),
        "a repeat woke the commit watchers"
    );
    // Committed all the same: the count is on disk.
    let open = store.incidents(ListFilter::Open, 10).await.unwrap();
    assert_eq!(open[0].alert_count, 4);
    // A group with a new incident in it wakes them, repeats beside it or not.
    store
        .apply_alerts(vec![
            alert("x", AlertAction::Trigger),
            alert("y", AlertAction::Trigger),
        ])
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap(), "a new incident must wake them");
    rx.borrow_and_update();
    store
        .apply_alert(alert("x", AlertAction::Resolve))
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap(), "a resolve must wake them");
}

#[tokio::test]
async fn reads_do_not_signal_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let mut rx = store.commits();
    rx.borrow_and_update();
    store.incidents(ListFilter::All, 10).await.unwrap();
    assert!(
        !rx.has_changed().unwrap(),
        "a read woke the commit watchers"
    );
    store
        .apply_alert(alert("x", AlertAction::Trigger))
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap());
}

/// Holds the store thread for a moment, so the jobs spawned meanwhile form one batch. Returns
/// once the store thread is held.
async fn hold_store(store: &Store) -> tokio::task::JoinHandle<()> {
    let s = store.clone();
    let (started_tx, started) = oneshot::channel();
    let hold = tokio::spawn(async move {
        s.call(move |_, _| {
            let _ = started_tx.send(());
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        })
        .await
        .unwrap();
    });
    started.await.unwrap();
    hold
}

/// Whether the incident with `key` is in the database (read on the read connection).
async fn stored(store: &Store, key: &str) -> bool {
    let key = key.to_string();
    store
        .read(move |c, _| {
            Ok(c.query_row(
                "SELECT count(*) FROM incidents WHERE dedup_key = ?1",
                [&key],
                |r| r.get::<_, i64>(0),
            )? > 0)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn disk_full_in_the_middle_of_a_batch_tells_every_caller_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    // A database that may grow by only a few pages: one big job overflows it for real.
    store
        .call(|c, _| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(
                &format!("PRAGMA max_page_count = {}", pages + 40),
                [],
                |_| Ok(()),
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let hold = hold_store(&store).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = store.clone();
        if i == 6 {
            tasks.push((
                None,
                tokio::spawn(async move {
                    s.call(|c, _| {
                        let big = "x".repeat(2_000_000);
                        c.execute("INSERT INTO changes (at, summary) VALUES (0, ?1)", [&big])?;
                        Ok(None)
                    })
                    .await
                }),
            ));
        } else {
            let key = format!("k{i:02}");
            tasks.push((
                Some(key.clone()),
                tokio::spawn(async move {
                    s.apply_alert(alert(&key, AlertAction::Trigger))
                        .await
                        .map(|o| o.incident().map(|i| i.id))
                }),
            ));
        }
    }
    hold.await.unwrap();
    let mut accepted = 0;
    let mut full = None;
    for (key, task) in tasks {
        let reply = task.await.unwrap();
        match key {
            Some(key) => {
                let there = stored(&store, &key).await;
                match reply {
                    Ok(_) => {
                        assert!(there, "{key} answered Ok but is not in the database");
                        accepted += 1;
                    }
                    Err(e) => {
                        assert!(!there, "{key} answered {e} but its row committed");
                        // Those queued after the overflow never ran in the lost transaction.
                        assert!(key.as_str() < "k06", "{key} was not re-run: {e}");
                        assert!(e.is_retryable(), "{key}: {e}");
                    }
                }
            }
            None => {
                let e = reply.expect_err("the oversized job cannot fit");
                assert_eq!(e.sqlite_code(), Some(rusqlite::ErrorCode::DiskFull), "{e}");
                assert!(e.is_retryable());
                full = Some(e);
            }
        }
    }
    assert!(full.is_some());
    let big_rows: i64 = store
        .read(|c, _| Ok(c.query_row("SELECT count(*) FROM changes", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(big_rows, 0, "nothing of the oversized job remains");
    // Small jobs after the overflow still fit: either in the same transaction, or re-run in a
    // fresh one after the abort.
    assert!(accepted >= 5, "only {accepted} small alerts were stored");
    // A later write commits and the store says it can write.
    store
        .apply_alert(alert("after", AlertAction::Trigger))
        .await
        .unwrap();
    assert!(store.write_health().borrow().is_ok());
}

#[tokio::test]
async fn a_transaction_lost_mid_batch_fails_the_jobs_that_ran_and_reruns_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let hold = hold_store(&store).await;
    let mut before = Vec::new();
    for i in 0..4 {
        let s = store.clone();
        before.push(tokio::spawn(async move {
            s.apply_alert(alert(&format!("before{i}"), AlertAction::Trigger))
                .await
        }));
    }
    // What SQLite does on some I/O errors: the whole transaction is rolled back under the job.
    // The job then writes again, which outside a transaction would autocommit.
    let s = store.clone();
    let culprit = tokio::spawn(async move {
        s.call(|c, now| {
            c.conn().execute_batch("ROLLBACK")?;
            queries::apply_alert(c, &alert("culprit", AlertAction::Trigger), now)?;
            Ok(())
        })
        .await
    });
    let mut after = Vec::new();
    for i in 0..4 {
        let s = store.clone();
        after.push(tokio::spawn(async move {
            s.apply_alert(alert(&format!("after{i}"), AlertAction::Trigger))
                .await
        }));
    }
    hold.await.unwrap();
    for (i, t) in before.into_iter().enumerate() {
        let e = t.await.unwrap().expect_err("ran in the lost transaction");
        assert!(matches!(e, StoreError::Aborted(_)), "{e}");
        assert!(e.is_retryable());
        assert!(!stored(&store, &format!("before{i}")).await);
    }
    assert!(culprit.await.unwrap().is_err());
    assert!(
        !stored(&store, "culprit").await,
        "a write after the rollback autocommitted"
    );
    for (i, t) in after.into_iter().enumerate() {
        let o = t.await.unwrap().expect("re-run in a fresh transaction");
        assert!(matches!(o, AlertOutcome::Created(_)));
        assert!(stored(&store, &format!("after{i}")).await);
    }
}

#[tokio::test]
async fn a_fault_of_ours_is_counted_and_not_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    assert_eq!(store.faults().borrow().count, 0);
    let err = store
        .call(|c, _| Ok(c.execute("INSERT INTO no_such_table VALUES (1)", [])?))
        .await
        .unwrap_err();
    assert!(err.is_fault(), "{err}");
    assert!(!err.is_retryable());
    let faults = store.faults().borrow().clone();
    assert_eq!(faults.count, 1);
    let last = faults.last.unwrap();
    assert!(last.caller.file().ends_with("tests.rs"), "{}", last.caller);
    assert!(
        store.write_health().borrow().is_ok(),
        "a bug is not a disk problem"
    );
}

#[tokio::test]
async fn reads_see_commits_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    store
        .apply_alert(alert("x", AlertAction::Trigger))
        .await
        .unwrap();
    assert!(
        stored(&store, "x").await,
        "a committed row is visible to the reader"
    );
    let err = store
        .read(|c, _| Ok(c.execute("DELETE FROM incidents", [])?))
        .await
        .unwrap_err();
    assert_eq!(
        err.sqlite_code(),
        Some(rusqlite::ErrorCode::ReadOnly),
        "{err}"
    );
    assert_eq!(
        store.faults().borrow().count,
        1,
        "a write on the reader is a fault"
    );
    assert!(stored(&store, "x").await);
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn injected_io_errors_fail_writes_and_write_health_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let health = store.write_health();
    crate::fault::arm(
        "store.ioerr",
        crate::fault::Arming {
            r#for: None,
            times: Some(1),
        },
    );
    let err = store
        .apply_alert(alert("lost", AlertAction::Trigger))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        err.sqlite_code(),
        Some(rusqlite::ErrorCode::SystemIoFailure)
    );
    assert!(matches!(&*health.borrow(), WriteHealth::Failing { .. }));
    assert!(
        !stored(&store, "lost").await,
        "a failed commit left its row"
    );
    store
        .apply_alert(alert("kept", AlertAction::Trigger))
        .await
        .unwrap();
    assert!(health.borrow().is_ok());
    assert!(stored(&store, "kept").await);
}

/// Recording an outcome is tried again until the store takes it, and its result is returned.
#[tokio::test]
async fn recording_is_retried_until_the_store_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), clock()).unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let v = until_stored(&store, &CancellationToken::new(), "test", move |_, _| {
        if t.fetch_add(1, Ordering::SeqCst) < 3 {
            Err(StoreError::Busy)
        } else {
            Ok(42)
        }
    })
    .await;
    assert_eq!(v, Some(42));
    assert_eq!(tries.load(Ordering::SeqCst), 4);
    // At shutdown it gives up (the row stays `sending` for the restart).
    let stop = CancellationToken::new();
    stop.cancel();
    let v: Option<()> = until_stored(&store, &stop, "test", |_, _| Err(StoreError::Busy)).await;
    assert_eq!(v, None);
    // An error no retry fixes is tried once: the claim's lease brings the page back instead.
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let v: Option<()> = until_stored(&store, &CancellationToken::new(), "test", move |_, _| {
        t.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::Invalid("a bug".into()))
    })
    .await;
    assert_eq!((v, tries.load(Ordering::SeqCst)), (None, 1));
}
