use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::clock::ManualClock;
use crate::incident::{Severity, Status};
use crate::store::heartbeats as sql;
use crate::store::Tx;

const CONFIG: &str = r#"
[[users]]
id = "alice"
phone = "+4915112345678"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]

[[routes]]
id = "watchdog"
policy = "p"
pre_page_delay = "2m"

[[heartbeats]]
id = "backup"
interval = "10m"
grace = "5m"
route = "watchdog"
summary = "nightly backup stopped pinging"
service = "backup"
"#;

fn config() -> Config {
    Config::parse(CONFIG, "t.toml", Path::new("/"))
        .unwrap()
        .config
}

fn db() -> Tx<'static> {
    crate::store::memory()
}

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

fn hb() -> Heartbeat {
    config().heartbeats[0].clone()
}

#[test]
fn config_reads_heartbeats_and_defaults() {
    let c = config();
    let h = &c.heartbeats[0];
    assert_eq!(h.interval, Duration::from_secs(600));
    assert_eq!(h.grace, Duration::from_secs(300));
    assert_eq!(h.severity, Severity::Critical);
    assert_eq!(h.dedup_key(), "heartbeat:backup");
    let text = CONFIG.replace("grace = \"5m\"\n", "");
    let c = Config::parse(&text, "t.toml", Path::new("/"))
        .unwrap()
        .config;
    assert_eq!(c.heartbeats[0].grace, Duration::from_secs(60));
}

#[test]
fn default_grace_is_a_tenth_but_at_least_30s_or_the_interval() {
    assert_eq!(
        default_grace(Duration::from_secs(1)),
        Duration::from_secs(1)
    );
    assert_eq!(
        default_grace(Duration::from_secs(60)),
        Duration::from_secs(30)
    );
    assert_eq!(
        default_grace(Duration::from_secs(3600)),
        Duration::from_secs(360)
    );
}

#[test]
fn unknown_route_is_reported_at_its_place() {
    let text = CONFIG.replace("route = \"watchdog\"", "route = \"nope\"");
    let errs = match Config::parse(&text, "t.toml", Path::new("/")) {
        Err(crate::config::ConfigError::Invalid(d)) => {
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>()
        }
        other => panic!("expected an error, got {other:?}"),
    };
    let line = text.lines().position(|l| l.contains("\"nope\"")).unwrap() + 1;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with(&format!("t.toml:{line}:")), "{errs:?}");
    assert!(
        errs[0].contains("heartbeats.route: unknown route \"nope\""),
        "{errs:?}"
    );
}

#[test]
fn bad_interval_and_unknown_key_are_errors() {
    let text = CONFIG.replace(
        "interval = \"10m\"",
        "interval = \"soon\"\ncolour = \"red\"",
    );
    let Err(crate::config::ConfigError::Invalid(d)) =
        Config::parse(&text, "t.toml", Path::new("/"))
    else {
        panic!("expected errors")
    };
    let all: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert!(
        all.iter().any(|e| e.contains("heartbeats.interval")),
        "{all:?}"
    );
    assert!(all.iter().any(|e| e.contains("colour")), "{all:?}");
}

#[test]
fn resume_keeps_a_deadline_still_ahead() {
    assert_eq!(resume(t(20), Some(t(5)), t(10), &hb()), Resume::Keep);
}

#[test]
fn resume_keeps_a_deadline_that_passed_while_up() {
    // Due at 10, last alive at 12: the checker was running when it passed.
    assert_eq!(resume(t(10), Some(t(12)), t(13), &hb()), Resume::Keep);
}

#[test]
fn resume_extends_after_a_short_downtime() {
    // Down from 8 to 14 (6 minutes, interval 10): the deadline at 10 passed in the gap.
    assert_eq!(
        resume(t(10), Some(t(8)), t(14), &hb()),
        Resume::Extend(t(14 + 15))
    );
    // Exactly one interval down is still "short".
    assert_eq!(
        resume(t(10), Some(t(5)), t(15), &hb()),
        Resume::Extend(t(30))
    );
}

#[test]
fn resume_fires_after_a_downtime_longer_than_the_interval() {
    assert_eq!(
        resume(t(10), Some(t(5)), t(16), &hb()),
        Resume::Fire { down_since: t(5) }
    );
}

