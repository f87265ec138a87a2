//! The etcd adapter: the few requests the pair needs, over etcd's v3 JSON gateway.
//!
//! Blocking (ureq), like the CLI's client: the coordinator calls it from a blocking thread.
//! Every request has a short timeout and moves on to the next member when one does not answer,
//! so a dead member costs one timeout, well inside a lease TTL. Keys and values are base64 on
//! the wire, and 64-bit numbers come back as JSON strings; both are handled here so that
//! nothing above this module sees the gateway's encoding.
//!
//! Layout under the prefix (`pagerbox/`):
//! - `page/<id>/claim`: the member name of the box sending it, on that box's lease;
//! - `page/<id>/sent`: the member name of the box that sent it, on a retention lease
//!   ([`SENT_RETENTION`]), also when written on heal;
//! - `incident/<key>/ack`, `incident/<key>/resolve`, `incident/<key>/intake`: from either box,
//!   persistent until the box that did not write the resolve has read it, then on its retention
//!   lease with the incident's `start` ([`Etcd::retire_incident`] says why that is safe);
//! - `health/<name>`: a box's published paging health, on its lease;
//! - `config-hash/<name>`: a box's escalation config hash, on its lease;
//! - `start/<dedup key>`: the canonical start of the open incident with that key, persistent
//!   until the incident is retired (or replaced by a later incident's start);
//! - `override/<key>`: a runtime override, on a lease of its own that ends a retention after
//!   the override does;
//! - `retention/<lease id>`: when that retention lease was granted, on the lease itself, so
//!   that either box can revoke it on time ([`Etcd::retention_leases`]).

use std::io::{BufReader, Read as _};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::decide::{
    canonical_start, incident_identity, Health, PageId, PageView, StartChoice, StartRecord,
};
use crate::config::{EtcdAuth, EtcdTls, HaConfig};

/// How long one request to one member may take before the next member is tried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP connect to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The key prefix of everything the pair writes.
const PREFIX: &str = "pagerbox/";

/// The TTL of the lease `sent` records are put on, one lease per [`RETENTION_ROTATION`]: a
/// record lives between six and seven days. A `sent` record only has to outlive the peer's
/// next look at the same page (seconds: the claim's TTL, or the peer's next ask), and it is
/// the one record written per page, so without a lease etcd would grow by about 100 bytes a
/// page for ever. The records of a resolved incident go on the same lease once the peer has
/// read the resolve ([`Etcd::retire_incident`]).
pub const SENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one retention lease takes new records before the next is granted.
pub const RETENTION_ROTATION: Duration = Duration::from_secs(24 * 3600);

/// Why a request to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No member answered; the last one's error is kept.
    #[error("no etcd member answered {path}; last tried {endpoint}: {source}")]
    Unreachable {
        path: String,
        endpoint: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// A member answered with an error status (a refused request, not a network problem).
    #[error("etcd {endpoint} refused {path}: HTTP {status}: {body}")]
    Refused {
        path: String,
        endpoint: String,
        status: u16,
        body: String,
    },
    /// The answer was not what the gateway documents.
    #[error("etcd answer to {path} unreadable: {why}")]
    Decode { path: String, why: String },
    /// The lease ran out (the box was cut off longer than the TTL): its claims are gone.
    #[error("etcd lease {0:x} has expired")]
    LeaseExpired(i64),
    /// A TLS file named in `[ha]` could not be used.
    #[error("ha TLS: {path}: {why}")]
    Tls { path: String, why: String },
}

impl Error {
    /// Whether trying again later can succeed (the cluster or the network may come back). A
    /// refused request or an expired lease needs a different request, not a retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
            || matches!(self, Error::Refused { status, .. } if *status >= 500)
    }

    /// Whether etcd refused a write because the lease named in it does not exist (revoked, run
    /// out, or gone with a cluster restored from a backup): writing without that lease can
    /// work, writing with it never will. A retryable error (a leader election answers 5xx) is
    /// never this: the lease is most likely still there.
    pub fn is_lease_gone(&self) -> bool {
        matches!(self, Error::Refused { status, body, .. }
            if *status < 500 && body.contains("lease not found"))
    }
}

/// What a `retention/<lease id>` mark says about its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseMark {
    /// When the lease was granted, by the granting box's clock.
    pub granted_ms: i64,
    /// Until when its records are kept (a shared override's lease); `None` for a retention
    /// lease, which keeps them [`SENT_RETENTION`] after its grant.
    pub end_ms: Option<i64>,
}

impl LeaseMark {
    fn parse(value: &str) -> Option<LeaseMark> {
        let mut parts = value.split(' ');
        let granted_ms = parts.next()?.parse().ok()?;
        let end_ms = match parts.next() {
            Some(end) => Some(end.parse().ok()?),
            None => None,
        };
        parts
            .next()
            .is_none()
            .then_some(LeaseMark { granted_ms, end_ms })
    }
}

/// How many keys one read of the history asks for at most ([`Etcd::written_since`]).
const READ_PAGE: usize = 500;

/// A lease id, as etcd numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseId(pub i64);

/// The outcome of a claim transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claim is ours: send the page.
    Won,
    /// Someone else holds it, or it is sent, acked or resolved: what etcd holds, to decide on.
    Lost(PageView),
}

/// The outcome of [`Etcd::claim_with_start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartClaim {
    /// This box's start and its claim are in etcd: send the page.
    Won,
    /// Not written: the start etcd holds (`None`: none), and what it holds about the page under
    /// the identity with this box's own start.
    Failed {
        start_ms: Option<i64>,
        view: PageView,
    },
}

/// What a record written by the peer asks of this box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    Ack,
    Resolve,
    /// An alert that reached only the peer: open the same incident here.
    Intake,
    /// A runtime override the peer added or deleted (`identity` is the override's pair-wide key).
    Override,
}

/// An ack, resolve or alert the peer took in, to apply here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The pair-wide incident identity ([`incident_identity`]).
    pub identity: String,
    pub kind: PeerKind,
    /// The box that wrote it.
    pub by: String,
    /// For [`PeerKind::Intake`] the alert, for [`PeerKind::Override`] the override, as the
    /// peer shared it (`ha::share`).
    pub alert: Option<String>,
}

/// What [`Etcd::peer_records`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRead {
    /// The peer's records, in the order they were written.
    pub records: Vec<PeerRecord>,
    /// The revision to ask from next time.
    pub revision: i64,
    /// Incidents whose resolve, written by the peer, is not on a retention lease yet: read
    /// here now, so [`Etcd::retire_incident`] may put their records on one.
    pub to_retire: Vec<String>,
}

/// Whether both boxes run the same escalation config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigAgreement {
    Agreed,
    /// The hash in etcd is another box's; coordination must stop, loudly.
    Mismatch {
        theirs: String,
    },
}

/// A client of the pair's etcd cluster.
pub struct Etcd {
    agent: ureq::Agent,
    /// The TLS settings the agent was built with, for [`Etcd::second`].
    tls: Option<Arc<rustls::ClientConfig>>,
    endpoints: Vec<String>,
    /// The member that answered last; tried first next time.
    current: usize,
    auth: Option<EtcdAuth>,
    token: Option<String>,
    /// Requests sent so far, for the page path's log line (how many round trips a page cost).
    requests: u64,
}

impl Etcd {
    /// A client for the endpoints in `[ha]`, with its TLS files loaded now so that a bad file
    /// fails at start, not at the first page.
    pub fn new(cfg: &HaConfig) -> Result<Self, Error> {
        let tls = match &cfg.etcd_tls {
            Some(tls) if tls.ca_file.is_some() || tls.client_cert.is_some() => {
                Some(tls_config(tls)?)
            }
            _ => None,
        };
        Ok(Self {
            agent: agent(tls.clone()),
            tls,
            endpoints: cfg
                .etcd_endpoints
                .iter()
                .map(|e| e.as_str().to_string())
                .collect(),
            current: 0,
            auth: cfg.etcd_auth.clone(),
            token: None,
            requests: 0,
        })
    }

    /// Another client to the same members with its own connections, for a thread whose
    /// requests must not wait behind this one's (the page path behind the lease's renewals).
    pub fn second(&self) -> Self {
        Self {
            agent: agent(self.tls.clone()),
            tls: self.tls.clone(),
            endpoints: self.endpoints.clone(),
            current: self.current,
            auth: self.auth.clone(),
            token: None,
            requests: 0,
        }
    }

    /// How many requests this client has sent (each try of each member counts).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// POSTs `body` to `path`, trying each member once from the one that answered last; with
    /// authentication on, gets a token first and once more when a member rejects it.
    fn post(&mut self, path: &str, body: &Value) -> Result<Value, Error> {
        if self.auth.is_some() && self.token.is_none() {
            self.authenticate()?;
        }
        match self.post_raw(path, body) {
            Err(Error::Refused { status: 401, .. }) if self.auth.is_some() => {
                self.authenticate()?;
                self.post_raw(path, body)
            }
            other => other,
        }
    }

