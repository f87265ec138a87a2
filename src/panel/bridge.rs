//! Between the panel and the incidents: what the LED shows, and what a press of the button does.
//!
//! The pin task knows nothing about incidents (see the module header); this is the one place
//! that turns incidents and the paging verdict into a [`PanelState`], and a [`PanelEvent`] into
//! acknowledgements and resolutions on the store, recorded as the actor `on-site` via `button`.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{PanelEvent, PanelState};
use crate::incident::{Actor, Status};
use crate::notify::sender::PagingHealth;
use crate::store::{ListFilter, Store};

/// Acts on every button event until the panel's pin task is gone. The button then no longer
/// acknowledges, which the supervisor logs; the phone and the API still do.
pub async fn serve_button(store: Store, mut events: mpsc::Receiver<PanelEvent>) {
    while let Some(ev) = events.recv().await {
        button(&store, ev).await;
    }
}

/// The button's policy: a short press acknowledges every triggered incident as "on-site"; a long
/// press resolves the acknowledged ones.
async fn button(store: &Store, ev: PanelEvent) {
    let (from, to) = match ev {
        PanelEvent::AckAll => (Status::Triggered, Status::Acknowledged),
        PanelEvent::ResolveAcked => (Status::Acknowledged, Status::Resolved),
    };
    let open = match store.incidents(ListFilter::Open, 10_000).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "button: cannot read incidents");
            return;
        }
    };
    for i in open.into_iter().filter(|i| i.status == from) {
        let actor = Actor::new("on-site", "button");
        let r = if to == Status::Resolved {
            store.resolve(i.id, actor).await
        } else {
            store.acknowledge(i.id, actor).await
        };
        match r {
            Ok(_) => tracing::info!(incident = i.id, status = %to, "button"),
            Err(e) => {
                tracing::error!(incident = i.id, error = %e, "button: cannot change incident")
            }
        }
    }
}

/// How often the LED's state is recomputed with no change to wake it: what turns `/healthz` to
/// 503 by time alone (a task gone late, a page overdue, a modem gone silent) shows on the LED
/// within this. Each recheck is one store round trip and one read.
const RECHECK: Duration = Duration::from_secs(5);

/// What [`publish_state`] watches and where it publishes.
pub struct StateSources {
    pub store: Store,
    /// The same verdict as `/healthz` (see [`crate::health`]).
    pub health: crate::health::Sources,
    pub paging: watch::Receiver<PagingHealth>,
    pub selftest_fault: Option<watch::Receiver<bool>>,
    pub beat: crate::supervisor::Heartbeat,
}

/// Publishes what the LED shows: open incidents, acknowledged or not, and whether paging works.
/// Recomputed after every commit, on every change of paging health, the store's write health,
/// the modem's health, self-test verdict or (in a pair) the pair's standing, and every
/// [`RECHECK`] for what changes by time alone (a late task, an overdue page, a silent modem);
/// a store that fails lights the LED as impaired.
pub async fn publish_state(
    sources: StateSources,
    panel: watch::Sender<PanelState>,
    shutdown: CancellationToken,
) {
    let StateSources {
        store,
        health,
        mut paging,
        mut selftest_fault,
        beat,
    } = sources;
    let mut commits = store.commits();
    // A store that cannot write commits nothing: its write health is what changes.
    let mut write_health = store.write_health();
    let mut modem = health.modem.clone();
    // Pair hook: the pair's standing is part of the verdict; it changes without a commit.
    #[cfg(feature = "ha")]
    let mut pair = crate::health::pair::subscribe();
    loop {
        beat.beat();
        // Mark the watches seen, so the select below waits for their next change.
        paging.borrow_and_update();
        write_health.borrow_and_update();
        if let Some(m) = modem.as_mut() {
            m.borrow_and_update();
        }
        if let Some(f) = selftest_fault.as_mut() {
            f.borrow_and_update();
        }
        let impaired = health.verdict().await.impaired();
        match store.open_counts().await {
            Ok(open) => {
                let s = PanelState {
                    open_unacked: open.unacked,
                    open_acked: open.acked,
                    impaired,
                    oldest_unacked_age: open.oldest_unacked_age,
                };
                panel.send_if_modified(|old| {
                    let changed = *old != s;
                    *old = s;
                    changed
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "store failing");
                panel.send_modify(|s| s.impaired = true);
            }
        }
        #[cfg(feature = "ha")]
        let pair_changed = pair.changed();
        #[cfg(not(feature = "ha"))]
        let pair_changed = std::future::pending::<Result<(), ()>>();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = commits.changed() => if r.is_err() { return },
            r = paging.changed() => if r.is_err() { return },
            r = write_health.changed() => if r.is_err() { return },
            alive = async {
                match modem.as_mut() {
                    Some(m) => m.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => if !alive { modem = None },
            _ = pair_changed => {}
            alive = async {
                match selftest_fault.as_mut() {
                    Some(f) => f.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => if !alive { selftest_fault = None },
            _ = tokio::time::sleep(RECHECK) => {}
        }
    }
}
