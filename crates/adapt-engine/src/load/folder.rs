//! Hugging Face / mlx-lm model folders: `config.json`, one or more safetensors files (sharded
//! ones listed in `model.safetensors.index.json`), float (f32 / f16 / bf16) or MLX-quantized
//! weights (`"quantization"` in `config.json`, per-module overrides included), and the
//! tokenizer files (`tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adapt_text::Tokenizer;
use mlx_rs::{Array, Dtype};
use serde_json::Value;

use super::loaded::{assemble, file_stem, LoadOptions, LoadedModel};
use super::storage::{float_dtype, short_dtype, storage_label};
use crate::device::Backend;
use crate::error::{EngineError, Result};
use crate::models::layers::QuantSpec;
use crate::models::{Model, ModelArgs, QuantConfig, WeightFormat, Weights};

/// A folder's configuration and tensors, read and checked but not yet built into a model.
pub struct Checkpoint {
    pub dir: PathBuf,
    /// `config.json` as written.
    pub config: Value,
    pub args: ModelArgs,
    pub quant: QuantConfig,
    pub arrays: HashMap<String, Array>,
}

/// Loads the model folder at `dir` with its tokenizer and chat template.
pub fn load(dir: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    let started = Instant::now();
    let ckpt = read(dir)?;
    let stored = float_dtype(ckpt.arrays.values());
    let file_quantization = describe_storage(&ckpt, stored);
    let mut format = options.format.unwrap_or_else(|| {
        let backend = Backend::detect();
        let mut format = WeightFormat::for_backend(backend);
        if backend.is_gpu() && matches!(stored, Dtype::Bfloat16 | Dtype::Float32) {
            format.dtype = stored;
        }
        format
    });
    format.dequantize &= !options.keep_quantized;
    let model = ckpt.build(format)?;
    let tokenizer_json = dir.join("tokenizer.json");
    if !tokenizer_json.is_file() {
        return Err(EngineError::invalid_model(
            dir,
            "tokenizer.json is missing; Adapt needs the model's Hugging Face tokenizer file",
        ));
    }
    let tokenizer_config = Some(dir.join("tokenizer_config.json")).filter(|p| p.is_file());
    let tokenizer = Tokenizer::from_files(&tokenizer_json, tokenizer_config.as_deref())?;
    let template = tokenizer.chat_template().map(str::to_string);
    assemble(
        model,
        tokenizer,
        template.as_deref(),
        dir,
        file_stem(dir),
        file_quantization,
        format,
        started,
    )
}

/// Reads and checks `config.json` and every safetensors file of the folder at `dir`.
pub fn read(dir: &Path) -> Result<Checkpoint> {
    if !dir.exists() {
        return Err(EngineError::ModelNotFound {
            path: dir.to_path_buf(),
        });
    }
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(EngineError::invalid_model(
            dir,
            "config.json is missing; a model folder needs config.json and .safetensors weights \
             (or pass a .gguf file)",
        ));
    }
    let config = read_json(&config_path)?;
    let mut args = ModelArgs::from_config(&config_path, &config)?;
    let mut quant = quant_config(&config_path, &config)?;
    quant.overrides = (quant.overrides.into_iter())
        .map(|(module, spec)| (args.decoder_name(&module), spec))
        .collect();

    let mut arrays = HashMap::new();
    for file in weight_files(dir)? {
        check_safetensors(&file)?;
        let tensors = Array::load_safetensors(&file).map_err(|e| {
            EngineError::invalid_model(&file, format!("MLX could not read it: {e}"))
        })?;
        arrays.extend(tensors);
    }
    // Tensors some checkpoints carry that no model uses.
    arrays.retain(|name, _| !name.ends_with(".rotary_emb.inv_freq"));
    let mut arrays = args.prepare_checkpoint(dir, arrays)?;
    // Without the key, the checkpoint says it: a separate head or none.
    if config.get("tie_word_embeddings").is_none_or(Value::is_null) {
        args.tie_word_embeddings = !arrays.contains_key("lm_head.weight");
    }
    if args.tie_word_embeddings {
        for part in ["weight", "scales", "biases"] {
            arrays.remove(&format!("lm_head.{part}"));
        }
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        args,
        quant,
        arrays,
    })
}