    fn authenticate(&mut self) -> Result<(), Error> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let body = json!({"name": auth.username, "password": auth.password.expose()});
        self.token = None;
        let answer = self.post_raw("/v3/auth/authenticate", &body)?;
        let token = answer["token"].as_str().ok_or_else(|| Error::Decode {
            path: "/v3/auth/authenticate".into(),
            why: "no token".into(),
        })?;
        self.token = Some(token.to_string());
        Ok(())
    }

    fn post_raw(&mut self, path: &str, body: &Value) -> Result<Value, Error> {
        let n = self.endpoints.len();
        let mut last = None;
        for i in 0..n {
            let idx = (self.current + i) % n;
            let endpoint = &self.endpoints[idx];
            self.requests += 1;
            let mut req = self.agent.post(&format!("{endpoint}{path}"));
            if let Some(t) = &self.token {
                req = req.set("Authorization", t);
            }
            match req.send_json(body.clone()) {
                Ok(resp) => {
                    self.current = idx;
                    return read_answer(resp, path);
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let body = resp.into_string().unwrap_or_default();
                    let refused = Error::Refused {
                        path: path.into(),
                        endpoint: endpoint.clone(),
                        status,
                        body: body.chars().take(300).collect(),
                    };
                    // A member without a leader answers 5xx: another member may have one.
                    if status < 500 {
                        return Err(refused);
                    }
                    last = Some(refused);
                }
                Err(e) => {
                    last = Some(Error::Unreachable {
                        path: path.into(),
                        endpoint: endpoint.clone(),
                        source: Box::new(e),
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Decode {
            path: path.into(),
            why: "no endpoints configured".into(),
        }))
    }

    /// Grants this box's session lease.
    pub fn grant_lease(&mut self, ttl: Duration) -> Result<LeaseId, Error> {
        let path = "/v3/lease/grant";
        let answer = self.post(path, &json!({"TTL": ttl.as_secs().max(1).to_string()}))?;
        int(&answer["ID"], path).map(LeaseId)
    }

    /// Renews the lease once; [`Error::LeaseExpired`] when it is gone, so the caller grants a
    /// new one (and knows its claims are gone with the old).
    pub fn keep_alive(&mut self, lease: LeaseId) -> Result<Duration, Error> {
        let path = "/v3/lease/keepalive";
        let answer = self.post(path, &json!({"ID": lease.0.to_string()}))?;
        let result = &answer["result"];
        let ttl = match &result["TTL"] {
            Value::Null => 0,
            v => int(v, path)?,
        };
        if ttl <= 0 {
            return Err(Error::LeaseExpired(lease.0));
        }
        Ok(Duration::from_secs(ttl as u64))
    }

    /// Revokes the lease: on a clean stop, this box's claims and health go at once instead of
    /// when the TTL runs out, so the peer takes over without waiting.
    pub fn revoke_lease(&mut self, lease: LeaseId) -> Result<(), Error> {
        self.post("/v3/lease/revoke", &json!({"ID": lease.0.to_string()}))?;
        Ok(())
    }

    /// Records that retention lease `lease` was granted at `granted_ms`, on the lease itself.
    pub fn mark_retention(&mut self, lease: LeaseId, granted_ms: i64) -> Result<(), Error> {
        self.put(
            &format!("{PREFIX}retention/{}", lease.0),
            &granted_ms.to_string(),
            Some(lease),
        )
    }

    /// Records that the lease of a shared override, `lease`, was granted at `granted_ms` to
    /// keep the override until `end_ms`. The value (two numbers) does not read as a plain
    /// retention mark, so a box that knows only those leaves it alone.
    pub fn mark_override_lease(
        &mut self,
        lease: LeaseId,
        granted_ms: i64,
        end_ms: i64,
    ) -> Result<(), Error> {
        self.put(
            &format!("{PREFIX}retention/{}", lease.0),
            &format!("{granted_ms} {end_ms}"),
            Some(lease),
        )
    }

    /// Every retention lease either box marked ([`Etcd::mark_retention`],
    /// [`Etcd::mark_override_lease`]) and still alive, with its mark; marks that do not read
    /// are left out.
    pub fn retention_leases(&mut self) -> Result<Vec<(LeaseId, LeaseMark)>, Error> {
        let prefix = format!("{PREFIX}retention/");
        let end = format!("{PREFIX}retention0");
        let answer = self.post(
            "/v3/kv/range",
            &json!({"key": b64(&prefix), "range_end": b64(&end)}),
        )?;
        Ok(answer["kvs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| {
                let key = decode(&kv["key"]);
                let lease = key.strip_prefix(prefix.as_str())?.parse().ok()?;
                Some((LeaseId(lease), LeaseMark::parse(&decode(&kv["value"]))?))
            })
            .collect())
    }

    /// Tries to claim a page in one transaction: if there is no claim, no `sent`, no `ack` and
    /// no `resolve` for it, put this box's claim on its lease. Otherwise reads, in the same
    /// revision, what is there, so the caller can decide without a second round trip.
    pub fn claim(
        &mut self,
        page: &PageId,
        incident: &str,
        me: &str,
        lease: LeaseId,
    ) -> Result<Claim, Error> {
        let keys = PageKeys::new(page, incident);
        let absent = |k: &str| json!({"key": b64(k), "target": "VERSION", "result": "EQUAL", "version": "0"});
        let body = json!({
            "compare": [absent(&keys.claim), absent(&keys.sent), absent(&keys.ack), absent(&keys.resolve)],
            "success": [{"request_put": {"key": b64(&keys.claim), "value": b64(me), "lease": lease.0.to_string()}}],
            "failure": keys.ranges(),
        });
        let path = "/v3/kv/txn";
        let answer = self.post(path, &body)?;
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(Claim::Won);
        }
        Ok(Claim::Lost(view_from(&answer, 0, path)?))
    }

    /// What etcd holds about a page now.
    pub fn page_view(&mut self, page: &PageId, incident: &str) -> Result<PageView, Error> {
        let keys = PageKeys::new(page, incident);
        let path = "/v3/kv/txn";
        let answer = self.post(path, &json!({"success": keys.ranges()}))?;
        view_from(&answer, 0, path)
    }

    /// Records that this box sent the page and drops its claim, in one transaction, so there is
    /// no instant where the page looks neither claimed nor sent. With `retention`, the record
    /// lives on that lease and goes with it (see [`SENT_RETENTION`]); without, it stays.
    pub fn mark_sent(
        &mut self,
        page: &PageId,
        incident: &str,
        me: &str,
        retention: Option<LeaseId>,
    ) -> Result<(), Error> {
        let keys = PageKeys::new(page, incident);
        let mut sent = json!({"key": b64(&keys.sent), "value": b64(me)});
        if let Some(lease) = retention {
            sent["lease"] = json!(lease.0.to_string());
        }
        self.post(
            "/v3/kv/txn",
            &json!({"success": [
                {"request_put": sent},
                {"request_delete_range": {"key": b64(&keys.claim)}},
            ]}),
        )?;
        Ok(())
    }

    /// Records a page sent while this box was alone (it held no claim), on heal; with
    /// `retention` on that lease, like [`Etcd::mark_sent`].
    pub fn mark_sent_alone(
        &mut self,
        page: &PageId,
        me: &str,
        retention: Option<LeaseId>,
    ) -> Result<(), Error> {
        self.put(&format!("{PREFIX}page/{page}/sent"), me, retention)
    }

    /// Gives a claim back unsent (this box's modem failed), so the peer takes the page now
    /// rather than when the lease runs out. Only our own claim is deleted.
    pub fn release(&mut self, page: &PageId, incident: &str, me: &str) -> Result<(), Error> {
        let keys = PageKeys::new(page, incident);
        self.post(
            "/v3/kv/txn",
            &json!({
                "compare": [{"key": b64(&keys.claim), "target": "VALUE", "result": "EQUAL", "value": b64(me)}],
                "success": [{"request_delete_range": {"key": b64(&keys.claim)}}],
            }),
        )?;
        Ok(())
    }

    /// Records an ack made on this box; from now on no claim on the incident's pages succeeds.
    /// Not written once the incident is resolved in etcd ([`Etcd::put_unless_resolved`]).
    pub fn publish_ack(&mut self, incident: &str, by: &str) -> Result<(), Error> {
        self.put_unless_resolved(incident, "ack", by)
    }

    /// Withdraws an incident's ack: it went back to triggered here (its route's ack timeout ran
    /// out, or someone asked to escalate it now). Every claim compares the ack, so an ack left
    /// in place would make both boxes drop every page of the escalation that follows.
    /// Deleting a key that is not there is not an error.
    pub fn retract_ack(&mut self, incident: &str) -> Result<(), Error> {
        let key = format!("{PREFIX}incident/{incident}/ack");
        self.post("/v3/kv/deleterange", &json!({"key": b64(&key)}))?;
        Ok(())
    }

    /// Records a resolve made on this box, with when it happened: a box that later sees an
    /// incident with the same key starting after it knows that one is new.
    pub fn publish_resolve(&mut self, incident: &str, by: &str, at_ms: i64) -> Result<(), Error> {
        let value = json!({"by": by, "at_ms": at_ms}).to_string();
        self.put(
            &format!("{PREFIX}incident/{incident}/resolve"),
            &value,
            None,
        )
    }

    /// Shares an alert that reached only this box under its incident's pair-wide name, so the
    /// peer opens the same incident (and can page it if this box dies).
    /// Not written once the incident is resolved in etcd ([`Etcd::put_unless_resolved`]).
    pub fn publish_intake(&mut self, incident: &str, by: &str, alert: &str) -> Result<(), Error> {
        let value = json!({"by": by, "alert": alert}).to_string();
        self.put_unless_resolved(incident, "intake", &value)
    }

    /// Writes `incident/<incident>/<kind>`, persistent, in one transaction with the check that
    /// the incident has no resolve. A resolve stops every claim and closes the incident on the
    /// peer on its own, so an ack or a shared alert written after it (a heal publishing what was
    /// done alone under a name the peer resolved meanwhile) would tell nobody anything, and it
    /// would outlive the resolve's retention ([`Etcd::retire_incident`]): a shared alert without
    /// its resolve re-opens the incident on a box reading the history.
    fn put_unless_resolved(
        &mut self,
        incident: &str,
        kind: &str,
        value: &str,
    ) -> Result<(), Error> {
        let resolve = format!("{PREFIX}incident/{incident}/resolve");
        let key = format!("{PREFIX}incident/{incident}/{kind}");
        self.post(
            "/v3/kv/txn",
            &json!({
                "compare": [{"key": b64(&resolve), "target": "VERSION", "result": "EQUAL", "version": "0"}],
                "success": [{"request_put": {"key": b64(&key), "value": b64(value)}}],
            }),
        )?;
        Ok(())
    }

    /// Puts the records of a resolved incident (its `resolve`, `ack`, `intake`, and its
    /// `start` while that still names it) on the retention lease `retention`, in one
    /// transaction, so they are deleted together when the lease ends ([`SENT_RETENTION`]).
    /// Nothing is written when the incident has no resolve.
    ///
    /// Called by the box that did *not* write the resolve, once it has read it. Why that is
    /// safe:
    /// - every claim compares the incident's `ack` and `resolve` (and `start`, for the first
    ///   claim). Both boxes now hold the incident resolved, the writer since it wrote it and
    ///   this box since it read it: neither has a page of it left to claim. A box that was
    ///   alone or off when the peer resolved has not read the resolve, so nothing is retired
    ///   until it is back and has read it (a pair whose other box never comes back keeps them);
    /// - the lease then keeps them for six to seven more days, for a box that restarts and
    ///   reads the history before it applied them;
    /// - the `intake` goes in the same revision as the `resolve`, never after it: a box reading
    ///   the history opens a shared alert only while no resolve of it is there. Later writes
    ///   cannot leave one behind: an ack or intake is not written once a resolve exists
    ///   ([`Etcd::put_unless_resolved`]), and a resolve written again (a heal) is persistent
    ///   and read, and retired, by the other box once more;
    /// - the `start` is compared by its value, so a later incident's start that replaced it is
    ///   kept. Without a start, the next incident with the key writes its own, as after a
    ///   resolve.
    ///
    /// Keys are rewritten with their own values (`ignore_value`), each only if it exists: a
    /// put of a missing key with `ignore_value` would fail the whole transaction. The rewrite
    /// makes them new to [`Etcd::peer_records`] once more: read again, a record on a lease is
    /// not listed for retiring again, the shared alert comes with its resolve (dropped), and
    /// an ack or resolve of an incident closed already changes nothing.
    pub fn retire_incident(&mut self, incident: &str, retention: LeaseId) -> Result<(), Error> {
        self.retire_incidents(&[incident], retention)
    }

    /// [`Etcd::retire_incident`] for several incidents in one transaction, one write to the
    /// members' disks instead of one each. Each incident is a transaction of its own within it,
    /// so one whose resolve is not there is skipped alone. Two incidents must not share a
    /// dedup key (see [`retire_batch`]): etcd refuses a transaction writing a key twice.
    pub fn retire_incidents(
        &mut self,
        incidents: &[&str],
        retention: LeaseId,
    ) -> Result<(), Error> {
        let lease = retention.0.to_string();
        let keep =
            |key: &str| json!({"request_put": {"key": key, "ignore_value": true, "lease": lease}});
        let if_there = |key: &str| {
            json!({"request_txn": {
                "compare": [{"key": key, "target": "VERSION", "result": "GREATER", "version": "0"}],
                "success": [keep(key)],
            }})
        };
        let each: Vec<Value> = incidents
            .iter()
            .map(|incident| {
                let key = |kind: &str| b64(&format!("{PREFIX}incident/{incident}/{kind}"));
                let mut success = vec![
                    keep(&key("resolve")),
                    if_there(&key("ack")),
                    if_there(&key("intake")),
                ];
                if let Some((dedup_key, start_ms)) = incident_parts(incident) {
                    let start = start_key(dedup_key);
                    success.push(json!({"request_txn": {
                        "compare": [{"key": start, "target": "VALUE", "result": "EQUAL", "value": b64(&start_ms.to_string())}],
                        "success": [keep(&start)],
                    }}));
                }
                json!({"request_txn": {
                    "compare": [{"key": key("resolve"), "target": "VERSION", "result": "GREATER", "version": "0"}],
                    "success": success,
                }})
            })
            .collect();
        self.post("/v3/kv/txn", &json!({"success": each}))?;
        Ok(())
    }

    /// Shares a runtime override made on this box (added, or deleted: the same key again), so
    /// the peer escalates to the same people; with `lease` on that lease
    /// ([`override_retention`](super::decide::override_retention)). Returns the lease the
    /// record it replaced was on, if any, so the caller can revoke it: nothing else lives on
    /// an override's lease but its mark.
    pub fn publish_override(
        &mut self,
        key: &str,
        by: &str,
        value: &str,
        lease: Option<LeaseId>,
    ) -> Result<Option<LeaseId>, Error> {
        let path = "/v3/kv/put";
        let value = json!({"by": by, "override": value}).to_string();
        let mut body = json!({
            "key": b64(&format!("{PREFIX}override/{key}")),
            "value": b64(&value),
            "prev_kv": true,
        });
        if let Some(l) = lease {
            body["lease"] = json!(l.0.to_string());
        }
        let answer = self.post(path, &body)?;
        let previous = match &answer["prev_kv"]["lease"] {
            Value::Null => 0,
            v => int(v, path)?,
        };
        Ok((previous != 0).then_some(LeaseId(previous)))
    }

    /// Runtime overrides written by boxes other than `me` since revision `after`, oldest first,
    /// and the revision to ask from next time.
    pub fn peer_overrides(
        &mut self,
        me: &str,
        after: i64,
    ) -> Result<(Vec<PeerRecord>, i64), Error> {
        let (written, revision) = self.written_since("override", after)?;
        let mut out = Vec::new();
        for Written { key: id, value, .. } in written {
            let Ok(value) = serde_json::from_str::<Value>(&value) else {
                continue;
            };
            let by = value["by"].as_str().unwrap_or_default().to_string();
            if by == me {
                continue;
            }
            out.push(PeerRecord {
                identity: id,
                kind: PeerKind::Override,
                by,
                alert: value["override"].as_str().map(str::to_string),
            });
        }
        Ok((out, revision.max(after)))
    }

    /// The canonical start of this box's incident with `dedup_key`, which started here at
    /// `mine_ms`: the first box to write it wins while the incident is open
    /// ([`canonical_start`] decides; each write is a compare-and-put, so two boxes racing end
    /// with one value).
    pub fn incident_start(&mut self, dedup_key: &str, mine_ms: i64) -> Result<i64, Error> {
        // Read first: a read is not a raft entry, a failed compare-and-put is (every member
        // writes it to disk), and the box that asks here is usually not the first.
        let mut kv = self.start_kv(dedup_key)?;
        // Three rounds settle any race between two boxes; a fourth would be a cluster changing
        // under us.
        for _round in 0..3 {
            let existing = match &kv {
                None => None,
                Some(kv) => Some(self.start_record(dedup_key, kv)?),
            };
            let guard = match canonical_start(mine_ms, existing) {
                StartChoice::Adopt(s) => return Ok(s),
                StartChoice::Create(_) => StartGuard::Absent,
                StartChoice::Replace(_) => {
                    StartGuard::Unchanged(kv.as_ref().map(|kv| kv["mod_revision"].clone()))
                }
            };
            match self.put_start(dedup_key, mine_ms, guard)? {
                None => return Ok(mine_ms),
                Some(now) => kv = now,
            }
        }
        // Still racing: use our own start. Our pages then claim on their own ids: a duplicate
        // at worst.
        Ok(mine_ms)
    }

    /// The start record of `dedup_key`, as etcd holds it now.
    fn start_kv(&mut self, dedup_key: &str) -> Result<Option<Value>, Error> {
        let answer = self.post("/v3/kv/range", &json!({"key": start_key(dedup_key)}))?;
        Ok(answer["kvs"].as_array().and_then(|a| a.first()).cloned())
    }

    /// The canonical start of this box's incident with `dedup_key` when etcd already names it
    /// (the peer was first: adopted; an earlier incident's record: replaced by ours), without
    /// writing a start of our own when there is none (`None`): the first claim of the
    /// incident writes it in its own transaction ([`Etcd::claim_with_start`]), while a write
    /// here would race that claim and cost the page a second transaction.
    pub fn settled_start(&mut self, dedup_key: &str, mine_ms: i64) -> Result<Option<i64>, Error> {
        let Some(kv) = self.start_kv(dedup_key)? else {
            return Ok(None);
        };
        let existing = self.start_record(dedup_key, &kv)?;
        match canonical_start(mine_ms, Some(existing)) {
            StartChoice::Adopt(s) => Ok(Some(s)),
            StartChoice::Create(_) | StartChoice::Replace(_) => {
                self.incident_start(dedup_key, mine_ms).map(Some)
            }
        }
    }

    /// Writes `mine_ms` as the start of `dedup_key` if `guard` holds; `None` when it was
    /// written, otherwise what is there now (read in the same transaction; `Some(None)`: no
    /// record).
    fn put_start(
        &mut self,
        dedup_key: &str,
        mine_ms: i64,
        guard: StartGuard,
    ) -> Result<Option<Option<Value>>, Error> {
        let key = start_key(dedup_key);
        let compare = match guard {
            StartGuard::Absent => {
                json!({"key": key, "target": "VERSION", "result": "EQUAL", "version": "0"})
            }
            StartGuard::Unchanged(rev) => {
                json!({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": rev})
            }
        };
        let answer = self.post(
            "/v3/kv/txn",
            &json!({
                "compare": [compare],
                "success": [{"request_put": {"key": key, "value": b64(&mine_ms.to_string())}}],
                "failure": [{"request_range": {"key": key}}],
            }),
        )?;
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(None);
        }
        let kvs = &response(&answer, 0, "range")["kvs"];
        Ok(Some(kvs.as_array().and_then(|a| a.first()).cloned()))
    }

    /// The start record `kv` of `dedup_key`, with when its incident was resolved (a second
    /// read: the resolve is keyed by the start it names).
    fn start_record(&mut self, dedup_key: &str, kv: &Value) -> Result<StartRecord, Error> {
        let path = "/v3/kv/range";
        let start_ms = start_from(kv, dedup_key, path)?;
        let resolve = self.post(
            path,
            &json!({"key": b64(&format!(
                "{PREFIX}incident/{}/resolve",
                incident_identity(dedup_key, start_ms)
            ))}),
        )?;
        let resolved_at_ms = first_value(&resolve["kvs"], path)?.map(|v| {
            serde_json::from_slice::<Value>(&v)
                .ok()
                .and_then(|v| v["at_ms"].as_i64())
                // A resolve without a time: treat it as long ago, so a later incident is new
                // (a duplicate at worst).
                .unwrap_or(i64::MIN)
        });
        Ok(StartRecord {
            start_ms,
            resolved_at_ms,
        })
    }

    /// The claim of a page whose incident's start this box has not settled yet, folded into
    /// one transaction with the start: if there is no start for `dedup_key` and nothing about
    /// the page (as [`Etcd::claim`] checks), write `mine_ms` as the start and the claim
    /// together. On the first box to page an incident this is the only write before the page;
    /// otherwise the answer carries the start in etcd and the page's records under `incident`
    /// (the identity with `mine_ms`), for [`after_start_claim`] to decide on.
    pub fn claim_with_start(
        &mut self,
        page: &PageId,
        incident: &str,
        dedup_key: &str,
        mine_ms: i64,
        me: &str,
        lease: LeaseId,
    ) -> Result<StartClaim, Error> {
        let keys = PageKeys::new(page, incident);
        let start = start_key(dedup_key);
        let absent = |k: &str| json!({"key": b64(k), "target": "VERSION", "result": "EQUAL", "version": "0"});
        let mut failure = vec![json!({"request_range": {"key": start}})];
        failure.extend(keys.ranges().as_array().into_iter().flatten().cloned());
        let body = json!({
            "compare": [
                {"key": start, "target": "VERSION", "result": "EQUAL", "version": "0"},
                absent(&keys.claim), absent(&keys.sent), absent(&keys.ack), absent(&keys.resolve),
            ],
            "success": [
                {"request_put": {"key": start, "value": b64(&mine_ms.to_string())}},
                {"request_put": {"key": b64(&keys.claim), "value": b64(me), "lease": lease.0.to_string()}},
            ],
            "failure": failure,
        });
        let path = "/v3/kv/txn";
        let answer = self.post(path, &body)?;
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(StartClaim::Won);
        }
        let kvs = &response(&answer, 0, "range")["kvs"];
        let start_ms = match kvs.as_array().and_then(|a| a.first()) {
            Some(kv) => Some(start_from(kv, dedup_key, path)?),
            None => None,
        };
        Ok(StartClaim::Failed {
            start_ms,
            view: view_from(&answer, 1, path)?,
        })
    }

    /// Acks, resolves and shared alerts written by boxes other than `me` since revision
    /// `after`, in the order they were written (an alert comes before the ack of its incident),
    /// and the revision to ask from next time. A shared alert whose incident was resolved by
    /// then (by either box) is left out: nothing is left to page, and a box reading the history
    /// after a restart must not open every incident the pair ever had.
    ///
    /// Also lists the incidents whose resolve the peer wrote and no box has put on a retention
    /// lease yet ([`Etcd::retire_incident`]).
    pub fn peer_records(&mut self, me: &str, after: i64) -> Result<PeerRead, Error> {
        let (written, revision) = self.written_since("incident", after)?;
        let mut resolved = std::collections::HashSet::new();
        let mut to_retire = Vec::new();
        let mut out = Vec::new();
        for Written {
            key: rest,
            value,
            on_lease,
        } in written
        {
            let Some((identity, kind)) = rest.rsplit_once('/') else {
                continue;
            };
            let by_of = |value: String| {
                serde_json::from_str::<Value>(&value)
                    .ok()
                    .and_then(|v| v["by"].as_str().map(str::to_string))
                    .unwrap_or(value)
            };
            let (kind, by, alert) = match kind {
                "ack" => (PeerKind::Ack, value, None),
                "resolve" => {
                    resolved.insert(identity.to_string());
                    (PeerKind::Resolve, by_of(value), None)
                }
                "intake" => {
                    let alert = serde_json::from_str::<Value>(&value)
                        .ok()
                        .and_then(|v| v["alert"].as_str().map(str::to_string));
                    (PeerKind::Intake, by_of(value), alert)
                }
                _ => continue,
            };
            if by == me {
                continue;
            }
            if kind == PeerKind::Resolve && !on_lease {
                to_retire.push(identity.to_string());
            }
            out.push(PeerRecord {
                identity: identity.to_string(),
                kind,
                by,
                alert,
            });
        }
        Ok(PeerRead {
            records: without_resolved_intakes(out, &resolved),
            revision: revision.max(after),
            to_retire,
        })
    }

    /// The records under `{PREFIX}{section}/` written after revision `after`, oldest first,
    /// and the revision they were read at.
    fn written_since(&mut self, section: &str, after: i64) -> Result<(Vec<Written>, i64), Error> {
        let prefix = format!("{PREFIX}{section}/");
        // The key just after every `{section}/...` key: '0' follows '/' in ASCII.
        let end = format!("{PREFIX}{section}0");
        let path = "/v3/kv/range";
        // Read in pages of [`READ_PAGE`] keys, by key, all at the revision of the first page:
        // a long history read at once could not come within the request timeout, and paging
        // by modification revision could split one transaction's keys across two pages.
        let mut from = prefix.clone().into_bytes();
        let mut revision = None;
        let mut found = Vec::new();
        loop {
            let mut ask = json!({
                "key": B64.encode(&from),
                "range_end": b64(&end),
                "min_mod_revision": (after + 1).to_string(),
                "limit": READ_PAGE.to_string(),
            });
            if let Some(r) = revision {
                ask["revision"] = json!(i64::to_string(&r));
            }
            let answer = self.post(path, &ask)?;
            let at = match revision {
                Some(r) => r,
                None => int(&answer["header"]["revision"], path)?,
            };
            revision = Some(at);
            let kvs = answer["kvs"].as_array().cloned().unwrap_or_default();
            let Some(last) = kvs.last() else { break };
            // Each page must end past where it started, or "more" would read the same keys for
            // ever on the session thread.
            let last_key = B64
                .decode(last["key"].as_str().unwrap_or(""))
                .ok()
                .filter(|key| *key >= from)
                .ok_or_else(|| Error::Decode {
                    path: path.into(),
                    why: format!("a page of keys ended before it began: {}", last["key"]),
                })?;
            found.extend(kvs);
            if answer["more"].as_bool() != Some(true) {
                break;
            }
            // The smallest key after the last one read.
            from = last_key;
            from.push(0);
        }
        // Oldest first, as the caller applies them; a transaction's keys in key order.
        found.sort_by_key(|kv| int(&kv["mod_revision"], path).unwrap_or(0));
        let written = found
            .iter()
            .filter_map(|kv| {
                let key = decode(&kv["key"]);
                let rest = key.strip_prefix(prefix.as_str())?.to_string();
                Some(Written {
                    key: rest,
                    value: decode(&kv["value"]),
                    // The gateway leaves out a field that is zero.
                    on_lease: int(&kv["lease"], path).is_ok_and(|l| l != 0),
                })
            })
            .collect();
        Ok((written, revision.unwrap_or(after)))
    }

    /// Publishes this box's paging health on its lease: it disappears with the box.
    pub fn publish_health(
        &mut self,
        me: &str,
        health: Health,
        lease: LeaseId,
    ) -> Result<(), Error> {
        let value = json!({"registered": health.registered, "signal_dbm": health.signal_dbm});
        self.put(
            &format!("{PREFIX}health/{me}"),
            &value.to_string(),
            Some(lease),
        )
    }

    /// The peer's published health; `None` when it has none (its lease ran out).
    pub fn health(&mut self, name: &str) -> Result<Option<Health>, Error> {
        let path = "/v3/kv/range";
        let answer = self.post(
            path,
            &json!({"key": b64(&format!("{PREFIX}health/{name}"))}),
        )?;
        let Some(value) = first_value(&answer["kvs"], path)? else {
            return Ok(None);
        };
        health_from(&value, name, path).map(Some)
    }

    /// The published health of the first box other than `me`; `None` when no other box has
    /// any (the peer is gone or cannot page). One range over all boxes' health.
    pub fn peer_health(&mut self, me: &str) -> Result<Option<(String, Health)>, Error> {
        let prefix = format!("{PREFIX}health/");
        // A prefix range ends at the prefix with its last byte incremented ('/' + 1 = '0').
        let end = format!("{PREFIX}health0");
        let path = "/v3/kv/range";
        let answer = self.post(path, &json!({"key": b64(&prefix), "range_end": b64(&end)}))?;
        for kv in answer["kvs"].as_array().into_iter().flatten() {
            let name = decode(&kv["key"])
                .trim_start_matches(prefix.as_str())
                .to_string();
            if name != me {
                let value = B64
                    .decode(kv["value"].as_str().unwrap_or(""))
                    .map_err(|e| Error::Decode {
                        path: path.into(),
                        why: format!("health of {name} is not base64: {e}"),
                    })?;
                let health = health_from(&value, &name, path)?;
                return Ok(Some((name, health)));
            }
        }
        Ok(None)
    }

    /// Publishes our config hash on our lease and compares it with every other box's: both
    /// boxes see a mismatch (not only the second to start), so both warn and page on their own.
    pub fn check_config_hash(
        &mut self,
        me: &str,
        hash: &str,
        lease: LeaseId,
    ) -> Result<ConfigAgreement, Error> {
        self.put(&format!("{PREFIX}config-hash/{me}"), hash, Some(lease))?;
        self.compare_config_hash(hash)
    }

    /// Compares `hash` with every box's published config hash (ours included, published
    /// earlier on the same lease by [`Etcd::check_config_hash`]): a read, no write.
    pub fn compare_config_hash(&mut self, hash: &str) -> Result<ConfigAgreement, Error> {
        let prefix = format!("{PREFIX}config-hash/");
        let end = format!("{PREFIX}config-hash0");
        let path = "/v3/kv/range";
        let answer = self.post(path, &json!({"key": b64(&prefix), "range_end": b64(&end)}))?;
        for kv in answer["kvs"].as_array().into_iter().flatten() {
            let theirs = B64
                .decode(kv["value"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let theirs = String::from_utf8_lossy(&theirs).into_owned();
            if theirs != hash {
                return Ok(ConfigAgreement::Mismatch { theirs });
            }
        }
        Ok(ConfigAgreement::Agreed)
    }

    fn put(&mut self, key: &str, value: &str, lease: Option<LeaseId>) -> Result<(), Error> {
        let mut body = json!({"key": b64(key), "value": b64(value)});
        if let Some(l) = lease {
            body["lease"] = json!(l.0.to_string());
        }
        self.post("/v3/kv/put", &body)?;
        Ok(())
    }
}

/// An agent with the adapter's timeouts and, when given, its TLS settings.
fn agent(tls: Option<Arc<rustls::ClientConfig>>) -> ureq::Agent {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls);
    }
    builder.build()
}

