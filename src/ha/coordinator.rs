//! The coordinator: the one owner of this box's etcd session (lease, mode, time alone).
//!
//! A blocking thread owns the [`Etcd`] client and the [`Mode`]; the rest of the daemon holds a
//! cloneable [`Coordinator`] and asks it, before a page is sent, whether this box sends it now
//! ([`Coordinator::claim`]), and tells it after ([`Coordinator::sent`]). The thread renews the
//! lease a few times per TTL, but only while the paging path reports itself working (the lease
//! means "this box can page"), and moves between paired, alone and rejoining by the rules in
//! [`decide`](super::decide). While alone it answers "send" to every claim, so a box cut off from
//! etcd pages like a single box; what it sends and acks then is published when etcd is back.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::decide::{
    claim_delay, heal_records, incident_identity, next_mode, page_action, AloneLog, Finished,
    HealRecord, Health, Mode, ModeEvent, PageAction, PageId, PageView,
};
use super::etcd::{Claim, ConfigAgreement, Error, Etcd, LeaseId, PeerRecord};
use crate::config::HaConfig;

/// How often the peer's records (acks, resolves, shared alerts and overrides) are read between
/// lease renewals, which come only every third of `claim_ttl`: an alert that reached only the
/// peer is here within about this long, so the time in which it dies with the peer stays short.
const PEER_RECORDS_EVERY: Duration = Duration::from_secs(1);

/// What the sender does with a due page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it now (the claim is ours, or this box pages alone).
    Send,
    /// Ask again after this long: the peer holds the claim, or goes first.
    Later(Duration),
    /// Do not send it: the peer sent it, or the incident was acked or resolved on either box.
    Skip(Finished),
}

enum Command {
    Claim {
        page: PageId,
        incident: String,
        reply: oneshot::Sender<Decision>,
    },
    Sent {
        page: PageId,
        incident: String,
    },
    Release {
        page: PageId,
        incident: String,
    },
    Ack(String),
    Resolve(String, i64),
    Share {
        incident: String,
        alert: String,
    },
    ShareOverride {
        key: String,
        value: String,
    },
    Identity {
        dedup_key: String,
        start_ms: i64,
        reply: oneshot::Sender<String>,
    },
}

/// The handle: cheap to clone; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Coordinator {
    tx: std_mpsc::Sender<Command>,
    mode: watch::Receiver<Mode>,
}

impl Coordinator {
    /// Starts the coordinator thread. `paging` is `Some(health)` while this box's paging path
    /// works (that health is published to the peer) and `None` while it does not, which stops
    /// the lease renewals so the peer takes this box's claims when the TTL runs out.
    ///
    /// `config_hash` is this box's [`config_hash`](super::decide::config_hash): a peer with
    /// another turns coordination off. Acks and resolves the peer writes go to `peer_records`.
    pub fn start(
        cfg: HaConfig,
        etcd: Etcd,
        paging: watch::Receiver<Option<Health>>,
        config_hash: String,
        peer_records: tokio::sync::mpsc::UnboundedSender<PeerRecord>,
    ) -> std::io::Result<Coordinator> {
        let (tx, rx) = std_mpsc::channel();
        let now = Instant::now();
        // Start as if the lease had just been renewed: a box that cannot reach etcd at start
        // pages alone after `fallback_after`, like one that loses it later.
        let (mode_tx, mode) = watch::channel(Mode::Paired { last_renewed: now });
        let task = Task {
            cfg,
            etcd,
            paging,
            mode: mode_tx,
            lease: None,
            alone: AloneLog::default(),
            deferred: Default::default(),
            config_hash,
            peer_records,
            seen_revision: 0,
            seen_override_revision: 0,
            identities: Default::default(),
            peer: None,
        };
        std::thread::Builder::new()
            .name("ha-coordinator".into())
            .spawn(move || task.run(rx))?;
        Ok(Coordinator { tx, mode })
    }

