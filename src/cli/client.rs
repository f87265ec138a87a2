//! Client commands: talk to the running daemon over HTTP (address from `--url`, or from the
//! config's `http.listen`, or from the daemon's run file when it listens on port 0).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use super::DEFAULT_CONFIG;
use crate::config::{read_secret_once, Config};
use crate::daemon::RunInfo;

/// Where the daemon is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Config file of the daemon (to find its address and token).
    #[arg(short, long, global = true, env = "PAGERBOX_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Daemon URL, e.g. http://127.0.0.1:8080 (overrides the config).
    #[arg(long, global = true, env = "PAGERBOX_URL")]
    pub url: Option<String>,
    /// File holding the write token (defaults to the config's http.token_file).
    #[arg(long, global = true, env = "PAGERBOX_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `pagerbox send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: Target,
    /// critical, error, warning or info.
    #[arg(long, default_value = "error")]
    pub severity: String,
    /// Dedup key (default: derived from source and summary).
    #[arg(long)]
    pub key: Option<String>,
    /// Service the alert is about (routes match on it).
    #[arg(long)]
    pub service: Option<String>,
    /// Source host or check.
    #[arg(long)]
    pub source: Option<String>,
    /// trigger, acknowledge or resolve.
    #[arg(long, default_value = "trigger")]
    pub action: String,
    /// Details as KEY=VALUE, repeatable.
    #[arg(long = "detail", value_name = "KEY=VALUE")]
    pub details: Vec<String>,
    /// A monitoring state (Nagios/Icinga: OK, UP, WARNING, CRITICAL, UNKNOWN, DOWN,
    /// UNREACHABLE): sets action and severity (OK/UP resolve; see contrib/README.md).
    #[arg(long)]
    pub state: Option<String>,
    /// A notification type (PROBLEM, RECOVERY, ACKNOWLEDGEMENT, FLAPPINGSTART, DOWNTIMESTART,
    /// ...): RECOVERY resolves, ACKNOWLEDGEMENT acknowledges, flapping/downtime send nothing.
    #[arg(long)]
    pub notification_type: Option<String>,
    /// The summary.
    pub summary: Vec<String>,
}

/// `pagerbox incidents`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Include resolved incidents.
    #[arg(long)]
    pub all: bool,
}

/// Commands on one incident.
#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub target: Target,
    /// Incident id (`42` or `#42`).
    pub id: String,
    /// Who is doing it (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
}

/// A connection to the daemon's HTTP API (address and token from the target).
pub(super) struct Client {
    base: String,
    /// Where `base` came from, said when the daemon cannot be reached.
    from: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(super) fn new(t: &Target) -> anyhow::Result<Client> {
        let config = if t.url.is_none() || t.token_file.is_none() {
            match Config::load(&t.config) {
                Ok(l) => Some(l.config),
                // The address is given; the token may come from --token-file or nowhere.
                Err(_) if t.url.is_some() => None,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "no daemon address: PAGERBOX_URL is not set, no --url given, and the \
                             config {} (from --config, PAGERBOX_CONFIG or the default) cannot be read",
                            t.config.display()
                        )
                    })
                }
            }
        } else {
            None
        };
        let (base, from) = match (&t.url, &config) {
            (Some(u), _) => (
                u.trim_end_matches('/').to_string(),
                "--url or PAGERBOX_URL".to_string(),
            ),
            (None, Some(c)) => {
                let (addr, from) = if c.http.listen.port() == 0 {
                    let run = RunInfo::read(&c.daemon.state_dir).with_context(|| {
                        format!(
                            "the config {} listens on port 0 and no running daemon was found in {}",
                            t.config.display(),
                            c.daemon.state_dir.display()
                        )
                    })?;
                    (run.http, format!("the run file of {}", t.config.display()))
                } else {
                    (
                        c.http.listen,
                        format!("http.listen in {}", t.config.display()),
                    )
                };
                (format!("http://{addr}"), from)
            }
            (None, None) => bail!("give --url (or set PAGERBOX_URL) or --config"),
        };
        let token_file = t
            .token_file
            .clone()
            .or_else(|| config.as_ref().and_then(|c| c.http.token_file.clone()));
        let token = match token_file {
            Some(p) => Some(
                read_secret_once(&p)
                    .with_context(|| format!("cannot read token file {}", p.display()))?
                    .expose()
                    .to_string(),
            ),
            None => None,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        Ok(Client {
            base,
            from,
            token,
            agent,
        })
    }

    /// GETs `path` and returns the body as text (for non-JSON answers such as Markdown).
    pub(super) fn text(&self, path: &str) -> anyhow::Result<String> {
        match self.agent.get(&format!("{}{}", self.base, path)).call() {
            Ok(r) => Ok(r.into_string()?),
            Err(ureq::Error::Status(code, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                bail!(
                    "{code}: {}",
                    v["error"].as_str().unwrap_or("request failed")
                )
            }
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot reach pagerbox at {} (from {})",
                    self.base, self.from
                )
            }),
        }
    }

    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.call_with(method, path, body, &[])
    }

    /// [`Client::call`] with extra request headers.
    pub(super) fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => Ok(r.into_json()?),
            Err(ureq::Error::Status(code, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                let msg = v["error"].as_str().unwrap_or("request failed").to_string();
                let errs = v["errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                if errs.is_empty() {
                    bail!("{code}: {msg}")
                } else {
                    bail!("{code}: {msg}: {errs}")
                }
            }
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot reach pagerbox at {} (from {})",
                    self.base, self.from
                )
            }),
        }
    }
}