/// The text of a base64 field of a gateway answer (a key or a value); empty when missing.
fn decode(field: &Value) -> String {
    let bytes = B64.decode(field.as_str().unwrap_or("")).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A box's published health from its stored JSON.
/// Drops the shared alerts of incidents in `resolved`.
fn without_resolved_intakes(
    records: Vec<PeerRecord>,
    resolved: &std::collections::HashSet<String>,
) -> Vec<PeerRecord> {
    records
        .into_iter()
        .filter(|r| r.kind != PeerKind::Intake || !resolved.contains(&r.identity))
        .collect()
}

fn health_from(value: &[u8], name: &str, path: &str) -> Result<Health, Error> {
    let v: Value = serde_json::from_slice(value).map_err(|e| Error::Decode {
        path: path.into(),
        why: format!("health of {name}: {e}"),
    })?;
    Ok(Health {
        registered: v["registered"].as_bool().unwrap_or(false),
        signal_dbm: v["signal_dbm"].as_i64().and_then(|s| i32::try_from(s).ok()),
    })
}

/// A record read by [`Etcd::written_since`].
struct Written {
    /// The key below its section.
    key: String,
    value: String,
    /// Whether it lives on a lease (a retired incident's record).
    on_lease: bool,
}

/// How many incidents of `queue`'s head go in one [`Etcd::retire_incidents`]: at most `max`,
/// and none after the first that repeats an incident or a dedup key of one before it (etcd
/// refuses a transaction that writes a key twice; the repeat goes in the next one). At least
/// one when the queue is not empty.
pub fn retire_batch<'a>(queue: impl IntoIterator<Item = &'a String>, max: usize) -> usize {
    let mut keys = std::collections::HashSet::new();
    let mut n = 0;
    for incident in queue.into_iter().take(max) {
        let key = incident_parts(incident).map_or(incident.as_str(), |(k, _)| k);
        if !keys.insert(key) {
            break;
        }
        n += 1;
    }
    n
}

