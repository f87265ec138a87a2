//! Raw TOML -> [`Config`], collecting every problem with its place in the file.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDateTime;

use super::diag::{key_span, Reporter};
use super::raw::*;
use super::*;
use crate::config::policy::{NotificationRule, Policy, Route, RouteMatch, Step, UrgencyMap};
use crate::incident::Severity;
use crate::schedule::{Layer, Override, OverrideSource, Restriction, Schedule, ShiftLength};
use crate::silence::{Matcher, Silence, SilenceId};

pub(crate) fn parse(
    text: &str,
    file: &str,
    base: &Path,
    email_probe: EmailProbe,
) -> Result<Loaded, ConfigError> {
    let mut r = Reporter::new(file, text);

    // Syntax first: nothing can be read past a syntax error.
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            r.error(e.span(), e.message().trim().to_string());
            return Err(ConfigError::Invalid(r.diagnostics));
        }
    };

    // Types next, noting every key the schema does not know.
    let mut unknown: Vec<Vec<String>> = Vec::new();
    let de = toml::Deserializer::new(text);
    let raw: Result<RawConfig, _> = serde_ignored::deserialize(de, |path| {
        unknown.push(path_segments(&path));
    });
    for path in &unknown {
        let name = path.join(".");
        r.error(key_span(&doc, path), format!("unknown key `{name}`"));
    }
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            r.error(e.span(), e.message().trim().to_string());
            return Err(ConfigError::Invalid(r.diagnostics));
        }
    };

    let config = Validator {
        r: &mut r,
        base,
        email_probe,
    }
    .config(raw);
    if r.has_errors() {
        let mut d = r.diagnostics;
        d.sort_by_key(|d| (d.level == Level::Warning, d.line, d.column));
        return Err(ConfigError::Invalid(d));
    }
    if let Some(why) = pages_nobody(&config) {
        r.impaired(None, why);
    }
    let (impaired, warnings) = r
        .diagnostics
        .into_iter()
        .partition(|d| d.level == Level::Impaired);
    Ok(Loaded {
        config,
        warnings,
        impaired,
    })
}

/// Why a config would page nobody, if it would: with no user, no policy or no route, every
/// incident is recorded as unrouted. A daemon may start that way (alerts are kept, and routed
/// once a config that matches them arrives), but `check` and a reload refuse it: replacing a
/// working config by one that pages nobody is never what the operator meant.
fn pages_nobody(config: &Config) -> Option<String> {
    let missing: Vec<&str> = [
        (config.users.is_empty(), "[[users]]"),
        (config.policies.is_empty(), "[[policies]]"),
        (config.routes.is_empty(), "[[routes]]"),
    ]
    .into_iter()
    .filter_map(|(gone, what)| gone.then_some(what))
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "this config pages nobody: it has no {}; every incident would be recorded as unrouted",
            missing.join(", no ")
        )
    })
}

