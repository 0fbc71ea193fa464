//! Versioned schema migrations.
//!
//! [`MIGRATIONS`] is the ordered list of schema versions; each version is a list of steps,
//! and each step is a constant that lives in its table's module (`runs::V1`, …), beside the
//! code that reads the table. The version a database is at is `PRAGMA user_version` (0 for a
//! new file). Opening a database applies, in one `BEGIN IMMEDIATE` transaction, every version
//! above the current one, so two processes opening a new database at once cannot both
//! migrate it, and a crash mid-migration leaves the previous version intact.
//!
//! To change the schema: add `V2` (SQL) to the table's module, append
//! `Migration { version: 2, steps: &[that::V2] }` here, and add a version-1 seed to
//! `tests/migrations.rs`; the tests then check upgrades from every earlier version.
//!
//! [`Store::open`] lives here too: opening a database means connecting to it and running
//! these migrations.

use std::path::Path;

use rusqlite::TransactionBehavior;

use crate::store::Store;
use crate::{
    adapters, checkpoints, conversations, datasets, jobs, kv_caches, messages, metrics, models,
    runs, settings, sweeps, Result, StoreError,
};

/// One schema version: the SQL that takes the previous version to this one.
pub struct Migration {
    pub version: u32,
    pub steps: &'static [&'static str],
}

/// Every schema version, oldest first, numbered 1, 2, 3, … without gaps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        steps: &[
            models::V1,
            datasets::V1,
            runs::V1,
            metrics::V1,
            checkpoints::V1,
            adapters::V1,
            conversations::V1,
            messages::V1,
            kv_caches::V1,
            jobs::V1,
            settings::V1,
        ],
    },
    Migration {
        version: 2,
        steps: &[metrics::V2],
    },
    Migration {
        version: 3,
        steps: &[models::V3, datasets::V3],
    },
    Migration {
        version: 4,
        steps: &[sweeps::V4],
    },
    Migration {
        version: 5,
        steps: &[metrics::V5],
    },
];

/// The newest schema version this build knows.
pub const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

impl Store {
    /// Opens the database at `path` (creating it and its directory if needed) and migrates it
    /// to the latest schema.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_at(path, LATEST)
    }

    /// Opens the database and migrates it to schema `version` only. For tests of upgrades
    /// from earlier versions; the product always uses [`Store::open`].
    #[doc(hidden)]
    pub fn open_at(path: &Path, version: u32) -> Result<Store> {
        let mut store = Store::connect(path)?;
        migrate(&mut store, version)?;
        Ok(store)
    }
}

/// A store in a fresh temporary directory, for the table modules' tests.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("adapt.db")).unwrap();
    (dir, store)
}

/// Brings the database to schema `target` (at most [`LATEST`]).
fn migrate(store: &mut Store, target: u32) -> Result<()> {
    if target > LATEST {
        return Err(StoreError::Invalid(format!(
            "schema version {target} does not exist (the latest is {LATEST})"
        )));
    }
    let path = store.path.clone();
    // Already there (every open but the first of a new version): a plain read, which in WAL
    // mode never waits for a writer, so opening beside a busy job is instant.
    let current: u32 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::NotADatabase {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    if current == target {
        return Ok(());
    }
    // Otherwise take the write lock and read the version again: another process may have
    // migrated in between.
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| StoreError::NotADatabase {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    let current: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::NotADatabase {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            path,
            found: current,
            known: LATEST,
        });
    }
    if current > target {
        return Err(StoreError::Invalid(format!(
            "{} is at schema version {current}; it cannot go back to {target}",
            path.display()
        )));
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let failed = |source| StoreError::Migration {
            version: migration.version,
            source,
        };
        for step in migration.steps {
            tx.execute_batch(step).map_err(failed)?;
        }
        tx.pragma_update(None, "user_version", migration.version)
            .map_err(failed)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(!m.steps.is_empty());
        }
    }

    #[test]
    fn a_newer_database_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapt.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .conn
                .pragma_update(None, "user_version", LATEST + 1)
                .unwrap();
        }
        let err = Store::open(&path).err().expect("too new");
        assert_eq!(err.code(), "store.too_new");
        assert!(err.to_string().contains("update Adapt"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapt.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Store::open(&path).err().expect("not a database");
        assert_eq!(err.code(), "store.not_a_database");
        assert!(err.to_string().contains("adapt.db"), "{err}");
    }

    #[test]
    fn opening_twice_migrates_once() {
        let (dir, store) = test_store();
        assert_eq!(store.schema_version().unwrap(), LATEST);
        let again = Store::open(&dir.path().join("adapt.db")).unwrap();
        assert_eq!(again.schema_dump().unwrap(), store.schema_dump().unwrap());
    }
}
