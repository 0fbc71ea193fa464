//! The local model library: the models in our models cache and in the person's Hugging Face
//! hub cache, described from their headers (architecture, parameter count, dtype /
//! quantization, size, whether the engine can run them), plus import, delete and memory fit
//! advice. No MLX: everything is read from `config.json`, safetensors headers and GGUF
//! tensor tables.
//!
//! What lives in the models cache (`models_dir`):
//! - `hub/models--ORG--NAME/…` — repositories pulled from the Hub, in the hub cache layout
//!   (`adapt-hub` writes them); named `ORG/NAME`.
//! - `NAME/` — an imported model folder (`config.json` + safetensors); named `NAME`.
//! - `NAME.gguf` — an imported (or bundled) GGUF file; named by its file name.
//!
//! Models in the Hugging Face cache are listed and read in place and are never deleted: they
//! belong to the person's other tools. Inside the models cache Adapt deletes only the files it
//! recorded writing (`remove`): a file the person put there stays theirs.

mod copy;
mod describe;
mod error;
mod fit;
mod remove;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use describe::{describe, Description, Format, ModelFileEntry, Shape, Supported};
pub use error::LibraryError;
pub use fit::{fit, Estimate, Fit, FitOptions, Memory, Verdict};
pub use remove::{Owned, PlannedFile, RemovalPlan};

/// The folder of the models cache that holds pulled repositories.
pub const HUB_FOLDER: &str = "hub";

/// Where a model lives (whether Adapt may delete it also needs its record: see
/// [`Library::removal_plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "ModelSource"))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Our models cache: pulled, imported, converted, or put there by the person.
    Library,
    /// The person's Hugging Face cache: read in place, never deleted.
    HuggingFaceCache,
    /// A path given directly, outside both.
    External,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Source::Library => "library",
            Source::HuggingFaceCache => "hf-cache",
            Source::External => "path",
        })
    }
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ModelEntry {
    /// What commands take: `ORG/NAME` for Hub repositories, else the file or folder name.
    pub name: String,
    pub source: Source,
    /// What to load: the snapshot folder, the model folder, or the GGUF file.
    pub path: PathBuf,
    pub repo_id: Option<String>,
    /// The commit of a Hub snapshot.
    pub revision: Option<String>,
    #[serde(flatten)]
    pub description: Description,
}

/// The library over a models cache and, optionally, the Hugging Face hub cache.
#[derive(Debug, Clone)]
pub struct Library {
    models_dir: PathBuf,
    hf_cache: Option<PathBuf>,
    supported: Supported,
}

impl Library {
    /// `supported`: what the engine runs.
    pub fn new(models_dir: &Path, hf_cache: Option<&Path>, supported: Supported) -> Library {
        Library {
            models_dir: models_dir.to_path_buf(),
            hf_cache: hf_cache.map(Path::to_path_buf),
            supported,
        }
    }

    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// Where pulls go: `<models_dir>/hub`.
    pub fn hub_dir(&self) -> PathBuf {
        self.models_dir.join(HUB_FOLDER)
    }

