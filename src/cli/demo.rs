//! `pagerbox demo`: the whole paging loop in one terminal, with no hardware and no network.
//!
//! It writes a small config into a fresh directory, runs the real daemon with the built-in
//! modem simulator, prints every SMS and call as it reaches the (simulated) phone, and turns each
//! line typed on stdin into an SMS from that phone, so `1a` acknowledges incident #1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::modem::sim::control::{request, ControlRequest};
use crate::modem::sim::NetworkEntry;

/// The simulated phone of the person on call.
pub const DEMO_PHONE: &str = "+15550100001";

/// `pagerbox demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Directory for the demo's config and database (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// HTTP port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// UDP port on 127.0.0.1.
    #[arg(long, default_value_t = 5140)]
    pub udp_port: u16,
}

/// The demo config: one person on call, a backup, SMS then a call, then the backup.
pub fn demo_config(dir: &Path, port: u16, udp_port: u16) -> String {
    format!(
        r#"# Written by `pagerbox demo`.
[daemon]
state_dir = "{state}"
time_zone = "UTC"
country_code = "1"

[http]
listen = "127.0.0.1:{port}"

[udp]
listen = "127.0.0.1:{udp_port}"

[modem]
device = "simulator"
[modem.simulator]
profile = "sim7600"
command_delay = "20ms"
sms_delay = "300ms"

[paging]
group_window = "30s"

[[users]]
id = "you"
name = "You (on call)"
phone = "{DEMO_PHONE}"
[[users.rules]]
channel = "sms"
after = "0s"
[[users.rules]]
channel = "voice"
after = "1m"
# Warnings and info are paged too (by SMS only, never a call): in a demo, every alert shows.
[[users.rules]]
urgency = "low"
channel = "sms"
after = "0s"

[[users]]
id = "backup"
name = "Backup"
phone = "+15550100002"
[[users.rules]]
channel = "sms"
after = "0s"
[[users.rules]]
urgency = "low"
channel = "sms"
after = "0s"

[[schedules]]
id = "primary"
time_zone = "UTC"
[[schedules.layers]]
users = ["you"]
shift = "1w"
start = "2026-01-05T09:00"

[[policies]]
id = "default"
[[policies.steps]]
schedules = ["primary"]
wait = "3m"
[[policies.steps]]
users = ["backup"]
wait = "10m"

[[routes]]
id = "default"
policy = "default"
"#,
        state = dir.join("state").display()
    )
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (dir, _keep) = demo_dir(&args)?;
    let path = dir.join("pagerbox.toml");
    std::fs::write(&path, demo_config(&dir, args.port, args.udp_port))?;
    let config = Config::load(&path)?.config;
    let control = config.daemon.state_dir.join("simulator.sock");
    let daemon = tokio::spawn(crate::daemon::run_with(config, Arc::new(SystemClock)));
    if !simulator_ready(&control, &daemon).await {
        return match daemon.await {
            Ok(Err(e)) => Err(e).context("the demo daemon did not start"),
            _ => anyhow::bail!("the demo daemon did not start"),
        };
    }
    println!("{}", banner(&args, &dir, &control));
    tokio::spawn(show_phone(control.clone()));
    tokio::spawn(forward_typed(control, stdin_lines()));
    match daemon.await {
        Ok(r) => r.map(|()| ExitCode::SUCCESS),
        Err(e) => Err(anyhow::anyhow!("demo daemon failed: {e}")),
    }
}

/// The demo's directory: `--dir`, or a new temporary one kept alive by the returned guard.
fn demo_dir(args: &DemoArgs) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    let (dir, keep) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("pagerbox-demo-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::create_dir_all(&dir)?;
    Ok((dir, keep))
}

