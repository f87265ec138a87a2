//! Configuration: one TOML file, read into raw serde structs, then validated into [`Config`].
//!
//! Validation reports *every* problem it finds, each at its `file:line:column`, rather than
//! stopping at the first: the person fixing a config at 3 a.m. should fix it once. Syntax errors
//! stop parsing (TOML cannot be read past them); unknown keys and bad values are all collected.
//!
//! Secrets (the API token, SIM PIN, SMTP password) are read from files named in the config, so
//! the config itself can be world-readable and can be shown in bug reports.

mod diag;
mod ha;
pub mod heartbeat;
mod integrations;
pub mod outbound;
pub mod policy;
mod raw;
pub mod selftest;
pub mod standby;
pub mod test_schedule;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diag::{Diagnostic, Level};
pub use ha::{
    EtcdAuth, EtcdEndpoint, EtcdTls, HaConfig, DEFAULT_CLAIM_TTL, DEFAULT_ELECTION_TIMEOUT,
    DEFAULT_FALLBACK_AFTER, DEFAULT_TAKEOVER_DELAY,
};
pub use integrations::{OpsgenieConfig, OpsgenieKey, VictorOpsConfig};

use crate::incident::{Channel, Urgency};

/// The default HTTP listen address: loopback only.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// The default UDP listen address: loopback only.
pub const DEFAULT_UDP_LISTEN: &str = "127.0.0.1:5140";
/// The default request body limit (256 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    pub daemon: DaemonConfig,
    pub http: HttpConfig,
    pub udp: UdpConfig,
    pub modem: ModemConfig,
    pub email: EmailConfig,
    pub gpio: GpioConfig,
    pub paging: PagingConfig,
    pub users: Vec<User>,
    pub schedules: Vec<crate::schedule::Schedule>,
    pub policies: Vec<policy::Policy>,
    pub routes: Vec<policy::Route>,
    pub opsgenie: OpsgenieConfig,
    pub victorops: VictorOpsConfig,
    /// `[[silences]]`: maintenance windows (runtime silences live in the store).
    pub silences: Vec<crate::silence::Silence>,
    /// `[[heartbeats]]`: dead-man's switches watched by the `heartbeat` task.
    pub heartbeats: Vec<heartbeat::Heartbeat>,
    /// `[selftest]`: watching the paging path and the scheduled test page.
    pub selftest: selftest::SelftestConfig,
    /// `[[outbound]]`: chat/webhook notifications beside paging (never instead of it).
    pub outbound: Vec<outbound::Destination>,
    /// `[standby]` and routes' `standby`: which routes stand behind a cloud pager.
    pub standby: standby::StandbyConfig,
    /// `[ha]`: this box is one half of a pair; `None` is the single box.
    pub ha: Option<HaConfig>,
}

/// `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Directory of the SQLite database.
    pub state_dir: PathBuf,
    /// Zone for schedules without one and for times in SMS replies.
    pub time_zone: chrono_tz::Tz,
    /// Country calling code (digits, no `+`) used to read national numbers.
    pub country_code: String,
    /// Weekly windows (in `time_zone`) that count as business hours for on-call stats: a page
    /// sent outside all of them is an out-of-hours page. Default `Mon-Fri 09:00-17:00`.
    pub business_hours: Vec<crate::schedule::Restriction>,
}

/// The business hours when `[daemon] business_hours` is not set.
pub const DEFAULT_BUSINESS_HOURS: &str = "Mon-Fri 09:00-17:00";

/// A secret read from a file. It has no `Debug` that shows it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself; call only where it is used (comparison, sending to the modem/SMTP).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[http]`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Where the write token is read from; `None` means writes need no token.
    pub token_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// How long a client has to send a whole request head; also how long an idle keep-alive
    /// connection may wait for its next request (the clock starts when the server waits for a
    /// head). Bounds slowloris connections.
    pub header_timeout: Duration,
    /// How long a client has to send a whole request body, and to take a whole answer.
    pub body_timeout: Duration,
    /// Most connections open at once; kept well below the process's open-file limit
    /// (`LimitNOFILE` in the unit) so the store, the modem and logs always get a descriptor.
    pub max_connections: usize,
}

