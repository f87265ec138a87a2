//! `[ha]` -> [`HaConfig`]: the pair settings, and the timing rule that keeps a pair from being
//! slower to page than its own escalation policy.
//!
//! A child of the validator so it can use its helpers; kept in its own file so the pair feature
//! touches the shared validator in one place only.

use std::ops::Range;
use std::time::Duration;

use super::{span, RawHa, Validator, S};
use crate::config::policy::Policy;
use crate::config::{
    EtcdAuth, EtcdEndpoint, EtcdTls, HaConfig, DEFAULT_CLAIM_TTL, DEFAULT_ELECTION_TIMEOUT,
    DEFAULT_FALLBACK_AFTER, DEFAULT_TAKEOVER_DELAY,
};

impl Validator<'_, '_> {
    /// Validates `[ha]`. `None` when it is unusable (the errors say why) or when this build has
    /// no pair support: then the table is an error, never silently ignored, because a box that
    /// was meant to share pages with a peer but runs alone would page twice without a word.
    pub(super) fn ha(&mut self, raw: &S<RawHa>, policies: &[Policy]) -> Option<HaConfig> {
        if !cfg!(feature = "ha") {
            self.r.error(
                span(raw),
                "ha: this pagerbox was built without pair support (cargo feature `ha`); \
                 install a build with it, or remove [ha] to run this box alone",
            );
            return None;
        }
        let table = span(raw);
        let h = raw.get_ref();
        let errors_before = self.error_count();

        let name = self.ha_name(h, &table);

        let peer_urls = self.peer_urls(h, &table);

        let etcd_endpoints = self.etcd_endpoints(h, &table);
        let uses_tls = etcd_endpoints.first().is_some_and(EtcdEndpoint::is_tls);

        let etcd_tls = self.etcd_tls(h, uses_tls);
        let etcd_auth = self.etcd_auth(h);

        let fallback_after = self.bounded_duration(
            &h.fallback_after,
            "ha.fallback_after",
            Duration::from_secs(5)..=Duration::from_secs(600),
            DEFAULT_FALLBACK_AFTER,
        );
        let claim_ttl = self.bounded_duration(
            &h.claim_ttl,
            "ha.claim_ttl",
            Duration::from_secs(2)..=Duration::from_secs(300),
            DEFAULT_CLAIM_TTL,
        );
        let election_timeout = self.bounded_duration(
            &h.election_timeout,
            "ha.election_timeout",
            Duration::from_millis(100)..=Duration::from_secs(50),
            DEFAULT_ELECTION_TIMEOUT,
        );
        let takeover_delay = self.bounded_duration(
            &h.takeover_delay,
            "ha.takeover_delay",
            Duration::ZERO..=Duration::from_secs(60),
            DEFAULT_TAKEOVER_DELAY,
        );
        if takeover_delay >= claim_ttl {
            self.r.error(
                h.takeover_delay.as_ref().map_or(table.clone(), span),
                format!(
                    "ha.takeover_delay: {} must be shorter than claim_ttl ({}), or the less \
                     healthy box would wait out a whole lease before it helps",
                    humantime::format_duration(takeover_delay),
                    humantime::format_duration(claim_ttl)
                ),
            );
        }

        let config = HaConfig {
            name,
            peer_urls,
            etcd_endpoints,
            etcd_tls,
            etcd_auth,
            fallback_after,
            claim_ttl,
            election_timeout,
            takeover_delay,
        };
        self.pair_timing(h, &config, policies, table);
        (self.error_count() == errors_before).then_some(config)
    }

    /// `ha.name`: this box's etcd member name.
    fn ha_name(&mut self, h: &RawHa, table: &Option<Range<usize>>) -> String {
        match &h.name {
            Some(n) => {
                self.check_id(n, "ha.name");
                n.get_ref().clone()
            }
            None => {
                self.r.error(
                    table.clone(),
                    "ha.name: missing; name this box as its etcd member is named, e.g. \"a\"",
                );
                String::new()
            }
        }
    }

