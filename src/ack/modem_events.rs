//! What the modem reports, each to its owner: delivery reports onto the page's row and timeline,
//! a self-test's reply to the self-test, other SMS and incoming calls to the command handler
//! (acknowledgements by SMS or missed call).
//!
//! One consumer task reads the driver's event channel so that no event waits behind another
//! owner's slow step for long: every step is bounded, and nothing here awaits the modem itself
//! except the short reject task (see [`run`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::incident::{Channel, Incident};
use crate::metrics::{Metrics, PageOutcome};
use crate::modem::pdu::DeliveryOutcome;
use crate::modem::{Modem, ModemEvent};
use crate::notify::sender;
use crate::store::outbox::{Attempt, Page, PageKind, Report};
use crate::store::Store;

/// Where [`run`] sends what the modem reports.
pub struct EventSinks {
    /// To reject a missed-call acknowledgement unanswered.
    pub modem: Modem,
    /// Delivery reports land on the page's row and timeline.
    pub store: Store,
    /// SMS commands and missed calls.
    pub ack: super::AckHandle,
    pub clock: Arc<dyn Clock>,
    /// Takes a self-test's reply before the ack handler sees it.
    pub selftest: Option<crate::selftest::Inbox>,
    /// Counts delivered/undelivered SMS pages.
    pub metrics: Metrics,
    /// Runs the short reject task, so shutdown waits for it.
    pub tracker: tokio_util::task::TaskTracker,
    /// The config in force: where an undelivered page goes next.
    pub config: watch::Receiver<Arc<Config>>,
    /// The channels that have a sender (see [`crate::notify::sender::after_undelivered`]).
    pub channels: Vec<Channel>,
}

/// Longest wait of the event consumer for one store write or ack decision. Each is normally a
/// few milliseconds; a store that stalls longer must not stop the consumer (events would pile
/// up in the modem driver until it drops delivery reports).
const EVENT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the modem to reject a ringing call (behind a page being submitted).
const REJECT_TIMEOUT: Duration = Duration::from_secs(90);

/// Handles what the modem reports: delivery reports land on the page's timeline; incoming SMS go
/// to the command handler (acks, STATUS, ...); an incoming call from a paged user may be a
/// missed-call acknowledgement and is then rejected unanswered.
///
/// This consumer never awaits a modem request: the driver produces these events, and while it
/// serves a request it does not read more URCs, so a consumer waiting on it while it waits for
/// room for events would stall both. The reject runs as its own short task instead (one at a
/// time: a second call cannot ring while the first is being rejected). Store writes and ack
/// decisions are bounded by [`EVENT_STEP_TIMEOUT`].
pub async fn run(
    mut events: tokio::sync::mpsc::Receiver<ModemEvent>,
    sinks: EventSinks,
    shutdown: CancellationToken,
) {
    let EventSinks {
        modem,
        store,
        ack,
        clock,
        selftest,
        metrics,
        tracker,
        config,
        channels,
    } = sinks;
    let channels: Arc<[Channel]> = channels.into();
    let mut rejecting: Option<tokio::task::JoinHandle<()>> = None;
    // Failure reports that matched no sent page yet, with when to look again (see `Unmatched`).
    let mut unmatched = Unmatched::default();
    loop {
        let retry_at = unmatched.next_at();
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)),
                if retry_at.is_some() =>
            {
                if let Some((d, tries)) = unmatched.pop() {
                    let config = config.borrow().clone();
                    if !record_delivery(&store, &metrics, d.clone(), config, channels.clone()).await {
                        unmatched.again(d, tries);
                    }
                }
                continue;
            }
            ev = events.recv() => match ev { Some(ev) => ev, None => return },
        };
        match ev {
            ModemEvent::DeliveryReport {
                reference,
                ref recipient,
                outcome,
                status,
                ..
            } => {
                let report = Delivery {
                    reference,
                    recipient: recipient.clone(),
                    outcome,
                    status,
                };
                let config = config.borrow().clone();
                let matched =
                    record_delivery(&store, &metrics, report.clone(), config, channels.clone())
                        .await;
                if !matched && report.report() == Report::Undelivered {
                    unmatched.again(report, 0);
                }
            }
            ModemEvent::SmsReceived {
                ref from, ref text, ..
            } if selftest.as_ref().is_some_and(|i| i.offer(from, text)) => {
                tracing::info!("self-test reply received");
            }
            ModemEvent::SmsReceived { ref from, .. } => {
                let Some(msg) = super::Inbound::from_event(&ev, clock.now()) else {
                    continue;
                };
                match tokio::time::timeout(EVENT_STEP_TIMEOUT, ack.sms(msg)).await {
                    Ok(Ok(outcome)) => tracing::debug!(?outcome, "sms command handled"),
                    Ok(Err(e)) => tracing::error!(error = %e, "sms command could not be handled"),
                    Err(_) => tracing::error!(
                        from = %crate::modem::driver::mask_number(from),
                        waited_s = EVENT_STEP_TIMEOUT.as_secs(),
                        "sms command not handled in time; the sender may need to reply again"
                    ),
                }
            }
            ModemEvent::IncomingCall { from } => {
                let reject = ack_call(&ack, from).await;
                if !reject {
                    continue;
                }
                if rejecting.as_ref().is_some_and(|t| !t.is_finished()) {
                    tracing::debug!("a reject is already on its way to the modem");
                    continue;
                }
                rejecting = Some(tracker.spawn(reject_call(modem.clone())));
            }
            ModemEvent::Dtmf { .. } | ModemEvent::CallEnded => {}
        }
    }
}

