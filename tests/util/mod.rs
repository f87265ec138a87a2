//! Shared end-to-end test setup: each test runs the real `pagerbox` binary with its own temp
//! state dir and ephemeral ports, and talks to it over real HTTP and UDP on 127.0.0.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_pagerbox");

/// The daemon's test clock (`fault-injection` builds): how far ahead of the system clock it
/// starts; `POST /v1/clock` moves it on.
const TEST_CLOCK: &str = "PAGERBOX_TEST_CLOCK";

/// Path of a fixture under tests/fixtures.
pub fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A running daemon.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub http: SocketAddr,
    pub udp: Option<SocketAddr>,
    pub token: Option<String>,
    /// Extra environment for the daemon process.
    pub env: Vec<(String, String)>,
}

/// The config every test starts from; `extra` is appended.
pub fn base_config(state_dir: &Path, extra: &str) -> String {
    // Tests that are not about paging run without a modem (none is simulated for them).
    let modem = if extra.contains("[modem]") {
        ""
    } else {
        "[modem]\nenabled = false\n"
    };
    format!(
        r#"
[daemon]
state_dir = "{}"
time_zone = "Europe/Berlin"
country_code = "49"

[http]
listen = "127.0.0.1:0"

[udp]
listen = "127.0.0.1:0"

{modem}
{extra}
"#,
        state_dir.display()
    )
}

impl Daemon {
    /// Starts a daemon with `extra` config appended to the base.
    pub fn start(extra: &str) -> Daemon {
        Self::start_with(extra, None)
    }

    /// Starts a daemon with extra environment variables.
    pub fn start_env(extra: &str, env: &[(&str, &str)]) -> Daemon {
        let mut d = Self::start_with_no_spawn(extra);
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.spawn();
        d
    }

    fn start_with_no_spawn(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = dir.path().join("pagerbox.toml");
        std::fs::write(&config, base_config(&state, extra)).unwrap();
        Daemon {
            dir,
            config,
            child: None,
            http: "127.0.0.1:0".parse().unwrap(),
            udp: None,
            token: None,
            env: Vec::new(),
        }
    }

    /// Starts a daemon with `http` lines added to its `[http]` table and `extra` appended.
    pub fn start_http(http: &str, extra: &str) -> Daemon {
        Self::start_tables(&[("http", http)], extra)
    }

    /// Starts a daemon with lines added to the base config's tables (`http`, `udp`) and `extra`
    /// appended.
    pub fn start_tables(tables: &[(&str, &str)], extra: &str) -> Daemon {
        let mut d = Self::start_with_no_spawn(extra);
        let mut text = std::fs::read_to_string(&d.config).unwrap();
        for (table, lines) in tables {
            text = text.replacen(&format!("[{table}]\n"), &format!("[{table}]\n{lines}\n"), 1);
        }
        std::fs::write(&d.config, text).unwrap();
        d.spawn();
        d
    }

    /// Starts a daemon whose writes need `token`.
    pub fn start_with(extra: &str, token: Option<&str>) -> Daemon {
        let mut d = Self::build_with(extra, token);
        d.spawn();
        d
    }

    /// Starts a daemon on the test clock (the system clock plus what [`Daemon::advance`] adds),
    /// for tests about deadlines: they move the clock past one instead of waiting for it.
    pub fn start_clocked(extra: &str) -> Daemon {
        Self::start_clocked_with(extra, None)
    }

    /// [`Daemon::start_clocked`] with a token.
    ///
    /// Only a `fault-injection` build has the test clock. Each clocked test carries
    /// `#[cfg_attr(not(feature = "fault-injection"), ignore = ...)]`, so a bare `cargo test`
    /// lists it as ignored with the reason; one that lacks the attribute fails here, saying why,
    /// instead of on a 404 halfway through.
    pub fn start_clocked_with(extra: &str, token: Option<&str>) -> Daemon {
        if !cfg!(feature = "fault-injection") {
            panic!(
                "this test needs the daemon's test clock: run it with `--features fault-injection` \
                 (scripts/test.sh does), and mark it ignored without the feature like the others"
            );
        }
        let mut d = Self::build_with(extra, token);
        d.env.push((TEST_CLOCK.into(), "0ms".into()));
        d.spawn();
        d
    }

