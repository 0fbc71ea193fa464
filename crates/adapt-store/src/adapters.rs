//! `adapters`: LoRA adapters on disk (mlx-lm layout), the run that trained each one, if any,
//! and the base model it belongs to.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{now_ms, path_text, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE adapters (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    path          TEXT NOT NULL UNIQUE,
    run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    base_model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL
);
";

#[derive(Debug, Clone, Default)]
pub struct NewAdapter {
    pub name: String,
    /// The folder with `adapters.safetensors` and `adapter_config.json`.
    pub path: PathBuf,
    pub run_id: Option<i64>,
    pub base_model_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AdapterRecord {
    pub id: i64,
    pub name: String,
    pub path: PathBuf,
    pub run_id: Option<i64>,
    pub base_model_id: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, path, run_id, base_model_id, created_at";

fn record(row: &Row<'_>) -> rusqlite::Result<AdapterRecord> {
    Ok(AdapterRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        path: PathBuf::from(row.get::<_, String>(2)?),
        run_id: row.get(3)?,
        base_model_id: row.get(4)?,
        created_at: row.get(5)?,
    })
}

impl Store {
    pub fn add_adapter(&mut self, adapter: &NewAdapter) -> Result<AdapterRecord> {
        self.conn.execute(
            "INSERT INTO adapters (name, path, run_id, base_model_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                adapter.name,
                path_text(&adapter.path),
                adapter.run_id,
                adapter.base_model_id,
                now_ms()
            ],
        )?;
        self.adapter(self.conn.last_insert_rowid())
    }

    pub fn adapter(&self, id: i64) -> Result<AdapterRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM adapters WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?
            .ok_or(StoreError::NotFound {
                what: "adapter",
                id,
            })
    }

    /// Every adapter, newest first.
    pub fn adapters(&self) -> Result<Vec<AdapterRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM adapters ORDER BY id DESC"))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn remove_adapter(&mut self, id: i64) -> Result<()> {
        match self
            .conn
            .execute("DELETE FROM adapters WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NotFound {
                what: "adapter",
                id,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRun;

    #[test]
    fn an_adapter_outlives_its_run() {
        let (_dir, mut store) = crate::migrations::test_store();
        let run = store.create_run(&NewRun::default()).unwrap().id;
        let a = store
            .add_adapter(&NewAdapter {
                name: "tickets-lora".into(),
                path: "/a/tickets".into(),
                run_id: Some(run),
                base_model_id: None,
            })
            .unwrap();
        assert_eq!(a.run_id, Some(run));
        store.delete_run(run).unwrap();
        assert_eq!(store.adapter(a.id).unwrap().run_id, None);
        assert_eq!(store.adapters().unwrap().len(), 1);
        store.remove_adapter(a.id).unwrap();
        assert_eq!(store.adapter(a.id).unwrap_err().code(), "store.not_found");
    }
}
