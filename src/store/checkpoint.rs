//! Checkpoints off the commit path.
//!
//! By default SQLite checkpoints inside the commit that pushes the write-ahead log past 1000
//! pages: that commit copies the log into the database file and fsyncs it before its callers are
//! answered, so every thousand pages one batch of alerts waits for a second fsync and the copy.
//! Here the writer turns that off (`wal_autocheckpoint=0`) and pokes a thread of its own after
//! every commit that wrote; the thread runs a `PASSIVE` checkpoint on its own connection, which
//! copies and fsyncs the database file beside the writer, never blocking it.
//!
//! A passive checkpoint cannot reset the log while commits keep coming (the log restarts from
//! its beginning only when a new write transaction finds every frame already copied), so the
//! writer bounds it: once the thread reports at least [`RESET_FRAMES`] frames, the writer runs a
//! passive checkpoint itself between two batches, when no frame can be added, copying only what
//! the thread has not copied yet; its next transaction then writes the log from the start again.
//! `journal_size_limit` keeps the file at up to [`WAL_KEEP_BYTES`] after such a reset, so the
//! log is overwritten in place instead of regrown (an fsync that also extends the file costs
//! about twice as much on ext4).
//!
//! If the thread is gone (it panicked) or has not finished a checkpoint for [`STUCK_AFTER`]
//! while commits poke it, the writer says so loudly and turns SQLite's own checkpoints back on
//! until the thread reports again: slower commits, never an unbounded log.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Log frames (pages) after which the writer resets the log itself: 16 MiB of 4 KiB pages.
pub const RESET_FRAMES: i64 = 4096;
/// The log file's size kept after a reset, so it is reused rather than regrown.
pub const WAL_KEEP_BYTES: i64 = 24 * 1024 * 1024;
/// How long the thread lets commits gather before it checkpoints them: one checkpoint per
/// pause at most, however many commits poked it.
const PAUSE: Duration = Duration::from_millis(50);
/// A checkpoint thread that has not finished a checkpoint for this long while poked is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);
/// SQLite's own default, used while the thread cannot do the work.
const SQLITE_DEFAULT_AUTOCHECKPOINT: i64 = 1000;

/// What the checkpoint thread reports to the writer.
#[derive(Default)]
struct Progress {
    /// Frames in the log at the thread's last checkpoint.
    log_frames: AtomicI64,
    /// Milliseconds since `epoch` when the thread last finished a checkpoint.
    done_at_ms: AtomicU64,
}

/// The writer's side: pokes the thread and bounds the log.
pub(super) struct Checkpoints {
    poke: SyncSender<()>,
    progress: Arc<Progress>,
    epoch: Instant,
    /// When the writer first poked the thread since its last reported checkpoint.
    waiting_since: Option<Instant>,
    /// Whether SQLite's own checkpoints are on because the thread cannot do the work.
    fallback: bool,
}

impl Checkpoints {
    /// Turns SQLite's checkpoints in the commit path off on `writer` and starts the checkpoint
    /// thread with a connection of its own to `path`. On any error the writer keeps SQLite's
    /// default checkpoints and `None` is returned.
    pub(super) fn start(writer: &Connection, path: &Path) -> Option<Checkpoints> {
        let started = Connection::open(path).and_then(|conn| {
            // A passive checkpoint never waits for a lock; the timeout only covers opening.
            conn.busy_timeout(Duration::from_millis(100))?;
            // The checkpointing connection's setting decides whether the database file is
            // fsynced before the log may be overwritten: FULL, like the writer.
            conn.pragma_update(None, "synchronous", "FULL")?;
            writer.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
            writer.pragma_update(None, "wal_autocheckpoint", 0)?;
            Ok(conn)
        });
        let conn = match started {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "store: no checkpoint thread; commits checkpoint the log themselves");
                let _ =
                    writer.pragma_update(None, "wal_autocheckpoint", SQLITE_DEFAULT_AUTOCHECKPOINT);
                return None;
            }
        };
        let (poke, pokes) = sync_channel(1);
        let progress = Arc::new(Progress::default());
        let epoch = Instant::now();
        let thread_progress = progress.clone();
        let spawned = std::thread::Builder::new()
            .name("pagerbox-store-ckpt".into())
            .spawn(move || run(conn, pokes, thread_progress, epoch));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "store: cannot start the checkpoint thread; commits checkpoint the log themselves");
            let _ = writer.pragma_update(None, "wal_autocheckpoint", SQLITE_DEFAULT_AUTOCHECKPOINT);
            return None;
        }
        Some(Checkpoints {
            poke,
            progress,
            epoch,
            waiting_since: None,
            fallback: false,
        })
    }

    /// After a commit that wrote, with no transaction open on `writer`: pokes the thread, resets
    /// the log when it has grown past [`RESET_FRAMES`], and falls back to SQLite's own
    /// checkpoints while the thread is gone or stuck.
    pub(super) fn after_commit(&mut self, writer: &Connection) {
        self.after_commit_at(writer, Instant::now());
    }

    /// [`Checkpoints::after_commit`] at `now`.
    fn after_commit_at(&mut self, writer: &Connection, now: Instant) {
        let done_at = Duration::from_millis(self.progress.done_at_ms.load(Ordering::Acquire));
        let alive = match self.poke.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => true,
            Err(TrySendError::Disconnected(())) => false,
        };
        let mut since = *self.waiting_since.get_or_insert(now);
        if self.epoch + done_at >= since {
            // The thread has finished a checkpoint since the first unanswered poke: the wait is
            // this poke's, however long the writer was quiet before it.
            since = now;
            self.waiting_since = Some(now);
        }
        let stuck = !alive || now.duration_since(since) >= STUCK_AFTER;
        if stuck != self.fallback {
            self.fallback = stuck;
            let every = if stuck {
                tracing::error!(
                    thread_alive = alive,
                    "store: the checkpoint thread has not checkpointed for {STUCK_AFTER:?}; commits checkpoint the log themselves until it does"
                );
                SQLITE_DEFAULT_AUTOCHECKPOINT
            } else {
                tracing::info!("store: the checkpoint thread checkpoints again");
                0
            };
            if let Err(e) = writer.pragma_update(None, "wal_autocheckpoint", every) {
                tracing::error!(error = %e, "store: cannot set wal_autocheckpoint");
            }
        }
        if !self.fallback && self.progress.log_frames.load(Ordering::Acquire) >= RESET_FRAMES {
            // No frame can be added meanwhile: this writer is the only one. What the thread has
            // already copied is skipped, so this copies only the newest frames.
            match passive(writer) {
                Ok((_, done)) => {
                    // The next write transaction restarts the log; until the thread's next round
                    // says otherwise, count it as empty.
                    if done {
                        self.progress.log_frames.store(0, Ordering::Release);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "store: resetting the write-ahead log failed"),
            }
        }
    }
}

