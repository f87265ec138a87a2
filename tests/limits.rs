//! Socket time limits and the connection cap, through the real binary on 127.0.0.1: half-open
//! requests and idle keep-alive connections are closed after their timeouts, and a slowloris
//! flood of thousands of connections from another host (127.0.0.2) neither locks out a real
//! sender nor leaves memory behind.

mod util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use socket2::{Domain, Socket, Type};
use util::Daemon;

/// Short timeouts for the test; the connection cap is the default (1024).
const HTTP: &str = r#"header_timeout = "2s"
body_timeout = "2s""#;

/// Where the flood comes from: another loopback address than the sender's (127.0.0.1), as an
/// attacker on the LAN would be another host than Alertmanager.
const FLOOD_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The daemon's resident set size, in KiB.
fn rss_kib(d: &Daemon) -> u64 {
    let pid = d.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Lets this test process hold thousands of sockets.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
}

/// Opens a connection and sends `bytes`, then leaves it open.
fn half_open(d: &Daemon, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(d.http).unwrap();
    s.write_all(bytes).unwrap();
    s
}

/// How long until the daemon closes `s` (reads EOF or a reset), at most `limit`.
fn closed_within(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            // An answer (e.g. 408 or 400 for a late body) before the close is fine.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// One alert as a sender makes it: new connection, whole request; returns status and latency.
fn alert(d: &Daemon, n: usize) -> (u16, Duration) {
    let started = Instant::now();
    let body = json!({"summary": format!("real alert {n}"), "severity": "warning", "dedup_key": format!("real-{n}")}).to_string();
    let r = ureq::post(&d.url("/v1/alerts"))
        .set("Content-Type", "application/json")
        .send_string(&body);
    match r {
        Ok(resp) => (resp.status(), started.elapsed()),
        Err(ureq::Error::Status(code, _)) => (code, started.elapsed()),
        Err(e) => panic!("alert {n} failed: {e}"),
    }
}

/// A connection to `addr` from another loopback address, as an attacker on another host.
fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(1))?;
    Ok(socket.into())
}

#[test]
fn half_open_requests_and_idle_keep_alive_connections_are_closed() {
    let d = Daemon::start_http(HTTP, "");
    let cases: [(&str, &[u8]); 4] = [
        ("half a request line", b"POST /v1/al"),
        (
            "unfinished headers",
            b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: appl",
        ),
        (
            "an unsent body",
            b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"summary\":",
        ),
        // A whole request on a keep-alive connection, then silence.
        (
            "an idle keep-alive connection",
            b"GET /v1/incidents HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ];
    let conns: Vec<_> = cases
        .iter()
        .map(|(what, bytes)| (*what, half_open(&d, bytes)))
        .collect();
    for (what, s) in conns {
        let took = closed_within(s, Duration::from_secs(8));
        let took = took.unwrap_or_else(|| panic!("{what}: still open after 8 s"));
        // Both timeouts are 2 s; allow for a loaded machine.
        assert!(
            took < Duration::from_secs(6),
            "{what}: closed after {took:?}"
        );
    }
    // Nothing above stopped intake.
    assert_eq!(alert(&d, 0).0, 202);
}

/// A body that stops arriving is not the sender's alert being wrong: the answer must invite a
/// retry (503, or PagerDuty's 429, with Retry-After), since Alertmanager and most webhook
/// senders drop an alert answered 4xx. Only a body over the size limit is refused for good.
#[test]
fn a_body_that_does_not_arrive_in_time_is_answered_retry_later() {
    let d = Daemon::start_http(HTTP, "");
    let cases = [
        ("/v1/alerts", 503),
        ("/v1/integrations/alertmanager", 503),
        ("/v2/enqueue", 429),
        ("/v2/alerts", 503),
        ("/integrations/generic/20131114/alert/key/rk", 503),
    ];
    // All at once: each waits out the same 2 s body timeout.
    let conns: Vec<_> = cases
        .iter()
        .map(|(path, _)| {
            half_open(
                &d,
                format!(
                    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                     Content-Length: 100\r\n\r\n{{\"summary\":"
                )
                .as_bytes(),
            )
        })
        .collect();
    for ((path, status), mut s) in cases.into_iter().zip(conns) {
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let head = answer.lines().next().unwrap_or("");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: 5"),
            "{path}: {answer}"
        );
    }
    // Counted as unread, not as refused for good, and not warned about as such.
    let metrics = d.metrics_text();
    assert!(
        metrics.contains(r#"pagerbox_alerts_received_total{source="own",outcome="unread"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"outcome="rejected""#), "{metrics}");
    assert!(!d.log().contains("refused for good"));
}

#[test]
fn a_slowloris_flood_neither_locks_out_a_sender_nor_leaves_memory_behind() {
    raise_open_file_limit();
    let d = Daemon::start_http(HTTP, "");
    // Warm up (first-request allocations, the store's caches), then take the idle figure.
    for n in 0..20 {
        assert_eq!(alert(&d, n).0, 202);
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(&d);

    const ATTEMPTS: usize = 5000;
    let addr = d.http;
    let flood = std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut failed = 0;
        let started = Instant::now();
        for _ in 0..ATTEMPTS {
            match connect_from(FLOOD_FROM, addr) {
                Ok(mut s) => {
                    // Half a head, never finished.
                    let _ = s.write_all(b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nX-a: ");
                    held.push(s);
                }
                Err(_) => failed += 1,
            }
            // Bounded: the flood must not outlast the test's patience.
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        (held, failed, started.elapsed())
    });

    // While the flood runs, a real sender keeps alerting.
    let mut latencies = Vec::new();
    let mut n = 100;
    while !flood.is_finished() {
        let (code, took) = alert(&d, n);
        assert_eq!(code, 202, "alert {n} during the flood");
        if took > Duration::from_millis(100) {
            println!("alert {n} during the flood took {took:?}");
        }
        latencies.push(took);
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (held, failed, flood_took) = flood.join().unwrap();
    let peak = rss_kib(&d);
    // And right after it, with the flood's connections still held open.
    for _ in 0..10 {
        let (code, took) = alert(&d, n);
        assert_eq!(code, 202);
        latencies.push(took);
        n += 1;
    }
    drop(held);
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap();
    println!(
        "flood: {ATTEMPTS} attempts in {flood_took:?} ({failed} failed to connect); \
         {} alerts during/after it: p50 {p50:?}, max {max:?}; RSS idle {idle} KiB, peak {peak} KiB",
        latencies.len()
    );
    assert!(latencies.len() >= 10, "too few alerts measured");
    assert!(
        p50 < Duration::from_millis(100),
        "a normal alert took {p50:?} (median) during the flood"
    );
    // A debug build on a shared machine may stall once; a lock-out would take the header
    // timeout (2 s) or longer.
    assert!(max < Duration::from_secs(1), "an alert took {max:?}");

    // The cap was hit and said so.
    let metrics = ureq::get(&d.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let evicted: f64 = metrics
        .lines()
        .find(|l| l.starts_with("pagerbox_http_connections_evicted_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no eviction counter in:\n{metrics}"));
    assert!(evicted > 0.0, "{metrics}");
    assert!(
        d.log().contains("http.max_connections reached"),
        "{}",
        d.log()
    );

    // Memory comes back: within 20 % of idle once the flood's connections are gone.
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut after;
    loop {
        after = rss_kib(&d);
        if after * 100 <= idle * 120 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("RSS after the flood: {after} KiB (idle {idle} KiB, peak {peak} KiB)");
    assert!(
        after * 100 <= idle * 120,
        "RSS {after} KiB after the flood, idle was {idle} KiB"
    );
}
