//! End to end: the modem simulator through its real PTY, opened with tokio-serial exactly as
//! the daemon opens `/dev/ttyUSB2`, speaking raw AT bytes.

use std::path::Path;
use std::time::Duration;

use pagerbox::modem::sim::{
    CallBehaviour, CallOutcome, DeliverOptions, Fault, NetworkEntry, SimConfig, SimHandle,
    SimProfile, Simulator, UrcPlacement,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

const WAIT: Duration = Duration::from_secs(5);

/// A DTE on the simulator's port: writes commands, reads until an expected text.
struct Dte {
    port: SerialStream,
    seen: Vec<u8>,
}

impl Dte {
    fn open(path: &Path) -> Dte {
        let port = tokio_serial::new(path.to_string_lossy(), 115_200)
            .open_native_async()
            .expect("open the simulator's PTY like a serial port");
        Dte {
            port,
            seen: Vec::new(),
        }
    }

    async fn write(&mut self, s: &[u8]) {
        self.port.write_all(s).await.unwrap();
    }

    /// Reads until `needle` has arrived; returns everything up to and including it.
    async fn read_until(&mut self, needle: &str) -> String {
        let n = needle.as_bytes();
        let fut = async {
            loop {
                if let Some(i) = self.seen.windows(n.len()).position(|w| w == n) {
                    let rest = self.seen.split_off(i + n.len());
                    let got = std::mem::replace(&mut self.seen, rest);
                    return String::from_utf8_lossy(&got).into_owned();
                }
                let mut buf = [0u8; 512];
                let k = self.port.read(&mut buf).await.expect("read from the PTY");
                assert!(k > 0, "PTY closed while waiting for {needle:?}");
                self.seen.extend_from_slice(&buf[..k]);
            }
        };
        match timeout(WAIT, fut).await {
            Ok(s) => s,
            Err(_) => panic!(
                "timed out waiting for {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.seen)
            ),
        }
    }

    /// Sends a command and returns the response up to its final `OK`/error line.
    async fn cmd(&mut self, line: &str) -> String {
        self.write(format!("{line}\r").as_bytes()).await;
        let fut = async {
            let mut acc = String::new();
            loop {
                acc.push_str(&self.read_until("\r\n").await);
                let last = acc
                    .trim_end()
                    .rsplit("\r\n")
                    .next()
                    .unwrap_or("")
                    .to_string();
                if last == "OK"
                    || last == "ERROR"
                    || last.starts_with("+CME ERROR")
                    || last.starts_with("+CMS ERROR")
                    || last == "NO CARRIER"
                {
                    return acc;
                }
            }
        };
        timeout(WAIT, fut).await.expect("final result")
    }

    /// Waits for the banners to settle, switches echo off and drops what was read so far.
    async fn sync(&mut self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.cmd("ATE0").await;
        self.seen.clear();
    }
}

async fn start(profile: SimProfile) -> (tempfile::TempDir, SimHandle, Dte) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig::fast(profile, dir.path().join("ttyUSB2"));
    let sim = Simulator::start(cfg).await.expect("simulator starts");
    let mut dte = Dte::open(&sim.pty_path());
    dte.sync().await;
    (dir, sim, dte)
}

