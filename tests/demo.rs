//! `pagerbox demo` in a terminal: Ctrl-C stops it at once even while it waits for a typed line,
//! and typed lines are answered by the daemon through the simulated phone.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// A running `pagerbox demo` and the lines it printed so far.
struct Demo {
    child: std::process::Child,
    port: u16,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(dir: &std::path::Path) -> Demo {
        let port = free_port(false);
        let mut child = Command::new(util::BIN)
            .args(["demo", "--port", &port.to_string(), "--udp-port"])
            .arg(free_port(true).to_string())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            port,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `secs` for a printed line containing `what`; returns it.
    fn wait_for(&mut self, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no {what:?} in the demo's output: {:#?}", self.seen),
            }
        }
    }

    fn interrupt(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let stopped = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return;
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(10),
                "the demo did not stop after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A failed test must not leave its demo running.
impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn ctrl_c_stops_the_demo_at_once_and_replies_are_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    demo.wait_for(
        &format!("export PAGERBOX_URL=http://127.0.0.1:{}", demo.port),
        30,
    );
    // The binary is not on PATH here: the banner names it by its path, so the lines work as
    // printed.
    let bin = std::fs::canonicalize(util::BIN).unwrap();
    demo.wait_for(&format!("  {} incidents", bin.display()), 30);
    demo.wait_for("Ctrl-C stops", 30);
    let mut stdin = demo.child.stdin.take().unwrap();
    writeln!(stdin, "HELP").unwrap();
    // Echoed at once, then answered through the simulated network.
    demo.wait_for("↩  SMS from +15550100001: HELP", 30);
    demo.wait_for("📱 SMS to +15550100001: 42a ack", 30);
    // Ctrl-C while stdin stays open and unread: the demo must exit without a key press.
    demo.interrupt();
    drop(stdin);
}

/// The demo's person gets an SMS at once and a call a minute later; the call is shown while it
/// rings, and `press 1` typed then acknowledges the incident.
#[test]
fn a_page_call_is_shown_while_it_rings_and_press_1_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    demo.wait_for("Ctrl-C stops", 30);
    let base = format!("http://127.0.0.1:{}", demo.port);
    let resp = ureq::post(&format!("{base}/v1/alerts"))
        .send_json(serde_json::json!({"summary": "db down", "severity": "critical"}))
        .unwrap();
    let id = resp.into_json::<serde_json::Value>().unwrap()["incident_id"]
        .as_i64()
        .unwrap();
    demo.wait_for("📱 SMS to +15550100001", 30);
    // The voice rule starts a minute after the page.
    let ringing = demo.wait_for("ringing: type", 120);
    assert!(
        ringing.contains("📞 call to +15550100001 ringing") && ringing.contains("press 1"),
        "{ringing}"
    );
    let mut stdin = demo.child.stdin.take().unwrap();
    writeln!(stdin, "press 1").unwrap();
    demo.wait_for("📞 you answer and press 1", 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = ureq::get(&format!("{base}/v1/incidents/{id}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if v["incident"]["status"] == "acknowledged" {
            break;
        }
        assert!(Instant::now() < deadline, "not acknowledged: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Announced once, not on every look while it rang.
    let announced = demo.seen.iter().filter(|l| l.contains("ringing:")).count();
    assert_eq!(announced, 1, "{:#?}", demo.seen);
    demo.interrupt();
    drop(stdin);
}
