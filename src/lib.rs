//! pagerbox: an on-call paging agent that pages people over a GSM/LTE modem.
//!
//! The crate is one daemon plus its command-line tools. Each module owns one concern, so that when
//! a page goes missing the module name says where to look:
//!
//! | module         | owns                                                                 |
//! |----------------|----------------------------------------------------------------------|
//! | [`config`]     | raw TOML -> validated [`config::Config`], errors as `file:line:col`  |
//! | [`incident`]   | the domain words: severity, status, incident, timeline event         |
//! | [`store`]      | the one task that owns SQLite; [`store::Store`] is its handle        |
//! | [`intake`]     | HTTP (axum) and UDP intake, alert formats (own, PagerDuty, Alertmanager) |
//! | [`schedule`]   | pure: who is on call at an instant (time zones, DST, overrides)      |
//! | [`escalation`] | policies, routes, notification rules; the engine that times steps    |
//! | [`notify`]     | the durable outbox and the senders: SMS, voice, email                |
//! | [`outbound`]   | Slack, Teams and signed webhook notifications beside paging          |
//! | [`modem`]      | the AT engine that owns the serial port, PDU codec, simulator        |
//! | [`panel`]      | GPIO button and LED behind narrow traits                             |
//! | [`ack`]        | acknowledge by phone: SMS commands, missed-call and DTMF acks        |
//! | [`clock`]      | wall-clock time behind a trait so logic can be tested at any instant |
//! | [`cli`]        | clap definitions and the client subcommands                          |
//! | [`daemon`]     | wiring: starts the tasks, waits for shutdown                         |
//! | [`service`]    | systemd: readiness/reload/stop notices, the liveness-gated watchdog  |
//! | [`docgen`]     | man pages and shell completions generated from the clap definitions  |

pub mod ack;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod docgen;
pub mod escalation;
pub mod incident;
pub mod intake;
pub mod modem;
pub mod notify;
pub mod outbound;
pub mod panel;
pub mod schedule;
pub mod service;
pub mod store;
