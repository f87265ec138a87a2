//! The store failing under the real daemon: I/O errors from a fault point, and a really full
//! disk (a small tmpfs as the state dir, when run as root). While the store cannot write, alerts
//! get 503 (the sender retries) and `/healthz` says the store is failing; once it can write again,
//! a retried alert is accepted and paged, with nothing lost and nothing sent twice.

#![cfg(feature = "fault-injection")]

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use util::{base_config, Daemon, ExternalSim};

const ALICE: &str = util::PAGER_PHONE;

fn config(sim: &ExternalSim) -> String {
    util::one_pager_config(sim, "60s", "")
}

fn alert(d: &Daemon, key: &str) -> (u16, Value) {
    d.post_json(
        "/v1/alerts",
        json!({"summary": format!("{key} is down"), "severity": "critical", "service": "db", "dedup_key": key}),
    )
}

/// Retries `key` as an alert sender would until it is accepted; returns the incident id.
fn retry_until_accepted(d: &Daemon, key: &str, secs: u64) -> i64 {
    d.wait_for(secs, "the retried alert to be accepted", || {
        let (code, v) = alert(d, key);
        match code {
            202 => Some(v["incident_id"].as_i64().expect("incident id")),
            503 => {
                std::thread::sleep(Duration::from_millis(200));
                None
            }
            other => panic!("alert answered {other}, not 202 or 503: {v}"),
        }
    })
}

/// Checks the page for `key` went out exactly once.
fn paged_once(d: &Daemon, sim: &ExternalSim, id: i64, key: &str) {
    let want = format!("#{id} CRIT db: {key} is down");
    d.wait_for(15, "the page SMS", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|t| t.starts_with(&want))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent = sim
        .sms_to(ALICE)
        .into_iter()
        .filter(|t| t.starts_with(&want))
        .count();
    assert_eq!(sent, 1, "{:?}", sim.sms_to(ALICE));
}

#[test]
fn io_errors_answer_503_and_a_retried_alert_is_paged_afterwards() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim));
    d.wait_modem_up();
    assert_eq!(d.get("/healthz").0, 200);

    let (code, v) = d.post_json("/v1/faults", json!({"name": "store.ioerr", "for": "3s"}));
    assert_eq!(code, 200, "{v}");
    let (code, v) = alert(&d, "db1");
    assert_eq!(
        code, 503,
        "an alert that could not be stored must be retried: {v}"
    );
    let (code, h) = d.get("/healthz");
    assert_eq!(code, 503, "{h}");
    assert!(
        h["store"].as_str().unwrap_or("").contains("cannot write"),
        "{h}"
    );
    // Nothing of the refused alert was stored.
    let (_, list) = d.get("/v1/incidents?status=all");
    assert_eq!(
        list["incidents"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );

    let id = retry_until_accepted(&d, "db1", 15);
    paged_once(&d, &sim, id, "db1");
    d.wait_for(15, "healthz ok again", || {
        (d.get("/healthz").0 == 200).then_some(())
    });
}

/// A tmpfs mounted over a directory for the test's lifetime; unmounted on drop, whatever the
/// test's outcome.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs on `at`, or says why it cannot.
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes into `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
    // The last partial block too.
    while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
}

#[test]
fn a_full_disk_answers_503_and_recovers_when_space_is_freed() {
    let sim = ExternalSim::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mount = match Tmpfs::mount(&state, "4m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: cannot mount a tmpfs state dir ({why})");
            return;
        }
    };
    let config_path = dir.path().join("pagerbox.toml");
    std::fs::write(&config_path, base_config(&state, &config(&sim))).unwrap();
    let mut d = Daemon {
        dir,
        config: config_path,
        child: None,
        http: "127.0.0.1:0".parse().unwrap(),
        udp: None,
        token: None,
        env: Vec::new(),
    };
    d.spawn();
    d.wait_modem_up();

    let filler = state.join("filler");
    fill(&filler);
    // Every alert is refused with 503 while the disk is full (the WAL must grow to take it).
    let mut refused = 0;
    for i in 0..20 {
        let (code, v) = alert(&d, &format!("full{i}"));
        match code {
            503 => refused += 1,
            202 => {}
            other => panic!("alert answered {other} on a full disk: {v}"),
        }
    }
    assert!(refused > 0, "no alert was refused on a full disk");
    d.wait_for(15, "healthz to report the store failing", || {
        let (code, h) = d.get("/healthz");
        (code == 503 && h["store"].as_str().unwrap_or("").contains("cannot write")).then_some(())
    });
    // The metric carries the same verdict, for a Prometheus that alerts on it.
    assert!(
        d.metrics_text().contains("\npagerbox_impaired 1\n"),
        "{}",
        d.metrics_text()
    );

    std::fs::remove_file(&filler).unwrap();
    let id = retry_until_accepted(&d, "after-full", 20);
    paged_once(&d, &sim, id, "after-full");
    d.wait_for(15, "healthz ok again", || {
        (d.get("/healthz").0 == 200).then_some(())
    });
    assert!(d.metrics_text().contains("\npagerbox_impaired 0\n"));
    // Stop the daemon and unmount before the temp dir is removed.
    d.stop();
    drop(mount);
}