impl Checkpoint {
    /// Builds the model, held as `format` says; every tensor must be used.
    pub fn build(self, format: WeightFormat) -> Result<Model> {
        let mut weights = Weights::new(&self.dir, self.arrays, self.quant, format);
        let model = Model::new(self.args, &mut weights)?;
        let unused = weights.unused();
        if !unused.is_empty() {
            let shown: Vec<&str> = unused.iter().take(5).copied().collect();
            return Err(EngineError::invalid_model(
                &self.dir,
                format!(
                    "{} tensors are not part of a '{}' model (e.g. {}); the weights do not \
                     match config.json",
                    unused.len(),
                    model.args.architecture,
                    shown.join(", ")
                ),
            ));
        }
        Ok(model)
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path)
        .map_err(|e| EngineError::invalid_model(path, format!("cannot read it: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid_model(path, format!("not valid JSON: {e}")))
}

/// The safetensors files: those the index lists (each must exist), else every
/// `*.safetensors` in the folder.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let json = read_json(&index)?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| EngineError::invalid_model(&index, "field 'weight_map' is missing"))?;
        let files: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        return files
            .into_iter()
            .map(|name| {
                let file = dir.join(name);
                if file.is_file() {
                    Ok(file)
                } else {
                    Err(EngineError::invalid_model(
                        dir,
                        format!(
                            "shard '{name}' listed in model.safetensors.index.json is missing; \
                             download the model again"
                        ),
                    ))
                }
            })
            .collect();
    }
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| EngineError::invalid_model(dir, format!("cannot list it: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::invalid_model(
            dir,
            "no .safetensors weights in this folder",
        ));
    }
    Ok(files)
}

/// Checks a safetensors file's header and that the file holds every tensor it lists, so a
/// truncated download is reported as such.
fn check_safetensors(path: &Path) -> Result<()> {
    let bad = |m: String| EngineError::invalid_model(path, m);
    let mut file = fs::File::open(path).map_err(|e| bad(format!("cannot open it: {e}")))?;
    let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("the file is truncated (no safetensors header)".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100_000_000 || 8 + header_len > size {
        return Err(bad("the file is truncated or not safetensors".into()));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|_| bad("the file is truncated (incomplete header)".into()))?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("the safetensors header is not valid JSON: {e}")))?;
    let end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, t)| t.get("data_offsets")?.as_array()?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let have = size - 8 - header_len;
    if end > have {
        return Err(bad(format!(
            "the file is truncated: its tensors need {end} bytes of data, it holds {have}; \
             download it again"
        )));
    }
    Ok(())
}

/// `config.json`'s `"quantization"` (mlx-lm: `group_size`, `bits`, and per-module entries that
/// are either a spec or `false`).
fn quant_config(path: &Path, config: &Value) -> Result<QuantConfig> {
    let Some(q) = config.get("quantization").filter(|v| !v.is_null()) else {
        if let Some(method) = config
            .get("quantization_config")
            .and_then(|q| q.get("quant_method"))
            .and_then(Value::as_str)
        {
            return Err(EngineError::invalid_model(
                path,
                format!(
                    "quantization method '{method}' is not supported; use a float or \
                     MLX-quantized model (adapt quantize makes one)"
                ),
            ));
        }
        return Ok(QuantConfig::default());
    };
    let spec = |v: &Value, what: &str| -> Result<QuantSpec> {
        let int = |k: &str| v.get(k).and_then(Value::as_i64).map(|n| n as i32);
        let spec = QuantSpec {
            group_size: int("group_size").unwrap_or(64),
            bits: int("bits").unwrap_or(4),
        };
        if let Some(mode) = v.get("mode").and_then(Value::as_str) {
            if mode != "affine" {
                return Err(EngineError::invalid_model(
                    path,
                    format!("{what}: quantization mode '{mode}' is not supported (only affine)"),
                ));
            }
        }
        if !spec.is_supported() {
            return Err(EngineError::invalid_model(
                path,
                format!(
                    "{what}: {} bits with groups of {} is not a supported quantization",
                    spec.bits, spec.group_size
                ),
            ));
        }
        Ok(spec)
    };
    let mut quant = QuantConfig {
        default: Some(spec(q, "quantization")?),
        overrides: HashMap::new(),
    };
    for (key, value) in q.as_object().into_iter().flatten() {
        match value {
            Value::Object(_) => {
                quant.overrides.insert(
                    key.clone(),
                    Some(spec(value, &format!("quantization.{key}"))?),
                );
            }
            Value::Bool(false) => {
                quant.overrides.insert(key.clone(), None);
            }
            _ => {}
        }
    }
    Ok(quant)
}

/// How the folder stores its weights, e.g. "bf16" or "4-bit (group 64), f16".
fn describe_storage(ckpt: &Checkpoint, stored: Dtype) -> String {
    storage_label(
        ckpt.quant.default,
        !ckpt.quant.overrides.is_empty(),
        short_dtype(stored),
    )
}
