//! End to end: AT clients nobody here wrote, gammu and smstools (Debian packages `gammu` and
//! `smstools`), against the simulator's PTY. They probe the forms real modules answer (`=?`,
//! `?`, `+COPS=3,2`, phonebook and battery queries) and would notice a simulator that only
//! speaks pagerbox's dialect.
//!
//! `scripts/test.sh` installs both packages when missing; a test skips with a printed reason
//! only when the tool is not installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pagerbox::modem::sim::{
    DeliverOptions, NetworkEntry, SimConfig, SimHandle, SimProfile, Simulator,
};
use tokio::io::AsyncWriteExt;

/// The longest one tool run may take (gammu's own start-up costs about a second per run).
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The installed tool, or `None` with the reason printed (the test then skips).
fn installed(binary: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return Some(p);
        }
    }
    eprintln!(
        "SKIPPED: {binary} is not installed (Debian package {package}; scripts/test.sh installs it)"
    );
    None
}

/// A SIM7600 simulator with a ring timeout long enough for a client to connect mid-call.
async fn simulator(dir: &Path) -> SimHandle {
    let mut cfg = SimConfig::fast(SimProfile::Sim7600, dir.join("ttyUSB2"));
    cfg.command_delay = Duration::from_millis(2);
    cfg.ring_timeout = Duration::from_secs(120);
    cfg.ring_interval = Duration::from_secs(1);
    Simulator::start(cfg).await.expect("simulator starts")
}

/// Runs gammu with `args` on the simulator's port; fails the test with everything gammu said
/// when it exits non-zero or takes longer than [`TOOL_TIMEOUT`].
async fn gammu(gammu: &Path, rc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = tokio::process::Command::new(gammu)
        .arg("-c")
        .arg(rc)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start gammu");
    let mut input = child.stdin.take().expect("stdin piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("feed gammu");
    }
    drop(input);
    let out = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("gammu {args:?} did not finish within {TOOL_TIMEOUT:?}"))
        .expect("wait for gammu");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "gammu {args:?} failed ({}):\n{text}",
        out.status
    );
    text
}

fn gammurc(dir: &Path, sim: &SimHandle) -> PathBuf {
    let rc = dir.join("gammurc");
    std::fs::write(
        &rc,
        format!(
            "[gammu]\ndevice = {}\nconnection = at\n",
            sim.pty_path().display()
        ),
    )
    .unwrap();
    rc
}

/// The whole messages the network delivered, as `(to, text, encoding, parts)`.
async fn delivered(sim: &SimHandle) -> Vec<(String, String, String, u8)> {
    sim.network_log()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            NetworkEntry::Sms {
                to,
                text,
                encoding,
                parts,
                ..
            } => Some((to, text, encoding, parts)),
            _ => None,
        })
        .collect()
}

fn calls(log: &[NetworkEntry]) -> usize {
    log.iter()
        .filter(|e| matches!(e, NetworkEntry::Call { .. }))
        .count()
}