fn path_segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path as P;
    let mut out = Vec::new();
    fn walk(p: &P<'_>, out: &mut Vec<String>) {
        match p {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push(index.to_string());
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push(key.clone());
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    walk(path, &mut out);
    // `Spanned` values show up as a map with private keys; drop those segments.
    out.retain(|s| !s.starts_with("$__"));
    out
}

#[path = "validate/ha.rs"]
mod ha;
#[path = "validate/outbound.rs"]
mod outbound;
#[path = "validate/standby.rs"]
mod standby;

struct Validator<'r, 'a> {
    r: &'r mut Reporter<'a>,
    base: &'r Path,
    /// Builds the email sender as the daemon will (see [`EmailProbe`]).
    email_probe: EmailProbe,
}

fn span<T>(s: &S<T>) -> Option<Range<usize>> {
    Some(s.span())
}

impl Validator<'_, '_> {
    fn path(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// Reads a duration key, at most [`MAX_CONFIG_DURATION`]: every duration in the config is
    /// added to dates and instants, so a bound here keeps that arithmetic in range.
    fn duration(&mut self, v: &Option<S<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) if d > MAX_CONFIG_DURATION => {
                    self.r.error(
                        span(s),
                        format!(
                            "{key}: {:?} is too long (at most {})",
                            s.get_ref(),
                            humantime::format_duration(MAX_CONFIG_DURATION)
                        ),
                    );
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.r.error(span(s), format!("{key}: {e}"));
                    default
                }
            },
        }
    }

    /// [`Self::duration`], and an error at the value when it is outside `range`.
    fn bounded_duration(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        range: std::ops::RangeInclusive<Duration>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(v, key, default);
        match v {
            Some(s) if !range.contains(&d) => {
                self.r.error(
                    span(s),
                    format!(
                        "{key}: {} is out of range ({}..={})",
                        s.get_ref(),
                        humantime::format_duration(*range.start()),
                        humantime::format_duration(*range.end())
                    ),
                );
                default
            }
            _ => d,
        }
    }

    fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        v: &Option<S<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: T,
    ) -> T {
        match v {
            None => default,
            Some(s) => {
                let n = *s.get_ref();
                if !range.contains(&n) {
                    self.r.error(
                        span(s),
                        format!(
                            "{key}: {n} is out of range ({}..={})",
                            range.start(),
                            range.end()
                        ),
                    );
                    return default;
                }
                T::try_from(n).unwrap_or(default)
            }
        }
    }

    fn addr(&mut self, v: &Option<S<String>>, key: &str, default: &str) -> SocketAddr {
        let fallback = default.parse().expect("default address parses");
        match v {
            None => fallback,
            Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                self.r.error(
                    span(s),
                    format!(
                        "{key}: {:?} is not an address; write HOST:PORT, e.g. \"{default}\"",
                        s.get_ref()
                    ),
                );
                fallback
            }),
        }
    }

    fn tz(&mut self, s: &S<String>, key: &str) -> Option<chrono_tz::Tz> {
        match s.get_ref().parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.r.error(
                    span(s),
                    format!(
                        "{key}: unknown time zone {:?}; use an IANA name such as \"Europe/Berlin\"",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn one_of<'v>(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        allowed: &[&'v str],
        default: &'v str,
    ) -> &'v str {
        match v {
            None => default,
            Some(s) => match allowed.iter().find(|a| **a == s.get_ref().as_str()) {
                Some(a) => a,
                None => {
                    self.r.error(
                        span(s),
                        format!(
                            "{key}: {:?} is not one of {}",
                            s.get_ref(),
                            allowed.join(", ")
                        ),
                    );
                    default
                }
            },
        }
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let daemon = self.daemon(&raw.daemon);
        let http = HttpConfig {
            listen: self.addr(&raw.http.listen, "http.listen", DEFAULT_HTTP_LISTEN),
            token_file: raw.http.token_file.as_ref().map(|s| self.path(s.get_ref())),
            max_body_bytes: self.int(
                &raw.http.max_body_bytes,
                "http.max_body_bytes",
                1024..=16 * 1024 * 1024,
                DEFAULT_MAX_BODY_BYTES,
            ),
            header_timeout: self.bounded_duration(
                &raw.http.header_timeout,
                "http.header_timeout",
                Duration::from_secs(1)..=Duration::from_secs(300),
                super::DEFAULT_HEADER_TIMEOUT,
            ),
            body_timeout: self.bounded_duration(
                &raw.http.body_timeout,
                "http.body_timeout",
                Duration::from_secs(1)..=Duration::from_secs(600),
                super::DEFAULT_BODY_TIMEOUT,
            ),
            max_connections: self.int(
                &raw.http.max_connections,
                "http.max_connections",
                16..=60_000,
                super::DEFAULT_MAX_CONNECTIONS,
            ),
        };
        let udp = UdpConfig {
            enabled: raw.udp.enabled.unwrap_or(true),
            listen: self.addr(&raw.udp.listen, "udp.listen", DEFAULT_UDP_LISTEN),
            unauthenticated: match self.one_of(
                &raw.udp.unauthenticated,
                "udp.unauthenticated",
                &["refuse", "trigger-only"],
                "refuse",
            ) {
                "trigger-only" => super::UdpUnauthenticated::TriggerOnly,
                _ => super::UdpUnauthenticated::Refuse,
            },
        };
        let modem = self.modem(&raw.modem);
        let email = self.email(&raw.email);
        let gpio = self.gpio(&raw.gpio);
        let paging = self.paging(&raw.paging);
        let users = self.users(&raw.users, &daemon);
        let user_ids: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let schedules = self.schedules(&raw.schedules, &user_ids, &daemon);
        let schedule_ids: HashSet<&str> = raw
            .schedules
            .iter()
            .map(|s| s.id.get_ref().as_str())
            .collect();
        let policies = self.policies(&raw.policies, &user_ids, &schedule_ids);
        let policy_ids: HashSet<&str> = raw
            .policies
            .iter()
            .map(|p| p.id.get_ref().as_str())
            .collect();
        let routes = self.routes(&raw.routes, &policy_ids, &daemon);
        let (opsgenie, victorops) = self.integrations(&raw.opsgenie, &raw.victorops);
        let silences = self.silences(&raw.silences, &daemon);
        let heartbeats = self.heartbeats(&raw.heartbeats, &routes);
        let selftest = self.selftest(raw.selftest.as_ref(), &daemon, &schedule_ids);
        let outbound = self.outbound(&raw.outbound, &routes);
        let standby = self.standby(raw.standby.as_ref(), &raw.routes);
        let ha = raw.ha.as_ref().and_then(|h| self.ha(h, &policies));
        Config {
            path: None,
            daemon,
            http,
            udp,
            modem,
            email,
            gpio,
            paging,
            users,
            schedules,
            policies,
            routes,
            opsgenie,
            victorops,
            silences,
            heartbeats,
            selftest,
            outbound,
            standby,
            ha,
        }
    }

    /// `silences.every`: a whole number of days, longer than the window (in local wall time).
    fn recurrence(
        &mut self,
        every: &S<String>,
        tz: chrono_tz::Tz,
        starts: chrono::DateTime<chrono::Utc>,
        ends: chrono::DateTime<chrono::Utc>,
    ) -> Option<crate::silence::Recurrence> {
        let local_start = crate::schedule::utc_to_local(tz, starts);
        let local_end = crate::schedule::utc_to_local(tz, ends);
        let days = parse_duration(every.get_ref())
            .ok()
            .map(|d| d.as_secs())
            .filter(|s| *s > 0 && s % 86_400 == 0 && *s <= MAX_CONFIG_DURATION.as_secs())
            .and_then(|s| u32::try_from(s / 86_400).ok());
        let Some(days) = days else {
            self.r.error(
                span(every),
                format!(
                    "silences.every: {:?} is not a whole number of days up to a year; write e.g. \"1d\" or \"7d\"",
                    every.get_ref()
                ),
            );
            return None;
        };
        if local_end - local_start >= chrono::Duration::days(i64::from(days)) {
            self.r.error(
                span(every),
                "silences.every: the window must be shorter than its repeat period",
            );
            return None;
        }
        Some(crate::silence::Recurrence {
            every_days: days,
            time_zone: tz,
            local_start,
            local_end,
        })
    }

    /// `[[silences]]`: each window's times are RFC 3339 with an offset, or local wall times in
    /// its `time_zone` (default `daemon.time_zone`) converted by the schedule's DST rule.
    fn silences(&mut self, raw: &[RawSilence], daemon: &DaemonConfig) -> Vec<Silence> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for s in raw {
            self.check_id(&s.id, "silences.id");
            if !seen.insert(s.id.get_ref().clone()) {
                self.r.error(
                    span(&s.id),
                    format!("silences: duplicate silence id {:?}", s.id.get_ref()),
                );
            }
            let tz = match &s.time_zone {
                None => daemon.time_zone,
                Some(z) => self.tz(z, "silences.time_zone").unwrap_or(daemon.time_zone),
            };
            let mut instant = |v: &S<String>, key: &str| {
                crate::schedule::parse_time(v.get_ref(), tz)
                    .map_err(|_| {
                        self.r.error(
                            span(v),
                            format!(
                                "{key}: {:?} is not a time; write RFC 3339 with an offset \
                                 (\"2026-11-29T02:00:00+01:00\") or a local \"2026-11-29T02:00\" \
                                 in the window's time_zone",
                                v.get_ref()
                            ),
                        )
                    })
                    .ok()
            };
            let starts = instant(&s.starts, "silences.starts");
            let ends = instant(&s.ends, "silences.ends");
            let mut matchers = Vec::new();
            let mut bad_matcher = false;
            for m in &s.matchers {
                match Matcher::parse(m.get_ref()) {
                    Ok(x) => matchers.push(x),
                    Err(e) => {
                        bad_matcher = true;
                        self.r.error(span(m), format!("silences.matchers: {e}"))
                    }
                }
            }
            let (Some(starts), Some(ends), false) = (starts, ends, bad_matcher) else {
                continue;
            };
            match Silence::new(
                SilenceId::Config(s.id.get_ref().clone()),
                s.service.clone(),
                matchers,
                starts,
                ends,
                s.comment.clone().unwrap_or_default(),
            ) {
                Ok(mut x) => {
                    if let Some(every) = &s.every {
                        x.repeat = self.recurrence(every, tz, starts, ends);
                        if x.repeat.is_none() {
                            continue;
                        }
                    }
                    out.push(x)
                }
                Err(e @ crate::silence::Error::EmptyWindow { .. }) => {
                    self.r.error(span(&s.ends), format!("silences.ends: {e}"))
                }
                Err(e) => self.r.error(span(&s.id), format!("silences: {e}")),
            }
        }
        out
    }

    fn daemon(&mut self, raw: &RawDaemon) -> DaemonConfig {
        let state_dir = raw
            .state_dir
            .as_ref()
            .map(|s| self.path(s.get_ref()))
            .unwrap_or_else(|| PathBuf::from("/var/lib/pagerbox"));
        let time_zone = raw
            .time_zone
            .as_ref()
            .and_then(|s| self.tz(s, "daemon.time_zone"))
            .unwrap_or(chrono_tz::UTC);
        let country_code = match &raw.country_code {
            None => "1".to_string(),
            Some(s) => {
                let cc = s.get_ref().trim_start_matches('+');
                if (1..=3).contains(&cc.len())
                    && cc.chars().all(|c| c.is_ascii_digit())
                    && !cc.starts_with('0')
                {
                    cc.to_string()
                } else {
                    self.r.error(
                        span(s),
                        format!(
                            "daemon.country_code: {:?} is not a country calling code; write e.g. \"49\"",
                            s.get_ref()
                        ),
                    );
                    "1".to_string()
                }
            }
        };
        let business_hours = self.business_hours(raw.business_hours.as_deref());
        DaemonConfig {
            state_dir,
            time_zone,
            country_code,
            business_hours,
        }
    }

    /// `[daemon] business_hours`: schedule restriction windows; each bad one is reported.
    fn business_hours(&mut self, raw: Option<&[S<String>]>) -> Vec<crate::schedule::Restriction> {
        let Some(raw) = raw else {
            return vec![super::DEFAULT_BUSINESS_HOURS
                .parse()
                .expect("the default business hours parse")];
        };
        let mut out = Vec::new();
        for s in raw {
            match s.get_ref().parse::<crate::schedule::Restriction>() {
                Ok(r) => out.push(r),
                Err(e) => self.r.error(span(s), format!("daemon.business_hours: {e}")),
            }
        }
        out
    }

    fn modem(&mut self, raw: &RawModem) -> ModemConfig {
        let device = match &raw.device {
            None => ModemDevice::Simulator,
            Some(s) if s.get_ref() == "simulator" => ModemDevice::Simulator,
            Some(s) => ModemDevice::Path(PathBuf::from(s.get_ref())),
        };
        let profiles = ["auto", "generic", "sim800", "sim7600", "ec25"];
        let profile = self.one_of(&raw.profile, "modem.profile", &profiles, "auto");
        let sim_profile = self.one_of(
            &raw.simulator.profile,
            "modem.simulator.profile",
            &profiles[1..],
            "sim7600",
        );
        let smsc = raw.smsc.as_ref().map(|s| {
            if PhoneNumber::parse_e164(s.get_ref()).is_none() {
                self.r.error(
                    span(s),
                    format!("modem.smsc: {:?} is not an E.164 number", s.get_ref()),
                );
            }
            s.get_ref().clone()
        });
        ModemConfig {
            enabled: raw.enabled.unwrap_or(true),
            device,
            profile: profile.to_string(),
            baud: self.int(&raw.baud, "modem.baud", 1200..=4_000_000, 115_200),
            pin_file: raw.pin_file.as_ref().map(|s| self.path(s.get_ref())),
            smsc,
            delivery_reports: raw.delivery_reports.unwrap_or(true),
            text_mode: raw.text_mode.unwrap_or(false),
            command_timeout: self.duration(
                &raw.command_timeout,
                "modem.command_timeout",
                Duration::from_secs(10),
            ),
            sms_timeout: self.duration(
                &raw.sms_timeout,
                "modem.sms_timeout",
                Duration::from_secs(60),
            ),
            health_interval: self.duration(
                &raw.health_interval,
                "modem.health_interval",
                Duration::from_secs(30),
            ),
            ring_for: self.duration(&raw.ring_for, "modem.ring_for", Duration::from_secs(30)),
            simulator: SimulatorConfig {
                profile: sim_profile.to_string(),
                command_delay: self.duration(
                    &raw.simulator.command_delay,
                    "modem.simulator.command_delay",
                    Duration::from_millis(200),
                ),
                sms_delay: self.duration(
                    &raw.simulator.sms_delay,
                    "modem.simulator.sms_delay",
                    Duration::from_secs(1),
                ),
                control: raw
                    .simulator
                    .control
                    .as_ref()
                    .map(|s| self.path(s.get_ref())),
            },
        }
    }

    fn email(&mut self, raw: &RawEmail) -> EmailConfig {
        let transport = match self.one_of(
            &raw.transport,
            "email.transport",
            &["smtp", "sendmail"],
            "smtp",
        ) {
            "sendmail" => EmailTransport::Sendmail,
            _ => EmailTransport::Smtp,
        };
        let tls = match self.one_of(
            &raw.tls,
            "email.tls",
            &["starttls", "implicit", "none"],
            "starttls",
        ) {
            "implicit" => SmtpTls::Implicit,
            "none" => SmtpTls::None,
            _ => SmtpTls::StartTls,
        };
        let default_port = match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        };
        let enabled = raw.enabled.unwrap_or(false);
        let from = raw
            .from
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "pagerbox <pagerbox@localhost>".into());
        if let Some(s) = &raw.from {
            if s.get_ref().parse::<lettre::message::Mailbox>().is_err() {
                self.r.error(
                    span(s),
                    format!(
                        "email.from: {:?} is not a mailbox; write \"Name <user@host>\"",
                        s.get_ref()
                    ),
                );
            }
        }
        if enabled && transport == EmailTransport::Smtp && raw.host.is_none() {
            self.r.error(
                None,
                "email: `host` is required when email is enabled with transport = \"smtp\"",
            );
        }
        let cfg = EmailConfig {
            enabled,
            transport,
            host: raw
                .host
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| "localhost".into()),
            port: self.int(&raw.port, "email.port", 1..=65535, default_port),
            tls,
            username: raw.username.clone(),
            password_file: raw.password_file.as_ref().map(|s| self.path(s.get_ref())),
            ca_file: raw.ca_file.as_ref().map(|s| self.path(s.get_ref())),
            from,
            timeout: self.duration(&raw.timeout, "email.timeout", Duration::from_secs(20)),
        };
        if enabled && !self.r.has_errors() {
            self.email_sender(raw, &cfg);
        }
        cfg
    }

    /// Builds the email sender once, as the daemon will, so a missing password or CA file (or
    /// a missing sendmail) is found here and reported at its key. It is [`Level::Impaired`]:
    /// email is an optional channel, so at start the daemon runs without it and pages by SMS
    /// and voice, while `check` and a reload refuse the file.
    fn email_sender(&mut self, raw: &RawEmail, cfg: &EmailConfig) {
        // Each file on its own first, so both are reported when both are missing.
        let mut files_ok = true;
        for (key, path, at) in [
            (
                "email.password_file",
                &cfg.password_file,
                &raw.password_file,
            ),
            ("email.ca_file", &cfg.ca_file, &raw.ca_file),
        ] {
            let Some(path) = path else { continue };
            let read = if key == "email.ca_file" {
                std::fs::read(path).map(drop)
            } else {
                read_secret(path).map(drop)
            };
            if let Err(e) = read {
                files_ok = false;
                self.r.impaired(
                    at.as_ref().and_then(span),
                    format!(
                        "{key}: cannot read {}: {e}; email cannot page until this is fixed",
                        path.display()
                    ),
                );
            }
        }
        if !files_ok {
            return;
        }
        let Err((key, e)) = (self.email_probe)(cfg) else {
            return;
        };
        let (key, at) = match key {
            EmailKey::PasswordFile => ("email.password_file", &raw.password_file),
            EmailKey::CaFile => ("email.ca_file", &raw.ca_file),
            EmailKey::From => ("email.from", &raw.from),
            EmailKey::Transport => ("email.transport", &raw.transport),
            EmailKey::Section => ("email", &None),
        };
        self.r.impaired(
            at.as_ref().and_then(span),
            format!("{key}: {e}; email cannot page until this is fixed"),
        );
    }

    fn gpio(&mut self, raw: &RawGpio) -> GpioConfig {
        // The fake panel is compiled only into test builds (`panel::fake`).
        let backends: &[&str] = if cfg!(any(test, feature = "testkit")) {
            &["none", "rppal", "fake"]
        } else {
            &["none", "rppal"]
        };
        let backend = match self.one_of(&raw.backend, "gpio.backend", backends, "none") {
            "rppal" => GpioBackend::Rppal,
            "fake" => GpioBackend::Fake,
            _ => GpioBackend::None,
        };
        let long_press = self.duration(&raw.long_press, "gpio.long_press", Duration::from_secs(3));
        GpioConfig {
            backend,
            button_pin: self.int(&raw.button_pin, "gpio.button_pin", 0..=53, 17),
            button_active_low: raw.button_active_low.unwrap_or(true),
            long_press: (!long_press.is_zero()).then_some(long_press),
            led_pin: self.int(&raw.led_pin, "gpio.led_pin", 0..=53, 27),
            buzzer_pin: raw
                .buzzer_pin
                .as_ref()
                .map(|_| self.int(&raw.buzzer_pin, "gpio.buzzer_pin", 0..=53, 22)),
            buzzer_after: self.duration(
                &raw.buzzer_after,
                "gpio.buzzer_after",
                Duration::from_secs(600),
            ),
        }
    }

    fn channel(&mut self, s: &S<String>, key: &str) -> Option<Channel> {
        match Channel::from_str(s.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                self.r.error(span(s), format!("{key}: {e}"));
                None
            }
        }
    }

    fn paging(&mut self, raw: &RawPaging) -> PagingConfig {
        /// Long enough for a modem to boot and register after a restart.
        const DEFAULT_CHANNEL_START_WAIT: Duration = Duration::from_secs(60);
        /// Past this, a page waiting for a channel that is not coming is a page not sent.
        const MAX_CHANNEL_START_WAIT: Duration = Duration::from_secs(600);
        let channels = match &raw.channels {
            None => vec![Channel::Sms, Channel::Voice, Channel::Email],
            Some(list) => {
                let cs: Vec<Channel> = list
                    .get_ref()
                    .iter()
                    .filter_map(|s| self.channel(s, "paging.channels"))
                    .collect();
                if list.get_ref().is_empty() {
                    self.r
                        .error(span(list), "paging.channels: name at least one channel");
                }
                cs
            }
        };
        PagingConfig {
            channels,
            max_attempts: self.int(&raw.max_attempts, "paging.max_attempts", 1..=100, 3),
            channel_timeout: self.duration(
                &raw.channel_timeout,
                "paging.channel_timeout",
                Duration::from_secs(300),
            ),
            channel_start_wait: {
                let d = self.duration(
                    &raw.channel_start_wait,
                    "paging.channel_start_wait",
                    DEFAULT_CHANNEL_START_WAIT,
                );
                match &raw.channel_start_wait {
                    Some(s) if d > MAX_CHANNEL_START_WAIT => {
                        self.r.error(
                            span(s),
                            format!(
                                "paging.channel_start_wait: at most {} (pages must not wait longer for a modem that may never come)",
                                humantime::format_duration(MAX_CHANNEL_START_WAIT)
                            ),
                        );
                        DEFAULT_CHANNEL_START_WAIT
                    }
                    _ => d,
                }
            },
            group_window: self.duration(
                &raw.group_window,
                "paging.group_window",
                Duration::from_secs(30),
            ),
            rate_limit_count: self.int(
                &raw.rate_limit_count,
                "paging.rate_limit_count",
                1..=1000,
                6,
            ),
            rate_limit_window: self.duration(
                &raw.rate_limit_window,
                "paging.rate_limit_window",
                Duration::from_secs(600),
            ),
            sms_max_parts: self.int(&raw.sms_max_parts, "paging.sms_max_parts", 1..=10, 1),
        }
    }

    fn users(&mut self, raw: &[RawUser], daemon: &DaemonConfig) -> Vec<User> {
        let mut seen: HashMap<String, ()> = HashMap::new();
        let mut phones: HashMap<PhoneNumber, String> = HashMap::new();
        let mut out = Vec::new();
        for u in raw {
            let id = u.id.get_ref().clone();
            self.check_id(&u.id, "users.id");
            if seen.insert(id.clone(), ()).is_some() {
                self.r
                    .error(span(&u.id), format!("users: duplicate user id {id:?}"));
            }
            let phone = u.phone.as_ref().and_then(|s| match PhoneNumber::parse_e164(s.get_ref()) {
                Some(p) => Some(p),
                None => {
                    let hint = PhoneNumber::normalize(s.get_ref(), &daemon.country_code)
                        .map(|p| format!(" (did you mean \"{p}\"?)"))
                        .unwrap_or_default();
                    self.r.error(
                        span(s),
                        format!(
                            "users.phone: {:?} is not an E.164 number; write + then country code and number{hint}",
                            s.get_ref()
                        ),
                    );
                    None
                }
            });
            if let (Some(p), Some(s)) = (&phone, &u.phone) {
                if let Some(other) = phones.insert(p.clone(), id.clone()) {
                    self.r.error(span(s), format!("users.phone: {p} is also the number of user {other:?}; replies could not tell them apart"));
                }
            }
            if let Some(e) = &u.email {
                if e.get_ref().parse::<lettre::Address>().is_err() {
                    self.r.error(
                        span(e),
                        format!("users.email: {:?} is not an email address", e.get_ref()),
                    );
                }
            }
            let mut rules = Vec::new();
            for rule in &u.rules {
                let urgency = match &rule.urgency {
                    None => DEFAULT_RULE_URGENCY,
                    Some(s) => match Urgency::from_str(s.get_ref()) {
                        Ok(x) => x,
                        Err(e) => {
                            self.r.error(span(s), format!("users.rules.urgency: {e}"));
                            continue;
                        }
                    },
                };
                let Some(channel) = self.channel(&rule.channel, "users.rules.channel") else {
                    continue;
                };
                if channel == Channel::Sms && phone.is_none()
                    || channel == Channel::Voice && phone.is_none()
                {
                    self.r.error(
                        span(&rule.channel),
                        format!("users.rules: user {id:?} has a {channel} rule but no phone"),
                    );
                }
                if channel == Channel::Email && u.email.is_none() {
                    self.r.error(
                        span(&rule.channel),
                        format!("users.rules: user {id:?} has an email rule but no email"),
                    );
                }
                if channel == Channel::Voice && urgency == Urgency::Low {
                    self.r.error(
                        span(&rule.channel),
                        "users.rules: low urgency never calls; use sms or email",
                    );
                }
                let after = self.duration(&rule.after, "users.rules.after", Duration::ZERO);
                rules.push(NotificationRule {
                    urgency,
                    channel,
                    after,
                });
            }
            if u.rules.is_empty() {
                rules = crate::config::policy::default_rules()
                    .into_iter()
                    .filter(|r| match r.channel {
                        Channel::Sms | Channel::Voice => phone.is_some(),
                        Channel::Email => u.email.is_some(),
                    })
                    .collect();
                // The defaults wait for channels this person may not have (email after 5
                // minutes assumes SMS came first): the first remaining rule of each urgency
                // starts at once, and the later ones keep their spacing from it.
                for urgency in [Urgency::High, Urgency::Low] {
                    let first = rules
                        .iter()
                        .filter(|r| r.urgency == urgency)
                        .map(|r| r.after)
                        .min();
                    if let Some(first) = first {
                        for r in rules.iter_mut().filter(|r| r.urgency == urgency) {
                            r.after -= first;
                        }
                    }
                }
            }
            if u.phone.is_none() && u.email.is_none() {
                self.r.error(
                    span(&u.id),
                    format!("users: user {id:?} has neither phone nor email and cannot be paged"),
                );
            }
            out.push(User {
                name: u.name.clone().unwrap_or_else(|| id.clone()),
                id,
                phone,
                email: u.email.as_ref().map(|e| e.get_ref().clone()),
                shift_notices: u.shift_notices,
                rules,
            });
        }
        out
    }

    fn check_id(&mut self, s: &S<String>, key: &str) {
        let id = s.get_ref();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.r.error(span(s), format!("{key}: {id:?} must be non-empty and use only letters, digits, '-', '_' and '.'"));
        }
    }

    fn user_ref(&mut self, s: &S<String>, key: &str, users: &HashSet<&str>) {
        if !users.contains(s.get_ref().as_str()) {
            self.r
                .error(span(s), format!("{key}: unknown user {:?}", s.get_ref()));
        }
    }

    fn local_time(&mut self, s: &S<String>, key: &str) -> Option<NaiveDateTime> {
        let t = s.get_ref();
        NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| {
                self.r.error(
                    span(s),
                    format!("{key}: {t:?} is not a local time; write \"2026-01-05T09:00\""),
                );
            })
            .ok()
    }

    fn schedules(
        &mut self,
        raw: &[RawSchedule],
        users: &HashSet<&str>,
        daemon: &DaemonConfig,
    ) -> Vec<Schedule> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for s in raw {
            self.check_id(&s.id, "schedules.id");
            if !seen.insert(s.id.get_ref().clone()) {
                self.r.error(
                    span(&s.id),
                    format!("schedules: duplicate schedule id {:?}", s.id.get_ref()),
                );
            }
            let tz = match &s.time_zone {
                None => daemon.time_zone,
                Some(z) => self
                    .tz(z, "schedules.time_zone")
                    .unwrap_or(daemon.time_zone),
            };
            if s.layers.is_empty() {
                self.r.error(
                    span(&s.id),
                    format!("schedules: schedule {:?} has no layers", s.id.get_ref()),
                );
            }
            let mut layers = Vec::new();
            for (i, l) in s.layers.iter().enumerate() {
                for u in l.users.get_ref() {
                    self.user_ref(u, "schedules.layers.users", users);
                }
                if l.users.get_ref().is_empty() {
                    self.r.error(
                        span(&l.users),
                        "schedules.layers.users: a layer needs at least one user",
                    );
                }
                let shift = match ShiftLength::from_str(l.shift.get_ref()) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        self.r
                            .error(span(&l.shift), format!("schedules.layers.shift: {e}"));
                        None
                    }
                };
                let start = self.local_time(&l.start, "schedules.layers.start");
                let mut restrictions = Vec::new();
                for r in &l.restrictions {
                    match Restriction::from_str(r.get_ref()) {
                        Ok(x) => restrictions.push(x),
                        Err(e) => self
                            .r
                            .error(span(r), format!("schedules.layers.restrictions: {e}")),
                    }
                }
                if let (Some(shift), Some(start)) = (shift, start) {
                    layers.push(Layer {
                        // Shown as "layer 1": the word comes with the display.
                        name: l.name.clone().unwrap_or_else(|| (i + 1).to_string()),
                        users: l
                            .users
                            .get_ref()
                            .iter()
                            .map(|u| u.get_ref().clone())
                            .collect(),
                        shift,
                        start,
                        restrictions,
                    });
                }
            }
            let mut overrides = Vec::new();
            for o in &s.overrides {
                self.user_ref(&o.user, "schedules.overrides.user", users);
                let from = self.local_time(&o.from, "schedules.overrides.from");
                let until = self.local_time(&o.until, "schedules.overrides.until");
                if let (Some(from), Some(until)) = (from, until) {
                    let from = crate::schedule::local_to_utc(tz, from);
                    let until = crate::schedule::local_to_utc(tz, until);
                    if until <= from {
                        self.r.error(
                            span(&o.until),
                            "schedules.overrides.until: must be after `from`",
                        );
                    }
                    overrides.push(Override {
                        id: None,
                        user: o.user.get_ref().clone(),
                        from,
                        until,
                        source: OverrideSource::Config,
                    });
                }
            }
            out.push(Schedule {
                id: s.id.get_ref().clone(),
                name: s.name.clone().unwrap_or_else(|| s.id.get_ref().clone()),
                tz,
                layers,
                overrides,
            });
        }
        out
    }

    fn policies(
        &mut self,
        raw: &[RawPolicy],
        users: &HashSet<&str>,
        schedules: &HashSet<&str>,
    ) -> Vec<Policy> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in raw {
            self.check_id(&p.id, "policies.id");
            if !seen.insert(p.id.get_ref().clone()) {
                self.r.error(
                    span(&p.id),
                    format!("policies: duplicate policy id {:?}", p.id.get_ref()),
                );
            }
            if p.steps.is_empty() {
                self.r.error(
                    span(&p.id),
                    format!("policies: policy {:?} has no steps", p.id.get_ref()),
                );
            }
            let mut steps = Vec::new();
            for st in &p.steps {
                for u in &st.users {
                    self.user_ref(u, "policies.steps.users", users);
                }
                for s in &st.schedules {
                    if !schedules.contains(s.get_ref().as_str()) {
                        self.r.error(
                            span(s),
                            format!(
                                "policies.steps.schedules: unknown schedule {:?}",
                                s.get_ref()
                            ),
                        );
                    }
                }
                if st.users.is_empty() && st.schedules.is_empty() {
                    self.r.error(
                        span(&p.id),
                        format!(
                            "policies: a step of policy {:?} names no users and no schedules",
                            p.id.get_ref()
                        ),
                    );
                }
                steps.push(Step {
                    users: st.users.iter().map(|u| u.get_ref().clone()).collect(),
                    schedules: st.schedules.iter().map(|s| s.get_ref().clone()).collect(),
                    wait: self.duration(&st.wait, "policies.steps.wait", Duration::from_secs(600)),
                });
            }
            out.push(Policy {
                id: p.id.get_ref().clone(),
                name: p.name.clone().unwrap_or_else(|| p.id.get_ref().clone()),
                repeat: self.int(&p.repeat, "policies.repeat", 1..=100, 1),
                steps,
            });
        }
        out
    }

    fn routes(
        &mut self,
        raw: &[RawRoute],
        policies: &HashSet<&str>,
        daemon: &DaemonConfig,
    ) -> Vec<Route> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut default_seen: Option<Range<usize>> = None;
        for r in raw {
            self.check_id(&r.id, "routes.id");
            if !seen.insert(r.id.get_ref().clone()) {
                self.r.error(
                    span(&r.id),
                    format!("routes: duplicate route id {:?}", r.id.get_ref()),
                );
            }
            if !policies.contains(r.policy.get_ref().as_str()) {
                self.r.error(
                    span(&r.policy),
                    format!("routes.policy: unknown policy {:?}", r.policy.get_ref()),
                );
            }
            if default_seen.is_some() {
                self.r.error(span(&r.id), format!("routes: route {:?} comes after the default route (the one without `match`) and can never match", r.id.get_ref()));
            }
            let matcher = r.matcher.as_ref().map(|m| {
                let mut severity = Vec::new();
                for s in &m.get_ref().severity {
                    match Severity::from_str(s.get_ref()) {
                        Ok(x) => severity.push(x),
                        Err(e) => self.r.error(span(s), format!("routes.match.severity: {e}")),
                    }
                }
                RouteMatch {
                    service: m.get_ref().service.clone(),
                    severity,
                    source: m.get_ref().source.clone(),
                    routing_key: m.get_ref().routing_key.clone(),
                }
            });
            if matcher.is_none() {
                default_seen = Some(r.id.span());
            }
            let mut urgency = UrgencyMap::default();
            if let Some(map) = &r.urgency {
                for (k, v) in map {
                    let Ok(sev) = Severity::from_str(k) else {
                        self.r.error(span(v), format!("routes.urgency: {k:?} is not a severity (critical, error, warning, info)"));
                        continue;
                    };
                    match Urgency::from_str(v.get_ref()) {
                        Ok(u) => urgency.set(sev, u),
                        Err(e) => self.r.error(span(v), format!("routes.urgency.{k}: {e}")),
                    }
                }
            }
            let mut stakeholders = Vec::new();
            for s in &r.stakeholders {
                let v = s.get_ref();
                if let Some(p) = PhoneNumber::parse_e164(v) {
                    stakeholders.push(p.to_string());
                } else if v.parse::<lettre::Address>().is_ok() {
                    stakeholders.push(v.clone());
                } else {
                    self.r.error(span(s), format!("routes.stakeholders: {v:?} is neither an E.164 number nor an email address"));
                }
            }
            let _ = daemon;
            out.push(Route {
                id: r.id.get_ref().clone(),
                policy: r.policy.get_ref().clone(),
                matcher,
                ack_timeout: r.ack_timeout.as_ref().map(|_| {
                    self.duration(
                        &r.ack_timeout,
                        "routes.ack_timeout",
                        Duration::from_secs(1800),
                    )
                }),
                pre_page_delay: self.duration(
                    &r.pre_page_delay,
                    "routes.pre_page_delay",
                    Duration::ZERO,
                ),
                urgency,
                runbook: r.runbook.clone(),
                stakeholders,
                missed_call_ack: r.missed_call_ack,
                channels: r.channels.as_ref().map(|cs| {
                    cs.iter()
                        .filter_map(|c| self.channel(c, "routes.channels"))
                        .collect()
                }),
            });
        }
        if raw.is_empty() && !self.r.has_errors() {
            // No routes: everything follows the first policy, if there is one.
        }
        out
    }
}

