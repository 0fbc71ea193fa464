//! Reading one model from disk without loading it: a GGUF file (header and tensor table) or a
//! Hugging Face / MLX folder (`config.json` plus the safetensors headers).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use adapt_gguf::{GgufFile, GgufSupport};
use serde::Serialize;

use crate::LibraryError;

/// What the engine runs, as it states it: the architectures of model folders (`model_type`)
/// and what it reads of GGUF files — the check the engine's GGUF loader makes too.
#[derive(Debug, Clone)]
pub struct Supported {
    /// `model_type`s of model folders.
    pub folders: Vec<String>,
    /// Architectures, tensor types and settings of GGUF files.
    pub gguf: GgufSupport,
}

impl Supported {
    /// `folders`: the `model_type`s the engine runs; `gguf`: what its GGUF loader reads.
    pub fn new(folders: &[&str], gguf: GgufSupport) -> Supported {
        Supported {
            folders: folders.iter().map(|s| s.to_string()).collect(),
            gguf,
        }
    }
}

/// How a model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "ModelFormat"))]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A folder with `config.json` and safetensors weights (Hugging Face or MLX).
    Folder,
    /// One GGUF file.
    Gguf,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Format::Folder => "safetensors",
            Format::Gguf => "gguf",
        })
    }
}

/// The shape numbers memory estimates need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Shape {
    pub layers: u64,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab: u64,
    /// The longest context the model was trained for, when stated.
    pub context: Option<u64>,
}

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ModelFileEntry {
    pub name: String,
    pub bytes: u64,
}

/// What a model is, read from its headers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Description {
    pub format: Format,
    pub architecture: Option<String>,
    pub parameters: Option<u64>,
    /// The dominant storage type: `bf16`, `f16`, `f32`, or a GGUF type such as `Q4_1`.
    pub dtype: Option<String>,
    /// `4-bit, group 64` (MLX) or the GGUF quantized type; `None` for float weights.
    pub quantization: Option<String>,
    /// Bytes of the weight files.
    pub weights_bytes: u64,
    /// Bytes of every file.
    pub bytes: u64,
    pub shape: Option<Shape>,
    pub runnable: bool,
    /// Why the model cannot run, when it cannot.
    pub not_runnable: Option<String>,
    pub files: Vec<ModelFileEntry>,
    /// Tensor count.
    pub tensors: usize,
}

/// Describes the model at `path` (a GGUF file or a model folder); `supported`: what the
/// engine runs.
pub fn describe(path: &Path, supported: &Supported) -> Result<Description, LibraryError> {
    let meta = std::fs::metadata(path).map_err(|e| LibraryError::io(path, e))?;
    if meta.is_dir() {
        describe_folder(path, &supported.folders)
    } else {
        describe_gguf(path, &supported.gguf)
    }
}

fn describe_gguf(path: &Path, supported: &GgufSupport) -> Result<Description, LibraryError> {
    let gguf = GgufFile::open(path).map_err(|e| LibraryError::NotAModel {
        path: path.to_path_buf(),
        detail: format!("not a readable GGUF file ({e})"),
    })?;
    let architecture = gguf.architecture().map(str::to_string);
    let parameters: u64 = gguf.tensors().iter().map(|t| t.n_elements()).sum();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for t in gguf.tensors() {
        *by_type.entry(t.ggml_type.to_string()).or_default() += t.n_elements();
    }
    let dominant = by_type
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(t, _)| t.clone());
    let quantization = dominant
        .clone()
        .filter(|d| !matches!(d.as_str(), "F32" | "F16" | "BF16"));
    let shape = architecture.as_deref().and_then(|arch| {
        let get = |k: &str| gguf.get_u64(&format!("{arch}.{k}"));
        let hidden = get("embedding_length")?;
        let heads = get("attention.head_count")?;
        let head_dim = get("attention.key_length").unwrap_or(hidden / heads.max(1));
        let vocab = gguf
            .get_string_array("tokenizer.ggml.tokens")
            .map(|t| t.len() as u64)
            .or_else(|| get("vocab_size"))
            .unwrap_or(0);
        Some(Shape {
            layers: get("block_count")?,
            hidden,
            heads,
            kv_heads: get("attention.head_count_kv").unwrap_or(heads),
            head_dim,
            vocab,
            context: get("context_length"),
        })
    });
    let bytes = gguf.file_len();
    // The engine's own check, so "runnable" means the loader would load it.
    let why: Vec<String> = supported
        .problems(&gguf)
        .iter()
        .map(ToString::to_string)
        .collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Description {
        format: Format::Gguf,
        architecture,
        parameters: Some(parameters),
        dtype: dominant,
        quantization,
        weights_bytes: bytes,
        bytes,
        shape,
        runnable: why.is_empty(),
        not_runnable: (!why.is_empty()).then(|| why.join("; ")),
        files: vec![ModelFileEntry { name, bytes }],
        tensors: gguf.tensors().len(),
    })
}

