//! The config file as written: serde structs that mirror the TOML one to one.
//!
//! Values that need checking beyond their type are `Spanned` so that the validator can point at
//! them. Nothing here is trusted; [`super::validate`] turns it into [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawConfig {
    pub daemon: RawDaemon,
    pub http: RawHttp,
    pub udp: RawUdp,
    pub modem: RawModem,
    pub email: RawEmail,
    pub gpio: RawGpio,
    pub paging: RawPaging,
    pub users: Vec<RawUser>,
    pub schedules: Vec<RawSchedule>,
    pub policies: Vec<RawPolicy>,
    pub routes: Vec<RawRoute>,
    pub opsgenie: RawOpsgenie,
    pub victorops: RawVictorOps,
    pub silences: Vec<RawSilence>,
    pub heartbeats: Vec<RawHeartbeat>,
    pub selftest: Option<RawSelftest>,
    pub outbound: Vec<RawOutbound>,
    pub standby: Option<S<RawStandby>>,
    pub ha: Option<S<RawHa>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawDaemon {
    pub state_dir: Option<S<String>>,
    pub time_zone: Option<S<String>>,
    pub country_code: Option<S<String>>,
    pub business_hours: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawHttp {
    pub listen: Option<S<String>>,
    pub token_file: Option<S<String>>,
    pub max_body_bytes: Option<S<i64>>,
    pub header_timeout: Option<S<String>>,
    pub body_timeout: Option<S<String>>,
    pub max_connections: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawUdp {
    pub enabled: Option<bool>,
    pub listen: Option<S<String>>,
    pub unauthenticated: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawModem {
    pub enabled: Option<bool>,
    pub device: Option<S<String>>,
    pub profile: Option<S<String>>,
    pub baud: Option<S<i64>>,
    pub pin_file: Option<S<String>>,
    pub smsc: Option<S<String>>,
    pub delivery_reports: Option<bool>,
    pub text_mode: Option<bool>,
    pub command_timeout: Option<S<String>>,
    pub sms_timeout: Option<S<String>>,
    pub health_interval: Option<S<String>>,
    pub ring_for: Option<S<String>>,
    pub simulator: RawSimulator,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawSimulator {
    pub profile: Option<S<String>>,
    pub command_delay: Option<S<String>>,
    pub sms_delay: Option<S<String>>,
    pub control: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawEmail {
    pub enabled: Option<bool>,
    pub transport: Option<S<String>>,
    pub host: Option<S<String>>,
    pub port: Option<S<i64>>,
    pub tls: Option<S<String>>,
    pub username: Option<String>,
    pub password_file: Option<S<String>>,
    pub from: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub ca_file: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawGpio {
    pub backend: Option<S<String>>,
    pub button_pin: Option<S<i64>>,
    pub button_active_low: Option<bool>,
    pub long_press: Option<S<String>>,
    pub led_pin: Option<S<i64>>,
    pub buzzer_pin: Option<S<i64>>,
    pub buzzer_after: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawPaging {
    pub channels: Option<S<Vec<S<String>>>>,
    pub max_attempts: Option<S<i64>>,
    pub channel_timeout: Option<S<String>>,
    pub channel_start_wait: Option<S<String>>,
    pub group_window: Option<S<String>>,
    pub rate_limit_count: Option<S<i64>>,
    pub rate_limit_window: Option<S<String>>,
    pub sms_max_parts: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawUser {
    pub id: S<String>,
    pub name: Option<String>,
    pub phone: Option<S<String>>,
    pub email: Option<S<String>>,
    #[serde(default)]
    pub shift_notices: bool,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRule {
    pub urgency: Option<S<String>>,
    pub channel: S<String>,
    pub after: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawSchedule {
    pub id: S<String>,
    pub name: Option<String>,
    pub time_zone: Option<S<String>>,
    #[serde(default)]
    pub layers: Vec<RawLayer>,
    #[serde(default)]
    pub overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawLayer {
    pub name: Option<String>,
    pub users: S<Vec<S<String>>>,
    pub shift: S<String>,
    pub start: S<String>,
    #[serde(default)]
    pub restrictions: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawOverride {
    pub user: S<String>,
    pub from: S<String>,
    pub until: S<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawPolicy {
    pub id: S<String>,
    pub name: Option<String>,
    pub repeat: Option<S<i64>>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawStep {
    #[serde(default)]
    pub users: Vec<S<String>>,
    #[serde(default)]
    pub schedules: Vec<S<String>>,
    pub wait: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRoute {
    pub id: S<String>,
    pub policy: S<String>,
    #[serde(rename = "match")]
    pub matcher: Option<S<RawMatch>>,
    pub ack_timeout: Option<S<String>>,
    pub pre_page_delay: Option<S<String>>,
    pub urgency: Option<BTreeMap<String, S<String>>>,
    pub runbook: Option<String>,
    #[serde(default)]
    pub stakeholders: Vec<S<String>>,
    #[serde(default)]
    pub missed_call_ack: bool,
    pub channels: Option<Vec<S<String>>>,
    /// `"standby"` or `"active"` (the default, unless `[standby] enabled = true`).
    pub mode: Option<S<String>>,
    /// This route's standby settings over `[standby]`; implies `mode = "standby"`.
    pub standby: Option<S<RawStandby>>,
}

/// `[standby]` (defaults for every standby route) and a route's `standby = {...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawStandby {
    /// `[standby]` only: every route is in standby unless it says `mode = "active"`.
    pub enabled: Option<S<bool>>,
    pub upstream: Option<S<String>>,
    pub base_url: Option<S<String>>,
    pub events_url: Option<S<String>>,
    pub key_file: Option<S<String>>,
    pub routing_key_file: Option<S<String>>,
    pub grace: Option<S<String>>,
    pub poll_interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub max_failures: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawMatch {
    pub service: Option<String>,
    #[serde(default)]
    pub severity: Vec<S<String>>,
    pub source: Option<String>,
    pub routing_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawOpsgenie {
    pub keys: Vec<RawOpsgenieKey>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawOpsgenieKey {
    pub key_file: S<String>,
    pub routing_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawVictorOps {
    pub api_key_file: Option<S<String>>,
}

/// `[[silences]]`: a maintenance window.
#[derive(Debug, Deserialize)]
pub(crate) struct RawSilence {
    pub id: S<String>,
    pub starts: S<String>,
    pub ends: S<String>,
    pub time_zone: Option<S<String>>,
    pub service: Option<String>,
    #[serde(default)]
    pub matchers: Vec<S<String>>,
    pub comment: Option<String>,
    pub every: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawHeartbeat {
    pub id: S<String>,
    pub interval: S<String>,
    pub grace: Option<S<String>>,
    pub route: S<String>,
    pub summary: Option<String>,
    pub severity: Option<S<String>>,
    pub service: Option<String>,
}

/// `[selftest]`: see `crate::config::selftest::SelftestConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawSelftest {
    pub schedule: Option<S<String>>,
    pub target: Option<S<String>>,
    pub expect_reply_from: Option<S<String>>,
    pub reply_timeout: Option<S<String>>,
    pub submit_timeout: Option<S<String>>,
    pub delivery_timeout: Option<S<String>>,
    pub credit_ussd: Option<S<String>>,
    pub credit_pattern: Option<S<String>>,
    pub credit_min: Option<S<f64>>,
    pub credit_interval: Option<S<String>>,
    pub ussd_timeout: Option<S<String>>,
    pub min_signal_dbm: Option<S<i64>>,
    pub grace: Option<S<String>>,
    pub recover: Option<S<String>>,
    pub check_interval: Option<S<String>>,
}

/// `[[outbound]]`: a Slack, Teams or generic webhook destination (sent by the `outbound` module).
#[derive(Debug, Deserialize)]
pub(crate) struct RawOutbound {
    pub id: S<String>,
    pub kind: S<String>,
    pub url: Option<S<String>>,
    pub url_file: Option<S<String>>,
    pub secret: Option<S<String>>,
    pub secret_file: Option<S<String>>,
    pub signature_header: Option<S<String>>,
    #[serde(default)]
    pub routes: Vec<S<String>>,
    pub events: Option<Vec<S<String>>>,
    pub max_queued: Option<S<i64>>,
    pub timeout: Option<S<String>>,
}

/// `[ha]`: this box as one half of a pair (see `super::ha`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawHa {
    pub name: Option<S<String>>,
    pub peer_urls: Option<S<Vec<S<String>>>>,
    pub etcd_endpoints: Option<S<Vec<S<String>>>>,
    pub etcd_ca_file: Option<S<String>>,
    pub etcd_cert_file: Option<S<String>>,
    pub etcd_key_file: Option<S<String>>,
    pub etcd_username: Option<S<String>>,
    pub etcd_password_file: Option<S<String>>,
    pub fallback_after: Option<S<String>>,
    pub claim_ttl: Option<S<String>>,
    pub election_timeout: Option<S<String>>,
    pub takeover_delay: Option<S<String>>,
}
