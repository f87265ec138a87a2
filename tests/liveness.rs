//! Liveness through the real binary: a task that dies is noticed, the daemon exits non-zero so
//! systemd restarts it, and the restart pages what was accepted. The test plays systemd.
//! Needs the `fault-injection` feature (scripts/test.sh enables it).
#![cfg(feature = "fault-injection")]

mod util;

use serde_json::json;
use util::{Daemon, ExternalSim};

const ALICE: &str = util::PAGER_PHONE;

fn config(sim: &ExternalSim) -> String {
    config_with(sim, "")
}

fn config_with(sim: &ExternalSim, extra: &str) -> String {
    util::one_pager_config(sim, "10m", extra)
}

/// Kills `task` through its own loop while an alert is being handled, then checks that the
/// daemon said which task died and exited non-zero, and that a restart pages the alert.
fn dies_loudly_and_the_restart_pages(task: &str) {
    let sim = ExternalSim::start();
    let mut d = Daemon::start(&config(&sim));
    d.wait_modem_up();
    d.arm_fault(&format!("task.panic.{task}"), json!({"times": 1}));
    // The alert wakes the engine and the senders; whichever task was armed dies in its loop.
    let (code, v) = d.post_json(
        "/v1/alerts",
        json!({"summary": "db down", "severity": "critical", "dedup_key": "db"}),
    );
    // The commit happened before any task saw it: 202, unless intake itself was the victim.
    assert_eq!(code, 202, "{v}");
    let status = d.wait_exit(150);
    assert!(!status.success(), "exit status {status}");
    let log = d.log();
    assert!(
        log.contains("an essential task ended before shutdown") && log.contains(task),
        "the log must name the task:\n{log}"
    );
    // systemd's Restart=always: the page accepted before the crash goes out after it.
    d.spawn();
    d.wait_for(30, "the page after the restart", || {
        sim.sms_to(ALICE).into_iter().next()
    });
}

#[test]
fn escalation_engine_that_panics_stops_the_daemon_and_the_restart_pages() {
    dies_loudly_and_the_restart_pages("escalation");
}

#[test]
fn sms_sender_that_panics_stops_the_daemon_and_the_restart_pages() {
    dies_loudly_and_the_restart_pages("sender-sms");
}

#[test]
fn modem_driver_that_panics_stops_the_daemon_and_the_restart_pages() {
    dies_loudly_and_the_restart_pages("modem");
}

#[test]
fn paging_health_task_that_panics_stops_the_daemon() {
    dies_loudly_and_the_restart_pages("paging-health");
}

#[test]
fn panel_state_task_that_panics_stops_the_daemon() {
    dies_loudly_and_the_restart_pages("panel-state");
}

#[test]
fn a_healthy_daemon_stops_cleanly_and_a_dead_task_is_not_blamed() {
    let sim = ExternalSim::start();
    let mut d = Daemon::start(&config(&sim));
    d.wait_modem_up();
    d.trigger(json!({"summary": "ok down", "dedup_key": "ok"}));
    d.wait_for(20, "the page", || sim.sms_to(ALICE).into_iter().next());
    d.stop();
    assert!(!d.log().contains("an essential task ended"));
}

/// kill -9 at several moments of a storm, restarting each time as systemd would: every alert
/// that got its 202 is paged, and the only repeats are the pages in flight at each kill
/// (at-least-once, one per crash and channel).
#[test]
fn kill_9_again_and_again_in_a_storm_loses_no_accepted_page() {
    let sim = ExternalSim::start();
    // No grouping and no rate limit: every incident gets its own first page.
    let mut d = Daemon::start(&config_with(
        &sim,
        "[paging]\ngroup_window = \"0s\"\nrate_limit_count = 1000\n",
    ));
    d.wait_modem_up();
    let mut ids = Vec::new();
    let kills = 4;
    for round in 0..kills {
        for i in 0..15 {
            ids.push(d.trigger(json!({"summary": format!("r{round}-k{i} down"), "dedup_key": format!("r{round}-k{i}")})));
        }
        // A different moment each round: while the first pages are being submitted, or later.
        std::thread::sleep(std::time::Duration::from_millis(fastrand::u64(0..600)));
        d.kill9();
        d.spawn();
        d.wait_modem_up();
    }
    d.wait_for(90, "every accepted alert paged", || {
        let sms = sim.sms_to(ALICE);
        ids.iter()
            .all(|id| sms.iter().any(|t| t.starts_with(&format!("#{id} "))))
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let sms = sim.sms_to(ALICE);
    let extra = sms.len() - ids.len();
    assert!(
        extra <= kills,
        "at most one page in flight per kill is repeated; got {extra} extra in {kills} kills"
    );
}
