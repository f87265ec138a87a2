//! Intake benchmark: durable alerts per second and latency over real HTTP, and the daemon's idle
//! CPU and memory.
//!
//! `cargo bench --bench intake` runs the full benchmark against the release build:
//! `PAGERBOX_BENCH_ALERTS` alerts (default 20000) for each of 1, 16 and 64 concurrent clients,
//! each client a thread with its own keep-alive connection, then `PAGERBOX_BENCH_IDLE_SECS`
//! (default 60) of idle. Under `cargo test` (no `--bench` flag) it does a small smoke run so
//! the benchmark cannot rot.
//!
//! Every 202 counted here is an alert committed to SQLite with fsync (WAL, synchronous=FULL).
//! The clients run on the same 2-core machine as the daemon, so the figures include their cost.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let alerts: usize = env_or("PAGERBOX_BENCH_ALERTS", if full { 20_000 } else { 300 });
    let idle_secs: u64 = env_or("PAGERBOX_BENCH_IDLE_SECS", if full { 60 } else { 2 });
    let dir = tempfile::tempdir().unwrap();
    let (mut child, http) = start_daemon(dir.path());
    println!(
        "pagerbox intake benchmark ({} mode): {alerts} alerts per run",
        if full { "full" } else { "smoke" }
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10}",
        "clients", "alerts/s", "p50 ms", "p99 ms", "max ms"
    );
    for clients in [1usize, 16, 64] {
        let r = run(&http, clients, alerts);
        println!(
            "{clients:>8} {:>12.0} {:>10.2} {:>10.2} {:>10.2}",
            r.rate, r.p50, r.p99, r.max
        );
    }
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(2)); // let the last batch settle
    let (cpu0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(idle_secs));
    let ticks = cpu_ticks(pid) - cpu0;
    let hz = 100.0; // USER_HZ on Linux
    let cpu_pct = ticks as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle {idle_secs}s: cpu {cpu_pct:.3}% ({ticks} ticks), rss {} kB (after the load above)",
        rss_kb(pid)
    );
    let _ = child.kill();
    let _ = child.wait();
    // A fresh daemon that has done nothing: its idle footprint.
    let dir2 = tempfile::tempdir().unwrap();
    let (mut fresh, _) = start_daemon(dir2.path());
    std::thread::sleep(Duration::from_secs(idle_secs.min(10)));
    println!("fresh daemon rss {} kB", rss_kb(fresh.id()));
    let _ = fresh.kill();
    let _ = fresh.wait();
}

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

// The child is returned to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start_daemon(dir: &std::path::Path) -> (Child, String) {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[udp]\nenabled = false\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagerbox"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let run = dir.join("state/run.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(t) = std::fs::read_to_string(&run) {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            return (child, format!("http://{}", v["http"].as_str().unwrap()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Result {
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

fn run(base: &str, clients: usize, alerts: usize) -> Result {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let next = next.clone();
            let url = format!("{base}/v1/alerts");
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().max_idle_connections(1).build();
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= alerts {
                        break;
                    }
                    // 100 keys per client: mostly repeats, as in an alert storm, plus new incidents.
                    let body = format!(
                        r#"{{"summary":"bench alert {i}","severity":"warning","dedup_key":"bench-{c}-{}","service":"bench"}}"#,
                        i % 100
                    );
                    let t = Instant::now();
                    let r = agent
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(&body).expect("request");
                    assert_eq!(r.status(), 202);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    Result {
        rate: alerts as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: ms(*lat.last().unwrap()),
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
