//! `datasets`: the files a person looked at or trained on (CSV or JSONL), their format and how
//! many examples they hold; one row per path, the most recently seen first.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{from_sql_u64, now_ms, path_text, to_sql_u64, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE datasets (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    path       TEXT NOT NULL,
    format     TEXT NOT NULL,
    n_examples INTEGER,
    added_at   INTEGER NOT NULL
);
";

/// One row per path (the newest kept), so seeing a file again updates its row.
pub(crate) const V3: &str = "
DELETE FROM datasets WHERE id NOT IN (SELECT MAX(id) FROM datasets GROUP BY path);
CREATE UNIQUE INDEX datasets_path ON datasets(path);
";

#[derive(Debug, Clone, Default)]
pub struct NewDataset {
    pub name: String,
    pub path: PathBuf,
    /// `chat`, `completions`, `text` or `csv`.
    pub format: String,
    pub n_examples: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DatasetRecord {
    pub id: i64,
    pub name: String,
    pub path: PathBuf,
    pub format: String,
    pub n_examples: Option<u64>,
    pub added_at: i64,
}

const COLUMNS: &str = "id, name, path, format, n_examples, added_at";

fn record(row: &Row<'_>) -> rusqlite::Result<DatasetRecord> {
    Ok(DatasetRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        path: PathBuf::from(row.get::<_, String>(2)?),
        format: row.get(3)?,
        n_examples: row.get::<_, Option<i64>>(4)?.map(from_sql_u64),
        added_at: row.get(5)?,
    })
}

impl Store {
    /// Adds `dataset`, or updates the row of its path (which then counts as the newest).
    pub fn add_dataset(&mut self, dataset: &NewDataset) -> Result<DatasetRecord> {
        self.conn.execute(
            "INSERT INTO datasets (name, path, format, n_examples, added_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(path) DO UPDATE SET name = excluded.name, format = excluded.format, \
             n_examples = excluded.n_examples, added_at = excluded.added_at",
            params![
                dataset.name,
                path_text(&dataset.path),
                dataset.format,
                dataset.n_examples.map(to_sql_u64),
                now_ms()
            ],
        )?;
        let id: i64 = self.conn.query_row(
            "SELECT id FROM datasets WHERE path = ?1",
            [path_text(&dataset.path)],
            |row| row.get(0),
        )?;
        self.dataset(id)
    }

    pub fn dataset(&self, id: i64) -> Result<DatasetRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM datasets WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?
            .ok_or(StoreError::NotFound {
                what: "dataset",
                id,
            })
    }

    /// Every dataset, the most recently seen first.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM datasets ORDER BY added_at DESC, id DESC"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn remove_dataset(&mut self, id: i64) -> Result<()> {
        match self
            .conn
            .execute("DELETE FROM datasets WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NotFound {
                what: "dataset",
                id,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_added_listed_and_removed() {
        let (_dir, mut store) = crate::migrations::test_store();
        let a = store
            .add_dataset(&NewDataset {
                name: "tickets".into(),
                path: "/d/tickets.jsonl".into(),
                format: "chat".into(),
                n_examples: Some(1200),
            })
            .unwrap();
        assert_eq!(a.n_examples, Some(1200));
        assert_eq!(store.datasets().unwrap(), vec![a.clone()]);
        // Seeing the same file again updates its row.
        let again = store
            .add_dataset(&NewDataset {
                n_examples: Some(1300),
                ..NewDataset {
                    name: "tickets".into(),
                    path: "/d/tickets.jsonl".into(),
                    format: "chat".into(),
                    n_examples: None,
                }
            })
            .unwrap();
        assert_eq!((again.id, again.n_examples), (a.id, Some(1300)));
        assert_eq!(store.datasets().unwrap(), vec![again.clone()]);
        store.remove_dataset(a.id).unwrap();
        assert_eq!(store.dataset(a.id).unwrap_err().code(), "store.not_found");
    }
}
