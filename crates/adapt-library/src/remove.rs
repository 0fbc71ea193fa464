//! Deleting a model: only the files Adapt recorded writing for it (when it imported, pulled or
//! converted it), then the folders they leave empty, after the person saw the list.
//!
//! A removal is two calls: [`Library::removal_plan`] says what would go (each file and its
//! bytes, what stays) with a confirmation code; [`Library::remove_planned`] removes exactly
//! that, refusing when the files changed since the plan was shown. Everything else is
//! refused with the reason: the person's Hugging Face cache, a path outside the models cache,
//! a file the person put into the models cache, one file of a repository pulled as a whole,
//! or a path inside a model folder.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::{Library, LibraryError, Source};

/// What Adapt recorded when it put a model in the library: its path (a file, or the folder
/// holding everything it wrote: a pulled repository's folder, an imported or converted model
/// folder) and the files it wrote there, relative to that path (`.` for the path itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub name: String,
    pub root: PathBuf,
    /// `imported`, `pulled` or `converted`.
    pub origin: String,
    pub files: Vec<String>,
}

/// One file a removal deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PlannedFile {
    pub path: PathBuf,
    /// Its size (0 for a link, which takes no room of its own).
    pub bytes: u64,
}

/// What deleting a model removes, for the person to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RemovalPlan {
    /// The model's name in the library.
    pub name: String,
    /// The file or folder Adapt put it in.
    pub root: PathBuf,
    /// How Adapt came to hold it: `imported`, `pulled` or `converted`.
    pub origin: String,
    /// The files Adapt wrote and removes (folders they leave empty go too).
    pub files: Vec<PlannedFile>,
    /// Their bytes in all.
    pub bytes: u64,
    /// Files in the model's folder that Adapt did not write: they stay, and so does the
    /// folder holding them.
    pub kept: Vec<PathBuf>,
    /// Gives this plan back to [`Library::remove_planned`]: it changes when the files do.
    pub confirmation: String,
}

impl Library {
    /// What deleting `name` (a model's name or path) would remove, given the records in
    /// `owned`; or why it is refused.
    pub fn removal_plan(&self, name: &str, owned: &[Owned]) -> Result<RemovalPlan, LibraryError> {
        let record = self.owner_of(name, owned)?;
        plan(record)
    }

    /// Removes what `plan` lists, when deleting `plan.name` would still remove exactly that
    /// (`confirmation` is the plan's code the person confirmed); then the folders left empty.
    pub fn remove_planned(
        &self,
        name: &str,
        owned: &[Owned],
        confirmation: &str,
    ) -> Result<RemovalPlan, LibraryError> {
        let plan = self.removal_plan(name, owned)?;
        if plan.confirmation != confirmation {
            return Err(LibraryError::Unconfirmed {
                name: plan.name.clone(),
            });
        }
        execute(&plan)?;
        Ok(plan)
    }

    /// The record that makes `name` ours, or the reason it is not.
    fn owner_of<'a>(&self, name: &str, owned: &'a [Owned]) -> Result<&'a Owned, LibraryError> {
        // A recorded name (a pulled repository of several GGUF files is listed per file, but
        // its record is named after the repository).
        if let Some(record) = owned
            .iter()
            .find(|r| r.name == name && std::fs::symlink_metadata(&r.root).is_ok())
        {
            return Ok(record);
        }
        let entry = self.find(name)?;
        let path = canonical(&entry.path)?;
        let is_root = |r: &&Owned| canonical(&r.root).ok().as_ref() == Some(&path);
        if let Some(record) = owned.iter().find(is_root) {
            return Ok(record);
        }
        // A pulled repository's snapshot (or one file of it) stands for the repository.
        if let Some(repo) = &entry.repo_id {
            if let Some(record) = owned.iter().find(|r| {
                r.origin == "pulled" && canonical(&r.root).is_ok_and(|root| path.starts_with(&root))
            }) {
                if entry.name != *repo || entry.path.is_file() && several_files(record) {
                    return Err(LibraryError::PartOfRepository {
                        name: entry.name,
                        repo: record.name.clone(),
                        files: record.files.len(),
                    });
                }
                return Ok(record);
            }
        }
        if let Some(record) = owned
            .iter()
            .find(|r| canonical(&r.root).is_ok_and(|root| path.starts_with(&root)))
        {
            return Err(LibraryError::PartOfModel {
                path: entry.path,
                model: record.name.clone(),
            });
        }
        Err(self.not_owned(entry.name, entry.path, entry.source, &path))
    }

    /// Why a model with no record is not ours to delete.
    fn not_owned(
        &self,
        name: String,
        path: PathBuf,
        source: Source,
        canonical: &Path,
    ) -> LibraryError {
        let owner = match source {
            Source::HuggingFaceCache => {
                "your Hugging Face cache, which Adapt only reads (delete it with \
                 `huggingface-cli delete-cache` if you want it gone)"
            }
            _ if self.inside_cache(canonical) => {
                "the models folder, but Adapt did not import, download or convert it: it is \
                 your file, so Adapt leaves it alone (delete it yourself if you no longer want \
                 it)"
            }
            _ => {
                "a folder outside the models cache; Adapt deletes only what it downloaded, \
                 imported or converted"
            }
        };
        LibraryError::NotOwned {
            name,
            path,
            owner: owner.into(),
        }
    }
}

