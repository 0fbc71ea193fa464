//! Repository ids, the Hub's repository info, and which files of a repository a model needs.

use serde::{Deserialize, Serialize};

use crate::HubError;

/// `ORG/NAME` plus a revision (a branch, tag or commit; `main` when none is given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoSpec {
    pub repo: String,
    pub revision: String,
}

impl RepoSpec {
    /// Parses `ORG/NAME[@REVISION]`.
    pub fn parse(spec: &str) -> Result<RepoSpec, HubError> {
        let bad = || HubError::BadRepoId {
            spec: spec.to_string(),
        };
        let spec = spec.trim();
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) if !rev.is_empty() => (repo, rev),
            Some(_) => return Err(bad()),
            None => (spec, "main"),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && !p.starts_with('.')
                && !p.contains("..")
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !(1..=2).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(bad());
        }
        if revision
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad());
        }
        Ok(RepoSpec {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The cache folder name, `models--ORG--NAME`.
    pub fn cache_folder(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }
}

impl std::fmt::Display for RepoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

/// What `GET /api/models/{repo}/revision/{rev}?blobs=true` answers (the parts we use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    /// The commit the revision points at.
    pub sha: String,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

/// One file of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    /// The git object id (the ETag of a file stored in git).
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// Present for files stored in LFS (weights).
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lfs {
    pub sha256: String,
    pub size: u64,
}

impl Sibling {
    /// The file's size as the Hub states it.
    pub fn expected_size(&self) -> Option<u64> {
        self.lfs.as_ref().map(|l| l.size).or(self.size)
    }

    /// The name its blob gets in the cache: the sha256 for LFS files, the git object id for
    /// the others (as `huggingface_hub` names them), else one derived from the path.
    pub fn blob_name(&self, commit: &str) -> String {
        if let Some(lfs) = &self.lfs {
            return lfs.sha256.to_ascii_lowercase();
        }
        if let Some(id) = &self.blob_id {
            return id.to_ascii_lowercase();
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{commit}/{}", self.rfilename));
        format!("path-{}", crate::hex(&digest))
    }
}

/// Small files every model folder wants, fetched when the repository has them.
pub const METADATA_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
];

/// The index of a sharded safetensors checkpoint.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

/// The first files to fetch: `file` alone when one is named; else the metadata files the
/// repository has, plus the safetensors index if there is one (its shards come after, see
/// [`shards_from_index`]) or else every top-level `.safetensors` file.
pub fn select_files(info: &RepoInfo, file: Option<&str>) -> Result<Vec<Sibling>, HubError> {
    let available = || {
        let mut names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
        names.sort_unstable();
        names.join(", ")
    };
    let find = |name: &str| info.siblings.iter().find(|s| s.rfilename == name).cloned();
    if let Some(file) = file {
        return find(file)
            .map(|s| vec![s])
            .ok_or_else(|| HubError::NoSuchFile {
                file: file.to_string(),
                available: available(),
            });
    }
    let mut chosen: Vec<Sibling> = METADATA_FILES.iter().filter_map(|n| find(n)).collect();
    let has_config = chosen.iter().any(|s| s.rfilename == "config.json");
    let weights: Vec<Sibling> = match find(SAFETENSORS_INDEX) {
        Some(index) => vec![index],
        None => {
            let mut w: Vec<Sibling> = info
                .siblings
                .iter()
                .filter(|s| s.rfilename.ends_with(".safetensors") && !s.rfilename.contains('/'))
                .cloned()
                .collect();
            w.sort_by(|a, b| a.rfilename.cmp(&b.rfilename));
            w
        }
    };
    if !has_config || weights.is_empty() {
        return Err(HubError::NothingToPull {
            available: available(),
        });
    }
    chosen.extend(weights);
    Ok(chosen)
}

/// The shard files a safetensors index names, in order, looked up in the repository.
pub fn shards_from_index(info: &RepoInfo, index: &[u8]) -> Result<Vec<Sibling>, HubError> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let bad = |detail: String| HubError::BadResponse {
        what: SAFETENSORS_INDEX.into(),
        detail,
    };
    let index: Index = serde_json::from_slice(index).map_err(|e| bad(e.to_string()))?;
    let mut names: Vec<&String> = index.weight_map.values().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            info.siblings
                .iter()
                .find(|s| &s.rfilename == name)
                .cloned()
                .ok_or_else(|| bad(format!("it names {name}, which the repository lacks")))
        })
        .collect()
}

