//! The pair's decisions as pure functions: no I/O, no clock, no logs.
//!
//! Everything a box decides about a page or about its own mode is here, taking what it knows
//! (what etcd holds for a page, the published health of both boxes, when its lease was last
//! renewed, `now`) and returning what to do. The etcd adapter and the coordinator only carry
//! the inputs in and the answers out, so the rules that decide between "exactly once" and
//! "never silent" are tested by tables, not by killing daemons.

use std::fmt;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::incident::Channel;

/// The pair-wide identity of one page: the same on both boxes for the same due page, whatever
/// their local row ids are, because it is a hash of what makes the page what it is. Two boxes
/// that compute the same escalation agree on it without talking.
///
/// It keeps the key it was made from: a page sent while alone was named with the incident as
/// this box alone knew it, and on heal the same page is named again with the incident's
/// pair-wide name ([`PageId::renamed`]) so the peer learns it was sent. Equality, order and
/// hash are the id's alone.
#[derive(Debug, Clone)]
pub struct PageId {
    hex: String,
    key: Option<std::sync::Arc<OwnedPageKey>>,
}

impl PartialEq for PageId {
    fn eq(&self, other: &Self) -> bool {
        self.hex == other.hex
    }
}

impl Eq for PageId {}

impl std::hash::Hash for PageId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.hex.hash(state)
    }
}

impl PartialOrd for PageId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PageId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hex.cmp(&other.hex)
    }
}

/// A [`PageKey`] kept with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnedPageKey {
    incident: String,
    step: u32,
    target: String,
    channel: Channel,
    attempt: u32,
}

/// What makes a page the page it is, on both boxes alike.
#[derive(Debug, Clone, Copy)]
pub struct PageKey<'a> {
    /// The pair-wide incident key: the incident's dedup key and its canonical start time (the
    /// first box to write it wins), never a local row id.
    pub incident: &'a str,
    /// Escalation step, 0-based.
    pub step: u32,
    /// Who is paged: the user id from the config (the same on both boxes; the config hash
    /// check makes sure of that).
    pub target: &'a str,
    pub channel: Channel,
    /// The attempt on this channel, 1-based; a repeat of a policy is a new attempt.
    pub attempt: u32,
}

impl PageId {
    /// Hashes the page's key. Each field is length-prefixed, so no two keys share an encoding
    /// (`"a:b" + "c"` and `"a" + "b:c"` hash differently).
    pub fn new(key: PageKey<'_>) -> Self {
        let mut h = Sha256::new();
        for field in [
            key.incident.as_bytes(),
            &key.step.to_be_bytes(),
            key.target.as_bytes(),
            key.channel.as_str().as_bytes(),
            &key.attempt.to_be_bytes(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        let digest = h.finalize();
        // 128 bits: collisions among a box's lifetime of pages are out of reach, and the key
        // stays short in etcd.
        PageId {
            hex: digest[..16].iter().map(|b| format!("{b:02x}")).collect(),
            key: Some(std::sync::Arc::new(OwnedPageKey {
                incident: key.incident.to_string(),
                step: key.step,
                target: key.target.to_string(),
                channel: key.channel,
                attempt: key.attempt,
            })),
        }
    }

    /// The id as lowercase hex, as it appears in etcd keys.
    pub fn as_str(&self) -> &str {
        &self.hex
    }

    /// The incident identity the id was made with.
    pub fn incident(&self) -> Option<&str> {
        self.key.as_deref().map(|k| k.incident.as_str())
    }

    /// The same page of the incident named `incident`: the id the peer computes for it once
    /// both boxes agree on the incident's name.
    pub fn renamed(&self, incident: &str) -> Option<PageId> {
        let k = self.key.as_deref()?;
        Some(PageId::new(PageKey {
            incident,
            step: k.step,
            target: &k.target,
            channel: k.channel,
            attempt: k.attempt,
        }))
    }
}

/// What names a message other than a page the same way on both boxes. Each box queues these
/// on its own timing; claimed by such an id, the two copies of the same message go out once,
/// and copies that differ (a digest listing other incidents) get different ids and both go
/// out: a duplicate, never a message lost. Its `Debug` leaves a destination's URL out (a
/// webhook URL often carries its token); only a hash of it reaches etcd.
#[derive(Clone, Copy)]
pub enum MessageKey<'a> {
    /// The `ordinal`-th status update to a stakeholder `address` about an incident (by its
    /// pair-wide name): opened, acknowledged, resolved come in the same order on both boxes.
    Status {
        incident: &'a str,
        address: &'a str,
        channel: Channel,
        ordinal: u32,
    },
    /// A digest to `user`, by the pair-wide names of the incidents it lists (in any order).
    Digest {
        user: &'a str,
        channel: Channel,
        incidents: &'a [String],
    },
    /// A message about no incident (a shift notice), by its address and text.
    Notice {
        address: &'a str,
        channel: Channel,
        text: &'a str,
    },
    /// The `ordinal`-th chat/webhook notification of `event` (`incident.triggered`, ...) about
    /// an incident (by its pair-wide name) to a destination: its id, its kind and its URL, so
    /// that two boxes whose configs send the same id elsewhere both send.
    Outbound {
        incident: &'a str,
        destination: &'a str,
        kind: &'a str,
        url: &'a str,
        event: &'a str,
        ordinal: u32,
    },
}

impl std::fmt::Debug for MessageKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageKey::Status {
                incident,
                address,
                channel,
                ordinal,
            } => f
                .debug_struct("Status")
                .field("incident", incident)
                .field("address", address)
                .field("channel", channel)
                .field("ordinal", ordinal)
                .finish(),
            MessageKey::Digest {
                user,
                channel,
                incidents,
            } => f
                .debug_struct("Digest")
                .field("user", user)
                .field("channel", channel)
                .field("incidents", incidents)
                .finish(),
            MessageKey::Notice {
                address,
                channel,
                text,
            } => f
                .debug_struct("Notice")
                .field("address", address)
                .field("channel", channel)
                .field("text", text)
                .finish(),
            MessageKey::Outbound {
                incident,
                destination,
                kind,
                url: _,
                event,
                ordinal,
            } => f
                .debug_struct("Outbound")
                .field("incident", incident)
                .field("destination", destination)
                .field("kind", kind)
                .field("url", &"<hidden>")
                .field("event", event)
                .field("ordinal", ordinal)
                .finish(),
        }
    }
}

