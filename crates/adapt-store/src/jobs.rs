//! `jobs`: long work (training, downloads, dataset preparation, conversion) as the job runner
//! persists it — kind, parameters (JSON), status, last progress, a cancel request, the error
//! if it failed, and a heartbeat. The heartbeat is how a later process tells a job whose
//! process died (stale heartbeat → [`Status::Interrupted`], offered for resume) from one that
//! another live process is running; the cancel request is how one process (`adapt jobs
//! cancel`) stops a job running in another.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::runs::status_column;
use crate::store::{from_sql_u64, now_ms, to_sql_u64, Store};
use crate::{Result, Status, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL DEFAULT '{}',
    run_id           INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    status           TEXT NOT NULL,
    progress_done    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER,
    message          TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error_code       TEXT,
    error_message    TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    heartbeat_at     INTEGER
);
CREATE INDEX jobs_by_status ON jobs(status);
";

/// A job to queue.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// `train`, `download`, `prepare_dataset`, `convert`, …
    pub kind: String,
    /// What to do, as JSON; enough to run (or resume) the job again.
    pub params: String,
    pub run_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub params: String,
    pub run_id: Option<i64>,
    pub status: Status,
    pub progress_done: u64,
    pub progress_total: Option<u64>,
    pub message: String,
    pub cancel_requested: bool,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
}

/// What [`Store::request_job_cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The job is running; its runner stops it at its next check.
    Requested,
    /// The job was queued or interrupted; it is now cancelled.
    Cancelled,
    /// The job had already ended with this status.
    AlreadyFinished(Status),
}

const COLUMNS: &str = "id, kind, params, run_id, status, progress_done, progress_total, message, \
                       cancel_requested, error_code, error_message, created_at, started_at, \
                       finished_at, heartbeat_at";

fn record(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: row.get(0)?,
        kind: row.get(1)?,
        params: row.get(2)?,
        run_id: row.get(3)?,
        status: status_column(row, 4)?,
        progress_done: from_sql_u64(row.get(5)?),
        progress_total: row.get::<_, Option<i64>>(6)?.map(from_sql_u64),
        message: row.get(7)?,
        cancel_requested: row.get(8)?,
        error_code: row.get(9)?,
        error_message: row.get(10)?,
        created_at: row.get(11)?,
        started_at: row.get(12)?,
        finished_at: row.get(13)?,
        heartbeat_at: row.get(14)?,
    })
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "job", id }
}

impl Store {
    /// Queues a job.
    pub fn create_job(&mut self, job: &NewJob) -> Result<JobRecord> {
        let params_json = if job.params.is_empty() {
            "{}"
        } else {
            &job.params
        };
        self.conn.execute(
            "INSERT INTO jobs (kind, params, run_id, status, created_at) \
             VALUES (?1, ?2, ?3, 'queued', ?4)",
            params![job.kind, params_json, job.run_id, now_ms()],
        )?;
        self.job(self.conn.last_insert_rowid())
    }

    pub fn job(&self, id: i64) -> Result<JobRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?
            .ok_or_else(|| not_found(id))
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<JobRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM jobs ORDER BY id DESC"))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks a queued or interrupted job as running (a resume keeps its progress).
    pub fn start_job(&mut self, id: i64) -> Result<JobRecord> {
        let now = now_ms();
        let changed = self.conn.execute(
            "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?2), \
             heartbeat_at = ?2, finished_at = NULL, cancel_requested = 0 \
             WHERE id = ?1 AND status IN ('queued', 'interrupted')",
            params![id, now],
        )?;
        let job = self.job(id)?;
        if changed == 0 {
            return Err(StoreError::Invalid(format!(
                "job {id} is {}; only a queued or interrupted job can start",
                job.status
            )));
        }
        Ok(job)
    }