    /// `ha.peer_urls`: at least one http:// or https:// URL of the peer box.
    fn peer_urls(&mut self, h: &RawHa, table: &Option<Range<usize>>) -> Vec<String> {
        let mut peer_urls = Vec::new();
        match &h.peer_urls {
        Some(list) if list.get_ref().is_empty() => {
            self.r.error(span(list), "ha.peer_urls: names no URL of the peer box");
        }
        Some(list) => {
            for u in list.get_ref() {
                let ok = (u.get_ref().starts_with("http://")
                    || u.get_ref().starts_with("https://"))
                    && u.get_ref().len() > "https://".len();
                if ok {
                    peer_urls.push(u.get_ref().clone());
                } else {
                    self.r.error(
                        span(u),
                        format!(
                            "ha.peer_urls: {:?} is not an http:// or https:// URL",
                            u.get_ref()
                        ),
                    );
                }
            }
        }
        None => self.r.error(
            table.clone(),
            "ha.peer_urls: missing; list the peer box's HTTP URL, e.g. [\"http://192.0.2.2:8080\"]",
        ),
    }
        peer_urls
    }

    /// `ha.etcd_endpoints`: three or more voting members (an odd count), all TLS or none.
    fn etcd_endpoints(&mut self, h: &RawHa, table: &Option<Range<usize>>) -> Vec<EtcdEndpoint> {
        let mut etcd_endpoints = Vec::new();
        match &h.etcd_endpoints {
            Some(list) => {
                for e in list.get_ref() {
                    match EtcdEndpoint::parse(e.get_ref()) {
                        Ok(ep) => etcd_endpoints.push(ep),
                        Err(why) => self.r.error(span(e), format!("ha.etcd_endpoints: {why}")),
                    }
                }
                let n = list.get_ref().len();
                if n < 3 {
                    self.r.error(
                        span(list),
                        format!(
                            "ha.etcd_endpoints: {n} member(s); a pair needs three voting members \
                             (box A, box B and a witness): with two, losing either one stops both"
                        ),
                    );
                } else if n % 2 == 0 {
                    self.r.warning(
                        span(list),
                        format!(
                            "ha.etcd_endpoints: {n} members; an even count survives no more \
                             failures than one member fewer"
                        ),
                    );
                }
                let tls = etcd_endpoints.iter().filter(|e| e.is_tls()).count();
                if tls != 0 && tls != etcd_endpoints.len() {
                    self.r.error(
                        span(list),
                        "ha.etcd_endpoints: mixes http:// and https://; the members of one \
                         cluster speak one or the other",
                    );
                }
            }
            None => self.r.error(
                table.clone(),
                "ha.etcd_endpoints: missing; list the client URLs of box A, box B and the witness",
            ),
        }
        etcd_endpoints
    }

    /// `ha.etcd_username` and `ha.etcd_password_file`: both or neither.
    fn etcd_auth(&mut self, h: &RawHa) -> Option<EtcdAuth> {
        match (&h.etcd_username, &h.etcd_password_file) {
            (Some(u), Some(p)) => self
                .secret_file(p, "ha.etcd_password_file")
                .map(|password| EtcdAuth {
                    username: u.get_ref().clone(),
                    password,
                }),
            (Some(u), None) => {
                self.r.error(
                    span(u),
                    "ha.etcd_username: needs etcd_password_file (the file holding its password)",
                );
                None
            }
            (None, Some(p)) => {
                self.r.error(
                    span(p),
                    "ha.etcd_password_file: needs etcd_username (whose password it is)",
                );
                None
            }
            (None, None) => None,
        }
    }

    /// The pair must notice a lost peer before the shortest escalation wait runs out.
    fn pair_timing(
        &mut self,
        h: &RawHa,
        config: &HaConfig,
        policies: &[Policy],
        table: Option<Range<usize>>,
    ) {
        if let Some((wait, policy, step)) = shortest_wait(policies) {
            if config.worst_silence() >= wait {
                let at = h
                    .fallback_after
                    .as_ref()
                    .or(h.claim_ttl.as_ref())
                    .map_or(table, span);
                self.r.error(
                    at,
                    format!(
                        "ha: fallback_after ({}) + claim_ttl ({}) + election_timeout ({}) = {} \
                         must be shorter than the shortest escalation wait ({} in policy {policy:?} \
                         step {step}), or a step could move on before a box noticed its peer is \
                         gone and paged the previous one",
                        humantime::format_duration(config.fallback_after),
                        humantime::format_duration(config.claim_ttl),
                        humantime::format_duration(config.election_timeout),
                        humantime::format_duration(config.worst_silence()),
                        humantime::format_duration(wait),
                    ),
                );
            }
        }
    }

    fn error_count(&self) -> usize {
        let errors = self.r.diagnostics.iter();
        errors
            .filter(|d| d.level == crate::config::Level::Error)
            .count()
    }

