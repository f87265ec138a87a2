//! `pagerbox report ID` and `pagerbox stats`: the review endpoints through the HTTP client.
//! The report comes back as the daemon rendered it; the stats table is rendered here from the
//! JSON, with the same code the library tests ([`crate::report::stats::render_table`]).

use std::process::ExitCode;

use clap::Args;

use super::client::{Client, Target};
use crate::report::stats::{parse_since, render_table, Stats};

/// `pagerbox report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub target: Target,
    /// Incident id (`42` or `#42`).
    pub id: String,
}

/// `pagerbox stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Period: a duration back from now (`30d`, `2w`, `12h`) or an RFC 3339 time.
    #[arg(long, default_value = "30d")]
    pub since: String,
}

/// Prints the Markdown report (or its JSON with `--json`).
pub(super) fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    let id = a.id.trim_start_matches('#');
    if a.target.json {
        let v = client.call(
            "GET",
            &format!("/v1/incidents/{id}/report?format=json"),
            None,
        )?;
        println!("{v}");
    } else {
        print!("{}", client.text(&format!("/v1/incidents/{id}/report"))?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the stats as tables (or the JSON with `--json`).
pub(super) fn stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.target)?;
    // Resolved here to a UTC instant, so the query needs no escaping ("+01:00", "30 days") and
    // a typo is reported before anything is sent.
    let since = parse_since(&a.since, crate::clock::system_now()).map_err(anyhow::Error::msg)?;
    let since = since.format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let v = client.call("GET", &format!("/v1/stats?since={since}"), None)?;
    if a.target.json {
        println!("{v}");
    } else {
        let s: Stats = serde_json::from_value(v)?;
        print!("{}", render_table(&s));
    }
    Ok(ExitCode::SUCCESS)
}
