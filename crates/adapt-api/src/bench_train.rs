//! `adapt bench train`: training throughput, memory and convergence of LoRA, DoRA and QLoRA
//! at several batch sizes on one model and dataset, in one process. The data is prepared
//! once; the float base is loaded once for every LoRA and DoRA setting and the quantized base
//! once for every QLoRA one (each setting attaches fresh adapters and a fresh optimizer).
//! Each setting trains warm-up steps, then measured steps (rates are medians over them), and
//! ends with the validation loss. The quantized base's compression ratio is the float
//! base's bytes over its own.

use std::path::{Path, PathBuf};

use adapt_data::{PrepareInputs, PrepareReport, Split, SplitRatios, TokenCache};
use adapt_engine::mlx_rs::Dtype;
use adapt_engine::models::layers::QuantSpec;
use adapt_engine::quantize::{quantize_folder, Target};
use adapt_engine::train::bench::MIN_MEASURED_STEPS;
use adapt_engine::train::{
    bench_setting, FieldProblem, FineTuneType, SettingFigures, TrainConfig, TrainData,
};
use adapt_engine::{load, Backend, LoadOptions, LoadedModel, WeightFormat};
use serde::{Deserialize, Serialize};

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};

/// How the adapters are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchMethod {
    /// LoRA on the float base.
    Lora,
    /// DoRA on the float base.
    Dora,
    /// LoRA on the quantized base.
    Qlora,
}

impl BenchMethod {
    pub fn name(self) -> &'static str {
        match self {
            BenchMethod::Lora => "lora",
            BenchMethod::Dora => "dora",
            BenchMethod::Qlora => "qlora",
        }
    }

    fn quantized(self) -> bool {
        self == BenchMethod::Qlora
    }

    fn fine_tune_type(self) -> FineTuneType {
        match self {
            BenchMethod::Dora => FineTuneType::Dora,
            _ => FineTuneType::Lora,
        }
    }
}

/// What to benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainBenchRequest {
    /// A GGUF file or a model folder.
    pub model: PathBuf,
    /// A dataset file (JSONL, CSV, TSV), of which `valid_share` is held out for validation,
    /// or a folder in mlx-lm's layout (`train.jsonl`, `valid.jsonl`).
    pub data: PathBuf,
    pub methods: Vec<BenchMethod>,
    pub batch_sizes: Vec<usize>,
    /// Steps trained before measuring, and steps measured.
    pub warmup: u64,
    pub steps: u64,
    pub rank: i32,
    pub num_layers: i32,
    pub max_seq_length: usize,
    pub learning_rate: f64,
    /// The share of the data held out for validation.
    pub valid_share: f64,
    /// Validation batches the loss is measured on (`-1`: the whole split).
    pub val_batches: i64,
    pub seed: u64,
}

impl Default for TrainBenchRequest {
    fn default() -> TrainBenchRequest {
        TrainBenchRequest {
            model: PathBuf::new(),
            data: PathBuf::new(),
            methods: vec![BenchMethod::Lora, BenchMethod::Dora, BenchMethod::Qlora],
            batch_sizes: vec![1, 4],
            warmup: 1,
            steps: 5,
            rank: 8,
            num_layers: 8,
            max_seq_length: 512,
            learning_rate: 1e-4,
            valid_share: 0.25,
            val_batches: -1,
            seed: 0,
        }
    }
}

/// One setting's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainBenchRow {
    pub method: BenchMethod,
    pub batch_size: usize,
    /// How the base's weights are held, e.g. "f32 (dequantized)" or "4-bit, groups of 32".
    pub base: String,
    /// The float base's bytes over this base's bytes (1 for the float base).
    pub compression: f64,
    /// Peak memory over the base's weight bytes.
    pub peak_per_weights: f64,
    #[serde(flatten)]
    pub figures: SettingFigures,
    /// mlx-lm's `lora` on the same setting, when it was asked for (`bench_reference`).
    pub reference: Option<Reference>,
}

/// What mlx-lm measured for one setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceFigures {
    pub tokens_per_second: f64,
    pub steps_per_second: f64,
    /// Bytes.
    pub peak_memory: u64,
    /// Trained tokens of the measured steps.
    pub trained_tokens: u64,
    pub val_loss: f64,
}

/// A setting's reference: its figures, or why mlx-lm could not run the same setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    Measured(ReferenceFigures),
    NotComparable(String),
}

/// Everything `adapt bench train` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainBenchReport {
    pub backend: String,
    pub cpu: String,
    /// The dtype of the float base and of every base's float parameters (`float32` on the
    /// CPU, `float16` on a GPU).
    pub float_dtype: String,
    pub request: TrainBenchRequest,
    pub train_examples: u64,
    pub valid_examples: u64,
    /// Bytes of the float base's weights, and of the quantized base's (when QLoRA ran).
    pub float_bytes: Option<u64>,
    pub quantized_bytes: Option<u64>,
    pub rows: Vec<TrainBenchRow>,
}