impl PageId {
    /// The id of a message other than a page. It keeps no page key: it is not renamed on heal
    /// (a status update's or digest's incident names are settled before it is claimed).
    pub fn message(key: MessageKey<'_>) -> PageId {
        let mut fields: Vec<Vec<u8>> = Vec::new();
        match key {
            MessageKey::Status {
                incident,
                address,
                channel,
                ordinal,
            } => {
                fields.push(b"status".to_vec());
                fields.push(incident.as_bytes().to_vec());
                fields.push(address.as_bytes().to_vec());
                fields.push(channel.as_str().as_bytes().to_vec());
                fields.push(ordinal.to_be_bytes().to_vec());
            }
            MessageKey::Digest {
                user,
                channel,
                incidents,
            } => {
                fields.push(b"digest".to_vec());
                fields.push(user.as_bytes().to_vec());
                fields.push(channel.as_str().as_bytes().to_vec());
                let mut names: Vec<&String> = incidents.iter().collect();
                names.sort();
                names.dedup();
                fields.extend(names.into_iter().map(|n| n.as_bytes().to_vec()));
            }
            MessageKey::Notice {
                address,
                channel,
                text,
            } => {
                fields.push(b"notice".to_vec());
                fields.push(address.as_bytes().to_vec());
                fields.push(channel.as_str().as_bytes().to_vec());
                fields.push(text.as_bytes().to_vec());
            }
            MessageKey::Outbound {
                incident,
                destination,
                kind,
                url,
                event,
                ordinal,
            } => {
                fields.push(b"outbound".to_vec());
                fields.push(incident.as_bytes().to_vec());
                fields.push(destination.as_bytes().to_vec());
                fields.push(kind.as_bytes().to_vec());
                fields.push(url.as_bytes().to_vec());
                fields.push(event.as_bytes().to_vec());
                fields.push(ordinal.to_be_bytes().to_vec());
            }
        }
        let mut h = Sha256::new();
        for f in &fields {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f);
        }
        PageId {
            hex: h.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            key: None,
        }
    }
}

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex)
    }
}

/// One box's ability to page, as it publishes it on its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The modem is registered on its network.
    pub registered: bool,
    /// Signal in dBm, when the modem reports one.
    pub signal_dbm: Option<i32>,
}

impl Health {
    /// Orders boxes by how likely a page sent now reaches the phone: registered first, then
    /// by signal; a registered modem with an unknown signal ranks below any known signal.
    fn rank(self) -> (bool, i32) {
        (self.registered, self.signal_dbm.unwrap_or(i32::MIN))
    }
}

/// When this box should try to claim a page that is due and unclaimed.
///
/// The healthier box tries at once and the other after `delay`, so a pair sends through the
/// better modem without a round of negotiation. Equal health is broken by name (the smaller
/// goes first) so that two equal boxes do not both try at the same instant; they could, the
/// claim transaction makes it safe, but one of them would always lose the race. A peer that
/// publishes no health (its lease ran out: it is gone or cannot page) is no reason to wait.
pub fn claim_delay(
    me: &str,
    mine: Health,
    peer: &str,
    theirs: Option<Health>,
    delay: Duration,
) -> Duration {
    let Some(theirs) = theirs else {
        return Duration::ZERO;
    };
    let first = match mine.rank().cmp(&theirs.rank()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => me < peer,
    };
    if first {
        Duration::ZERO
    } else {
        delay
    }
}

/// What etcd holds about one page, as read in one revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageView {
    /// The box that holds the claim, if any (claims vanish with their box's lease).
    pub claimed_by: Option<String>,
    /// A box wrote that it sent the page.
    pub sent: bool,
    /// The incident was acknowledged on either box.
    pub acked: bool,
    /// The incident was resolved on either box.
    pub resolved: bool,
}

/// Why a page is not sent by anyone any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Sent,
    Acked,
    Resolved,
}

/// What this box does next about one due page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageAction {
    /// The claim is ours: send the page, then write `sent`.
    Send,
    /// The peer holds the claim: watch it. If it vanishes without `sent` (the peer died, or
    /// released it because its modem failed), decide again.
    Watch,
    /// Nobody holds it and it is still due: try to claim after this delay.
    Claim { after: Duration },
    /// Nothing more to do for this page.
    Done(Finished),
}

/// Decides what to do about a page from what etcd holds. An ack or resolve ends the page
/// whatever else is there (the claim transaction checks them too, so no page starts after an
/// ack committed on either box); a `sent` ends it; a vanished claim makes it claimable again.
pub fn page_action(me: &str, view: &PageView, claim_after: Duration) -> PageAction {
    if view.resolved {
        return PageAction::Done(Finished::Resolved);
    }
    if view.acked {
        return PageAction::Done(Finished::Acked);
    }
    if view.sent {
        return PageAction::Done(Finished::Sent);
    }
    match &view.claimed_by {
        Some(owner) if owner == me => PageAction::Send,
        Some(_) => PageAction::Watch,
        None => PageAction::Claim { after: claim_after },
    }
}

