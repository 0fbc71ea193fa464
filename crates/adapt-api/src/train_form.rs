//! The one training contract every shell uses: a [`TrainRequest`] states what to train and the
//! intent of its settings (epochs or steps, a schedule shape with its warm-up and lowest rate);
//! the defaults ([`training_presets`]) and the validation ([`TrainForm::problems`], by field)
//! live here once; the trainer sizes the schedule once the step count is known.
//!
//! [`TrainForm`] is a request as the app's form gives it (one dataset file, a held-out share);
//! [`Adapt::check_training`] is what the form shows while it is edited: the problems by field
//! and the steps a run would take.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adapt_data::{DataOptions, PrepareInputs, Split, SplitRatios};
use adapt_engine::train::session::total_steps;
use adapt_engine::train::{FieldProblem, ScheduleIntent, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};

/// What to train: a model, data and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    /// A GGUF file or a model folder.
    pub model: PathBuf,
    pub data: PrepareInputs,
    pub data_options: DataOptions,
    pub config: TrainConfig,
    /// The run's name (default: the model's and the data's file names).
    pub name: Option<String>,
    /// QLoRA: the model must be quantized (it trains as stored).
    #[serde(default)]
    pub qlora: bool,
}

/// A training request as the app's form gives it: paths, the CSV mapping, the validation
/// share and the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainForm {
    pub model: String,
    pub dataset: String,
    /// How CSV records become examples (ignored for JSONL).
    pub csv: adapt_data::CsvOptions,
    /// Share of the examples held out for validation, 0..0.5.
    pub valid_share: f64,
    /// Train only on the answers (on) or on every token.
    pub mask_prompt: bool,
    /// QLoRA: the model must be quantized (it trains as stored).
    pub qlora: bool,
    pub config: TrainConfig,
    pub name: Option<String>,
}

/// A named starting point for the form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainPreset {
    pub name: String,
    pub label: String,
    pub hint: String,
    /// The form with the preset's settings (no model or dataset chosen).
    pub form: TrainForm,
}

/// What the form shows while it is edited.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainCheck {
    /// Every problem, by field (`config.learning_rate`, `valid_share`, `dataset`, …).
    pub problems: Vec<FieldProblem>,
    /// Examples in the dataset file (when it could be read).
    pub examples: Option<u64>,
    /// Of those, the ones trained on (the rest are held out).
    pub train_examples: Option<u64>,
    /// Optimizer steps the run would take, when the data is known.
    pub total_steps: Option<u64>,
}

/// The file types a dataset can be.
const DATASET_TYPES: &[&str] = &["csv", "tsv", "jsonl"];

/// The presets the form offers: Quick, Standard and Thorough.
pub fn training_presets() -> Vec<TrainPreset> {
    let base = TrainConfig {
        learning_rate: 1e-4,
        batch_size: 4,
        probe_max_tokens: 48,
        ..TrainConfig::default()
    };
    let preset = |name: &str, label: &str, hint: &str, config: TrainConfig| TrainPreset {
        name: name.into(),
        label: label.into(),
        hint: hint.into(),
        form: TrainForm {
            model: String::new(),
            dataset: String::new(),
            csv: Default::default(),
            valid_share: 0.1,
            mask_prompt: true,
            qlora: false,
            config,
            name: None,
        },
    };
    let mut quick = base.clone();
    quick.num_layers = 8;
    quick.epochs = Some(1);
    quick.max_seq_length = 512;
    quick.save_every = 50;
    quick.steps_per_eval = 25;
    let mut standard = base.clone();
    standard.lora_parameters.rank = 16;
    standard.lora_parameters.dropout = 0.05;
    standard.epochs = Some(3);
    standard.max_seq_length = 1024;
    standard.steps_per_eval = 50;
    standard.early_stopping_patience = Some(3);
    standard.schedule = Some(ScheduleIntent::Cosine {
        warmup: 10,
        min_ratio: 0.1,
    });
    let mut thorough = base;
    thorough.lora_parameters.rank = 32;
    thorough.lora_parameters.dropout = 0.05;
    thorough.num_layers = -1;
    thorough.learning_rate = 5e-5;
    thorough.epochs = Some(5);
    thorough.grad_checkpoint = true;
    thorough.steps_per_eval = 100;
    thorough.early_stopping_patience = Some(5);
    thorough.schedule = Some(ScheduleIntent::Cosine {
        warmup: 20,
        min_ratio: 0.1,
    });
    vec![
        preset(
            "quick",
            "Quick",
            "a first look in minutes: few layers, one epoch",
            quick,
        ),
        preset(
            "standard",
            "Standard",
            "a good default: 16 layers, three epochs, cosine decay",
            standard,
        ),
        preset(
            "thorough",
            "Thorough",
            "every layer, rank 32, five epochs, checkpointed activations",
            thorough,
        ),
    ]
}