/// Whether a pulled repository holds more than one GGUF file's worth of files, so one of its
/// files is not the whole repository.
fn several_files(record: &Owned) -> bool {
    record
        .files
        .iter()
        .filter(|f| f.ends_with(".gguf") && f.starts_with("snapshots/"))
        .count()
        > 1
}

fn canonical(path: &Path) -> Result<PathBuf, LibraryError> {
    std::fs::canonicalize(path).map_err(|e| LibraryError::io(path, e))
}

/// The plan of a record: its files that are still there (each checked to lie inside its
/// root, never through a link), their sizes, and what else the folder holds.
fn plan(record: &Owned) -> Result<RemovalPlan, LibraryError> {
    if record.files.is_empty() {
        return Err(LibraryError::NoFileList {
            name: record.name.clone(),
            path: record.root.clone(),
        });
    }
    let mut files = Vec::new();
    for rel in &record.files {
        let path = inside(&record.root, rel).ok_or_else(|| LibraryError::NoFileList {
            name: record.name.clone(),
            path: record.root.clone(),
        })?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(LibraryError::NoFileList {
                    name: record.name.clone(),
                    path: record.root.clone(),
                })
            }
            Ok(meta) => files.push(PlannedFile {
                bytes: if meta.file_type().is_symlink() {
                    0
                } else {
                    meta.len()
                },
                path,
            }),
            // Already gone: nothing to remove.
            Err(_) => {}
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let listed: std::collections::BTreeSet<&Path> =
        files.iter().map(|f| f.path.as_path()).collect();
    let kept = if std::fs::symlink_metadata(&record.root).is_ok_and(|m| m.is_dir()) {
        walk(&record.root)
            .into_iter()
            .filter(|p| !listed.contains(p.as_path()))
            .collect()
    } else {
        Vec::new()
    };
    let bytes = files.iter().map(|f| f.bytes).sum();
    let confirmation = confirmation(record, &files);
    Ok(RemovalPlan {
        name: record.name.clone(),
        root: record.root.clone(),
        origin: record.origin.clone(),
        files,
        bytes,
        kept,
        confirmation,
    })
}

/// `root` joined with the recorded `rel`, when that stays inside `root` without passing
/// through a link (a record is a list of plain relative paths).
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    if rel == "." {
        return Some(root.to_path_buf());
    }
    let rel = Path::new(rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let path = root.join(rel);
    let mut dir = path.parent()?;
    while dir != root {
        if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        dir = dir.parent()?;
    }
    Some(path)
}

/// The files under `dir` (links not followed), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&entry.path())),
            Ok(_) => out.push(entry.path()),
            Err(_) => {}
        }
    }
    out.sort();
    out
}

/// A code for "these files, these sizes": FNV-1a over the record and the planned files.
fn confirmation(record: &Owned, files: &[PlannedFile]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain([&0u8]) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(record.name.as_bytes());
    eat(record.root.as_os_str().as_encoded_bytes());
    for f in files {
        eat(f.path.as_os_str().as_encoded_bytes());
        eat(&f.bytes.to_le_bytes());
    }
    format!("{hash:016x}")
}

/// Removes the planned files, then each folder between them and the root (the root too) that
/// they left empty; a folder that still holds something stays.
fn execute(plan: &RemovalPlan) -> Result<(), LibraryError> {
    let mut folders = std::collections::BTreeSet::new();
    for f in &plan.files {
        std::fs::remove_file(&f.path).map_err(|e| LibraryError::io(&f.path, e))?;
        let mut dir = f.path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&plan.root)) {
            folders.insert(d.to_path_buf());
            dir = d.parent();
        }
    }
    // Deepest first, so a parent is tried after its children.
    for dir in folders.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}