/// Whether the lease may be renewed now. The lease means "this box can page": renewing it while
/// the paging path is broken would keep claims that will never be sent from the peer.
pub fn keep_lease(paging_path_works: bool) -> bool {
    paging_path_works
}

/// The box's relation to its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Claims pages through etcd; the lease was renewed at `last_renewed`.
    Paired { last_renewed: Instant },
    /// Could not renew the lease for `fallback_after`: pages everything due from its own state,
    /// like a single box, and shows "alone" on `/healthz` and the status page.
    Alone { since: Instant },
    /// etcd is reachable again after a time alone: publishing what was sent and acked alone
    /// before claiming again, so the peer does not page what this box already paged or acked.
    Rejoining { since: Instant },
    /// The peer's escalation config differs: coordination is off, both boxes page on their own.
    Independent,
}

/// What happened that may change the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeEvent {
    /// The lease was granted or renewed at this instant.
    LeaseRenewed(Instant),
    /// Time passed (a timer tick) without a renewal.
    Tick(Instant),
    /// Everything sent and acked while alone is in etcd.
    HealPublished(Instant),
    /// The config hash in etcd differs from ours.
    ConfigMismatch,
    /// The config hash in etcd matches ours again (both boxes run the same config).
    ConfigMatches(Instant),
}

/// The next mode. Falling back is decided by time since the last renewal, not by one failed
/// request: a blip shorter than `fallback_after` must not make both boxes page.
pub fn next_mode(mode: Mode, event: ModeEvent, fallback_after: Duration) -> Mode {
    use Mode::*;
    use ModeEvent::*;
    match (mode, event) {
        (_, ConfigMismatch) => Independent,
        (Independent, ConfigMatches(at)) => Paired { last_renewed: at },
        (Independent, _) => Independent,
        (Paired { .. }, LeaseRenewed(at)) => Paired { last_renewed: at },
        (Paired { last_renewed }, Tick(now)) => {
            if now.saturating_duration_since(last_renewed) >= fallback_after {
                Alone { since: now }
            } else {
                mode
            }
        }
        (Alone { .. }, LeaseRenewed(at)) => Rejoining { since: at },
        (Rejoining { .. }, HealPublished(at)) => Paired { last_renewed: at },
        (Rejoining { since }, Tick(now)) => {
            // Publishing needs etcd; if it is gone again for as long as a fallback, page alone.
            if now.saturating_duration_since(since) >= fallback_after {
                Alone { since: now }
            } else {
                mode
            }
        }
        (Rejoining { .. }, LeaseRenewed(_)) => mode,
        (Alone { .. } | Paired { .. }, HealPublished(_)) => mode,
        (Alone { .. } | Paired { .. } | Rejoining { .. }, ConfigMatches(_)) => mode,
        (Alone { .. }, Tick(_)) => mode,
    }
}

impl Mode {
    /// Whether pages go through claims in etcd; otherwise the box sends what is due on its own.
    pub fn claims(self) -> bool {
        matches!(self, Mode::Paired { .. })
    }

    /// Whether `/healthz` and the status page must show the pair as impaired.
    pub fn impaired(self) -> bool {
        !self.claims()
    }
}

/// What a box did while alone, kept locally until it can be published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AloneLog {
    /// Alerts that reached only this box while alone, to copy to the peer: (pair-wide incident
    /// key, the shared alert as written to etcd).
    pub shared: Vec<(String, String)>,
    /// Runtime overrides added or deleted here while alone: (pair-wide key, the override).
    pub overrides: Vec<(String, String)>,
    /// Pages this box sent while alone.
    pub sent: Vec<PageId>,
    /// Pair-wide incident keys acknowledged here while alone, and acks withdrawn (the
    /// incident went back to triggered), in the order they happened: the last one of an
    /// incident is what etcd must hold.
    pub acked: Vec<(String, AckMark)>,
    /// Pair-wide incident keys resolved here while alone, with when (milliseconds).
    pub resolved: Vec<(String, i64)>,
}

/// An incident acknowledged, or its ack withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMark {
    Ack,
    Retract,
}

/// One record to write to etcd on heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealRecord {
    Intake(String, String),
    Override(String, String),
    Sent(PageId),
    Ack(String),
    /// Delete the incident's ack: it is triggered again.
    Retract(String),
    Resolve(String, i64),
}

