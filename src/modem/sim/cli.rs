//! `pagerbox simulator`: run a simulated modem on a PTY, or drive a running one (`ctl`).
//!
//! Owns the clap definitions and the entry function; the lead wires [`SimulatorArgs`] into the
//! top-level CLI and calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::control::{self, ControlRequest};
use super::types::{CallBehaviour, DeliverOptions, Fault, SimConfig, UrcPlacement};
use super::{SimProfile, Simulator};

/// `pagerbox simulator`: without a subcommand, run a simulator until SIGINT/SIGTERM.
/// A timing given twice takes the last value, so a script (or a test) can add its own after a
/// set of defaults.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, args_override_self = true)]
pub struct SimulatorArgs {
    /// `ctl`, or none to run a simulator.
    #[command(subcommand)]
    pub command: Option<SimulatorCommand>,
    /// Options for running a simulator.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands of `pagerbox simulator`.
#[derive(Debug, Subcommand)]
pub enum SimulatorCommand {
    /// Drive a running simulator through its control socket.
    Ctl(CtlArgs),
}

/// Options for running a simulator.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Module to imitate: generic, sim800, sim7600, ec25.
    #[arg(long, default_value = "generic")]
    pub profile: SimProfile,
    /// Symlink to create for the PTY; point the daemon's `modem.device` here.
    #[arg(long, default_value = "/tmp/pagerbox-modem")]
    pub pty_link: PathBuf,
    /// Unix socket for control requests (`pagerbox simulator ctl`).
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// Delay before each response, e.g. 200ms, 1s, 0.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub command_delay: Duration,
    /// Delay of an SMS submit (Ctrl-Z to +CMGS), e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub sms_delay: Duration,
    /// Each submit takes --sms-delay plus or minus up to this much.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub sms_delay_jitter: Duration,
    /// Delay from a submit to its status report.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub delivery_report_delay: Duration,
    /// SIM PIN the modem asks for at boot (none: unlocked).
    #[arg(long, env = "PAGERBOX_SIM_PIN")]
    pub pin: Option<String>,
    /// The SIM's own number.
    #[arg(long, default_value = "+4915100000001")]
    pub own_number: String,
}

/// `pagerbox simulator ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The simulator's control socket.
    #[arg(long)]
    pub control: PathBuf,
    /// What to tell it.
    #[command(subcommand)]
    pub action: CtlAction,
}

/// What to tell the simulator.
#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// An SMS arrives.
    SmsIn {
        /// Sender number (or alphanumeric name).
        #[arg(long)]
        from: String,
        /// Message text.
        text: String,
        /// Force UCS-2.
        #[arg(long)]
        ucs2: bool,
        /// Put the +CMTI inside the next multi-line response.
        #[arg(long)]
        inside_next_response: bool,
    },
    /// A call to the modem.
    CallIn {
        /// Caller number; omit for a withheld number.
        #[arg(long)]
        from: Option<String>,
    },
    /// The far phone picks up the outgoing call.
    Answer,
    /// The far side declines or hangs up.
    Reject,
    /// The far phone lets the outgoing call ring out.
    Ignore,
    /// The far side presses a DTMF key.
    Dtmf {
        /// 0-9, *, #, A-D.
        key: char,
    },
    /// What the far phone does with the next outgoing calls: manual, busy, no-answer, reject,
    /// or answer (after --after).
    CallBehaviour {
        /// manual, answer, busy, no-answer or reject.
        name: String,
        /// With `answer`: how long the phone rings first.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        after: Duration,
    },
    /// Inject a fault: silence, submit-error, cms500, garbage, vanish, lose-registration,
    /// deregister, sim-missing.
    Fault {
        /// The fault's name.
        name: String,
        /// How many submits fail (submit-error, cms500).
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// How long the device stays away (vanish).
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        after: Duration,
    },
    /// Clear all faults.
    Heal,
    /// What the network answers to a USSD code: a text (--text), or not-supported,
    /// network-terminated, timeout (--outcome).
    Ussd {
        /// The code, e.g. *100#.
        code: String,
        /// The answer text, e.g. "Balance: 12.34 EUR".
        #[arg(long, conflicts_with = "outcome")]
        text: Option<String>,
        /// Send the text as UCS-2 (dcs 72).
        #[arg(long)]
        ucs2: bool,
        /// not-supported, network-terminated or timeout.
        #[arg(long)]
        outcome: Option<String>,
    },
    /// A burst of status reports (delivery reports) at once, to flood the DTE's event path.
    StatusReports {
        /// How many (at most 10 000).
        #[arg(long, default_value_t = 500)]
        count: u32,
        /// Reference of the first report; the others count up from it, wrapping at 255.
        #[arg(long, default_value_t = 0)]
        first_reference: u8,
        /// The recipient the reports name.
        #[arg(long)]
        to: String,
    },
    /// Write a raw URC line.
    Urc {
        /// The line, e.g. RING or +CMTI: "SM",3.
        line: String,
        /// Hold it for the inside of the next multi-line response.
        #[arg(long)]
        inside_next_response: bool,
    },
    /// Print the network log as JSON lines.
    Log,
}

/// Runs `pagerbox simulator …`.
pub async fn run(args: SimulatorArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(SimulatorCommand::Ctl(ctl)) => run_ctl(ctl).await,
        None => run_simulator(args.run).await,
    }
}