/// Runs a passive checkpoint over `conn`; returns the frames in the log and whether all of them
/// are now in the database file.
fn passive(conn: &Connection) -> rusqlite::Result<(i64, bool)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let busy: i64 = r.get(0)?;
        let log: i64 = r.get(1)?;
        let copied: i64 = r.get(2)?;
        Ok((log, busy == 0 && copied == log))
    })
}

/// The checkpoint thread: after each poke, a pause for more commits, then one passive
/// checkpoint. Ends when the writer is gone.
fn run(conn: Connection, pokes: Receiver<()>, progress: Arc<Progress>, epoch: Instant) {
    while pokes.recv().is_ok() {
        std::thread::sleep(PAUSE);
        // A poke that came during the pause is covered by this round.
        let _ = pokes.try_recv();
        match passive(&conn) {
            Ok((log, _)) => {
                progress.log_frames.store(log, Ordering::Release);
                let at = epoch.elapsed().as_millis() as u64;
                progress.done_at_ms.store(at, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(error = %e, "store: checkpoint failed; tried again after the next commit")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(conn: &Connection) -> i64 {
        passive(conn).unwrap().0
    }

    #[test]
    fn the_thread_checkpoints_and_the_writer_resets_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        // Speed only: what is tested here is who checkpoints, not durability.
        writer.pragma_update(None, "synchronous", "OFF").unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let mut ck = Checkpoints::start(&writer, &path).unwrap();
        let auto: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0, "no checkpoint in the commit path");
        // About a page per row: past the reset bound, with no checkpoint on the way.
        for _ in 0..RESET_FRAMES + 100 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .unwrap();
        }
        ck.after_commit(&writer);
        // Wait for the thread to copy the log and report its size.
        let deadline = Instant::now() + Duration::from_secs(30);
        while ck.progress.log_frames.load(Ordering::Acquire) < RESET_FRAMES {
            assert!(Instant::now() < deadline, "the thread never checkpointed");
            std::thread::sleep(PAUSE);
        }
        assert!(!ck.fallback);
        ck.after_commit(&writer);
        writer
            .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
            .unwrap();
        let frames = wal_frames(&writer);
        assert!(frames < 16, "the log starts over: {frames} frames");
        let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len();
        assert!(
            wal > RESET_FRAMES as u64 * 4096 && wal <= WAL_KEEP_BYTES as u64,
            "the log file is kept for reuse, within its limit: {wal} bytes"
        );
    }

    #[test]
    fn a_quiet_spell_is_not_a_stuck_thread_but_a_thread_that_never_answers_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "synchronous", "OFF").unwrap();
        writer.execute_batch("CREATE TABLE t (x)").unwrap();
        let mut ck = Checkpoints::start(&writer, &path).unwrap();
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        ck.after_commit(&writer);
        let deadline = Instant::now() + Duration::from_secs(30);
        while ck.progress.done_at_ms.load(Ordering::Acquire) == 0 {
            assert!(Instant::now() < deadline, "the thread never checkpointed");
            std::thread::sleep(PAUSE);
        }
        // The next commit comes long after the thread answered the last one.
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let later = Instant::now() + STUCK_AFTER + Duration::from_secs(1);
        ck.after_commit_at(&writer, later);
        assert!(!ck.fallback, "a quiet writer took its thread for stuck");

        // A thread that takes pokes and never checkpoints is stuck after STUCK_AFTER.
        let (poke, _pokes) = sync_channel(1);
        let epoch = Instant::now();
        let mut stuck = Checkpoints {
            poke,
            progress: Arc::new(Progress::default()),
            epoch,
            waiting_since: None,
            fallback: false,
        };
        let first = epoch + Duration::from_millis(1);
        stuck.after_commit_at(&writer, first);
        assert!(!stuck.fallback);
        stuck.after_commit_at(&writer, first + STUCK_AFTER);
        assert!(stuck.fallback);
    }

    #[test]
    fn a_writer_without_its_thread_checkpoints_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.execute_batch("CREATE TABLE t (x)").unwrap();
        let (poke, pokes) = sync_channel(1);
        drop(pokes);
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let mut ck = Checkpoints {
            poke,
            progress: Arc::new(Progress::default()),
            epoch: Instant::now(),
            waiting_since: None,
            fallback: false,
        };
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        ck.after_commit(&writer);
        let auto: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, SQLITE_DEFAULT_AUTOCHECKPOINT);
        assert!(ck.fallback);
    }
}
