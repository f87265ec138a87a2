//! Intake benchmark: durable alerts per second and latency over real HTTP, side by side with
//! Prometheus Alertmanager under the same load, and both daemons' idle CPU and memory.
//!
//! `cargo bench --bench intake` runs the full benchmark against the release build: for each key
//! pattern (one repeated key, 100 rotating keys, distinct keys) and each client count (1, 16,
//! 64), `PAGERBOX_BENCH_ALERTS` alerts (default 20000), each client a thread with its own
//! keep-alive connection sending one alert per request. The same load then goes to
//! Alertmanager's `/api/v2/alerts` (Debian's `prometheus-alertmanager`, installed when missing,
//! started on loopback with gossip off and a receiver that sends nothing), and the ratio of
//! pagerbox's throughput to Alertmanager's is printed beside it. Then
//! `PAGERBOX_BENCH_IDLE_SECS` (default 60) of idle, and both daemons' memory, anonymous and
//! file-backed apart. `PAGERBOX_BENCH_CASES=100:16` runs only the named cases (keys `1`, `100`
//! or `10k`, then clients; comma-separated) and `PAGERBOX_BENCH_REPEAT=N` runs each N times, both
//! daemons back to back each time, and prints the median ratio with its spread. Under `cargo test` (no `--bench` flag) it does a small smoke run against
//! pagerbox only (and Alertmanager when already installed) so the benchmark cannot rot.
//!
//! Every 202 counted here is an alert committed to SQLite with fsync (WAL, synchronous=FULL);
//! Alertmanager keeps its alerts in memory. The clients run on the same 2-core machine as the
//! daemons, so the figures include their cost, the same for both.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which keys the alerts carry.
#[derive(Debug, Clone, Copy)]
enum Keys {
    /// Every alert repeats one key: one open incident, all repeats.
    One,
    /// 100 keys in rotation: mostly repeats, as in an alert storm.
    Rotating,
    /// A new key for every alert (up to 10,000, then again): every alert opens an incident.
    Distinct,
}

impl Keys {
    fn name(self) -> &'static str {
        match self {
            Keys::One => "1 key",
            Keys::Rotating => "100 keys",
            Keys::Distinct => "10k keys",
        }
    }

    fn key(self, i: usize) -> usize {
        match self {
            Keys::One => 0,
            Keys::Rotating => i % 100,
            Keys::Distinct => i % 10_000,
        }
    }
}

/// A daemon under test: where to send an alert and how it is written.
#[derive(Debug, Clone)]
enum Target {
    Pagerbox { base: String, pid: u32 },
    Alertmanager { base: String, pid: u32 },
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Pagerbox { base, .. } => format!("{base}/v1/alerts"),
            Target::Alertmanager { base, .. } => format!("{base}/api/v2/alerts"),
        }
    }

    /// One alert for key `k`, the `i`th sent; the same fields for both daemons.
    fn body(&self, i: usize, k: usize) -> String {
        match self {
            Target::Pagerbox { .. } => format!(
                r#"{{"summary":"bench alert {i}","severity":"warning","dedup_key":"bench-{k}","service":"bench"}}"#
            ),
            Target::Alertmanager { .. } => format!(
                r#"[{{"labels":{{"alertname":"bench","key":"bench-{k}","severity":"warning","service":"bench"}},"annotations":{{"summary":"bench alert {i}"}}}}]"#
            ),
        }
    }

    /// The daemon's process, whose CPU time a run measures.
    fn pid(&self) -> u32 {
        match self {
            Target::Pagerbox { pid, .. } | Target::Alertmanager { pid, .. } => *pid,
        }
    }

    fn accepted(&self, status: u16) -> bool {
        match self {
            Target::Pagerbox { .. } => status == 202,
            Target::Alertmanager { .. } => status == 200,
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let alerts: usize = env_or("PAGERBOX_BENCH_ALERTS", if full { 20_000 } else { 300 });
    let idle_secs: u64 = env_or("PAGERBOX_BENCH_IDLE_SECS", if full { 60 } else { 2 });
    let dir = tempfile::tempdir().unwrap();
    let (mut child, http) = start_daemon(dir.path());
    let pagerbox = Target::Pagerbox {
        base: http,
        pid: child.id(),
    };
    let mut am = alertmanager(full, dir.path());
    println!(
        "pagerbox intake benchmark ({} mode): {alerts} alerts per run{}",
        if full { "full" } else { "smoke" },
        if am.is_some() {
            ", the same load against Alertmanager"
        } else {
            ""
        }
    );
    println!(
        "{:>9} {:>8} {:>12} {:>9} {:>9} {:>9} {:>8} {:>12} {:>8} {:>7}",
        "keys",
        "clients",
        "alerts/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "cpu µs",
        "AM alerts/s",
        "AM cpu",
        "ratio"
    );
    let cases = std::env::var("PAGERBOX_BENCH_CASES").ok();
    let repeat: usize = env_or("PAGERBOX_BENCH_REPEAT", 1).max(1);
    println!("pagerbox pid {}", child.id());
    for keys in [Keys::One, Keys::Rotating, Keys::Distinct] {
        for clients in [1usize, 16, 64] {
            if !selected(cases.as_deref(), keys, clients) {
                continue;
            }
            let mut ratios = Vec::new();
            for _ in 0..repeat {
                // Each round runs both daemons back to back, so the machine's load at the time
                // weighs on both alike.
                let r = run(&pagerbox, keys, clients, alerts);
                let versus = am
                    .as_ref()
                    .map(|(_, target)| run(target, keys, clients, alerts));
                let (am_rate, am_cpu, ratio) = match &versus {
                    Some(v) => {
                        ratios.push(r.rate / v.rate);
                        (
                            format!("{:.0}", v.rate),
                            format!("{:.0}", v.cpu_us),
                            format!("{:.2}", r.rate / v.rate),
                        )
                    }
                    None => ("-".into(), "-".into(), "-".into()),
                };
                println!(
                    "{:>9} {clients:>8} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>8.0} {am_rate:>12} {am_cpu:>8} {ratio:>7}",
                    keys.name(),
                    r.rate,
                    r.p50,
                    r.p99,
                    r.max,
                    r.cpu_us
                );
            }
            if ratios.len() > 1 {
                ratios.sort_by(f64::total_cmp);
                println!(
                    "{:>9} {clients:>8} ratio median {:.2} (min {:.2}, max {:.2}) over {} rounds",
                    keys.name(),
                    ratios[ratios.len() / 2],
                    ratios[0],
                    ratios[ratios.len() - 1],
                    ratios.len()
                );
            }
        }
    }
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(2)); // let the last batch settle
    let (cpu0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(idle_secs));
    let ticks = cpu_ticks(pid) - cpu0;
    let hz = 100.0; // USER_HZ on Linux
    let cpu_pct = ticks as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!("idle {idle_secs}s: cpu {cpu_pct:.3}% ({ticks} ticks)");
    println!("memory after the load above (RSS = anonymous + file-backed + shared):");
    println!("  pagerbox     {}", Memory::of(pid));
    if let Some((am_child, _)) = am.as_mut() {
        println!("  alertmanager {}", Memory::of(am_child.id()));
        let _ = am_child.kill();
        let _ = am_child.wait();
    }
    let _ = child.kill();
    let _ = child.wait();
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_pagerbox")).map(|m| m.len());
    if let Ok(bytes) = binary {
        println!("pagerbox binary {:.1} MB", bytes as f64 / 1e6);
    }
    // A fresh daemon that has done nothing: its idle footprint.
    let dir2 = tempfile::tempdir().unwrap();
    let (mut fresh, _) = start_daemon(dir2.path());
    std::thread::sleep(Duration::from_secs(idle_secs.min(10)));
    println!("fresh pagerbox {}", Memory::of(fresh.id()));
    let _ = fresh.kill();
    let _ = fresh.wait();
}