/// Waits (up to ten seconds) for the simulator's control socket to answer; `false` when it
/// never does or the daemon ended first.
async fn simulator_ready(
    control: &Path,
    daemon: &tokio::task::JoinHandle<anyhow::Result<()>>,
) -> bool {
    for _ in 0..100 {
        if request(control, &ControlRequest::Log).await.is_ok() {
            return true;
        }
        if daemon.is_finished() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What the demo prints once the daemon is up: where it runs and what to type.
fn banner(args: &DemoArgs, dir: &Path, control: &Path) -> String {
    format!(
        "\npagerbox demo: daemon on http://127.0.0.1:{port}, modem simulator on a pseudo-terminal.
Config and database: {dir}
Simulator control socket: {control}

Point the CLI at it from another terminal:
  export PAGERBOX_URL=http://127.0.0.1:{port}
  {cli} send --severity critical --service db /var on db1 97% full
  {cli} incidents
  {cli} show 1
or raise an alert with curl or UDP:
  curl -s -X POST http://127.0.0.1:{port}/v1/alerts -H 'Content-Type: application/json' -d '{{\"summary\":\"/var on db1 97% full\",\"severity\":\"critical\",\"service\":\"db\"}}'
  echo 'critical disk-db1 /var on db1 is 97% full' | nc -u -w1 127.0.0.1 {udp}
  (without nc, in bash: echo '...' > /dev/udp/127.0.0.1/{udp})

Messages reaching your phone ({DEMO_PHONE}) appear below. Type a reply and press Enter to send it
from that phone: `1a` acknowledges #1, `1r` resolves it, `STATUS`, `HELP`. While a page call
rings (shown as `📞 ... ringing`): `answer` picks it up, `press 1` answers and presses 1
(acknowledge), `reject` declines it. Ctrl-C stops.\n",
        port = args.port,
        udp = args.udp_port,
        cli = cli_command(),
        dir = dir.display(),
        control = control.display(),
    )
}

/// Polls the simulator for ever: announces each ringing call once and prints every SMS and
/// ended call that reaches the phone, in order.
async fn show_phone(control: PathBuf) {
    let mut seen = 0usize;
    // The number a call is ringing at, once shown, so each call is announced once.
    let mut ringing: Option<String> = None;
    loop {
        if let Ok(resp) = request(&control, &ControlRequest::Ringing).await {
            if resp.ringing.is_some() && resp.ringing != ringing {
                println!(
                    "{}",
                    ringing_line(resp.ringing.as_deref().unwrap_or_default())
                );
            }
            ringing = resp.ringing;
        }
        if let Ok(resp) = request(&control, &ControlRequest::Log).await {
            let log = resp.log.unwrap_or_default();
            for line in log.iter().skip(seen).filter_map(phone_line) {
                println!("{line}");
            }
            seen = log.len();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// How a network log entry is shown: an SMS or an ended call; `None` for what the demo's
/// user typed (echoed when it is sent).
fn phone_line(entry: &NetworkEntry) -> Option<String> {
    match entry {
        NetworkEntry::Sms { to, text, .. } => Some(format!("📱 SMS to {to}: {text}")),
        NetworkEntry::Call {
            number,
            outcome,
            spoken,
            dtmf,
            ..
        } => {
            let said = if spoken.is_empty() {
                String::new()
            } else {
                format!(", said: {}", spoken.join(" / "))
            };
            let keys = if dtmf.is_empty() {
                String::new()
            } else {
                format!(", keys: {dtmf}")
            };
            Some(format!(
                "📞 call to {number} ended: {outcome:?}{said}{keys}"
            ))
        }
        _ => None,
    }
}

/// Lines typed on stdin. They are read on a plain thread: a read pending on the terminal must
/// never hold up the exit on Ctrl-C (a runtime waits for its blocking reads to finish before it
/// shuts down).
fn stdin_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (line_tx, lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Turns each typed line into its control requests to the simulated phone, echoing it first.
async fn forward_typed(control: PathBuf, mut lines: tokio::sync::mpsc::Receiver<String>) {
    while let Some(line) = lines.recv().await {
        let Some(input) = typed(&line) else { continue };
        let (requests, echo) = phone_requests(input);
        println!("{echo}");
        for (n, req) in requests.iter().enumerate() {
            match request(&control, req).await {
                Ok(r) if r.ok => {}
                // Answering a call that is already up is fine before a key press.
                Ok(_) if n + 1 < requests.len() => {}
                Ok(r) => eprintln!(
                    "   not done: {}",
                    r.error.unwrap_or_else(|| "refused".into())
                ),
                Err(e) => eprintln!("   cannot reach the simulated phone: {e}"),
            }
        }
    }
}

/// What a typed input asks of the simulated phone, and the line that echoes it.
fn phone_requests(input: Typed) -> (Vec<ControlRequest>, String) {
    match input {
        Typed::Sms(text) => (
            vec![ControlRequest::SmsIn {
                from: DEMO_PHONE.into(),
                text: text.clone(),
                options: Default::default(),
            }],
            format!("↩  SMS from {DEMO_PHONE}: {text}"),
        ),
        Typed::Answer => (
            vec![ControlRequest::Answer],
            "📞 you answer the call".into(),
        ),
        Typed::Press(key) => (
            vec![ControlRequest::Answer, ControlRequest::Dtmf { key }],
            format!("📞 you answer and press {key}"),
        ),
        Typed::Reject => (
            vec![ControlRequest::Reject],
            "📞 you reject the call".into(),
        ),
    }
}

/// How to run this program from another terminal: `pagerbox` when that name on `PATH` is this
/// very binary, else its full path (after `cargo run -- demo` it is `target/debug/pagerbox`, not
/// on `PATH`, and a bare `pagerbox` would fail or run another version).
fn cli_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "pagerbox".into();
    };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| d.join("pagerbox").canonicalize().ok())
        .any(|p| p == me);
    if on_path {
        "pagerbox".into()
    } else {
        me.display().to_string()
    }
}

/// How a page call is shown while it rings: who it rings and what to type to act on it.
fn ringing_line(number: &str) -> String {
    format!("📞 call to {number} ringing: type `answer`, `press 1` (acknowledge) or `reject`")
}

/// What a line typed in the demo terminal means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Typed {
    /// An SMS from the phone, as typed.
    Sms(String),
    /// Pick up the ringing page call.
    Answer,
    /// Pick up (if not yet) and press a key.
    Press(char),
    /// Decline the ringing call.
    Reject,
}

/// Reads one typed line: `answer`, `press 1`, `reject` act on the ringing call; anything else
/// is an SMS reply; an empty line is nothing.
fn typed(line: &str) -> Option<Typed> {
    let text = line.trim();
    if text.is_empty() {
        return None;
    }
    let lower = text.to_lowercase();
    Some(match lower.as_str() {
        "answer" => Typed::Answer,
        "reject" => Typed::Reject,
        _ => match lower.strip_prefix("press ").map(str::trim) {
            Some(k)
                if k.chars().count() == 1
                    && k.chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#') =>
            {
                Typed::Press(k.chars().next().unwrap_or('1'))
            }
            _ => Typed::Sms(text.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ringing_call_says_what_to_type() {
        let line = ringing_line("+15550100001");
        for typed_word in ["answer", "press 1", "reject"] {
            assert!(line.contains(&format!("`{typed_word}`")), "{line}");
            assert!(typed(typed_word).is_some_and(|t| t != Typed::Sms(typed_word.into())));
        }
    }

    #[test]
    fn typed_lines_are_call_actions_or_sms_replies() {
        assert_eq!(typed("  "), None);
        assert_eq!(typed("answer"), Some(Typed::Answer));
        assert_eq!(typed("Press 1"), Some(Typed::Press('1')));
        assert_eq!(typed("press #"), Some(Typed::Press('#')));
        assert_eq!(typed("REJECT"), Some(Typed::Reject));
        assert_eq!(typed(" 1a "), Some(Typed::Sms("1a".into())));
        assert_eq!(typed("press 12"), Some(Typed::Sms("press 12".into())));
    }

    #[test]
    fn the_demo_config_pages_its_user_for_every_severity_without_a_warning() {
        let dir = std::path::Path::new("/tmp/pagerbox-demo-test");
        let loaded = Config::parse(&demo_config(dir, 8080, 5140), "demo.toml", dir).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(loaded.impaired.is_empty(), "{:?}", loaded.impaired);
        let now = crate::clock::system_now();
        let w = crate::escalation::reach::unreachable(&loaded.config, now, &Default::default());
        assert!(w.is_empty(), "{w:#?}");
        // Every severity pages "you" first.
        let plan = crate::escalation::engine::Plan::new(Arc::new(loaded.config.clone()));
        let route = &loaded.config.routes[0];
        for severity in crate::incident::Severity::ALL {
            let dry = crate::escalation::plan(
                &plan.policies[&route.policy],
                route,
                severity,
                &plan.directory,
                now,
                &Default::default(),
            );
            assert_eq!(
                dry.pages.first().map(|p| p.user.as_str()),
                Some("you"),
                "{severity}"
            );
        }
    }
}