pub(super) fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

pub(super) fn send(mut a: SendArgs) -> anyhow::Result<ExitCode> {
    if a.state.is_some() || a.notification_type.is_some() {
        use super::monitoring::{decide, Decision};
        match decide(a.state.as_deref(), a.notification_type.as_deref())
            .map_err(anyhow::Error::msg)?
        {
            Decision::Ignore(why) => {
                println!("nothing sent: {why}");
                return Ok(ExitCode::SUCCESS);
            }
            Decision::Send { action, severity } => {
                a.action = action.to_string();
                if let Some(s) = severity {
                    a.severity = s.as_str().to_string();
                }
            }
        }
    }
    let client = Client::new(&a.target)?;
    let mut details = serde_json::Map::new();
    for d in &a.details {
        let (k, v) = d
            .split_once('=')
            .with_context(|| format!("--detail {d:?} is not KEY=VALUE"))?;
        details.insert(k.to_string(), Value::String(v.to_string()));
    }
    let body = json!({
        "action": a.action,
        "dedup_key": a.key,
        "summary": a.summary.join(" "),
        "severity": a.severity,
        "service": a.service,
        "source": a.source,
        "details": details,
    });
    // Sent to one box only: the daemon names the path, so a pair shares the alert with the peer.
    let v = client.call_with(
        "POST",
        "/v1/alerts",
        Some(body),
        &[(crate::intake::VIA_HEADER, "cli")],
    )?;
    if a.target.json {
        println!("{v}");
    } else {
        println!(
            "#{} {} (key {}, {} alert(s))",
            v["incident_id"],
            v["status"].as_str().unwrap_or(""),
            v["dedup_key"].as_str().unwrap_or(""),
            v["alert_count"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ago(ts: &str) -> String {
    ts.get(..16).unwrap_or(ts).replace('T', " ")
}

pub(super) fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    let v = client.call(
        "GET",
        if a.all {
            "/v1/incidents?status=all"
        } else {
            "/v1/incidents"
        },
        None,
    )?;
    if a.target.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let list = v["incidents"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no {}incidents", if a.all { "" } else { "open " });
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<12}  {:<8}  {:<12}  {:>5}  {:<16}  SUMMARY",
        "ID", "STATUS", "SEVERITY", "SERVICE", "COUNT", "FIRST SEEN (UTC)"
    );
    for i in list {
        println!(
            "{:>5}  {:<12}  {:<8}  {:<12}  {:>5}  {:<16}  {}",
            format!("#{}", i["id"]),
            i["status"].as_str().unwrap_or(""),
            i["severity"].as_str().unwrap_or(""),
            i["service"].as_str().unwrap_or("-"),
            i["alert_count"],
            ago(i["first_seen"].as_str().unwrap_or("")),
            i["summary"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn show(a: IdArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    let id = a.id.trim_start_matches('#');
    let v = client.call("GET", &format!("/v1/incidents/{id}"), None)?;
    if a.target.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let i = &v["incident"];
    println!(
        "#{} {} [{}] {}",
        i["id"],
        i["status"].as_str().unwrap_or(""),
        i["severity"].as_str().unwrap_or(""),
        i["summary"].as_str().unwrap_or("")
    );
    for (k, label) in [
        ("service", "service"),
        ("source", "source"),
        ("route", "route"),
        ("dedup_key", "dedup key"),
    ] {
        if let Some(s) = i[k].as_str() {
            println!("  {label:<10} {s}");
        }
    }
    println!("  {:<10} {}", "alerts", i["alert_count"]);
    if !i["details"].is_null() {
        println!("  {:<10} {}", "details", i["details"]);
    }
    println!("timeline (UTC):");
    let timeline = v["timeline"].as_array().cloned().unwrap_or_default();
    // One column for the kind, as wide as the widest one shown.
    let width = timeline
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::len))
        .max()
        .unwrap_or(0);
    for e in timeline {
        let message = e["message"].as_str().unwrap_or("");
        println!(
            "  {}  {:<width$} {message}{}",
            e["at"].as_str().unwrap_or("").get(..19).unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            actor_suffix(message, e["actor"].as_str(), e["via"].as_str())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `" [alice via sms]"` after a timeline message, unless the message already says who and how.
fn actor_suffix(message: &str, actor: Option<&str>, via: Option<&str>) -> String {
    match (actor, via) {
        (Some(a), Some(v)) if !message.contains(&format!("{a} via {v}")) => {
            format!(" [{a} via {v}]")
        }
        _ => String::new(),
    }
}

pub(super) fn transition(a: IdArgs, action: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    let id = a.id.trim_start_matches('#');
    let by = a.by.clone().unwrap_or_else(user);
    let v = client.call(
        "POST",
        &format!("/v1/incidents/{id}/{action}"),
        Some(json!({ "by": by, "via": "cli" })),
    )?;
    if a.target.json {
        println!("{v}");
    } else if v["changed"].as_bool() == Some(true) {
        println!("#{id} {}", v["status"].as_str().unwrap_or(""));
    } else {
        println!("#{id} was already {}", v["status"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

/// `pagerbox override`.
#[derive(Debug, Clone, Args)]
pub struct OverrideArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: OverrideCommand,
}

/// Runtime overrides of a schedule.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OverrideCommand {
    /// Put USER on call for SCHEDULE from --from (default now) until --until.
    Add {
        schedule: String,
        user: String,
        /// RFC 3339 or local YYYY-MM-DDTHH:MM in the schedule's zone.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        until: String,
    },
    /// List a schedule's overrides that have not ended.
    List { schedule: String },
    /// Delete an override by id.
    Delete { schedule: String, id: i64 },
}

pub(super) fn overrides(a: OverrideArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    let v = match &a.command {
        OverrideCommand::Add {
            schedule,
            user,
            from,
            until,
        } => client.call(
            "POST",
            &format!("/v1/schedules/{schedule}/overrides"),
            Some(json!({ "user": user, "from": from, "until": until, "by": user_name() })),
        )?,
        OverrideCommand::List { schedule } => {
            client.call("GET", &format!("/v1/schedules/{schedule}/overrides"), None)?
        }
        OverrideCommand::Delete { schedule, id } => client.call(
            "DELETE",
            &format!("/v1/schedules/{schedule}/overrides/{id}"),
            None,
        )?,
    };
    if a.target.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    match &a.command {
        OverrideCommand::Add { .. } => println!(
            "override {}: {} on call from {} until {}",
            v["id"],
            v["user"].as_str().unwrap_or(""),
            v["from"].as_str().unwrap_or(""),
            v["until"].as_str().unwrap_or("")
        ),
        OverrideCommand::List { .. } => {
            let list = v["overrides"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no overrides");
            }
            for o in list {
                println!(
                    "{:>4}  {:<12} {} .. {}  (by {})",
                    o["id"],
                    o["user_id"].as_str().unwrap_or(""),
                    o["from"].as_str().unwrap_or(""),
                    o["until"].as_str().unwrap_or(""),
                    o["created_by"].as_str().unwrap_or("-")
                );
            }
        }
        OverrideCommand::Delete { id, .. } => println!("override {id} deleted"),
    }
    Ok(ExitCode::SUCCESS)
}

fn user_name() -> String {
    user()
}

/// `pagerbox heartbeat`.
#[derive(Debug, Clone, Args)]
pub struct HeartbeatArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: HeartbeatCommand,
}

/// Heartbeat monitors on the running daemon.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HeartbeatCommand {
    /// Each monitor: state, last ping, next deadline, open incident.
    List,
    /// Ping a monitor (what a cron job or watchdog does).
    Ping { id: String },
}

pub(super) fn heartbeats(a: HeartbeatArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    let v = match &a.command {
        HeartbeatCommand::List => client.call("GET", "/v1/heartbeats", None)?,
        HeartbeatCommand::Ping { id } => {
            client.call("POST", &format!("/v1/heartbeats/{id}"), Some(json!({})))?
        }
    };
    if a.target.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    match &a.command {
        HeartbeatCommand::Ping { id } => {
            print!(
                "{id}: next ping due by {}",
                v["due_at"].as_str().unwrap_or("")
            );
            match v["resolved_incident"].as_i64() {
                Some(i) => println!("; resolved #{i}"),
                None => println!(),
            }
        }
        HeartbeatCommand::List => {
            let list = v["heartbeats"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no heartbeat monitors configured");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<16} {:<5} {:<16} {:<16} {:<12} {:>8}  INCIDENT",
                "ID", "STATE", "LAST PING (UTC)", "DUE BY (UTC)", "ROUTE", "PINGS"
            );
            for h in list {
                println!(
                    "{:<16} {:<5} {:<16} {:<16} {:<12} {:>8}  {}",
                    h["id"].as_str().unwrap_or(""),
                    h["state"].as_str().unwrap_or(""),
                    h["last_ping"]
                        .as_str()
                        .map(ago)
                        .unwrap_or_else(|| "never".into()),
                    ago(h["due_at"].as_str().unwrap_or("")),
                    h["route"].as_str().unwrap_or(""),
                    h["pings"],
                    h["incident_id"]
                        .as_i64()
                        .map(|i| format!("#{i}"))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pagerbox selftest`.
#[derive(Debug, Clone, Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub target: Target,
    /// Show the last runs instead of running one.
    #[arg(long)]
    pub history: bool,
    /// How long to wait for the run (it may wait for a delivery report and a reply).
    #[arg(long, default_value = "15m", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

/// Asks the daemon to run a self-test (it owns the modem) and prints each step with timings;
/// exit 1 if any step failed. `--history` lists the last runs.
pub(super) fn selftest(a: SelftestArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::new(&a.target)?;
    client.agent = ureq::AgentBuilder::new().timeout(a.timeout).build();
    if a.history {
        let v = client.call("GET", "/v1/selftest", None)?;
        if a.target.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        let runs: Vec<crate::selftest::Run> =
            serde_json::from_value(v["runs"].clone()).context("unexpected answer")?;
        if runs.is_empty() {
            println!("no self-test has run yet");
        }
        for r in runs {
            println!(
                "#{:<5} {}  {:<8}  {}",
                r.id,
                r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                r.trigger.as_str(),
                if r.ok {
                    "passed".to_string()
                } else {
                    format!("FAILED at {}", r.failed_step.unwrap_or_default())
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let v = client.call("POST", "/v1/selftest", Some(json!({})))?;
    let run: crate::selftest::Run =
        serde_json::from_value(v["run"].clone()).context("unexpected answer")?;
    if a.target.json {
        println!("{}", serde_json::to_string_pretty(&v["run"])?);
    } else {
        print!("{}", crate::selftest::render::render(&run));
    }
    Ok(if run.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_is_named_once() {
        assert_eq!(
            actor_suffix("acknowledged by you via sms", Some("you"), Some("sms")),
            ""
        );
        assert_eq!(
            actor_suffix("alert repeated (2 in all)", Some("api"), Some("http")),
            " [api via http]"
        );
        assert_eq!(actor_suffix("page sent", None, None), "");
    }
}
