//! `sweeps` and `sweep_trials`: a hyperparameter sweep (its definition as JSON, status, the
//! promoted best run) and its trials in order — each trial's values, its run, the validation
//! loss at each rung it reached, steps, time and why it stopped.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::runs::{status_column, NewRun, Status};
use crate::store::{from_sql_u64, now_ms, to_sql_u64, Store};
use crate::{Result, StoreError};

pub(crate) const V4: &str = "
CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    best_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE TABLE sweep_trials (
    sweep_id      INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    params        TEXT NOT NULL,
    state         TEXT NOT NULL,
    rung_losses   TEXT NOT NULL DEFAULT '[]',
    best_val_loss REAL,
    steps         INTEGER NOT NULL DEFAULT 0,
    seconds       REAL NOT NULL DEFAULT 0,
    reason        TEXT,
    PRIMARY KEY (sweep_id, number)
);
CREATE INDEX sweep_trials_by_run ON sweep_trials(run_id);
";

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrialState {
    /// Training (or interrupted while training: a resumed sweep goes on with it).
    Running,
    /// Trained every step.
    Completed,
    /// Stopped at a rung: its validation loss was not among the best there.
    Pruned,
    /// Stopped by an error (a diverging loss, say).
    Failed,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Completed => "completed",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<TrialState> {
        [
            TrialState::Running,
            TrialState::Completed,
            TrialState::Pruned,
            TrialState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SweepRecord {
    pub id: i64,
    pub name: String,
    /// The definition and the request (JSON).
    pub spec: String,
    pub status: Status,
    pub error: Option<String>,
    pub best_run_id: Option<i64>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrialRecord {
    pub sweep_id: i64,
    /// 0 for the first trial.
    pub number: u64,
    pub run_id: Option<i64>,
    /// The trial's values by setting (a JSON object).
    pub params: String,
    pub state: TrialState,
    /// Validation loss at each rung reached, in order.
    pub rung_losses: Vec<f64>,
    pub best_val_loss: Option<f64>,
    pub steps: u64,
    pub seconds: f64,
    /// Why it stopped, in words.
    pub reason: Option<String>,
}

const SWEEP_COLUMNS: &str = "id, name, spec, status, error, best_run_id, created_at, finished_at";
const TRIAL_COLUMNS: &str =
    "sweep_id, number, run_id, params, state, rung_losses, best_val_loss, steps, seconds, reason";

fn sweep_record(row: &Row<'_>) -> rusqlite::Result<SweepRecord> {
    Ok(SweepRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        spec: row.get(2)?,
        status: status_column(row, 3)?,
        error: row.get(4)?,
        best_run_id: row.get(5)?,
        created_at: row.get(6)?,
        finished_at: row.get(7)?,
    })
}

fn trial_record(row: &Row<'_>) -> rusqlite::Result<TrialRecord> {
    let state: String = row.get(4)?;
    let losses: String = row.get(5)?;
    let bad = |idx: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, what.into())
    };
    Ok(TrialRecord {
        sweep_id: row.get(0)?,
        number: from_sql_u64(row.get(1)?),
        run_id: row.get(2)?,
        params: row.get(3)?,
        state: TrialState::parse(&state)
            .ok_or_else(|| bad(4, format!("unknown state {state:?}")))?,
        rung_losses: serde_json::from_str(&losses).map_err(|e| bad(5, e.to_string()))?,
        best_val_loss: row.get(6)?,
        steps: from_sql_u64(row.get(7)?),
        seconds: row.get(8)?,
        reason: row.get(9)?,
    })
}

impl Store {
    /// Records a new sweep, running.
    pub fn create_sweep(&mut self, name: &str, spec: &str) -> Result<SweepRecord> {
        self.conn.execute(
            "INSERT INTO sweeps (name, spec, status, created_at) VALUES (?1, ?2, 'running', ?3)",
            params![name, spec, now_ms()],
        )?;
        let id = self.conn.last_insert_rowid();
        self.sweep(id)
    }

    pub fn sweep(&self, id: i64) -> Result<SweepRecord> {
        self.conn
            .query_row(
                &format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = ?1"),
                [id],
                sweep_record,
            )
            .optional()?
            .ok_or(StoreError::NotFound { what: "sweep", id })
    }

    /// Every sweep, newest first.
    pub fn sweeps(&self) -> Result<Vec<SweepRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([], sweep_record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Moves a sweep to `status` (a final one stamps when it finished); `error` says why a
    /// failed sweep failed.
    pub fn set_sweep_status(&mut self, id: i64, status: Status, error: Option<&str>) -> Result<()> {
        let finished = status.is_final().then(now_ms);
        let changed = self.conn.execute(
            "UPDATE sweeps SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, status.as_str(), error, finished],
        )?;
        match changed {
            0 => Err(StoreError::NotFound { what: "sweep", id }),
            _ => Ok(()),
        }
    }

    /// Replaces a sweep's definition (JSON).
    pub fn set_sweep_spec(&mut self, id: i64, spec: &str) -> Result<()> {
        match self.conn.execute(
            "UPDATE sweeps SET spec = ?2 WHERE id = ?1",
            params![id, spec],
        )? {
            0 => Err(StoreError::NotFound { what: "sweep", id }),
            _ => Ok(()),
        }
    }

    /// Marks `run` as the sweep's best trial.
    pub fn set_sweep_best(&mut self, id: i64, run: Option<i64>) -> Result<()> {
        match self.conn.execute(
            "UPDATE sweeps SET best_run_id = ?2 WHERE id = ?1",
            params![id, run],
        )? {
            0 => Err(StoreError::NotFound { what: "sweep", id }),
            _ => Ok(()),
        }
    }

    /// Starts trial `number` of `sweep` with `params` (JSON): its run and its row, in one
    /// transaction.
    pub fn start_trial(
        &mut self,
        sweep: i64,
        number: u64,
        params: &str,
        run: &NewRun,
    ) -> Result<TrialRecord> {
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO runs (name, model_id, dataset_id, config, status, created_at) \
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5)",
                params![run.name, run.model_id, run.dataset_id, run.config, now],
            )?;
            let run_id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO sweep_trials (sweep_id, number, run_id, params, state) \
                 VALUES (?1, ?2, ?3, ?4, 'running')",
                params![sweep, to_sql_u64(number), run_id, params],
            )?;
            Ok(())
        })?;
        self.trial(sweep, number)
    }

    pub fn trial(&self, sweep: i64, number: u64) -> Result<TrialRecord> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM sweep_trials WHERE sweep_id = ?1 AND number = ?2"
                ),
                params![sweep, to_sql_u64(number)],
                trial_record,
            )
            .optional()?
            .ok_or(StoreError::NotFound {
                what: "trial",
                id: number as i64,
            })
    }

    /// `sweep`'s trials in order.
    pub fn trials(&self, sweep: i64) -> Result<Vec<TrialRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {TRIAL_COLUMNS} FROM sweep_trials WHERE sweep_id = ?1 ORDER BY number"
        ))?;
        let rows = stmt.query_map([sweep], trial_record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes where a trial stands (state, rung losses, best loss, steps, time, reason).
    pub fn update_trial(&mut self, t: &TrialRecord) -> Result<()> {
        let losses = serde_json::to_string(&t.rung_losses).unwrap_or_else(|_| "[]".into());
        let changed = self.conn.execute(
            "UPDATE sweep_trials SET state = ?3, rung_losses = ?4, best_val_loss = ?5, \
             steps = ?6, seconds = ?7, reason = ?8 WHERE sweep_id = ?1 AND number = ?2",
            params![
                t.sweep_id,
                to_sql_u64(t.number),
                t.state.as_str(),
                losses,
                t.best_val_loss,
                to_sql_u64(t.steps),
                t.seconds,
                t.reason
            ],
        )?;
        match changed {
            0 => Err(StoreError::NotFound {
                what: "trial",
                id: t.number as i64,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_keeps_its_trials_and_their_runs() {
        let (_dir, mut store) = crate::migrations::test_store();
        let sweep = store.create_sweep("lr search", "{}").unwrap();
        assert_eq!(sweep.status, Status::Running);
        let run = NewRun {
            name: "lr search #0".into(),
            config: "{}".into(),
            ..NewRun::default()
        };
        let mut t = store
            .start_trial(sweep.id, 0, r#"{"learning_rate":0.01}"#, &run)
            .unwrap();
        assert_eq!(t.state, TrialState::Running);
        let run_id = t.run_id.unwrap();
        assert_eq!(store.run(run_id).unwrap().name, "lr search #0");
        t.state = TrialState::Pruned;
        t.rung_losses = vec![2.5];
        t.best_val_loss = Some(2.5);
        t.steps = 10;
        t.reason = Some("pruned at step 10".into());
        store.update_trial(&t).unwrap();
        assert_eq!(store.trials(sweep.id).unwrap(), vec![t]);
        // A trial number is taken once.
        let again = store.start_trial(sweep.id, 0, "{}", &run).unwrap_err();
        assert_eq!(again.code(), "store.constraint");
        assert_eq!(
            store.runs().unwrap().len(),
            1,
            "the refused trial left no run"
        );
        store.set_sweep_best(sweep.id, Some(run_id)).unwrap();
        store.set_sweep_spec(sweep.id, r#"{"trials":3}"#).unwrap();
        store
            .set_sweep_status(sweep.id, Status::Succeeded, None)
            .unwrap();
        let done = store.sweep(sweep.id).unwrap();
        assert_eq!(
            (done.best_run_id, done.status),
            (Some(run_id), Status::Succeeded)
        );
        assert!(done.finished_at.is_some());
        assert_eq!(done.spec, r#"{"trials":3}"#);
        assert_eq!(store.sweeps().unwrap(), vec![done]);
        // Deleting a trial's run keeps the trial, unlinked.
        store.delete_run(run_id).unwrap();
        assert_eq!(store.trials(sweep.id).unwrap()[0].run_id, None);
    }

    #[test]
    fn missing_sweeps_are_not_found() {
        let (_dir, mut store) = crate::migrations::test_store();
        assert_eq!(store.sweep(3).unwrap_err().code(), "store.not_found");
        let e = store.set_sweep_status(3, Status::Failed, None).unwrap_err();
        assert_eq!(e.code(), "store.not_found");
    }
}
