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

#[test]
fn ctrl_c_stops_the_demo_at_once_and_replies_are_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(false);
    let mut child = Command::new(util::BIN)
        .args(["demo", "--port", &port.to_string(), "--udp-port"])
        .arg(free_port(true).to_string())
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if seen.iter().any(|l: &String| l.contains(what)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("no {what:?} in the demo's output: {seen:#?}"),
            }
        }
    };
    wait_for(&format!("export PAGERBOX_URL=http://127.0.0.1:{port}"));
    wait_for("Ctrl-C stops");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "HELP").unwrap();
    // Echoed at once, then answered through the simulated network.
    wait_for("↩  SMS from +15550100001: HELP");
    wait_for("📱 SMS to +15550100001: 42a ack");
    // Ctrl-C while stdin stays open and unread: the demo must exit without a key press.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let stopped = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "the demo did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
}