    /// `ha.etcd_ca_file`, `etcd_cert_file` and `etcd_key_file`: files that must exist now, so a
    /// typo fails `pagerbox check` and not the first claim.
    fn etcd_tls(&mut self, h: &RawHa, uses_tls: bool) -> Option<EtcdTls> {
        let mut file = |v: &Option<S<String>>, key: &str| {
            let s = v.as_ref()?;
            let path = self.path(s.get_ref());
            if let Err(e) = std::fs::metadata(&path) {
                self.r.error(
                    span(s),
                    format!("{key}: cannot read {}: {e}", path.display()),
                );
            }
            if !uses_tls {
                self.r.error(
                    span(s),
                    format!("{key}: the etcd endpoints are http://; TLS settings need https://"),
                );
            }
            Some(path)
        };
        let ca_file = file(&h.etcd_ca_file, "ha.etcd_ca_file");
        let cert = file(&h.etcd_cert_file, "ha.etcd_cert_file");
        let key = file(&h.etcd_key_file, "ha.etcd_key_file");
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                self.r.error(
                    h.etcd_cert_file.as_ref().and_then(span),
                    "ha.etcd_cert_file: needs etcd_key_file (the certificate's private key)",
                );
                None
            }
            (None, Some(_)) => {
                self.r.error(
                    h.etcd_key_file.as_ref().and_then(span),
                    "ha.etcd_key_file: needs etcd_cert_file (the certificate it belongs to)",
                );
                None
            }
        };
        if client_cert.is_some() && ca_file.is_none() {
            self.r.error(
                h.etcd_cert_file.as_ref().and_then(span),
                "ha.etcd_cert_file: needs etcd_ca_file too (the CA that signed the etcd members' \
                 certificates; etcd's client certificates come from a private CA)",
            );
        }
        uses_tls.then_some(EtcdTls {
            ca_file,
            client_cert,
        })
    }
}

/// The shortest wait of any escalation step, with its policy id and 1-based step number.
fn shortest_wait(policies: &[Policy]) -> Option<(Duration, &str, usize)> {
    policies
        .iter()
        .flat_map(|p| {
            p.steps
                .iter()
                .enumerate()
                .map(move |(i, s)| (s.wait, p.id.as_str(), i + 1))
        })
        .min_by_key(|(wait, _, _)| *wait)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(text, "t.toml", Path::new("/nonexistent"))
            .map(|l| l.config)
            .map_err(|e| match e {
                ConfigError::Invalid(d) => d.iter().map(|d| d.to_string()).collect(),
                other => vec![other.to_string()],
            })
    }

    /// One user, one policy whose only step waits `wait`, and `ha` appended.
    fn config(wait: &str, ha: &str) -> String {
        format!(
            r#"
[[users]]
id = "alice"
phone = "+4915112345678"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
wait = "{wait}"

[[routes]]
id = "default"
policy = "p"

{ha}"#
        )
    }

    const PAIR: &str = r#"[ha]