    /// Records a running job's progress (and that it is alive).
    pub fn set_job_progress(
        &mut self,
        id: i64,
        done: u64,
        total: Option<u64>,
        message: &str,
    ) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE jobs SET progress_done = ?2, progress_total = ?3, message = ?4, \
             heartbeat_at = ?5 WHERE id = ?1",
            params![
                id,
                to_sql_u64(done),
                total.map(to_sql_u64),
                message,
                now_ms()
            ],
        )?;
        match changed {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }

    /// Stamps the heartbeat of the running jobs `ids`; returns those of them whose
    /// cancellation was requested.
    pub fn heartbeat_jobs(&mut self, ids: &[i64]) -> Result<Vec<i64>> {
        let now = now_ms();
        self.write(|tx| {
            let mut beat = tx.prepare_cached(
                "UPDATE jobs SET heartbeat_at = ?2 WHERE id = ?1 AND status = 'running'",
            )?;
            let mut asked = tx.prepare_cached(
                "SELECT cancel_requested FROM jobs WHERE id = ?1 AND status = 'running'",
            )?;
            let mut cancelled = Vec::new();
            for &id in ids {
                beat.execute(params![id, now])?;
                let flag: Option<bool> = asked.query_row([id], |r| r.get(0)).optional()?;
                if flag == Some(true) {
                    cancelled.push(id);
                }
            }
            Ok(cancelled)
        })
    }

    /// Ends a job with a final status; `error` is `(code, message)` for a failure. A job's
    /// run, if it has one and is still running, ends with the same status.
    pub fn finish_job(
        &mut self,
        id: i64,
        status: Status,
        error: Option<(&str, &str)>,
    ) -> Result<()> {
        if !status.is_final() {
            return Err(StoreError::Invalid(format!(
                "{status} is not a final status for job {id}"
            )));
        }
        let now = now_ms();
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE jobs SET status = ?2, error_code = ?3, error_message = ?4, \
                 finished_at = ?5 WHERE id = ?1",
                params![
                    id,
                    status.as_str(),
                    error.map(|e| e.0),
                    error.map(|e| e.1),
                    now
                ],
            )?;
            if changed == 0 {
                return Err(not_found(id));
            }
            tx.execute(
                "UPDATE runs SET status = ?2, error = ?3, finished_at = ?4 \
                 WHERE id = (SELECT run_id FROM jobs WHERE id = ?1) \
                 AND status IN ('queued', 'running', 'interrupted')",
                params![id, status.as_str(), error.map(|e| e.1), now],
            )?;
            Ok(())
        })
    }

    /// Asks for a job to stop: a running one through its runner, others at once.
    pub fn request_job_cancel(&mut self, id: i64) -> Result<CancelOutcome> {
        let now = now_ms();
        self.write(|tx| {
            let status = tx
                .query_row("SELECT status FROM jobs WHERE id = ?1", [id], |r| {
                    status_column(r, 0)
                })
                .optional()?
                .ok_or_else(|| not_found(id))?;
            Ok(match status {
                Status::Running => {
                    tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])?;
                    CancelOutcome::Requested
                }
                Status::Queued | Status::Interrupted => {
                    tx.execute(
                        "UPDATE jobs SET status = 'cancelled', finished_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )?;
                    tx.execute(
                        "UPDATE runs SET status = 'cancelled', finished_at = ?2 \
                         WHERE id = (SELECT run_id FROM jobs WHERE id = ?1) \
                         AND status IN ('queued', 'running', 'interrupted')",
                        params![id, now],
                    )?;
                    CancelOutcome::Cancelled
                }
                done => CancelOutcome::AlreadyFinished(done),
            })
        })
    }

    /// Marks running jobs whose heartbeat is older than `stale_before` (ms since the epoch)
    /// — their process died — as interrupted, with their runs, and returns them.
    pub fn interrupt_stale_jobs(&mut self, stale_before: i64) -> Result<Vec<JobRecord>> {
        let ids = self.write(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id FROM jobs WHERE status = 'running' \
                 AND coalesce(heartbeat_at, started_at, created_at) < ?1",
            )?;
            let ids = stmt
                .query_map([stale_before], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for id in &ids {
                tx.execute(
                    "UPDATE jobs SET status = 'interrupted', cancel_requested = 0 WHERE id = ?1",
                    [id],
                )?;
                tx.execute(
                    "UPDATE runs SET status = 'interrupted' \
                     WHERE id = (SELECT run_id FROM jobs WHERE id = ?1) AND status = 'running'",
                    [id],
                )?;
            }
            Ok(ids)
        })?;
        ids.into_iter().map(|id| self.job(id)).collect()
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