#[test]
fn never_pinged_monitor_fires_one_incident_after_interval_plus_grace() {
    let c = db();
    let cfg = config();
    let (fired, next) = sql::check(&c, &cfg, t(0)).unwrap();
    assert!(fired.is_empty());
    assert_eq!(next, Some(t(15)));
    let (fired, _) = sql::check(&c, &cfg, t(14)).unwrap();
    assert!(fired.is_empty());
    let (fired, next) = sql::check(&c, &cfg, t(15)).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(next, None);
    let inc = crate::store::queries::incident(&c, fired[0].1)
        .unwrap()
        .unwrap();
    assert_eq!(inc.dedup_key, "heartbeat:backup");
    assert_eq!(inc.summary, "nightly backup stopped pinging");
    assert_eq!(inc.route.as_deref(), Some("watchdog"));
    assert_eq!(inc.service.as_deref(), Some("backup"));
    assert_eq!(inc.severity, Severity::Critical);
    // The escalation starts after the route's pre-page delay, as for any alert on that route.
    let esc = crate::store::escalations::of_incident(&c, inc.id)
        .unwrap()
        .expect("escalation row");
    assert_eq!(esc.row.due, Some(t(17)));
    // Still late later: no second incident.
    let (fired, _) = sql::check(&c, &cfg, t(60)).unwrap();
    assert!(fired.is_empty());
    let all = crate::store::queries::list(&c, crate::store::ListFilter::All, 10).unwrap();
    assert_eq!(all.len(), 1);
}

/// The miss's incident resolved by hand while the job still does not ping: a whole window
/// later it is reported again, as a new incident (the person may have taken it for a blip).
#[test]
fn a_miss_resolved_by_hand_without_a_ping_is_reported_again_a_window_later() {
    let c = db();
    let cfg = config();
    sql::check(&c, &cfg, t(0)).unwrap();
    let (fired, _) = sql::check(&c, &cfg, t(15)).unwrap();
    let first = fired[0].1;
    let actor = crate::incident::Actor::new("alice", "sms");
    crate::store::queries::transition(&c, first, Status::Resolved, &actor, t(20)).unwrap();
    // Watched again from the resolution: due at 20 + 15.
    let (fired, next) = sql::check(&c, &cfg, t(21)).unwrap();
    assert!(fired.is_empty());
    assert_eq!(next, Some(t(35)));
    assert_eq!(sql::row(&c, "backup").unwrap().unwrap().state, State::Ok);
    let (fired, _) = sql::check(&c, &cfg, t(35)).unwrap();
    assert_eq!(fired.len(), 1);
    assert_ne!(fired[0].1, first);
    // While that one is open, still one incident per miss.
    let (fired, _) = sql::check(&c, &cfg, t(90)).unwrap();
    assert!(fired.is_empty());
}

#[test]
fn ping_moves_the_deadline_and_resolves_the_incident() {
    let c = db();
    let cfg = config();
    sql::check(&c, &cfg, t(0)).unwrap();
    let (due, resolved) = sql::ping(&c, &hb(), "10.0.0.5", t(5)).unwrap();
    assert_eq!((due, resolved), (t(20), None));
    let (fired, next) = sql::check(&c, &cfg, t(19)).unwrap();
    assert!(fired.is_empty());
    assert_eq!(next, Some(t(20)));
    let (fired, _) = sql::check(&c, &cfg, t(20)).unwrap();
    let id = fired[0].1;
    let (due, resolved) = sql::ping(&c, &hb(), "10.0.0.5", t(25)).unwrap();
    assert_eq!((due, resolved), (t(40), Some(id)));
    let inc = crate::store::queries::incident(&c, id).unwrap().unwrap();
    assert_eq!(inc.status, Status::Resolved);
    let r = inc.resolved.unwrap();
    assert_eq!((r.by.as_str(), r.via.as_str()), ("10.0.0.5", "heartbeat"));
    let row = sql::row(&c, "backup").unwrap().unwrap();
    assert_eq!(row.state, State::Ok);
    assert_eq!(row.pings, 2);
    // The next miss opens a new incident.
    let (fired, _) = sql::check(&c, &cfg, t(40)).unwrap();
    assert_ne!(fired[0].1, id);
}

