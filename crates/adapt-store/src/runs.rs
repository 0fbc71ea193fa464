//! `runs`: one training run — its configuration (JSON text), base model, dataset, status and
//! timestamps. [`Status`] is shared with `jobs`.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{now_ms, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    model_id    INTEGER REFERENCES models(id) ON DELETE SET NULL,
    dataset_id  INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
    config      TEXT NOT NULL DEFAULT '{}',
    status      TEXT NOT NULL,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX runs_by_created ON runs(created_at);
";

/// Where a run or a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// It was running when its process died; it can be resumed.
    Interrupted,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Succeeded, failed or cancelled: nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a status column, refusing text this version does not know.
pub(crate) fn status_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Status> {
    let text: String = row.get(idx)?;
    Status::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown status {text:?}").into(),
        )
    })
}

/// A run to create.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub name: String,
    pub model_id: Option<i64>,
    pub dataset_id: Option<i64>,
    /// The training configuration as JSON.
    pub config: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunRecord {
    pub id: i64,
    pub name: String,
    pub model_id: Option<i64>,
    pub dataset_id: Option<i64>,
    pub config: String,
    pub status: Status,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str =
    "id, name, model_id, dataset_id, config, status, error, created_at, started_at, finished_at";

fn record(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        model_id: row.get(2)?,
        dataset_id: row.get(3)?,
        config: row.get(4)?,
        status: status_column(row, 5)?,
        error: row.get(6)?,
        created_at: row.get(7)?,
        started_at: row.get(8)?,
        finished_at: row.get(9)?,
    })
}

impl Store {
    /// Creates a queued run.
    pub fn create_run(&mut self, run: &NewRun) -> Result<RunRecord> {
        let config = if run.config.is_empty() {
            "{}"
        } else {
            &run.config
        };
        self.conn.execute(
            "INSERT INTO runs (name, model_id, dataset_id, config, status, created_at) \
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5)",
            params![run.name, run.model_id, run.dataset_id, config, now_ms()],
        )?;
        let id = self.conn.last_insert_rowid();
        self.run(id)
    }

    pub fn run(&self, id: i64) -> Result<RunRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?
            .ok_or(StoreError::NotFound { what: "run", id })
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM runs ORDER BY id DESC"))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Moves a run to `status`, stamping when it started or finished; `error` says why a
    /// failed run failed.
    pub fn set_run_status(&mut self, id: i64, status: Status, error: Option<&str>) -> Result<()> {
        let now = now_ms();
        let changed = self.conn.execute(
            "UPDATE runs SET status = ?2, error = ?3, \
                 started_at = CASE WHEN ?2 = 'running' THEN coalesce(started_at, ?4) ELSE started_at END, \
                 finished_at = CASE WHEN ?2 IN ('succeeded', 'failed', 'cancelled') THEN ?4 ELSE NULL END \
             WHERE id = ?1",
            params![id, status.as_str(), error, now],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound { what: "run", id });
        }
        Ok(())
    }

    /// Replaces a run's configuration (JSON).
    pub fn set_run_config(&mut self, id: i64, config: &str) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE runs SET config = ?2 WHERE id = ?1",
            params![id, config],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound { what: "run", id });
        }
        Ok(())
    }

    /// Deletes a run with its metrics and checkpoints (its adapters stay, unlinked).
    pub fn delete_run(&mut self, id: i64) -> Result<()> {
        match self.conn.execute("DELETE FROM runs WHERE id = ?1", [id])? {
            0 => Err(StoreError::NotFound { what: "run", id }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_moves_through_its_statuses() {
        let (_dir, mut store) = crate::migrations::test_store();
        let run = store
            .create_run(&NewRun {
                name: "first".into(),
                config: r#"{"lr":1e-4}"#.into(),
                ..NewRun::default()
            })
            .unwrap();
        assert_eq!(run.status, Status::Queued);
        assert_eq!(run.started_at, None);
        store.set_run_status(run.id, Status::Running, None).unwrap();
        let running = store.run(run.id).unwrap();
        assert!(running.started_at.is_some());
        assert_eq!(running.finished_at, None);
        store
            .set_run_status(run.id, Status::Failed, Some("out of memory"))
            .unwrap();
        let failed = store.run(run.id).unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.error.as_deref(), Some("out of memory"));
        assert!(failed.finished_at.is_some());
        assert_eq!(failed.config, r#"{"lr":1e-4}"#);
        assert_eq!(store.runs().unwrap(), vec![failed]);
    }

    #[test]
    fn missing_runs_are_not_found() {
        let (_dir, mut store) = crate::migrations::test_store();
        assert_eq!(store.run(7).unwrap_err().code(), "store.not_found");
        let err = store.set_run_status(7, Status::Running, None).unwrap_err();
        assert_eq!(err.code(), "store.not_found");
        assert_eq!(store.delete_run(7).unwrap_err().code(), "store.not_found");
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("done"), None);
    }

    #[test]
    fn a_run_that_references_a_missing_model_is_refused() {
        let (_dir, mut store) = crate::migrations::test_store();
        let err = store
            .create_run(&NewRun {
                name: "x".into(),
                model_id: Some(42),
                ..NewRun::default()
            })
            .unwrap_err();
        assert_eq!(err.code(), "store.constraint", "{err}");
    }
}
