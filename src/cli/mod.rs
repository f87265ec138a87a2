//! The command line: clap definitions for every subcommand, and the client commands that talk
//! to a running daemon over its HTTP API.
//!
//! Subcommands that belong to one module (the simulator, the modem bench tools, schedules) keep
//! their argument types in that module; this file only gathers them.

mod client;

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
    Check(ConfigArgs),
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
}

/// `--config FILE`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Config file.
    #[arg(short, long, env = "PAGERBOX_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// `pagerbox run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs a synchronous (client or check) command. `run` is handled by main, which owns the
/// runtime.
pub fn run_sync(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => Ok(check(&args)),
        Command::Send(a) => client::send(a),
        Command::Incidents(a) => client::list(a),
        Command::Show(a) => client::show(a),
        Command::Ack(a) => client::transition(a, "acknowledge"),
        Command::Resolve(a) => client::transition(a, "resolve"),
        Command::Run(_) => unreachable!("main runs the daemon"),
    }
}

/// `pagerbox check`: prints warnings and errors, exit 0 when usable, 1 otherwise.
fn check(args: &ConfigArgs) -> ExitCode {
    match Config::load(&args.config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            let c = &loaded.config;
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
