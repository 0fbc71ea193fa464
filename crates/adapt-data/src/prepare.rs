//! `prepare`: inputs → validated, tokenized splits in the on-disk cache, or the cache itself
//! when the same inputs were prepared before. The key is the sha256 of the input files'
//! contents, the tokenizer and template identity, and every option that changes the tokens.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cache::{cache_key, hash_file, CacheWriter, TokenCache};
use crate::error::DataError;
use crate::pipeline::{scan, DataOptions, FileReport, Progress};
use crate::render::TextModel;
use crate::split::{Split, SplitRatios};
use crate::stats::{LengthCollector, LengthStats};

const MANIFEST: &str = "manifest.json";

/// Which files make which split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareInputs {
    /// The training file (split by `ratios` when `valid` and `test` are both absent).
    pub train: PathBuf,
    /// A validation file.
    pub valid: Option<PathBuf>,
    /// A test file.
    pub test: Option<PathBuf>,
    /// Ratios for splitting `train` when no other file is given.
    pub ratios: SplitRatios,
}

impl PrepareInputs {
    /// The splits of a data folder in mlx-lm's layout: `train.jsonl` and `valid.jsonl`, and
    /// `test.jsonl` when there is one (`--data DIR` of `mlx_lm.lora`).
    pub fn from_folder(dir: &Path, seed: u64) -> Result<PrepareInputs, DataError> {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let missing = |name: &str| DataError::DataFolder {
            path: dir.to_path_buf(),
            detail: format!(
                "a data folder holds train.jsonl and valid.jsonl (and optionally test.jsonl), as \
                 mlx-lm's do, but there is no {name}; add it, or give the training file itself \
                 to hold out a share of it for validation"
            ),
        };
        Ok(PrepareInputs {
            train: file("train.jsonl").ok_or_else(|| missing("train.jsonl"))?,
            valid: Some(file("valid.jsonl").ok_or_else(|| missing("valid.jsonl"))?),
            test: file("test.jsonl"),
            ratios: SplitRatios {
                valid: 0.0,
                test: 0.0,
                seed,
            },
        })
    }

    /// Whether `train` is split by ratio.
    pub fn splits_by_ratio(&self) -> bool {
        self.valid.is_none() && self.test.is_none()
    }
}

/// One prepared split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Which split.
    pub split: Split,
    /// Its cache file.
    pub path: PathBuf,
    /// Examples.
    pub examples: u64,
    /// Tokens.
    pub tokens: u64,
    /// Trained tokens.
    pub trained_tokens: u64,
}

/// What `prepare` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// The cache key.
    pub key: String,
    /// The cache directory of these inputs.
    pub dir: PathBuf,
    /// Whether the cache was reused.
    pub cached: bool,
    /// The splits.
    pub splits: Vec<SplitSummary>,
    /// What scanning each input found (from the first preparation when cached).
    pub files: Vec<FileReport>,
    /// Lengths of the training split.
    pub train_stats: LengthStats,
    /// Seconds taken.
    pub seconds: f64,
}

impl PrepareReport {
    /// Maps the cache of `split`, if it was prepared.
    pub fn open(&self, split: Split) -> Result<Option<TokenCache>, DataError> {
        self.splits
            .iter()
            .find(|s| s.split == split)
            .map(|s| TokenCache::open(&s.path))
            .transpose()
    }
}

/// The cache key of these inputs with this model and these options.
pub fn key_for(
    inputs: &PrepareInputs,
    opts: &DataOptions,
    model: &TextModel,
) -> Result<String, DataError> {
    let mut parts = vec![model.fingerprint().to_string()];
    for (role, path) in [
        ("train", Some(&inputs.train)),
        ("valid", inputs.valid.as_ref()),
        ("test", inputs.test.as_ref()),
    ] {
        if let Some(p) = path {
            parts.push(format!("{role}:{}", hash_file(p)?));
        }
    }
    let relevant = serde_json::json!({
        "import": opts.import,
        "render": opts.render,
        "skip_invalid": opts.skip_invalid,
        "ratios": inputs.splits_by_ratio().then_some(inputs.ratios),
    });
    parts.push(relevant.to_string());
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(cache_key(&refs))
}

