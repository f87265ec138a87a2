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
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => match ev { Some(ev) => ev, None => return },
        };
        match ev {
            ModemEvent::DeliveryReport {
                reference,
                outcome,
                status,
                ..
            } => {
                let report = Delivery {
                    reference,
                    outcome,
                    status,
                };
                let config = config.borrow().clone();
                record_delivery(&store, &metrics, report, config, channels.clone()).await;
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

/// One delivery report, as the modem gave it.
struct Delivery {
    reference: u8,
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

    /// Whether no later try can deliver it: TS 23.040 §9.2.3.15 puts the permanent errors at
    /// 0x40..=0x5F (unknown or incompatible number, message expired or deleted); at 0x60..=0x7F
    /// the centre gave up on a temporary error (busy, no response), and a reserved value is
    /// not taken as the end of a page either.
    fn permanent(&self) -> bool {
        (0x40..=0x5F).contains(&self.status)
    }
}

/// Records one delivery report on its page, bounded by [`EVENT_STEP_TIMEOUT`], and counts it. A
/// page to a person that will not arrive goes on the way a failed send would (the person's next
/// channel), in the same write; a reply or a status update to a plain number stays as it is.
/// A report that cannot be recorded is logged and dropped: the page itself was sent, and the
/// escalation goes on without it.
async fn record_delivery(
    store: &Store,
    metrics: &Metrics,
    d: Delivery,
    config: Arc<Config>,
    channels: Arc<[Channel]>,
) {
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
    let write = store.record_delivery(d.reference.to_string(), report, detail, next);
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
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record a delivery report"),
        Err(_) => tracing::warn!(
            reference = d.reference,
            waited_s = EVENT_STEP_TIMEOUT.as_secs(),
            "delivery report not recorded in time; moving on (the page was sent)"
        ),
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
