//! [`StoreError`]: what went wrong with the database, with a stable [`StoreError::code`] and a
//! message that says what to do.

use std::path::PathBuf;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}; check its permissions or set ADAPT_DATA_DIR")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}; check the file's permissions or set ADAPT_DATA_DIR")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path} is not an Adapt database or is damaged ({detail}); move it aside and Adapt creates a new one")]
    NotADatabase { path: PathBuf, detail: String },
    #[error("{path} was written by a newer Adapt (schema version {found}; this one knows up to {known}); update Adapt")]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("upgrading the database to schema version {version} failed: {source}")]
    Migration {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("the database stayed busy (another Adapt process holds a long write); try again")]
    Busy,
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: i64 },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "that change would break the database's rules (a missing or duplicate reference): {0}"
    )]
    Constraint(rusqlite::Error),
    #[error("the database could not be written ({0}): the disk may be full or failing; free some space and try again")]
    Write(rusqlite::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl StoreError {
    /// Stable, machine-readable code, e.g. `store.not_found`.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::CreateDir { .. } => "store.create_dir",
            StoreError::Open { .. } => "store.open",
            StoreError::NotADatabase { .. } => "store.not_a_database",
            StoreError::TooNew { .. } => "store.too_new",
            StoreError::Migration { .. } => "store.migration",
            StoreError::Busy => "store.busy",
            StoreError::NotFound { .. } => "store.not_found",
            StoreError::Invalid(_) => "store.invalid",
            StoreError::Constraint(_) => "store.constraint",
            StoreError::Write(_) | StoreError::Sqlite(_) => "store.sqlite",
        }
    }
}

/// Whether SQLite says another connection holds the database (`SQLITE_BUSY` / `SQLITE_LOCKED`).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) {
            return StoreError::Busy;
        }
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Constraint(e),
            // A full disk reaches SQLite as SQLITE_FULL, or (writing the WAL or its index) as
            // SQLITE_IOERR: say what to do rather than only "disk I/O error".
            Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure) => {
                StoreError::Write(e)
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn a_full_disk_or_a_failed_write_says_what_to_do() {
        for code in [rusqlite::ffi::SQLITE_FULL, rusqlite::ffi::SQLITE_IOERR] {
            let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            let e = StoreError::from(e);
            assert_eq!(e.code(), "store.sqlite");
            assert!(e.to_string().contains("the disk may be full"), "{e}");
        }
    }
}