/// Prepares `inputs` into `cache_root/<key>/`, reusing it when present and intact.
pub fn prepare(
    inputs: &PrepareInputs,
    opts: &DataOptions,
    model: &TextModel,
    cache_root: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PrepareReport, DataError> {
    let started = Instant::now();
    if inputs.splits_by_ratio() {
        inputs.ratios.check()?;
    }
    let key = key_for(inputs, opts, model)?;
    let dir = cache_root.join(&key);
    if let Some(mut report) = load_cached(&dir, opts.max_seq_length) {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    std::fs::create_dir_all(&dir).map_err(|source| DataError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut writers = Vec::new();
    for split in Split::ALL {
        writers.push(CacheWriter::create(
            &dir.join(format!("{}.tok", split.name())),
        )?);
    }
    let mut trained = [0u64; 3];
    let mut train_lengths = LengthCollector::default();
    let mut files = Vec::new();
    let sources = [
        (Some(&inputs.train), Split::Train),
        (inputs.valid.as_ref(), Split::Valid),
        (inputs.test.as_ref(), Split::Test),
    ];
    for (path, fixed) in sources {
        let Some(path) = path else { continue };
        let mut index = 0u64;
        let report = scan(
            path,
            opts,
            Some(model),
            |row, tok| {
                let split = if inputs.splits_by_ratio() {
                    inputs.ratios.assign(index)
                } else {
                    fixed
                };
                index += 1;
                let Some(tok) = tok else { return Ok(()) };
                let n_trained = tok.mask.iter().filter(|&&m| m).count();
                trained[split as usize] += n_trained as u64;
                if split == Split::Train {
                    train_lengths.add(tok.tokens.len(), n_trained);
                }
                writers[split as usize].push(row.line, tok)
            },
            progress,
        )?;
        report.refuse_invalid(opts.skip_invalid)?;
        files.push(report);
    }
    let mut splits = Vec::new();
    for (split, writer) in Split::ALL.into_iter().zip(writers) {
        let examples = writer.len() as u64;
        writer.finish()?;
        let path = dir.join(format!("{}.tok", split.name()));
        let tokens = TokenCache::open(&path)?.total_tokens();
        splits.push(SplitSummary {
            split,
            path,
            examples,
            tokens,
            trained_tokens: trained[split as usize],
        });
    }
    let report = PrepareReport {
        key,
        dir: dir.clone(),
        cached: false,
        splits,
        files,
        train_stats: train_lengths.finish(opts.max_seq_length),
        seconds: started.elapsed().as_secs_f64(),
    };
    let manifest = serde_json::to_vec_pretty(&report).map_err(|e| DataError::CacheCorrupt {
        path: dir.join(MANIFEST),
        message: e.to_string(),
    })?;
    let tmp = dir.join("manifest.partial");
    std::fs::write(&tmp, manifest)
        .and_then(|()| std::fs::rename(&tmp, dir.join(MANIFEST)))
        .map_err(|source| DataError::Io { path: tmp, source })?;
    Ok(report)
}

/// The earlier report in `dir`, if its manifest and every split file are intact.
fn load_cached(dir: &Path, max_seq_length: u32) -> Option<PrepareReport> {
    let bytes = std::fs::read(dir.join(MANIFEST)).ok()?;
    let mut report: PrepareReport = serde_json::from_slice(&bytes).ok()?;
    report.cached = true;
    for s in &mut report.splits {
        s.path = dir.join(format!("{}.tok", s.split.name()));
        let cache = TokenCache::open(&s.path).ok()?;
        if cache.len() as u64 != s.examples || cache.total_tokens() != s.tokens {
            return None;
        }
        if s.split == Split::Train && report.train_stats.max_seq_length != max_seq_length {
            let mut lengths = LengthCollector::default();
            for i in 0..cache.len() {
                lengths.add(cache.length(i), 0);
            }
            let mut stats = lengths.finish(max_seq_length);
            stats.trained_tokens = s.trained_tokens;
            report.train_stats = stats;
        }
    }
    report.dir = dir.to_path_buf();
    Some(report)
}