/// What to publish on heal: alerts only this box received first (the peer must hold the
/// incident before an ack or resolve of it means anything there), then acks and resolves (they
/// stop the peer's pages, the most urgent thing to tell it), then `sent` markers, each once,
/// and only what etcd does not have yet (`known` says whether it does), so a heal after a
/// short cut writes little.
pub fn heal_records(log: &AloneLog, known: impl Fn(&HealRecord) -> bool) -> Vec<HealRecord> {
    let mut out: Vec<HealRecord> = Vec::new();
    let all = log
        .shared
        .iter()
        .cloned()
        .map(|(i, alert)| HealRecord::Intake(i, alert))
        .chain(
            log.overrides
                .iter()
                .cloned()
                .map(|(k, o)| HealRecord::Override(k, o)),
        )
        .chain(
            last_ack_marks(&log.acked)
                .into_iter()
                .map(|(i, mark)| match mark {
                    AckMark::Ack => HealRecord::Ack(i),
                    AckMark::Retract => HealRecord::Retract(i),
                }),
        )
        .chain(
            log.resolved
                .iter()
                .cloned()
                .map(|(i, at)| HealRecord::Resolve(i, at)),
        )
        .chain(log.sent.iter().cloned().map(HealRecord::Sent));
    for r in all {
        if !known(&r) && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// The last ack mark of each incident in `marks`, in the order those last marks were made: an
/// ack withdrawn and given again is an ack, one given and withdrawn is none.
fn last_ack_marks(marks: &[(String, AckMark)]) -> Vec<(String, AckMark)> {
    marks
        .iter()
        .enumerate()
        .filter(|(n, (i, _))| !marks[n + 1..].iter().any(|(later, _)| later == i))
        .map(|(_, m)| m.clone())
        .collect()
}

/// The pair-wide name of an incident: its dedup key and its canonical start (milliseconds since
/// the epoch, as the first box to write it saw it). Local row ids differ between the boxes;
/// this does not, and it tells a later incident with the same key apart from an earlier one.
pub fn incident_identity(dedup_key: &str, start_ms: i64) -> String {
    format!("{dedup_key}@{start_ms}")
}

/// Whether an alert that came in through `via` reached this box only, so the peer learns of
/// it from etcd: a UDP datagram, an SMS `PAGE` and `pagerbox send` are addressed to one box.
/// HTTP sources list both boxes and pagerbox's own alerts (self-test, heartbeats) are raised by
/// each box about itself; copying them would only make the peer see the same key twice.
pub fn shares_intake(via: &str) -> bool {
    matches!(via, "udp" | "sms" | "cli")
}

/// How long before a peer's resolve an incident may have started on this box and still be the
/// peer's (resolved) incident rather than a new one. A box that saw the resolve itself has a new
/// local incident that started after it; one that did not still holds the old one, started
/// long before. Within this margin the choice is "new": a duplicate page, never a silent one.
pub const RESOLVE_MARGIN_MS: i64 = 2_000;

/// What etcd holds as the canonical start of a dedup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRecord {
    /// The canonical start, milliseconds since the epoch.
    pub start_ms: i64,
    /// When that incident was resolved on either box, if it was.
    pub resolved_at_ms: Option<i64>,
}

/// Which canonical start this box uses for its incident with a key, started here at `mine_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartChoice {
    /// Nobody wrote one: write ours, if nobody does first (then decide again).
    Create(i64),
    /// The same incident on the peer: use its start.
    Adopt(i64),
    /// The incident in etcd was resolved before ours started: ours is a new one; replace the
    /// record if it is still the one read (then decide again).
    Replace(i64),
}

/// Decides the canonical start of this box's incident. The first writer wins while the
/// incident is open on either box; an incident that starts after the one in etcd was resolved
/// is a new incident (see [`RESOLVE_MARGIN_MS`]).
pub fn canonical_start(mine_ms: i64, existing: Option<StartRecord>) -> StartChoice {
    match existing {
        None => StartChoice::Create(mine_ms),
        Some(StartRecord {
            start_ms,
            resolved_at_ms: None,
        }) => StartChoice::Adopt(start_ms),
        Some(StartRecord {
            start_ms,
            resolved_at_ms: Some(resolved),
        }) => {
            if mine_ms.saturating_add(RESOLVE_MARGIN_MS) > resolved {
                StartChoice::Replace(mine_ms)
            } else {
                StartChoice::Adopt(start_ms)
            }
        }
    }
}

/// How the claim path names an incident whose canonical start this box has not settled yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsettledStart {
    /// Write this box's start with the claim, in one transaction: the box that claims first
    /// is usually the first to name the incident.
    WithClaim,
    /// Read the start first: this box held the page back for the peer, which has most likely
    /// claimed it, and named the incident, meanwhile. Reads cost no disk write on the members;
    /// a claim folded with a start that is refused does.
    ReadFirst,
}

/// Decides [`UnsettledStart`] from whether this box held the page back for the peer.
pub fn unsettled_start(held_back_for_peer: bool) -> UnsettledStart {
    if held_back_for_peer {
        UnsettledStart::ReadFirst
    } else {
        UnsettledStart::WithClaim
    }
}

/// What the claim path does after a claim folded with this box's own start (`mine_ms`) was
/// not written, from what the same transaction read: the start in etcd (`theirs_ms`) and the
/// page's records under the identity with `mine_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartClaimNext {
    /// The start in etcd is this box's own (or there is none): the page's identity is the one
    /// just tried, and what etcd holds about the page decides.
    Act(PageAction),
    /// Another start is there (the peer was first, or an earlier incident with the key): settle
    /// the canonical start by [`canonical_start`] and claim under that identity.
    Settle,
}

/// Decides [`StartClaimNext`]. A start equal to ours names the same incident whatever else
/// is known: adopting it and replacing it with ours give the same identity.
pub fn after_start_claim(
    me: &str,
    mine_ms: i64,
    theirs_ms: Option<i64>,
    view: &PageView,
) -> StartClaimNext {
    match theirs_ms {
        Some(theirs) if theirs != mine_ms => StartClaimNext::Settle,
        _ => StartClaimNext::Act(page_action(me, view, Duration::ZERO)),
    }
}

/// The TTL of the lease a shared override goes on, published at `now_ms`: it lasts until the
/// override ends (`until_ms`; after that it is over on both boxes, whether the peer read it or
/// not, and so is a deletion of it) and `retention` more, for a box that was away to read it.
/// `None` when that is beyond what a lease can say: the record is kept.
pub fn override_retention(until_ms: i64, now_ms: i64, retention: Duration) -> Option<Duration> {
    let left_ms = u64::try_from(until_ms.checked_sub(now_ms)?.max(0)).ok()?;
    Duration::from_millis(left_ms).checked_add(retention)
}