async fn run_simulator(a: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = SimConfig {
        profile: a.profile,
        command_delay: a.command_delay,
        sms_delay: a.sms_delay,
        sms_delay_jitter: a.sms_delay_jitter,
        pty_link: a.pty_link.clone(),
        control_socket: a.control.clone(),
        pin: a.pin,
        own_number: a.own_number,
        delivery_report_delay: a.delivery_report_delay,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg)
        .await
        .context("starting the modem simulator")?;
    let slave = sim.slave_path().await?.unwrap_or_default();
    println!("{}", a.pty_link.display());
    eprintln!(
        "simulated {} modem on {} -> {}{}",
        a.profile,
        a.pty_link.display(),
        slave.display(),
        a.control
            .as_ref()
            .map(|c| format!(", control socket {}", c.display()))
            .unwrap_or_default()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let stopped = sim.stopped();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stopped.cancelled() => {}
    }
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

// Long on purpose: one arm per control command, mapping its flags onto the control request.
async fn run_ctl(ctl: CtlArgs) -> anyhow::Result<ExitCode> {
    let req = match ctl.action {
        CtlAction::SmsIn {
            from,
            text,
            ucs2,
            inside_next_response,
        } => ControlRequest::SmsIn {
            from,
            text,
            options: DeliverOptions {
                ucs2,
                placement: placement(inside_next_response),
                ..DeliverOptions::default()
            },
        },
        CtlAction::CallIn { from } => ControlRequest::CallIn { from },
        CtlAction::Answer => ControlRequest::Answer,
        CtlAction::Reject => ControlRequest::Reject,
        CtlAction::Ignore => ControlRequest::Ignore,
        CtlAction::Dtmf { key } => ControlRequest::Dtmf { key },
        CtlAction::CallBehaviour { name, after } => ControlRequest::SetCallBehaviour {
            behaviour: match name.as_str() {
                "manual" => CallBehaviour::Manual,
                "busy" => CallBehaviour::Busy,
                "no-answer" | "no_answer" => CallBehaviour::NoAnswer,
                "reject" => CallBehaviour::Reject,
                "answer" => CallBehaviour::AnswerAfter(after),
                other => anyhow::bail!(
                    "unknown call behaviour {other:?} (manual, answer, busy, no-answer, reject)"
                ),
            },
        },
        CtlAction::Fault { name, count, after } => ControlRequest::Fault {
            fault: Fault::from_name(&name, count, after)?,
        },
        CtlAction::Heal => ControlRequest::Heal,
        CtlAction::Ussd {
            code,
            text,
            ucs2,
            outcome,
        } => ControlRequest::SetUssd {
            code,
            reply: match (text, outcome.as_deref()) {
                (Some(text), _) => crate::modem::sim::UssdReply::Text { text, ucs2 },
                (None, Some("not-supported")) => crate::modem::sim::UssdReply::NotSupported,
                (None, Some("network-terminated")) => {
                    crate::modem::sim::UssdReply::NetworkTerminated
                }
                (None, Some("timeout")) => crate::modem::sim::UssdReply::Timeout,
                (None, other) => anyhow::bail!(
                    "ussd: give --text, or --outcome not-supported|network-terminated|timeout (got {other:?})"
                ),
            },
        },
        CtlAction::StatusReports {
            count,
            first_reference,
            to,
        } => ControlRequest::StatusReports {
            count,
            first_reference,
            to,
        },
        CtlAction::Urc {
            line,
            inside_next_response,
        } => ControlRequest::Urc {
            line,
            placement: placement(inside_next_response),
        },
        CtlAction::Log => ControlRequest::Log,
    };
    let resp = control::request(&ctl.control, &req)
        .await
        .with_context(|| format!("talking to the simulator at {}", ctl.control.display()))?;
    if !resp.ok {
        eprintln!(
            "simulator refused: {}",
            resp.error.unwrap_or_else(|| "no reason given".into())
        );
        return Ok(ExitCode::FAILURE);
    }
    for entry in resp.log.unwrap_or_default() {
        println!("{}", serde_json::to_string(&entry)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn placement(inside: bool) -> UrcPlacement {
    if inside {
        UrcPlacement::InsideNextResponse
    } else {
        UrcPlacement::Now
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `1m` or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 250ms, 2s)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "" if value == 0.0 => 0.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: TopCmd,
    }

    #[derive(Subcommand)]
    enum TopCmd {
        Simulator(SimulatorArgs),
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn run_and_ctl_forms_parse() {
        let Top {
            cmd: TopCmd::Simulator(a),
        } = Top::try_parse_from([
            "pagerbox",
            "simulator",
            "--profile",
            "sim800",
            "--pty-link",
            "/tmp/x",
            "--command-delay",
            "0",
        ])
        .unwrap();
        assert!(a.command.is_none());
        assert_eq!(a.run.profile, SimProfile::Sim800);
        assert_eq!(a.run.command_delay, Duration::ZERO);

        let Top {
            cmd: TopCmd::Simulator(a),
        } = Top::try_parse_from([
            "pagerbox",
            "simulator",
            "ctl",
            "--control",
            "/tmp/s",
            "fault",
            "cms500",
            "--count",
            "3",
        ])
        .unwrap();
        let Some(SimulatorCommand::Ctl(CtlArgs {
            action: CtlAction::Fault { name, count, .. },
            ..
        })) = a.command
        else {
            panic!("expected ctl fault");
        };
        assert_eq!((name.as_str(), count), ("cms500", 3));
    }
}
