//! What importing a folder reads: its files, and the files its links point at only when those
//! lie inside the folder (or, for a snapshot of a Hugging Face cache, inside its repository,
//! whose `blobs/` the snapshot's links point into). A link that leads anywhere else is
//! refused, so an import never copies what the person did not put in the folder.

use std::path::{Path, PathBuf};

use crate::LibraryError;

/// A file to copy: where it goes inside the new folder, and where its bytes are read from.
pub(crate) struct SourceFile {
    pub(crate) relative: PathBuf,
    pub(crate) read_from: PathBuf,
}

/// Where the links of the folder `canonical` may point: the folder itself, or its repository
/// when it is a snapshot in the hub layout (`models--ORG--NAME/snapshots/REV`).
pub(crate) fn boundary(canonical: &Path) -> PathBuf {
    let parent = canonical.parent();
    let repo = parent.and_then(Path::parent);
    match (parent.and_then(Path::file_name), repo) {
        (Some(s), Some(repo))
            if s == "snapshots"
                && repo
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("models--")) =>
        {
            repo.to_path_buf()
        }
        _ => canonical.to_path_buf(),
    }
}

/// The files of the folder `dir` (canonical), recursively; links are resolved and must stay
/// inside `boundary` (canonical) and lead to files.
pub(crate) fn source_files(dir: &Path, boundary: &Path) -> Result<Vec<SourceFile>, LibraryError> {
    let mut out = Vec::new();
    collect(dir, Path::new(""), boundary, &mut out)?;
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(out)
}

fn collect(
    dir: &Path,
    relative: &Path,
    boundary: &Path,
    out: &mut Vec<SourceFile>,
) -> Result<(), LibraryError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LibraryError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LibraryError::io(dir, e))?;
        let path = entry.path();
        let rel = relative.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| LibraryError::io(&path, e))?;
        if kind.is_dir() {
            collect(&path, &rel, boundary, out)?;
        } else if kind.is_symlink() {
            let target = std::fs::canonicalize(&path).map_err(|e| LibraryError::io(&path, e))?;
            if !target.starts_with(boundary) {
                return Err(LibraryError::LinkOutside { link: path, target });
            }
            if !target.is_file() {
                return Err(LibraryError::NotAModel {
                    path,
                    detail: "it is a link to a folder; import the folder itself, or put the \
                             files in place of the link"
                        .into(),
                });
            }
            out.push(SourceFile {
                relative: rel,
                read_from: target,
            });
        } else {
            out.push(SourceFile {
                relative: rel,
                read_from: path,
            });
        }
    }
    Ok(())
}

/// Copies `files` into the new folder `to`.
pub(crate) fn copy_files(files: &[SourceFile], to: &Path) -> Result<(), LibraryError> {
    std::fs::create_dir_all(to).map_err(|e| LibraryError::io(to, e))?;
    for f in files {
        let dst = to.join(&f.relative);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LibraryError::io(parent, e))?;
        }
        std::fs::copy(&f.read_from, &dst).map_err(|e| LibraryError::io(&dst, e))?;
    }
    Ok(())
}
