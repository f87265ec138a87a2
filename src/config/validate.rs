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

#[path = "validate/daemon.rs"]
mod daemon;
#[path = "validate/email.rs"]
mod email;
#[path = "validate/gpio.rs"]
mod gpio;
#[path = "validate/ha.rs"]
mod ha;
#[path = "validate/heartbeats.rs"]
mod heartbeats;
#[path = "validate/integrations.rs"]
mod integrations;
#[path = "validate/modem.rs"]
mod modem;
#[path = "validate/outbound.rs"]
mod outbound;
#[path = "validate/paging.rs"]
mod paging;
#[path = "validate/routes.rs"]
mod routes;
#[path = "validate/schedules.rs"]
mod schedules;
#[path = "validate/selftest.rs"]
mod selftest;
#[path = "validate/silences.rs"]
mod silences;
#[path = "validate/standby.rs"]
mod standby;
#[path = "validate/users.rs"]
mod users;

struct Validator<'r, 'a> {
    r: &'r mut Reporter<'a>,
    base: &'r Path,
    /// Builds the email sender as the daemon will (see [`EmailProbe`]).
    email_probe: EmailProbe,
}

/// "`key`: `value` is out of range (`start`..=`end`)", and what is used instead when it is
/// brought into range.
fn out_of_range(
    key: &str,
    value: &str,
    range: &std::ops::RangeInclusive<Duration>,
    used: Option<Duration>,
) -> String {
    let bounds = format!(
        "{}..={}",
        humantime::format_duration(*range.start()),
        humantime::format_duration(*range.end())
    );
    match used {
        Some(u) => format!(
            "{key}: {value} is out of range ({bounds}); {} is used",
            humantime::format_duration(u)
        ),
        None => format!("{key}: {value} is out of range ({bounds})"),
    }
}

fn span<T>(s: &S<T>) -> Option<Range<usize>> {
    Some(s.span())
}

/// The longest a page may be put off by the config: a route's pre-page delay, a step's wait, a
/// person's rule. A day is already more than anyone means; beyond it is a typo, and a page due
/// in months shows nothing overdue while it waits.
pub(super) const MAX_PAGE_DELAY: Duration = Duration::from_secs(86_400);

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
                let message = out_of_range(key, s.get_ref(), &range, None);
                self.r.error(span(s), message);
                default
            }
            _ => d,
        }
    }

    /// A delay before a page ([`MAX_PAGE_DELAY`]): brought into range with a warning (a box
    /// whose config carried a longer one still starts and pages), and refused when written in
    /// months (`5M` is five minutes mistyped; humantime reads months).
    fn page_delay(&mut self, v: &Option<S<String>>, key: &str, default: Duration) -> Duration {
        if let Some(s) = v
            .as_ref()
            .filter(|s| crate::config::counts_months(s.get_ref()))
        {
            self.r.error(
                span(s),
                format!(
                    "{key}: {:?}: M means months; write m for minutes (\"5m\")",
                    s.get_ref()
                ),
            );
            return default;
        }
        self.clamped_duration(v, key, Duration::ZERO..=MAX_PAGE_DELAY, default)
    }

    /// [`Self::duration`], brought into `range` with a warning at the value when it is outside:
    /// for timings whose extremes blunt the box's own checks (a modem timeout of zero, a hold
    /// of days) but which a config that worked before may carry, so the box still starts and
    /// pages with the nearest sane value instead of refusing to run.
    fn clamped_duration(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        range: std::ops::RangeInclusive<Duration>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(v, key, default);
        let clamped = d.clamp(*range.start(), *range.end());
        if let Some(s) = v.as_ref().filter(|_| clamped != d) {
            let message = out_of_range(key, s.get_ref(), &range, Some(clamped));
            self.r.warning(span(s), message);
        }
        clamped
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
        let http = self.http(&raw.http);
        let udp = self.udp(&raw.udp);
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

    /// `[http]`: the listener, and the limits that keep a slow or large request from starving it.
    fn http(&mut self, raw: &RawHttp) -> HttpConfig {
        // The token itself is read where it is used (so it can be rotated on reload); the file
        // is read here too, so `check` reports at its line what `run` would refuse to start
        // with. A warning, not an error: the CLI loads this config to find the daemon, as users
        // who may not read the daemon's token file (and give their own with --token-file).
        let token_file = raw.token_file.as_ref().map(|s| {
            let path = self.path(s.get_ref());
            if let Err(e) = crate::config::read_secret(&path) {
                self.r.warning(
                    span(s),
                    format!(
                        "http.token_file: cannot read {}: {e} (`pagerbox run` will not start without it)",
                        path.display()
                    ),
                );
            }
            path
        });
        HttpConfig {
            listen: self.addr(&raw.listen, "http.listen", DEFAULT_HTTP_LISTEN),
            token_file,
            max_body_bytes: self.int(
                &raw.max_body_bytes,
                "http.max_body_bytes",
                1024..=16 * 1024 * 1024,
                DEFAULT_MAX_BODY_BYTES,
            ),
            header_timeout: self.bounded_duration(
                &raw.header_timeout,
                "http.header_timeout",
                Duration::from_secs(1)..=Duration::from_secs(300),
                super::DEFAULT_HEADER_TIMEOUT,
            ),
            body_timeout: self.bounded_duration(
                &raw.body_timeout,
                "http.body_timeout",
                Duration::from_secs(1)..=Duration::from_secs(600),
                super::DEFAULT_BODY_TIMEOUT,
            ),
            max_connections: self.int(
                &raw.max_connections,
                "http.max_connections",
                16..=60_000,
                super::DEFAULT_MAX_CONNECTIONS,
            ),
        }
    }

    /// `[udp]`: the datagram listener, and whether unsigned datagrams may trigger.
    fn udp(&mut self, raw: &RawUdp) -> UdpConfig {
        UdpConfig {
            enabled: raw.enabled.unwrap_or(true),
            listen: self.addr(&raw.listen, "udp.listen", DEFAULT_UDP_LISTEN),
            unauthenticated: match self.one_of(
                &raw.unauthenticated,
                "udp.unauthenticated",
                &["refuse", "trigger-only"],
                "refuse",
            ) {
                "trigger-only" => super::UdpUnauthenticated::TriggerOnly,
                _ => super::UdpUnauthenticated::Refuse,
            },
        }
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
        // The same reader as every other local time, with its year bound (0-9999).
        let parsed = crate::schedule::parse_local(t);
        if parsed.is_none() {
            self.r.error(
                span(s),
                format!(
                    "{key}: {t:?} is not a local time in the years 0-9999; write \"2026-01-05T09:00\""
                ),
            );
        }
        parsed
    }
}
