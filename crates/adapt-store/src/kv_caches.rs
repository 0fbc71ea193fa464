//! `kv_caches`: KV caches saved to disk — the file, how many tokens and bytes it holds, and
//! its [`CacheKey`] (model + adapter + chat template): a cache is only valid for exactly the
//! weights and template that produced it. A cache may belong to a conversation or be a
//! shared prefix (same system prompt and adapter) that any conversation can start from.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{from_sql_u64, now_ms, path_text, to_sql_u64, Store};
use crate::{Result, StoreError};

pub(crate) const V1: &str = "
CREATE TABLE kv_caches (
    id              INTEGER PRIMARY KEY,
    model_key       TEXT NOT NULL,
    adapter_key     TEXT NOT NULL DEFAULT '',
    template_key    TEXT NOT NULL,
    conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
    file            TEXT NOT NULL UNIQUE,
    n_tokens        INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL
);
CREATE INDEX kv_caches_by_key ON kv_caches(model_key, adapter_key, template_key);
";

/// What a KV cache is valid for: identifiers (e.g. content hashes) of the model, the adapter
/// (empty for none) and the chat template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CacheKey {
    pub model: String,
    pub adapter: String,
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvCacheRecord {
    pub id: i64,
    pub key: CacheKey,
    pub conversation_id: Option<i64>,
    pub file: PathBuf,
    pub n_tokens: u64,
    pub bytes: u64,
    pub created_at: i64,
    pub last_used_at: i64,
}

const COLUMNS: &str = "id, model_key, adapter_key, template_key, conversation_id, file, \
                       n_tokens, bytes, created_at, last_used_at";

fn record(row: &Row<'_>) -> rusqlite::Result<KvCacheRecord> {
    Ok(KvCacheRecord {
        id: row.get(0)?,
        key: CacheKey {
            model: row.get(1)?,
            adapter: row.get(2)?,
            template: row.get(3)?,
        },
        conversation_id: row.get(4)?,
        file: PathBuf::from(row.get::<_, String>(5)?),
        n_tokens: from_sql_u64(row.get(6)?),
        bytes: from_sql_u64(row.get(7)?),
        created_at: row.get(8)?,
        last_used_at: row.get(9)?,
    })
}

impl Store {
    /// Records the cache saved in `file` (replacing what was recorded for that file).
    pub fn put_kv_cache(
        &mut self,
        key: &CacheKey,
        conversation: Option<i64>,
        file: &Path,
        n_tokens: u64,
        bytes: u64,
    ) -> Result<KvCacheRecord> {
        let now = now_ms();
        let file_text = path_text(file);
        self.conn.execute(
            "INSERT INTO kv_caches (model_key, adapter_key, template_key, conversation_id, \
             file, n_tokens, bytes, created_at, last_used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
             ON CONFLICT(file) DO UPDATE SET model_key = excluded.model_key, \
             adapter_key = excluded.adapter_key, template_key = excluded.template_key, \
             conversation_id = excluded.conversation_id, n_tokens = excluded.n_tokens, \
             bytes = excluded.bytes, last_used_at = excluded.last_used_at",
            params![
                key.model,
                key.adapter,
                key.template,
                conversation,
                file_text,
                to_sql_u64(n_tokens),
                to_sql_u64(bytes),
                now
            ],
        )?;
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM kv_caches WHERE file = ?1"),
                [&file_text],
                record,
            )
            .optional()?
            .ok_or_else(|| StoreError::Invalid(format!("cache {file_text} vanished")))
    }

    /// The caches valid for `key`, most recently used first.
    pub fn kv_caches_for(&self, key: &CacheKey) -> Result<Vec<KvCacheRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM kv_caches WHERE model_key = ?1 AND adapter_key = ?2 \
             AND template_key = ?3 ORDER BY last_used_at DESC, id DESC"
        ))?;
        let rows = stmt.query_map(params![key.model, key.adapter, key.template], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every cache, for clean-up (least recently used first).
    pub fn kv_caches(&self) -> Result<Vec<KvCacheRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM kv_caches ORDER BY last_used_at, id"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn touch_kv_cache(&mut self, id: i64) -> Result<()> {
        match self.conn.execute(
            "UPDATE kv_caches SET last_used_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )? {
            0 => Err(StoreError::NotFound {
                what: "KV cache",
                id,
            }),
            _ => Ok(()),
        }
    }

    /// Forgets a cache (the caller deletes its file).
    pub fn remove_kv_cache(&mut self, id: i64) -> Result<()> {
        match self
            .conn
            .execute("DELETE FROM kv_caches WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NotFound {
                what: "KV cache",
                id,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(adapter: &str) -> CacheKey {
        CacheKey {
            model: "smollm2-q4_1".into(),
            adapter: adapter.into(),
            template: "chatml".into(),
        }
    }

    #[test]
    fn caches_are_found_only_by_their_whole_key() {
        let (_dir, mut store) = crate::migrations::test_store();
        let c = store.create_conversation("c", None, None, None).unwrap().id;
        let base = store
            .put_kv_cache(&key(""), Some(c), "/c/1.safetensors".as_ref(), 120, 4096)
            .unwrap();
        store
            .put_kv_cache(&key("tickets"), None, "/c/2.safetensors".as_ref(), 40, 1024)
            .unwrap();
        assert_eq!(store.kv_caches_for(&key("")).unwrap(), vec![base.clone()]);
        assert_eq!(store.kv_caches_for(&key("tickets")).unwrap().len(), 1);
        assert!(store.kv_caches_for(&key("other")).unwrap().is_empty());
        let grown = store
            .put_kv_cache(&key(""), Some(c), "/c/1.safetensors".as_ref(), 300, 9000)
            .unwrap();
        assert_eq!((grown.id, grown.n_tokens), (base.id, 300));
        store.delete_conversation(c).unwrap();
        assert_eq!(
            store.kv_caches_for(&key("")).unwrap()[0].conversation_id,
            None
        );
        store.touch_kv_cache(base.id).unwrap();
        store.remove_kv_cache(base.id).unwrap();
        assert_eq!(store.kv_caches().unwrap().len(), 1);
        assert_eq!(
            store.touch_kv_cache(base.id).unwrap_err().code(),
            "store.not_found"
        );
    }
}