/// Whether `name` is a safe relative path (no `..`, not absolute), so a file the server names
/// cannot land outside the snapshot.
pub(crate) fn safe_relative(name: &str) -> bool {
    let path = std::path::Path::new(name);
    !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sib(name: &str) -> Sibling {
        Sibling {
            rfilename: name.into(),
            blob_id: Some("b".into()),
            size: Some(1),
            lfs: None,
        }
    }

    fn info(names: &[&str]) -> RepoInfo {
        RepoInfo {
            sha: "c0ffee".into(),
            siblings: names.iter().map(|n| sib(n)).collect(),
        }
    }

    fn names(s: &[Sibling]) -> Vec<&str> {
        s.iter().map(|s| s.rfilename.as_str()).collect()
    }

    #[test]
    fn repo_ids_parse_with_an_optional_revision() {
        let s = RepoSpec::parse("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
        assert_eq!(
            (s.repo.as_str(), s.revision.as_str()),
            ("HuggingFaceTB/SmolLM2-135M-Instruct", "main")
        );
        assert_eq!(
            s.cache_folder(),
            "models--HuggingFaceTB--SmolLM2-135M-Instruct"
        );
        let s = RepoSpec::parse("org/name@refs/pr/1").unwrap();
        assert_eq!(s.revision, "refs/pr/1");
        for bad in [
            "",
            "a/b/c",
            "../x",
            "org/",
            "org/na me",
            "org/name@",
            "o/n@a/../b",
        ] {
            let e = RepoSpec::parse(bad).unwrap_err();
            assert_eq!(e.code(), "hub.bad_repo_id", "{bad}");
        }
    }

    #[test]
    fn a_model_folder_takes_metadata_and_weights_but_not_the_rest() {
        let i = info(&[
            "README.md",
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "pytorch_model.bin",
            "onnx/model.safetensors",
        ]);
        let chosen = select_files(&i, None).unwrap();
        assert_eq!(
            names(&chosen),
            ["config.json", "tokenizer.json", "model.safetensors"]
        );
    }

    #[test]
    fn sharded_weights_come_from_the_index() {
        let i = info(&[
            "config.json",
            SAFETENSORS_INDEX,
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "consolidated.safetensors",
        ]);
        let chosen = select_files(&i, None).unwrap();
        assert_eq!(names(&chosen), ["config.json", SAFETENSORS_INDEX]);
        let index = br#"{"metadata":{},"weight_map":{"a":"model-00002-of-00002.safetensors",
            "b":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#;
        let shards = shards_from_index(&i, index).unwrap();
        assert_eq!(
            names(&shards),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        let missing = br#"{"weight_map":{"a":"nope.safetensors"}}"#;
        assert_eq!(
            shards_from_index(&i, missing).unwrap_err().code(),
            "hub.bad_response"
        );
    }

    #[test]
    fn a_named_file_is_taken_alone_and_a_gguf_repo_needs_one() {
        let i = info(&["README.md", "m.Q4_0.gguf", "m.Q8_0.gguf"]);
        assert_eq!(
            names(&select_files(&i, Some("m.Q8_0.gguf")).unwrap()),
            ["m.Q8_0.gguf"]
        );
        let e = select_files(&i, None).unwrap_err();
        assert_eq!(e.code(), "hub.nothing_to_pull");
        assert!(e.to_string().contains("m.Q4_0.gguf"), "{e}");
        let e = select_files(&i, Some("x.gguf")).unwrap_err();
        assert_eq!(e.code(), "hub.no_such_file");
    }

    #[test]
    fn unsafe_file_names_are_refused() {
        assert!(safe_relative("a/b.json"));
        for bad in ["", "../x", "/etc/passwd", "a/../../b"] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }
}
