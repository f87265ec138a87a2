//! Page latency: from the HTTP 202 of an alert to the SMS reaching the simulated network, with
//! the release daemon and the modem simulator set to zero delays, while idle and while a storm
//! of alerts over 100 keys arrives. Also the daemon's idle CPU and RSS with a modem attached.
//!
//! What is measured ends when the simulator has taken the whole `AT+CMGS` PDU and answered
//! `+CMGS` (it logs the part then), so it is an upper bound on "202 to the first byte of
//! AT+CMGS": it includes writing the PDU and the simulator's own processing.
//!
//! Last, the same page latency while an outbound webhook receiver accepts and never answers
//! (added by a config reload), to show outbound notifications cannot slow paging.
//!
//! Then recovery: an alert accepted while the modem boots (the daemon restarted, the alert
//! posted as soon as HTTP answers) and one accepted during a network outage (the simulator loses
//! registration, the page falls through and backs off, then the network comes back): the time
//! from the daemon seeing the modem up again to the `AT+CMGS` at the network. It must be under
//! a second, not the sender's backoff.
//!
//! Then mixed load, on a daemon and zero-delay simulator of its own: the intake's maximum on
//! this machine is measured first (16 clients over 100 keys, unpaced), then the page latency
//! while alerts arrive at half that rate and four clients read the status page, a year of
//! stats, `/metrics` and an incident report in a loop. The goal is p99 under 20 ms: no cliff.
//!
//! Then, with a second daemon and a simulator at the example config's modem timings (200 ms per
//! command, 1 s per submit), the page latency while 16 clients load the status page (`GET /`),
//! a year of stats and `/metrics` in a loop, against the same daemon idle: reads must neither
//! queue AT commands in front of pages nor hold up the store's writer.
//!
//! `cargo bench --bench paging` (PAGERBOX_BENCH_PAGES, PAGERBOX_BENCH_STORM_RATE,
//! PAGERBOX_BENCH_IDLE_SECS, PAGERBOX_BENCH_RECOVERY=N rounds, PAGERBOX_BENCH_STATUS_PAGES;
//! PAGERBOX_BENCH_ONLY=recovery, =status_page or =mixed runs only that phase; PAGERBOX_BENCH_BIN runs
//! another pagerbox binary, e.g. an older build for a before/after); under `cargo test` a small
//! smoke run (the status-page phase then at a tenth of the modem timings).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pagerbox::modem::sim::{Fault, NetworkEntry, SimConfig, SimHandle, SimProfile, Simulator};

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let status_pages: usize = env_or("PAGERBOX_BENCH_STATUS_PAGES", if full { 20 } else { 3 });
    if std::env::var("PAGERBOX_BENCH_ONLY").as_deref() == Ok("status_page") {
        status_page_phase(status_pages, full);
        return;
    }
    let pages: usize = env_or("PAGERBOX_BENCH_PAGES", if full { 200 } else { 10 });
    let storm_rate: u64 = env_or("PAGERBOX_BENCH_STORM_RATE", 1000);
    let idle_secs: u64 = env_or("PAGERBOX_BENCH_IDLE_SECS", if full { 60 } else { 2 });
    let rig = Rig::start(
        |link| SimConfig::fast(SimProfile::Sim7600, link),
        zero_delay_config,
        None,
    );
    // The directory first, so it is dropped last.
    let Rig {
        dir: _dir,
        rt,
        sim,
        child,
        config,
        state,
        http,
        agent,
    } = rig;
    if std::env::var("PAGERBOX_BENCH_ONLY").as_deref() == Ok("mixed") {
        drop(child);
        rt.block_on(sim.shutdown());
        mixed_phase(pages, full);
        return;
    }
    let rounds: usize = env_or("PAGERBOX_BENCH_RECOVERY", if full { 5 } else { 2 });
    if std::env::var("PAGERBOX_BENCH_ONLY").as_deref() == Ok("recovery") {
        recovery(&rt, &sim, child, &config, &state, rounds);
        rt.block_on(sim.shutdown());
        return;
    }
    let probe = |n: usize| probe_page(&rt, &sim, &agent, &http, n);
    probe(0);
    let report = |name: &str, lat: Vec<Duration>| {
        report_latency(name, lat);
    };
    let idle: Vec<Duration> = (1..=pages)
        .map(|n| {
            let d = probe(n);
            std::thread::sleep(Duration::from_millis(20));
            d
        })
        .collect();
    report("idle: 202 -> SMS at network", idle);

    // The storm: `storm_rate` alerts/s over 100 keys from 4 client threads, while probing.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let storm: Vec<_> = (0..4)
        .map(|c| {
            let (stop, sent, url) = (stop.clone(), sent.clone(), format!("{http}/v1/alerts"));
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let per = Duration::from_secs_f64(4.0 / storm_rate as f64);
                let start = Instant::now();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(
                        r#"{{"summary":"storm {i}","severity":"warning","dedup_key":"storm-{}"}}"#,
                        (i * 4 + c) % 100
                    );
                    let _ = agent
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(&body);
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    let next = start + per * i as u32;
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let during: Vec<Duration> = (1..=pages)
        .map(|n| {
            let d = probe(pages + n);
            std::thread::sleep(Duration::from_millis(20));
            d
        })
        .collect();
    let rate = sent.load(Ordering::Relaxed) as f64 / (t0.elapsed().as_secs_f64() + 0.5);
    stop.store(true, Ordering::Relaxed);
    for h in storm {
        h.join().unwrap();
    }
    report(&format!("storm ({rate:.0} alerts/s):"), during);

    // Idle with a modem attached: once the storm's pages are out, only health polls and timers.
    wait_outbox_empty(&agent, &http);
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.0.id();
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let (c0, t) = (ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(idle_secs));
    let cpu = (ticks(pid) - c0) as f64 / 100.0 / t.elapsed().as_secs_f64() * 100.0;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        .unwrap();
    println!("idle {idle_secs}s with modem: cpu {cpu:.3}%, rss {rss}");

    // The control for the next phase: the same database after the storm, no outbound yet.
    let control_base = 4 * pages + 10;
    let control: Vec<Duration> = (1..=pages)
        .map(|n| {
            let d = probe(control_base + n);
            std::thread::sleep(Duration::from_millis(20));
            d
        })
        .collect();
    report("after storm, no outbound:", control);

    // Page latency while an outbound webhook receiver hangs: it accepts every connection and
    // never answers. The destination is added by a config reload (SIGHUP) so the figures above
    // are unchanged; it announces the probe route, so every probe also queues a notification
    // behind the hanging one.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_addr = hang.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in hang.incoming().flatten() {
                accepted.fetch_add(1, Ordering::Relaxed);
                held.push(c);
            }
        });
    }
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[[outbound]]\nid = \"hang\"\nkind = \"webhook\"\nurl = \"http://{hang_addr}/hook\"\n\
         secret = \"k\"\nroutes = [\"probe\"]\ntimeout = \"60s\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let base = 2 * pages + 1;
    probe(base);
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the outbound receiver was never called"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let hanging: Vec<Duration> = (1..=pages)
        .map(|n| {
            let d = probe(base + n);
            std::thread::sleep(Duration::from_millis(20));
            d
        })
        .collect();
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one request hangs; the rest wait behind it"
    );
    report("outbound receiver hanging:", hanging);
    recovery(&rt, &sim, child, &config, &state, rounds);
    rt.block_on(sim.shutdown());

    status_page_phase(status_pages, full);
    mixed_phase(pages, full);
}