/// The dedup key and canonical start an incident identity is made of ([`incident_identity`]).
fn incident_parts(identity: &str) -> Option<(&str, i64)> {
    let (key, start) = identity.rsplit_once('@')?;
    Some((key, start.parse().ok()?))
}

/// The key of the canonical start of the incident with `dedup_key`, base64 for the gateway.
fn start_key(dedup_key: &str) -> String {
    b64(&format!("{PREFIX}start/{dedup_key}"))
}

/// The start in a `start/<key>` record.
fn start_from(kv: &Value, dedup_key: &str, path: &str) -> Result<i64, Error> {
    let raw = B64
        .decode(kv["value"].as_str().unwrap_or(""))
        .unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .parse()
        .map_err(|_| Error::Decode {
            path: path.into(),
            why: format!("start of {dedup_key} is not a number"),
        })
}

/// When a start record may be written: only if there is none, or only if it is still the
/// revision that was read (a resolved incident's record, replaced by a new incident's).
enum StartGuard {
    Absent,
    Unchanged(Option<Value>),
}

/// The keys of one page and its incident.
struct PageKeys {
    claim: String,
    sent: String,
    ack: String,
    resolve: String,
}

impl PageKeys {
    fn new(page: &PageId, incident: &str) -> Self {
        Self {
            claim: format!("{PREFIX}page/{page}/claim"),
            sent: format!("{PREFIX}page/{page}/sent"),
            ack: format!("{PREFIX}incident/{incident}/ack"),
            resolve: format!("{PREFIX}incident/{incident}/resolve"),
        }
    }