impl TrainForm {
    /// The request this form makes.
    pub fn request(self) -> TrainRequest {
        let mut data_options = DataOptions::default();
        data_options.import.csv = self.csv;
        data_options.render.mask_prompt = self.mask_prompt;
        data_options.max_seq_length = self.config.max_seq_length as u32;
        TrainRequest {
            model: self.model.into(),
            data: PrepareInputs {
                train: self.dataset.into(),
                valid: None,
                test: None,
                ratios: SplitRatios {
                    valid: self.valid_share,
                    test: 0.0,
                    seed: self.config.seed,
                },
            },
            data_options,
            config: self.config,
            name: self.name.filter(|n| !n.trim().is_empty()),
            qlora: self.qlora,
        }
    }

    /// Every problem of the form, by field: the model and dataset chosen, then the request's
    /// (see [`TrainRequest::problems`]).
    pub fn problems(&self, supported: &adapt_library::Supported) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if self.model.trim().is_empty() {
            out.push(problem("model", "Choose a model."));
        }
        if self.dataset.trim().is_empty() {
            out.push(problem(
                "dataset",
                "Choose a CSV, TSV or JSONL file (or drop one on the window).",
            ));
        }
        let chosen: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect::<Vec<_>>();
        let skip: Vec<String> = chosen.iter().map(|s| s.to_string()).collect();
        out.extend(
            self.clone()
                .request()
                .problems(supported)
                .into_iter()
                .filter(|p| !skip.contains(&p.field)),
        );
        out
    }
}

impl TrainRequest {
    /// Every problem of the request, by field as the form names them: the model (there,
    /// runnable, quantized for QLoRA), the training data (there, a type we import), the
    /// held-out share, early stopping without validation data, and the settings
    /// (`config.` + the setting's name).
    pub fn problems(&self, supported: &adapt_library::Supported) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if let Err(why) = check_model(&self.model, self.qlora, supported) {
            out.push(problem("model", &why));
        }
        let train = &self.data.train;
        if !train.exists() {
            out.push(problem(
                "dataset",
                &format!("{}: no such file", train.display()),
            ));
        } else if train.is_file() && !has_type(train, DATASET_TYPES) {
            out.push(problem("dataset", "Datasets are CSV, TSV or JSONL files."));
        }
        let share = self.data.ratios.valid;
        if self.data.valid.is_none() && !(0.0..=0.5).contains(&share) {
            out.push(problem(
                "valid_share",
                "Hold out from 0 to 0.5 of the examples.",
            ));
        }
        let validates = self.data.valid.is_some() || share > 0.0;
        if self.config.early_stopping_patience.is_some() && !validates {
            out.push(problem(
                "config.early_stopping_patience",
                "Early stopping watches the validation loss: hold some examples out.",
            ));
        }
        out.extend(self.config.problems().into_iter().map(|p| FieldProblem {
            field: format!("config.{}", p.field),
            ..p
        }));
        out
    }
}

fn problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem {
        field: field.into(),
        message: message.into(),
        warning: false,
    }
}

/// Why the model at `path` cannot be trained as asked, if it cannot.
fn check_model(
    path: &Path,
    qlora: bool,
    supported: &adapt_library::Supported,
) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("{}: no such model file or folder", path.display()));
    }
    let description = adapt_library::describe(path, supported).map_err(|e| e.to_string())?;
    if !description.runnable {
        return Err(description
            .not_runnable
            .unwrap_or_else(|| "Adapt cannot run this model.".into()));
    }
    if qlora && description.quantization.is_none() {
        return Err(
            "QLoRA trains a quantized model: quantize this one in Models first, or use LoRA."
                .into(),
        );
    }
    Ok(())
}