impl TrainBenchRequest {
    /// Refuses settings that cannot be benchmarked, naming the setting.
    pub fn check(&self) -> Result<(), ApiError> {
        let bad = |field: &str, message: String| {
            Err(ApiError::invalid_fields(vec![FieldProblem {
                field: field.into(),
                message,
                warning: false,
            }]))
        };
        if self.methods.is_empty() {
            return bad(
                "methods",
                "give at least one method (lora, dora, qlora)".into(),
            );
        }
        if self.batch_sizes.is_empty() || self.batch_sizes.contains(&0) {
            return bad(
                "batch_sizes",
                format!(
                    "batch sizes must be 1 or more, at least one of them; got {:?}",
                    self.batch_sizes
                ),
            );
        }
        if self.steps < MIN_MEASURED_STEPS {
            return bad(
                "steps",
                format!(
                    "measure at least {MIN_MEASURED_STEPS} steps (rates are their median), \
                     not {}",
                    self.steps
                ),
            );
        }
        if !(self.valid_share > 0.0 && self.valid_share < 1.0) {
            return bad(
                "valid_share",
                format!(
                    "the validation share is between 0 and 1, not {}",
                    self.valid_share
                ),
            );
        }
        for (i, method) in self.methods.iter().enumerate() {
            if self.methods[..i].contains(method) {
                return bad("methods", format!("{} is listed twice", method.name()));
            }
        }
        self.config(BenchMethod::Lora, self.batch_sizes[0])
            .validate("benchmark settings")
            .map_err(|e| ApiError::new(ErrorCode::TrainBadConfig, e.to_string()))
    }

    /// The data: a folder in mlx-lm's layout (`train.jsonl`, `valid.jsonl`) as it is split,
    /// or a file with `valid_share` of it held out.
    pub fn inputs(&self) -> Result<PrepareInputs, ApiError> {
        if self.data.is_dir() {
            return Ok(PrepareInputs::from_folder(&self.data, self.seed)?);
        }
        Ok(PrepareInputs {
            train: crate::datasets::dataset_file(&self.data)?,
            valid: None,
            test: None,
            ratios: SplitRatios {
                valid: self.valid_share,
                test: 0.0,
                seed: self.seed,
            },
        })
    }

    /// The training configuration of one setting.
    fn config(&self, method: BenchMethod, batch_size: usize) -> TrainConfig {
        let mut config = TrainConfig {
            fine_tune_type: method.fine_tune_type(),
            num_layers: self.num_layers,
            batch_size,
            max_seq_length: self.max_seq_length,
            learning_rate: self.learning_rate,
            val_batches: self.val_batches,
            seed: self.seed,
            ..TrainConfig::default()
        };
        config.lora_parameters.rank = self.rank;
        config
    }
}