    /// Every model: ours first (Hub repositories, then imported folders and files), then the
    /// Hugging Face cache's; each sorted by name. Unreadable entries are listed with the
    /// reason they cannot run.
    pub fn list(&self) -> Vec<ModelEntry> {
        let mut ours = self.hub_entries(&self.hub_dir(), Source::Library);
        let mut local = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.models_dir) {
            for e in entries.filter_map(|e| e.ok()) {
                let path = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if name == HUB_FOLDER || name.starts_with('.') {
                    continue;
                }
                let is_model = if path.is_dir() {
                    path.join("config.json").is_file()
                } else {
                    name.ends_with(".gguf")
                };
                if is_model {
                    local.push(self.entry(name, Source::Library, path, None, None));
                }
            }
        }
        local.sort_by(|a, b| a.name.cmp(&b.name));
        ours.extend(local);
        if let Some(hf) = &self.hf_cache {
            let same = std::fs::canonicalize(hf).ok() == std::fs::canonicalize(self.hub_dir()).ok();
            if !same {
                ours.extend(self.hub_entries(hf, Source::HuggingFaceCache));
            }
        }
        ours
    }

    fn entry(
        &self,
        name: String,
        source: Source,
        path: PathBuf,
        repo_id: Option<String>,
        revision: Option<String>,
    ) -> ModelEntry {
        let description = describe(&path, &self.supported).unwrap_or_else(|e| Description {
            format: if path.is_dir() {
                Format::Folder
            } else {
                Format::Gguf
            },
            architecture: None,
            parameters: None,
            dtype: None,
            quantization: None,
            weights_bytes: 0,
            bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            shape: None,
            runnable: false,
            not_runnable: Some(e.to_string()),
            files: Vec::new(),
            tensors: 0,
        });
        ModelEntry {
            name,
            source,
            path,
            repo_id,
            revision,
            description,
        }
    }

    /// The models of a hub-cache-layout folder: one per repository (its `refs/main` snapshot,
    /// else the newest), and for a snapshot of GGUF files one per file.
    fn hub_entries(&self, hub: &Path, source: Source) -> Vec<ModelEntry> {
        let mut out = Vec::new();
        for m in adapt_paths::hub::hub_models(hub) {
            if m.format == "gguf" {
                let mut ggufs: Vec<PathBuf> = std::fs::read_dir(&m.path)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                    .collect();
                ggufs.sort();
                let several = ggufs.len() > 1;
                for g in ggufs {
                    let file = g.file_name().unwrap_or_default().to_string_lossy();
                    let name = if several {
                        format!("{}/{file}", m.repo_id)
                    } else {
                        m.repo_id.clone()
                    };
                    out.push(self.entry(
                        name,
                        source,
                        g.clone(),
                        Some(m.repo_id.clone()),
                        Some(m.revision.clone()),
                    ));
                }
            } else {
                out.push(self.entry(
                    m.repo_id.clone(),
                    source,
                    m.path,
                    Some(m.repo_id),
                    Some(m.revision),
                ));
            }
        }
        out
    }

    /// The model named `name` (ours first), else the model at path `name`.
    pub fn find(&self, name: &str) -> Result<ModelEntry, LibraryError> {
        let list = self.list();
        if let Some(found) = list.iter().find(|m| m.name == name) {
            return Ok(found.clone());
        }
        let path = Path::new(name);
        if path.exists() {
            let canonical = std::fs::canonicalize(path).map_err(|e| LibraryError::io(path, e))?;
            if let Some(found) = list
                .iter()
                .find(|m| std::fs::canonicalize(&m.path).ok().as_ref() == Some(&canonical))
            {
                return Ok(found.clone());
            }
            let description = describe(path, &self.supported)?;
            let source = if self.inside_cache(&canonical) {
                Source::Library
            } else {
                Source::External
            };
            return Ok(ModelEntry {
                name: name.to_string(),
                source,
                path: path.to_path_buf(),
                repo_id: None,
                revision: None,
                description,
            });
        }
        Err(LibraryError::NotFound {
            name: name.to_string(),
        })
    }

    /// Whether `canonical` lies inside our models cache (and is not the cache itself).
    fn inside_cache(&self, canonical: &Path) -> bool {
        std::fs::canonicalize(&self.models_dir)
            .is_ok_and(|root| canonical != root && canonical.starts_with(&root))
    }

    /// Copies a model folder (`config.json` + safetensors) or a GGUF file into the models
    /// cache under its own name; refuses what is not a model, names already taken, and links
    /// in the folder that lead outside it (see `copy`).
    pub fn import(&self, from: &Path) -> Result<ModelEntry, LibraryError> {
        let meta = std::fs::metadata(from).map_err(|e| LibraryError::io(from, e))?;
        let canonical = std::fs::canonicalize(from).map_err(|e| LibraryError::io(from, e))?;
        // Links are checked before anything in the folder is read.
        let files = if meta.is_dir() {
            Some(copy::source_files(&canonical, &copy::boundary(&canonical))?)
        } else {
            None
        };
        // Refuse before copying anything: this reads the headers.
        let description = describe(from, &self.supported)?;
        if meta.is_dir()
            && !description
                .files
                .iter()
                .any(|f| f.name.ends_with(".safetensors"))
        {
            return Err(LibraryError::NotAModel {
                path: from.to_path_buf(),
                detail: "the folder has config.json but no .safetensors weights".into(),
            });
        }
        if self.inside_cache(&canonical) {
            return Err(LibraryError::AlreadyInLibrary {
                path: from.to_path_buf(),
            });
        }
        let name = canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != HUB_FOLDER && !n.starts_with('.'))
            .ok_or_else(|| LibraryError::NotAModel {
                path: from.to_path_buf(),
                detail: "the name cannot be used in the models cache".into(),
            })?;
        let dest = self.models_dir.join(&name);
        if dest.exists() {
            return Err(LibraryError::Exists { name, path: dest });
        }
        std::fs::create_dir_all(&self.models_dir)
            .map_err(|e| LibraryError::io(&self.models_dir, e))?;
        let staging = self.models_dir.join(format!(".{name}.importing"));
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_file(&staging);
        let copied = match &files {
            Some(files) => copy::copy_files(files, &staging),
            None => std::fs::copy(&canonical, &staging)
                .map(|_| ())
                .map_err(|e| LibraryError::io(&staging, e)),
        };
        let renamed = copied.and_then(|()| {
            std::fs::rename(&staging, &dest).map_err(|e| LibraryError::io(&dest, e))
        });
        if let Err(e) = renamed {
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        Ok(self.entry(name, Source::Library, dest, None, None))
    }
}

#[cfg(test)]
mod tests;