/// Whether `path` ends in one of `types` (any case).
pub(crate) fn has_type(path: &Path, types: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| types.contains(&e.to_ascii_lowercase().as_str()))
}

impl Adapt {
    /// The form's problems by field and, when its dataset can be read, the steps a run of it
    /// would take. Reads the dataset file (without tokenizing it).
    pub fn check_training(&self, form: &TrainForm) -> TrainCheck {
        let mut problems = form.problems(&supported());
        let dataset = Path::new(form.dataset.trim());
        let counted = (!problems.iter().any(|p| p.field == "dataset"))
            .then(|| count_examples(dataset, form))
            .flatten();
        if let Some((_, invalid)) = counted.filter(|(_, invalid)| *invalid > 0) {
            problems.push(problem(
                "dataset",
                &format!(
                    "{invalid} example(s) are invalid and training refuses them: Datasets shows \
                     each one with its line"
                ),
            ));
        }
        let examples = counted.map(|(valid, _)| valid);
        let ratios = SplitRatios {
            valid: form.valid_share,
            test: 0.0,
            seed: form.config.seed,
        };
        let train_examples =
            examples.map(|n| (0..n).filter(|&i| ratios.assign(i) == Split::Train).count() as u64);
        let steps = train_examples.filter(|&n| n > 0).map(|n| {
            let batches = n.div_ceil(form.config.batch_size.max(1) as u64);
            let mut config = form.config.clone();
            config.grad_accumulation_steps = config.grad_accumulation_steps.max(1);
            total_steps(&config, batches)
        });
        TrainCheck {
            problems,
            examples,
            train_examples,
            total_steps: steps,
        }
    }

    /// Refuses `request` when its settings, model or data are wrong, naming each field.
    pub(crate) fn check_request(&self, request: &TrainRequest) -> Result<(), ApiError> {
        let problems = request.problems(&supported());
        if problems.iter().any(|p| !p.warning) {
            return Err(ApiError::invalid_fields(problems));
        }
        Ok(())
    }
}

/// What the engine runs, as the library wants it: the architectures of model folders and
/// the GGUF loader's own statement of what it reads.
pub(crate) fn supported() -> adapt_library::Supported {
    adapt_library::Supported::new(
        adapt_engine::models::SUPPORTED_ARCHITECTURES,
        adapt_engine::load::gguf::GGUF_SUPPORT,
    )
}

/// The valid and invalid examples of the form's dataset, or `None` when it cannot be read.
/// The last count is kept, keyed by the file's size and time and the import options, so a form
/// checked at every edit reads the file once.
fn count_examples(path: &Path, form: &TrainForm) -> Option<(u64, u64)> {
    static LAST: Mutex<Option<(String, (u64, u64))>> = Mutex::new(None);
    let mut options = DataOptions::default();
    options.import.csv = form.csv.clone();
    options.render.mask_prompt = form.mask_prompt;
    let meta = std::fs::metadata(path).ok()?;
    let key = format!(
        "{}|{}|{:?}|{}",
        path.display(),
        meta.len(),
        meta.modified().ok(),
        serde_json::to_string(&options).unwrap_or_default()
    );
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, counts)) = last.as_ref() {
        if *k == key {
            return Some(*counts);
        }
    }
    let report = adapt_data::inspect(path, &options, None, 0, &mut |_| {}).ok()?;
    let counts = (report.file.examples, report.file.invalid);
    *last = Some((key, counts));
    Some(counts)
}

/// Reads a training configuration file (YAML or JSON; mlx-lm's keys and ours).
pub fn read_config_file(path: &Path) -> Result<TrainConfig, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ApiError::new(
            ErrorCode::TrainBadConfig,
            format!("{}: cannot read: {e}", path.display()),
        )
    })?;
    let value: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| {
        ApiError::new(
            ErrorCode::TrainBadConfig,
            format!("{}: {e}", path.display()),
        )
    })?;
    let value = if value.is_null() {
        serde_json::json!({})
    } else {
        value
    };
    TrainConfig::from_value(value, &path.display().to_string())
        .map_err(|e| ApiError::new(ErrorCode::TrainBadConfig, e.to_string()))
}