#[test]
fn startup_after_short_downtime_waits_and_after_long_downtime_fires() {
    let cfg = config();
    // Short: alive at 8, deadline 15, back at 16 (8 minutes down, interval 10).
    let c = db();
    sql::check(&c, &cfg, t(0)).unwrap();
    sql::check(&c, &cfg, t(8)).unwrap();
    let fired = sql::startup(&c, &cfg, t(16)).unwrap();
    assert!(fired.is_empty());
    let (fired, next) = sql::check(&c, &cfg, t(16)).unwrap();
    assert!(fired.is_empty());
    assert_eq!(next, Some(t(31)));
    // Long: alive at 2, back at 20 (18 minutes down).
    let c = db();
    sql::check(&c, &cfg, t(0)).unwrap();
    sql::check(&c, &cfg, t(2)).unwrap();
    let fired = sql::startup(&c, &cfg, t(20)).unwrap();
    assert_eq!(fired.len(), 1);
    let inc = crate::store::queries::incident(&c, fired[0].1)
        .unwrap()
        .unwrap();
    assert!(
        inc.details["reason"]
            .as_str()
            .unwrap()
            .contains("pagerbox was down"),
        "{:?}",
        inc.details
    );
}

#[test]
fn a_changed_interval_keeps_the_base_and_moves_the_deadline() {
    let c = db();
    let cfg = config();
    sql::check(&c, &cfg, t(0)).unwrap();
    sql::ping(&c, &hb(), "x", t(1)).unwrap();
    let text = CONFIG.replace("interval = \"10m\"", "interval = \"30m\"");
    let cfg2 = Config::parse(&text, "t.toml", Path::new("/"))
        .unwrap()
        .config;
    let (_, next) = sql::check(&c, &cfg2, t(2)).unwrap();
    assert_eq!(next, Some(t(36)));
}

#[test]
fn a_removed_monitor_is_forgotten_and_starts_fresh_when_added_back() {
    let c = db();
    let cfg = config();
    sql::check(&c, &cfg, t(0)).unwrap();
    let empty = Config::parse("", "t.toml", Path::new("/")).unwrap().config;
    sql::check(&c, &empty, t(1)).unwrap();
    assert_eq!(sql::row(&c, "backup").unwrap(), None);
    // Back an hour later: a fresh clock, not an instant fire on the old deadline.
    let (fired, next) = sql::check(&c, &cfg, t(60)).unwrap();
    assert!(fired.is_empty());
    assert_eq!(next, Some(t(75)));
}

#[tokio::test]
async fn ping_of_an_unknown_monitor_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t(0)));
    let store = Store::open(&dir.path().join("db"), clock).unwrap();
    let err = ping(&store, &config(), "nope", "x").await.unwrap_err();
    assert!(matches!(err, Error::Unknown(ref id) if id == "nope"));
    assert!(!err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn watcher_fires_at_the_deadline_with_a_manual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t(0)));
    let store = Store::open(&dir.path().join("db"), clock.clone()).unwrap();
    let (_tx, rx) = watch::channel(Arc::new(config()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        store.clone(),
        rx,
        clock.clone(),
        crate::supervisor::Heartbeat::detached("heartbeats"),
        shutdown.clone(),
    ));
    // Let the watcher start and record the monitor.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let list = list(&store, Arc::new(config())).await.unwrap();
    assert_eq!(list[0].due_at, t(15));
    assert_eq!(list[0].state, State::Ok);
    // Move both clocks past the deadline; the watcher wakes within one alive tick.
    clock.set(t(16));
    let mut open = Vec::new();
    // Bounded in real time, not in virtual ticks: paused time jumps ahead while the store's
    // threads work, so on a loaded machine any number of virtual seconds can pass before the
    // watcher's write lands. The watcher itself runs on virtual time and is due after one tick.
    let patience = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < patience {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Through the writer's queue, not the read connection: with paused time the virtual
        // clock runs ahead of the store threads, and only the queue orders this read after the
        // watcher's write.
        open = store
            .call(|c, _| {
                Ok(crate::store::queries::list(
                    c,
                    crate::store::ListFilter::Open,
                    10,
                )?)
            })
            .await
            .unwrap();
        if !open.is_empty() {
            break;
        }
    }
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].dedup_key, "heartbeat:backup");
    let p = ping(&store, &config(), "backup", "cron").await.unwrap();
    assert_eq!(p.resolved_incident, Some(open[0].id));
    shutdown.cancel();
    task.await.unwrap();
}
