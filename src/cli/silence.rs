//! `pagerbox silence add|list|expire`: runtime silences on the running daemon, over its HTTP API
//! (`/v1/silences`). Matching incidents are recorded but page nobody until the silence ends.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use serde_json::{json, Value};

use super::client::{user, Client, Target};

/// `pagerbox silence`.
#[derive(Debug, Clone, Args)]
pub struct SilenceArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: SilenceCommand,
}

/// Silence subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SilenceCommand {
    /// Silence matching incidents: recorded, shown on the timeline, but nobody is paged until
    /// the silence ends; incidents still open then page as usual.
    Add {
        /// Only incidents of this service.
        #[arg(long)]
        service: Option<String>,
        /// NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX over the incident's fields,
        /// Alertmanager labels or details; repeatable, all must match.
        #[arg(long = "matcher", value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long, e.g. 2h or 30m (from --starts).
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        duration: Option<String>,
        /// End time instead of --for: RFC 3339 or local YYYY-MM-DDTHH:MM (daemon.time_zone).
        #[arg(long)]
        until: Option<String>,
        /// Start time (default now): RFC 3339 or local YYYY-MM-DDTHH:MM.
        #[arg(long)]
        starts: Option<String>,
        /// Why (required).
        #[arg(long)]
        comment: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// List pending, active and recently ended silences (runtime and config windows).
    List {
        /// Also show silences that ended up to this long ago.
        #[arg(long, default_value = "24h")]
        recent: String,
    },
    /// End a runtime silence now; incidents it held page at once if still open.
    Expire {
        /// Silence id (`3` or `#3`).
        id: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

/// Runs a silence subcommand.
pub(super) fn run(a: SilenceArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    match &a.command {
        SilenceCommand::Add {
            service,
            matchers,
            duration,
            until,
            starts,
            comment,
            by,
        } => {
            if duration.is_none() && until.is_none() {
                bail!("give --for DURATION or --until TIME");
            }
            let v = client.call(
                "POST",
                "/v1/silences",
                Some(json!({
                    "service": service,
                    "matchers": matchers,
                    "starts_at": starts,
                    "ends_at": until,
                    "duration": duration,
                    "comment": comment,
                    "created_by": by.clone().unwrap_or_else(user),
                })),
            )?;
            if a.target.json {
                println!("{v}");
            } else {
                println!(
                    "silence #{} {} until {} UTC",
                    v["id"],
                    v["state"].as_str().unwrap_or(""),
                    utc_seconds(v["ends_at"].as_str().unwrap_or(""))
                );
            }
        }
        SilenceCommand::List { recent } => {
            let v = client.call("GET", &format!("/v1/silences?recent={recent}"), None)?;
            if a.target.json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let list = v["silences"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no silences");
            } else {
                println!(
                    "{:<14}  {:<8}  {:<20}  {:<20}  {:<30}  COMMENT",
                    "ID", "STATE", "STARTS (UTC)", "ENDS (UTC)", "MATCHES"
                );
            }
            for s in list {
                println!("{}", row(&s));
            }
        }
        SilenceCommand::Expire { id, by } => {
            let id = id.trim_start_matches('#');
            let v = client.call(
                "POST",
                &format!("/v1/silences/{id}/expire"),
                Some(json!({ "by": by.clone().unwrap_or_else(user) })),
            )?;
            if a.target.json {
                println!("{v}");
            } else if v["changed"].as_bool() == Some(true) {
                println!("silence #{id} expired");
            } else {
                println!(
                    "silence #{id} was already {}",
                    v["silence"]["state"].as_str().unwrap_or("over")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-12-06T10:00:00.123456789Z` as `2026-12-06 10:00:00`: seconds are enough for a person.
fn utc_seconds(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
}

/// One line of `silence list`.
fn row(s: &Value) -> String {
    let id = match (s["kind"].as_str(), &s["id"]) {
        (Some("runtime"), n) => format!("#{n}"),
        (_, Value::String(name)) => name.clone(),
        (_, other) => other.to_string(),
    };
    let mut what: Vec<String> = s["service"]
        .as_str()
        .map(|x| format!("service={x}"))
        .into_iter()
        .collect();
    what.extend(
        s["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string),
    );
    let time = |k: &str| utc_seconds(s[k].as_str().unwrap_or(""));
    format!(
        "{:<14}  {:<8}  {:<20}  {:<20}  {:<30}  {}",
        id,
        s["state"].as_str().unwrap_or(""),
        time("starts_at"),
        time("ends_at"),
        what.join(","),
        s["comment"].as_str().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_second() {
        assert_eq!(
            utc_seconds("2026-12-06T10:00:00.123456789Z"),
            "2026-12-06 10:00:00"
        );
        assert_eq!(utc_seconds(""), "");
    }
}
