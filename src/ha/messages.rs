//! Digests, stakeholder status updates and shift notices through the pair's gate.
//!
//! Both boxes queue these from the same incidents and the same config, each on its own timing,
//! so without a claim a pair sends each twice. The gate claims them like pages, by an id made
//! from what the message says ([`MessageKey`]): two copies of the same message meet and go out
//! once; copies that differ (a digest that lists other incidents on the two boxes) get
//! different ids and both go out, a duplicate rather than a message lost. Their claims compare
//! no ack or resolve: a status update saying "acknowledged" must go out after the ack.
//!
//! Not claimed: replies (they answer an SMS that reached one box, so they are single already)
//! and outbound chat/webhook notifications (each box's fan-out posts them; see `docs/ha.md`).

use tokio_util::sync::CancellationToken;

use super::coordinator::Decision;
use super::decide::{Finished, MessageKey, PageId};
use super::pair::{Claimed, Gate, Pass};
use crate::store::outbox::{Page, PageKind};
use crate::store::until_stored;
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
        let id = self.message_id(&facts).await;
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
                record_decision(store, shutdown, page, other).await;
                Pass::Handled
            }
        }
    }

    /// The pair-wide id of a message: its incidents named as the pair names them.
    async fn message_id(&self, facts: &rows::MessageFacts) -> PageId {
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
        }
    }
}

/// Records on the row that the peer holds the message's claim (asked again after a while) or
/// sent it; logged when the store does not take it (the sender asks again).
async fn record_decision(
    store: &Store,
    shutdown: &CancellationToken,
    page: &Page,
    decision: Decision,
) {
    let p = page.clone();
    let what = format!("pair decision on message {}", page.id);
    let stored = match decision {
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
        Decision::Skip(_) => {
            tracing::info!(page = page.id, "message sent by the peer box");
            until_stored(store, shutdown, &what, move |c, now| {
                Ok(rows::sent_by_peer(c, &p, now)?)
            })
            .await
        }
        Decision::Send => return,
    };
    if stored.is_none() {
        tracing::warn!(
            page = page.id,
            "pair: the decision on a message was not recorded"
        );
    }
}