/// `[http] header_timeout` default: a real sender sends its head in one packet.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[http] body_timeout` default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `[http] max_connections` default; the unit's `LimitNOFILE=4096` leaves room for the rest.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// `[udp]`.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// What a datagram without the write token may do when a token is configured.
    pub unauthenticated: UdpUnauthenticated,
}

/// `[udp] unauthenticated`: UDP has no headers, so when a write token is configured a datagram
/// carries it as a first word `token=<token>`; this says what a datagram without it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpUnauthenticated {
    /// Nothing: refused, counted and logged (the default).
    Refuse,
    /// Only trigger alerts: never resolve, acknowledge or ping a heartbeat, which could hide a
    /// real problem. For senders that cannot be given the token.
    TriggerOnly,
}

/// Which modem the daemon drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemDevice {
    /// A serial device path such as `/dev/pagerbox-modem`.
    Path(PathBuf),
    /// The built-in simulator on a pseudo-terminal.
    Simulator,
}

/// `[modem]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModemConfig {
    pub enabled: bool,
    pub device: ModemDevice,
    /// `auto`, `generic`, `sim800`, `sim7600` or `ec25`.
    pub profile: String,
    pub baud: u32,
    pub pin_file: Option<PathBuf>,
    pub smsc: Option<String>,
    pub delivery_reports: bool,
    pub text_mode: bool,
    pub command_timeout: Duration,
    pub sms_timeout: Duration,
    pub health_interval: Duration,
    /// How long a voice page rings before it counts as unanswered.
    pub ring_for: Duration,
    pub simulator: SimulatorConfig,
}

/// `[modem.simulator]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    pub profile: String,
    pub command_delay: Duration,
    pub sms_delay: Duration,
    /// Control socket of the built-in simulator; defaults to `<state_dir>/simulator.sock`.
    pub control: Option<PathBuf>,
}

/// How email leaves the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTransport {
    Smtp,
    Sendmail,
}

/// TLS on the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: only for a relay on loopback.
    None,
}

/// `[email]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub enabled: bool,
    pub transport: EmailTransport,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust, for a private relay.
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub timeout: Duration,
}

/// GPIO backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpioBackend {
    None,
    Rppal,
    Fake,
}

/// `[gpio]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioConfig {
    pub backend: GpioBackend,
    pub button_pin: u8,
    pub button_active_low: bool,
    /// `None` disables long press.
    pub long_press: Option<Duration>,
    pub led_pin: u8,
    pub buzzer_pin: Option<u8>,
    pub buzzer_after: Duration,
}

/// `[paging]`.
#[derive(Debug, Clone)]
pub struct PagingConfig {
    pub channels: Vec<Channel>,
    pub max_attempts: u32,
    pub channel_timeout: Duration,
    /// How long pages for a channel that has not been ready yet since the daemon started (the
    /// modem is still booting, registering) wait for it before they fall through to the next
    /// channel. After a restart the modem is back within seconds; paging by email meanwhile
    /// would send every resumed page the wrong way.
    pub channel_start_wait: Duration,
    pub group_window: Duration,
    pub rate_limit_count: u32,
    pub rate_limit_window: Duration,
    pub sms_max_parts: usize,
}

/// A person who can be paged.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub phone: Option<PhoneNumber>,
    pub email: Option<String>,
    pub shift_notices: bool,
    /// How this person is reached once targeted; defaults applied when none are given.
    pub rules: Vec<policy::NotificationRule>,
}

/// Country codes whose national numbers are dialled without a trunk prefix (besides North
/// America's `1`): Greece, Spain, Italy, Denmark, Norway, Poland, Portugal, Luxembourg, Iceland,
/// Malta, Latvia, Estonia, Czechia.
const NO_TRUNK_PREFIX: &[&str] = &[
    "30", "34", "39", "45", "47", "48", "351", "352", "354", "356", "371", "372", "420",
];