    /// Whether this box sends `page` now. If the coordinator is gone the answer is
    /// [`Decision::Send`]: a duplicate is better than silence.
    pub async fn claim(&self, page: PageId, incident: &str) -> Decision {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Claim {
            page,
            incident: incident.to_string(),
            reply,
        };
        if self.tx.send(cmd).is_err() {
            return Decision::Send;
        }
        rx.await.unwrap_or(Decision::Send)
    }

    /// The page was sent: writes `sent` (or remembers it for the heal, when alone).
    pub fn sent(&self, page: PageId, incident: &str) {
        let _ = self.tx.send(Command::Sent {
            page,
            incident: incident.to_string(),
        });
    }

    /// The page could not be sent here: gives the claim back so the peer sends it now.
    pub fn release(&self, page: PageId, incident: &str) {
        let _ = self.tx.send(Command::Release {
            page,
            incident: incident.to_string(),
        });
    }

    /// An ack on this box, published so the peer starts no page of the incident.
    pub fn ack(&self, incident: &str) {
        let _ = self.tx.send(Command::Ack(incident.to_string()));
    }

    /// A resolve on this box at `at_ms` (milliseconds since the epoch), published likewise.
    pub fn resolve(&self, incident: &str, at_ms: i64) {
        let _ = self.tx.send(Command::Resolve(incident.to_string(), at_ms));
    }

    /// An alert that reached only this box, shared under its incident's pair-wide name so the
    /// peer opens the same incident (kept for the heal while this box is alone).
    pub fn share(&self, incident: &str, alert: String) {
        let _ = self.tx.send(Command::Share {
            incident: incident.to_string(),
            alert,
        });
    }

    /// A runtime override added or deleted on this box, shared under its pair-wide `key` (kept
    /// for the heal while this box is alone).
    pub fn share_override(&self, key: String, value: String) {
        let _ = self.tx.send(Command::ShareOverride { key, value });
    }

    /// The pair-wide identity of this box's incident with `dedup_key`, started here at
    /// `start_ms`: with the peer's start when it wrote one first. Without etcd (alone, or the
    /// coordinator gone) the box's own start: its pages then claim on ids of their own, a
    /// duplicate at worst.
    pub async fn identity(&self, dedup_key: &str, start_ms: i64) -> String {
        let own = incident_identity(dedup_key, start_ms);
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Identity {
            dedup_key: dedup_key.to_string(),
            start_ms,
            reply,
        };
        if self.tx.send(cmd).is_err() {
            return own;
        }
        rx.await.unwrap_or(own)
    }

    /// The current mode, for `/healthz`, the status page and the LED.
    pub fn mode(&self) -> watch::Receiver<Mode> {
        self.mode.clone()
    }
}

/// Whether records are written to etcd now rather than kept for the heal: also while the
/// configs differ (etcd answers; the peer still wants the alerts and overrides made here), not
/// while alone or rejoining (a heal publishes them, in order).
fn reaches_etcd(mode: Mode) -> bool {
    matches!(mode, Mode::Paired { .. } | Mode::Independent)
}

struct Task {
    cfg: HaConfig,
    etcd: Etcd,
    paging: watch::Receiver<Option<Health>>,
    mode: watch::Sender<Mode>,
    lease: Option<LeaseId>,
    alone: AloneLog,
    /// Pages this box was told to hold back for the healthier peer; claimed on the next ask.
    deferred: std::collections::HashSet<PageId>,
    config_hash: String,
    peer_records: tokio::sync::mpsc::UnboundedSender<PeerRecord>,
    /// The etcd revision up to which the peer's acks and resolves were passed on.
    seen_revision: i64,
    /// The same for the peer's runtime overrides.
    seen_override_revision: i64,
    /// The peer's published health as read at the last renewal (`None`: none published, or
    /// etcd did not answer): who claims first is decided from it without a read per page.
    peer: Option<(String, Health)>,
    /// Canonical identities already settled, by (dedup key, local start): one round trip per
    /// incident, not per page.
    identities: std::collections::HashMap<(String, i64), String>,
}

