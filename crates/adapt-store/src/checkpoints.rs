//! `checkpoints`: adapter weights saved during a run at a step; a resumed run starts from its
//! latest checkpoint.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{from_sql_u64, now_ms, path_text, to_sql_u64, Store};
use crate::Result;

pub(crate) const V1: &str = "
CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    path       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (run_id, step)
);
";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CheckpointRecord {
    pub id: i64,
    pub run_id: i64,
    pub step: u64,
    pub path: PathBuf,
    pub created_at: i64,
}

const COLUMNS: &str = "id, run_id, step, path, created_at";

fn record(row: &Row<'_>) -> rusqlite::Result<CheckpointRecord> {
    Ok(CheckpointRecord {
        id: row.get(0)?,
        run_id: row.get(1)?,
        step: from_sql_u64(row.get(2)?),
        path: PathBuf::from(row.get::<_, String>(3)?),
        created_at: row.get(4)?,
    })
}

impl Store {
    /// Records that `run`'s weights at `step` are in `path` (replacing an earlier record of
    /// the same step).
    pub fn add_checkpoint(&mut self, run: i64, step: u64, path: &Path) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO checkpoints (run_id, step, path, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![run, to_sql_u64(step), path_text(path), now_ms()],
        )?;
        Ok(())
    }

    /// `run`'s checkpoints by step.
    pub fn checkpoints(&self, run: i64) -> Result<Vec<CheckpointRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM checkpoints WHERE run_id = ?1 ORDER BY step"
        ))?;
        let rows = stmt.query_map([run], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn latest_checkpoint(&self, run: i64) -> Result<Option<CheckpointRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM checkpoints WHERE run_id = ?1 \
                     ORDER BY step DESC LIMIT 1"
                ),
                [run],
                record,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::NewRun;

    #[test]
    fn the_latest_checkpoint_is_the_highest_step() {
        let (_dir, mut store) = crate::migrations::test_store();
        let run = store.create_run(&NewRun::default()).unwrap().id;
        assert_eq!(store.latest_checkpoint(run).unwrap(), None);
        store.add_checkpoint(run, 200, "/r/200".as_ref()).unwrap();
        store.add_checkpoint(run, 100, "/r/100".as_ref()).unwrap();
        let latest = store.latest_checkpoint(run).unwrap().unwrap();
        assert_eq!((latest.step, latest.path.to_str()), (200, Some("/r/200")));
        assert_eq!(store.checkpoints(run).unwrap().len(), 2);
        store.delete_run(run).unwrap();
        assert!(store.checkpoints(run).unwrap().is_empty());
    }
}