/// `[opsgenie]` and `[victorops]`: the keys those senders present are read here, so a missing or
/// unreadable key file fails `pagerbox check` (and a SIGHUP reload) at its line.
impl Validator<'_, '_> {
    fn secret_file(&mut self, s: &S<String>, key: &str) -> Option<Secret> {
        let path = self.path(s.get_ref());
        match read_secret(&path) {
            Ok(secret) => Some(secret),
            Err(e) => {
                self.r.error(
                    span(s),
                    format!("{key}: cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    fn integrations(
        &mut self,
        og: &RawOpsgenie,
        vo: &RawVictorOps,
    ) -> (OpsgenieConfig, VictorOpsConfig) {
        let mut keys: Vec<OpsgenieKey> = Vec::new();
        for k in &og.keys {
            let Some(key) = self.secret_file(&k.key_file, "opsgenie.keys.key_file") else {
                continue;
            };
            if keys.iter().any(|other| other.key == key) {
                self.r.error(
                    span(&k.key_file),
                    "opsgenie.keys.key_file: this key is already listed; each key may appear once",
                );
                continue;
            }
            keys.push(OpsgenieKey {
                key,
                routing_key: k.routing_key.clone().filter(|r| !r.is_empty()),
            });
        }
        let api_key = vo
            .api_key_file
            .as_ref()
            .and_then(|s| self.secret_file(s, "victorops.api_key_file"));
        (OpsgenieConfig { keys }, VictorOpsConfig { api_key })
    }
}

impl Validator<'_, '_> {
    /// `[[heartbeats]]`: ids unique, the route must exist, interval at least a second.
    fn heartbeats(
        &mut self,
        raw: &[RawHeartbeat],
        routes: &[Route],
    ) -> Vec<crate::config::heartbeat::Heartbeat> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for h in raw {
            self.check_id(&h.id, "heartbeats.id");
            if !seen.insert(h.id.get_ref().clone()) {
                self.r.error(
                    span(&h.id),
                    format!("heartbeats: duplicate heartbeat id {:?}", h.id.get_ref()),
                );
            }
            if !routes.iter().any(|r| &r.id == h.route.get_ref()) {
                self.r.error(
                    span(&h.route),
                    format!(
                        "heartbeats.route: unknown route {:?}; name the id of a [[routes]] entry",
                        h.route.get_ref()
                    ),
                );
            }
            let interval = self.duration(
                &Some(h.interval.clone()),
                "heartbeats.interval",
                Duration::from_secs(60),
            );
            if interval < Duration::from_secs(1) {
                self.r.error(
                    span(&h.interval),
                    "heartbeats.interval: must be at least 1s".to_string(),
                );
            }
            let grace = self.duration(
                &h.grace,
                "heartbeats.grace",
                crate::config::heartbeat::default_grace(interval),
            );
            let severity = match &h.severity {
                None => Severity::Critical,
                Some(s) => Severity::from_str(s.get_ref()).unwrap_or_else(|e| {
                    self.r.error(span(s), format!("heartbeats.severity: {e}"));
                    Severity::Critical
                }),
            };
            out.push(crate::config::heartbeat::Heartbeat {
                id: h.id.get_ref().clone(),
                interval,
                grace,
                route: h.route.get_ref().clone(),
                summary: h.summary.clone(),
                severity,
                service: h.service.clone(),
            });
        }
        out
    }
}

impl Validator<'_, '_> {
    /// `[selftest]`; absent: disabled, defaults.
    fn selftest(
        &mut self,
        raw: Option<&super::raw::RawSelftest>,
        daemon: &DaemonConfig,
        schedule_ids: &HashSet<&str>,
    ) -> crate::config::selftest::SelftestConfig {
        use crate::config::selftest::{SelftestConfig, Target};
        use crate::config::test_schedule::TestSchedule;
        let d = SelftestConfig::default();
        let Some(raw) = raw else {
            return d;
        };
        let schedule = raw.schedule.as_ref().and_then(|s| {
            match TestSchedule::parse(s.get_ref(), daemon.time_zone) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.r.error(span(s), format!("selftest.schedule: {e}"));
                    None
                }
            }
        });
        let target = raw.target.as_ref().and_then(|s| {
            let v = s.get_ref().trim();
            if let Some(id) = v.strip_prefix("oncall:") {
                if schedule_ids.contains(id) {
                    Some(Target::OnCall(id.to_string()))
                } else {
                    self.r.error(
                        span(s),
                        format!("selftest.target: no schedule {id:?} (write oncall:<schedule id>)"),
                    );
                    None
                }
            } else {
                match PhoneNumber::parse_e164(v) {
                    Some(n) => Some(Target::Number(n)),
                    None => {
                        self.r.error(
                            span(s),
                            format!("selftest.target: {v:?} is neither an E.164 number (+49...) nor oncall:<schedule id>"),
                        );
                        None
                    }
                }
            }
        });
        let expect_reply_from = raw.expect_reply_from.as_ref().and_then(|s| {
            let n = PhoneNumber::parse_e164(s.get_ref().trim());
            if n.is_none() {
                self.r.error(
                    span(s),
                    format!(
                        "selftest.expect_reply_from: {:?} is not an E.164 number; write + then country code and number",
                        s.get_ref()
                    ),
                );
            }
            n
        });
        if let (Some(s), None) = (&raw.expect_reply_from, &raw.target) {
            self.r.error(
                span(s),
                "selftest.expect_reply_from: needs a target to send the test SMS to",
            );
        }
        let credit_ussd = raw.credit_ussd.as_ref().and_then(|s| {
            let c = s.get_ref().trim().to_string();
            if crate::config::selftest::valid_ussd_code(&c) {
                Some(c)
            } else {
                self.r.error(
                    span(s),
                    format!("selftest.credit_ussd: {c:?} is not a USSD code (digits, * and #, e.g. \"*100#\")"),
                );
                None
            }
        });
        let credit_pattern = match &raw.credit_pattern {
            None => d.credit_pattern.clone(),
            Some(s) => match regex::Regex::new(s.get_ref()) {
                Ok(r) => r,
                Err(e) => {
                    let first = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    self.r.error(
                        span(s),
                        format!("selftest.credit_pattern: not a valid regex: {first}"),
                    );
                    d.credit_pattern.clone()
                }
            },
        };
        if let (Some(s), None) = (&raw.credit_min, &raw.credit_ussd) {
            self.r.error(
                span(s),
                "selftest.credit_min: needs credit_ussd (the code that asks for the balance)",
            );
        }
        SelftestConfig {
            enabled: true,
            schedule,
            target,
            expect_reply_from,
            reply_timeout: self.duration(
                &raw.reply_timeout,
                "selftest.reply_timeout",
                d.reply_timeout,
            ),
            submit_timeout: self.duration(
                &raw.submit_timeout,
                "selftest.submit_timeout",
                d.submit_timeout,
            ),
            delivery_timeout: self.duration(
                &raw.delivery_timeout,
                "selftest.delivery_timeout",
                d.delivery_timeout,
            ),
            credit_ussd,
            credit_pattern,
            credit_min: raw.credit_min.as_ref().map(|s| *s.get_ref()),
            credit_interval: self.duration(
                &raw.credit_interval,
                "selftest.credit_interval",
                d.credit_interval,
            ),
            ussd_timeout: self.duration(&raw.ussd_timeout, "selftest.ussd_timeout", d.ussd_timeout),
            min_signal_dbm: self.int(
                &raw.min_signal_dbm,
                "selftest.min_signal_dbm",
                -140..=-40,
                d.min_signal_dbm,
            ),
            grace: self.duration(&raw.grace, "selftest.grace", d.grace),
            recover: self.duration(&raw.recover, "selftest.recover", d.recover),
            check_interval: self
                .duration(
                    &raw.check_interval,
                    "selftest.check_interval",
                    d.check_interval,
                )
                .max(std::time::Duration::from_millis(100)),
        }
    }
}