impl Adapt {
    /// Prepares the data, then trains and measures every setting of `req` (float base first,
    /// then the quantized one); `on_setting` hears of each setting as it starts training.
    pub fn bench_train(
        &self,
        req: &TrainBenchRequest,
        on_setting: &mut dyn FnMut(BenchMethod, usize),
    ) -> Result<TrainBenchReport, ApiError> {
        req.check()?;
        let inputs = req.inputs()?;
        let device = self.device()?;
        let text = crate::datasets::load_text_model(&req.model)?;
        let opts = adapt_data::DataOptions {
            max_seq_length: req.max_seq_length as u32,
            ..adapt_data::DataOptions::default()
        };
        let prepared =
            crate::datasets::prepare(&inputs, &opts, &text, &self.dataset_cache()?, &mut |_| {})?;
        let examples = |s: Split| {
            prepared
                .splits
                .iter()
                .find(|x| x.split == s)
                .map_or(0, |x| x.examples)
        };
        let mut report = TrainBenchReport {
            backend: device.backend.to_string(),
            cpu: device.cpu.clone(),
            float_dtype: match WeightFormat::for_backend(Backend::detect()).dtype {
                Dtype::Float16 => "float16",
                Dtype::Bfloat16 => "bfloat16",
                _ => "float32",
            }
            .into(),
            request: req.clone(),
            train_examples: examples(Split::Train),
            valid_examples: examples(Split::Valid),
            float_bytes: None,
            quantized_bytes: None,
            rows: Vec::new(),
        };
        let work = std::env::temp_dir().join(format!("adapt-train-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work).map_err(|e| ApiError::io("create", &work, e))?;
        let result = self.bench_bases(req, &prepared, &work, &mut report, on_setting);
        let _ = std::fs::remove_dir_all(&work);
        result?;
        let float = report.float_bytes;
        for row in &mut report.rows {
            row.compression = match float {
                Some(f) => f as f64 / row.figures.weight_bytes as f64,
                None => f64::NAN,
            };
        }
        Ok(report)
    }

    /// Each base in turn (float, then quantized) with its settings, on the engine thread.
    fn bench_bases(
        &self,
        req: &TrainBenchRequest,
        prepared: &PrepareReport,
        work: &Path,
        report: &mut TrainBenchReport,
        on_setting: &mut dyn FnMut(BenchMethod, usize),
    ) -> Result<(), ApiError> {
        for quantized in [false, true] {
            let methods: Vec<BenchMethod> = req
                .methods
                .iter()
                .copied()
                .filter(|m| m.quantized() == quantized)
                .collect();
            if methods.is_empty() {
                continue;
            }
            let (req, prepared) = (req.clone(), prepared.clone());
            let dir = work.to_path_buf();
            let mut settings = Vec::new();
            for &m in &methods {
                for &b in &req.batch_sizes {
                    settings.push((m, b));
                }
            }
            let (bytes, rows) = self.engine.relay(
                move |_, starting| {
                    bench_base(&req, &prepared, quantized, &settings, &dir, starting)
                },
                |(m, b)| on_setting(m, b),
            )?;
            match quantized {
                false => report.float_bytes = Some(bytes),
                true => report.quantized_bytes = Some(bytes),
            }
            report.rows.extend(rows);
        }
        Ok(())
    }
}

/// On the engine thread: loads the float or the quantized base once and measures `settings`
/// on it, telling `starting` of each; returns its weight bytes and the rows.
fn bench_base(
    req: &TrainBenchRequest,
    prepared: &PrepareReport,
    quantized: bool,
    settings: &[(BenchMethod, usize)],
    work: &Path,
    starting: &mut dyn FnMut((BenchMethod, usize)),
) -> Result<(u64, Vec<TrainBenchRow>), ApiError> {
    let mut lm = load_base(&req.model, quantized, work)?;
    let bytes = lm.model.nbytes() as u64;
    let train = open_split(prepared, Split::Train)?;
    let valid = open_split(prepared, Split::Valid)?;
    let data = TrainData {
        train: &train,
        valid: Some(&valid),
        pad_id: 0,
    };
    let mut rows = Vec::new();
    for (i, &(method, batch)) in settings.iter().enumerate() {
        starting((method, batch));
        let config = req.config(method, batch);
        let dir = work.join(format!("{}-{batch}-{i}", method.name()));
        let figures = bench_setting(&mut lm.model, &data, &config, req.warmup, req.steps, &dir)?;
        rows.push(TrainBenchRow {
            method,
            batch_size: batch,
            base: lm.info.loaded_as.clone(),
            compression: 1.0,
            peak_per_weights: figures.peak_memory as f64 / figures.weight_bytes.max(1) as f64,
            figures,
            reference: None,
        });
    }
    Ok((bytes, rows))
}

fn open_split(prepared: &PrepareReport, split: Split) -> Result<TokenCache, ApiError> {
    prepared.open(split)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::TrainBadConfig,
            format!(
                "the {} split of {} is empty; give more data or a larger validation share",
                split.name(),
                prepared.dir.display()
            ),
        )
    })
}

/// The float base (weights dequantized, in the dtype the backend runs fastest) or the
/// quantized one: as the file stores it, or — for a float model folder — quantized to 4 bits
/// in groups of 64 (mlx-lm's default) into `work` first.
fn load_base(model: &Path, quantized: bool, work: &Path) -> Result<LoadedModel, ApiError> {
    if !quantized {
        let dtype = WeightFormat::for_backend(Backend::detect()).dtype;
        let options = LoadOptions {
            format: Some(WeightFormat {
                dtype,
                dequantize: true,
            }),
            keep_quantized: false,
        };
        return Ok(load(model, &options)?);
    }
    let options = LoadOptions {
        keep_quantized: true,
        ..LoadOptions::default()
    };
    let lm = load(model, &options)?;
    if lm.model.is_quantized() {
        return Ok(lm);
    }
    if !model.is_dir() {
        return Err(ApiError::new(
            ErrorCode::TrainBadConfig,
            format!(
                "{} holds float weights: QLoRA needs a quantized base; convert it to a folder \
                 (`adapt convert`) or quantize it (`adapt quantize`) first",
                model.display()
            ),
        ));
    }
    drop(lm);
    let out = work.join("quantized-base");
    let spec = QuantSpec {
        group_size: 64,
        bits: 4,
    };
    quantize_folder(model, &out, Target::Quantize(spec), false, &mut |_| {})?;
    Ok(load(&out, &options)?)
}
