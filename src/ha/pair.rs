//! The pair inside the daemon: the gate a sender passes before each page, the task that
//! carries acks and resolves both ways, and the feed that tells the coordinator whether this
//! box can page.
//!
//! What the sender sees is [`Gate::before`]: "send it" (with a claim to report on after), or
//! "handled" (the row was held back for the peer, marked sent by the peer, or cancelled by an
//! ack made on the peer). Pages to a person about one incident are claimed here; digests,
//! status messages and outbound notifications in [`super::messages`]; replies are sent by the
//! box the SMS reached.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::coordinator::{Coordinator, Decision, DuePage};
use super::decide::{Finished, Health, Mode, PageId};
use super::etcd::{PeerKind, PeerRecord};
use crate::health::pair::Standing;
use crate::health::PagingHealth;
use crate::incident::{Actor, Channel};
use crate::store::outbox::{self, Attempt, Page, PageKind};
use crate::store::until_stored;
use crate::store::{pair as rows, Store, Tx};
use crate::supervisor::{Heartbeat, Liveness};

/// The pair's mode as the coordinator last published it, for `/healthz`, the status page and
/// the LED. Set once when the daemon starts its coordinator; unset in a single box. A process
/// holds one daemon, so one slot is enough, and the health code needs no pair types in its
/// signatures.
static MODE: OnceLock<watch::Receiver<Mode>> = OnceLock::new();

/// Publishes the coordinator's mode for the status page row, and its standing to `health`
/// (for `/healthz`, `/metrics` and the LED).
pub fn publish_mode(mode: watch::Receiver<Mode>) {
    let _ = MODE.set(mode.clone());
    crate::health::pair::publish(move || standing(*mode.borrow()));
}

/// What health needs of a mode.
fn standing(mode: Mode) -> Standing {
    match mode {
        Mode::Paired { .. } => Standing::Paired,
        Mode::Alone { .. } => Standing::Alone,
        Mode::Rejoining { .. } => Standing::Rejoining,
        Mode::Independent => Standing::Independent,
    }
}

/// Why the pair is impaired now, in one word (`alone`, `rejoining`, `independent`); `None`
/// while paired or in a single box.
fn impairment() -> Option<&'static str> {
    standing(*MODE.get()?.borrow()).impairment()
}

/// The status page's row about the pair: paired, or why this box pages on its own.
pub fn status_row() -> maud::Markup {
    let Some(mode) = MODE.get() else {
        return maud::html! {};
    };
    let paired = matches!(*mode.borrow(), Mode::Paired { .. });
    maud::html! {
        tr {
            th { "Pair" }
            td id="pair" {
                @if paired {
                    span.up { "paired: pages are claimed through etcd, each sent once" }
                } @else {
                    @match impairment() {
                        Some("alone") => span.down { "alone: etcd unreachable, this box pages everything due on its own (duplicates possible)" },
                        Some("independent") => span.down { "independent: the peer runs another escalation config, both boxes page on their own" },
                        _ => span.down { "rejoining: publishing what was sent and acknowledged alone" },
                    }
                }
            }
        }
    }
}

/// A claim this box won, to report on after the attempt.
#[derive(Debug)]
pub struct Claimed {
    pub(super) page: PageId,
    pub(super) incident: String,
}

/// What the sender does after asking the gate.
#[derive(Debug)]
pub enum Pass {
    /// Send the page; `Some` when it was claimed in etcd (report the outcome with
    /// [`Gate::after`]).
    Send(Option<Claimed>),
    /// The row was dealt with here (held for the peer, sent by the peer, acked on the peer).
    Handled,
}

/// What names a claimed row for the gate, read by the sender in the store job that claims the
/// row: by the time the gate runs, nothing stands between the claim and etcd but the hand-off
/// to the page thread.
#[derive(Debug)]
pub struct Names {
    facts: Result<Option<rows::PageFacts>, rusqlite::Error>,
    /// How long the read took inside the claim job: this box's own part of the price.
    took: Duration,
}

impl Names {
    /// Reads the facts of `page` (one look-up by key for a page an escalation step queued). A
    /// failure is kept, not returned: the claim stands, and the gate sends without a claim.
    pub fn read(conn: &Tx, page: &Page) -> Names {
        let started = std::time::Instant::now();
        let facts = rows::page_facts(conn, page);
        Names {
            facts,
            took: started.elapsed(),
        }
    }
}

