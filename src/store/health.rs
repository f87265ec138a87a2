//! What the store knows about its own health: whether it can write ([`WriteHealth`]) and the
//! faults of ours it has met ([`StoreFaults`]).
//!
//! Both are published on `watch` channels by the store threads, so `/healthz`, the panel and
//! the supervisor read the last value without queueing behind the writer. Write health is fed
//! by every batch that wrote or failed to write, and by a small probe write when the box is idle
//! (see `PROBE_INTERVAL` in the store), so a full disk is noticed before the next alert needs it.

use std::panic::Location;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::StoreError;

/// Whether the store can write to its database file.
#[derive(Debug, Clone, Default)]
pub enum WriteHealth {
    /// The last write (a batch or the probe) committed.
    #[default]
    Ok,
    /// Writes have failed since `since`; `error` is the latest failure. Goes back to `Ok` by
    /// itself once a write commits again.
    Failing {
        since: DateTime<Utc>,
        error: StoreError,
    },
}

impl WriteHealth {
    /// True when the last write committed.
    pub fn is_ok(&self) -> bool {
        matches!(self, WriteHealth::Ok)
    }
}

/// One fault of ours met by the store.
#[derive(Debug, Clone)]
pub struct StoreFault {
    /// When it happened (store clock).
    pub at: DateTime<Utc>,
    /// The source location of the store call that failed.
    pub caller: &'static Location<'static>,
    pub error: StoreError,
}

/// The faults (see [`StoreError::is_fault`]) the store has met since it started.
#[derive(Debug, Clone, Default)]
pub struct StoreFaults {
    /// How many calls failed with a fault.
    pub count: u64,
    /// The latest one.
    pub last: Option<StoreFault>,
}

/// The senders behind the store's watches, owned by the store threads.
pub(super) struct Signals {
    pub commits: watch::Sender<u64>,
    pub health: watch::Sender<WriteHealth>,
    pub faults: watch::Sender<StoreFaults>,
}

impl Signals {
    /// A write committed: the store can write.
    pub fn write_ok(&self) {
        self.health.send_if_modified(|h| {
            if let WriteHealth::Failing { since, .. } = h {
                tracing::warn!(failing_since = %since, "store can write again");
                *h = WriteHealth::Ok;
                true
            } else {
                false
            }
        });
    }

    /// A write failed with `err`; only failures that say the file cannot take writes count.
    pub fn write_failed(&self, err: &StoreError, now: DateTime<Utc>) {
        if !err.is_write_failure() {
            return;
        }
        self.health.send_if_modified(|h| match h {
            WriteHealth::Ok => {
                tracing::error!(error = %err, "store cannot write: paging is at risk");
                *h = WriteHealth::Failing {
                    since: now,
                    error: err.clone(),
                };
                true
            }
            WriteHealth::Failing { error, .. } => {
                *error = err.clone();
                false
            }
        });
    }

    /// A job or read ended with `err`: counts and logs a fault, and feeds write health.
    pub fn job_failed(
        &self,
        err: &StoreError,
        caller: &'static Location<'static>,
        now: DateTime<Utc>,
    ) {
        if err.is_fault() {
            self.fault(err, caller, now);
        }
        self.write_failed(err, now);
    }

    /// Logs and counts a fault of ours.
    pub fn fault(&self, err: &StoreError, caller: &'static Location<'static>, now: DateTime<Utc>) {
        {
            tracing::error!(
                error = %err,
                caller = %caller,
                "store call failed with a fault that retrying will not fix"
            );
            self.faults.send_modify(|f| {
                f.count += 1;
                f.last = Some(StoreFault {
                    at: now,
                    caller,
                    error: err.clone(),
                });
            });
        }
    }
}