/// An E.164 phone number (`+` and 8 to 15 digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Reads a number in E.164 form, or in national form (`0151 ...`) or with a `00`
    /// international prefix, using `country_code` for national numbers. Spaces, dashes, dots and
    /// parentheses are ignored. Returns `None` for anything that is not a plausible number
    /// (alphanumeric senders, short codes).
    pub fn normalize(input: &str, country_code: &str) -> Option<PhoneNumber> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/'))
            .collect();
        let digits = if let Some(rest) = compact.strip_prefix('+') {
            rest.to_string()
        } else if let Some(rest) = compact.strip_prefix("00") {
            rest.to_string()
        } else if let Some(rest) = compact.strip_prefix('0') {
            format!("{country_code}{rest}")
        } else {
            // Modems report international numbers without '+' when the type is 145.
            compact.clone()
        };
        if !(8..=15).contains(&digits.len())
            || !digits.chars().all(|c| c.is_ascii_digit())
            || digits.starts_with('0')
        {
            return None;
        }
        Some(PhoneNumber(format!("+{digits}")))
    }

    /// Every plausible reading of `input`: [`PhoneNumber::normalize`]'s, and for bare digits
    /// (no `+`, `00` or trunk `0`, as a modem shows a number of unknown type, `+CLIP:
    /// "2125550123",129`) in a country whose national numbers have no trunk `0` also the
    /// national one with `country_code`: there a bare number is as likely national, and
    /// reading it as international names another country. Where a trunk `0` is dialled (most
    /// of Europe) bare digits are international only, so a stranger's foreign number cannot
    /// pass for a user's national one. Callers match the readings against known numbers.
    pub fn readings(input: &str, country_code: &str) -> Vec<PhoneNumber> {
        let mut out: Vec<PhoneNumber> = Self::normalize(input, country_code).into_iter().collect();
        let bare = input.trim();
        let national = match country_code {
            // North America: ten digits, area code and number.
            "1" => bare.len() == 10,
            cc => NO_TRUNK_PREFIX.contains(&cc),
        };
        if national
            && !bare.is_empty()
            && bare.bytes().all(|b| b.is_ascii_digit())
            && !bare.starts_with('0')
        {
            if let Some(national) = Self::normalize(&format!("+{country_code}{bare}"), "") {
                if !out.contains(&national) {
                    out.push(national);
                }
            }
        }
        out
    }

    /// Parses strict E.164 (`+` then 8 to 15 digits, no leading zero), as config requires.
    pub fn parse_e164(input: &str) -> Option<PhoneNumber> {
        let digits = input.strip_prefix('+')?;
        if (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0')
        {
            Some(PhoneNumber(input.to_string()))
        } else {
            None
        }
    }

    /// The number in E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the last three digits hidden, for logs.
    pub fn masked(&self) -> String {
        mask_number(&self.0)
    }
}

impl std::fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hides every digit of a phone number but the last three, for logs, reports, the status page
/// and answers to unauthenticated readers. The one masking policy in the daemon: a second
/// policy that kept other digits would let two lines about the same number reveal more of it
/// together than either does alone.
pub fn mask_number(s: &str) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i + 3 < n && c.is_ascii_digit() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// A config that could not be loaded: every problem found, in file order.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// A config that loaded, with the warnings found on the way (e.g. on-call gaps).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    /// Problems the daemon can start with (see [`Level::Impaired`]); empty when the file
    /// is fully usable.
    pub impaired: Vec<Diagnostic>,
}

impl Loaded {
    /// The config only if it has no [`Level::Impaired`] problem: what `pagerbox check`
    /// and a SIGHUP reload accept. A running daemon keeps its config rather than take on a
    /// broken channel or a config that pages nobody.
    pub fn strict(self) -> Result<Loaded, ConfigError> {
        if self.impaired.is_empty() {
            return Ok(self);
        }
        let mut d = self.impaired;
        d.extend(self.warnings);
        Err(ConfigError::Invalid(d))
    }
}

/// Which `[email]` key a problem met while building the email sender belongs to, so the
/// diagnostic points at that key's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKey {
    PasswordFile,
    CaFile,
    From,
    Transport,
    /// The section as a whole (settings that do not fit together).
    Section,
}

/// Builds the email sender from `[email]` exactly as the daemon will, so a missing password or
/// CA file (or a missing sendmail) is found when the file is read and reported at its key.
/// Passed in by whoever loads the file (`Config::load` and `Config::parse` pass the daemon's), so
/// this module, which every feature reads, does not depend on the email sender.
pub type EmailProbe = fn(&EmailConfig) -> Result<(), (EmailKey, String)>;