    /// Range requests for claim, sent, ack and resolve, in that order ([`view_from`] reads them).
    fn ranges(&self) -> Value {
        json!([&self.claim, &self.sent, &self.ack, &self.resolve]
            .iter()
            .map(|k| json!({"request_range": {"key": b64(k)}}))
            .collect::<Vec<_>>())
    }
}

/// A [`PageView`] from the four range answers of [`PageKeys::ranges`], the first of them the
/// transaction's answer number `from`.
fn view_from(answer: &Value, from: usize, path: &str) -> Result<PageView, Error> {
    let value = |i: usize| first_value(&response(answer, from + i, "range")["kvs"], path);
    Ok(PageView {
        claimed_by: value(0)?.map(|v| String::from_utf8_lossy(&v).into_owned()),
        sent: value(1)?.is_some(),
        acked: value(2)?.is_some(),
        resolved: value(3)?.is_some(),
    })
}

/// The `i`-th answer of a transaction, of kind `range`/`put`/...; the gateway names it in
/// snake case (`response_range`) or camel case (`responseRange`) depending on its version.
fn response<'v>(answer: &'v Value, i: usize, kind: &str) -> &'v Value {
    let r = &answer["responses"][i];
    let snake = &r[format!("response_{kind}").as_str()];
    if !snake.is_null() {
        return snake;
    }
    let mut camel = String::from("response");
    camel.push_str(&kind[..1].to_uppercase());
    camel.push_str(&kind[1..]);
    &r[camel.as_str()]
}

/// The value of the first key-value pair in `kvs`, decoded; `None` when there is none.
fn first_value(kvs: &Value, path: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(kv) = kvs.as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let v = kv["value"].as_str().unwrap_or("");
    B64.decode(v).map(Some).map_err(|e| Error::Decode {
        path: path.into(),
        why: format!("value is not base64: {e}"),
    })
}

/// A 64-bit integer, which the gateway sends as a JSON string (and accepts as either).
fn int(v: &Value, path: &str) -> Result<i64, Error> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| Error::Decode {
            path: path.into(),
            why: format!("expected an integer, got {v}"),
        })
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

/// The endpoint that streams its answer: one object per line on a stream that stays open.
const STREAMING: &str = "/v3/lease/keepalive";

