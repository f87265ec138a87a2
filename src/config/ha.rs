//! `[ha]`: the validated settings of a box that is one half of a pair.
//!
//! These types are compiled into every build, so that `pagerbox check` can read a pair's config
//! anywhere and a build without pair support can refuse `[ha]` at its line instead of ignoring
//! it (a box that believes it has a peer and has none would be a single box that looks like a
//! pair). The coordination itself lives in the `ha` module, behind the cargo feature `ha`.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;

/// Default time a box may go without renewing its lease before it pages alone.
pub const DEFAULT_FALLBACK_AFTER: Duration = Duration::from_secs(30);
/// Default lease TTL: how long a claim outlives the box that made it.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(10);
/// Default etcd election timeout (etcd's own default, `--election-timeout=1000`).
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Default head start of the healthier box before the other tries to claim a page.
pub const DEFAULT_TAKEOVER_DELAY: Duration = Duration::from_secs(2);

/// `[ha]`: who this box is, who its peer is and where the coordination store lives.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// This box's member name, as in the etcd cluster and the peer's config.
    pub name: String,
    /// The peer's HTTP base URLs (its intake and status page), for links and the status page.
    pub peer_urls: Vec<String>,
    /// The etcd client URLs of all three voting members (box A, box B, the witness).
    pub etcd_endpoints: Vec<EtcdEndpoint>,
    /// TLS towards etcd; `None` for plain HTTP endpoints.
    pub etcd_tls: Option<EtcdTls>,
    /// etcd user and password, when etcd runs with authentication on.
    pub etcd_auth: Option<EtcdAuth>,
    /// How long the box may fail to renew its lease before it stops claiming and pages alone.
    pub fallback_after: Duration,
    /// The lease TTL: a claim of a box that died is free again after this long.
    pub claim_ttl: Duration,
    /// The etcd cluster's election timeout: how long a lost leader takes to be replaced.
    pub election_timeout: Duration,
    /// How long the less healthy box waits before it tries to claim a page itself.
    pub takeover_delay: Duration,
}

/// One etcd client URL, already checked to be `http://` or `https://` with a host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEndpoint(String);

impl EtcdEndpoint {
    /// Checks an etcd client URL: a scheme of `http` or `https`, a host, a port and no path.
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!(
                "{s:?} has a path; write the client URL only, e.g. \"https://192.0.2.1:2379\""
            ));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} has no port (etcd clients use 2379)"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "{s:?} needs a host and a port, e.g. \"https://192.0.2.1:2379\""
            ));
        }
        Ok(Self(s.strip_suffix('/').unwrap_or(s).to_string()))
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the endpoint speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.0.starts_with("https://")
    }
}

/// TLS towards etcd: the CA that signed the members' certificates, and this box's client
/// certificate when etcd asks for one (`--client-cert-auth`).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// etcd's own user and password authentication.
#[derive(Debug, Clone)]
pub struct EtcdAuth {
    pub username: String,
    pub password: Secret,
}

impl HaConfig {
    /// The longest a due page can stay unsent while this box still waits for its peer: the
    /// box notices it lost etcd only after `fallback_after`, the claim of a dead peer lives for
    /// `claim_ttl`, and etcd needs `election_timeout` to elect a new leader. Escalation steps
    /// shorter than this could move on before the page of the previous step went out.
    pub fn worst_silence(&self) -> Duration {
        self.fallback_after + self.claim_ttl + self.election_timeout
    }
}
