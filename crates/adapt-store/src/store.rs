//! [`Store`], one connection to Adapt's database, and the conversions every table module
//! uses between Rust values and SQLite columns.
//!
//! This module opens and configures the connection (WAL, foreign keys, a busy timeout,
//! `synchronous=FULL`) and gives the table modules [`Store::write`], a transaction taken up
//! front. [`Store::open`], which also brings the schema up to date, lives in
//! [`migrations`](crate::migrations), the module that knows every table's migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Result, StoreError};

/// How long a statement waits for another connection's write before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to Adapt's database.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Store {
    /// Opens the database file at `path` (creating it and its directory if needed) and sets
    /// the connection up, leaving the schema as it is; [`Store::open`] migrates it too.
    pub(crate) fn connect(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the database is at (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// `PRAGMA integrity_check`: `"ok"`, or SQLite's description of the damage.
    pub fn integrity_check(&self) -> Result<String> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(lines.join("\n"))
    }

    /// The schema as SQLite records it (`type name sql` per object, sorted), to compare a
    /// migrated database with a freshly created one.
    pub fn schema_dump(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn configure(&mut self) -> Result<()> {
        let not_a_db = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                StoreError::NotADatabase {
                    path: self.path.clone(),
                    detail: e.to_string(),
                }
            }
            _ => StoreError::from(e),
        };
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(not_a_db)?;
        // WAL: readers (the UI) never wait for the writer (a job), and a killed process leaves
        // a log that the next open replays up to the last committed transaction.
        // A new file is switched to WAL under an exclusive lock, and SQLite refuses (without
        // its busy wait) a connection that would otherwise deadlock with another one switching
        // it at the same moment: processes starting together on a new data directory.
        let mode: String = patiently(|| {
            self.conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        })
        .map_err(not_a_db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "{} cannot use write-ahead logging (journal mode stayed {mode}); \
                 put the data directory on a local disk",
                self.path.display()
            )));
        }
        // FULL rather than NORMAL: with NORMAL in WAL mode a process crash loses nothing, but
        // a power cut can lose the last commits. Our writes are few per second (a metric per
        // training step, a chat message, a heartbeat), so one fsync per commit costs nothing
        // a person notices and buys "committed means kept" even on power loss.
        self.conn
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(not_a_db)?;
        Ok(())
    }

    /// Runs `f` in a write transaction taken up front (`BEGIN IMMEDIATE`), so that a
    /// transaction never has to upgrade from reading to writing while another connection
    /// writes — the case the busy timeout cannot help with.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// `f` again while SQLite says the database is busy or locked, for up to [`BUSY_TIMEOUT`]: for
/// the statements its busy timeout does not cover.
fn patiently<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(e) if crate::error::is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sizes and counts are `u64` in records and `INTEGER` (i64) in SQLite.
pub(crate) fn to_sql_u64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Paths are stored as text.
pub(crate) fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
