//! `models`: the models Adapt put in its library — each a file or folder on disk (GGUF, a
//! Hugging Face folder, an MLX folder) with what its header says, how it came (imported,
//! pulled, converted) and the files Adapt wrote for it, the only ones it may delete. Adding a
//! path that is already known updates that row.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{from_sql_u64, now_ms, path_text, to_sql_u64, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE models (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    path         TEXT NOT NULL UNIQUE,
    format       TEXT NOT NULL,
    architecture TEXT,
    bytes        INTEGER NOT NULL,
    added_at     INTEGER NOT NULL
);
";

/// How Adapt came to hold a model, and the files it wrote for it (JSON, paths relative to the
/// model's path: `["."]` for a file, the folder's files for a folder).
pub(crate) const V3: &str = "
ALTER TABLE models ADD COLUMN origin TEXT NOT NULL DEFAULT 'imported';
ALTER TABLE models ADD COLUMN files TEXT NOT NULL DEFAULT '[]';
";

/// A model to add to the library.
#[derive(Debug, Clone, Default)]
pub struct NewModel {
    pub name: String,
    pub path: PathBuf,
    /// `gguf`, `hf` or `mlx`.
    pub format: String,
    pub architecture: Option<String>,
    pub bytes: u64,
    /// `imported`, `pulled` or `converted`.
    pub origin: String,
    /// The files Adapt wrote, relative to `path` (`.` for the path itself).
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    pub id: i64,
    pub name: String,
    pub path: PathBuf,
    pub format: String,
    pub architecture: Option<String>,
    pub bytes: u64,
    pub added_at: i64,
    pub origin: String,
    pub files: Vec<String>,
}

const COLUMNS: &str = "id, name, path, format, architecture, bytes, added_at, origin, files";

fn record(row: &Row<'_>) -> rusqlite::Result<ModelRecord> {
    Ok(ModelRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        path: PathBuf::from(row.get::<_, String>(2)?),
        format: row.get(3)?,
        architecture: row.get(4)?,
        bytes: from_sql_u64(row.get(5)?),
        added_at: row.get(6)?,
        origin: row.get(7)?,
        files: serde_json::from_str(&row.get::<_, String>(8)?).unwrap_or_default(),
    })
}

impl Store {
    /// Adds `model`, or updates the row that already has its path.
    pub fn add_model(&mut self, model: &NewModel) -> Result<ModelRecord> {
        let path = path_text(&model.path);
        self.conn.execute(
            "INSERT INTO models (name, path, format, architecture, bytes, added_at, origin, files) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT(path) DO UPDATE SET name = excluded.name, format = excluded.format, \
             architecture = excluded.architecture, bytes = excluded.bytes, \
             origin = excluded.origin, files = excluded.files",
            params![
                model.name,
                path,
                model.format,
                model.architecture,
                to_sql_u64(model.bytes),
                now_ms(),
                model.origin,
                serde_json::to_string(&model.files).unwrap_or_else(|_| "[]".into()),
            ],
        )?;
        self.model_at(&model.path)?
            .ok_or_else(|| StoreError::Invalid(format!("model {path} vanished while adding it")))
    }

    pub fn model(&self, id: i64) -> Result<ModelRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?
            .ok_or(StoreError::NotFound { what: "model", id })
    }

    pub fn model_at(&self, path: &Path) -> Result<Option<ModelRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE path = ?1"),
                [path_text(path)],
                record,
            )
            .optional()?)
    }

    /// The library, by name.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM models ORDER BY name, id"))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a model (its files stay); runs and adapters keep their rows, unlinked.
    pub fn remove_model(&mut self, id: i64) -> Result<()> {
        match self
            .conn
            .execute("DELETE FROM models WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NotFound { what: "model", id }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_the_same_path_twice_updates_one_row() {
        let (_dir, mut store) = crate::migrations::test_store();
        let new = NewModel {
            name: "SmolLM2".into(),
            path: "/m/smol.gguf".into(),
            format: "gguf".into(),
            architecture: Some("llama".into()),
            bytes: 100,
            origin: "imported".into(),
            files: vec![".".into()],
        };
        let first = store.add_model(&new).unwrap();
        let second = store
            .add_model(&NewModel {
                bytes: 200,
                ..new.clone()
            })
            .unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(second.bytes, 200);
        assert_eq!(
            (second.origin.as_str(), second.files.clone()),
            ("imported", vec![".".to_string()])
        );
        assert_eq!(store.models().unwrap(), vec![second.clone()]);
        assert_eq!(store.model(first.id).unwrap(), second);
        store.remove_model(first.id).unwrap();
        assert!(store.models().unwrap().is_empty());
        assert_eq!(store.model(first.id).unwrap_err().code(), "store.not_found");
    }
}
