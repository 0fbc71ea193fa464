//! `settings`: the person's preferences as key → text (e.g. `models_dir`).

use rusqlite::{params, OptionalExtension};

use crate::store::Store;
use crate::Result;

pub(crate) const V1: &str = "
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

impl Store {
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Forgets a setting; returns whether it was set.
    pub fn remove_setting(&mut self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_are_set_replaced_and_removed() {
        let (_dir, mut store) = crate::migrations::test_store();
        assert_eq!(store.setting("models_dir").unwrap(), None);
        store.set_setting("models_dir", "/a").unwrap();
        store.set_setting("models_dir", "/b").unwrap();
        assert_eq!(store.setting("models_dir").unwrap().as_deref(), Some("/b"));
        assert!(store.remove_setting("models_dir").unwrap());
        assert!(!store.remove_setting("models_dir").unwrap());
    }
}
