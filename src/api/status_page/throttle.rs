//! Login throttling for the status page: per source address, a few free wrong tokens, then an
//! exponential backoff during which every login from that address is refused unchecked (so a
//! guess made during the backoff, right or wrong, teaches nothing). A right token ends the
//! backoff's record. Pure data: the caller passes `now`, so tests need no clock.
//!
//! Bounded: at most [`MAX_SOURCES`] addresses are remembered; when full, the record that has
//! been quiet longest is forgotten first. An attacker with many addresses gains free guesses
//! only [`FREE_FAILURES`] at a time per address; the token's length does the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Wrong tokens allowed from one address before the backoff starts (typos happen).
pub const FREE_FAILURES: u32 = 5;
/// The first backoff; each further failure doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most.
pub const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Failed logins per source address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    sources: HashMap<IpAddr, Record>,
}

impl LoginThrottle {
    /// `Err(wait)` when `source` is in a backoff at `now` and must not try yet.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.sources.get(&source).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong token from `source`; returns the backoff it now has, if any.
    pub fn failed(&mut self, source: IpAddr, now: Instant) -> Option<Duration> {
        self.forget_stale(now);
        let r = self.sources.entry(source).or_insert(Record {
            failures: 0,
            locked_until: None,
            last: now,
        });
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let over = r.failures.checked_sub(FREE_FAILURES)?;
        let backoff = FIRST_BACKOFF
            .checked_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        r.locked_until = Some(now + backoff);
        Some(backoff)
    }

    /// A right token from `source`: its record is cleared.
    pub fn succeeded(&mut self, source: IpAddr) {
        self.sources.remove(&source);
    }

    /// Forgets records quiet for longer than the longest backoff, and the quietest ones when
    /// the table is full.
    fn forget_stale(&mut self, now: Instant) {
        self.sources
            .retain(|_, r| now.saturating_duration_since(r.last) < MAX_BACKOFF);
        while self.sources.len() >= MAX_SOURCES {
            let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(ip, _)| *ip)
            else {
                break;
            };
            self.sources.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn a_few_typos_are_free_then_the_backoff_doubles_up_to_a_cap() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(t.failed(ip(1), now), None);
            assert_eq!(t.check(ip(1), now), Ok(()));
        }
        assert_eq!(t.failed(ip(1), now), Some(Duration::from_secs(1)));
        assert_eq!(t.check(ip(1), now), Err(Duration::from_secs(1)));
        // Another address is not held back.
        assert_eq!(t.check(ip(2), now), Ok(()));
        let later = now + Duration::from_secs(1);
        assert_eq!(t.check(ip(1), later), Ok(()));
        assert_eq!(t.failed(ip(1), later), Some(Duration::from_secs(2)));
        assert_eq!(t.failed(ip(1), later), Some(Duration::from_secs(4)));
        for _ in 0..40 {
            t.failed(ip(1), later);
        }
        assert_eq!(t.check(ip(1), later), Err(MAX_BACKOFF));
        // The right token, once allowed to try, clears the record.
        t.succeeded(ip(1));
        assert_eq!(t.check(ip(1), later), Ok(()));
        assert_eq!(t.failed(ip(1), later), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for n in 0..(MAX_SOURCES as u32 + 10) {
            let addr = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            t.failed(addr, now + Duration::from_millis(u64::from(n)));
        }
        assert!(t.sources.len() <= MAX_SOURCES);
        // Quiet for longer than the longest backoff: forgotten.
        t.failed(ip(9), now + MAX_BACKOFF + Duration::from_secs(60));
        assert_eq!(t.sources.len(), 1);
    }
}
