use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::clock::ManualClock;

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