/// Whether `PAGERBOX_BENCH_CASES` (e.g. `100:16,10k:64`: keys, then clients) selects this case;
/// unset selects all.
fn selected(cases: Option<&str>, keys: Keys, clients: usize) -> bool {
    let Some(cases) = cases else { return true };
    let name = keys.name().split(' ').next().unwrap_or("");
    cases
        .split(',')
        .any(|c| c.trim() == format!("{name}:{clients}"))
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

/// Debian's Alertmanager binary.
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// Alertmanager on a free loopback port, installed first in full mode when missing; `None`
/// (with the reason printed) when it cannot be had.
#[allow(clippy::zombie_processes)] // the caller kills and waits for it
fn alertmanager(full: bool, dir: &std::path::Path) -> Option<(Child, Target)> {
    if !std::path::Path::new(ALERTMANAGER).exists() {
        if !full {
            println!("(Alertmanager not installed: the smoke run measures pagerbox alone)");
            return None;
        }
        println!("installing prometheus-alertmanager for the comparison");
        let ok = Command::new("sh")
            .args([
                "-c",
                "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null && \
                 apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends prometheus-alertmanager >/dev/null",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !std::path::Path::new(ALERTMANAGER).exists() {
            println!("(cannot install prometheus-alertmanager: measuring pagerbox alone)");
            return None;
        }
    }
    // A receiver with no integrations: Alertmanager groups and "notifies" nobody, so the load
    // measures its intake, as ours does.
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: \"null\"\n  group_by: [\"...\"]\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let data = dir.join("alertmanager-data");
    let mut child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=") // gossip off: a single instance
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ureq::get(&format!("{base}/-/ready")).call().is_err() {
        if Instant::now() > deadline {
            println!("(Alertmanager did not become ready: measuring pagerbox alone)");
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id();
    Some((child, Target::Alertmanager { base, pid }))
}

struct Result {
    rate: f64,
    /// The daemon's CPU time (user + system) per alert, in µs: less swayed than the rate by
    /// what else runs on the machine.
    cpu_us: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

fn run(target: &Target, keys: Keys, clients: usize, alerts: usize) -> Result {
    let next = Arc::new(AtomicUsize::new(0));
    let ticks = cpu_ticks(target.pid());
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let target = target.clone();
            let url = target.url();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().max_idle_connections(1).build();
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= alerts {
                        break;
                    }
                    let body = target.body(i, keys.key(i));
                    let t = Instant::now();
                    let r = agent
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(&body)
                        .expect("request");
                    assert!(target.accepted(r.status()), "{target:?}: {}", r.status());
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
    let ticks = cpu_ticks(target.pid()) - ticks;
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    Result {
        rate: alerts as f64 / elapsed.as_secs_f64(),
        cpu_us: ticks as f64 * 10_000.0 / alerts as f64, // a tick is 10 ms (USER_HZ 100)
        p50: pct(0.50),
        p99: pct(0.99),
        max: ms(*lat.last().unwrap()),
    }
}

/// CPU time of process `pid` so far (user + system, all threads), in ticks of 10 ms.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A process's resident memory from `/proc/PID/status`, in kB.
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} kB (anonymous {} kB, file-backed {} kB)",
            self.rss, self.anon, self.file
        )
    }
}