/// The earliest wall-clock time (2026-01-01T00:00:00Z, in ms) a box can plausibly be at: a
/// box that boots without a real-time clock starts near 1970 until NTP sets it, and a lease
/// marked then would look long over to the peer, which would revoke it and the `sent` records
/// on it, seconds old, so that their pages are sent again.
pub const CLOCK_FLOOR_MS: i64 = 1_767_225_600_000;

/// How far in the future a retention mark may lie before it is judged implausible: the two
/// boxes' clocks differ by this much at most when both follow NTP.
pub const RETENTION_CLOCK_SLACK: Duration = Duration::from_secs(3600);

/// Whether this box's wall clock (`now_ms`) can be trusted to mark or judge retention leases.
pub fn clock_plausible(now_ms: i64) -> bool {
    now_ms >= CLOCK_FLOOR_MS
}

/// What to do with a retention lease marked as granted at `granted_ms` (a box's wall clock),
/// judged at `now_ms` (this box's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionVerdict {
    /// Its records are younger than the retention: keep it.
    Keep,
    /// It has held its records for the retention: revoke it, whatever TTL etcd still gives it.
    Revoke,
    /// One of the two clocks is wrong (the mark lies in the future beyond
    /// [`RETENTION_CLOCK_SLACK`], more than twice the retention back, or before
    /// [`CLOCK_FLOOR_MS`], or this box's clock is before the floor): keep it and warn; the TTL
    /// still ends it when the leader is stable. Revoking would delete records that may be
    /// seconds old, and their pages would be sent again.
    Implausible,
}

/// Decides [`RetentionVerdict`] for a lease whose records are kept for `retention` after its
/// grant. Leases are revoked by the clock because etcd resets every lease to its full TTL when
/// a new leader takes over (unless the members run with lease checkpoints), so in a cluster
/// whose leader changes more often than `retention` (a box rebooted weekly) a TTL alone would
/// never run out.
pub fn retention_verdict(granted_ms: i64, now_ms: i64, retention: Duration) -> RetentionVerdict {
    match i64::try_from(retention.as_millis())
        .ok()
        .and_then(|r| granted_ms.checked_add(r))
    {
        Some(end_ms) => lease_verdict(granted_ms, end_ms, now_ms),
        None => RetentionVerdict::Keep,
    }
}

/// Decides [`RetentionVerdict`] for a lease granted at `granted_ms` to keep its records until
/// `end_ms` (a shared override's lease: its end and the retention after), judged at `now_ms`.
/// A mark more than the lease's own span past its end means a clock was wrong.
pub fn lease_verdict(granted_ms: i64, end_ms: i64, now_ms: i64) -> RetentionVerdict {
    let slack_ms = i64::try_from(RETENTION_CLOCK_SLACK.as_millis()).unwrap_or(i64::MAX);
    if !clock_plausible(now_ms) || !clock_plausible(granted_ms) {
        return RetentionVerdict::Implausible;
    }
    let (Some(age_ms), Some(span_ms)) = (
        now_ms.checked_sub(granted_ms),
        end_ms.checked_sub(granted_ms),
    ) else {
        return RetentionVerdict::Implausible;
    };
    if span_ms < 0 || age_ms < slack_ms.saturating_neg() || age_ms > span_ms.saturating_mul(2) {
        RetentionVerdict::Implausible
    } else if age_ms >= span_ms {
        RetentionVerdict::Revoke
    } else {
        RetentionVerdict::Keep
    }
}

