//! The command line: clap definitions for every subcommand, and the client commands that talk
//! to a running daemon over its HTTP API.
//!
//! Subcommands that belong to one module (the simulator, the modem bench tools, schedules) keep
//! their argument types in that module; this file only gathers them.

mod client;
pub mod demo;
pub mod monitoring;
mod offline;
mod report;
mod silence;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// Default config path, as installed by the Debian package.
pub const DEFAULT_CONFIG: &str = "/etc/pagerbox/pagerbox.toml";

/// pagerbox: on-call paging over a GSM/LTE modem that keeps working when the network is down.
#[derive(Debug, Parser)]
#[command(name = "pagerbox", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(RunArgs),
    /// Check a config file; print every problem as FILE:LINE:COLUMN and exit 1 if there is any.
    Check(CheckCmd),
    /// Send an alert to the running daemon.
    Send(client::SendArgs),
    /// List incidents (open ones by default).
    Incidents(client::ListArgs),
    /// Show one incident with its timeline.
    Show(client::IdArgs),
    /// Acknowledge an incident.
    Ack(client::IdArgs),
    /// Resolve an incident.
    Resolve(client::IdArgs),
    /// Post-incident report of one incident, in Markdown (or --json).
    Report(report::ReportArgs),
    /// On-call review numbers: incidents, time to ack/resolve per service, pages per person.
    Stats(report::StatsArgs),
    /// Who is on call now (or at --at), from which layer or override, until when.
    Oncall(OncallCmd),
    /// Runtime schedule overrides on the running daemon: add, list, delete.
    Override(client::OverrideArgs),
    /// Silences on the running daemon: add, list, expire (matching incidents page nobody).
    Silence(silence::SilenceArgs),
    /// Heartbeat monitors on the running daemon: list their state, or ping one.
    Heartbeat(client::HeartbeatArgs),
    /// Self-test of the paging path on the running daemon: modem, SIM, network, signal,
    /// credit, a test SMS and its reply; each step with its timing. Exit 1 if a step failed.
    Selftest(client::SelftestArgs),
    /// A schedule's shifts as a table or an iCalendar feed.
    Schedule(ScheduleCmd),
    /// The page timeline an alert would get if nobody acknowledged (dry run).
    Simulate(SimulateCmd),
    /// Bench tools for a real modem: status, send an SMS, place a call.
    Modem(ModemCmd),
    /// The GPIO panel: `panel test` blinks the LED and reports button presses.
    Panel(PanelCmd),
    /// Run the modem simulator on a pseudo-terminal, or control a running one.
    Simulator(crate::modem::sim::cli::SimulatorArgs),
    /// Try pagerbox without hardware: the daemon, the simulated modem and phone, in a terminal.
    Demo(demo::DemoArgs),
    /// Write man pages and shell completions (used by packaging).
    #[command(hide = true)]
    GenerateDocs(crate::docgen::GenerateDocsArgs),
}

/// `pagerbox check`.
#[derive(Debug, Clone, Args)]
pub struct CheckCmd {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub url: offline::DaemonUrl,
}

/// `pagerbox oncall`.
#[derive(Debug, Clone, Args)]
pub struct OncallCmd {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub url: offline::DaemonUrl,
    #[command(flatten)]
    pub args: crate::schedule::cli::OncallArgs,
}

/// `pagerbox schedule`.
#[derive(Debug, Clone, Args)]
pub struct ScheduleCmd {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub url: offline::DaemonUrl,
    #[command(flatten)]
    pub args: crate::schedule::cli::ScheduleArgs,
}

/// `pagerbox simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateCmd {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub url: offline::DaemonUrl,
    #[command(flatten)]
    pub args: crate::escalation::cli::SimulateArgs,
}

/// `pagerbox modem`.
#[derive(Debug, Clone, Args)]
pub struct ModemCmd {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub url: offline::DaemonUrl,
    #[command(subcommand)]
    pub command: crate::modem::cli::ModemCommand,
}

/// `pagerbox panel`.
#[derive(Debug, Clone, Args)]
pub struct PanelCmd {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub url: offline::DaemonUrl,
    #[command(subcommand)]
    pub command: PanelSub,
}

/// Panel subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PanelSub {
    /// Blink the LED and report button presses, to check the wiring.
    Test(crate::panel::cli::PanelTestArgs),
}

/// `--config FILE`. Global, so it may also come after a subcommand's own subcommand
/// (`pagerbox modem status --config F`).
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Config file.
    #[arg(short, long, global = true, env = "PAGERBOX_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// An error and its causes on one line, each said once: a cause whose text the message before it
