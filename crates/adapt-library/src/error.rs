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

    #[error(
        "`{name}` is one file of the repository `{repo}`, which Adapt downloaded as a whole \
         and deletes as a whole: delete the repository (`adapt models rm {repo}`, {files} \
         files) to remove it"
    )]
    PartOfRepository {
        name: String,
        repo: String,
        files: usize,
    },

    #[error(
        "{} is inside the model `{model}`, which Adapt deletes as a whole: delete `{model}` \
         instead",
        path.display()
    )]
    PartOfModel { path: PathBuf, model: String },

    #[error(
        "Adapt has no usable list of the files it wrote for `{name}`, so it deletes nothing; \
         delete {} yourself if you no longer want it",
        path.display()
    )]
    NoFileList { name: String, path: PathBuf },

    #[error(
        "the files deleting `{name}` would remove changed since they were shown; look at the \
         list again and confirm that one"
    )]
    Unconfirmed { name: String },

    #[error(
        "{} is a link to {}, outside the folder being imported; Adapt copies only what is \
         inside it: copy that file into the folder in place of the link, then import again",
        link.display(),
        target.display()
    )]
    LinkOutside { link: PathBuf, target: PathBuf },

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
            LibraryError::PartOfRepository { .. } => "library.part_of_repository",
            LibraryError::PartOfModel { .. } => "library.part_of_model",
            LibraryError::NoFileList { .. } => "library.no_file_list",
            LibraryError::Unconfirmed { .. } => "library.unconfirmed",
            LibraryError::LinkOutside { .. } => "library.link_outside",
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
