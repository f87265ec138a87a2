//! The daemon speaks sd_notify: READY once intake and the store are up, RELOADING/READY around a
//! SIGHUP reload, STOPPING on SIGTERM. The test binds the notify socket itself.

mod util;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use util::Daemon;

fn recv_all(sock: &UnixDatagram, until: &str) -> String {
    let mut all = String::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !all.contains(until) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {until} in {all:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            all.push('\n');
        }
    }
    all
}

#[test]
fn ready_reloading_and_stopping_reach_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut d = Daemon::start_env("", &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    recv_all(&sock, "READY=1");
    // The API answers once READY was sent (503: this test box has no paging channel).
    assert_eq!(d.get("/healthz").1["store"], "ok");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let got = recv_all(&sock, "RELOADING=1");
    if !got.contains("READY=1") {
        recv_all(&sock, "READY=1");
    }
    d.stop();
    recv_all(&sock, "STOPPING=1");
}