/// The hash of the parts of a config that decide who is paged when (users, schedules, policies,
/// routes, paging, silences), from their debug form: both boxes of a pair must run the same, or
/// their page ids would not meet and one box could hold back a page the other never makes.
pub fn config_hash(config: &crate::config::Config) -> String {
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        config.users,
        config.schedules,
        config.policies,
        config.routes,
        config.paging,
        config.silences
    );
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_key_never_shows_a_destination_url() {
        let key = MessageKey::Outbound {
            incident: "db@1",
            destination: "hook",
            kind: "webhook",
            url: "https://hooks.example/T0/B0/s3cr3t-token",
            event: "incident.triggered",
            ordinal: 1,
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("hook") && shown.contains("incident.triggered"));
    }

    fn key(incident: &str, step: u32, target: &str, channel: Channel, attempt: u32) -> PageId {
        PageId::new(PageKey {
            incident,
            step,
            target,
            channel,
            attempt,
        })
    }

    #[test]
    fn page_id_is_stable_and_changes_with_every_field() {
        let base = key("db-down@2026-12-06T11:00:00Z", 0, "alice", Channel::Sms, 1);
        // Fixed: both boxes (and both versions of a box during an upgrade) must agree.
        assert_eq!(
            base,
            key("db-down@2026-12-06T11:00:00Z", 0, "alice", Channel::Sms, 1)
        );
        assert_eq!(base.as_str().len(), 32);
        assert!(base.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        let variants = [
            key("db-down@2026-12-06T11:00:01Z", 0, "alice", Channel::Sms, 1),
            key("db-down@2026-12-06T11:00:00Z", 1, "alice", Channel::Sms, 1),
            key("db-down@2026-12-06T11:00:00Z", 0, "bob", Channel::Sms, 1),
            key(
                "db-down@2026-12-06T11:00:00Z",
                0,
                "alice",
                Channel::Voice,
                1,
            ),
            key("db-down@2026-12-06T11:00:00Z", 0, "alice", Channel::Sms, 2),
        ];
        for v in &variants {
            assert_ne!(&base, v);
        }
        // Length prefixes keep field boundaries apart.
        assert_ne!(
            key("ab", 0, "c", Channel::Sms, 1),
            key("a", 0, "bc", Channel::Sms, 1)
        );
    }

    const GOOD: Health = Health {
        registered: true,
        signal_dbm: Some(-70),
    };
    const WEAK: Health = Health {
        registered: true,
        signal_dbm: Some(-105),
    };
    const UNKNOWN_SIGNAL: Health = Health {
        registered: true,
        signal_dbm: None,
    };
    const UNREGISTERED: Health = Health {
        registered: false,
        signal_dbm: Some(-60),
    };

    #[test]
    fn healthier_box_claims_first() {
        let d = Duration::from_secs(2);
        let cases = [
            // (me, mine, peer, theirs, expected)
            ("a", GOOD, "b", Some(WEAK), Duration::ZERO),
            ("a", WEAK, "b", Some(GOOD), d),
            ("b", GOOD, "a", Some(UNREGISTERED), Duration::ZERO),
            ("b", UNREGISTERED, "a", Some(WEAK), d),
            ("a", UNKNOWN_SIGNAL, "b", Some(WEAK), d),
            // Ties go by name, so exactly one of two equal boxes goes first.
            ("a", GOOD, "b", Some(GOOD), Duration::ZERO),
            ("b", GOOD, "a", Some(GOOD), d),
            // A peer with no published health is gone: do not wait for it.
            ("b", UNREGISTERED, "a", None, Duration::ZERO),
        ];
        for (me, mine, peer, theirs, want) in cases {
            assert_eq!(
                claim_delay(me, mine, peer, theirs, d),
                want,
                "{me} {mine:?} vs {peer} {theirs:?}"
            );
        }
    }

    #[test]
    fn page_action_table() {
        let after = Duration::from_secs(2);
        let view = |claimed_by: Option<&str>, sent, acked, resolved| PageView {
            claimed_by: claimed_by.map(str::to_string),
            sent,
            acked,
            resolved,
        };
        let cases = [
            (view(None, false, false, false), PageAction::Claim { after }),
            (view(Some("a"), false, false, false), PageAction::Send),
            (view(Some("b"), false, false, false), PageAction::Watch),
            // The peer's claim vanished without `sent`: claim it ourselves.
            (view(None, false, false, false), PageAction::Claim { after }),
            (
                view(None, true, false, false),
                PageAction::Done(Finished::Sent),
            ),
            (
                view(Some("b"), true, false, false),
                PageAction::Done(Finished::Sent),
            ),
            // An ack ends the page even while we hold the claim: do not start it.
            (
                view(Some("a"), false, true, false),
                PageAction::Done(Finished::Acked),
            ),
            (
                view(None, false, true, false),
                PageAction::Done(Finished::Acked),
            ),
            (
                view(None, true, true, true),
                PageAction::Done(Finished::Resolved),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(page_action("a", &v, after), want, "{v:?}");
        }
    }

    #[test]
    fn lease_is_renewed_only_while_the_box_can_page() {
        assert!(keep_lease(true));
        assert!(!keep_lease(false));
    }

    #[test]
    fn mode_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let fb = s(30);
        use Mode::*;
        use ModeEvent::*;
        let cases = [
            // A blip shorter than the fallback keeps the pair.
            (
                Paired { last_renewed: t0 },
                Tick(t0 + s(29)),
                Paired { last_renewed: t0 },
            ),
            (
                Paired { last_renewed: t0 },
                Tick(t0 + s(30)),
                Alone { since: t0 + s(30) },
            ),
            (
                Paired { last_renewed: t0 },
                LeaseRenewed(t0 + s(5)),
                Paired {
                    last_renewed: t0 + s(5),
                },
            ),
            // Alone stays alone until etcd answers again, however long.
            (Alone { since: t0 }, Tick(t0 + s(3600)), Alone { since: t0 }),
            (
                Alone { since: t0 },
                LeaseRenewed(t0 + s(40)),
                Rejoining { since: t0 + s(40) },
            ),
            // Rejoining claims nothing until what happened alone is published.
            (
                Rejoining { since: t0 },
                LeaseRenewed(t0 + s(1)),
                Rejoining { since: t0 },
            ),
            (
                Rejoining { since: t0 },
                HealPublished(t0 + s(2)),
                Paired {
                    last_renewed: t0 + s(2),
                },
            ),
            (
                Rejoining { since: t0 },
                Tick(t0 + s(31)),
                Alone { since: t0 + s(31) },
            ),
            (
                Rejoining { since: t0 },
                Tick(t0 + s(10)),
                Rejoining { since: t0 },
            ),
            // A config mismatch turns coordination off from any mode, and only a match ends it.
            (Paired { last_renewed: t0 }, ConfigMismatch, Independent),
            (Alone { since: t0 }, ConfigMismatch, Independent),
            (Independent, LeaseRenewed(t0), Independent),
            (Independent, Tick(t0 + s(100)), Independent),
            (
                Independent,
                ConfigMatches(t0 + s(1)),
                Paired {
                    last_renewed: t0 + s(1),
                },
            ),
        ];
        for (from, event, want) in cases {
            assert_eq!(next_mode(from, event, fb), want, "{from:?} + {event:?}");
        }
        assert!(Paired { last_renewed: t0 }.claims());
        for m in [Alone { since: t0 }, Rejoining { since: t0 }, Independent] {
            assert!(!m.claims() && m.impaired(), "{m:?}");
        }
    }

    #[test]
    fn heal_publishes_acks_first_each_incidents_last_and_only_what_etcd_lacks() {
        let p1 = key("i1", 0, "alice", Channel::Sms, 1);
        let p2 = key("i2", 0, "alice", Channel::Sms, 1);
        let log = AloneLog {
            shared: vec![("i4".into(), "{}".into())],
            overrides: vec![("o1".into(), "{}".into())],
            sent: vec![p1.clone(), p2.clone(), p1.clone()],
            acked: vec![
                ("i1".into(), AckMark::Ack),
                ("i5".into(), AckMark::Ack),
                ("i6".into(), AckMark::Retract),
                ("i5".into(), AckMark::Retract),
                ("i6".into(), AckMark::Ack),
            ],
            resolved: vec![("i3".into(), 7)],
        };
        let got = heal_records(&log, |r| *r == HealRecord::Sent(p2.clone()));
        assert_eq!(
            got,
            [
                HealRecord::Intake("i4".into(), "{}".into()),
                HealRecord::Override("o1".into(), "{}".into()),
                HealRecord::Ack("i1".into()),
                HealRecord::Retract("i5".into()),
                HealRecord::Ack("i6".into()),
                HealRecord::Resolve("i3".into(), 7),
                HealRecord::Sent(p1),
            ]
        );
        assert!(heal_records(&AloneLog::default(), |_| false).is_empty());
    }

    #[test]
    fn messages_meet_when_they_say_the_same_and_part_when_not() {
        let status = |incident, ordinal| {
            PageId::message(MessageKey::Status {
                incident,
                address: "+4915100000009",
                channel: Channel::Sms,
                ordinal,
            })
        };
        assert_eq!(status("db@1", 1), status("db@1", 1));
        assert_ne!(status("db@1", 1), status("db@1", 2));
        assert_ne!(status("db@1", 1), status("db@2", 1));
        assert_eq!(status("db@1", 1).renamed("db@2"), None);
        let digest = |incidents: &[String]| {
            PageId::message(MessageKey::Digest {
                user: "alice",
                channel: Channel::Sms,
                incidents,
            })
        };
        let (x, y, z) = ("x@1".to_string(), "y@1".to_string(), "z@1".to_string());
        // The order the items were added in does not matter; another set is another digest.
        assert_eq!(
            digest(&[x.clone(), y.clone()]),
            digest(&[y.clone(), x.clone()])
        );
        assert_ne!(
            digest(&[x.clone(), y.clone()]),
            digest(std::slice::from_ref(&x))
        );
        assert_ne!(digest(&[x.clone(), y]), digest(&[x, z]));
        let notice = |text| {
            PageId::message(MessageKey::Notice {
                address: "+4915100000009",
                channel: Channel::Sms,
                text,
            })
        };
        assert_eq!(notice("on call until Mon"), notice("on call until Mon"));
        assert_ne!(notice("on call until Mon"), notice("on call until Tue"));
        // Kinds never meet, even with the same strings.
        assert_ne!(
            status("alice", 0),
            PageId::message(MessageKey::Notice {
                address: "+4915100000009",
                channel: Channel::Sms,
                text: "alice",
            })
        );
        let outbound = |incident, url, event, ordinal| {
            PageId::message(MessageKey::Outbound {
                incident,
                destination: "chat",
                kind: "slack",
                url,
                event,
                ordinal,
            })
        };
        let hook = "https://hooks.example/T1";
        let trigger = outbound("db@1", hook, "incident.triggered", 1);
        assert_eq!(trigger, outbound("db@1", hook, "incident.triggered", 1));
        assert_ne!(trigger, outbound("db@1", hook, "incident.acknowledged", 1));
        assert_ne!(trigger, outbound("db@1", hook, "incident.triggered", 2));
        assert_ne!(trigger, outbound("db@2", hook, "incident.triggered", 1));
        // The same destination id going elsewhere on the peer: both copies go out.
        assert_ne!(
            trigger,
            outbound("db@1", "https://hooks.example/T2", "incident.triggered", 1)
        );
        assert_eq!(trigger.renamed("db@2"), None);
    }

    #[test]
    fn only_intake_that_reached_one_box_is_shared() {
        for via in ["udp", "sms", "cli"] {
            assert!(shares_intake(via), "{via}");
        }
        for via in [
            "http",
            "alertmanager",
            "pagerduty",
            "pair",
            "heartbeat",
            "selftest",
            "",
        ] {
            assert!(!shares_intake(via), "{via}");
        }
    }

    #[test]
    fn a_box_that_held_back_reads_the_start_first() {
        assert_eq!(unsettled_start(false), UnsettledStart::WithClaim);
        assert_eq!(unsettled_start(true), UnsettledStart::ReadFirst);
    }

    #[test]
    fn a_claim_folded_with_our_start_settles_only_when_another_start_is_there() {
        use StartClaimNext::*;
        let empty = PageView::default();
        let sent = PageView {
            sent: true,
            ..PageView::default()
        };
        let ours = PageView {
            claimed_by: Some("a".into()),
            ..PageView::default()
        };
        let cases = [
            // This box wrote the same start a moment earlier (settled at intake): the page is
            // still free, claim it under that identity.
            (
                Some(1_000),
                empty.clone(),
                Act(PageAction::Claim {
                    after: Duration::ZERO,
                }),
            ),
            (
                Some(1_000),
                sent.clone(),
                Act(PageAction::Done(Finished::Sent)),
            ),
            (Some(1_000), ours, Act(PageAction::Send)),
            // No start but the page's records exist (the start record went first): they decide.
            (None, sent, Act(PageAction::Done(Finished::Sent))),
            // The peer's start (or an earlier incident's): settle it before claiming.
            (Some(990), empty.clone(), Settle),
            (Some(5_000), empty, Settle),
        ];
        for (theirs, view, want) in cases {
            assert_eq!(
                after_start_claim("a", 1_000, theirs, &view),
                want,
                "{theirs:?} {view:?}"
            );
        }
    }

    #[test]
    fn a_page_sent_alone_is_renamed_to_the_id_the_peer_computes() {
        let alone = key("db@1040", 1, "alice", Channel::Voice, 2);
        let paired = key("db@1000", 1, "alice", Channel::Voice, 2);
        assert_ne!(alone, paired);
        assert_eq!(alone.incident(), Some("db@1040"));
        assert_eq!(alone.renamed("db@1000"), Some(paired));
        assert_eq!(alone.renamed("db@1040"), Some(alone.clone()));
    }

    #[test]
    fn a_retention_lease_ends_by_the_clock() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let week_ms = 7 * 24 * 3_600_000;
        let at = CLOCK_FLOOR_MS + 1_000;
        assert_eq!(
            retention_verdict(at, at + week_ms - 1, week),
            RetentionVerdict::Keep
        );
        assert_eq!(
            retention_verdict(at, at + week_ms, week),
            RetentionVerdict::Revoke
        );
        assert_eq!(
            retention_verdict(i64::MAX, i64::MAX, week),
            RetentionVerdict::Keep
        );
    }

    #[test]
    fn a_retention_lease_is_revoked_by_the_clock_only_when_both_clocks_are_plausible() {
        use RetentionVerdict::*;
        let week = Duration::from_secs(7 * 24 * 3600);
        let day_ms = 24 * 3_600_000;
        let now = CLOCK_FLOOR_MS + 100 * day_ms;
        assert_eq!(retention_verdict(now - day_ms, now, week), Keep);
        assert_eq!(retention_verdict(now - 7 * day_ms, now, week), Revoke);
        assert_eq!(retention_verdict(now - 8 * day_ms, now, week), Revoke);
        assert_eq!(retention_verdict(now - 14 * day_ms, now, week), Revoke);
        // Older than twice the retention: a clock was wrong when it was marked.
        assert_eq!(retention_verdict(now - 15 * day_ms, now, week), Implausible);
        // Marked by a box that booted near 1970.
        assert_eq!(retention_verdict(5_000, now, week), Implausible);
        assert_eq!(retention_verdict(-5_000, now, week), Implausible);
        // Marked by a peer a little ahead: kept; far ahead: a clock is wrong.
        assert_eq!(retention_verdict(now + 60_000, now, week), Keep);
        assert_eq!(retention_verdict(now + day_ms, now, week), Implausible);
        // This box's own clock is before the floor: it judges nothing.
        assert_eq!(
            retention_verdict(5_000, 5_000 + 8 * day_ms, week),
            Implausible
        );
        assert_eq!(retention_verdict(i64::MIN, i64::MAX, week), Implausible);
        assert!(!clock_plausible(0) && clock_plausible(now));
    }

    #[test]
    fn an_override_lease_is_revoked_at_its_end() {
        use RetentionVerdict::*;
        let day_ms = 24 * 3_600_000;
        let granted = CLOCK_FLOOR_MS + day_ms;
        let end = granted + 30 * day_ms;
        assert_eq!(lease_verdict(granted, end, granted + day_ms), Keep);
        assert_eq!(lease_verdict(granted, end, end), Revoke);
        assert_eq!(lease_verdict(granted, end, end + 30 * day_ms), Revoke);
        assert_eq!(lease_verdict(granted, end, end + 31 * day_ms), Implausible);
        assert_eq!(lease_verdict(granted, granted - 1, granted), Implausible);
        assert_eq!(lease_verdict(5_000, end, granted), Implausible);
    }

    #[test]
    fn an_override_is_kept_until_it_ends_and_the_retention_after() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let hour_ms = 3_600_000;
        assert_eq!(
            override_retention(10 * hour_ms, 9 * hour_ms, week),
            Some(week + Duration::from_secs(3600))
        );
        // Over already (a deletion of a past override): the retention alone.
        assert_eq!(override_retention(0, hour_ms, week), Some(week));
        assert_eq!(override_retention(i64::MAX, i64::MIN, week), None);
    }

    #[test]
    fn canonical_start_first_writer_wins_and_a_resolved_incident_gives_way() {
        use StartChoice::*;
        let open = |s| {
            Some(StartRecord {
                start_ms: s,
                resolved_at_ms: None,
            })
        };
        let resolved = |s, r| {
            Some(StartRecord {
                start_ms: s,
                resolved_at_ms: Some(r),
            })
        };
        let cases = [
            (1_000, None, Create(1_000)),
            // The peer saw the alert 40 ms earlier: the same incident.
            (1_040, open(1_000), Adopt(1_000)),
            // Open on the peer for long: still the same incident (this box came late).
            (90_000, open(1_000), Adopt(1_000)),
            // Resolved at 50 s, ours started at 60 s: a new incident with the same key.
            (60_000, resolved(1_000, 50_000), Replace(60_000)),
            // Resolved at 50 s, ours started at 1 s: the peer's incident, resolved there.
            (1_020, resolved(1_000, 50_000), Adopt(1_000)),
            // Too close to tell: new, so a duplicate rather than silence.
            (49_000, resolved(1_000, 50_000), Replace(49_000)),
        ];
        for (mine, existing, want) in cases {
            assert_eq!(canonical_start(mine, existing), want, "{mine} {existing:?}");
        }
        assert_eq!(incident_identity("db/down", 5), "db/down@5");
    }
}