    /// How far the test clock has been moved ahead of the system clock.
    fn clock_ahead(&self) -> Duration {
        let (_, v) = self
            .env
            .iter()
            .find(|(k, _)| k == TEST_CLOCK)
            .expect("the daemon is not on the test clock: start it with start_clocked");
        Duration::from_millis(v.trim_end_matches("ms").parse().unwrap())
    }

    /// Moves the daemon's clock forward by `by`: the running daemon's at once (its tasks wake
    /// and look at their deadlines), and the one a restart starts with, so the time a stopped
    /// daemon was down can be moved too.
    pub fn advance(&mut self, by: Duration) {
        let ahead = self.clock_ahead() + by;
        for (k, v) in &mut self.env {
            if k == TEST_CLOCK {
                *v = format!("{}ms", ahead.as_millis());
            }
        }
        if self.child.is_some() {
            let (code, v) = self.post_json(
                "/v1/clock",
                serde_json::json!({ "advance": format!("{}ms", by.as_millis()) }),
            );
            assert_ne!(
                code, 404,
                "the daemon has no test clock: build with `--features fault-injection`"
            );
            assert_eq!(code, 200, "stepping the test clock: {v}");
        }
    }

    /// Steps the daemon's clock back by `by`, as NTP steps a clock that ran ahead: the running
    /// daemon's at once, and the one a restart starts with. The clock must have been moved
    /// ahead by at least `by` first (the restart's offset cannot be negative).
    pub fn step_back(&mut self, by: Duration) {
        let ahead = self
            .clock_ahead()
            .checked_sub(by)
            .expect("advance the clock by at least as much before stepping it back");
        for (k, v) in &mut self.env {
            if k == TEST_CLOCK {
                *v = format!("{}ms", ahead.as_millis());
            }
        }
        let (code, v) = self.post_json(
            "/v1/clock",
            serde_json::json!({ "back": format!("{}ms", by.as_millis()) }),
        );
        assert_eq!(code, 200, "stepping the test clock back: {v}");
    }

    /// Asserts that `ok` holds, polling, for all of `span`: that something does not happen
    /// before its deadline, after the clock was moved to just short of it.
    pub fn hold(&self, span: Duration, what: &str, mut ok: impl FnMut() -> bool) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            assert!(ok(), "{what}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(ok(), "{what}\n{}", self.log());
    }

    fn build_with(extra: &str, token: Option<&str>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut text = base_config(&state, extra);
        if let Some(t) = token {
            let tf = dir.path().join("token");
            std::fs::write(&tf, format!("{t}\n")).unwrap();
            text = text.replacen(
                "[http]\n",
                &format!("[http]\ntoken_file = \"{}\"\n", tf.display()),
                1,
            );
        }
        let config = dir.path().join("pagerbox.toml");
        std::fs::write(&config, text).unwrap();
        Daemon {
            dir,
            config,
            child: None,
            http: "127.0.0.1:0".parse().unwrap(),
            udp: None,
            token: token.map(str::to_string),
            env: Vec::new(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts (or restarts) the process and waits until it listens.
    pub fn spawn(&mut self) {
        let run_file = self.state_dir().join("run.json");
        let _ = std::fs::remove_file(&run_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(BIN);
        // A test clock in the environment that ran the tests must not reach a daemon that was
        // not asked to run on one.
        cmd.env_remove(TEST_CLOCK);
        let child = cmd
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "pagerbox=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(&run_file) {
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    if v["pid"].as_u64() == Some(pid as u64) {
                        self.http = v["http"].as_str().unwrap().parse().unwrap();
                        self.udp = v["udp"].as_str().map(|s| s.parse().unwrap());
                        return;
                    }
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "daemon exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            let status = c.wait().unwrap();
            assert!(
                status.success(),
                "daemon exited with {status}:\n{}",
                self.log()
            );
        }
    }

    /// SIGKILL: a crash or power cut, as far as the process can tell.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sends a signal to the running daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// POSTs raw bytes; returns status and JSON body.
    pub fn post_raw(&self, path: &str, body: &[u8], auth: Option<&str>) -> (u16, Value) {
        let mut req = ureq::post(&self.url(path)).set("Content-Type", "application/json");
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        into(req.send_bytes(body))
    }

    /// POSTs `body` over a raw connection and returns the status code, even when the daemon
    /// answers early (413 for an oversized body) and closes before the whole body is written.
    /// HTTP/1.1 lets a server refuse a body before reading it; ureq stops at the broken pipe and
    /// never reads the answer, which made the 413 check race with the write.
    pub fn post_status_early(&self, path: &str, body: &[u8]) -> u16 {
        use std::io::{BufRead, BufReader, Write};
        let conn = std::net::TcpStream::connect(self.http).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.http,
            body.len()
        );
        let mut writer = conn.try_clone().unwrap();
        let body = body.to_vec();
        // The write may fail with a broken pipe once the daemon has answered; that is the point.
        let w = std::thread::spawn(move || {
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(&body);
        });
        let mut status = String::new();
        BufReader::new(conn).read_line(&mut status).unwrap();
        let _ = w.join();
        status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status line: {status:?}"))
    }

    /// POSTs bytes with the daemon's token, if it has one.
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        self.post_raw(path, body, auth.as_deref())
    }

    pub fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        self.post(path, body.to_string().as_bytes())
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        into(ureq::get(&self.url(path)).call())
    }

