//! `pagerbox modem ...`: bench tests of a real installation (status, one SMS, one call).
//!
//! The lead's CLI parses `--config`, builds [`Settings`] from `[modem]` and calls [`run`]. Output
//! is for a person at a terminal; phone numbers are shown as typed (the person typed them).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{CallOptions, CallOutcome, HealthState, Modem, Settings};

/// How long to wait for the modem to come up before giving the command a go anyway.
const BRING_UP_WAIT: Duration = Duration::from_secs(60);

/// `pagerbox modem <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ModemCommand {
    /// Show model, SIM state, registration, operator and signal strength.
    Status,
    /// Send one SMS.
    Sms {
        /// Destination, international format preferred (+4915112345678).
        number: String,
        /// The text (any Unicode; long texts are split into parts).
        text: String,
    },
    /// Place one voice call and report how it ended.
    Call {
        /// Number to call.
        number: String,
        /// How long to let it ring, e.g. 30s or 1m.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ring_for: Duration,
        /// Text to speak once answered (modems with text to speech).
        #[arg(long)]
        say: Option<String>,
        /// How often to repeat the text.
        #[arg(long, default_value_t = 2)]
        repeat: u32,
    },
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" | "min" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!(
            "unknown unit {other:?} in {s:?} (use ms, s, m or h)"
        )),
    }
}

/// Runs one modem command against the device in `settings`.
pub async fn run(cmd: ModemCommand, mut settings: Settings) -> anyhow::Result<ExitCode> {
    let device = settings.device.display().to_string();
    // Replies stored on the SIM belong to the daemon: a bench test must not consume them.
    settings.receive_messages = false;
    let token = CancellationToken::new();
    let (modem, _events) = Modem::spawn(settings, token.clone());
    let health = wait_for_bring_up(&modem).await;
    let code = match cmd {
        ModemCommand::Status => status(&modem, &device, &health).await,
        ModemCommand::Sms { number, text } => {
            let receipt = modem
                .send_sms(&number, &text)
                .await
                .with_context(|| format!("sending SMS to {number} via {device}"))?;
            let refs: Vec<String> = receipt.references.iter().map(u8::to_string).collect();
            println!(
                "sent to {number} in {} part(s), message reference(s) {}",
                receipt.parts,
                refs.join(", ")
            );
            ExitCode::SUCCESS
        }
        ModemCommand::Call {
            number,
            ring_for,
            say,
            repeat,
        } => {
            let opts = CallOptions {
                ring_for,
                speak: say,
                repeat,
                listen_dtmf: true,
            };
            let outcome = modem
                .call(&number, opts)
                .await
                .with_context(|| format!("calling {number} via {device}"))?;
            let (text, ok) = match &outcome {
                CallOutcome::Answered { dtmf: Some(k) } => {
                    (format!("answered, key {k} pressed"), true)
                }
                CallOutcome::Answered { dtmf: None } => ("answered".to_string(), true),
                CallOutcome::Busy => ("busy".into(), false),
                CallOutcome::NoAnswer => ("no answer".into(), false),
                CallOutcome::Rejected => ("rejected".into(), false),
                CallOutcome::Failed(why) | CallOutcome::NotSetUp(why) => {
                    (format!("failed: {why}"), false)
                }
            };
            println!("call to {number}: {text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    };
    token.cancel();
    modem.stopped().await;
    Ok(code)
}

async fn wait_for_bring_up(modem: &Modem) -> super::Health {
    let mut rx = modem.health();
    let _ = tokio::time::timeout(
        BRING_UP_WAIT,
        rx.wait_for(|h| h.state != HealthState::Down || h.reason != "starting"),
    )
    .await;
    let h = rx.borrow().clone();
    h
}

async fn status(modem: &Modem, device: &str, health: &super::Health) -> ExitCode {
    println!("device:       {device}");
    println!(
        "health:       {} ({})",
        health.state.as_str(),
        health.reason
    );
    match modem.status().await {
        Ok(st) => {
            println!("manufacturer: {}", st.manufacturer);
            println!("model:        {}", st.model);
            println!("revision:     {}", st.revision);
            println!("imei:         {}", st.imei.as_deref().unwrap_or("-"));
            println!("profile:      {}", st.profile);
            println!("sim:          {}", st.sim.describe());
            println!("registration: {}", st.registration);
            println!("operator:     {}", st.operator.as_deref().unwrap_or("-"));
            match st.signal_dbm {
                Some(d) => println!("signal:       {d} dBm"),
                None => println!("signal:       unknown"),
            }
            if modem.health().borrow().state == HealthState::Down {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            println!("status:       unavailable ({e})");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ModemCommand,
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn parses_subcommands() {
        let c = Cli::parse_from(["x", "sms", "+4915112345678", "hello there"]);
        assert!(matches!(c.cmd, ModemCommand::Sms { ref text, .. } if text == "hello there"));
        let c = Cli::parse_from([
            "x",
            "call",
            "+4915112345678",
            "--ring-for",
            "20s",
            "--say",
            "hi",
        ]);
        let ModemCommand::Call { ring_for, say, .. } = c.cmd else {
            panic!()
        };
        assert_eq!(ring_for, Duration::from_secs(20));
        assert_eq!(say.as_deref(), Some("hi"));
        assert!(matches!(
            Cli::parse_from(["x", "status"]).cmd,
            ModemCommand::Status
        ));
    }
}