fn check_architecture(arch: Option<&str>, supported: &[String], why: &mut Vec<String>) {
    match arch {
        Some(a) if supported.iter().any(|s| s == a) => {}
        Some(a) => why.push(format!(
            "architecture `{a}` is not supported yet (supported: {})",
            supported.join(", ")
        )),
        None => why.push("the architecture is not stated".into()),
    }
}

/// A tensor from a safetensors header.
struct Tensor {
    name: String,
    dtype: String,
    shape: Vec<u64>,
}

/// Reads the header of a safetensors file: 8 bytes of little-endian header length, then that
/// many bytes of JSON mapping tensor names to dtype, shape and data offsets.
fn safetensors_header(path: &Path) -> Result<Vec<Tensor>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| "shorter than a safetensors header".to_string())?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 || len > file_len.saturating_sub(8) {
        return Err(format!("header length {len} does not fit the file"));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json).map_err(|e| e.to_string())?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|e| format!("header is not JSON: {e}"))?;
    let mut tensors = Vec::new();
    for (name, v) in map {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v["dtype"].as_str().unwrap_or("?").to_string();
        let shape = v["shape"]
            .as_array()
            .map(|s| s.iter().filter_map(|d| d.as_u64()).collect())
            .unwrap_or_default();
        tensors.push(Tensor { name, dtype, shape });
    }
    Ok(tensors)
}

fn describe_folder(dir: &Path, supported: &[String]) -> Result<Description, LibraryError> {
    let config = read_config(dir)?;
    // Multimodal configs keep the language model's settings in `text_config`.
    let text = config.get("text_config").unwrap_or(&config);
    let architecture = text
        .get("model_type")
        .or_else(|| config.get("model_type"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let quant = config
        .get("quantization")
        .or_else(|| config.get("quantization_config"));

    let files = list_files(dir);
    let weights: Vec<&ModelFileEntry> = files
        .iter()
        .filter(|f| f.name.ends_with(".safetensors") && !f.name.contains('/'))
        .collect();
    let mut why = Vec::new();
    check_architecture(architecture.as_deref(), supported, &mut why);
    if weights.is_empty() {
        why.push("the folder has no .safetensors weights".into());
    }
    why.extend(missing_shards(dir, &weights));
    let tensors = read_tensors(dir, &weights, &mut why);
    let counts = count_parameters(&tensors, quant);
    let dtype = counts.dtype.or_else(|| {
        config
            .get("torch_dtype")
            .and_then(|v| v.as_str())
            .map(|d| d.replace("float", "f"))
    });
    Ok(Description {
        format: Format::Folder,
        architecture,
        parameters: (!tensors.is_empty()).then_some(counts.parameters),
        dtype,
        quantization: quantization_label(quant, counts.quantized),
        weights_bytes: weights.iter().map(|w| w.bytes).sum(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        shape: config_shape(&config),
        runnable: why.is_empty(),
        not_runnable: (!why.is_empty()).then(|| why.join("; ")),
        tensors: tensors.len(),
        files,
    })
}

/// The folder's `config.json`; without one (or with one that is not JSON) the folder is not a
/// model.
fn read_config(dir: &Path) -> Result<serde_json::Value, LibraryError> {
    match std::fs::read(dir.join("config.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LibraryError::NotAModel {
            path: dir.to_path_buf(),
            detail: format!("config.json is not valid JSON ({e})"),
        }),
        Err(_) => Err(LibraryError::NotAModel {
            path: dir.to_path_buf(),
            detail: "a model folder has a config.json (and safetensors weights)".into(),
        }),
    }
}

/// The model's shape from `config.json` (or its `text_config`), when it states the sizes
/// (under Hugging Face's usual names, or GPT-2's).
fn config_shape(config: &serde_json::Value) -> Option<Shape> {
    let text = config.get("text_config").unwrap_or(config);
    let num = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            text.get(*k)
                .and_then(|v| v.as_u64())
                .or_else(|| config.get(*k)?.as_u64())
        })
    };
    let hidden = num(&["hidden_size", "n_embd"])?;
    let heads = num(&["num_attention_heads", "n_head"])?;
    Some(Shape {
        layers: num(&["num_hidden_layers", "n_layer"])?,
        hidden,
        heads,
        kv_heads: num(&["num_key_value_heads"]).unwrap_or(heads),
        head_dim: num(&["head_dim"]).unwrap_or(hidden / heads.max(1)),
        vocab: num(&["vocab_size"]).unwrap_or(0),
        context: num(&["max_position_embeddings", "n_positions"]),
    })
}

