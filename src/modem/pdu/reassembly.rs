//! Joining the parts of concatenated messages.
//!
//! Owns the pending parts, keyed by (party, reference, total). It is pure: time comes in as an
//! argument. A message whose parts never all arrive is not lost: [`Reassembler::expire`] hands
//! back what did arrive once it is old enough, and when too many messages are pending the
//! oldest is pushed out the same way rather than dropped. The owner (the modem task) calls
//! `expire` periodically and [`Reassembler::drain`] at shutdown.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::address::Address;
use super::concat::ConcatInfo;
use super::deliver::Deliver;
use super::submit::Submit;

/// A message part the [`Reassembler`] can join: [`Deliver`] (the modem's view) or [`Submit`]
/// (the simulator's network view).
pub trait Part: Sized {
    /// Concatenation info, `None` for a stand-alone message.
    fn concat(&self) -> Option<ConcatInfo>;
    /// The other party: sender of a DELIVER, destination of a SUBMIT. Part of the key, since
    /// references are only unique per party.
    fn party(&self) -> &Address;
    /// This part's text.
    fn text(&self) -> &str;
    /// This part turned into the whole message: `text` replaces the part's text and the
    /// concatenation info is cleared.
    fn into_joined(self, text: String) -> Self;
}

impl Part for Deliver {
    fn concat(&self) -> Option<ConcatInfo> {
        self.concat
    }
    fn party(&self) -> &Address {
        &self.sender
    }
    fn text(&self) -> &str {
        &self.text
    }
    fn into_joined(self, text: String) -> Self {
        Deliver {
            text,
            concat: None,
            ..self
        }
    }
}

impl Part for Submit {
    fn concat(&self) -> Option<ConcatInfo> {
        self.concat
    }
    fn party(&self) -> &Address {
        &self.destination
    }
    fn text(&self) -> &str {
        &self.text
    }
    fn into_joined(self, text: String) -> Self {
        Submit {
            text,
            concat: None,
            ..self
        }
    }
}

/// A message some of whose parts never arrived, from [`Reassembler::expire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete<T> {
    /// The first part that arrived (in sequence order), carrying the texts of all parts that
    /// arrived joined in order, without markers for the gaps.
    pub message: T,
    /// Sequence numbers (1-based) of the parts that are missing.
    pub missing: Vec<u8>,
    /// How many parts the message should have had.
    pub total: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    party: String,
    reference: u16,
    total: u8,
}

struct Pending<T> {
    first_seen: DateTime<Utc>,
    /// Arrival order, to break ties between equal `first_seen`.
    serial: u64,
    parts: Vec<Option<T>>,
    received: usize,
}

impl<T: Part> Pending<T> {
    fn join(self, total: u8) -> Option<Incomplete<T>> {
        let missing = self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_none())
            .map(|(i, _)| (i + 1) as u8)
            .collect();
        let mut present = self.parts.into_iter().flatten();
        let first = present.next()?;
        let mut text = first.text().to_owned();
        for p in present {
            text.push_str(p.text());
        }
        Some(Incomplete {
            message: first.into_joined(text),
            missing,
            total,
        })
    }
}

/// Joins concatenated parts into whole messages. Bounded: at most `max_pending` messages wait
/// at once, each at most `timeout`.
pub struct Reassembler<T: Part = Deliver> {
    pending: HashMap<Key, Pending<T>>,
    pushed_out: Vec<Incomplete<T>>,
    max_pending: usize,
    timeout: chrono::TimeDelta,
    serial: u64,
}

impl<T: Part> Default for Reassembler<T> {
    /// 64 pending messages, 10 minutes: parts of one message normally arrive within seconds,
    /// and a reply to a page should not wait longer than that for a part that is lost.
    fn default() -> Self {
        Reassembler::new(64, Duration::from_secs(600))
    }
}