#[tokio::test]
async fn gammu_identifies_sends_lists_deletes_and_leaves_a_ringing_call_alone() {
    let Some(bin) = installed("gammu", "gammu") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let rc = gammurc(dir.path(), &sim);

    let out = gammu(&bin, &rc, &["identify"], None).await;
    assert!(out.contains("SIMCOM INCORPORATED"), "{out}");
    assert!(out.contains("SIMCOM_SIM7600E-H"), "{out}");
    assert!(out.contains("866758041234567"), "IMEI: {out}");
    assert!(out.contains("262019876543210"), "IMSI: {out}");

    let out = gammu(&bin, &rc, &["getsecuritystatus"], None).await;
    assert!(out.contains("Nothing to enter"), "{out}");

    // gammu asks for the numeric operator with AT+COPS=3,2 and shows it as "MCC MNC".
    let out = gammu(&bin, &rc, &["networkinfo"], None).await;
    assert!(out.contains("home network"), "{out}");
    assert!(out.contains("Network              : 262 99"), "{out}");
    assert!(!out.contains("(unknown, unknown)"), "{out}");

    // GSM 7-bit (with characters from the default alphabet's odd corners), UCS-2, and 400
    // characters that take three concatenated parts.
    let to = "+4915112345678";
    let gsm = "Disk full on db1 @ 03:00 (100%) _ok_";
    gammu(&bin, &rc, &["sendsms", "TEXT", to, "-text", gsm], None).await;
    let unicode = "Überlauf auf db1 – 5 € ✓";
    gammu(
        &bin,
        &rc,
        &["sendsms", "TEXT", to, "-unicode", "-text", unicode],
        None,
    )
    .await;
    let long: String = "Replica lag on db2 is rising. "
        .repeat(14)
        .chars()
        .take(400)
        .collect();
    gammu(
        &bin,
        &rc,
        &["sendsms", "TEXT", to, "-len", "400"],
        Some(&long),
    )
    .await;
    let sent = delivered(&sim).await;
    assert_eq!(
        sent,
        vec![
            (to.to_string(), gsm.to_string(), "gsm7".to_string(), 1),
            (to.to_string(), unicode.to_string(), "ucs2".to_string(), 1),
            (to.to_string(), long.clone(), "gsm7".to_string(), 3),
        ],
        "the network log holds exactly the texts gammu sent"
    );

    // Stored messages, one of them in three parts.
    sim.deliver_sms("+4917011111111", "ACK 42", DeliverOptions::default())
        .await
        .unwrap();
    let reply: String = "Three part reply. ".repeat(23).chars().take(400).collect();
    sim.deliver_sms("+4917022222222", &reply, DeliverOptions::default())
        .await
        .unwrap();
    let out = gammu(&bin, &rc, &["getallsms"], None).await;
    assert!(out.contains("4 SMS parts in 4 SMS sequences"), "{out}");
    assert!(out.contains("\"+4917011111111\""), "{out}");
    assert!(out.contains("ACK 42"), "{out}");
    for part in 1..=3 {
        assert!(
            out.contains(&format!("part {part} of 3")),
            "part {part} of the 3-part message: {out}"
        );
    }
    // The three parts' texts, as gammu printed them, make up the injected reply.
    let listed: String = out
        .split("Concatenated (linked) message")
        .skip(1)
        .map(|chunk| {
            let body = chunk.split("\n\n").nth(1).unwrap_or("");
            body.trim_end_matches('\n').to_string()
        })
        .collect();
    assert_eq!(listed.trim_end(), reply.trim_end(), "{out}");

    gammu(&bin, &rc, &["deleteallsms", "1"], None).await;
    let out = gammu(&bin, &rc, &["getallsms"], None).await;
    assert!(out.contains("0 SMS parts in 0 SMS sequences"), "{out}");

    // A call ringing while gammu connects (it probes AT+CHUP=? on every connect) rings on.
    sim.call_in(Some("+4917033333333")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    gammu(&bin, &rc, &["identify"], None).await;
    let log = sim.network_log().await.unwrap();
    assert_eq!(calls(&log), 0, "gammu's connect ended the call: {log:?}");
    // Still up: the caller giving up now is what ends it.
    sim.reject().await.unwrap();
    sim.wait_for_log(
        |e| matches!(e, NetworkEntry::Call { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the ringing call ends when the caller gives up");
    sim.shutdown().await;
}

/// A running smsd, killed when dropped.
struct Smsd(tokio::process::Child);

impl Drop for Smsd {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Polls `check` every 100 ms until it returns `Some` or `wait` passes.
async fn poll<T>(wait: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let end = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn smstools_sends_from_its_spool_and_receives_into_its_incoming_folder() {
    let Some(bin) = installed("smsd", "smstools") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let spool = dir.path().join("spool");
    let folders = ["outgoing", "checked", "incoming", "failed", "sent"];
    for f in folders {
        std::fs::create_dir_all(spool.join(f)).unwrap();
    }
    let conf = dir.path().join("smsd.conf");
    std::fs::write(
        &conf,
        format!(
            "devices = GSM1\n\
             outgoing = {s}/outgoing\nchecked = {s}/checked\nincoming = {s}/incoming\n\
             failed = {s}/failed\nsent = {s}/sent\n\
             logfile = {d}/smsd.log\nloglevel = 7\ninfofile = {d}/smsd.working\n\
             pidfile = {d}/smsd.pid\nreceive_before_send = no\n\
             [GSM1]\ndevice = {tty}\nincoming = yes\nbaudrate = 115200\ncheck_memory_method = 1\n",
            s = spool.display(),
            d = dir.path().display(),
            tty = sim.pty_path().display(),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("smsd.log");
    let smsd_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let child = tokio::process::Command::new(&bin)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start smsd");
    let _smsd = Smsd(child);

    // One message from the spool: smsd picks it up, sends it and moves it to `sent`.
    let text = "Disk full on db1, reply ACK 42";
    std::fs::write(
        spool.join("outgoing/page1"),
        format!("To: 4915112345678\n\n{text}\n"),
    )
    .unwrap();
    let sent = sim
        .wait_for_log(
            |e| matches!(e, NetworkEntry::Sms { .. }),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("smsd sent nothing ({e}); its log:\n{}", smsd_log()));
    let NetworkEntry::Sms { to, text: got, .. } = sent else {
        unreachable!("matched above")
    };
    assert_eq!(to, "+4915112345678");
    assert_eq!(got, text);
    poll(Duration::from_secs(30), || {
        spool.join("sent/page1").exists().then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("page1 never reached sent/; smsd log:\n{}", smsd_log()));

    // One message from a phone: smsd reads it off the SIM into `incoming`.
    sim.deliver_sms("+4917011111111", "ACK 42", DeliverOptions::default())
        .await
        .unwrap();
    let incoming = spool.join("incoming");
    let file = poll(Duration::from_secs(60), || {
        std::fs::read_dir(&incoming)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .find(|c| c.contains("ACK 42"))
    })
    .await
    .unwrap_or_else(|| panic!("no incoming file; smsd log:\n{}", smsd_log()));
    assert!(file.contains("From: 4917011111111"), "{file}");
    assert!(
        file.ends_with("ACK 42") || file.contains("\n\nACK 42"),
        "{file}"
    );
    sim.shutdown().await;
}