/// The JSON answer to a request. Every other answer is read to its end, which is what hands the
/// connection back to the agent's pool: the next request (the next claim) then reuses it
/// instead of paying a TCP connect on the page path.
fn read_answer(resp: ureq::Response, path: &str) -> Result<Value, Error> {
    if path == STREAMING {
        return read_first_object(resp, path);
    }
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .map_err(|e| Error::Decode {
            path: path.into(),
            why: format!("answer cut short: {e}"),
        })?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
        path: path.into(),
        why: e.to_string(),
    })?;
    refused_in_body(value, path)
}

/// The first JSON object of a streaming answer ([`STREAMING`]); the first object is all a
/// request needs.
fn read_first_object(resp: ureq::Response, path: &str) -> Result<Value, Error> {
    let reader = BufReader::new(resp.into_reader());
    let mut stream = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
    let value = stream
        .next()
        .ok_or_else(|| Error::Decode {
            path: path.into(),
            why: "empty answer".into(),
        })?
        .map_err(|e| Error::Decode {
            path: path.into(),
            why: e.to_string(),
        })?;
    refused_in_body(value, path)
}

/// An answer that says it is an error although its status is 200: the streaming endpoints
/// wrap each message as {"result": ...} and errors as {"error": ...}.
fn refused_in_body(value: Value, path: &str) -> Result<Value, Error> {
    if let Some(err) = value.get("error") {
        return Err(Error::Refused {
            path: path.into(),
            endpoint: String::new(),
            status: 200,
            body: err.to_string(),
        });
    }
    Ok(value)
}