name = "a"
peer_urls = ["http://192.0.2.2:8080"]
etcd_endpoints = ["http://192.0.2.1:2379", "http://192.0.2.2:2379", "http://192.0.2.3:2379"]
"#;

    #[test]
    fn single_box_has_no_pair() {
        assert!(parse(&config("5m", "")).unwrap().ha.is_none());
    }

    #[cfg(not(feature = "ha"))]
    #[test]
    fn a_build_without_pair_support_refuses_ha_at_its_line() {
        let errs = parse(&config("5m", PAIR)).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("t.toml:16:"), "{errs:?}");
        assert!(errs[0].contains("without pair support"), "{errs:?}");
    }

    #[cfg(feature = "ha")]
    mod with_pair_support {
        use std::time::Duration;

        use super::*;

        #[test]
        fn a_pair_loads_with_defaults() {
            let ha = parse(&config("5m", PAIR)).unwrap().ha.unwrap();
            assert_eq!(ha.name, "a");
            assert_eq!(ha.peer_urls, ["http://192.0.2.2:8080"]);
            assert_eq!(ha.etcd_endpoints.len(), 3);
            assert_eq!(ha.etcd_endpoints[2].as_str(), "http://192.0.2.3:2379");
            assert!(ha.etcd_tls.is_none() && ha.etcd_auth.is_none());
            assert_eq!(ha.fallback_after, Duration::from_secs(30));
            assert_eq!(ha.claim_ttl, Duration::from_secs(10));
            assert_eq!(ha.worst_silence(), Duration::from_secs(41));
        }

        /// Each broken `[ha]` gives its error at the line and column of the offending value.
        #[test]
        fn broken_pairs_are_refused_at_the_value() {
            let cases: &[(&str, &str, &str)] = &[
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"http://b:2379\"]\n",
                    "t.toml:19:18:",
                    "a pair needs three voting members",
                ),
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"http://b:2379\", \"http://w:2379\"]\n",
                    "t.toml:18:14:",
                    "not an http:// or https:// URL",
                ),
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"https://b:2379\", \"http://w\"]\n",
                    "t.toml:19:54:",
                    "has no port",
                ),
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"https://b:2379\", \"http://w:2379\"]\n",
                    "t.toml:19:18:",
                    "mixes http:// and https://",
                ),
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"http://b:2379\", \"http://w:2379\"]\netcd_username = \"pagerbox\"\n",
                    "t.toml:20:17:",
                    "needs etcd_password_file",
                ),
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"http://b:2379\", \"http://w:2379\"]\netcd_ca_file = \"ca.pem\"\n",
                    "t.toml:20:16:",
                    "TLS settings need https://",
                ),
                (
                    "[ha]\nname = \"a\"\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"http://b:2379\", \"http://w:2379\"]\nclaim_ttl = \"1h\"\n",
                    "t.toml:20:13:",
                    "ha.claim_ttl: 1h is out of range",
                ),
                (
                    "[ha]\npeer_urls = [\"http://b:8080\"]\netcd_endpoints = [\"http://a:2379\", \"http://b:2379\", \"http://w:2379\"]\n",
                    "t.toml:16:",
                    "ha.name: missing",
                ),
            ];
            for (ha, at, what) in cases {
                let errs = parse(&config("5m", ha)).unwrap_err();
                assert!(
                    errs.iter().any(|e| e.starts_with(at) && e.contains(what)),
                    "expected {at} {what:?} for\n{ha}\ngot {errs:#?}"
                );
            }
        }

        #[test]
        fn timing_rule_holds_against_the_shortest_escalation_wait() {
            // 30 s + 10 s + 1 s = 41 s: a 40 s step is too short, a 42 s step is fine.
            let errs = parse(&config("40s", PAIR)).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(errs[0].starts_with("t.toml:16:"), "{errs:?}");
            assert!(
                errs[0].contains("= 41s must be shorter than the shortest escalation wait (40s in policy \"p\" step 1)"),
                "{errs:?}"
            );
            assert!(parse(&config("42s", PAIR)).is_ok());
            // Shortening the fallback makes the 40 s step possible, and the error points at it.
            let tuned = format!("{PAIR}fallback_after = \"20s\"\n");
            assert!(parse(&config("40s", &tuned)).is_ok());
            let too_long = format!("{PAIR}fallback_after = \"35s\"\n");
            let errs = parse(&config("45s", &too_long)).unwrap_err();
            assert!(errs[0].starts_with("t.toml:20:18:"), "{errs:?}");
        }

        /// The shipped examples load, and the two boxes differ in their own addresses only.
        #[test]
        fn pair_examples_pass_check() {
            let a = parse(include_str!("../../../config/ha-a.example.toml")).unwrap();
            let b = parse(include_str!("../../../config/ha-b.example.toml")).unwrap();
            let (ha_a, ha_b) = (a.ha.unwrap(), b.ha.unwrap());
            assert_eq!((ha_a.name.as_str(), ha_b.name.as_str()), ("a", "b"));
            assert_eq!(ha_a.etcd_endpoints, ha_b.etcd_endpoints);
            assert_eq!(ha_a.peer_urls, ["http://192.0.2.2:8080"]);
            assert_eq!(ha_b.peer_urls, ["http://192.0.2.1:8080"]);
            assert_eq!(a.policies[0].steps[0].wait, b.policies[0].steps[0].wait);
        }

        #[test]
        fn endpoint_urls_are_checked() {
            use crate::config::EtcdEndpoint;
            assert!(EtcdEndpoint::parse("https://10.0.0.1:2379/").is_ok_and(|e| e.is_tls()));
            assert_eq!(
                EtcdEndpoint::parse("http://w:2379/").unwrap().as_str(),
                "http://w:2379"
            );
            for bad in [
                "10.0.0.1:2379",
                "http://:2379",
                "http://w:0",
                "http://w:2379/v3",
                "http://w:x",
            ] {
                assert!(EtcdEndpoint::parse(bad).is_err(), "{bad}");
            }
        }
    }
}
