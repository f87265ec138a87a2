//! pagerbox: an on-call paging agent that pages people over a GSM/LTE modem.
//!
//! The crate is one daemon plus its command-line tools. Each module owns one concern, so that when
//! a page goes missing the module name says where to look:
//!
//! | module         | owns                                                                 |
//! |----------------|----------------------------------------------------------------------|
//! | [`config`]     | raw TOML -> validated [`config::Config`], errors as `file:line:col`  |
//! | [`incident`]   | the domain words: severity, status, incident, timeline event         |
//! | [`store`]      | the one task that owns SQLite and the SQL of every table, one submodule per table family; [`store::Store`] is its handle |
//! | [`intake`]     | HTTP (axum) and UDP intake, alert formats (own, PagerDuty, Alertmanager) |
//! | [`metrics`]    | `GET /metrics`: metric names, labels, the OpenMetrics encoder        |
//! | [`schedule`]   | pure: who is on call at an instant (time zones, DST, overrides)      |
//! | [`escalation`] | policies, routes, notification rules; the engine that times steps    |
//! | [`health`]     | one verdict on whether pages can go out: `/healthz`, LED, watchdog   |
//! | [`heartbeat`]  | dead-man's switches: pings, deadlines, the incident when one is missed |
//! | [`notify`]     | the senders of the outbox (SMS, voice, email), paging health, what the modem reports back |
//! | [`outbound`]   | Slack, Teams and signed webhook notifications beside paging          |
//! | [`modem`]      | the AT engine that owns the serial port, PDU codec, simulator        |
//! | [`panel`]      | GPIO button and LED behind narrow traits; the bridge to incidents    |
//! | [`silence`]    | silences and maintenance windows: which incidents page nobody now    |
//! | [`standby`]    | standby behind PagerDuty/Opsgenie: hold, ask upstream, page if unacked |
//! | [`selftest`]   | self-test of the paging path: modem/credit watch, scheduled test page |
//! | [`ack`]        | acknowledge by phone: SMS commands, missed-call and DTMF acks        |
//! | `ha`           | two boxes as one pager through etcd (feature `ha`): claims, fallback |
//! | [`fault`]      | test-only fault points (feature `fault-injection`), absent from releases |
//! | [`clock`]      | wall-clock time behind a trait so logic can be tested at any instant |
//! | [`cli`]        | clap definitions and the client subcommands                          |
//! | [`daemon`]     | wiring only: starts the tasks, waits for shutdown                    |
//! | [`supervisor`] | liveness: essential tasks, their heartbeats, exit when one dies        |
//! | [`service`]    | systemd: readiness/reload/stop notices, the liveness-gated watchdog  |
//! | [`docgen`]     | man pages and shell completions generated from the clap definitions  |
//! | [`report`]     | post-incident reports (Markdown/JSON) and on-call review stats       |
//! | [`status_page`] | the local HTML status page: incidents, on call, health; login, CSRF |

pub mod ack;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod docgen;
pub mod escalation;
pub mod fault;
#[cfg(feature = "ha")]
pub mod ha;
pub mod health;
pub mod heartbeat;
pub mod incident;
pub mod intake;
mod load;
pub mod metrics;
pub mod modem;
pub mod notify;
pub mod outbound;
pub mod panel;
pub mod report;
pub mod schedule;
pub mod selftest;
pub mod service;
pub mod silence;
pub mod standby;
pub mod store;
pub mod supervisor;
