//! Shared end-to-end test setup: each test runs the real `pagerbox` binary with its own temp
//! state dir and ephemeral ports, and talks to it over real HTTP and UDP on 127.0.0.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_pagerbox");

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
        let mut d = Daemon {
            dir,
            config,
            child: None,
            http: "127.0.0.1:0".parse().unwrap(),
            udp: None,
            token: token.map(str::to_string),
            env: Vec::new(),
        };
        d.spawn();
        d
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
        let child = Command::new(BIN)
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
    ) -> Result<pagerbox::modem::sim::control::ControlResponse, String> {
        self.rt
            .block_on(pagerbox::modem::sim::control::request(&self.control, req))
            .map_err(|e| e.to_string())
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

/// A box paging one person ([`PAGER_PHONE`], by SMS at once) through the external simulator,
/// with fast modem timings; `wait` is the escalation step's wait, `extra` is appended.
pub fn one_pager_config(sim: &ExternalSim, wait: &str, extra: &str) -> String {
    format!(
        r#"
[modem]
device = "{link}"
profile = "sim7600"
command_timeout = "2s"
sms_timeout = "5s"
health_interval = "1s"
ring_for = "3s"

[[users]]
id = "alice"
phone = "{PAGER_PHONE}"
[[users.rules]]
channel = "sms"
after = "0s"

[[schedules]]
id = "primary"
time_zone = "Europe/Berlin"
[[schedules.layers]]
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
[[policies.steps]]
schedules = ["primary"]
wait = "{wait}"

[[routes]]
id = "default"
policy = "default"
{extra}
"#,
        link = sim.link.display()
    )
}