/// already contains (many errors include their source in their own message) is left out, so
/// `cannot read F: No such file (os error 2)` is not followed by the same words again.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `pagerbox run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs a synchronous (client or check) command. `run` is handled by main, which owns the
/// runtime.
// Long on purpose: one arm per subcommand, the command line's dispatch table.
pub fn run_sync(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(c) => {
            offline::ConfigOnly::Check.refuse(&c.url)?;
            Ok(check(&c.config))
        }
        Command::Send(a) => client::send(a),
        Command::Incidents(a) => client::list(a),
        Command::Show(a) => client::show(a),
        Command::Ack(a) => client::transition(a, "acknowledge"),
        Command::Resolve(a) => client::transition(a, "resolve"),
        Command::Override(a) => client::overrides(a),
        Command::Report(a) => report::report(a),
        Command::Stats(a) => report::stats(a),
        Command::Silence(a) => silence::run(a),
        Command::Heartbeat(a) => client::heartbeats(a),
        Command::Selftest(a) => client::selftest(a),
        Command::Oncall(c) => {
            if let Some(url) = &c.url.url {
                print!("{}", offline::oncall(url, &c.args)?);
                return Ok(ExitCode::SUCCESS);
            }
            let config = load(&c.config).map_err(|e| offline::hint_url("oncall", e))?;
            let overrides = runtime_overrides(&config);
            print!(
                "{}",
                crate::schedule::cli::run_oncall(
                    &c.args,
                    &config.schedules,
                    &overrides,
                    config.daemon.time_zone,
                    crate::clock::system_now()
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule(c) => {
            if let Some(url) = &c.url.url {
                print!("{}", offline::schedule(url, &c.args)?);
                return Ok(ExitCode::SUCCESS);
            }
            let config = load(&c.config).map_err(|e| offline::hint_url("schedule", e))?;
            let overrides = runtime_overrides(&config);
            print!(
                "{}",
                crate::schedule::cli::run_schedule(
                    &c.args,
                    &config.schedules,
                    &overrides,
                    crate::clock::system_now()
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(c) => {
            offline::ConfigOnly::Simulate.refuse(&c.url)?;
            let config = load(&c.config)?;
            let overrides = runtime_overrides(&config);
            let plan = crate::escalation::engine::Plan::new(std::sync::Arc::new(config.clone()));
            print!(
                "{}",
                crate::escalation::cli::run_simulate(
                    &c.args,
                    &config.routes,
                    &config.policies,
                    &plan.directory,
                    &overrides,
                    &config.standby,
                    config.daemon.time_zone,
                    crate::clock::system_now()
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateDocs(a) => {
            use clap::CommandFactory;
            crate::docgen::run(&a, Cli::command())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(_)
        | Command::Modem(_)
        | Command::Panel(_)
        | Command::Simulator(_)
        | Command::Demo(_) => {
            unreachable!("main runs the async commands")
        }
    }
}

/// Runs a command that needs the async runtime.
pub async fn run_async(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => {
            crate::daemon::run(&args.config.config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Modem(c) => {
            offline::ConfigOnly::Modem.refuse(&c.url)?;
            let config = load(&c.config)?;
            let device = match &config.modem.device {
                crate::config::ModemDevice::Path(p) => p.clone(),
                crate::config::ModemDevice::Simulator => {
                    anyhow::bail!("modem.device is \"simulator\": the modem bench tools need a real device path")
                }
            };
            let settings = crate::daemon::modem_settings(&config.modem, device)?;
            crate::modem::cli::run(c.command, settings).await
        }
        Command::Panel(c) => {
            offline::ConfigOnly::Panel.refuse(&c.url)?;
            let config = load(&c.config)?;
            match c.command {
                PanelSub::Test(a) => crate::panel::cli::run_test(&config.gpio, a.seconds).await,
            }
        }
        Command::Simulator(a) => crate::modem::sim::cli::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        other => run_sync(other),
    }
}

/// True for commands that need the async runtime.
pub fn is_async(command: &Command) -> bool {
    matches!(
        command,
        Command::Run(_)
            | Command::Modem(_)
            | Command::Panel(_)
            | Command::Simulator(_)
            | Command::Demo(_)
    )
}

/// True for commands that print their answer and end: in a pipeline that stops reading
/// (`pagerbox incidents --all | head -1`) they end quietly, as Unix tools do, instead of failing
/// on the closed pipe. The daemon, the demo and a running simulator are not among them: for a
/// long-lived process a closed pipe or socket must stay an error it handles.
pub fn prints_and_ends(command: &Command) -> bool {
    match command {
        Command::Run(_) | Command::Demo(_) | Command::Panel(_) => false,
        Command::Simulator(a) => a.command.is_some(),
        _ => true,
    }
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    let loaded = Config::load(&args.config)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded.config)
}

/// Runtime overrides from the daemon's database, read-only, when it exists.
fn runtime_overrides(config: &Config) -> crate::schedule::OverridesBySchedule {
    let mut all =
        crate::store::overrides::in_force_at(&config.database_path(), crate::clock::system_now());
    let _ = crate::escalation::engine::known_users_only(&mut all, config);
    all
}

/// `pagerbox check`: prints warnings and errors, exit 0 when usable, 1 otherwise. Strict, as a
/// reload is: a broken optional channel or a config that pages nobody fails here.
fn check(args: &ConfigArgs) -> ExitCode {
    match Config::load(&args.config).and_then(crate::config::Loaded::strict) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            let c = &loaded.config;
            let now = crate::clock::system_now();
            let mut overrides = crate::store::overrides::in_force_at(&c.database_path(), now);
            for w in crate::escalation::engine::known_users_only(&mut overrides, c) {
                println!("{}: warning: {w}", args.config.display());
            }
            // Alerts that would page nobody, and on-call gaps in the coming weeks.
            for w in crate::escalation::reach::unreachable(c, now, &overrides) {
                println!("{}: warning: {w}", args.config.display());
            }
            println!(
                "{}: ok ({} users, {} schedules, {} policies, {} routes)",
                args.config.display(),
                c.users.len(),
                c.schedules.len(),
                c.policies.len(),
                c.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(diags)) => {
            for d in &diags {
                println!("{d}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let e = anyhow::Error::new(ConfigError::Read {
            path: "/etc/pagerbox/pagerbox.toml".into(),
            source: io,
        })
        .context("no daemon address");
        assert_eq!(
            error_text(&e),
            "no daemon address: cannot read /etc/pagerbox/pagerbox.toml: No such file (os error 2)"
        );
    }

    #[test]
    fn the_command_line_is_consistent_and_config_may_follow_a_subcommand() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["pagerbox", "modem", "status", "--config", "/tmp/p.toml"])
            .expect("--config after the modem subcommand");
        let Command::Modem(m) = cli.command else {
            panic!("not the modem command");
        };
        assert_eq!(m.config.config, PathBuf::from("/tmp/p.toml"));
    }
}
