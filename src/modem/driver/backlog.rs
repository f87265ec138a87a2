//! The driver's event backlog: events the daemon has not taken yet, kept in the driver so the
//! driver never waits on the event channel.
//!
//! The driver owns the port, so anything that makes it wait stops every page. Waiting for the
//! daemon to take an event is such a wait, and a dangerous one: the daemon's event consumer may
//! itself be waiting for the driver (rejecting a missed-call acknowledgement), and then both wait
//! forever. So the driver hands events over with `try_send` only, parks what does not fit here,
//! and drains the backlog from its main loop beside requests.
//!
//! The backlog is bounded. When it is full, the least valuable event goes first:
//! - **delivery reports** first. A lost delivery report is not a lost page: the page was
//!   submitted and recorded as sent; only the "delivered" mark on its timeline is missing. A
//!   report still stored on the SIM (`+CDSI`) is not even lost: it is deleted only once its
//!   event was accepted, and is read again later.
//! - then the informational call events (`CallEnded`, `Dtmf`: the daemon acts on neither; the
//!   call's outcome comes back to the caller of `call`).
//! - incoming calls and SMS last: an SMS may be an acknowledgement. An SMS that does not fit is
//!   refused, not dropped, where it is stored on the SIM (the driver leaves it there and reads
//!   it again once there is room); only a directly routed one (`+CMT`) can be lost, and that
//!   needs a backlog full of other SMS and calls.

use std::collections::VecDeque;

use super::ModemEvent;

/// How many events the driver keeps for the daemon beyond the channel. A burst of status
/// reports after a storm of pages is the largest realistic flood; each event is a few hundred
/// bytes at most.
pub(super) const BACKLOG_LIMIT: usize = 1024;

/// How much an event is worth keeping when the backlog is full; lower goes first.
fn value(ev: &ModemEvent) -> u8 {
    match ev {
        ModemEvent::DeliveryReport { .. } => 0,
        ModemEvent::CallEnded | ModemEvent::Dtmf { .. } => 1,
        ModemEvent::IncomingCall { .. } | ModemEvent::SmsReceived { .. } => 2,
    }
}

/// What [`Backlog::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Kept.
    Kept,
    /// Kept, and to make room this older, less valuable event was dropped.
    Evicted(ModemEvent),
    /// Not kept: the backlog is full of events worth at least as much.
    Refused(ModemEvent),
}

/// A bounded FIFO of events that drops the least valuable first; see the module docs.
#[derive(Debug)]
pub(super) struct Backlog {
    queue: VecDeque<ModemEvent>,
    limit: usize,
}

impl Backlog {
    /// An empty backlog holding at most `limit` events.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The oldest event, to hand over next.
    pub(super) fn pop(&mut self) -> Option<ModemEvent> {
        self.queue.pop_front()
    }

    /// Puts the oldest event back after a failed hand-over, keeping the order.
    pub(super) fn unpop(&mut self, ev: ModemEvent) {
        self.queue.push_front(ev);
    }

    /// Nobody will take events any more.
    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    /// Keeps `ev`, evicting the oldest event of the lowest value below `ev`'s when full.
    pub(super) fn push(&mut self, ev: ModemEvent) -> Pushed {
        if self.queue.len() < self.limit {
            self.queue.push_back(ev);
            return Pushed::Kept;
        }
        let incoming = value(&ev);
        let victim = self
            .queue
            .iter()
            .enumerate()
            .filter(|(_, q)| value(q) < incoming)
            .min_by_key(|(i, q)| (value(q), *i))
            .map(|(i, _)| i);
        match victim.and_then(|i| self.queue.remove(i)) {
            Some(old) => {
                self.queue.push_back(ev);
                Pushed::Evicted(old)
            }
            None => Pushed::Refused(ev),
        }
    }
}

/// A short word for an event's kind, for logs and the drop counter.
pub(super) fn kind(ev: &ModemEvent) -> &'static str {
    match ev {
        ModemEvent::DeliveryReport { .. } => "delivery_report",
        ModemEvent::SmsReceived { .. } => "sms",
        ModemEvent::IncomingCall { .. } => "incoming_call",
        ModemEvent::Dtmf { .. } => "dtmf",
        ModemEvent::CallEnded => "call_ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::pdu::DeliveryOutcome;

    fn report(reference: u8) -> ModemEvent {
        ModemEvent::DeliveryReport {
            reference,
            recipient: "+491".into(),
            delivered: true,
            outcome: DeliveryOutcome::Delivered,
            status: 0,
        }
    }

    fn sms(text: &str) -> ModemEvent {
        ModemEvent::SmsReceived {
            from: "+491".into(),
            text: text.into(),
            timestamp: chrono::DateTime::parse_from_rfc3339("2026-12-06T08:00:00+01:00").unwrap(),
            alphanumeric: false,
        }
    }

    fn drain(b: &mut Backlog) -> Vec<ModemEvent> {
        std::iter::from_fn(|| b.pop()).collect()
    }

    #[test]
    fn keeps_order_while_there_is_room() {
        let mut b = Backlog::new(3);
        assert_eq!(b.push(report(1)), Pushed::Kept);
        assert_eq!(b.push(sms("ack 1")), Pushed::Kept);
        assert_eq!(b.push(ModemEvent::CallEnded), Pushed::Kept);
        assert_eq!(b.len(), 3);
        let first = b.pop().unwrap();
        b.unpop(first);
        assert_eq!(
            drain(&mut b),
            vec![report(1), sms("ack 1"), ModemEvent::CallEnded]
        );
    }

    #[test]
    fn when_full_the_oldest_delivery_report_goes_first_then_call_events() {
        let mut b = Backlog::new(3);
        b.push(ModemEvent::CallEnded);
        b.push(report(1));
        b.push(report(2));
        // An SMS evicts the oldest report, not the call event.
        assert_eq!(b.push(sms("ack 1")), Pushed::Evicted(report(1)));
        assert_eq!(b.push(sms("ack 2")), Pushed::Evicted(report(2)));
        // No report left: the call event goes next.
        assert_eq!(
            b.push(ModemEvent::IncomingCall { from: None }),
            Pushed::Evicted(ModemEvent::CallEnded)
        );
        assert_eq!(
            drain(&mut b),
            vec![
                sms("ack 1"),
                sms("ack 2"),
                ModemEvent::IncomingCall { from: None }
            ]
        );
    }

    #[test]
    fn an_event_that_outranks_nothing_queued_is_refused_and_nothing_is_lost() {
        let mut b = Backlog::new(2);
        b.push(sms("ack 1"));
        b.push(report(1));
        // A report never evicts a report (that would only reorder the loss).
        assert_eq!(b.push(report(2)), Pushed::Refused(report(2)));
        assert_eq!(b.push(sms("ack 2")), Pushed::Evicted(report(1)));
        // Full of SMS: a further SMS is refused (the driver leaves it stored on the SIM).
        assert_eq!(b.push(sms("ack 3")), Pushed::Refused(sms("ack 3")));
        assert_eq!(drain(&mut b), vec![sms("ack 1"), sms("ack 2")]);
        assert!(b.is_empty());
        b.push(report(3));
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(kind(&report(1)), "delivery_report");
        assert_eq!(kind(&sms("x")), "sms");
        assert_eq!(
            kind(&ModemEvent::IncomingCall { from: None }),
            "incoming_call"
        );
        assert_eq!(kind(&ModemEvent::Dtmf { key: '1' }), "dtmf");
        assert_eq!(kind(&ModemEvent::CallEnded), "call_ended");
    }
}
