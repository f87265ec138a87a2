//! pagerbox: an on-call paging agent that pages people over a GSM/LTE modem.
//!
//! The crate is one daemon plus its command-line tools. Each module owns one concern, so that when
//! a page goes missing the module name says where to look. They are listed from the bottom up:
//! each module uses only modules listed before it, never one after, so there are no import
//! cycles between them (a lower module that must reach a higher
//! one takes a trait or a function from its caller: [`store::StoreObserver`],
//! [`notify::transport::KeypadAck`], [`config::EmailProbe`], the outbound body renderer).
//!
//! | module         | owns                                                                 |
//! |----------------|----------------------------------------------------------------------|
//! | [`clock`]      | wall-clock time behind a trait so logic can be tested at any instant |
//! | [`fault`]      | test-only fault points (feature `fault-injection`), absent from releases |
//! | [`incident`]   | the domain words: severity, channel, status, incident, timeline event |
//! | [`schedule`]   | pure: who is on call at an instant (time zones, DST, overrides)      |
//! | [`docgen`]     | man pages and shell completions generated from the clap definitions  |
//! | [`silence`]    | pure: silences and maintenance windows, matching an incident         |
//! | [`supervisor`] | liveness: essential tasks, their heartbeats, exit when one dies      |
//! | [`config`]     | plain data: each section's validated types (policies and routes, heartbeats, `[selftest]`, `[[outbound]]`, `[standby]`, `[ha]`), TOML validation with `file:line:col` errors |
//! | [`service`]    | systemd: readiness/reload/stop notices, the liveness-gated watchdog  |
//! | [`modem`]      | the AT engine that owns the serial port, PDU codec (and SMS fit), simulator |
//! | [`store`]      | the one task that owns SQLite, the SQL of the tables and their row types, one submodule per table family; [`store::Store`] is its handle |
//! | `ha`           | two boxes as one pager through etcd (feature `ha`): claims, fallback |
//! | [`health`]     | one verdict on whether pages can go out (`/healthz`, LED, watchdog), and the facts it is made of: paging health, standby status |
//! | [`heartbeat`]  | dead-man's switches: the watching task and pings                     |
//! | [`report`]     | post-incident reports (Markdown/JSON) and on-call review stats       |
//! | [`metrics`]    | event counters and the OpenMetrics encoder for `/metrics`            |
//! | [`notify`]     | the senders of the outbox (SMS, voice, email), the one paging-health publisher, what pages say |
//! | [`escalation`] | routing an alert to a policy; the planner, the state machine and the engine that times steps |
//! | [`outbound`]   | Slack, Teams and signed webhook notifications beside paging          |
//! | [`panel`]      | GPIO button and LED behind narrow traits; the bridge to incidents    |
//! | `load`         | `Config::load`/`Config::parse`: validation plus the email sender built as the daemon will |
//! | [`selftest`]   | self-test of the paging path: modem/credit watch, scheduled test page |
//! | [`standby`]    | standby behind PagerDuty/Opsgenie: hold, ask upstream, page if unacked |
//! | [`ack`]        | acknowledge by phone: SMS commands, missed-call and DTMF acks, the consumer of modem events |
//! | [`intake`]     | reading alerts: formats (own, PagerDuty, Alertmanager, Opsgenie, Splunk On-Call), UDP, the route-then-commit path |
//! | [`api`]        | the HTTP surface: one file per resource, shared answers, CSRF guard and masking, the accept loop, the status page |
//! | [`daemon`]     | wiring only: starts the tasks, waits for shutdown                    |
//! | [`cli`]        | clap definitions and the client subcommands                          |

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