/// Clients loading the status page at once in the status-page phase.
const PAGE_CLIENTS: usize = 16;
/// The status-page phase gives up on a page after this long (recorded as this long).
const SLOW_PAGE: Duration = Duration::from_secs(120);
/// Upper bound on the whole loaded part of the status-page phase.
const STATUS_PHASE_LIMIT: Duration = Duration::from_secs(900);

/// Page latency idle and while 16 clients hammer `GET /`, with the example config's modem
/// timings (every AT command costs 200 ms, a submit 1 s), on its own daemon and simulator.
/// The smoke run (`!full`) uses a tenth of those timings to keep the test suite quick.
fn status_page_phase(pages: usize, full: bool) {
    let scale = if full { 1 } else { 10 };
    let rig = Rig::start(
        |link| SimConfig {
            command_delay: Duration::from_millis(200) / scale,
            sms_delay: Duration::from_secs(1) / scale,
            ..SimConfig::fast(SimProfile::Sim7600, link)
        },
        |state, link| {
            box_config(
                state,
                link,
                &format!("{PROBE}[[routes]]\nid = \"probe\"\npolicy = \"probe\"\n"),
            )
        },
        Some(Duration::from_secs(60)),
    );
    let Rig {
        rt,
        sim,
        http,
        agent,
        ..
    } = &rig;
    // Pages slower than SLOW_PAGE are recorded as that long rather than stopping the phase.
    let probe = |n: usize| -> Duration {
        wait_for_page(rt, sim, agent, http, n, SLOW_PAGE, Duration::from_millis(2))
            .unwrap_or(SLOW_PAGE)
    };
    let report = |name: &str, lat: Vec<Duration>| {
        report_latency(name, lat);
    };
    probe(0);
    let idle: Vec<Duration> = (1..=pages)
        .map(|n| {
            let d = probe(n);
            std::thread::sleep(Duration::from_millis(100));
            d
        })
        .collect();
    report("modem timings, idle:", idle);

    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    // The anonymous reads a box gets: the status page, a year of stats, a Prometheus scrape.
    let reads = ["/", "/v1/stats?since=365d", "/metrics"];
    let clients: Vec<_> = (0..PAGE_CLIENTS)
        .map(|i| {
            let url = format!("{http}{}", reads[i % reads.len()]);
            let (stop, loads) = (stop.clone(), loads.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < STATUS_PHASE_LIMIT {
                    if agent.get(&url).call().is_ok() {
                        loads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    let mut loaded = Vec::new();
    for n in 1..=pages {
        if started.elapsed() >= STATUS_PHASE_LIMIT {
            break;
        }
        loaded.push(probe(pages + n));
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = loads.load(Ordering::Relaxed) as f64 / (t0.elapsed().as_secs_f64() + 1.0);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    report(
        &format!("{PAGE_CLIENTS} clients on /, stats, metrics ({rate:.0}/s):"),
        loaded,
    );
    rig.stop();
}

/// A box on the modem at `link` with its state in `state`, paging without grouping or a rate
/// limit that a bench could reach, and the `people` (users, policies, routes) of the phase.
fn box_config(state: &Path, link: &Path, people: &str) -> String {
    format!(
        r#"[daemon]
state_dir = "{}"
[http]
listen = "127.0.0.1:0"
[udp]
enabled = false
[modem]
device = "{}"
profile = "sim7600"
delivery_reports = false
[paging]
group_window = "0s"
rate_limit_count = 1000
{people}"#,
        state.display(),
        link.display()
    )
}

/// The person the probe alerts page, by SMS at once, and the policy that pages them.
const PROBE: &str = r#"[[users]]
id = "probe"
phone = "+15550000001"
[[users.rules]]
channel = "sms"
after = "0s"
[[policies]]
id = "probe"
[[policies.steps]]
users = ["probe"]
wait = "1h"
"#;

/// The config of the zero-delay phases: a `probe` route (service `probe`) paging one person and
/// a `storm` route for everything else paging another, both by SMS at once.
fn zero_delay_config(state: &Path, link: &Path) -> String {
    box_config(
        state,
        link,
        &format!(
            r#"{PROBE}[[users]]
id = "storm"
phone = "+15550000002"
[[users.rules]]
channel = "sms"
after = "0s"
[[policies]]
id = "storm"
[[policies.steps]]
users = ["storm"]
wait = "1h"
[[routes]]
id = "probe"
policy = "probe"
match = {{ service = "probe" }}
[[routes]]
id = "storm"
policy = "storm"
"#
        ),
    )
}

/// Clients sending alerts in the mixed phase; each one's share of the rate is paced.
const MIXED_SENDERS: usize = 16;

/// Page latency under mixed load (see the file's header), on its own daemon and simulator.
fn mixed_phase(pages: usize, full: bool) {
    let rig = Rig::start(
        |link| SimConfig::fast(SimProfile::Sim7600, link),
        zero_delay_config,
        Some(Duration::from_secs(30)),
    );
    let Rig {
        rt,
        sim,
        http,
        agent,
        ..
    } = &rig;
    let (rt, sim, http) = (rt, sim, http.as_str());
    probe_page(rt, sim, agent, http, 0);

    // The maximum now: unpaced senders over the 100 storm keys. Their first alerts open the
    // storm's 100 incidents (warnings: this config pages nobody for them), so what follows is
    // repeats, and the only pages are the probes'.
    let measure = Duration::from_secs(if full { 5 } else { 1 });
    let max = {
        let load = IntakeLoad::start(http, None);
        std::thread::sleep(measure);
        load.stop()
    };
    wait_outbox_empty(agent, http);
    // PAGERBOX_BENCH_MIXED_SHARE and PAGERBOX_BENCH_MIXED_READERS (0 or 1) take the load apart.
    let target = max * env_or("PAGERBOX_BENCH_MIXED_SHARE", 0.5);
    let with_readers = env_or("PAGERBOX_BENCH_MIXED_READERS", 1) != 0;

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let paths = [
        "/",
        "/v1/stats?since=365d",
        "/metrics",
        "/v1/incidents/1/report",
    ];
    let readers: Vec<_> = paths
        .iter()
        .filter(|_| with_readers)
        .map(|path| {
            let url = format!("{http}{path}");
            let (stop, reads) = (stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                while !stop.load(Ordering::Relaxed) {
                    let r = agent.get(&url).call();
                    assert!(r.is_ok(), "GET {url}: {r:?}");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let load = (target > 0.0).then(|| IntakeLoad::start(http, Some(target)));
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let lat: Vec<Duration> = (1..=pages)
        .map(|n| {
            let d = probe_page(rt, sim, agent, http, 10_000 + n);
            std::thread::sleep(Duration::from_millis(20));
            d
        })
        .collect();
    let read_rate = reads.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    let rate = load.map_or(0.0, IntakeLoad::stop);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let p99 = report_latency(
        &format!("mixed: intake {rate:.0}/s (max {max:.0}/s), {read_rate:.0} reads/s:"),
        lat,
    );
    println!(
        "mixed load: page p99 {:.2} ms, goal < 20 ms: {}",
        p99,
        if p99 < 20.0 { "met" } else { "NOT met" }
    );
    rig.stop();
}

/// Alert senders over the 100 storm keys, unpaced or sharing a total rate.
struct IntakeLoad {
    stop: Arc<AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicU64>,
    started: Instant,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl IntakeLoad {
    fn start(http: &str, rate: Option<f64>) -> IntakeLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads = (0..MIXED_SENDERS)
            .map(|c| {
                let (stop, accepted) = (stop.clone(), accepted.clone());
                let url = format!("{http}/v1/alerts");
                let per = rate.map(|r| Duration::from_secs_f64(MIXED_SENDERS as f64 / r));
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    let start = Instant::now();
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let body = format!(
                            r#"{{"summary":"mixed {i}","severity":"warning","dedup_key":"storm-{}"}}"#,
                            (i as usize * MIXED_SENDERS + c) % 100
                        );
                        let r = agent
                            .post(&url)
                            .set("Content-Type", "application/json")
                            .send_string(&body);
                        if r.is_ok_and(|r| r.status() == 202) {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                        if let Some(per) = per {
                            let next = start + per * i;
                            if let Some(d) = next.checked_duration_since(Instant::now()) {
                                std::thread::sleep(d);
                            }
                        }
                    }
                })
            })
            .collect();
        IntakeLoad {
            stop,
            accepted,
            started: Instant::now(),
            threads,
        }
    }

    /// Stops the senders; returns the alerts accepted per second while they ran.
    fn stop(self) -> f64 {
        let elapsed = self.started.elapsed().as_secs_f64();
        let n = self.accepted.load(Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        n as f64 / elapsed
    }
}

/// Prints p50, p99 and max of `lat` under `name`; returns p99 in ms.
fn report_latency(name: &str, mut lat: Vec<Duration>) -> f64 {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)]);
    println!(
        "{name:<28} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        lat.len(),
        p(0.5),
        p(0.99),
        ms(*lat.last().unwrap())
    );
    p(0.99)
}

/// Waits until the daemon's outbox has nothing pending.
fn wait_outbox_empty(agent: &ureq::Agent, http: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h: serde_json::Value = agent
            .get(&format!("{http}/healthz"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if h["outbox"]["pending"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "outbox did not drain: {h}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Posts probe alert `n` (a new incident on the probe route) and returns the time from its 202
/// to its SMS reaching the simulated network.
fn probe_page(
    rt: &tokio::runtime::Runtime,
    sim: &SimHandle,
    agent: &ureq::Agent,
    http: &str,
    n: usize,
) -> Duration {
    wait_for_page(
        rt,
        sim,
        agent,
        http,
        n,
        Duration::from_secs(30),
        Duration::from_micros(200),
    )
    .unwrap_or_else(|id| panic!("page #{id} did not arrive"))
}

/// [`probe_page`], polling the network log every `poll`; `Err(incident id)` when the SMS has
/// not arrived after `patience`.
fn wait_for_page(
    rt: &tokio::runtime::Runtime,
    sim: &SimHandle,
    agent: &ureq::Agent,
    http: &str,
    n: usize,
    patience: Duration,
    poll: Duration,
) -> Result<Duration, i64> {
    let (id, t202) = alert(agent, http, &format!("probe {n}"), &format!("probe-{n}"));
    let deadline = Instant::now() + patience;
    loop {
        if let Some(at) = sms_at(&rt.block_on(sim.network_log()).unwrap(), id) {
            return Ok((at - t202).to_std().unwrap_or(Duration::ZERO));
        }
        if Instant::now() >= deadline {
            return Err(id);
        }
        std::thread::sleep(poll);
    }
}

/// When the (first part of the) SMS of incident `id` reached the network, if it has.
fn sms_at(log: &[NetworkEntry], id: i64) -> Option<chrono::DateTime<Utc>> {
    let prefix = format!("#{id} ");
    log.iter().find_map(|e| match e {
        NetworkEntry::SmsPart { at, text, .. } | NetworkEntry::Sms { at, text, .. }
            if text.starts_with(&prefix) =>
        {
            Some(*at)
        }
        _ => None,
    })
}

/// One phase's modem simulator and daemon, each of its own, started with the modem up. Fields
/// drop in order: the daemon is killed before its directory goes.
struct Rig {
    rt: tokio::runtime::Runtime,
    sim: SimHandle,
    child: Reap,
    config: PathBuf,
    state: PathBuf,
    http: String,
    agent: ureq::Agent,
    dir: tempfile::TempDir,
}

impl Rig {
    /// Starts a simulator on `sim(link)` and a daemon on the config `config(state, link)`, and
    /// waits until the daemon sees the modem up. `timeout`: the agent's, per request.
    fn start(
        sim: impl FnOnce(PathBuf) -> SimConfig,
        config: impl FnOnce(&Path, &Path) -> String,
        timeout: Option<Duration>,
    ) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem");
        let sim = rt.block_on(Simulator::start(sim(link.clone()))).unwrap();
        let state = dir.path().join("state");
        let config_path = dir.path().join("c.toml");
        std::fs::write(&config_path, config(&state, &link)).unwrap();
        let child = spawn_daemon(&config_path);
        let http = http_of(&state);
        let mut agent = ureq::AgentBuilder::new();
        if let Some(t) = timeout {
            agent = agent.timeout(t);
        }
        let agent = agent.build();
        wait_modem(&agent, &http, true);
        Rig {
            rt,
            sim,
            child,
            config: config_path,
            state,
            http,
            agent,
            dir,
        }
    }

    /// Kills the daemon, then stops the simulator.
    fn stop(self) {
        drop(self.child);
        self.rt.block_on(self.sim.shutdown());
    }
}

/// Kills the daemon however this ends, a panic included.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon(config: &Path) -> Reap {
    let bin = std::env::var("PAGERBOX_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pagerbox").to_string());
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Reap(child)
}

/// The daemon's HTTP base URL, once it has written `run.json`.
fn http_of(state: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(state.join("run.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                break format!("http://{}", v["http"].as_str().unwrap());
            }
        }
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `/healthz` until the modem's state is `up`; returns when that was first seen.
fn wait_modem(agent: &ureq::Agent, http: &str, up: bool) -> chrono::DateTime<Utc> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // /healthz answers 503 while paging is impaired; its body is wanted either way.
        let h: serde_json::Value = match agent.get(&format!("{http}/healthz")).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r.into_json().unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if (h["modem"]["state"] == "up") == up && h["modem"].is_object() {
            return Utc::now();
        }
        assert!(Instant::now() < deadline, "modem never became up={up}: {h}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// When the SMS of incident `id` reached the network.
fn cmgs_at(rt: &tokio::runtime::Runtime, sim: &SimHandle, id: i64) -> chrono::DateTime<Utc> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(at) = sms_at(&rt.block_on(sim.network_log()).unwrap(), id) {
            return at;
        }
        assert!(Instant::now() < deadline, "page #{id} did not arrive");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Posts a critical alert on the probe route; returns its incident id and when the 202 came.
fn alert(
    agent: &ureq::Agent,
    http: &str,
    summary: &str,
    key: &str,
) -> (i64, chrono::DateTime<Utc>) {
    let body = format!(
        r#"{{"summary":"{summary}","severity":"critical","service":"probe","dedup_key":"{key}"}}"#
    );
    let r = agent
        .post(&format!("{http}/v1/alerts"))
        .set("Content-Type", "application/json")
        .send_string(&body)
        .unwrap();
    let at = Utc::now();
    let id = r.into_json::<serde_json::Value>().unwrap()["incident_id"]
        .as_i64()
        .unwrap();
    (id, at)
}

/// Boot and outage: `rounds` of each; prints "modem up -> AT+CMGS" (the figure that must stay
/// under a second) and, for context, "202 -> AT+CMGS" and "network back -> AT+CMGS".
fn recovery(
    rt: &tokio::runtime::Runtime,
    sim: &SimHandle,
    child: Reap,
    config: &Path,
    state: &Path,
    rounds: usize,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let ms = |d: chrono::Duration| d.num_microseconds().unwrap_or(0) as f64 / 1000.0;
    let mut child = Some(child);
    let mut http = String::new();
    let mut boot = Vec::new();
    for round in 0..rounds {
        // A restart: the alert is accepted while the modem is still starting.
        drop(child.take());
        let _ = std::fs::remove_file(state.join("run.json"));
        child = Some(spawn_daemon(config));
        http = http_of(state);
        let key = format!("boot-{round}-{}", Utc::now().timestamp_millis());
        let (id, t202) = alert(&agent, &http, &key, &key);
        let up = wait_modem(&agent, &http, true);
        let at = cmgs_at(rt, sim, id);
        println!(
            "boot round {round}: 202 -> modem up {:>8.1} ms, modem up -> AT+CMGS {:>8.1} ms, 202 -> AT+CMGS {:>8.1} ms",
            ms(up - t202),
            ms(at - up),
            ms(at - t202)
        );
        boot.push(at - up.min(at));
    }
    let mut outage = Vec::new();
    for round in 0..rounds {
        rt.block_on(sim.fault(Fault::LoseRegistration { searching: true }))
            .unwrap();
        wait_modem(&agent, &http, false);
        let key = format!("outage-{round}-{}", Utc::now().timestamp_millis());
        let (id, _) = alert(&agent, &http, &key, &key);
        // Long enough for the page to go round SMS -> voice and back off.
        std::thread::sleep(Duration::from_secs(3));
        let healed = Utc::now();
        rt.block_on(sim.heal()).unwrap();
        let up = wait_modem(&agent, &http, true);
        let at = cmgs_at(rt, sim, id);
        println!(
            "outage round {round}: network back -> modem up {:>8.1} ms, modem up -> AT+CMGS {:>8.1} ms, network back -> AT+CMGS {:>8.1} ms",
            ms(up - healed),
            ms(at - up),
            ms(at - healed)
        );
        outage.push(at - up.min(at));
    }
    let worst = |v: &[chrono::Duration]| v.iter().map(|d| ms(*d)).fold(0.0, f64::max);
    println!(
        "recovery: modem up -> AT+CMGS worst {:.1} ms after boot, {:.1} ms after an outage",
        worst(&boot),
        worst(&outage)
    );
    drop(child);
}