impl<T: Part> Reassembler<T> {
    /// A reassembler holding at most `max_pending` (at least 1) incomplete messages, each for
    /// at most `timeout`.
    pub fn new(max_pending: usize, timeout: Duration) -> Self {
        Reassembler {
            pending: HashMap::new(),
            pushed_out: Vec::new(),
            max_pending: max_pending.max(1),
            timeout: chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX),
            serial: 0,
        }
    }

    /// Add a part. Returns the whole message when `part` completes it, or `part` itself when
    /// it is not concatenated (or is 1 of 1). A repeated part (same sequence number, same
    /// text) is ignored; the same sequence number with a different text means the sender
    /// reused the reference, and the incomplete older message is pushed out. If this part
    /// starts a new message while `max_pending` are already waiting, the oldest waiting
    /// message is pushed out. Pushed-out messages come back from the next
    /// [`Reassembler::expire`] or [`Reassembler::drain`].
    pub fn insert(&mut self, part: T, now: DateTime<Utc>) -> Option<T> {
        let info = match part.concat() {
            Some(info) if info.total > 1 && (1..=info.total).contains(&info.sequence) => info,
            _ => {
                let text = part.text().to_owned();
                return Some(part.into_joined(text));
            }
        };
        let key = Key {
            party: part.party().number.clone(),
            reference: info.reference,
            total: info.total,
        };
        if !self.pending.contains_key(&key) && self.pending.len() >= self.max_pending {
            self.push_out_oldest();
        }
        self.serial += 1;
        let serial = self.serial;
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_seen: now,
            serial,
            parts: (0..info.total).map(|_| None).collect(),
            received: 0,
        });
        let index = usize::from(info.sequence) - 1;
        match &entry.parts[index] {
            // The modem repeating a part: nothing new.
            Some(held) if held.text() == part.text() => return None,
            // Same key, different text: the sender reused the reference for a new message
            // while the old one is still incomplete. Push the old one out, start afresh.
            Some(_) => {
                let old = std::mem::replace(
                    entry,
                    Pending {
                        first_seen: now,
                        serial,
                        parts: (0..info.total).map(|_| None).collect(),
                        received: 0,
                    },
                );
                self.pushed_out.extend(old.join(info.total));
            }
            None => {}
        }
        entry.parts[index] = Some(part);
        entry.received += 1;
        if entry.received < usize::from(info.total) {
            return None;
        }
        let complete = self.pending.remove(&key)?;
        complete.join(info.total).map(|i| i.message)
    }

    fn push_out_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| (p.first_seen, p.serial))
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            if let Some(p) = self.pending.remove(&key) {
                self.pushed_out.extend(p.join(key.total));
            }
        }
    }

    /// Give up on messages that have waited `timeout` or longer (and any pushed out by the
    /// bound), returning what arrived of each, oldest first.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Incomplete<T>> {
        let timeout = self.timeout;
        let expired: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now.signed_duration_since(p.first_seen) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        self.take(expired)
    }

    /// Give up on everything pending (at shutdown), returning what arrived, oldest first.
    pub fn drain(&mut self) -> Vec<Incomplete<T>> {
        let all: Vec<Key> = self.pending.keys().cloned().collect();
        self.take(all)
    }

    fn take(&mut self, keys: Vec<Key>) -> Vec<Incomplete<T>> {
        let mut taken: Vec<(DateTime<Utc>, u64, Key, Pending<T>)> = keys
            .into_iter()
            .filter_map(|k| {
                let p = self.pending.remove(&k)?;
                Some((p.first_seen, p.serial, k, p))
            })
            .collect();
        taken.sort_by_key(|(t, s, _, _)| (*t, *s));
        let mut out = std::mem::take(&mut self.pushed_out);
        out.extend(taken.into_iter().filter_map(|(_, _, k, p)| p.join(k.total)));
        out
    }

    /// Number of messages waiting for parts.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode_deliver, Direction, Encoding, Pdu};
    use super::*;
    use chrono::{DateTime, FixedOffset, TimeZone};

    fn now(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn parts(from: &str, text: &str, reference: u16) -> Vec<Deliver> {
        let t: DateTime<FixedOffset> =
            DateTime::parse_from_rfc3339("2026-11-22T03:00:00Z").unwrap();
        encode_deliver(from, text, t, None, reference, None)
            .unwrap()
            .into_iter()
            .map(
                |p| match decode(&p.hex, Direction::MobileTerminated, true).unwrap() {
                    Pdu::Deliver(d) => d,
                    other => panic!("{other:?}"),
                },
            )
            .collect()
    }

    // oFono unit/test-sms.c test_assembly: a three-part UCS-2 (Russian) message from "5555",
    // reference 0x1E, TP-PID 0x01 and class-1 UCS-2 DCS (0x19).
    #[test]
    fn ofono_three_part_ucs2_message() {
        let hexes = [
            concat!(
                "038121F340048155550119906041001222048C0500",
                "031E0301041804420430043A002C002004100",
                "43B0435043A04410430043D04340440002000",
                "200441043B044304480430043B00200437043",
                "000200434043204350440044C044E00200020",
                "04380020002004320441043500200431043E0",
                "43B044C044804350020043F04400435043804",
                "41043F043E043B043D044F043B0441044F002",
                "000200433043D0435"
            ),
            concat!(
                "038121F340048155550119906041001222048C0500",
                "031E03020432043E043C002E000A041D04300",
                "43A043E043D04350446002C0020043D043500",
                "200432002004410438043B043004450020043",
                "40430043B043504350020044204350440043F",
                "04350442044C002C0020043E043D002004410",
                "44204400435043C043804420435043B044C04",
                "3D043E002004320431043504360430043B002",
                "004320020043A043E"
            ),
            concat!(
                "038121F340048155550119906041001222044A0500",
                "031E0303043C043D043004420443002C00200",
                "43F043E043704300431044B0432000A043404",
                "3004360435002C002004470442043E0020002",
                "00431044B043B0020043D04300433002E"
            ),
        ];
        let decoded: Vec<Deliver> = hexes
            .iter()
            .map(
                |h| match decode(h, Direction::MobileTerminated, true).unwrap() {
                    Pdu::Deliver(d) => d,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        for (i, d) in decoded.iter().enumerate() {
            assert_eq!(d.encoding, Encoding::Ucs2);
            assert_eq!(d.sender.number, "5555");
            assert_eq!(
                d.concat,
                Some(ConcatInfo {
                    reference: 0x1E,
                    total: 3,
                    sequence: i as u8 + 1
                })
            );
        }
        let expected: String = decoded.iter().map(|d| d.text.as_str()).collect();
        assert!(
            expected.starts_with("Итак, Александр  слушал"),
            "{expected}"
        );
        assert!(expected.ends_with("даже, что  был наг."), "{expected}");
        // Parts 1 and 2 are full (UDL 0x8C: 134 octets = 67 units), part 3 has UDL 0x4A.
        assert_eq!(expected.chars().count(), 67 + 67 + 34);
        let mut r = Reassembler::default();
        // Out of order, with a duplicate.
        assert_eq!(r.insert(decoded[2].clone(), now(0)), None);
        assert_eq!(r.insert(decoded[0].clone(), now(1)), None);
        assert_eq!(r.insert(decoded[0].clone(), now(2)), None);
        let whole = r.insert(decoded[1].clone(), now(3)).unwrap();
        assert_eq!(whole.text, expected);
        assert_eq!(whole.concat, None);
        assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn single_messages_pass_straight_through() {
        let mut r = Reassembler::default();
        let d = parts("+4670", "ack", 1).remove(0);
        assert_eq!(r.insert(d.clone(), now(0)), Some(d));
    }

    #[test]
    fn lost_part_still_delivers_the_rest() {
        let mut r = Reassembler::new(8, Duration::from_secs(60));
        let p = parts("+4670", &"abc".repeat(120), 9);
        assert_eq!(p.len(), 3);
        assert_eq!(r.insert(p[0].clone(), now(0)), None);
        assert_eq!(r.insert(p[2].clone(), now(10)), None);
        assert!(r.expire(now(59)).is_empty());
        let out = r.expire(now(60));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].missing, vec![2]);
        assert_eq!(out[0].total, 3);
        assert_eq!(out[0].message.text, format!("{}{}", p[0].text, p[2].text));
        assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn same_reference_from_two_senders_does_not_mix() {
        let mut r = Reassembler::default();
        let a = parts("+111", &"a".repeat(200), 5);
        let b = parts("+222", &"b".repeat(200), 5);
        assert_eq!(r.insert(a[0].clone(), now(0)), None);
        assert_eq!(r.insert(b[1].clone(), now(0)), None);
        assert_eq!(
            r.insert(a[1].clone(), now(0)).unwrap().text,
            "a".repeat(200)
        );
        assert_eq!(
            r.insert(b[0].clone(), now(0)).unwrap().text,
            "b".repeat(200)
        );
    }

    #[test]
    fn reused_reference_does_not_garble_an_incomplete_message() {
        let mut r = Reassembler::default();
        let old = parts("+1", &format!("{}{}", "o".repeat(153), "p".repeat(153)), 4);
        let new = parts("+1", &format!("{}{}", "n".repeat(153), "m".repeat(153)), 4);
        assert_eq!(r.insert(old[0].clone(), now(0)), None);
        // old[1] is lost; the sender reuses reference 4.
        assert_eq!(r.insert(new[0].clone(), now(5)), None);
        let whole = r.insert(new[1].clone(), now(6)).unwrap();
        assert_eq!(
            whole.text,
            format!("{}{}", "n".repeat(153), "m".repeat(153))
        );
        let out = r.expire(now(7));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message.text, "o".repeat(153));
        assert_eq!(out[0].missing, vec![2]);
    }

    #[test]
    fn bound_pushes_out_oldest_instead_of_dropping() {
        let mut r = Reassembler::new(2, Duration::from_secs(600));
        for (i, from) in ["+1", "+2", "+3"].iter().enumerate() {
            let p = parts(from, &"z".repeat(200), 1);
            assert_eq!(r.insert(p[0].clone(), now(i as i64)), None);
        }
        assert_eq!(r.pending_len(), 2);
        let out = r.expire(now(3));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message.sender.number, "+1");
        let rest = r.drain();
        let senders: Vec<&str> = rest
            .iter()
            .map(|i| i.message.sender.number.as_str())
            .collect();
        assert_eq!(senders, ["+2", "+3"]);
    }
}
