//! An adapter on a loaded model: attached by folder and recorded (so saved conversations know
//! which adapter their cache belongs to), or swapped for another on the same base weights.

use std::path::{Path, PathBuf};

use super::attach::remove;
use super::files::{fingerprint, load};
use crate::error::{EngineError, Result};
use crate::load::LoadedModel;

impl LoadedModel {
    /// Attaches the adapter folder `dir` (ours or mlx-lm's) to the model and records it, so
    /// saved conversations know which adapter their cache belongs to.
    pub fn attach_adapter(&mut self, dir: &Path) -> Result<()> {
        load(&mut self.model, dir)?;
        self.info.adapter = Some((dir.to_path_buf(), fingerprint(dir)?));
        Ok(())
    }

    /// Makes `adapter` (none: the base model) the attached one, swapping adapters on the same
    /// base weights. Refuses an adapter whose files changed since it was named.
    pub fn use_adapter(&mut self, adapter: Option<&(PathBuf, String)>) -> Result<()> {
        let now = self.info.adapter.as_ref().map(|(_, f)| f);
        if now == adapter.map(|(_, f)| f) {
            return Ok(());
        }
        remove(&mut self.model);
        self.info.adapter = None;
        if let Some((dir, fingerprint)) = adapter {
            self.attach_adapter(dir)?;
            if self.info.adapter.as_ref().map(|(_, f)| f) != Some(fingerprint) {
                remove(&mut self.model);
                self.info.adapter = None;
                return Err(EngineError::InvalidRequest(format!(
                    "{}: the adapter's files changed since this conversation started; start a \
                     new conversation",
                    dir.display()
                )));
            }
        }
        Ok(())
    }
}
