//! Two boxes as one pager: coordination through etcd (cargo feature `ha`).
//!
//! Each box keeps its own SQLite and computes the same due pages from the same alerts (every
//! alert source sends to both). etcd, with three voting members (box A, box B and a witness),
//! decides only *who sends* each page: a box claims a page in one transaction that also checks
//! no `sent`, `ack` or `resolve` record exists, and the claim lives on the box's lease, so the
//! claim of a box that died or stopped being able to page runs out and the peer takes over.
//! A box that cannot keep its lease for `ha.fallback_after` pages alone, like a single box:
//! duplicates are possible, silence is not.
//!
//! - [`decide`]: the pure rules (page identity, who tries first, when to fall back and rejoin,
//!   what to publish on heal), tested on their own.
//! - [`etcd`]: the small adapter that speaks etcd's v3 JSON gateway.
//! - [`coordinator`]: the one owner of the box's etcd session; the sender asks it before a page.
//! - [`pair`]: the daemon's side: the sender's gate, acks and resolves both ways, and the
//!   "can this box page" feed that keeps the lease.
//! - [`messages`]: digests, stakeholder status updates and shift notices, claimed by what they
//!   say so a pair sends each once.
//! - [`share`]: alerts that reached one box only (UDP, SMS `PAGE`, `pagerbox send`), copied
//!   to the peer so it opens the same incident.

pub mod coordinator;
pub mod decide;
pub mod etcd;
pub mod messages;
pub mod pair;
pub mod share;