/// The sender's side of the coordinator.
#[derive(Clone)]
pub struct Gate {
    pub coordinator: Coordinator,
}

impl Gate {
    /// Decides whether this box sends the claimed row `page`, named by `names` (read when it
    /// was claimed), now, and records on the row what it does not send. Any failure to name
    /// the page sends it: a duplicate, never silence.
    pub async fn before(
        &self,
        store: &Store,
        shutdown: &CancellationToken,
        page: &Page,
        names: Names,
    ) -> Pass {
        let started = std::time::Instant::now();
        let facts_us = names.took.as_micros() as u64;
        let facts = match names.facts {
            Ok(Some(f)) => f,
            Ok(None) => return self.before_message(store, shutdown, page).await,
            Err(e) => {
                tracing::warn!(page = page.id, error = %e, "pair: cannot name a page; sending it without a claim");
                return Pass::Send(None);
            }
        };
        let asked = self.coordinator.claim(due(facts)).await;
        let (decision, id, identity) = (asked.decision, asked.page, asked.incident);
        // How long the pair held the page up on the sending path, besides reading its facts with
        // the claim (`facts_us`).
        let took_us = started.elapsed().as_micros() as u64;
        tracing::debug!(page = page.id, pair_page = %id, incident = %identity, ?decision, took_us, facts_us, "pair: claim");
        if decision == Decision::Send {
            return Pass::Send(Some(Claimed {
                page: id,
                incident: identity,
            }));
        }
        record_decision(store, shutdown, page, decision).await;
        Pass::Handled
    }

    /// What the escalation engine tells of the pages a pass queued that the senders take next,
    /// inside the pass's transaction: each is claimed in etcd now, while the pass commits and
    /// the sender claims its row, and [`Gate::before`] then finds the answer waiting. Only reads
    /// and hands the page to the page thread; a page whose facts cannot be read is claimed by
    /// the gate as usual.
    pub fn early_claims(&self) -> outbox::NextClaims {
        let coordinator = self.coordinator.clone();
        std::sync::Arc::new(move |conn: &Tx, pages: &[Page]| {
            for page in pages {
                if let Ok(Some(facts)) = rows::page_facts(conn, page) {
                    coordinator.claim_early(due(facts));
                }
            }
        })
    }

    /// Reports the outcome of a claimed page: `sent` for the pair when it went out, otherwise
    /// the claim goes back so the peer (or this box's next try) sends it now.
    pub fn after(&self, claimed: Claimed, outcome: &Attempt) {
        match outcome {
            Attempt::Sent { .. } => self.coordinator.sent(claimed.page, &claimed.incident),
            _ => self.coordinator.release(claimed.page, &claimed.incident),
        }
    }
}

/// The page the coordinator claims, by the facts its row names.
fn due(facts: rows::PageFacts) -> DuePage {
    DuePage {
        dedup_key: facts.dedup_key,
        start_ms: facts.first_seen.timestamp_millis(),
        step: facts.step,
        target: facts.user,
        channel: facts.channel,
        attempt: facts.ordinal,
    }
}

/// Records on the row what the pair decided instead of sending it: held for the peer until
/// `Later`, sent by the peer, or cancelled by an ack or resolve made on the peer. A record that
/// cannot be written leaves the row `sending`: its lease brings it back and the claim decides
/// again.
pub(super) async fn record_decision(
    store: &Store,
    shutdown: &CancellationToken,
    page: &Page,
    decision: Decision,
) {
    let p = page.clone();
    let what = format!("pair decision on {} {}", page.kind.as_str(), page.id);
    let stored = match decision {
        Decision::Send => return,
        Decision::Later(after) => {
            until_stored(store, shutdown, &what, move |c, now| {
                Ok(rows::hold_for_peer(
                    c,
                    &p,
                    crate::clock::add(now, after),
                    now,
                )?)
            })
            .await
        }
        Decision::Skip(Finished::Sent) => {
            let noun = match page.kind {
                PageKind::Page => "page",
                _ => "message",
            };
            tracing::info!(page = page.id, "{noun} sent by the peer box");
            until_stored(store, shutdown, &what, move |c, now| {
                Ok(rows::sent_by_peer(c, &p, now)?)
            })
            .await
        }
        Decision::Skip(why) => {
            let reason = match why {
                Finished::Resolved => "resolved on the peer box",
                _ => "acknowledged on the peer box",
            };
            let cancel = Attempt::Cancelled {
                reason: reason.into(),
            };
            until_stored(store, shutdown, &what, move |c, now| {
                Ok(outbox::finish(c, &p, &cancel, now)?)
            })
            .await
        }
    };
    if stored.is_none() {
        tracing::warn!(page = page.id, "pair: {what} was not recorded");
    }
}