/// Failure reports that found no sent page, or that the store did not take: the report of a
/// part can arrive before the sender has recorded the page as sent (the parts of a long page go out one after another, and a
/// network that gives up at once answers while the last part is still being submitted). Each
/// is looked up again [`UNMATCHED_AGAIN`] later, up to [`UNMATCHED_TRIES`] times, then logged
/// and dropped; at most [`UNMATCHED_MAX`] wait, the oldest dropped first.
#[derive(Default)]
struct Unmatched(std::collections::VecDeque<(tokio::time::Instant, Delivery, u8)>);

const UNMATCHED_AGAIN: Duration = Duration::from_secs(3);
const UNMATCHED_TRIES: u8 = 3;
const UNMATCHED_MAX: usize = 64;

impl Unmatched {
    fn next_at(&self) -> Option<tokio::time::Instant> {
        self.0.front().map(|(at, ..)| *at)
    }

    fn pop(&mut self) -> Option<(Delivery, u8)> {
        self.0.pop_front().map(|(_, d, tries)| (d, tries))
    }

    /// `d` found no page after `tries` lookups: held for another, or given up on.
    fn again(&mut self, d: Delivery, tries: u8) {
        if tries >= UNMATCHED_TRIES {
            tracing::warn!(
                reference = d.reference,
                status = d.status,
                "an undelivered report matches no sent SMS page; dropped"
            );
            return;
        }
        if self.0.len() >= UNMATCHED_MAX {
            if let Some((_, old, _)) = self.0.pop_front() {
                tracing::warn!(
                    reference = old.reference,
                    "too many unmatched delivery reports; the oldest dropped"
                );
            }
        }
        let at = tokio::time::Instant::now() + UNMATCHED_AGAIN;
        self.0.push_back((at, d, tries + 1));
    }
}

/// One delivery report, as the modem gave it.
#[derive(Debug, Clone)]
struct Delivery {
    reference: u8,
    /// The number the report is about, as the modem gave it (may be empty).
    recipient: String,
    outcome: DeliveryOutcome,
    /// Raw TP-ST.
    status: u8,
}

impl Delivery {
    fn report(&self) -> Report {
        match self.outcome {
            DeliveryOutcome::Delivered => Report::Delivered,
            DeliveryOutcome::Pending => Report::StillTrying,
            DeliveryOutcome::Failed => Report::Undelivered,
        }
    }

    /// Whether no later try can deliver it because of the number itself (TS 23.040 §9.2.3.15):
    /// 0x41 incompatible destination (a number that takes no SMS), 0x43 not obtainable, 0x45 no
    /// interworking. The spec files more under "permanent", but they are about the message,
    /// not the number: 0x46 (validity period expired) is a phone that stayed off, and a phone
    /// that is on again later takes the next try. So only these end a page that SMS alone
    /// can carry; every other status retries after a pause.
    fn permanent(&self) -> bool {
        matches!(self.status, 0x41 | 0x43 | 0x45)
    }
}

