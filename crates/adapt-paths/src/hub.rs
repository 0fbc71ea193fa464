//! The Hugging Face hub cache, read in place so models a person already downloaded (with
//! `huggingface-cli`, `mlx-lm`, `transformers`, …) show up without copying.
//!
//! Layout: `<hub>/models--<org>--<name>/refs/<branch>` holds a commit hash and
//! `<hub>/models--<org>--<name>/snapshots/<commit>/` the files (links into `blobs/`). A
//! snapshot counts as a model when it has a `config.json` (a Hugging Face or MLX folder) or a
//! `.gguf` file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Env;

/// The hub cache: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE` (older name), else
/// `HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` —
/// the order `huggingface_hub` uses.
pub fn hub_cache(env: &Env) -> Option<PathBuf> {
    env.var("HF_HUB_CACHE")
        .or_else(|| env.var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| env.var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| env.var("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")))
        .or_else(|| env.var("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// A model found in the hub cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubModel {
    /// `org/name`.
    pub repo_id: String,
    /// The snapshot's commit.
    pub revision: String,
    /// The snapshot folder: load from here.
    pub path: PathBuf,
    /// `hf` (a folder with `config.json`) or `gguf`.
    pub format: String,
    /// Sum of the snapshot's file sizes (the blobs the links point to).
    pub bytes: u64,
}

/// The models in the hub cache at `hub`, by repository id; for each repository the snapshot
/// `refs/main` names, else the most recently modified one. A missing cache is empty.
pub fn hub_models(hub: &Path) -> Vec<HubModel> {
    let Ok(entries) = std::fs::read_dir(hub) else {
        return Vec::new();
    };
    let mut found: Vec<HubModel> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let folder = e.file_name().to_string_lossy().into_owned();
            let repo = folder.strip_prefix("models--")?;
            let (org, name) = repo.split_once("--")?;
            let repo_id = format!("{org}/{name}");
            let (revision, path) = snapshot(&e.path())?;
            let format = format_of(&path)?;
            Some(HubModel {
                repo_id,
                revision,
                bytes: folder_bytes(&path),
                path,
                format,
            })
        })
        .collect();
    found.sort_by(|a, b| a.repo_id.cmp(&b.repo_id));
    found
}

fn snapshot(repo: &Path) -> Option<(String, PathBuf)> {
    let snapshots = repo.join("snapshots");
    let main = std::fs::read_to_string(repo.join("refs/main"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|rev| !rev.is_empty() && snapshots.join(rev).is_dir());
    let revision = main.or_else(|| {
        std::fs::read_dir(&snapshots)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
    })?;
    Some((revision.clone(), snapshots.join(revision)))
}

fn format_of(snapshot: &Path) -> Option<String> {
    if snapshot.join("config.json").is_file() {
        return Some("hf".into());
    }
    let has_gguf = std::fs::read_dir(snapshot)
        .ok()?
        .filter_map(|e| e.ok())
        .any(|e| e.path().extension().is_some_and(|x| x == "gguf"));
    has_gguf.then(|| "gguf".into())
}

/// Sizes of the files under `dir`, following links (one level of folders is enough for the
/// hub's layout, but nested folders are counted too).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let path = e.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => folder_bytes(&path),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_cache_follows_huggingface_hub_order() {
        let at = |vars: &[(&str, &str)]| hub_cache(&Env::with("linux", Path::new("/"), vars));
        let home = ("HOME", "/h");
        assert_eq!(at(&[home]), Some("/h/.cache/huggingface/hub".into()));
        assert_eq!(
            at(&[home, ("XDG_CACHE_HOME", "/x")]),
            Some("/x/huggingface/hub".into())
        );
        assert_eq!(at(&[home, ("HF_HOME", "/hf")]), Some("/hf/hub".into()));
        assert_eq!(
            at(&[home, ("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]),
            Some("/c".into())
        );
        assert_eq!(at(&[]), None);
    }

    fn write(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![0u8; bytes]).unwrap();
    }

    #[test]
    fn models_in_the_hub_cache_are_listed_in_place() {
        let hub = tempfile::tempdir().unwrap();
        let smol = hub
            .path()
            .join("models--HuggingFaceTB--SmolLM2-135M-Instruct");
        write(&smol.join("refs/main"), 0);
        std::fs::write(smol.join("refs/main"), "abc123\n").unwrap();
        write(&smol.join("snapshots/abc123/config.json"), 10);
        write(&smol.join("snapshots/abc123/model.safetensors"), 90);
        write(&smol.join("snapshots/old/config.json"), 1);
        let gguf = hub.path().join("models--bartowski--Qwen-GGUF");
        write(&gguf.join("snapshots/r1/qwen.Q4_0.gguf"), 50);
        // Not models: a dataset repo, a repo with no snapshot, a snapshot of other files.
        write(&hub.path().join("datasets--a--b/snapshots/r/data.json"), 5);
        std::fs::create_dir_all(hub.path().join("models--a--empty")).unwrap();
        write(&hub.path().join("models--a--text/snapshots/r/README.md"), 5);

        let models = hub_models(hub.path());
        assert_eq!(
            models,
            vec![
                HubModel {
                    repo_id: "HuggingFaceTB/SmolLM2-135M-Instruct".into(),
                    revision: "abc123".into(),
                    path: smol.join("snapshots/abc123"),
                    format: "hf".into(),
                    bytes: 100,
                },
                HubModel {
                    repo_id: "bartowski/Qwen-GGUF".into(),
                    revision: "r1".into(),
                    path: gguf.join("snapshots/r1"),
                    format: "gguf".into(),
                    bytes: 50,
                },
            ]
        );
        assert!(hub_models(&hub.path().join("missing")).is_empty());
    }
}
