//! `run_metrics`: one row per training step of a run — epoch, train / validation loss,
//! learning rate, tokens and iterations per second, trained tokens, peak memory, and the
//! answers to probe prompts (JSON) on evaluation steps, and in a group each rank's own
//! throughput (JSON). `(run_id, step)` is the key, so a
//! resumed run that repeats a step replaces it instead of duplicating it.

use rusqlite::{params, Row};
use serde::Serialize;

use crate::store::{from_sql_u64, now_ms, to_sql_u64, Store};
use crate::Result;

pub(crate) const V1: &str = "
CREATE TABLE run_metrics (
    run_id            INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step              INTEGER NOT NULL,
    epoch             REAL NOT NULL,
    train_loss        REAL,
    val_loss          REAL,
    learning_rate     REAL NOT NULL,
    tokens_per_second REAL NOT NULL,
    peak_memory       INTEGER NOT NULL,
    recorded_at       INTEGER NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
";

/// Version 2: iterations per second, trained tokens and probe answers.
pub(crate) const V2: &str = "
ALTER TABLE run_metrics ADD COLUMN iterations_per_second REAL;
ALTER TABLE run_metrics ADD COLUMN trained_tokens INTEGER;
ALTER TABLE run_metrics ADD COLUMN probes TEXT;
";

/// Version 5: each rank's own throughput in a group.
pub(crate) const V5: &str = "
ALTER TABLE run_metrics ADD COLUMN ranks TEXT;
";

/// The figures of one training step.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Metric {
    pub step: u64,
    pub epoch: f64,
    pub train_loss: Option<f64>,
    /// Only on steps where validation ran.
    pub val_loss: Option<f64>,
    pub learning_rate: f64,
    pub tokens_per_second: f64,
    /// Bytes.
    pub peak_memory: u64,
    pub iterations_per_second: Option<f64>,
    /// Loss-bearing tokens trained on up to this step.
    pub trained_tokens: Option<u64>,
    /// Probe prompts and their answers at this evaluation, as JSON.
    pub probes: Option<String>,
    /// In a group: each rank's own throughput since the report before, as JSON (a list of
    /// `{rank, trained_tokens, compute_seconds, exchange_seconds, tokens_per_second}`).
    pub ranks: Option<String>,
}

fn record(row: &Row<'_>) -> rusqlite::Result<Metric> {
    Ok(Metric {
        step: from_sql_u64(row.get(0)?),
        epoch: row.get(1)?,
        train_loss: row.get(2)?,
        val_loss: row.get(3)?,
        learning_rate: row.get(4)?,
        tokens_per_second: row.get(5)?,
        peak_memory: from_sql_u64(row.get(6)?),
        iterations_per_second: row.get(7)?,
        trained_tokens: row.get::<_, Option<i64>>(8)?.map(from_sql_u64),
        probes: row.get(9)?,
        ranks: row.get(10)?,
    })
}

impl Store {
    /// Records the metrics of `run`'s steps in one transaction: all of them or none.
    pub fn add_metrics(&mut self, run: i64, metrics: &[Metric]) -> Result<()> {
        let now = now_ms();
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO run_metrics (run_id, step, epoch, train_loss, val_loss, \
                 learning_rate, tokens_per_second, peak_memory, recorded_at, \
                 iterations_per_second, trained_tokens, probes, ranks) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for m in metrics {
                stmt.execute(params![
                    run,
                    to_sql_u64(m.step),
                    m.epoch,
                    m.train_loss,
                    m.val_loss,
                    m.learning_rate,
                    m.tokens_per_second,
                    to_sql_u64(m.peak_memory),
                    now,
                    m.iterations_per_second,
                    m.trained_tokens.map(to_sql_u64),
                    m.probes,
                    m.ranks
                ])?;
            }
            Ok(())
        })
    }

    /// `run`'s metrics with a step above `after` (`None`: all), by step — a chart polls with
    /// the last step it has.
    pub fn metrics(&self, run: i64, after: Option<u64>) -> Result<Vec<Metric>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT step, epoch, train_loss, val_loss, learning_rate, tokens_per_second, \
             peak_memory, iterations_per_second, trained_tokens, probes, ranks FROM run_metrics WHERE run_id = ?1 AND step > ?2 ORDER BY step",
        )?;
        let after = after.map_or(-1, to_sql_u64);
        let rows = stmt.query_map(params![run, after], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The highest step recorded for `run`, if any: where a resumed run carries on.
    pub fn last_metric_step(&self, run: i64) -> Result<Option<u64>> {
        let step: Option<i64> = self.conn.query_row(
            "SELECT max(step) FROM run_metrics WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )?;
        Ok(step.map(from_sql_u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRun;

    fn metric(step: u64) -> Metric {
        Metric {
            step,
            epoch: step as f64 / 10.0,
            train_loss: Some(2.0 / (step + 1) as f64),
            val_loss: matches!(step % 5, 0).then_some(1.5),
            learning_rate: 1e-4,
            tokens_per_second: 300.0,
            peak_memory: 1 << 30,
            iterations_per_second: Some(1.5),
            trained_tokens: Some(step * 100),
            probes: None,
            ranks: (step == 2).then(|| r#"[{"rank":0},{"rank":1}]"#.to_string()),
        }
    }

    #[test]
    fn metrics_come_back_in_step_order_and_after_a_step() {
        let (_dir, mut store) = crate::migrations::test_store();
        let run = store.create_run(&NewRun::default()).unwrap().id;
        assert_eq!(store.last_metric_step(run).unwrap(), None);
        store.add_metrics(run, &[metric(2), metric(1)]).unwrap();
        store.add_metrics(run, &[metric(3)]).unwrap();
        let all = store.metrics(run, None).unwrap();
        assert_eq!(all, vec![metric(1), metric(2), metric(3)]);
        assert_eq!(store.metrics(run, Some(2)).unwrap(), vec![metric(3)]);
        assert_eq!(store.last_metric_step(run).unwrap(), Some(3));
    }

    #[test]
    fn a_repeated_step_replaces_the_old_row() {
        let (_dir, mut store) = crate::migrations::test_store();
        let run = store.create_run(&NewRun::default()).unwrap().id;
        store.add_metrics(run, &[metric(1)]).unwrap();
        let again = Metric {
            train_loss: Some(0.5),
            ..metric(1)
        };
        store
            .add_metrics(run, std::slice::from_ref(&again))
            .unwrap();
        assert_eq!(store.metrics(run, None).unwrap(), vec![again]);
    }

    #[test]
    fn metrics_of_a_missing_run_are_refused_and_deleting_a_run_drops_them() {
        let (_dir, mut store) = crate::migrations::test_store();
        let err = store.add_metrics(99, &[metric(1)]).unwrap_err();
        assert_eq!(err.code(), "store.constraint");
        let run = store.create_run(&NewRun::default()).unwrap().id;
        store.add_metrics(run, &[metric(1)]).unwrap();
        store.delete_run(run).unwrap();
        assert!(store.metrics(run, None).unwrap().is_empty());
    }
}
