//! The states and kinds the store keeps as text, each with its one mapping to the stored name.
//!
//! The database holds plain words (`pending`, `digest`) so that a person reading it with
//! `sqlite3`, a report, or an older binary sees the same thing; code holds enums so a typo is a
//! compile error rather than a page that silently matches nothing. The names here are stable: a
//! new name is a new variant, and renaming one needs a migration of the stored rows.

use std::fmt;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// Where an outbox row is in its life: `pending -> sending -> sent -> delivered`, or to
/// `failed`/`cancelled`. Pages, replies, digests, outbound notifications and self-tests all use
/// these states; the channel column says who sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Queued; due at `due_at`.
    Pending,
    /// Claimed by a sender under a lease; the attempt is counted.
    Sending,
    /// Handed to the network, the mail relay or the receiver.
    Sent,
    /// The delivery report said it reached the handset.
    Delivered,
    /// Given up for good.
    Failed,
    /// Nothing to send any more (the incident was acknowledged first, for instance).
    Cancelled,
}

impl OutboxState {
    /// Every state, in life-cycle order.
    pub const ALL: [OutboxState; 6] = [
        OutboxState::Pending,
        OutboxState::Sending,
        OutboxState::Sent,
        OutboxState::Delivered,
        OutboxState::Failed,
        OutboxState::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
            OutboxState::Cancelled => "cancelled",
        }
    }

    /// The state a stored name means; `None` for a name no version ever wrote.
    pub fn parse(s: &str) -> Option<OutboxState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True once the row reached the network or the relay (it may still be delivered later).
    pub fn was_sent(self) -> bool {
        matches!(self, OutboxState::Sent | OutboxState::Delivered)
    }

    /// True when nothing will ever send the row (failed for good or cancelled).
    pub fn is_given_up(self) -> bool {
        matches!(self, OutboxState::Failed | OutboxState::Cancelled)
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests and callers that hold a stored name compare without parsing it first.
impl PartialEq<&str> for OutboxState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl ToSql for OutboxState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A stored state no version wrote is a corrupt row: reading it fails loudly rather than
/// guessing whether the page went out.
impl FromSql for OutboxState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        OutboxState::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown outbox state {s:?}").into()))
    }
}

/// What kind of message an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageKind {
    /// A page about one incident.
    Page,
    /// Several incidents in one message (grouping window, or held back by the rate limit).
    Digest,
    /// A status update for a stakeholder.
    Status,
    /// An answer to an SMS command (and the self-test's own message).
    Reply,
    /// A chat or webhook notification (channel `webhook`): not a page to a person.
    Outbound,
}

impl PageKind {
    /// Every kind.
    pub const ALL: [PageKind; 5] = [
        PageKind::Page,
        PageKind::Digest,
        PageKind::Status,
        PageKind::Reply,
        PageKind::Outbound,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PageKind::Page => "page",
            PageKind::Digest => "digest",
            PageKind::Status => "status",
            PageKind::Reply => "reply",
            PageKind::Outbound => "outbound",
        }
    }

    /// The kind a stored name means. An unknown name reads as a page: the row is then handled
    /// (and shown) like the most important kind rather than dropped.
    pub fn parse(s: &str) -> PageKind {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(PageKind::Page)
    }

    /// True for messages that wake a person about incidents (pages and digests), as opposed to
    /// replies, status updates and outbound notifications.
    pub fn is_to_person(self) -> bool {
        matches!(self, PageKind::Page | PageKind::Digest)
    }
}

impl fmt::Display for PageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests and callers that hold a stored name compare without parsing it first.
impl PartialEq<&str> for PageKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl ToSql for PageKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for PageKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(PageKind::parse(value.as_str()?))
    }
}

pub use crate::incident::EventKind;

/// The outbox's view of timeline events: which name a row's events carry. Here rather than
/// beside [`EventKind`] because it reads [`PageKind`], which is the store's.
impl EventKind {
    /// The event this `page-*` event is for an outbox row of `kind`: the `reply-*` twin for a
    /// reply, itself otherwise. Stored names never change meaning: rows written before replies
    /// had their own names keep `page-*`, as they were recorded.
    pub fn for_row(self, kind: PageKind) -> EventKind {
        if kind != PageKind::Reply {
            return self;
        }
        match self {
            EventKind::PageQueued => EventKind::ReplyQueued,
            EventKind::PageSent => EventKind::ReplySent,
            EventKind::PageDelivered => EventKind::ReplyDelivered,
            EventKind::PageUndelivered => EventKind::ReplyUndelivered,
            EventKind::PageRetry => EventKind::ReplyRetry,
            EventKind::PageFallback => EventKind::ReplyFallback,
            EventKind::PageFailed => EventKind::ReplyFailed,
            EventKind::PageCancelled => EventKind::ReplyCancelled,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself() {
        for s in OutboxState::ALL {
            assert_eq!(OutboxState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(OutboxState::parse("lost"), None);
    }

    #[test]
    fn every_kind_reads_back_as_itself_and_unknown_reads_as_page() {
        for k in PageKind::ALL {
            assert_eq!(PageKind::parse(k.as_str()), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(PageKind::parse("telegram"), PageKind::Page);
    }

    #[test]
    fn a_replys_events_are_named_as_replies_and_a_pages_as_pages() {
        let page_events = EventKind::ALL
            .into_iter()
            .filter(|k| k.as_str().starts_with("page-"));
        for k in page_events {
            let twin = k.for_row(PageKind::Reply);
            let Some(rest) = k.as_str().strip_prefix("page-") else {
                continue;
            };
            match k {
                // Not about one outbox row: the same for any kind.
                EventKind::PageGrouped | EventKind::PageUnreachable => assert_eq!(twin, k),
                _ => assert_eq!(twin.as_str(), format!("reply-{rest}"), "{k}"),
            }
            for kind in [PageKind::Page, PageKind::Digest, PageKind::Status] {
                assert_eq!(k.for_row(kind), k);
            }
        }
        assert_eq!(
            EventKind::Acknowledged.for_row(PageKind::Reply),
            EventKind::Acknowledged
        );
    }
}