    /// Sends a UDP datagram to the daemon.
    pub fn udp_send(&self, data: &[u8]) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(data, self.udp.unwrap()).unwrap();
    }

    /// The `/metrics` exposition as text.
    pub fn metrics_text(&self) -> String {
        ureq::get(&self.url("/metrics"))
            .call()
            .expect("GET /metrics")
            .into_string()
            .unwrap()
    }

    /// Polls `f` until it returns Some, or panics after `secs`.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("PAGERBOX_URL")
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn into(r: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match r {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.into_string().unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(ureq::Error::Status(code, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            (
                code,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

/// A modem simulator running as its own process (so the "phone" outlives a killed daemon),
/// driven through its control socket.
pub struct ExternalSim {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub link: PathBuf,
    pub control: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl ExternalSim {
    /// Starts `pagerbox simulator` imitating a SIM7600 with fast timings.
    pub fn start() -> ExternalSim {
        Self::start_with(&[])
    }

    /// [`ExternalSim::start`] with more simulator arguments (`--pin 1234`).
    pub fn start_with(extra: &[&str]) -> ExternalSim {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem");
        let control = dir.path().join("sim.sock");
        let log = std::fs::File::create(dir.path().join("sim.log")).unwrap();
        let child = Command::new(BIN)
            .args([
                "simulator",
                "--profile",
                "sim7600",
                "--command-delay",
                "0",
                "--sms-delay",
                "50ms",
                "--sms-delay-jitter",
                "0",
                "--delivery-report-delay",
                "200ms",
                "--pty-link",
            ])
            .arg(&link)
            .arg("--control")
            .arg(&control)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sim = ExternalSim {
            dir,
            child: Some(child),
            link,
            control,
            rt,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while sim
            .try_request(&pagerbox::modem::sim::control::ControlRequest::Log)
            .is_err()
        {
            assert!(Instant::now() < deadline, "simulator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sim
    }

    pub fn try_request(
        &self,
        req: &pagerbox::modem::sim::control::ControlRequest,
    ) -> Result<pagerbox::modem::sim::control::ControlResponse, pagerbox::modem::sim::types::SimError>
    {
        self.rt
            .block_on(pagerbox::modem::sim::control::request(&self.control, req))
    }

    /// Sends a control request; panics if it fails.
    pub fn request(&self, req: pagerbox::modem::sim::control::ControlRequest) {
        let r = self.try_request(&req).unwrap();
        assert!(r.ok, "{req:?}: {:?}", r.error);
    }

    /// The network log.
    pub fn log(&self) -> Vec<pagerbox::modem::sim::NetworkEntry> {
        self.try_request(&pagerbox::modem::sim::control::ControlRequest::Log)
            .unwrap()
            .log
            .unwrap_or_default()
    }

    /// Texts of the whole SMS that reached `to`, in order.
    pub fn sms_to(&self, to: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter_map(|e| match e {
                pagerbox::modem::sim::NetworkEntry::Sms { to: t, text, .. } if t == to => {
                    Some(text)
                }
                _ => None,
            })
            .collect()
    }

    /// Calls placed to `to`.
    pub fn calls_to(&self, to: &str) -> usize {
        self.log()
            .into_iter()
            .filter(|e| matches!(e, pagerbox::modem::sim::NetworkEntry::Call { number, .. } if number == to))
            .count()
    }
}

impl Drop for ExternalSim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    /// POSTs raw bytes with exactly these headers (no token added); returns status and JSON.
    pub fn post_with_headers(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = ureq::post(&self.url(path)).set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        into(req.send_bytes(body))
    }

    /// GETs with exactly these headers; returns status and JSON.
    pub fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = ureq::get(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        into(req.call())
    }
}

/// The request path (with query) recorded on the first line of a captured `.headers` fixture,
/// e.g. `POST /v2/alerts/<alias>/close?identifierType=alias`.
pub fn fixture_request_path(rel: &str) -> String {
    let text = String::from_utf8(fixture(rel)).unwrap();
    let first = text.lines().next().unwrap();
    first.split_whitespace().nth(1).unwrap().to_string()
}

/// Writes `secret` to a file `name` in `dir` and returns the path, for configs' `*_file` keys.
pub fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    p
}

impl Daemon {
    /// Waits for the process to exit by itself (a supervised task died) and returns its status.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {secs} s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Arms a fault point at run time (builds with the `fault-injection` feature).
    pub fn arm_fault(&self, name: &str, arming: Value) {
        let mut body = arming;
        body["name"] = Value::String(name.to_string());
        let (code, v) = self.post("/v1/faults", body.to_string().as_bytes());
        assert_eq!(code, 200, "arming {name}: {v}");
    }
}

/// The on-call phone of [`one_pager_config`].
pub const PAGER_PHONE: &str = "+4915100000011";

/// The paging rule most tests give their one person: an SMS at once.
pub const SMS_AT_ONCE: &str = "[[users.rules]]\nchannel = \"sms\"\nafter = \"0s\"\n";

/// One person on call: user `alice` at `phone` with the paging `rules` given (TOML
/// `[[users.rules]]` tables), alone on the weekly schedule `primary`, which the one step of the
/// policy `default` pages, waiting `wait` before it would repeat; and the route `default`, which
/// sends every alert there. It ends inside the route's table, so lines that follow without a
/// table header of their own (`missed_call_ack = true`) belong to that route.
pub fn on_call(phone: &str, rules: &str, wait: &str) -> String {
    format!(
        r#"
[[users]]
id = "alice"
phone = "{phone}"
{rules}

{schedule}
[[policies]]
id = "default"
[[policies.steps]]
schedules = ["primary"]
wait = "{wait}"

[[routes]]
id = "default"
policy = "default"
"#,
        schedule = weekly_schedule("primary", &["alice"]),
    )
}

/// A schedule `id` in Europe/Berlin whose one layer hands over weekly between `users`.
pub fn weekly_schedule(id: &str, users: &[&str]) -> String {
    let users = users
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[schedules]]
id = "{id}"
time_zone = "Europe/Berlin"
[[schedules.layers]]
users = [{users}]
shift = "1w"
start = "2026-01-05T09:00"
"#
    )
}

/// `alice`, paged by the one step of policy `p`, behind routes chosen by routing key: `database`
/// for the key "database", then the `[[routes]]` in `routes`, and `default` for everything else.
/// It ends inside the `default` route's table, like [`on_call`].
pub fn routed_by_key(routes: &str) -> String {
    format!(
        r#"
[[users]]
id = "alice"
phone = "+4915112345678"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]

[[routes]]
id = "database"
policy = "p"
match = {{ routing_key = "database" }}
{routes}
[[routes]]
id = "default"
policy = "p"
"#
    )
}

/// A box paging one person ([`PAGER_PHONE`], by SMS at once) through the external simulator,
/// with fast modem timings; `wait` is the escalation step's wait, `extra` is appended (its first
/// lines still belong to the route `default`, see [`on_call`]).
pub fn one_pager_config(sim: &ExternalSim, wait: &str, extra: &str) -> String {
    format!(
        r#"
{modem}ring_for = "3s"
{people}{extra}
"#,
        modem = fast_modem(sim),
        people = on_call(PAGER_PHONE, SMS_AT_ONCE, wait),
    )
}

/// `[modem]` on `sim` with fast timings: an AT command may take 2 s, a submit 5 s, and health is
/// polled every second, so a test sees the modem up or down at once. Lines that follow without
/// a table header of their own still belong to `[modem]`.
pub fn fast_modem(sim: &ExternalSim) -> String {
    format!(
        "[modem]\ndevice = \"{}\"\nprofile = \"sim7600\"\ncommand_timeout = \"2s\"\n\
         sms_timeout = \"5s\"\nhealth_interval = \"1s\"\n",
        sim.link.display()
    )
}

/// User `alice` at `phone`, paged by SMS at once by the one step of policy `policy`, which names
/// her and waits `wait` before it would repeat. The routes are the caller's.
pub fn alice_paged_by(policy: &str, phone: &str, wait: &str) -> String {
    format!(
        r#"
[[users]]
id = "alice"
phone = "{phone}"
{SMS_AT_ONCE}
[[policies]]
id = "{policy}"
[[policies.steps]]
users = ["alice"]
wait = "{wait}"
"#
    )
}

/// `[email]` settings for a plain-text SMTP server on 127.0.0.1 at `port`.
pub fn email_table(port: u16) -> String {
    format!(
        "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"pagerbox <pagerbox@localhost>\"\ntimeout = \"3s\"\n"
    )
}

/// A test SMTP server with its own runtime, which lives as long as it does.
pub struct Smtp {
    /// Runs the server; tests use it to stop and resume listening.
    pub rt: tokio::runtime::Runtime,
    pub server: pagerbox_testkit::smtp::SmtpTestServer,
}

impl Smtp {
    /// Starts a server that accepts every message, without TLS or authentication.
    pub fn start() -> Smtp {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(pagerbox_testkit::smtp::SmtpTestServer::start(
                Default::default(),
            ))
            .unwrap();
        Smtp { rt, server }
    }

    /// The `[email]` table that sends to this server.
    pub fn email_table(&self) -> String {
        email_table(self.server.addr().port())
    }

    /// The texts of the messages received for a recipient containing `rcpt`.
    pub fn messages_to(&self, rcpt: &str) -> Vec<String> {
        self.server
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r.contains(rcpt)))
            .map(|m| m.data_text())
            .collect()
    }
}

impl Daemon {
    /// Posts `alert` (the daemon's own JSON form; severity `critical` unless it names one) to
    /// `/v1/alerts`, checks it is accepted and returns its incident's id.
    pub fn trigger(&self, mut alert: Value) -> i64 {
        if alert.get("severity").is_none() {
            alert["severity"] = Value::String("critical".into());
        }
        let (code, v) = self.post_json("/v1/alerts", alert);
        assert_eq!(code, 202, "{v}");
        v["incident_id"].as_i64().unwrap()
    }

    /// The incident `id` as `/v1/incidents/{id}` shows it (without its timeline).
    pub fn incident(&self, id: i64) -> Value {
        self.get(&format!("/v1/incidents/{id}")).1["incident"].clone()
    }

    /// The incident with `dedup_key`, open or not.
    pub fn incident_by_key(&self, dedup_key: &str) -> Option<Value> {
        let (_, v) = self.get("/v1/incidents?status=all");
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["dedup_key"] == dedup_key)
            .cloned()
    }

    /// The timeline of incident `id` as (kind, message) pairs, oldest first.
    pub fn timeline(&self, id: i64) -> Vec<(String, String)> {
        let (_, v) = self.get(&format!("/v1/incidents/{id}"));
        v["timeline"]
            .as_array()
            .unwrap_or_else(|| panic!("no timeline for incident {id}: {v}"))
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The kinds on incident `id`'s timeline, oldest first.
    pub fn timeline_kinds(&self, id: i64) -> Vec<String> {
        self.timeline(id).into_iter().map(|(k, _)| k).collect()
    }

    /// Whether incident `id`'s timeline has an event of `kind`.
    pub fn has_event(&self, id: i64, kind: &str) -> bool {
        self.timeline(id).iter().any(|(k, _)| k == kind)
    }

    /// Whether `/healthz` reports the modem up.
    pub fn modem_up(&self) -> bool {
        self.get("/healthz").1["modem"]["state"] == "up"
    }

    /// Waits (up to 20 s) until the modem is up.
    pub fn wait_modem_up(&self) {
        self.wait_for(20, "modem up", || self.modem_up().then_some(()));
    }

    /// Runs the CLI against this daemon, checks it succeeded and returns its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl ExternalSim {
    /// Delivers an SMS from `from` to the box, as the network would.
    pub fn sms_in(&self, from: &str, text: &str) {
        self.request(pagerbox::modem::sim::control::ControlRequest::SmsIn {
            from: from.into(),
            text: text.into(),
            options: Default::default(),
        });
    }
}

/// A port with nothing listening on it (yet).
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One request as a [`serve_http`] stub received it.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    /// The path with its query.
    pub target: String,
    /// Header names in lower case.
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

/// A tiny HTTP/1.1 server standing in for a receiver or a cloud API: one thread per connection,
/// `Connection: close`. `answer` gets each request and returns the status and JSON body, or
/// `None` to close the connection without answering (after holding it as long as it likes).
/// Returns the address it listens on.
pub fn serve_http(
    listener: std::net::TcpListener,
    answer: impl Fn(HttpRequest) -> Option<(u16, String)> + Send + Sync + 'static,
) -> SocketAddr {
    serve_http_with_headers(listener, move |req| {
        answer(req).map(|(code, body)| (code, Vec::new(), body))
    })
}

/// [`serve_http`] whose answers also carry headers of the receiver's own (for tests that check
/// what the daemon keeps, and does not keep, of an answer).
pub fn serve_http_with_headers(
    listener: std::net::TcpListener,
    answer: impl Fn(HttpRequest) -> Option<(u16, Vec<(String, String)>, String)> + Send + Sync + 'static,
) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let Some(req) = read_http_request(&mut conn) else {
                    return;
                };
                if let Some((code, headers, body)) = answer(req) {
                    use std::io::Write;
                    let extra: String = headers
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}\r\n"))
                        .collect();
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n{extra}\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
    addr
}

/// Reads one request (head and `Content-Length` body); `None` if the peer goes away first.
fn read_http_request(s: &mut std::net::TcpStream) -> Option<HttpRequest> {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: std::collections::HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    Some(HttpRequest {
        method,
        target,
        headers,
        body,
    })
}

/// Sleeps until `t` (at once if it has passed): for a check that something did *not* happen by
/// a known instant, measured from when it was set going rather than from the check.
pub fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// Blocks while `still` holds, for at most `limit`: a stub's way of hanging on a request.
pub fn hold_while(limit: Duration, still: impl Fn() -> bool) {
    let until = Instant::now() + limit;
    while Instant::now() < until && still() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The most headless Chromium may take to start, and separately to run a test's steps.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

/// Headless Chromium driven over WebDriver by its own chromedriver on a free loopback port, with
/// a profile of its own; chromedriver (and so the browser) is stopped on drop.
///
/// Chromium and chromedriver come from Debian (`chromium`, `chromium-driver`);
/// `./scripts/test.sh` installs them. Without them the test fails and says so.
pub struct Browser {
    pub client: fantoccini::Client,
    _profile: tempfile::TempDir,
    _driver: ChromeDriver,
}

/// A chromedriver child process, killed on drop.
struct ChromeDriver(Child);

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session, within [`BROWSER_TIMEOUT`].
    pub async fn start() -> Browser {
        for binary in ["chromium", "chromedriver"] {
            let found = Command::new(binary)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "`{binary}` is not installed: this test drives headless Chromium. Run \
                 ./scripts/test.sh (it installs Debian's chromium and chromium-driver), or \
                 apt-get install chromium chromium-driver"
            );
        }
        let port = free_port().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = ChromeDriver(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("http://127.0.0.1:{port}/status"))
            .call()
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on 127.0.0.1:{port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let mut builder = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        );
        builder.capabilities(caps);
        let client = tokio::time::timeout(
            BROWSER_TIMEOUT,
            builder.connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("Chromium started within the time limit")
        .expect("a WebDriver session with headless Chromium");
        Browser {
            client,
            _profile: profile,
            _driver: driver,
        }
    }
}