/// The shards `model.safetensors.index.json` names that are not among `weights`, as a reason
/// the model cannot run.
fn missing_shards(dir: &Path, weights: &[&ModelFileEntry]) -> Option<String> {
    let index = std::fs::read(dir.join("model.safetensors.index.json")).ok()?;
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap_or_default();
    let mut missing: Vec<&str> = index["weight_map"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    missing.retain(|shard| !weights.iter().any(|w| w.name == *shard));
    missing.sort_unstable();
    missing.dedup();
    (!missing.is_empty()).then(|| format!("shards {} are missing", missing.join(", ")))
}

/// The tensors of every weight file's header; a file that cannot be read adds a reason to `why`.
fn read_tensors(dir: &Path, weights: &[&ModelFileEntry], why: &mut Vec<String>) -> Vec<Tensor> {
    let mut tensors = Vec::new();
    for w in weights {
        match safetensors_header(&dir.join(&w.name)) {
            Ok(t) => tensors.extend(t),
            Err(e) => why.push(format!(
                "{} is not a readable safetensors file: {e}",
                w.name
            )),
        }
    }
    tensors
}

/// What the tensors of a folder add up to.
struct ParameterCount {
    /// Parameters, counting each packed quantized value (not the scales and biases).
    parameters: u64,
    /// The storage type of most unquantized parameters.
    dtype: Option<String>,
    /// Whether some weights are packed quantized values.
    quantized: bool,
}

/// Counts the parameters of `tensors`; `quant` is the config's quantization (global bits,
/// possibly overridden per layer).
fn count_parameters(tensors: &[Tensor], quant: Option<&serde_json::Value>) -> ParameterCount {
    let bits = quant.and_then(|q| q.get("bits")?.as_u64());
    let names: std::collections::HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let mut parameters = 0u64;
    let mut by_dtype: BTreeMap<String, u64> = BTreeMap::new();
    let mut quantized = false;
    for t in tensors {
        let elements: u64 = t.shape.iter().product();
        let prefix = t
            .name
            .strip_suffix(".scales")
            .or_else(|| t.name.strip_suffix(".biases"));
        if let Some(prefix) = prefix {
            if names.contains(format!("{prefix}.weight").as_str()) {
                // Quantization scales and biases are not parameters.
                continue;
            }
        }
        let packed = t.dtype == "U32"
            && t.name
                .strip_suffix(".weight")
                .is_some_and(|p| names.contains(format!("{p}.scales").as_str()));
        if packed {
            quantized = true;
            // Each u32 packs 32 / bits values (per-layer bits override the global ones).
            let layer_bits = t
                .name
                .strip_suffix(".weight")
                .and_then(|p| quant?.get(p)?.get("bits")?.as_u64())
                .or(bits)
                .unwrap_or(4)
                .max(1);
            parameters += elements * 32 / layer_bits;
        } else {
            parameters += elements;
            *by_dtype.entry(t.dtype.to_ascii_lowercase()).or_default() += elements;
        }
    }
    let dtype = by_dtype
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(d, _)| d.clone());
    ParameterCount {
        parameters,
        dtype,
        quantized,
    }
}

/// `4-bit, group 64`, or `quantized` when the bits are not stated; `None` for float weights
/// (no quantization in the config and no `packed` weights found).
fn quantization_label(quant: Option<&serde_json::Value>, packed: bool) -> Option<String> {
    let bits = quant.and_then(|q| q.get("bits")?.as_u64());
    let group = quant.and_then(|q| q.get("group_size")?.as_u64());
    match (bits, packed || quant.is_some()) {
        (Some(b), true) => Some(match group {
            Some(g) => format!("{b}-bit, group {g}"),
            None => format!("{b}-bit"),
        }),
        (None, true) => Some("quantized".into()),
        _ => None,
    }
}

/// Every file under `dir` (following links, as hub snapshots are links), by relative name.
pub(crate) fn list_files(dir: &Path) -> Vec<ModelFileEntry> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<ModelFileEntry>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let path = e.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() && depth < 8 => walk(root, &path, out, depth + 1),
                Ok(m) if m.is_file() => out.push(ModelFileEntry {
                    name: relative(root, &path),
                    bytes: m.len(),
                }),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out, 0);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .replace('\\', "/")
}