impl Config {
    /// Validates config text, building the email sender with `email_probe`. `file` names the
    /// text in diagnostics; `base` resolves relative paths. `Config::parse` is this with the
    /// daemon's own email sender.
    pub fn parse_with(
        text: &str,
        file: &str,
        base: &Path,
        email_probe: EmailProbe,
    ) -> Result<Loaded, ConfigError> {
        validate::parse(text, file, base, email_probe)
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The route whose id is `id`.
    pub fn route(&self, id: &str) -> Option<&policy::Route> {
        self.routes.iter().find(|r| r.id == id)
    }

    /// The urgency of an incident of `severity` on the route `route` names: its urgency map, or
    /// the default one when the incident has no route this config knows.
    pub fn urgency(&self, route: Option<&str>, severity: crate::incident::Severity) -> Urgency {
        route
            .and_then(|id| self.route(id))
            .map(|r| r.urgency.urgency(severity))
            .unwrap_or_else(|| policy::UrgencyMap::default().urgency(severity))
    }

    /// The user whose phone number is `number` (already normalised).
    pub fn user_by_phone(&self, number: &PhoneNumber) -> Option<&User> {
        self.users.iter().find(|u| u.phone.as_ref() == Some(number))
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.daemon.state_dir.join("pagerbox.db")
    }

    /// Reads the HTTP write token from `token_file`, if one is configured.
    pub fn read_token(&self) -> std::io::Result<Option<Secret>> {
        match &self.http.token_file {
            None => Ok(None),
            Some(p) => read_secret(p).map(Some),
        }
    }
}

/// The paging channels a transport serves under `config`: SMS and voice with a modem, email
/// when it is enabled. The escalation engine queues pages only on these, so a channel that is
/// off queues nothing (the daemon builds one transport per channel from the same settings).
pub fn served_channels(config: &Config) -> Vec<Channel> {
    Channel::ALL
        .into_iter()
        .filter(|c| match c {
            Channel::Sms | Channel::Voice => config.modem.enabled,
            Channel::Email => config.email.enabled,
        })
        .collect()
}

/// Reads a secret for the daemon from the first line of a file, trimmed: a regular file only
/// (see [`regular_file`]), since the daemon reads its secrets again at every reload.
pub fn read_secret(path: &Path) -> std::io::Result<Secret> {
    regular_file(path)?;
    read_secret_once(path)
}

/// Reads a secret from the first line of any readable file, trimmed: for a one-shot command,
/// where a pipe (`--token-file <(pass show pagerbox)`) is read once and blocks nothing else.
pub fn read_secret_once(path: &Path) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Secret(line))
}

/// Fails unless `path` (after symlinks) is a regular file, without opening it. A file read
/// again at a reload, or a secret, could otherwise be a FIFO, and opening a FIFO that nobody
/// writes to blocks for ever: the reload would never end and the daemon would stop hearing
/// SIGTERM.
pub fn regular_file(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file (a pipe or device cannot be read again safely)",
                path.display()
            ),
        ))
    }
}

/// The longest duration any input may name: ten years. Longer spans are typos (`300000y` for
/// `30m`) and, added to a date, run past what the calendar arithmetic can hold; refusing them
/// where they are read keeps the error next to its cause instead of deep in a task.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 86_400);

/// The longest duration a config key may name unless the key says otherwise: a year (a yearly
/// heartbeat is the slowest thing a pager watches).
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// The longest `email.timeout` the config takes. The email sender's lease and liveness bound
/// are sized from it when the daemon starts, so a reload may raise the timeout up to it.
pub const EMAIL_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// Parses a duration such as `500ms`, `30s`, `10m`, `2h`, `1d`, `1w`, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write e.g. \"30s\", \"10m\", \"2h\"")
    })?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is too long (at most 10 years)"));
    }
    Ok(d)
}

/// Whether `s` counts in months (`M` to humantime), which no delay before a page means: "5M"
/// is five minutes mistyped.
pub(crate) fn counts_months(s: &str) -> bool {
    s.split(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
        .any(|u| u == "M" || u.starts_with("month"))
}

/// The urgency a rule applies to when it does not say.
pub(crate) const DEFAULT_RULE_URGENCY: Urgency = Urgency::High;

#[cfg(test)]
mod tests;
