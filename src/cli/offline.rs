//! `--url` on the offline tools. `oncall` and `schedule` read the config file and the database
//! on this machine; a running daemon can answer the same questions (`GET /v1/oncall`,
//! `GET /v1/schedules/{id}`) from the config it actually runs, so with `--url` they ask it
//! instead, and print the same table. `check`, `simulate`, `modem` and `panel` have no daemon
//! counterpart: given `--url` they say why and what to give instead, rather than ignore it.
//!
//! Only the flag counts, not `PAGERBOX_URL`: that variable points the client commands at the
//! daemon, and an offline tool run in the same shell must keep reading the file it was asked
//! about.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use super::client::{Client, Target};
use crate::schedule::cli::{render_table, OncallArgs, ScheduleArgs, ScheduleFormat};
use crate::schedule::format_local;

/// `--url` for an offline tool.
#[derive(Debug, Clone, Default, Args)]
pub struct DaemonUrl {
    /// Ask the running daemon at this URL instead of reading the config (`oncall` and
    /// `schedule`; the other offline tools say why they cannot).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
}

/// The offline tools that no daemon endpoint can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOnly {
    Check,
    Simulate,
    Modem,
    Panel,
}

impl ConfigOnly {
    /// Why `--url` cannot serve this tool, and what to give instead.
    pub fn why_not(self) -> &'static str {
        match self {
            ConfigOnly::Check => {
                "`pagerbox check` checks a config file, not a daemon: give the file with --config \
                 (a running daemon checks its own config at start and on reload, and logs what it finds)"
            }
            ConfigOnly::Simulate => {
                "`pagerbox simulate` is a dry run over a config file and has no daemon endpoint: \
                 give the daemon's config with --config (runtime overrides are read from its \
                 database on this machine)"
            }
            ConfigOnly::Modem => {
                "the modem bench tools open the serial device themselves, not through a daemon: \
                 stop the daemon and give its config with --config"
            }
            ConfigOnly::Panel => {
                "`pagerbox panel test` drives the GPIO lines itself, not through a daemon: stop the \
                 daemon and give its config with --config"
            }
        }
    }

    /// Fails with [`ConfigOnly::why_not`] when `--url` was given.
    pub fn refuse(self, url: &DaemonUrl) -> anyhow::Result<()> {
        match &url.url {
            Some(u) => bail!("--url {u} given, but {}", self.why_not()),
            None => Ok(()),
        }
    }
}

/// `oncall` and `schedule` could not read their config: when `PAGERBOX_URL` names a daemon (as
/// after `pagerbox demo`'s advice), say that `--url` asks it instead of leaving the reader with a
/// missing file only.
pub fn hint_url(command: &str, e: anyhow::Error) -> anyhow::Error {
    match std::env::var("PAGERBOX_URL") {
        Ok(url) if !url.is_empty() => e.context(format!(
            "`pagerbox {command}` reads the config file (PAGERBOX_URL is for the client commands); \
             to ask the daemon at {url} instead, add --url {url}"
        )),
        _ => e,
    }
}

