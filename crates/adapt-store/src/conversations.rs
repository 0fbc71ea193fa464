//! `conversations`: a chat's title, system prompt, model and adapter. Its messages
//! (`messages`) and saved KV caches (`kv_caches`) hang off it.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{now_ms, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE conversations (
    id            INTEGER PRIMARY KEY,
    title         TEXT NOT NULL,
    system_prompt TEXT,
    model_id      INTEGER REFERENCES models(id) ON DELETE SET NULL,
    adapter_id    INTEGER REFERENCES adapters(id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX conversations_by_updated ON conversations(updated_at);
";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationRecord {
    pub id: i64,
    pub title: String,
    pub system_prompt: Option<String>,
    pub model_id: Option<i64>,
    pub adapter_id: Option<i64>,
    pub created_at: i64,
    /// When the last message was added.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, title, system_prompt, model_id, adapter_id, created_at, updated_at";

fn record(row: &Row<'_>) -> rusqlite::Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: row.get(0)?,
        title: row.get(1)?,
        system_prompt: row.get(2)?,
        model_id: row.get(3)?,
        adapter_id: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

impl Store {
    pub fn create_conversation(
        &mut self,
        title: &str,
        system_prompt: Option<&str>,
        model_id: Option<i64>,
        adapter_id: Option<i64>,
    ) -> Result<ConversationRecord> {
        let now = now_ms();
        self.conn.execute(
            "INSERT INTO conversations (title, system_prompt, model_id, adapter_id, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![title, system_prompt, model_id, adapter_id, now],
        )?;
        self.conversation(self.conn.last_insert_rowid())
    }

    pub fn conversation(&self, id: i64) -> Result<ConversationRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM conversations WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?
            .ok_or(StoreError::NotFound {
                what: "conversation",
                id,
            })
    }

    /// The most recently active conversation titled `title`.
    pub fn conversation_by_title(&self, title: &str) -> Result<Option<ConversationRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM conversations WHERE title = ?1 \
                     ORDER BY updated_at DESC, id DESC LIMIT 1"
                ),
                [title],
                record,
            )
            .optional()?)
    }

    /// Every conversation, most recently active first.
    pub fn conversations(&self) -> Result<Vec<ConversationRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM conversations ORDER BY updated_at DESC, id DESC"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn rename_conversation(&mut self, id: i64, title: &str) -> Result<()> {
        match self.conn.execute(
            "UPDATE conversations SET title = ?2 WHERE id = ?1",
            params![id, title],
        )? {
            0 => Err(StoreError::NotFound {
                what: "conversation",
                id,
            }),
            _ => Ok(()),
        }
    }

    /// Deletes a conversation and its messages; its KV-cache rows stay, unlinked, until the
    /// cache files are cleaned up.
    pub fn delete_conversation(&mut self, id: i64) -> Result<()> {
        match self
            .conn
            .execute("DELETE FROM conversations WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NotFound {
                what: "conversation",
                id,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conversations_are_created_renamed_and_deleted() {
        let (_dir, mut store) = crate::migrations::test_store();
        let c = store
            .create_conversation("New chat", Some("Be brief."), None, None)
            .unwrap();
        assert_eq!(c.system_prompt.as_deref(), Some("Be brief."));
        store.rename_conversation(c.id, "Capitals").unwrap();
        assert_eq!(store.conversation(c.id).unwrap().title, "Capitals");
        assert_eq!(store.conversations().unwrap().len(), 1);
        store.delete_conversation(c.id).unwrap();
        let err = store.rename_conversation(c.id, "x").unwrap_err();
        assert_eq!(err.code(), "store.not_found");
    }
}
