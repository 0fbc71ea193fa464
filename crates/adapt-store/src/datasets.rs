//! `datasets`: the files a person imported to train on (CSV or JSONL), their format and how
//! many examples they hold.

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

#[derive(Debug, Clone, Default)]
pub struct NewDataset {
    pub name: String,
    pub path: PathBuf,
    /// `chat`, `completions`, `text` or `csv`.
    pub format: String,
    pub n_examples: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub fn add_dataset(&mut self, dataset: &NewDataset) -> Result<DatasetRecord> {
        self.conn.execute(
            "INSERT INTO datasets (name, path, format, n_examples, added_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                dataset.name,
                path_text(&dataset.path),
                dataset.format,
                dataset.n_examples.map(to_sql_u64),
                now_ms()
            ],
        )?;
        self.dataset(self.conn.last_insert_rowid())
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

    /// Every dataset, newest first.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM datasets ORDER BY id DESC"))?;
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
        store.remove_dataset(a.id).unwrap();
        assert_eq!(store.dataset(a.id).unwrap_err().code(), "store.not_found");
    }
}
