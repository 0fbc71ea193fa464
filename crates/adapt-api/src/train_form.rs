//! The one training contract every shell uses: a [`TrainRequest`] states what to train and the
//! intent of its settings (epochs or steps, a schedule shape with its warm-up and lowest rate);
//! the defaults ([`training_presets`]) and the validation ([`TrainForm::problems`], by field)
//! live here once; the trainer sizes the schedule once the step count is known.
//!
//! [`TrainForm`] is a request as the app's form gives it (one dataset file, a held-out share);
//! [`Adapt::check_training`] is what the form shows while it is edited: the problems by field
//! and the steps a run would take.

use std::path::{Path, PathBuf};

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
    /// A folder to write the finished adapter into as well as the run's folder (mlx-lm's
    /// `--adapter-path`).
    #[serde(default)]
    pub adapter_path: Option<PathBuf>,
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
            adapter_path: None,
        }
    }

    /// The request of a form whose model and dataset were checked (they exist and are a model
    /// and a dataset file Adapt reads), or every problem by field.
    pub fn checked_request(self) -> Result<TrainRequest, ApiError> {
        let problems: Vec<FieldProblem> = self
            .problems(&supported())
            .into_iter()
            .filter(|p| !p.warning)
            .collect();
        if !problems.is_empty() {
            return Err(ApiError::invalid_fields(problems));
        }
        Ok(self.request())
    }

    /// Every problem of the form, by field: the model and dataset chosen, the held-out share,
    /// and the settings (`config.` + the setting's name).
    pub fn problems(&self, supported: &[String]) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let mut say = |field: &str, message: String| {
            out.push(FieldProblem {
                field: field.into(),
                message,
                warning: false,
            })
        };
        if self.model.trim().is_empty() {
            say("model", "Choose a model.".into());
        } else if let Err(why) = self.check_model(supported) {
            say("model", why);
        }
        let dataset = self.dataset.trim();
        if dataset.is_empty() {
            say(
                "dataset",
                "Choose a CSV, TSV or JSONL file (or drop one on the window).".into(),
            );
        } else if !has_type(Path::new(dataset), adapt_data::import::DATASET_EXTENSIONS) {
            say("dataset", "Datasets are CSV, TSV or JSONL files.".into());
        } else if !Path::new(dataset).is_file() {
            say("dataset", format!("{dataset}: no such file"));
        }
        if !(0.0..=0.5).contains(&self.valid_share) {
            say(
                "valid_share",
                "Hold out from 0 to 0.5 of the examples.".into(),
            );
        }
        if self.config.early_stopping_patience.is_some() && self.valid_share == 0.0 {
            say(
                "config.early_stopping_patience",
                "Early stopping watches the validation loss: hold some examples out.".into(),
            );
        }
        out.extend(self.config.problems().into_iter().map(|p| FieldProblem {
            field: format!("config.{}", p.field),
            ..p
        }));
        out
    }

    /// Why the model cannot be trained as the form asks, if it cannot.
    fn check_model(&self, supported: &[String]) -> Result<(), String> {
        let path = Path::new(self.model.trim());
        if !path.exists() {
            return Err(format!("{}: no such model file or folder", path.display()));
        }
        let description = adapt_library::describe(path, supported).map_err(|e| e.to_string())?;
        if !description.runnable {
            return Err(description
                .not_runnable
                .unwrap_or_else(|| "Adapt cannot run this model".into()));
        }
        if self.qlora && description.quantization.is_none() {
            return Err(
                "QLoRA trains a quantized model: quantize this one in Models first, or use LoRA."
                    .into(),
            );
        }
        Ok(())
    }
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
        let problems = form.problems(&supported());
        let dataset = Path::new(form.dataset.trim());
        let examples = (!problems.iter().any(|p| p.field == "dataset"))
            .then(|| count_examples(dataset, form))
            .flatten();
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

    /// Refuses `request` when its settings or model are wrong, naming each field.
    pub(crate) fn check_request(&self, request: &TrainRequest) -> Result<(), ApiError> {
        let mut problems: Vec<FieldProblem> = request
            .config
            .problems()
            .into_iter()
            .map(|p| FieldProblem {
                field: format!("config.{}", p.field),
                ..p
            })
            .collect();
        if !request.model.exists() {
            problems.push(FieldProblem {
                field: "model".into(),
                message: format!("{}: no such model file or folder", request.model.display()),
                warning: false,
            });
        }
        let data = &request.data;
        let files = [
            ("data.train", Some(&data.train)),
            ("data.valid", data.valid.as_ref()),
            ("data.test", data.test.as_ref()),
        ];
        for (field, path) in files {
            if let Some(Err(e)) = path.map(|p| crate::datasets::dataset_file(p)) {
                problems.push(FieldProblem {
                    field: field.into(),
                    message: e.message,
                    warning: false,
                });
            }
        }
        if let Some(dir) = &request.adapter_path {
            if dir
                .join(adapt_engine::adapters::files::ADAPTERS_FILE)
                .exists()
            {
                problems.push(FieldProblem {
                    field: "adapter_path".into(),
                    message: format!(
                        "{} already holds an adapter; choose another folder or move that one \
                         away first (Adapt does not overwrite it)",
                        dir.display()
                    ),
                    warning: false,
                });
            }
        }
        if problems.iter().any(|p| !p.warning) {
            return Err(ApiError::invalid_fields(problems));
        }
        Ok(())
    }
}

/// The architectures the engine runs, as the library wants them.
pub(crate) fn supported() -> Vec<String> {
    adapt_engine::models::SUPPORTED_ARCHITECTURES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Examples in the form's dataset (valid ones), or `None` when it cannot be read.
fn count_examples(path: &Path, form: &TrainForm) -> Option<u64> {
    let mut options = DataOptions::default();
    options.import.csv = form.csv.clone();
    options.render.mask_prompt = form.mask_prompt;
    let report = adapt_data::inspect(path, &options, None, 0, &mut |_| {}).ok()?;
    Some(report.file.examples)
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
