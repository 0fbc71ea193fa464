//! Library errors: a stable code and a message that says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("there is no model named `{name}`; `adapt models list` shows the models")]
    NotFound { name: String },

    #[error("{} is not a model: {detail}", path.display())]
    NotAModel { path: PathBuf, detail: String },

    #[error(
        "the models cache already has `{name}` ({}); remove it first with `adapt models rm {name}` \
         or rename what you import",
        path.display()
    )]
    Exists { name: String, path: PathBuf },

    #[error("{} is already in the models cache", path.display())]
    AlreadyInLibrary { path: PathBuf },

    #[error("`{name}` ({}) is in {owner}", path.display())]
    NotOwned {
        name: String,
        path: PathBuf,
        owner: String,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LibraryError {
    pub fn code(&self) -> &'static str {
        match self {
            LibraryError::NotFound { .. } => "library.not_found",
            LibraryError::NotAModel { .. } => "library.not_a_model",
            LibraryError::Exists { .. } => "library.exists",
            LibraryError::AlreadyInLibrary { .. } => "library.already_in_library",
            LibraryError::NotOwned { .. } => "library.not_owned",
            LibraryError::Io { .. } => "library.io",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LibraryError {
        LibraryError::Io {
            path: path.into(),
            source,
        }
    }
}