/// Whether this box can page, as the coordinator's lease should say: a modem channel (or, on a
/// box without a modem, any channel) can send and every essential task shows progress. The
/// health published with it is the modem's.
pub fn can_page(
    paging: &PagingHealth,
    modem: Option<&crate::modem::Health>,
    late_tasks: usize,
) -> Option<Health> {
    if late_tasks > 0 {
        return None;
    }
    match modem {
        Some(m) => {
            let modem_ready = paging
                .ready
                .iter()
                .any(|c| matches!(c, Channel::Sms | Channel::Voice));
            modem_ready.then_some(Health {
                registered: m.registered,
                signal_dbm: m.signal_dbm,
            })
        }
        None => (!paging.impaired()).then_some(Health {
            registered: false,
            signal_dbm: None,
        }),
    }
}

/// Keeps `tx` (the coordinator's "can page" input) current from the paging health, the modem
/// and the supervisor's liveness, once a second and on every change, and says so to `fed`
/// ([`Coordinator::fed`]) each time. Were it stuck, the lease would go on being renewed on the
/// last health it passed, a modem that broke since included: the coordinator stops renewing
/// when `fed` falls silent, and `beat` fails `/healthz` and the watchdog.
pub async fn feed_health(
    mut paging: watch::Receiver<PagingHealth>,
    mut modem: Option<watch::Receiver<crate::modem::Health>>,
    liveness: Liveness,
    tx: watch::Sender<Option<Health>>,
    fed: impl Fn() + Send + 'static,
    beat: Heartbeat,
    shutdown: CancellationToken,
) {
    loop {
        beat.beat();
        let now = {
            let m = modem.as_ref().map(|m| m.borrow().clone());
            can_page(&paging.borrow(), m.as_ref(), liveness.late().len())
        };
        tx.send_if_modified(|old| {
            if *old != now {
                if now.is_none() {
                    tracing::error!(
                        "pair: this box cannot page; its lease lapses and the peer takes its pages"
                    );
                }
                *old = now;
                true
            } else {
                false
            }
        });
        fed();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            r = paging.changed() => if r.is_err() { return },
            r = async {
                match modem.as_mut() {
                    Some(m) => m.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => if !r { modem = None },
        }
    }
}

/// Carries acks and resolves both ways: publishes those made here (and an ack withdrawn here) (whatever the path: SMS,
/// HTTP, CLI, button, call), and applies those the peer made to this box's incidents. Alerts
/// the peer shared ([`super::share`]) are opened here in the order the peer wrote them, so an
/// incident exists before its ack arrives.
pub async fn sync_transitions(
    store: Store,
    coordinator: Coordinator,
    config: watch::Receiver<std::sync::Arc<crate::config::Config>>,
    mut peer: mpsc::UnboundedReceiver<PeerRecord>,
    shutdown: CancellationToken,
) {
    let mut cursor = loop {
        match store.read(|c, _| Ok(rows::last_event_id(c)?)).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::error!(error = %e, "pair: cannot read the timeline; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut commits = store.commits();
    // Not marked seen: a reload applied while this task started is passed on once (the
    // session ignores a hash it already has).
    let mut reloads = config.clone();
    let mut watching_reloads = true;
    // The peer's records not applied yet: the store refused one for a passing reason.
    let mut waiting: VecDeque<PeerRecord> = VecDeque::new();
    let mut next_retry = tokio::time::Instant::now();
    loop {
        // Tried again at most once a [`PEER_RETRY`], whatever wakes the loop (commits come
        // often in a storm, and a timer of its own would never fire between them).
        if !waiting.is_empty() && tokio::time::Instant::now() >= next_retry {
            next_retry = tokio::time::Instant::now() + PEER_RETRY;
            apply_in_order(&store, &coordinator, &config, &mut waiting).await;
        }
        let after = cursor;
        match store
            .read(move |c, _| Ok(rows::local_transitions(c, after, 200)?))
            .await
        {
            Ok(list) => {
                for t in list {
                    let identity = coordinator
                        .identity(&t.dedup_key, t.first_seen.timestamp_millis())
                        .await;
                    match t.change {
                        rows::Change::Resolved => {
                            coordinator.resolve(&identity, t.at.timestamp_millis())
                        }
                        rows::Change::Acknowledged => coordinator.ack(&identity),
                        rows::Change::Retriggered => coordinator.unack(&identity),
                    }
                    cursor = t.event_id;
                }
            }
            Err(e) => tracing::error!(error = %e, "pair: cannot read acks made here; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = commits.changed() => if r.is_err() { return },
            r = reloads.changed(), if watching_reloads => match r {
                Ok(()) => {
                    let hash = super::decide::config_hash(&reloads.borrow_and_update());
                    coordinator.config_changed(hash);
                }
                Err(_) => watching_reloads = false,
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            rec = peer.recv() => match rec {
                Some(rec) => {
                    // Behind any record still waiting: in the order the peer wrote them.
                    waiting.push_back(rec);
                    if waiting.len() == 1 {
                        apply_in_order(&store, &coordinator, &config, &mut waiting).await;
                    }
                }
                None => return,
            },
        }
    }
}

/// How old an incident is when its start is settled: a page due at once claims its
/// incident's start with its own claim (one transaction, made while the page is committed), and
/// an etcd commit for the settling at that moment would compete with it and with the page's
/// local commits for the CPU and the disk.
const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// Settles the canonical start of each incident that opens here, off the page path, once it is
/// [`SETTLE_AFTER`] old: by the time a later page is due (the next step, a page the peer
/// held back), its claim is the page's only etcd write. Pages do not depend on it (a page due
/// first settles the start itself), so a failure here only costs latency.
pub async fn settle_starts(store: Store, coordinator: Coordinator, shutdown: CancellationToken) {
    // Incidents open at the start are settled too: their next pages are named like the peer's.
    let mut cursor = 0;
    let mut commits = store.commits();
    loop {
        let after = cursor;
        // Until the next look: a commit or 5 s, or when the youngest incident read is old enough.
        let mut young = None;
        match store
            .read(move |c, now| Ok((rows::opened_since(c, after, 200)?, now)))
            .await
        {
            Ok((list, now)) => {
                for o in list {
                    if let Some(wait) = settle_in(now, o.first_seen) {
                        young = Some(wait);
                        break;
                    }
                    coordinator.settle(&o.dedup_key, o.first_seen.timestamp_millis());
                    cursor = o.id;
                }
            }
            Err(e) => tracing::warn!(error = %e, "pair: cannot read new incidents; retrying"),
        }
        match young {
            Some(wait) => tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            },
            None => tokio::select! {
                _ = shutdown.cancelled() => return,
                r = commits.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            },
        }
    }
}

/// How long until an incident that opened at `opened` is settled, `None` when it is due now (at
/// least [`SETTLE_AFTER`] old by `now`, or stamped in the future by a clock since stepped back).
fn settle_in(now: DateTime<Utc>, opened: DateTime<Utc>) -> Option<Duration> {
    let age = now.signed_duration_since(opened).to_std().ok()?;
    SETTLE_AFTER.checked_sub(age).filter(|wait| !wait.is_zero())
}

/// Applies one ack or resolve the peer made to this box's incident with the same identity.
/// How soon the peer's records the store refused are tried again.
const PEER_RETRY: Duration = Duration::from_secs(1);

/// Applies the peer's `waiting` records in the order the peer wrote them, until one must wait
/// (the store refused it for a passing reason): it holds back the rest, as an incident's alert
/// comes before its ack.
async fn apply_in_order(
    store: &Store,
    coordinator: &Coordinator,
    config: &watch::Receiver<std::sync::Arc<crate::config::Config>>,
    waiting: &mut VecDeque<PeerRecord>,
) {
    while let Some(rec) = waiting.front() {
        let applied = match rec.kind {
            PeerKind::Intake => super::share::apply_intake(store, config, rec).await,
            PeerKind::Override => {
                super::share::apply_override(store, rec).await;
                true
            }
            PeerKind::Ack | PeerKind::Resolve => apply_peer(store, coordinator, rec).await,
        };
        if !applied {
            return;
        }
        waiting.pop_front();
    }
}

/// Returns `false` when the store refused for a passing reason: the record is to be applied
/// again later, not dropped (the peer would stop paging an incident this box goes on paging).
async fn apply_peer(store: &Store, coordinator: &Coordinator, rec: &PeerRecord) -> bool {
    let Some((key, _start)) = rec.identity.rsplit_once('@') else {
        return true;
    };
    let key = key.to_string();
    let open = match store
        .read({
            let key = key.clone();
            move |c, _| Ok(rows::open_with_key(c, &key)?)
        })
        .await
    {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "pair: cannot look up the incident the peer acknowledged; trying again");
            return false;
        }
    };
    let mut applied = true;
    for (id, first_seen) in open {
        if coordinator
            .identity(&key, first_seen.timestamp_millis())
            .await
            != rec.identity
        {
            continue;
        }
        let actor = Actor::new(rec.by.clone(), "pair");
        let done = match rec.kind {
            PeerKind::Ack => store.acknowledge(id, actor).await,
            PeerKind::Resolve => store.resolve(id, actor).await,
            PeerKind::Intake | PeerKind::Override => return true,
        };
        match done {
            Ok((_, true)) => {
                tracing::info!(incident = id, by = %rec.by, kind = ?rec.kind, "pair: applied the peer's change")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(incident = id, error = %e, retry = e.is_retryable(), "pair: cannot apply the peer's change");
                applied &= !e.is_retryable();
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modem(registered: bool) -> crate::modem::Health {
        crate::modem::Health {
            registered,
            signal_dbm: Some(-70),
            ..crate::modem::Health::starting(crate::clock::system_now())
        }
    }

    #[test]
    fn an_incident_is_settled_once_it_is_a_second_old() {
        let opened = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |ms: i64| opened + chrono::Duration::milliseconds(ms);
        assert_eq!(settle_in(at(0), opened), Some(Duration::from_secs(1)));
        assert_eq!(settle_in(at(300), opened), Some(Duration::from_millis(700)));
        assert_eq!(settle_in(at(1_000), opened), None);
        assert_eq!(settle_in(at(90_000), opened), None);
        // Stamped ahead of the clock (a clock stepped back since): settled now, not never.
        assert_eq!(settle_in(at(-60_000), opened), None);
    }

    #[tokio::test]
    async fn the_health_feed_shows_progress_each_time_it_passes_health_on() {
        let liveness = Liveness::default();
        let beat = liveness.register("pair-health", Duration::from_secs(60));
        let (paging_tx, paging) = watch::channel(PagingHealth::default());
        let (tx, mut can_page) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let fed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = fed.clone();
        let feed = tokio::spawn(feed_health(
            paging,
            None,
            liveness,
            tx,
            move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            beat.clone(),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        paging_tx.send_replace(PagingHealth {
            ready: vec![Channel::Email],
            down: vec![],
        });
        tokio::time::timeout(Duration::from_secs(5), can_page.changed())
            .await
            .expect("the feed passes the change on")
            .unwrap();
        assert!(
            beat.since() < Duration::from_millis(300),
            "{:?}",
            beat.since()
        );
        // Once at the start and once for the change at least: the coordinator hears it live.
        assert!(fed.load(std::sync::atomic::Ordering::Relaxed) >= 2);
        shutdown.cancel();
        feed.await.unwrap();
    }

    #[test]
    fn a_box_can_page_while_its_modem_sends_and_no_task_is_late() {
        let sms = PagingHealth {
            ready: vec![Channel::Sms, Channel::Email],
            down: vec![],
        };
        let email_only = PagingHealth {
            ready: vec![Channel::Email],
            down: vec![(Channel::Sms, "not registered".into())],
        };
        let want = Some(Health {
            registered: true,
            signal_dbm: Some(-70),
        });
        assert_eq!(can_page(&sms, Some(&modem(true)), 0), want);
        // Email alone is no reason to keep claims: the peer's modem pages better.
        assert_eq!(can_page(&email_only, Some(&modem(false)), 0), None);
        // A stuck task: the lease must lapse.
        assert_eq!(can_page(&sms, Some(&modem(true)), 1), None);
        // No modem at all: any channel counts.
        assert!(can_page(&email_only, None, 0).is_some());
        assert_eq!(can_page(&PagingHealth::default(), None, 0), None);
    }
}
