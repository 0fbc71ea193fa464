//! Adapters kept in memory, so requests that name different adapters swap them on the one
//! loaded base model without reading their files again: the adapter taken off goes on the
//! shelf, the one asked for comes off it (or from its folder), least recently used leaving
//! the shelf first. A folder whose files changed since it was shelved is read again.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::attach::remove;
use super::files::{ADAPTERS_FILE, CONFIG_FILE};
use crate::error::{EngineError, Result};
use crate::load::LoadedModel;
use crate::models::adapter::Adapter;
use crate::models::Model;

/// Size and modification time of an adapter folder's two files.
type Stamp = Vec<(u64, Option<SystemTime>)>;

/// An adapter folder and the fingerprint of its files.
type AdapterRef = (PathBuf, String);

/// One block's adapter, by block index and projection name.
type Layers = Vec<(usize, String, Adapter)>;

/// Adapters off the model, most recently used last.
#[derive(Debug)]
pub struct AdapterShelf {
    capacity: usize,
    shelved: Vec<Shelved>,
    /// The stamp of the folder attached through the shelf, with its fingerprint.
    attached: Option<(String, Stamp)>,
}

#[derive(Debug)]
struct Shelved {
    adapter: AdapterRef,
    stamp: Stamp,
    layers: Layers,
}

impl Default for AdapterShelf {
    fn default() -> Self {
        AdapterShelf::new(4)
    }
}

impl AdapterShelf {
    /// A shelf holding at most `capacity` adapters besides the attached one.
    pub fn new(capacity: usize) -> AdapterShelf {
        AdapterShelf {
            capacity,
            shelved: Vec::new(),
            attached: None,
        }
    }

    /// Adapters on the shelf.
    pub fn len(&self) -> usize {
        self.shelved.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shelved.is_empty()
    }

    /// Forgets every shelved adapter (the model changed).
    pub fn clear(&mut self) {
        self.shelved.clear();
        self.attached = None;
    }

    /// Makes the adapter folder `dir` (none: the base model) the one attached to `lm` and
    /// returns it with its fingerprint.
    pub fn use_dir(
        &mut self,
        lm: &mut LoadedModel,
        dir: Option<&Path>,
    ) -> Result<Option<AdapterRef>> {
        let stamp = dir.map(stamp).transpose()?;
        if let (Some((now, fingerprint)), Some((kept, kept_stamp))) =
            (&lm.info.adapter, &self.attached)
        {
            if Some(now.as_path()) == dir
                && fingerprint == kept
                && stamp.as_ref() == Some(kept_stamp)
            {
                return Ok(lm.info.adapter.clone());
            }
        }
        if dir.is_none() && lm.info.adapter.is_none() {
            return Ok(None);
        }
        self.shelve_attached(lm);
        let (Some(dir), Some(stamp)) = (dir, stamp) else {
            return Ok(None);
        };
        let found = self
            .shelved
            .iter()
            .position(|s| s.adapter.0 == dir && s.stamp == stamp);
        match found {
            Some(i) => {
                let shelved = self.shelved.remove(i);
                put_on(&mut lm.model, shelved.layers);
                lm.info.adapter = Some(shelved.adapter);
            }
            None => {
                self.shelved.retain(|s| s.adapter.0 != dir);
                lm.attach_adapter(dir)?;
            }
        }
        let fingerprint = lm.info.adapter.as_ref().map(|a| a.1.clone());
        self.attached = fingerprint.map(|f| (f, stamp));
        Ok(lm.info.adapter.clone())
    }

    /// Takes the attached adapter off `lm`; onto the shelf when its files are known to be
    /// those it was read from.
    fn shelve_attached(&mut self, lm: &mut LoadedModel) {
        let attached = self.attached.take();
        let Some(adapter) = lm.info.adapter.take() else {
            remove(&mut lm.model);
            return;
        };
        let layers = take_off(&mut lm.model);
        if let Some((_, stamp)) = attached.filter(|(f, _)| *f == adapter.1) {
            self.shelved.push(Shelved {
                adapter,
                stamp,
                layers,
            });
            if self.shelved.len() > self.capacity {
                self.shelved.remove(0);
            }
        }
    }
}

/// The size and modification time of the folder's adapter files.
fn stamp(dir: &Path) -> Result<Stamp> {
    [CONFIG_FILE, ADAPTERS_FILE]
        .iter()
        .map(|name| {
            let path: PathBuf = dir.join(name);
            let meta = std::fs::metadata(&path).map_err(|e| {
                EngineError::InvalidRequest(format!("{}: cannot read: {e}", path.display()))
            })?;
            Ok((meta.len(), meta.modified().ok()))
        })
        .collect()
}

/// Detaches every adapter, keeping them with where they were.
fn take_off(model: &mut Model) -> Layers {
    let mut layers = Vec::new();
    for (i, block) in model.net_mut().model.layers.iter_mut().enumerate() {
        for (name, linear) in block.linears_mut() {
            if let Some(adapter) = linear.adapter.take() {
                layers.push((i, name, adapter));
            }
        }
    }
    layers
}

/// Puts adapters taken off with [`take_off`] back where they were.
fn put_on(model: &mut Model, layers: Layers) {
    remove(model);
    let blocks = &mut model.net_mut().model.layers;
    for (i, name, adapter) in layers {
        if let Some(block) = blocks.get_mut(i) {
            if let Some((_, linear)) = block.linears_mut().into_iter().find(|(n, _)| *n == name) {
                linear.adapter = Some(adapter);
            }
        }
    }
}