/// Records one delivery report on its page, bounded by [`EVENT_STEP_TIMEOUT`], and counts it;
/// false when no sent page has its reference (yet: see [`Unmatched`]) or the store did not take
/// it. A page to a person that will not arrive goes on the way a failed send would (the
/// person's next channel), in the same write; a reply or a status update to a plain number
/// stays as it is. A report the store does not take is logged; an undelivered one is tried
/// again (the caller's `Unmatched`), any other is dropped: that page was sent, and the
/// escalation goes on without it.
async fn record_delivery(
    store: &Store,
    metrics: &Metrics,
    d: Delivery,
    config: Arc<Config>,
    channels: Arc<[Channel]>,
) -> bool {
    let report = d.report();
    let permanent = d.permanent();
    let detail = format!("{:?} (status {:#04x})", d.outcome, d.status);
    let reason = detail.clone();
    let next = move |p: &Page, about: &[Incident], now| -> Option<Attempt> {
        matches!(p.kind, PageKind::Page | PageKind::Digest).then(|| {
            let available = sender::way_on(p, about, &config, &channels);
            sender::after_undelivered(p, &reason, permanent, &config, &available, now)
        })
    };
    let write = store.record_delivery(
        d.reference.to_string(),
        d.recipient.clone(),
        report,
        detail,
        next,
    );
    match tokio::time::timeout(EVENT_STEP_TIMEOUT, write).await {
        Ok(Ok(Some((page, way_on)))) => {
            // A "still trying" report is not an outcome yet: its final report is counted.
            match report {
                Report::Delivered => metrics.page(Channel::Sms, PageOutcome::Delivered),
                Report::Undelivered => metrics.page(Channel::Sms, PageOutcome::Undelivered),
                Report::StillTrying => {}
            }
            if let Some(outcome) = way_on {
                tracing::warn!(
                    page = page.id,
                    reference = d.reference,
                    status = d.status,
                    outcome = PageOutcome::of(&outcome).as_str(),
                    "sms page not delivered; it goes on as after a failed send"
                );
                metrics.page(Channel::Sms, PageOutcome::of(&outcome));
            }
            true
        }
        Ok(Ok(None)) => {
            tracing::debug!(
                reference = d.reference,
                "a delivery report matches no sent SMS page"
            );
            false
        }
        // Not recorded: an undelivered report is looked up again (see `Unmatched`; a write that
        // landed late leaves no sent page to match, so nothing is applied twice).
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot record a delivery report");
            false
        }
        Err(_) => {
            tracing::warn!(
                reference = d.reference,
                waited_s = EVENT_STEP_TIMEOUT.as_secs(),
                "delivery report not recorded in time; moving on (the page was sent)"
            );
            false
        }
    }
}

/// Asks the command handler whether an incoming call is a missed-call acknowledgement that
/// should be rejected unanswered; bounded by [`EVENT_STEP_TIMEOUT`], and "no" on any failure.
async fn ack_call(ack: &super::AckHandle, from: Option<String>) -> bool {
    match tokio::time::timeout(EVENT_STEP_TIMEOUT, ack.missed_call(from)).await {
        Ok(Ok(d)) => d.reject,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "incoming call could not be handled");
            false
        }
        Err(_) => {
            tracing::error!(
                waited_s = EVENT_STEP_TIMEOUT.as_secs(),
                "incoming call not handled in time"
            );
            false
        }
    }
}

/// Rejects the ringing call, bounded by [`REJECT_TIMEOUT`]; runs as its own short task so the
/// consumer never waits on the modem (see [`run`]).
async fn reject_call(modem: Modem) {
    match tokio::time::timeout(REJECT_TIMEOUT, modem.reject_incoming()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot reject the incoming call"),
        Err(_) => tracing::warn!(
            waited_s = REJECT_TIMEOUT.as_secs(),
            "the modem did not reject the incoming call in time"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a number that cannot take SMS ends a page; a phone that stayed off (the message
    /// expired) or a busy one is tried again.
    #[test]
    fn only_a_number_that_takes_no_sms_is_permanent() {
        let d = |status| Delivery {
            reference: 1,
            recipient: String::new(),
            outcome: DeliveryOutcome::from_status(status),
            status,
        };
        for status in [0x41, 0x43, 0x45] {
            assert!(d(status).permanent(), "{status:#04x}");
            assert_eq!(d(status).report(), Report::Undelivered);
        }
        for status in [0x40, 0x42, 0x46, 0x49, 0x62, 0x65, 0x80] {
            assert!(!d(status).permanent(), "{status:#04x}");
        }
        assert_eq!(d(0x46).report(), Report::Undelivered);
        assert_eq!(d(0x21).report(), Report::StillTrying);
        assert_eq!(d(0x00).report(), Report::Delivered);
    }
}