impl Task {
    fn run(mut self, rx: std_mpsc::Receiver<Command>) {
        // Three renewals per TTL: one lost request does not lose the lease.
        let tick = self.cfg.claim_ttl / 3;
        let mut next_tick = Instant::now();
        let mut next_records = next_tick + PEER_RECORDS_EVERY;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                // A renewal reads the peer's records too.
                self.renew(now);
                next_tick = now + tick;
                next_records = now + PEER_RECORDS_EVERY;
            } else if now >= next_records {
                if self.mode.borrow().claims() {
                    self.pass_peer_records();
                }
                next_records = Instant::now() + PEER_RECORDS_EVERY;
            }
            let wake = next_tick.min(next_records);
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(cmd) => self.handle(cmd),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // A clean stop: let the peer take over at once instead of after the TTL.
        if let Some(lease) = self.lease.take() {
            let _ = self.etcd.revoke_lease(lease);
        }
    }

    fn set_mode(&mut self, event: ModeEvent) {
        let before = *self.mode.borrow();
        let after = next_mode(before, event, self.cfg.fallback_after);
        let changed = std::mem::discriminant(&before) != std::mem::discriminant(&after);
        if changed {
            match after {
                Mode::Alone { .. } => tracing::error!(
                    fallback_after = ?self.cfg.fallback_after,
                    "pair: etcd unreachable; this box now pages everything due on its own (duplicates possible)"
                ),
                Mode::Rejoining { .. } => {
                    tracing::warn!(
                        "pair: etcd reachable again; publishing what was sent and acked alone"
                    )
                }
                Mode::Paired { .. } => tracing::info!("pair: coordinating with the peer"),
                Mode::Independent => {
                    tracing::error!("pair: coordination off; both boxes page on their own")
                }
            }
        }
        self.mode.send_replace(after);
        if changed {
            crate::health::pair::changed();
        }
    }

    /// Renews (or first grants) the lease and publishes health, while the paging path works.
    fn renew(&mut self, now: Instant) {
        let health = *self.paging.borrow();
        let Some(health) = health else {
            // This box cannot page: let the lease run out so the peer takes our claims.
            self.set_mode(ModeEvent::Tick(now));
            return;
        };
        let renewed = match self.lease {
            Some(lease) => match self.etcd.keep_alive(lease) {
                Ok(_) => Ok(lease),
                Err(Error::LeaseExpired(_)) => self.etcd.grant_lease(self.cfg.claim_ttl),
                Err(e) => Err(e),
            },
            None => self.etcd.grant_lease(self.cfg.claim_ttl),
        };
        match renewed.and_then(|lease| {
            if self.lease != Some(lease) {
                // A new lease: claims made on an earlier one are gone (the peer may send them).
                tracing::info!(lease = lease.0, ttl = ?self.cfg.claim_ttl, "pair: lease granted");
            }
            self.lease = Some(lease);
            self.etcd
                .publish_health(&self.cfg.name, health, lease)
                .map(|()| lease)
        }) {
            Ok(lease) => {
                let now = Instant::now();
                match self
                    .etcd
                    .check_config_hash(&self.cfg.name, &self.config_hash, lease)
                {
                    Ok(ConfigAgreement::Agreed) => self.set_mode(ModeEvent::ConfigMatches(now)),
                    Ok(ConfigAgreement::Mismatch { theirs }) => {
                        if !matches!(*self.mode.borrow(), Mode::Independent) {
                            tracing::error!(ours = %self.config_hash, %theirs, "pair: the peer runs another escalation config; both boxes page on their own until the configs match");
                        }
                        self.set_mode(ModeEvent::ConfigMismatch);
                    }
                    Err(e) => tracing::warn!(error = %e, "pair: cannot compare configs"),
                }
                self.set_mode(ModeEvent::LeaseRenewed(now));
                if matches!(*self.mode.borrow(), Mode::Rejoining { .. }) {
                    self.heal();
                }
                self.pass_peer_records();
                self.peer = self.etcd.peer_health(&self.cfg.name).unwrap_or(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "pair: cannot renew the lease");
                self.set_mode(ModeEvent::Tick(now));
            }
        }
    }

    /// Passes on the acks and resolves the peer wrote since the last look, so they are applied
    /// here too (the claim transaction already stops pages of them; this closes the incident).
    fn pass_peer_records(&mut self) {
        match self.etcd.peer_records(&self.cfg.name, self.seen_revision) {
            Ok((records, revision)) => {
                for r in records {
                    let _ = self.peer_records.send(r);
                }
                self.seen_revision = revision;
            }
            Err(e) => tracing::warn!(error = %e, "pair: cannot read the peer's acks"),
        }
        match self
            .etcd
            .peer_overrides(&self.cfg.name, self.seen_override_revision)
        {
            Ok((records, revision)) => {
                for r in records {
                    let _ = self.peer_records.send(r);
                }
                self.seen_override_revision = revision;
            }
            Err(e) => tracing::warn!(error = %e, "pair: cannot read the peer's overrides"),
        }
    }

    /// Publishes what happened alone, then claims again.
    fn heal(&mut self) {
        let records = heal_records(&self.alone, |_| false);
        for r in &records {
            let written = match r {
                HealRecord::Intake(i, alert) => self
                    .settled(i)
                    .and_then(|i| self.etcd.publish_intake(&i, &self.cfg.name, alert)),
                HealRecord::Override(key, value) => {
                    self.etcd.publish_override(key, &self.cfg.name, value)
                }
                HealRecord::Ack(i) => self
                    .settled(i)
                    .and_then(|i| self.etcd.publish_ack(&i, &self.cfg.name)),
                HealRecord::Resolve(i, at) => self
                    .settled(i)
                    .and_then(|i| self.etcd.publish_resolve(&i, &self.cfg.name, *at)),
                // Named with the incident as this box alone knew it: marked under the pair's
                // name, the id the peer computes, so the peer does not send it again.
                HealRecord::Sent(p) => match p.incident().map(str::to_string) {
                    Some(own) => self.settled(&own).and_then(|i| {
                        let page = p.renamed(&i).unwrap_or_else(|| p.clone());
                        self.etcd.mark_sent_alone(&page, &self.cfg.name)
                    }),
                    None => self.etcd.mark_sent_alone(p, &self.cfg.name),
                },
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, "pair: cannot publish what was done alone; will retry");
                return;
            }
        }
        self.alone = AloneLog::default();
        self.set_mode(ModeEvent::HealPublished(Instant::now()));
    }

    fn handle(&mut self, cmd: Command) {
        let mode = *self.mode.borrow();
        match cmd {
            Command::Claim {
                page,
                incident,
                reply,
            } => {
                let _ = reply.send(self.decide(mode, &page, &incident));
            }
            Command::Sent { page, incident } => {
                if mode.claims() {
                    if let Err(e) = self.etcd.mark_sent(&page, &incident, &self.cfg.name) {
                        // The claim runs out with the lease and the peer may send again: a
                        // duplicate, never a lost page.
                        tracing::warn!(error = %e, %page, "pair: cannot record a sent page");
                    }
                } else {
                    self.alone.sent.push(page);
                }
            }
            Command::Release { page, incident } => {
                if mode.claims() {
                    if let Err(e) = self.etcd.release(&page, &incident, &self.cfg.name) {
                        tracing::warn!(error = %e, %page, "pair: cannot release a claim; the peer takes it when the lease ends");
                    }
                }
            }
            Command::Ack(i) => {
                if !mode.claims() || self.etcd.publish_ack(&i, &self.cfg.name).is_err() {
                    self.alone.acked.push(i);
                }
            }
            Command::Resolve(i, at) => {
                if !mode.claims() || self.etcd.publish_resolve(&i, &self.cfg.name, at).is_err() {
                    self.alone.resolved.push((i, at));
                }
            }
            Command::Share { incident, alert } => {
                if !reaches_etcd(mode)
                    || self
                        .etcd
                        .publish_intake(&incident, &self.cfg.name, &alert)
                        .is_err()
                {
                    self.alone.shared.push((incident, alert));
                }
            }
            Command::ShareOverride { key, value } => {
                if !reaches_etcd(mode)
                    || self
                        .etcd
                        .publish_override(&key, &self.cfg.name, &value)
                        .is_err()
                {
                    self.alone.overrides.push((key, value));
                }
            }
            Command::Identity {
                dedup_key,
                start_ms,
                reply,
            } => {
                let _ = reply.send(self.identity(mode, dedup_key, start_ms));
            }
        }
    }

    /// The pair-wide identity of an incident this box may have named on its own (alone, or
    /// when etcd did not answer): an ack made alone must reach the peer under the name the peer
    /// uses, or the peer keeps paging an incident acknowledged here; a page sent alone is marked
    /// under the id the peer computes with that name.
    fn settled(&mut self, identity: &str) -> Result<String, Error> {
        let Some((key, start)) = identity
            .rsplit_once('@')
            .and_then(|(k, s)| Some((k.to_string(), s.parse::<i64>().ok()?)))
        else {
            return Ok(identity.to_string());
        };
        if let Some(known) = self.identities.get(&(key.clone(), start)) {
            return Ok(known.clone());
        }
        let canonical = incident_identity(&key, self.etcd.incident_start(&key, start)?);
        self.identities.insert((key, start), canonical.clone());
        Ok(canonical)
    }

    fn identity(&mut self, mode: Mode, dedup_key: String, start_ms: i64) -> String {
        let key = (dedup_key, start_ms);
        if let Some(known) = self.identities.get(&key) {
            return known.clone();
        }
        if !mode.claims() {
            return incident_identity(&key.0, start_ms);
        }
        match self.etcd.incident_start(&key.0, start_ms) {
            Ok(start) => {
                let id = incident_identity(&key.0, start);
                if self.identities.len() > 10_000 {
                    self.identities.clear();
                }
                self.identities.insert(key, id.clone());
                id
            }
            Err(e) => {
                tracing::warn!(error = %e, dedup_key = %key.0, "pair: cannot settle an incident's start; using this box's own");
                incident_identity(&key.0, start_ms)
            }
        }
    }

    fn decide(&mut self, mode: Mode, page: &PageId, incident: &str) -> Decision {
        let (true, Some(lease)) = (mode.claims(), self.lease) else {
            // Alone, rejoining or independent: page like a single box. Without a lease yet
            // (the first grant is still failing) the same holds until fallback decides.
            return if mode.claims() {
                Decision::Later(self.cfg.takeover_delay.max(Duration::from_secs(1)))
            } else {
                Decision::Send
            };
        };
        // The healthier box tries first; this one holds back once, for the takeover delay.
        if self.deferred.len() > 10_000 {
            self.deferred.clear();
        }
        if !self.deferred.remove(page) {
            let delay = self.claim_delay();
            if !delay.is_zero() {
                self.deferred.insert(page.clone());
                return Decision::Later(delay);
            }
        }
        let view = match self.etcd.claim(page, incident, &self.cfg.name, lease) {
            Ok(Claim::Won) => return Decision::Send,
            Ok(Claim::Lost(view)) => view,
            Err(e) => {
                tracing::warn!(error = %e, %page, "pair: claim failed; asking again shortly");
                return Decision::Later(Duration::from_secs(1));
            }
        };
        self.after_lost(&view)
    }

    /// How long this box holds back before claiming, by the published health of both boxes
    /// (the peer's as read at the last renewal, a fraction of a TTL ago).
    fn claim_delay(&mut self) -> Duration {
        let mine = (*self.paging.borrow()).unwrap_or(Health {
            registered: false,
            signal_dbm: None,
        });
        match &self.peer {
            Some((peer, theirs)) => claim_delay(
                &self.cfg.name,
                mine,
                peer,
                Some(*theirs),
                self.cfg.takeover_delay,
            ),
            // No peer health published, or etcd did not answer: the claim itself decides.
            None => Duration::ZERO,
        }
    }

    fn after_lost(&self, view: &PageView) -> Decision {
        match page_action(&self.cfg.name, view, Duration::ZERO) {
            PageAction::Done(why) => Decision::Skip(why),
            // Our own claim from an earlier attempt that did not finish: send now.
            PageAction::Send => Decision::Send,
            // The peer holds it: ask again once its claim could have run out.
            PageAction::Watch => Decision::Later(self.cfg.claim_ttl / 2),
            // Free again (the peer's claim vanished without `sent`): claim on the next ask.
            PageAction::Claim { .. } => Decision::Later(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::etcd::tests::{client, config, free_port, page, start_member, start_member_on};

    const GOOD: Health = Health {
        registered: true,
        signal_dbm: Some(-70),
    };

    fn coordinator(
        name: &str,
        url: &str,
        ttl: Duration,
        fallback: Duration,
    ) -> (Coordinator, watch::Sender<Option<Health>>) {
        let mut cfg = config(&[url]);
        cfg.name = name.into();
        cfg.claim_ttl = ttl;
        cfg.fallback_after = fallback;
        cfg.takeover_delay = Duration::from_millis(300);
        let (paging_tx, paging) = watch::channel(Some(GOOD));
        let etcd = Etcd::new(&cfg).expect("client");
        let (records, _) = tokio::sync::mpsc::unbounded_channel();
        (
            Coordinator::start(cfg, etcd, paging, "same".into(), records).unwrap(),
            paging_tx,
        )
    }

    /// Asks until the answer is not "later", or `deadline` passes.
    async fn settle(c: &Coordinator, p: &PageId, incident: &str, deadline: Duration) -> Decision {
        let end = Instant::now() + deadline;
        loop {
            match c.claim(p.clone(), incident).await {
                Decision::Later(d) if Instant::now() + d < end => tokio::time::sleep(d).await,
                other => return other,
            }
        }
    }

    #[tokio::test]
    async fn a_healthy_pair_sends_each_page_once() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(6), s(30));
        let mut sends = 0;
        for n in 0..10 {
            let incident = format!("i{n}");
            let p = page(&incident);
            // Both boxes see the page due at once.
            let (da, db) = tokio::join!(
                settle(&a, &p, &incident, s(3)),
                settle(&b, &p, &incident, Duration::from_millis(200))
            );
            for (d, c) in [(&da, &a), (&db, &b)] {
                if *d == Decision::Send {
                    sends += 1;
                    c.sent(p.clone(), &incident);
                }
            }
        }
        assert_eq!(sends, 10, "exactly one send per page");
    }

    #[tokio::test]
    async fn a_box_that_cannot_page_loses_its_claim_to_the_peer() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, paging_a) = coordinator("a", &m.url, s(3), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(3), s(30));
        let p = page("stuck");
        assert_eq!(settle(&a, &p, "stuck", s(3)).await, Decision::Send);
        // a claimed it, then its paging path broke before it could send: no more renewals.
        paging_a.send_replace(None);
        let started = Instant::now();
        assert_ne!(b.claim(p.clone(), "stuck").await, Decision::Send);
        assert_eq!(settle(&b, &p, "stuck", s(10)).await, Decision::Send);
        let took = started.elapsed();
        assert!(took <= s(3) + s(2), "takeover took {took:?}");
    }

    #[test]
    fn shared_records_wait_for_the_heal_only_while_alone() {
        let t = Instant::now();
        assert!(reaches_etcd(Mode::Paired { last_renewed: t }));
        assert!(reaches_etcd(Mode::Independent));
        assert!(!reaches_etcd(Mode::Alone { since: t }));
        assert!(!reaches_etcd(Mode::Rejoining { since: t }));
    }

    #[tokio::test]
    async fn the_peers_records_arrive_between_renewals() {
        let Some(m) = start_member() else { return };
        let mut cfg = config(&[&m.url]);
        cfg.name = "a".into();
        // Renewals every 3 s; the records must come sooner.
        cfg.claim_ttl = Duration::from_secs(9);
        let (_paging_tx, paging) = watch::channel(Some(GOOD));
        let etcd = Etcd::new(&cfg).expect("client");
        let (records_tx, mut records) = tokio::sync::mpsc::unbounded_channel();
        let a = Coordinator::start(cfg, etcd, paging, "same".into(), records_tx).unwrap();
        // Paired, with the first renewal (and its read) behind it.
        let _ = a.identity("warm-up", 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut peer = client(&[&m.url]);
        peer.publish_intake("k@5", "b", "{}").unwrap();
        let started = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(3), records.recv())
            .await
            .expect("a record before the next renewal")
            .unwrap();
        assert_eq!(got.identity, "k@5");
        assert!(started.elapsed() <= PEER_RECORDS_EVERY + Duration::from_millis(800));
    }

    #[tokio::test]
    async fn an_ack_on_one_box_stops_the_page_on_the_other() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, _pa) = coordinator("a", &m.url, s(6), s(30));
        let (b, _pb) = coordinator("b", &m.url, s(6), s(30));
        a.ack("acked");
        // Commands to one box run in order: once a has answered a claim, its ack is in etcd.
        let _ = a.claim(page("other"), "other").await;
        let p = page("acked");
        assert_eq!(
            settle(&b, &p, "acked", s(3)).await,
            Decision::Skip(Finished::Acked)
        );
    }

    #[tokio::test]
    async fn an_ack_and_a_page_made_alone_are_published_under_the_peers_name_for_the_incident() {
        let Some(m) = start_member() else { return };
        let s = Duration::from_secs;
        let (a, paging_a) = coordinator("a", &m.url, s(3), s(1));
        // a cannot page: no renewals, and alone once the fallback has passed.
        paging_a.send_replace(None);
        let mut mode = a.mode();
        tokio::time::timeout(s(10), mode.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone within the fallback")
            .unwrap();
        let own = a.identity("k", 1_040).await;
        assert_eq!(
            own, "k@1040",
            "alone, a box names an incident by its own start"
        );
        a.ack(&own);
        // A page of it sent alone, named with a's own start.
        let sent_alone = page(&own);
        assert_eq!(a.claim(sent_alone.clone(), &own).await, Decision::Send);
        a.sent(sent_alone, &own);
        // Meanwhile the peer named the incident first.
        let mut peer = client(&[&m.url]);
        assert_eq!(peer.incident_start("k", 1_000).unwrap(), 1_000);
        paging_a.send_replace(Some(GOOD));
        tokio::time::timeout(s(15), mode.wait_for(|m| matches!(m, Mode::Paired { .. })))
            .await
            .expect("paired again after the heal")
            .unwrap();
        let view = peer.page_view(&page("k@1000"), "k@1000").unwrap();
        assert!(view.acked, "the ack reached the peer's name: {view:?}");
        // The page sent alone is marked under the id the peer computes: it is not sent again.
        let other = peer.page_view(&page("k@1000"), "other").unwrap();
        assert!(other.sent, "sent under the peer's name: {other:?}");
    }

    #[tokio::test]
    async fn a_box_cut_off_pages_alone_and_publishes_on_heal() {
        let s = Duration::from_secs;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let (a, _pa) = coordinator("a", &url, s(3), s(1));
        let mut mode = a.mode();
        let p = page("cut");
        // Not alone yet: no lease, no claim, asked to come back.
        assert!(matches!(
            a.claim(p.clone(), "cut").await,
            Decision::Later(_)
        ));
        tokio::time::timeout(s(10), mode.wait_for(|m| matches!(m, Mode::Alone { .. })))
            .await
            .expect("alone within the fallback")
            .unwrap();
        assert_eq!(a.claim(p.clone(), "cut").await, Decision::Send);
        a.sent(p.clone(), "cut");
        a.ack("cut");
        // An alert only this box received while alone: published on heal.
        a.share("cut", "{}".into());

        let Some(_m) = start_member_on(port) else {
            return;
        };
        tokio::time::timeout(s(15), mode.wait_for(|m| matches!(m, Mode::Paired { .. })))
            .await
            .expect("paired again after the heal")
            .unwrap();
        let mut peer = client(&[&url]);
        let view = peer.page_view(&p, "cut").unwrap();
        assert!(view.sent && view.acked, "{view:?}");
        let (records, _) = peer.peer_records("b", 0).unwrap();
        assert!(
            records
                .iter()
                .any(|r| r.kind == crate::ha::etcd::PeerKind::Intake && r.identity == "cut"),
            "{records:?}"
        );
    }
}