#[tokio::test]
async fn identify_over_the_pty() {
    let (_dir, sim, mut dte) = start(SimProfile::Sim800).await;
    assert_eq!(dte.cmd("AT").await, "\r\nOK\r\n");
    assert_eq!(dte.cmd("ATI").await, "\r\nSIM800 R14.18\r\n\r\nOK\r\n");
    assert_eq!(dte.cmd("AT+CGMM").await, "\r\nSIMCOM_SIM800\r\n\r\nOK\r\n");
    assert_eq!(dte.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    let link = sim.pty_path();
    sim.shutdown().await;
    assert!(
        std::fs::symlink_metadata(link).is_err(),
        "link removed on shutdown"
    );
}

#[tokio::test]
async fn echo_and_banners_come_through_the_pty() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig::fast(SimProfile::Ec25, dir.path().join("modem"));
    let sim = Simulator::start(cfg).await.unwrap();
    let mut dte = Dte::open(&sim.pty_path());
    let banners = dte.read_until("+QIND: PB DONE\r\n").await;
    assert!(banners.contains("\r\nRDY\r\n") && banners.contains("+CPIN: READY"));
    dte.write(b"AT\r").await;
    assert_eq!(dte.read_until("OK\r\n").await, "AT\r\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn urc_inside_a_multi_line_response() {
    let (_dir, sim, mut dte) = start(SimProfile::Generic).await;
    dte.cmd("ATD+4930123;").await;
    sim.inject_urc("RING", UrcPlacement::InsideNextResponse)
        .await
        .unwrap();
    let r = dte.cmd("AT+CLCC").await;
    assert_eq!(
        r,
        "\r\n+CLCC: 1,0,2,0,0,\"+4930123\",145\r\n\r\nRING\r\n\r\nOK\r\n"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn call_answered_busy_and_no_answer_with_clcc_states() {
    let (_dir, sim, mut dte) = start(SimProfile::Sim800).await;
    dte.cmd("AT+DDET=1").await;
    assert_eq!(dte.cmd("ATD+4930123;").await, "\r\nOK\r\n");
    // Dialing, then alerting once the far phone rings.
    let mut states = Vec::new();
    for _ in 0..50 {
        let r = dte.cmd("AT+CLCC").await;
        let stat = r.split(',').nth(2).map(str::to_string).unwrap_or_default();
        if states.last() != Some(&stat) {
            states.push(stat.clone());
        }
        if stat == "3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(states.last().map(String::as_str), Some("3"), "{states:?}");
    sim.answer().await.unwrap();
    assert!(dte.cmd("AT+CLCC").await.contains("+CLCC: 1,0,0,0,0"));
    sim.dtmf('1').await.unwrap();
    assert_eq!(dte.read_until("\r\n+DTMF:1\r\n").await, "\r\n+DTMF:1\r\n");
    assert_eq!(dte.cmd("ATH").await, "\r\nOK\r\n");

    sim.set_call_behaviour(CallBehaviour::Busy).await.unwrap();
    dte.cmd("ATD+4930123;").await;
    dte.read_until("\r\nBUSY\r\n").await;

    sim.set_call_behaviour(CallBehaviour::Manual).await.unwrap();
    dte.cmd("ATD+4930123;").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    sim.ignore().await.unwrap();
    dte.read_until("\r\nNO ANSWER\r\n").await;

    let outcomes: Vec<CallOutcome> = sim
        .network_log()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            NetworkEntry::Call { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            CallOutcome::Answered,
            CallOutcome::Busy,
            CallOutcome::NoAnswer
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn silence_then_heal() {
    let (_dir, sim, mut dte) = start(SimProfile::Generic).await;
    sim.fault(Fault::Silence).await.unwrap();
    dte.write(b"AT\r").await;
    let r = timeout(Duration::from_millis(300), dte.read_until("OK")).await;
    assert!(r.is_err(), "a silent modem does not answer");
    sim.heal().await.unwrap();
    dte.seen.clear();
    assert_eq!(dte.cmd("AT").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn garbage_is_written_on_request() {
    let (_dir, sim, mut dte) = start(SimProfile::Generic).await;
    sim.fault(Fault::Garbage).await.unwrap();
    let g = dte.read_until("(garbled)\r\n").await;
    assert!(g.contains('\u{fffd}'), "{g:?}");
    assert_eq!(dte.cmd("AT").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn vanish_and_reappear_at_the_same_path() {
    let (_dir, sim, mut dte) = start(SimProfile::Sim7600).await;
    let first = sim.slave_path().await.unwrap().unwrap();
    sim.fault(Fault::Vanish {
        after: Duration::from_millis(200),
    })
    .await
    .unwrap();
    // The open port is dead: end of file or an I/O error.
    let mut buf = [0u8; 64];
    let r = timeout(Duration::from_secs(2), dte.port.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    assert!(
        std::fs::symlink_metadata(sim.pty_path()).is_err(),
        "link gone"
    );
    let mut back = None;
    for _ in 0..100 {
        if let Ok(Some(p)) = sim.slave_path().await {
            if sim.pty_path().exists() {
                back = Some(p);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = back.expect("reappeared");
    assert_eq!(std::fs::read_link(sim.pty_path()).unwrap(), second);
    let _ = first;
    let mut dte = Dte::open(&sim.pty_path());
    let banners = dte.read_until("PB DONE\r\n").await;
    assert!(banners.contains("RDY"), "rebooted: {banners:?}");
    dte.write(b"AT\r").await;
    assert_eq!(
        dte.read_until("OK\r\n").await,
        "AT\r\r\nOK\r\n",
        "echo on again"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn lose_registration_and_sim_missing() {
    let (_dir, sim, mut dte) = start(SimProfile::Generic).await;
    dte.cmd("AT+CREG=1;+CMEE=1").await;
    sim.fault(Fault::LoseRegistration { searching: true })
        .await
        .unwrap();
    dte.read_until("\r\n+CREG: 2\r\n").await;
    assert_eq!(dte.cmd("AT+CREG?").await, "\r\n+CREG: 1,2\r\n\r\nOK\r\n");
    sim.heal().await.unwrap();
    dte.read_until("\r\n+CREG: 1\r\n").await;
    sim.fault(Fault::SimMissing).await.unwrap();
    assert_eq!(
        dte.cmd("AT+CPIN?").await,
        "\r\n+CREG: 0\r\n\r\n+CME ERROR: 10\r\n"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn control_socket_speaks_json_lines() {
    use pagerbox::modem::sim::control::{request, ControlRequest};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::fast(SimProfile::Sim800, dir.path().join("modem"));
    let sock = dir.path().join("ctl.sock");
    cfg.control_socket = Some(sock.clone());
    let sim = Simulator::start(cfg).await.unwrap();
    let mut dte = Dte::open(&sim.pty_path());
    dte.sync().await;
    dte.cmd("ATD+4930123;").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = request(&sock, &ControlRequest::Answer).await.unwrap();
    assert!(r.ok, "{r:?}");
    let r = request(&sock, &ControlRequest::Dtmf { key: 'x' })
        .await
        .unwrap();
    assert!(!r.ok && r.error.unwrap().contains("not a DTMF key"));
    dte.cmd("ATH").await;
    let r = request(&sock, &ControlRequest::Log).await.unwrap();
    assert_eq!(
        r.log.unwrap().iter().filter(|e| e.kind() == "call").count(),
        1
    );
    sim.shutdown().await;
    assert!(!sock.exists(), "socket removed on shutdown");
    let _ = DeliverOptions::default();
}

/// "hellohello" to +46708251358 (a published SMS-SUBMIT), with the empty `00` SMSC field.
const HELLO: &str = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37";

async fn submit(dte: &mut Dte, tpdu_len: usize, hex: &str) -> String {
    dte.write(format!("AT+CMGS={tpdu_len}\r").as_bytes()).await;
    dte.read_until("> ").await;
    dte.write(format!("{hex}\x1a").as_bytes()).await;
    let fut = async {
        let mut acc = String::new();
        loop {
            acc.push_str(&dte.read_until("\r\n").await);
            let last = acc
                .trim_end()
                .rsplit("\r\n")
                .next()
                .unwrap_or("")
                .to_string();
            if last == "OK" || last.contains("ERROR") {
                return acc;
            }
        }
    };
    timeout(WAIT, fut).await.expect("submit result")
}

#[tokio::test]
async fn send_sms_pdu_with_and_without_smsc_and_see_it_decoded() {
    let (_dir, sim, mut dte) = start(SimProfile::Sim7600).await;
    assert_eq!(dte.cmd("AT+CMGF=0").await, "\r\nOK\r\n");
    assert_eq!(
        submit(&mut dte, 23, HELLO).await,
        "\r\n+CMGS: 0\r\n\r\nOK\r\n"
    );
    assert_eq!(
        submit(&mut dte, 23, &HELLO[2..]).await,
        "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    );
    let e = sim
        .wait_for_log(
            |e| matches!(e, NetworkEntry::Sms { message_references, .. } if message_references == &vec![1]),
            WAIT,
        )
        .await
        .unwrap();
    let NetworkEntry::Sms {
        to,
        text,
        encoding,
        parts,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(
        (to.as_str(), text.as_str(), encoding.as_str(), parts),
        ("+46708251358", "hellohello", "gsm7", 1)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn read_an_injected_sms_with_cmgr_and_cmgl() {
    let (_dir, sim, mut dte) = start(SimProfile::Generic).await;
    dte.cmd("AT+CMGF=0;+CPMS=\"SM\",\"SM\",\"SM\"").await;
    sim.deliver_sms("+4917012345", "ACK 7", DeliverOptions::default())
        .await
        .unwrap();
    dte.read_until("\r\n+CMTI: \"SM\",1\r\n").await;
    let r = dte.cmd("AT+CMGR=1").await;
    let lines: Vec<&str> = r.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("+CMGR: 0,,"), "{r:?}");
    let len: usize = lines[0].rsplit(',').next().unwrap().parse().unwrap();
    assert_eq!(
        lines[1].len() / 2 - 1 - usize::from_str_radix(&lines[1][..2], 16).unwrap(),
        len
    );
    let l = dte.cmd("AT+CMGL=4").await;
    assert!(l.starts_with("\r\n+CMGL: 1,1,,"), "{l:?}");
    dte.cmd("AT+CMGF=1").await;
    let t = dte.cmd("AT+CMGR=1").await;
    assert!(
        t.contains("\"REC READ\",\"+4917012345\"") && t.contains("\r\nACK 7\r\n"),
        "{t:?}"
    );
    assert_eq!(dte.cmd("AT+CMGD=1").await, "\r\nOK\r\n");
    assert_eq!(
        dte.cmd("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30\r\n\r\nOK\r\n"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn cmti_inside_a_cmgl_listing() {
    let (_dir, sim, mut dte) = start(SimProfile::Sim800).await;
    for t in ["one", "two"] {
        sim.deliver_sms("+4917012345", t, DeliverOptions::default())
            .await
            .unwrap();
        dte.read_until("+CMTI").await;
        dte.read_until("\r\n").await;
    }
    sim.deliver_sms(
        "+4917012345",
        "three",
        DeliverOptions {
            placement: UrcPlacement::InsideNextResponse,
            ..DeliverOptions::default()
        },
    )
    .await
    .unwrap();
    let l = dte.cmd("AT+CMGL=4").await;
    let lines: Vec<&str> = l.split("\r\n").collect();
    let cmti = lines
        .iter()
        .position(|x| *x == "+CMTI: \"SM\",3")
        .unwrap_or_else(|| panic!("{l:?}"));
    assert!(lines[..cmti].iter().any(|x| x.starts_with("+CMGL: 1,")));
    assert!(lines[cmti..].iter().any(|x| x.starts_with("+CMGL: 2,")));
    sim.shutdown().await;
}

#[tokio::test]
async fn submit_faults_over_the_pty() {
    let (_dir, sim, mut dte) = start(SimProfile::Ec25).await;
    dte.cmd("AT+CMEE=1").await;
    sim.fault(Fault::SubmitCms500 { count: 1 }).await.unwrap();
    assert_eq!(submit(&mut dte, 23, HELLO).await, "\r\n+CMS ERROR: 500\r\n");
    sim.fault(Fault::SubmitError { count: 1 }).await.unwrap();
    assert_eq!(submit(&mut dte, 23, HELLO).await, "\r\nERROR\r\n");
    sim.fault(Fault::LoseRegistration { searching: false })
        .await
        .unwrap();
    assert_eq!(submit(&mut dte, 23, HELLO).await, "\r\n+CMS ERROR: 331\r\n");
    sim.fault(Fault::SimMissing).await.unwrap();
    let r = dte.cmd("AT+CMGS=23").await;
    assert!(r.ends_with("\r\n+CMS ERROR: 310\r\n"), "{r:?}");
    sim.heal().await.unwrap();
    assert_eq!(
        submit(&mut dte, 23, HELLO).await,
        "\r\n+CMGS: 0\r\n\r\nOK\r\n"
    );
    let refused = sim
        .network_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind() == "sms_refused")
        .count();
    assert_eq!(refused, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn delivery_report_arrives_as_cds() {
    use pagerbox::modem::pdu::{encode_submit, SubmitOptions};
    let (_dir, sim, mut dte) = start(SimProfile::Sim800).await;
    dte.cmd("AT+CNMI=2,1,0,1,0").await;
    let p = encode_submit(
        "+4915112345678",
        "page",
        &SubmitOptions {
            request_status_report: true,
            ..SubmitOptions::default()
        },
    )
    .unwrap()
    .remove(0);
    assert_eq!(
        submit(&mut dte, p.tpdu_len, &p.hex).await,
        "\r\n+CMGS: 0\r\n\r\nOK\r\n"
    );
    let cds = dte.read_until("+CDS: ").await;
    assert!(cds.ends_with("+CDS: "));
    let rest = dte.read_until("\r\n").await;
    let _len: usize = rest.trim().parse().unwrap();
    let pdu = dte.read_until("\r\n").await;
    assert!(pdu.trim().len() > 20);
    sim.shutdown().await;
}

/// Not a test: runs a simulator for manual trials with third-party AT clients (gammu).
/// `PAGERBOX_SIM_LINK=/tmp/m PAGERBOX_SIM_PROFILE=sim800 PAGERBOX_SIM_SECS=120
/// cargo test --test simulator -- --ignored --nocapture manual_simulator`
#[tokio::test]
#[ignore = "manual: runs a simulator for external AT clients"]
async fn manual_simulator() {
    let link = std::env::var("PAGERBOX_SIM_LINK").unwrap_or_else(|_| "/tmp/pagerbox-modem".into());
    let profile: SimProfile = std::env::var("PAGERBOX_SIM_PROFILE")
        .unwrap_or_else(|_| "sim800".into())
        .parse()
        .unwrap();
    let secs: u64 = std::env::var("PAGERBOX_SIM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut cfg = SimConfig::fast(profile, link.into());
    cfg.command_delay = Duration::from_millis(20);
    cfg.sms_delay = Duration::from_millis(300);
    cfg.control_socket = std::env::var("PAGERBOX_SIM_CONTROL").ok().map(Into::into);
    let sim = Simulator::start(cfg).await.unwrap();
    sim.deliver_sms(
        "+4917012345",
        "stored before the client came",
        DeliverOptions::default(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    for e in sim.network_log().await.unwrap() {
        println!("{}", serde_json::to_string(&e).unwrap());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_port_can_be_closed_and_reopened() {
    let (_dir, sim, dte) = start(SimProfile::Generic).await;
    drop(dte);
    // A URC while nobody has the port open waits in the PTY, as on a USB serial port.
    sim.deliver_sms("+4917012345", "while closed", DeliverOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut dte = Dte::open(&sim.pty_path());
    dte.read_until("+CMTI: \"SM\",1\r\n").await;
    assert_eq!(dte.cmd("AT").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_with_cfun_gives_banners_and_pin_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::fast(SimProfile::Sim800, dir.path().join("modem"));
    cfg.pin = Some("1234".into());
    let sim = Simulator::start(cfg).await.unwrap();
    let mut dte = Dte::open(&sim.pty_path());
    dte.read_until("+CPIN: SIM PIN\r\n").await;
    dte.sync().await;
    dte.cmd("AT+CMEE=1").await;
    assert_eq!(dte.cmd("AT+CPIN=\"1111\"").await, "\r\n+CME ERROR: 16\r\n");
    let ok = dte.cmd("AT+CPIN=\"1234\"").await;
    assert_eq!(ok, "\r\nOK\r\n");
    dte.read_until("SMS Ready\r\n").await;
    assert_eq!(dte.cmd("AT+CFUN=1,1").await, "\r\nOK\r\n");
    let banners = dte.read_until("+CPIN: SIM PIN\r\n").await;
    assert!(banners.contains("RDY"), "{banners:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn ctl_cli_drives_a_running_simulator() {
    use clap::Parser;
    use pagerbox::modem::sim::cli::{run, SimulatorArgs};

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        sim: SimulatorArgs,
    }

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ctl.sock");
    let mut cfg = SimConfig::fast(SimProfile::Generic, dir.path().join("modem"));
    cfg.control_socket = Some(sock.clone());
    let sim = Simulator::start(cfg).await.unwrap();
    let mut dte = Dte::open(&sim.pty_path());
    dte.sync().await;
    let ctl = |args: &[&str]| {
        let mut full = vec!["pagerbox", "ctl", "--control", sock.to_str().unwrap()];
        full.extend_from_slice(args);
        Top::try_parse_from(full).unwrap().sim
    };
    let code = run(ctl(&["sms-in", "--from", "+4917012345", "ACK 5"]))
        .await
        .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    dte.read_until("+CMTI: \"SM\",1\r\n").await;
    run(ctl(&["fault", "cms500", "--count", "1"]))
        .await
        .unwrap();
    assert_eq!(submit(&mut dte, 23, HELLO).await, "\r\n+CMS ERROR: 500\r\n");
    run(ctl(&["heal"])).await.unwrap();
    assert_eq!(
        submit(&mut dte, 23, HELLO).await,
        "\r\n+CMGS: 0\r\n\r\nOK\r\n"
    );
    let code = run(ctl(&["dtmf", "1"])).await.unwrap();
    assert_eq!(code, std::process::ExitCode::FAILURE, "no call: refused");
    run(ctl(&["log"])).await.unwrap();
    sim.shutdown().await;
}
