//! Digests, stakeholder status updates, shift notices and outbound chat/webhook notifications
//! through the pair's gate.
//!
//! Both boxes queue these from the same incidents and the same config, each on its own timing,
//! so without a claim a pair sends each twice. The gate claims them like pages, by an id made
//! from what the message says ([`MessageKey`]): two copies of the same message meet and go out
//! once; copies that differ (a digest that lists other incidents on the two boxes) get
//! different ids and both go out, a duplicate rather than a message lost. Their claims compare
//! no ack or resolve: a status update saying "acknowledged" must go out after the ack.
//!
//! An outbound notification's body names the incident by this box's row id and carries this
//! box's times, so its id is made from what it announces instead: the event about the
//! incident's pair-wide name, the n-th such row to that destination, and where the destination
//! points (its id, kind and URL), so a destination the two configs point elsewhere gets both.
//!
//! Not claimed: replies (they answer an SMS that reached one box, so they are single already).

use tokio_util::sync::CancellationToken;

use super::coordinator::Decision;
use super::decide::{Finished, MessageKey, PageId};
use super::pair::{Claimed, Gate, Pass};
use crate::config::outbound::Destination;
use crate::store::outbound::{Outcome, Row};
use crate::store::outbox::{self, Page, PageKind};
use crate::store::{pair as rows, Store};

/// The name a message's claim is filed under in place of an incident: no ack or resolve is
/// ever written under it, so only `sent` and the peer's claim stop a message.
const MESSAGES: &str = "messages";

impl Gate {
    /// [`Gate::before`] for a row that is not a page to a person: claims digests and status
    /// messages by what they say, and sends everything else.
    pub(super) async fn before_message(
        &self,
        store: &Store,
        shutdown: &CancellationToken,
        page: &Page,
    ) -> Pass {
        if !matches!(page.kind, PageKind::Digest | PageKind::Status) {
            return Pass::Send(None);
        }
        let p = page.clone();
        let facts = match store
            .read(move |c, _| Ok(rows::message_facts(c, &p)?))
            .await
        {
            Ok(Some(f)) => f,
            Ok(None) => return Pass::Send(None),
            Err(e) => {
                tracing::warn!(page = page.id, error = %e, "pair: cannot name a message; sending it without a claim");
                return Pass::Send(None);
            }
        };
        let id = self.message_id(&facts, None).await;
        self.claim_message(store, shutdown, page, id).await
    }

    /// The gate of an outbound notification claimed from `dest`'s queue: claimed by what it
    /// announces and where it goes (see the module's doc), so the pair posts it once. Any
    /// failure to name it sends it: a duplicate, never a notification lost.
    pub async fn before_outbound(
        &self,
        store: &Store,
        shutdown: &CancellationToken,
        row: &Row,
        dest: &Destination,
    ) -> Pass {
        let id = row.id;
        let read = store
            .read(move |c, _| {
                let Some(page) = outbox::page(c, id)? else {
                    return Ok(None);
                };
                let facts = rows::message_facts(c, &page)?;
                Ok(facts.map(|f| (page, f)))
            })
            .await;
        let (page, facts) = match read {
            Ok(Some(x)) => x,
            Ok(None) => return Pass::Send(None),
            Err(e) => {
                tracing::warn!(page = row.id, error = %e, "pair: cannot name an outbound notification; sending it without a claim");
                return Pass::Send(None);
            }
        };
        let id = self.message_id(&facts, Some(dest)).await;
        self.claim_message(store, shutdown, &page, id).await
    }

    /// Reports the outcome of a claimed outbound notification, like [`Gate::after`].
    pub fn after_outbound(&self, claimed: Claimed, outcome: &Outcome) {
        match outcome {
            Outcome::Sent { .. } => self.coordinator.sent(claimed.page, &claimed.incident),
            _ => self.coordinator.release(claimed.page, &claimed.incident),
        }
    }

    /// Claims message `page` as `id`: send it, or record on the row that the peer holds the
    /// claim or sent it.
    async fn claim_message(
        &self,
        store: &Store,
        shutdown: &CancellationToken,
        page: &Page,
        id: PageId,
    ) -> Pass {
        let decision = self.coordinator.claim_named(id.clone(), MESSAGES).await;
        tracing::debug!(page = page.id, kind = page.kind.as_str(), pair_message = %id, ?decision, "pair: claim");
        match decision {
            Decision::Send => Pass::Send(Some(Claimed {
                page: id,
                incident: MESSAGES.to_string(),
            })),
            // No ack or resolve is filed under a message's name; should one be, send it.
            Decision::Skip(why) if !matches!(why, Finished::Sent) => Pass::Send(None),
            other => {
                super::pair::record_decision(store, shutdown, page, other).await;
                Pass::Handled
            }
        }
    }

    /// The pair-wide id of a message: its incidents named as the pair names them; for an
    /// outbound notification, with where its destination `dest` points.
    async fn message_id(&self, facts: &rows::MessageFacts, dest: Option<&Destination>) -> PageId {
        match facts {
            rows::MessageFacts::Status {
                dedup_key,
                first_seen,
                address,
                channel,
                ordinal,
            } => {
                let incident = self
                    .coordinator
                    .identity(dedup_key, first_seen.timestamp_millis())
                    .await;
                PageId::message(MessageKey::Status {
                    incident: &incident,
                    address,
                    channel: *channel,
                    ordinal: *ordinal,
                })
            }
            rows::MessageFacts::Digest {
                user,
                channel,
                incidents,
            } => {
                let mut names = Vec::with_capacity(incidents.len());
                for (key, start) in incidents {
                    names.push(
                        self.coordinator
                            .identity(key, start.timestamp_millis())
                            .await,
                    );
                }
                PageId::message(MessageKey::Digest {
                    user,
                    channel: *channel,
                    incidents: &names,
                })
            }
            rows::MessageFacts::Notice {
                address,
                channel,
                text,
            } => PageId::message(MessageKey::Notice {
                address,
                channel: *channel,
                text,
            }),
            rows::MessageFacts::Outbound {
                dedup_key,
                first_seen,
                destination,
                event,
                ordinal,
            } => {
                let incident = self
                    .coordinator
                    .identity(dedup_key, first_seen.timestamp_millis())
                    .await;
                PageId::message(MessageKey::Outbound {
                    incident: &incident,
                    destination,
                    kind: dest.map_or("", |d| d.kind.as_str()),
                    url: dest.map_or("", |d| d.url.expose()),
                    event,
                    ordinal: *ordinal,
                })
            }
        }
    }
}
