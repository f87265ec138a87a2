//! AT engine overhead per SMS.
//!
//! Two measurements, each printed as p50/p99/max:
//! 1. engine only: `Modem::send_sms` against an in-process responder over `tokio::io::duplex`
//!    that answers the prompt and `+CMGS` instantly: the driver's own cost (queue, PDU encode,
//!    AT framing, parsing) with no PTY and no simulator in the way;
//! 2. end to end: the same against the built-in simulator with zero delays through a real PTY
//!    (adds the kernel PTY and the simulator's own decoding and logging).
//!
//! Each for a one-part GSM text and a five-part UCS-2 text. Run:
//! `cargo bench --bench modem` (optionally `-- <iterations>`).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagerbox::clock::SystemClock;
use pagerbox::modem::port::PortOpener;
use pagerbox::modem::sim::{SimConfig, SimProfile, Simulator};
use pagerbox::modem::{HealthState, Modem, ProfileChoice, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

const TO: &str = "+4915112345678";

fn short_text() -> String {
    "CRITICAL db1: disk /var 98% full (incident 1234). Reply 1 to ack.".to_string()
}

/// 5 UCS-2 parts: 67 units each, so 4*67 < n <= 5*67.
fn five_part_unicode() -> String {
    let s = "Диск заполнен на db1 ⚠ ".repeat(14);
    let units: usize = s.encode_utf16().count();
    assert!(units > 4 * 67 && units <= 5 * 67, "{units}");
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn report(label: &str, mut samples: Vec<Duration>, parts: usize) {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    let max = *samples.last().unwrap();
    println!(
        "{label:<44} n={:<5} p50={:>9.3?} p99={:>9.3?} max={:>9.3?} per part p50={:>9.3?}",
        samples.len(),
        p50,
        p99,
        max,
        p50 / parts as u32
    );
}

/// Answers every `AT+CMGS` instantly; everything else `OK` (bring-up answers are plain).
async fn responder(mut io: DuplexStream) {
    let mut buf = vec![0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut mr: u8 = 0;
    let mut in_pdu = false;
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        loop {
            if in_pdu {
                let Some(pos) = pending.iter().position(|&b| b == 0x1a) else {
                    break;
                };
                pending.drain(..=pos);
                in_pdu = false;
                mr = mr.wrapping_add(1);
                let reply = format!("\r\n+CMGS: {mr}\r\n\r\nOK\r\n");
                if io.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            let Some(pos) = pending.iter().position(|&b| b == b'\r') else {
                break;
            };
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            let reply: &[u8] = if line.starts_with("AT+CMGS=") {
                in_pdu = true;
                b"\r\n> "
            } else if line == "AT+CPIN?" {
                b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
            } else if line == "AT+CREG?" {
                b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
            } else if line == "AT+CSQ" {
                b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
            } else {
                b"\r\nOK\r\n"
            };
            if io.write_all(reply).await.is_err() {
                return;
            }
        }
    }
}

struct InstantOpener;

impl PortOpener for InstantOpener {
    type Port = DuplexStream;

    async fn open(&mut self) -> io::Result<DuplexStream> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        tokio::spawn(responder(b));
        Ok(a)
    }

    fn describe(&self) -> String {
        "instant responder".into()
    }
}

fn settings(device: std::path::PathBuf) -> Settings {
    Settings {
        profile: ProfileChoice::Generic,
        delivery_reports: false,
        health_interval: Duration::from_secs(3600),
        command_timeout: Duration::from_secs(2),
        sms_timeout: Duration::from_secs(5),
        ..Settings::new(device)
    }
}

async fn measure(modem: &Modem, text: &str, iterations: usize, parts: usize) -> Vec<Duration> {
    for _ in 0..10 {
        modem.send_sms(TO, text).await.expect("warm-up send");
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t0 = Instant::now();
        let receipt = modem.send_sms(TO, text).await.expect("send");
        samples.push(t0.elapsed());
        assert_eq!(receipt.parts, parts);
    }
    samples
}

async fn wait_up(modem: &Modem) {
    let mut h = modem.health();
    tokio::time::timeout(
        Duration::from_secs(20),
        h.wait_for(|h| h.state == HealthState::Up),
    )
    .await
    .expect("modem up in time")
    .expect("modem task alive");
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let short = short_text();
        let long = five_part_unicode();
        println!(
            "pagerbox modem bench: {iterations} iterations (5-part: {} )",
            iterations / 5
        );

        // 1. Engine only.
        let token = CancellationToken::new();
        let (modem, _events) = Modem::spawn_with(
            settings("/dev/null".into()),
            InstantOpener,
            Arc::new(SystemClock),
            token.clone(),
        );
        wait_up(&modem).await;
        report(
            "engine only, 1-part GSM (submit -> +CMGS)",
            measure(&modem, &short, iterations, 1).await,
            1,
        );
        report(
            "engine only, 5-part UCS-2 (whole message)",
            measure(&modem, &long, iterations / 5, 5).await,
            5,
        );
        token.cancel();

        // 2. End to end through the PTY simulator, zero delays.
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Simulator::start(SimConfig::fast(
            SimProfile::Sim7600,
            dir.path().join("modem"),
        ))
        .await
        .expect("simulator");
        let token = CancellationToken::new();
        let (modem, mut events) = Modem::spawn(settings(sim.pty_path()), token.clone());
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        wait_up(&modem).await;
        report(
            "simulator via PTY, 1-part GSM",
            measure(&modem, &short, iterations, 1).await,
            1,
        );
        report(
            "simulator via PTY, 5-part UCS-2",
            measure(&modem, &long, iterations / 5, 5).await,
            5,
        );
        token.cancel();
        sim.shutdown().await;
    });
}