/// A rustls client config with etcd's own CA and, when given, this box's client certificate.
fn tls_config(tls: &EtcdTls) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let tls_err = |path: &std::path::Path, why: String| Error::Tls {
        path: path.display().to_string(),
        why,
    };
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &tls.ca_file {
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err(ca, e.to_string()))? {
            let cert = cert.map_err(|e| tls_err(ca, e.to_string()))?;
            roots.add(cert).map_err(|e| tls_err(ca, e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(tls_err(ca, "holds no certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            path: String::new(),
            why: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| tls_err(cert, e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(cert, e.to_string()))?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| tls_err(key, e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
pub(super) mod tests {
    //! Against a real etcd: the binary named by `ETCD_BIN`, else the official one from the
    //! `etcd-bin-vendored` dev-dependency (x86-64 Linux), else `etcd` on the `PATH` (Debian:
    //! `etcd-server`). Without any the tests say so and pass: the pure rules are tested in
    //! `decide` either way.

    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;
    use crate::config::EtcdEndpoint;
    use crate::ha::decide::{PageKey, PageView};
    use crate::incident::Channel;

    /// One etcd member on loopback, killed on drop.
    pub(crate) struct Member {
        child: Child,
        pub(crate) url: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Member {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub(crate) fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port")
    }

    fn etcd_binary() -> Option<std::path::PathBuf> {
        if let Some(p) = std::env::var_os("ETCD_BIN") {
            return Some(p.into());
        }
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Ok(p) = etcd_bin_vendored::etcd_bin_path() {
            return Some(p.to_path_buf());
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("etcd"))
                .find(|p| p.is_file())
        })
    }

    pub(crate) fn start_member() -> Option<Member> {
        start_member_on(free_port())
    }

    /// A member whose client URL is on `client`, so a test can start it where a client was
    /// already pointed.
    pub(crate) fn start_member_on(client: u16) -> Option<Member> {
        let Some(bin) = etcd_binary() else {
            eprintln!("skipped: no etcd binary (set ETCD_BIN or install etcd-server)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let peer = free_port();
        let url = format!("http://127.0.0.1:{client}");
        let child = Command::new(&bin)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args(["--initial-cluster", &format!("t=http://127.0.0.1:{peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        eprintln!("etcd {} at {url}", bin.display());
        let member = Member {
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ureq::get(&format!("{}/health", member.url)).call().is_ok() {
                return Some(member);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy within 20 s");
    }

    pub(crate) fn client(endpoints: &[&str]) -> Etcd {
        Etcd::new(&config(endpoints)).expect("client")
    }

    pub(crate) fn config(endpoints: &[&str]) -> HaConfig {
        HaConfig {
            name: "a".into(),
            peer_urls: vec![],
            etcd_endpoints: endpoints
                .iter()
                .map(|e| EtcdEndpoint::parse(e).expect("endpoint"))
                .collect(),
            etcd_tls: None,
            etcd_auth: None,
            fallback_after: Duration::from_secs(30),
            claim_ttl: Duration::from_secs(10),
            election_timeout: Duration::from_secs(1),
            takeover_delay: Duration::from_secs(2),
        }
    }

    pub(crate) fn page(incident: &str) -> PageId {
        PageId::new(PageKey {
            incident,
            step: 0,
            target: "alice",
            channel: Channel::Sms,
            attempt: 1,
        })
    }

    /// A gateway that answers every request with `body` (HTTP/1.1, one request a connection).
    fn answering(body: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                // The whole request (headers, then Content-Length bytes), so the reply is read.
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    #[test]
    fn a_history_page_that_does_not_advance_is_an_error_not_an_endless_read() {
        // Always "more", always the same key, one before the section's first: read naively,
        // the next page would start over, for ever.
        let url = answering(
            r#"{"header":{"revision":"9"},"kvs":[{"key":"AA==","value":"","mod_revision":"3"}],"more":true}"#,
        );
        let mut etcd = client(&[&url]);
        let err = etcd.peer_overrides("a", 0).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }

    #[test]
    fn exactly_one_box_wins_a_claim_and_a_dead_box_loses_it() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        let lb = b.grant_lease(Duration::from_secs(10)).unwrap();
        let p = page("i1");

        assert_eq!(a.claim(&p, "i1", "a", la).unwrap(), Claim::Won);
        let held = PageView {
            claimed_by: Some("a".into()),
            ..PageView::default()
        };
        assert_eq!(
            b.claim(&p, "i1", "b", lb).unwrap(),
            Claim::Lost(held.clone())
        );
        // A second try by the winner loses too: the claim is taken, by itself.
        assert_eq!(a.claim(&p, "i1", "a", la).unwrap(), Claim::Lost(held));

        // Box a dies: its lease goes, its claim with it, and b takes the page.
        a.revoke_lease(la).unwrap();
        assert!(matches!(a.keep_alive(la), Err(Error::LeaseExpired(_))));
        assert_eq!(b.page_view(&p, "i1").unwrap(), PageView::default());
        assert_eq!(b.claim(&p, "i1", "b", lb).unwrap(), Claim::Won);
        assert!(b.keep_alive(lb).unwrap() > Duration::ZERO);

        // Sent: nobody claims it again, even after the sender's lease is gone.
        b.mark_sent(&p, "i1", "b", None).unwrap();
        b.revoke_lease(lb).unwrap();
        let la2 = a.grant_lease(Duration::from_secs(10)).unwrap();
        let sent = PageView {
            sent: true,
            ..PageView::default()
        };
        assert_eq!(a.claim(&p, "i1", "a", la2).unwrap(), Claim::Lost(sent));
    }

    #[test]
    fn an_ack_or_resolve_on_either_box_stops_new_claims() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let lb = b.grant_lease(Duration::from_secs(10)).unwrap();

        a.publish_ack("i2", "a").unwrap();
        let step1 = page("i2");
        let Claim::Lost(view) = b.claim(&step1, "i2", "b", lb).unwrap() else {
            panic!("claimed a page of an acked incident")
        };
        assert!(
            view.acked && view.claimed_by.is_none() && !view.sent,
            "{view:?}"
        );

        a.publish_resolve("i3", "a", 0).unwrap();
        let Claim::Lost(view) = b.claim(&page("i3"), "i3", "b", lb).unwrap() else {
            panic!("claimed a page of a resolved incident")
        };
        assert!(view.resolved, "{view:?}");
        // Other incidents are untouched.
        assert_eq!(b.claim(&page("i4"), "i4", "b", lb).unwrap(), Claim::Won);
    }

    #[test]
    fn a_released_claim_is_free_at_once_and_only_the_owner_can_release() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        let lb = b.grant_lease(Duration::from_secs(10)).unwrap();
        let p = page("i5");
        assert_eq!(a.claim(&p, "i5", "a", la).unwrap(), Claim::Won);
        // b cannot drop a's claim.
        b.release(&p, "i5", "b").unwrap();
        assert_eq!(
            b.page_view(&p, "i5").unwrap().claimed_by.as_deref(),
            Some("a")
        );
        // a's modem failed: it gives the page back and b claims it without waiting for a TTL.
        a.release(&p, "i5", "a").unwrap();
        assert_eq!(b.claim(&p, "i5", "b", lb).unwrap(), Claim::Won);
    }

    #[test]
    fn health_and_config_hash_live_on_the_lease() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        let h = Health {
            registered: true,
            signal_dbm: Some(-81),
        };
        assert_eq!(b.health("a").unwrap(), None);
        a.publish_health("a", h, la).unwrap();
        assert_eq!(b.health("a").unwrap(), Some(h));
        a.revoke_lease(la).unwrap();
        assert_eq!(b.health("a").unwrap(), None);

        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        let lb = b.grant_lease(Duration::from_secs(10)).unwrap();
        assert_eq!(
            a.check_config_hash("a", "h1", la).unwrap(),
            ConfigAgreement::Agreed
        );
        assert_eq!(
            b.check_config_hash("b", "h1", lb).unwrap(),
            ConfigAgreement::Agreed
        );
        // b changes its config: both boxes see the mismatch.
        assert_eq!(
            b.check_config_hash("b", "h2", lb).unwrap(),
            ConfigAgreement::Mismatch {
                theirs: "h1".into()
            }
        );
        assert_eq!(
            a.check_config_hash("a", "h1", la).unwrap(),
            ConfigAgreement::Mismatch {
                theirs: "h2".into()
            }
        );
        // b is gone (its lease with it): a agrees with itself again.
        b.revoke_lease(lb).unwrap();
        assert_eq!(
            a.check_config_hash("a", "h1", la).unwrap(),
            ConfigAgreement::Agreed
        );
    }

    #[test]
    fn a_dead_member_is_skipped() {
        let Some(m) = start_member() else { return };
        let dead = format!("http://127.0.0.1:{}", free_port());
        let mut a = client(&[&dead, &m.url]);
        let started = Instant::now();
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        assert_eq!(a.claim(&page("i6"), "i6", "a", la).unwrap(), Claim::Won);
        assert!(
            started.elapsed() < REQUEST_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );

        let mut nobody = client(&[&dead]);
        let err = nobody.grant_lease(Duration::from_secs(10)).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains(&dead), "{err}");
    }

    #[test]
    fn a_claim_folded_with_the_start_writes_both_or_reads_what_is_there() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        let lb = b.grant_lease(Duration::from_secs(10)).unwrap();
        let p = page("f@1000");
        assert_eq!(
            a.claim_with_start(&p, "f@1000", "f", 1_000, "a", la)
                .unwrap(),
            StartClaim::Won
        );
        // Both went in: the start is settled for the peer, and the claim is a's.
        assert_eq!(b.incident_start("f", 1_030).unwrap(), 1_000);
        // b, not knowing the start, tries its own: it learns the start and nothing is written.
        let p_b = page("f@1030");
        assert_eq!(
            b.claim_with_start(&p_b, "f@1030", "f", 1_030, "b", lb)
                .unwrap(),
            StartClaim::Failed {
                start_ms: Some(1_000),
                view: PageView::default(),
            }
        );
        assert_eq!(b.page_view(&p_b, "f@1030").unwrap(), PageView::default());
        // With its own start there already, the answer is the page's records under it.
        assert_eq!(
            a.claim_with_start(&p, "f@1000", "f", 1_000, "a", la)
                .unwrap(),
            StartClaim::Failed {
                start_ms: Some(1_000),
                view: PageView {
                    claimed_by: Some("a".into()),
                    ..PageView::default()
                },
            }
        );
    }

    /// Sockets of this network namespace connected to `port`, in TCP state `state` (hex, as
    /// `/proc/net/tcp` writes it: 01 established, 06 time-wait).
    fn sockets_to(port: u16, state: &str) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let remote = format!("0100007F:{port:04X}");
        table
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[2] == remote && f[3] == state
            })
            .count()
    }

    #[test]
    fn requests_reuse_one_connection() {
        let Some(m) = start_member() else { return };
        let port: u16 = m.url.rsplit(':').next().unwrap().parse().unwrap();
        let mut a = client(&[&m.url]);
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        for n in 0..20 {
            let incident = format!("c{n}@0");
            a.claim(&page(&incident), &incident, "a", la).unwrap();
            a.page_view(&page(&incident), &incident).unwrap();
        }
        // A connection per request would leave one closed socket (time-wait) per request.
        let closed = sockets_to(port, "06");
        assert!(closed <= 2, "{closed} connections closed for 41 requests");
    }

    #[test]
    fn a_sent_record_on_a_retention_lease_goes_with_it() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let la = a.grant_lease(Duration::from_secs(10)).unwrap();
        let lb = b.grant_lease(Duration::from_secs(10)).unwrap();
        let retention = a.grant_lease(Duration::from_secs(60)).unwrap();
        let (kept, pruned) = (page("r1@0"), page("r2@0"));
        for p in [&kept, &pruned] {
            assert_eq!(a.claim(p, "r@0", "a", la).unwrap(), Claim::Won);
        }
        a.mark_sent(&kept, "r@0", "a", None).unwrap();
        a.mark_sent(&pruned, "r@0", "a", Some(retention)).unwrap();
        let sent = PageView {
            sent: true,
            ..PageView::default()
        };
        assert_eq!(b.page_view(&pruned, "r@0").unwrap(), sent);
        // The retention lease ends (its TTL, here at once): its records go, the others stay,
        // and the claims went with the sending, not with the retention.
        a.revoke_lease(retention).unwrap();
        assert_eq!(b.page_view(&pruned, "r@0").unwrap(), PageView::default());
        assert_eq!(b.page_view(&kept, "r@0").unwrap(), sent);
        // A lease that is gone is refused, not ignored: the caller writes the record without.
        let err = a
            .mark_sent(&pruned, "r@0", "a", Some(retention))
            .unwrap_err();
        assert!(err.is_lease_gone() && !err.is_retryable(), "{err}");
        assert!(matches!(b.claim(&kept, "r@0", "b", lb).unwrap(), Claim::Lost(v) if v.sent));
    }

    /// The lease a key lives on, read straight from the gateway: `None` when the key is not
    /// there, `Some(0)` when it is persistent.
    pub(crate) fn lease_of(url: &str, key: &str) -> Option<i64> {
        let answer: Value = ureq::post(&format!("{url}/v3/kv/range"))
            .send_json(json!({"key": b64(&format!("{PREFIX}{key}"))}))
            .expect("range")
            .into_json()
            .expect("json");
        let kv = answer["kvs"].as_array()?.first()?.clone();
        Some(int(&kv["lease"], "range").unwrap_or(0))
    }

    /// The seconds lease `lease` has left.
    pub(crate) fn ttl_of(url: &str, lease: i64) -> u64 {
        let answer: Value = ureq::post(&format!("{url}/v3/lease/timetolive"))
            .send_json(json!({ "ID": lease.to_string() }))
            .expect("timetolive")
            .into_json()
            .expect("json");
        u64::try_from(int(&answer["TTL"], "timetolive").unwrap_or(0)).unwrap_or(0)
    }

    #[test]
    fn a_resolved_incident_read_by_the_peer_goes_on_the_retention_lease_as_a_whole() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let rev = b.peer_records("b", 0).unwrap().revision;
        // An alert only a received, shared, paged, acked and resolved there.
        assert_eq!(a.incident_start("k", 1_000).unwrap(), 1_000);
        a.publish_intake("k@1000", "a", "{}").unwrap();
        a.publish_ack("k@1000", "a").unwrap();
        a.publish_resolve("k@1000", "a", 5_000).unwrap();
        let records = [
            "incident/k@1000/resolve",
            "incident/k@1000/ack",
            "incident/k@1000/intake",
            "start/k",
        ];
        for k in records {
            assert_eq!(lease_of(&m.url, k), Some(0), "{k}");
        }
        // Its writer does not retire it: the peer has not read the resolve.
        assert!(a.peer_records("a", 0).unwrap().to_retire.is_empty());
        let read = b.peer_records("b", rev).unwrap();
        assert_eq!(read.to_retire, ["k@1000"]);

        let retention = b.grant_lease(Duration::from_secs(60)).unwrap();
        b.retire_incident("k@1000", retention).unwrap();
        for k in records {
            assert_eq!(lease_of(&m.url, k), Some(retention.0), "{k}");
        }
        // Retired once: read again (from the start, or its rewrite), it is not listed again,
        // and the shared alert is still not opened.
        let again = b.peer_records("b", 0).unwrap();
        assert!(again.to_retire.is_empty(), "{again:?}");
        assert!(again.records.iter().all(|r| r.kind != PeerKind::Intake));
        let next = b.peer_records("b", read.revision).unwrap();
        assert!(next.to_retire.is_empty(), "{next:?}");
        assert!(next.records.iter().all(|r| r.kind != PeerKind::Intake));

        // The lease ends: every record of the incident goes in one revision.
        b.revoke_lease(retention).unwrap();
        for k in records {
            assert_eq!(lease_of(&m.url, k), None, "{k}");
        }
        assert!(b.peer_records("b", 0).unwrap().records.is_empty());
    }

    #[test]
    fn retiring_keeps_a_later_incidents_start_and_needs_a_resolve() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let retention = b.grant_lease(Duration::from_secs(60)).unwrap();
        // Not resolved: nothing is retired, the open incident keeps its records.
        assert_eq!(a.incident_start("n", 1_000).unwrap(), 1_000);
        a.publish_ack("n@1000", "a").unwrap();
        b.retire_incident("n@1000", retention).unwrap();
        assert_eq!(lease_of(&m.url, "incident/n@1000/ack"), Some(0));
        assert_eq!(lease_of(&m.url, "start/n"), Some(0));
        // Resolved, and the key fired again before the peer read the resolve: the new
        // incident's start stays.
        a.publish_resolve("n@1000", "a", 2_000).unwrap();
        assert_eq!(a.incident_start("n", 3_000).unwrap(), 3_000);
        b.retire_incident("n@1000", retention).unwrap();
        assert_eq!(
            lease_of(&m.url, "incident/n@1000/resolve"),
            Some(retention.0)
        );
        assert_eq!(lease_of(&m.url, "start/n"), Some(0));
    }

    #[test]
    fn several_resolved_incidents_go_on_the_retention_lease_in_one_revision() {
        let Some(m) = start_member() else { return };
        let mut a = client(&[&m.url]);
        for (key, start) in [("x", 1_000), ("y", 2_000), ("z", 3_000)] {
            a.incident_start(key, start).unwrap();
            a.publish_ack(&format!("{key}@{start}"), "a").unwrap();
            a.publish_resolve(&format!("{key}@{start}"), "a", start + 1)
                .unwrap();
        }
        let before = a.peer_records("b", 0).unwrap().revision;
        let retention = a.grant_lease(Duration::from_secs(60)).unwrap();
        // "gone@1" has no resolve: skipped alone, the others are retired.
        a.retire_incidents(&["x@1000", "gone@1", "y@2000", "z@3000"], retention)
            .unwrap();
        for k in [
            "incident/x@1000/resolve",
            "incident/x@1000/ack",
            "start/x",
            "incident/y@2000/resolve",
            "start/z",
        ] {
            assert_eq!(lease_of(&m.url, k), Some(retention.0), "{k}");
        }
        assert_eq!(lease_of(&m.url, "incident/gone@1/resolve"), None);
        assert_eq!(a.peer_records("b", 0).unwrap().revision, before + 1);
    }

    #[test]
    fn a_history_longer_than_a_page_is_read_whole_and_oldest_first() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let n = READ_PAGE + 20;
        // Written newest key first, so key order and write order disagree.
        for i in (0..n).rev() {
            a.publish_ack(&format!("h{i:04}@1"), "a").unwrap();
        }
        let read = b.peer_records("b", 0).unwrap();
        let ids: Vec<_> = read.records.iter().map(|r| r.identity.clone()).collect();
        let want: Vec<_> = (0..n).rev().map(|i| format!("h{i:04}@1")).collect();
        assert_eq!(ids, want);
        assert_eq!(b.peer_records("b", read.revision).unwrap().records, []);
    }

    #[test]
    fn a_retirement_batch_stops_before_a_repeated_dedup_key() {
        let q: Vec<String> = ["a@1", "b@1", "a@2", "c@1"].map(String::from).into();
        assert_eq!(retire_batch(&q, 32), 2);
        assert_eq!(retire_batch(&q[2..], 32), 2);
        assert_eq!(retire_batch(&q, 1), 1);
        assert_eq!(retire_batch(&q[..0], 32), 0);
        let same: Vec<String> = ["a@1", "a@1"].map(String::from).into();
        assert_eq!(retire_batch(&same, 32), 1);
    }

    #[test]
    fn retention_leases_are_listed_with_when_they_were_granted() {
        let Some(m) = start_member() else { return };
        let mut a = client(&[&m.url]);
        let (l1, l2) = (
            a.grant_lease(Duration::from_secs(60)).unwrap(),
            a.grant_lease(Duration::from_secs(60)).unwrap(),
        );
        a.mark_retention(l1, 1_000).unwrap();
        a.mark_retention(l2, 2_000).unwrap();
        let mut listed = a.retention_leases().unwrap();
        listed.sort_by_key(|(_, at)| at.granted_ms);
        let plain = |granted_ms| LeaseMark {
            granted_ms,
            end_ms: None,
        };
        assert_eq!(listed, [(l1, plain(1_000)), (l2, plain(2_000))]);
        // The mark goes with its lease.
        a.revoke_lease(l1).unwrap();
        assert_eq!(a.retention_leases().unwrap(), [(l2, plain(2_000))]);
        // An override's lease says when it ends.
        let l3 = a.grant_lease(Duration::from_secs(60)).unwrap();
        a.mark_override_lease(l3, 3_000, 9_000).unwrap();
        assert!(a.retention_leases().unwrap().contains(&(
            l3,
            LeaseMark {
                granted_ms: 3_000,
                end_ms: Some(9_000)
            }
        )));
        assert_eq!(LeaseMark::parse("1 2 3"), None);
        assert_eq!(LeaseMark::parse("x"), None);
    }

    #[test]
    fn no_ack_or_shared_alert_is_written_after_the_resolve() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let rev = b.peer_records("b", 0).unwrap().revision;
        a.publish_resolve("late@1", "a", 5).unwrap();
        // A heal publishing what was done alone under the name the peer resolved meanwhile.
        a.publish_intake("late@1", "a", "{}").unwrap();
        a.publish_ack("late@1", "a").unwrap();
        assert_eq!(lease_of(&m.url, "incident/late@1/intake"), None);
        assert_eq!(lease_of(&m.url, "incident/late@1/ack"), None);
        let kinds: Vec<_> = b
            .peer_records("b", rev)
            .unwrap()
            .records
            .iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, [PeerKind::Resolve]);
    }

    #[test]
    fn a_page_sent_alone_goes_on_the_retention_lease() {
        let Some(m) = start_member() else { return };
        let mut a = client(&[&m.url]);
        let retention = a.grant_lease(Duration::from_secs(60)).unwrap();
        let p = page("alone@0");
        a.mark_sent_alone(&p, "a", Some(retention)).unwrap();
        assert_eq!(
            lease_of(&m.url, &format!("page/{p}/sent")),
            Some(retention.0)
        );
        a.revoke_lease(retention).unwrap();
        assert_eq!(a.page_view(&p, "alone@0").unwrap(), PageView::default());
    }

    #[test]
    fn canonical_start_and_peer_records() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        // Both boxes saw the alert, 30 ms apart: the first writer's start wins on both.
        assert_eq!(a.incident_start("k/1", 1_000).unwrap(), 1_000);
        assert_eq!(b.incident_start("k/1", 1_030).unwrap(), 1_000);
        let read = b.peer_records("b", 0).unwrap();
        let rev = read.revision;
        assert!(read.records.is_empty());
        // a acks and resolves; b sees both, a sees neither of its own.
        a.publish_ack(&incident_identity("k/1", 1_000), "a")
            .unwrap();
        a.publish_resolve(&incident_identity("k/1", 1_000), "a", 5_000)
            .unwrap();
        let read = b.peer_records("b", rev).unwrap();
        let rev2 = read.revision;
        assert_eq!(
            read.records,
            [
                PeerRecord {
                    identity: "k/1@1000".into(),
                    kind: PeerKind::Ack,
                    by: "a".into(),
                    alert: None,
                },
                PeerRecord {
                    identity: "k/1@1000".into(),
                    kind: PeerKind::Resolve,
                    by: "a".into(),
                    alert: None,
                },
            ]
        );
        assert!(rev2 > rev);
        assert!(a.peer_records("a", 0).unwrap().records.is_empty());
        assert!(b.peer_records("b", rev2).unwrap().records.is_empty());
        // The same key firing again after the resolve is a new incident on both boxes.
        assert_eq!(b.incident_start("k/1", 9_000).unwrap(), 9_000);
        assert_eq!(a.incident_start("k/1", 9_010).unwrap(), 9_000);
        // A box that missed the resolve and still holds the old incident adopts the open record:
        // its pages meet the new incident's, so nothing is paged twice.
        assert_eq!(a.incident_start("k/1", 1_000).unwrap(), 9_000);
    }

    #[test]
    fn a_shared_alert_comes_before_the_ack_and_is_dropped_once_resolved() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let rev = b.peer_records("b", 0).unwrap().revision;
        // Written in this order; the keys sort the other way ("ack" < "intake").
        a.publish_intake("u@1", "a", "{\"x\":1}").unwrap();
        a.publish_ack("u@1", "a").unwrap();
        let read = b.peer_records("b", rev).unwrap();
        let (got, rev2) = (read.records, read.revision);
        let kinds: Vec<_> = got.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [PeerKind::Intake, PeerKind::Ack]);
        assert_eq!(got[0].alert.as_deref(), Some("{\"x\":1}"));
        assert_eq!(got[0].by, "a");
        // Resolved by then: reading from the start again opens nothing.
        a.publish_resolve("u@1", "a", 5).unwrap();
        let again = b.peer_records("b", rev).unwrap().records;
        assert!(
            again.iter().all(|r| r.kind != PeerKind::Intake),
            "{again:?}"
        );
        assert!(b.peer_records("b", rev2).unwrap().records.len() == 1);
    }

    #[test]
    fn overrides_reach_the_peer_and_not_their_author() {
        let Some(m) = start_member() else { return };
        let (mut a, mut b) = (client(&[&m.url]), client(&[&m.url]));
        let (_, rev) = b.peer_overrides("b", 0).unwrap();
        a.publish_override("o1", "a", "{\"deleted\":false}", None)
            .unwrap();
        a.publish_override("o1", "a", "{\"deleted\":true}", None)
            .unwrap();
        let (got, rev2) = b.peer_overrides("b", rev).unwrap();
        assert_eq!(got.len(), 1, "the latest version of each override: {got:?}");
        assert_eq!(got[0].identity, "o1");
        assert_eq!(got[0].alert.as_deref(), Some("{\"deleted\":true}"));
        assert!(a.peer_overrides("a", 0).unwrap().0.is_empty());
        assert!(b.peer_overrides("b", rev2).unwrap().0.is_empty());
    }
}
