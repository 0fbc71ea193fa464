//! `messages`: the turns of a conversation, numbered from 0 by `position`.

use rusqlite::{params, Row};
use serde::Serialize;

use crate::store::{from_sql_u64, now_ms, to_sql_u64, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (conversation_id, position)
);
";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRecord {
    pub id: i64,
    pub conversation_id: i64,
    pub position: u64,
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub created_at: i64,
}

fn record(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: row.get(0)?,
        conversation_id: row.get(1)?,
        position: from_sql_u64(row.get(2)?),
        role: row.get(3)?,
        content: row.get(4)?,
        created_at: row.get(5)?,
    })
}

/// Marks `conversation` as used at `now`; an error if it does not exist.
fn touch_conversation(tx: &rusqlite::Transaction<'_>, conversation: i64, now: i64) -> Result<()> {
    let touched = tx.execute(
        "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
        params![conversation, now],
    )?;
    if touched == 0 {
        return Err(StoreError::NotFound {
            what: "conversation",
            id: conversation,
        });
    }
    Ok(())
}

impl Store {
    /// Appends a message to `conversation` and marks the conversation as just used.
    pub fn append_message(
        &mut self,
        conversation: i64,
        role: &str,
        content: &str,
    ) -> Result<MessageRecord> {
        let now = now_ms();
        let id = self.write(|tx| {
            touch_conversation(tx, conversation, now)?;
            tx.execute(
                "INSERT INTO messages (conversation_id, position, role, content, created_at) \
                 SELECT ?1, coalesce(max(position) + 1, 0), ?2, ?3, ?4 \
                 FROM messages WHERE conversation_id = ?1",
                params![conversation, role, content, now],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        Ok(self.conn.query_row(
            "SELECT id, conversation_id, position, role, content, created_at \
             FROM messages WHERE id = ?1",
            [id],
            record,
        )?)
    }

    /// `conversation`'s messages in order.
    pub fn messages(&self, conversation: i64) -> Result<Vec<MessageRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, conversation_id, position, role, content, created_at \
             FROM messages WHERE conversation_id = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([conversation], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Makes `messages` (role, content) the whole of `conversation`, in one transaction, and
    /// marks the conversation as just used.
    pub fn set_messages(&mut self, conversation: i64, messages: &[(&str, &str)]) -> Result<()> {
        let now = now_ms();
        self.write(|tx| {
            touch_conversation(tx, conversation, now)?;
            tx.execute(
                "DELETE FROM messages WHERE conversation_id = ?1",
                [conversation],
            )?;
            for (i, (role, content)) in messages.iter().enumerate() {
                tx.execute(
                    "INSERT INTO messages (conversation_id, position, role, content, \
                     created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![conversation, i as i64, role, content, now],
                )?;
            }
            Ok(())
        })
    }

    /// Drops the messages at `position` and after (to edit or regenerate a turn).
    pub fn truncate_messages(&mut self, conversation: i64, position: u64) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM messages WHERE conversation_id = ?1 AND position >= ?2",
            params![conversation, to_sql_u64(position)],
        )?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_are_numbered_in_order_and_go_with_their_conversation() {
        let (_dir, mut store) = crate::migrations::test_store();
        let c = store.create_conversation("c", None, None, None).unwrap().id;
        store.append_message(c, "user", "Hi").unwrap();
        store.append_message(c, "assistant", "Hello!").unwrap();
        let third = store
            .append_message(c, "user", "Capital of France?")
            .unwrap();
        assert_eq!(third.position, 2);
        let all = store.messages(c).unwrap();
        let roles: Vec<_> = all.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(store.truncate_messages(c, 1).unwrap(), 2);
        assert_eq!(store.messages(c).unwrap().len(), 1);
        store
            .set_messages(c, &[("system", "Be brief."), ("user", "Hi")])
            .unwrap();
        let all = store.messages(c).unwrap();
        assert_eq!((all[0].position, all[1].content.as_str()), (0, "Hi"));
        assert_eq!(all.len(), 2);
        assert!(store.set_messages(c + 9, &[]).is_err());
        store.delete_conversation(c).unwrap();
        assert!(store.messages(c).unwrap().is_empty());
    }

    #[test]
    fn a_message_for_a_missing_conversation_is_refused() {
        let (_dir, mut store) = crate::migrations::test_store();
        let err = store.append_message(5, "user", "hi").unwrap_err();
        assert_eq!(err.code(), "store.not_found");
    }
}
