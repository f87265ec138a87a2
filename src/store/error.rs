//! What can go wrong in the store, and what a caller should do about it.
//!
//! SQLite errors keep their source (`Arc`, so the error stays `Clone` and one failed commit can
//! be told to every job of its batch). Whether to try again is read from the SQLite result code,
//! not guessed from the variant: a full disk, an I/O error, a lock held elsewhere or a read-only
//! file may clear up, so the caller answers 503 and the sender retries; a constraint violation,
//! a schema mismatch or a misused API will fail the same way every time, so it is a fault of ours
//! that is logged loudly, counted and shown in `/healthz`, and never retried forever.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::ErrorCode;

use crate::incident::IncidentId;

/// What went wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated at start.
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// The batch's transaction could not be begun or committed: nothing of the job was stored.
    #[error("commit failed, nothing was stored: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    /// The job ran, but its batch had to be rolled back because of `source` (possibly another
    /// job's failure, such as a full disk): nothing of the job was stored, and trying again may
    /// succeed.
    #[error("batch rolled back, nothing was stored: {0}")]
    Aborted(#[source] Arc<rusqlite::Error>),
    /// The queue stayed full (or the `store.busy` fault point is armed).
    #[error("store queue is full")]
    Busy,
    /// The store thread has stopped.
    #[error("store has stopped")]
    Closed,
    #[error("incident #{0} not found")]
    NotFound(IncidentId),
    /// The caller asked for something that will never be valid.
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// The SQLite result code behind this error, if it came from SQLite.
    pub fn sqlite_code(&self) -> Option<ErrorCode> {
        match self {
            StoreError::Sqlite(e) | StoreError::Commit(e) | StoreError::Aborted(e) => {
                e.sqlite_error_code()
            }
            _ => None,
        }
    }

    /// True when trying again later may succeed (the caller should answer 503/429, not 4xx or
    /// 500): the store is busy or stopping, the file is locked, the disk is full, an I/O error,
    /// a read-only or unopenable file, or the job's batch was rolled back for one of those.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Busy | StoreError::Closed | StoreError::Aborted(_) => true,
            StoreError::Sqlite(_) | StoreError::Commit(_) => {
                self.sqlite_code().is_some_and(retryable_code)
            }
            StoreError::Open { .. } | StoreError::NotFound(_) | StoreError::Invalid(_) => false,
        }
    }

    /// True for an error that is neither the caller's bad input nor a passing condition: a
    /// constraint or schema violation, a misused API, a type mismatch, a corrupt file. Such an
    /// error fails the same way every time; it is logged at error level, counted in
    /// [`super::StoreFaults`] and must not be retried forever.
    pub fn is_fault(&self) -> bool {
        match self {
            StoreError::Sqlite(_) | StoreError::Commit(_) => !self.is_retryable(),
            _ => false,
        }
    }

    /// True when the error says the database file cannot take writes (disk full, I/O error,
    /// read-only, cannot open, corrupt): what [`super::WriteHealth`] tracks.
    pub fn is_write_failure(&self) -> bool {
        matches!(
            self.sqlite_code(),
            Some(
                ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::ReadOnly
                    | ErrorCode::CannotOpen
                    | ErrorCode::DatabaseCorrupt
            )
        )
    }

    /// An error as SQLite would report it with `code`, for the fault points: a simulated I/O
    /// error must take the same paths as a real one.
    pub(crate) fn simulated(code: std::ffi::c_int, what: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(what.to_string()))
    }
}

/// Result codes that may clear up by themselves.
fn retryable_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OperationInterrupted
            | ErrorCode::OperationAborted
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sqlite(Arc::new(StoreError::simulated(code, "test")))
    }

    #[test]
    fn retryability_follows_the_sqlite_code() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_CANTOPEN,
        ] {
            let e = sqlite(code);
            assert!(e.is_retryable(), "{code}: {e}");
            assert!(!e.is_fault(), "{code}");
        }
        for code in [
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            ffi::SQLITE_SCHEMA,
            ffi::SQLITE_MISUSE,
            ffi::SQLITE_MISMATCH,
            ffi::SQLITE_ERROR,
            ffi::SQLITE_CORRUPT,
        ] {
            let e = sqlite(code);
            assert!(!e.is_retryable(), "{code}: {e}");
            assert!(e.is_fault(), "{code}");
        }
        let conversion: StoreError =
            rusqlite::Error::InvalidColumnType(0, "x".into(), rusqlite::types::Type::Text).into();
        assert!(conversion.is_fault());
        assert!(StoreError::Busy.is_retryable());
        assert!(StoreError::Closed.is_retryable());
        assert!(!StoreError::Invalid("x".into()).is_retryable());
        assert!(!StoreError::Invalid("x".into()).is_fault());
    }

    #[test]
    fn write_failures_are_the_disk_kind() {
        use rusqlite::ffi;
        assert!(sqlite(ffi::SQLITE_FULL).is_write_failure());
        assert!(sqlite(ffi::SQLITE_IOERR_WRITE).is_write_failure());
        assert!(sqlite(ffi::SQLITE_READONLY).is_write_failure());
        assert!(!sqlite(ffi::SQLITE_BUSY).is_write_failure());
        assert!(!sqlite(ffi::SQLITE_CONSTRAINT).is_write_failure());
    }

    #[test]
    fn the_source_is_kept() {
        let e = sqlite(rusqlite::ffi::SQLITE_FULL);
        let src = e.source().expect("has a source");
        assert!(src.to_string().contains("test"), "{src}");
    }
}