fn client(url: &str) -> anyhow::Result<Client> {
    Client::new(&Target {
        config: super::DEFAULT_CONFIG.into(),
        url: Some(url.to_string()),
        token_file: None,
        json: false,
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `pagerbox oncall --url URL`: the daemon's answer for now as the offline table. `--at` asks
/// about another instant, which only the offline tool works out.
pub fn oncall(url: &str, args: &OncallArgs) -> anyhow::Result<String> {
    if args.at.is_some() {
        bail!(
            "--at with --url: the daemon answers who is on call now only; run without --url to \
             work out another instant from the config file"
        );
    }
    let v = client(url)?.call("GET", "/v1/oncall", None)?;
    oncall_table(&v, args.schedule.as_deref())
}

/// The table of a `GET /v1/oncall` answer, as `pagerbox oncall` prints it offline.
fn oncall_table(v: &Value, only: Option<&str>) -> anyhow::Result<String> {
    let at: DateTime<Utc> =
        serde_json::from_value(v["at"].clone()).context("no `at` in the answer")?;
    let schedules = v["schedules"]
        .as_array()
        .context("no `schedules` in the answer")?;
    let mut rows = Vec::new();
    for s in schedules {
        let id = s["schedule"].as_str().unwrap_or("?");
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let tz: chrono_tz::Tz = s["time_zone"]
            .as_str()
            .unwrap_or("UTC")
            .parse()
            .unwrap_or(chrono_tz::UTC);
        let time = |t: &Value| -> String {
            serde_json::from_value::<DateTime<Utc>>(t.clone())
                .map(|t| format_local(tz, t))
                .unwrap_or_else(|_| "-".into())
        };
        let on = &s["on_call"];
        rows.push(if on.is_null() {
            vec![
                id.to_string(),
                "NOBODY".into(),
                "gap".into(),
                "-".into(),
                "-".into(),
            ]
        } else {
            vec![
                id.to_string(),
                on["user"].as_str().unwrap_or("?").to_string(),
                source(&on["source"]),
                time(&on["from"]),
                time(&on["until"]),
            ]
        });
    }
    if let (Some(o), true) = (only, rows.is_empty()) {
        let known: Vec<&str> = schedules
            .iter()
            .filter_map(|s| s["schedule"].as_str())
            .collect();
        bail!("no schedule {o:?}; known: {}", known.join(", "));
    }
    if rows.is_empty() {
        bail!("no schedules configured");
    }
    Ok(format!(
        "on call at {}\n{}",
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        render_table(&["SCHEDULE", "ON CALL", "SOURCE", "SINCE", "UNTIL"], &rows)
    ))
}

/// A schedule source as the offline table names it (`{"layer":"weekly"}` -> `layer weekly`).
fn source(v: &Value) -> String {
    if let Some(layer) = v["layer"].as_str() {
        return format!("layer {layer}");
    }
    match v.get("override") {
        Some(Value::Number(n)) => format!("override #{n}"),
        Some(_) => "override (config)".into(),
        None => "gap".into(),
    }
}

/// `pagerbox schedule ID --url URL`: the daemon's shifts, as a table or its iCalendar feed.
pub fn schedule(url: &str, args: &ScheduleArgs) -> anyhow::Result<String> {
    let mut query = format!("?days={}", args.days.max(1));
    if let Some(from) = &args.from {
        query.push_str(&format!("&from={}", encode(from)));
    }
    let path = format!("/v1/schedules/{}", encode(&args.id));
    let client = client(url)?;
    if args.format == ScheduleFormat::Ics {
        return client.text(&format!("{path}{query}&format=ics"));
    }
    let v = client.call("GET", &format!("{path}{query}"), None)?;
    schedule_table(&v)
}

/// The table of a `GET /v1/schedules/{id}` answer, as `pagerbox schedule` prints it offline.
fn schedule_table(v: &Value) -> anyhow::Result<String> {
    let tz_name = v["time_zone"].as_str().unwrap_or("UTC");
    let tz: chrono_tz::Tz = tz_name.parse().unwrap_or(chrono_tz::UTC);
    let time = |t: &Value| -> String {
        serde_json::from_value::<DateTime<Utc>>(t.clone())
            .map(|t| format_local(tz, t))
            .unwrap_or_else(|_| "-".into())
    };
    let rows: Vec<Vec<String>> = v["shifts"]
        .as_array()
        .context("no `shifts` in the answer")?
        .iter()
        .map(|s| {
            vec![
                time(&s["from"]),
                time(&s["until"]),
                s["user"].as_str().unwrap_or("NOBODY").to_string(),
                source(&s["source"]),
            ]
        })
        .collect();
    Ok(format!(
        "schedule {} ({}, {tz_name})\n{}",
        v["schedule"].as_str().unwrap_or("?"),
        v["name"].as_str().unwrap_or(""),
        render_table(&["FROM", "UNTIL", "ON CALL", "SOURCE"], &rows)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_daemons_oncall_answer_prints_as_the_offline_table() {
        let v = json!({
            "at": "2026-07-01T10:00:00Z",
            "schedules": [
                {"schedule": "primary", "name": "Primary", "time_zone": "Europe/Berlin",
                 "on_call": {"user": "alice", "source": {"layer": "weekly"},
                             "from": "2026-06-29T07:00:00Z", "until": "2026-07-06T07:00:00Z"},
                 "next": null},
                {"schedule": "db", "name": "DB", "time_zone": "UTC", "on_call": null, "next": null}
            ]
        });
        let t = oncall_table(&v, None).unwrap();
        assert!(t.starts_with("on call at 2026-07-01 10:00:00 UTC\n"), "{t}");
        assert!(
            t.contains(
                "primary   alice    layer weekly  2026-06-29 09:00 CEST  2026-07-06 09:00 CEST"
            ),
            "{t}"
        );
        assert!(t.contains("db        NOBODY   gap"), "{t}");
        let only = oncall_table(&v, Some("db")).unwrap();
        assert!(!only.contains("alice"), "{only}");
        let err = oncall_table(&v, Some("web")).unwrap_err().to_string();
        assert!(
            err.contains("no schedule \"web\"; known: primary, db"),
            "{err}"
        );
    }

    #[test]
    fn the_daemons_shifts_print_as_the_offline_table() {
        let v = json!({
            "schedule": "primary", "name": "Primary", "time_zone": "UTC",
            "shifts": [
                {"user": "alice", "from": "2026-07-01T00:00:00Z", "until": "2026-07-02T00:00:00Z",
                 "source": {"override": 7}},
                {"user": null, "from": "2026-07-02T00:00:00Z", "until": "2026-07-03T00:00:00Z",
                 "source": null}
            ]
        });
        let t = schedule_table(&v).unwrap();
        assert!(t.starts_with("schedule primary (Primary, UTC)\n"), "{t}");
        assert!(t.contains("alice    override #7"), "{t}");
        assert!(t.contains("NOBODY   gap"), "{t}");
        assert_eq!(
            encode("2026-07-01T09:00+02:00"),
            "2026-07-01T09%3A00%2B02%3A00"
        );
    }

    #[test]
    fn tools_without_a_daemon_counterpart_say_why() {
        let given = DaemonUrl {
            url: Some("http://127.0.0.1:8080".into()),
        };
        for tool in [
            ConfigOnly::Check,
            ConfigOnly::Simulate,
            ConfigOnly::Modem,
            ConfigOnly::Panel,
        ] {
            let err = tool.refuse(&given).unwrap_err().to_string();
            assert!(err.contains("--config"), "{err}");
            tool.refuse(&DaemonUrl::default()).unwrap();
        }
    }
}
