//! Training settings: mlx-lm's LoRA configuration keys (same names, same defaults) plus
//! Adapt's own (epochs, early stopping, keep-best, gradient clipping, probe prompts).

use serde::{Deserialize, Serialize};

use super::schedule::{LrSchedule, Schedule, ScheduleIntent};
use crate::adapters::config::{AdapterConfig, FineTuneType, LoraParameters};
use crate::error::{EngineError, Result};

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum OptimizerKind {
    #[default]
    Adam,
    AdamW,
    Sgd,
}

/// The float type of the base's weights and of the forward and backward compute. Adapter
/// weights, their gradients and the optimizer's state stay f32 whatever it is, and the loss is
/// computed in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Precision {
    /// What the backend holds the model in: on a GPU the dtype the file stores, on the CPU f32.
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl Precision {
    /// The float type the base is held and computed in; `None` for [`Precision::Auto`].
    pub fn dtype(self) -> Option<mlx_rs::Dtype> {
        match self {
            Precision::Auto => None,
            Precision::F32 => Some(mlx_rs::Dtype::Float32),
            Precision::Bf16 => Some(mlx_rs::Dtype::Bfloat16),
            Precision::F16 => Some(mlx_rs::Dtype::Float16),
        }
    }

    /// How to load a model that trains in this precision: a quantized base as it is stored
    /// (QLoRA) on every backend, its float weights (scales, norms, embeddings) in this
    /// precision's type, or for `auto` as the backend holds them.
    pub fn load_options(self) -> crate::load::LoadOptions {
        let backend = crate::device::Backend::detect();
        crate::load::LoadOptions {
            format: self.dtype().map(|dtype| crate::models::WeightFormat {
                dtype,
                ..crate::models::WeightFormat::for_backend(backend)
            }),
            keep_quantized: true,
        }
    }

    /// The name as configurations and flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Precision, String> {
        [
            Precision::Auto,
            Precision::F32,
            Precision::Bf16,
            Precision::F16,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("'{s}' is not a precision; use auto, f32, bf16 or f16"))
    }
}

/// The shortest `max_seq_length` a run accepts.
pub const MIN_SEQ_LENGTH: usize = 16;

/// A setting that cannot be used as it is: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FieldProblem {
    /// The setting's name as the request spells it (`lora_parameters.rank`, `valid_share`).
    pub field: String,
    pub message: String,
    /// Advice rather than a refusal: the run can start anyway.
    pub warning: bool,
}

/// Everything a training run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainConfig {
    pub fine_tune_type: FineTuneType,
    pub num_layers: i32,
    pub lora_parameters: LoraParameters,
    pub optimizer: OptimizerKind,
    /// Per-optimizer options as mlx-lm spells them (`{"adamw": {"weight_decay": 0.01}}`).
    pub optimizer_config: serde_json::Value,
    pub learning_rate: f64,
    /// The schedule spelled out in mlx-lm's form (decay steps included), as config files give
    /// it; wins over `schedule`.
    pub lr_schedule: Option<LrSchedule>,
    /// The schedule as an intent, sized once the run's step count is known.
    pub schedule: Option<ScheduleIntent>,
    pub batch_size: usize,
    /// Optimizer steps; `None` with `epochs` set trains for that many epochs.
    pub iters: Option<u64>,
    pub epochs: Option<u64>,
    pub max_seq_length: usize,
    pub steps_per_report: u64,
    pub steps_per_eval: u64,
    /// Validation batches per evaluation (`-1`: the whole split).
    pub val_batches: i64,
    pub save_every: u64,
    pub grad_accumulation_steps: u64,
    pub grad_checkpoint: bool,
    pub seed: u64,
    /// Clip the gradients' global norm to this.
    pub max_grad_norm: Option<f32>,
    /// Stop when the validation loss has not improved for this many evaluations.
    pub early_stopping_patience: Option<u64>,
    /// The run's adapter is the one with the best validation loss, not the last.
    pub keep_best: bool,
    /// Prompts answered greedily with the current adapter at each evaluation.
    pub probes: Vec<String>,
    /// Tokens generated per probe answer.
    pub probe_max_tokens: usize,
    /// The most memory training may use, in bytes (default: what the machine has free). The
    /// micro-batch shrinks when a step nears it and grows back when there is room.
    pub memory_budget: Option<u64>,
    /// Build the next step's batches on a helper thread while a step runs.
    pub prefetch: bool,
    /// The base's weights and the compute in this float type (adapters and optimizer in f32).
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let adapter = AdapterConfig::default();
        TrainConfig {
            fine_tune_type: adapter.fine_tune_type,
            num_layers: adapter.num_layers,
            lora_parameters: adapter.lora_parameters,
            optimizer: OptimizerKind::Adam,
            optimizer_config: serde_json::Value::Null,
            learning_rate: 1e-5,
            lr_schedule: None,
            schedule: None,
            batch_size: 4,
            iters: None,
            epochs: None,
            max_seq_length: 2048,
            steps_per_report: 10,
            steps_per_eval: 200,
            val_batches: 25,
            save_every: 100,
            grad_accumulation_steps: 1,
            grad_checkpoint: false,
            seed: 0,
            max_grad_norm: None,
            early_stopping_patience: None,
            keep_best: true,
            probes: Vec::new(),
            probe_max_tokens: 48,
            memory_budget: None,
            prefetch: true,
            precision: Precision::Auto,
        }
    }
}

/// mlx-lm configuration keys that name things the caller handles (model, data, paths) or
/// that do not apply here; a config file may carry them.
const MLX_LM_OTHER_KEYS: &[&str] = &[
    "model",
    "train",
    "data",
    "adapter_path",
    "resume_adapter_file",
    "test",
    "test_batches",
    "mask_prompt",
    "report_to",
    "project_name",
    "trust_remote_code",
    "clear_cache_threshold",
    "hf_dataset",
    "wandb",
    "config",
];

impl TrainConfig {
    /// Reads a configuration (already parsed from YAML or JSON) over the defaults: mlx-lm's
    /// keys and Adapt's. An unknown key is an error naming it, so a typo is not ignored.
    pub fn from_value(value: serde_json::Value, source: &str) -> Result<TrainConfig> {
        let serde_json::Value::Object(mut map) = value else {
            return Err(EngineError::InvalidRequest(format!(
                "{source}: a training configuration must be a mapping of keys to values"
            )));
        };
        let known = serde_json::to_value(TrainConfig::default())
            .ok()
            .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()))
            .unwrap_or_default();
        for key in map.keys() {
            if !known.contains(key) && !MLX_LM_OTHER_KEYS.contains(&key.as_str()) {
                return Err(EngineError::InvalidRequest(format!(
                    "{source}: unknown key '{key}'; known keys: {}",
                    known.join(", ")
                )));
            }
        }
        map.retain(|k, _| known.contains(k));
        let config: TrainConfig = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| EngineError::InvalidRequest(format!("{source}: {e}")))?;
        config.validate(source)?;
        Ok(config)
    }

    /// Checks ranges; the message names the key (the first problem [`TrainConfig::problems`]
    /// finds).
    pub fn validate(&self, source: &str) -> Result<()> {
        match self.problems().into_iter().find(|p| !p.warning) {
            Some(p) => Err(EngineError::InvalidRequest(format!(
                "{source}: '{}': {}",
                p.field, p.message
            ))),
            None => Ok(()),
        }
    }

    /// Every setting out of range, keyed by its name (`lora_parameters.rank`).
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let mut say = |field: &str, message: &str, warning: bool| {
            out.push(FieldProblem {
                field: field.into(),
                message: message.into(),
                warning,
            })
        };
        let p = &self.lora_parameters;
        if p.rank < 1 || p.rank > 1024 {
            say(
                "lora_parameters.rank",
                "A whole number from 1 to 1024.",
                false,
            );
        }
        if p.scale.is_nan() || p.scale <= 0.0 {
            say(
                "lora_parameters.scale",
                "Above 0 (mlx-lm's default is 20).",
                false,
            );
        }
        if !(0.0..1.0).contains(&p.dropout) {
            say(
                "lora_parameters.dropout",
                "From 0 up to (not including) 1.",
                false,
            );
        }
        if self.num_layers == 0 || self.num_layers < -1 {
            say("num_layers", "-1 (all) or at least 1.", false);
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 || self.learning_rate >= 1.0 {
            say("learning_rate", "Between 0 and 1, e.g. 1e-4.", false);
        } else if self.learning_rate > 1e-2 {
            say(
                "learning_rate",
                "High: above 1e-2 LoRA training usually diverges.",
                true,
            );
        }
        if self.batch_size == 0 {
            say("batch_size", "At least 1.", false);
        }
        if self.iters == Some(0) {
            say("iters", "At least 1.", false);
        }
        if self.epochs == Some(0) {
            say("epochs", "At least 1.", false);
        }
        if self.max_seq_length < MIN_SEQ_LENGTH {
            say("max_seq_length", "At least 16 tokens.", false);
        }
        if self.grad_accumulation_steps == 0 {
            say("grad_accumulation_steps", "At least 1.", false);
        }
        if self.memory_budget.is_some_and(|b| b < 1 << 20) {
            say(
                "memory_budget",
                "At least 1 MiB (in bytes), or leave it out to use the free memory.",
                false,
            );
        }
        for (field, value) in [
            ("steps_per_report", self.steps_per_report),
            ("steps_per_eval", self.steps_per_eval),
            ("save_every", self.save_every),
        ] {
            if value == 0 {
                say(field, "At least 1.", false);
            }
        }
        if self.val_batches == 0 || self.val_batches < -1 {
            say("val_batches", "-1 (all) or at least 1.", false);
        }
        if self.early_stopping_patience == Some(0) {
            say(
                "early_stopping_patience",
                "At least 1 evaluation (or off).",
                false,
            );
        }
        if let Some(s) = &self.lr_schedule {
            if let Err(e) = Schedule::new(self.learning_rate, Some(s)) {
                say("lr_schedule", &e, false);
            }
        }
        if let Some(i) = &self.schedule {
            if !(0.0..=1.0).contains(&i.min_ratio()) {
                say("schedule.min_ratio", "From 0 to 1.", false);
            }
        }
        out
    }

    /// The adapter part, as `adapter_config.json` records it.
    pub fn adapter(&self) -> AdapterConfig {
        AdapterConfig {
            fine_tune_type: self.fine_tune_type,
            num_layers: self.num_layers,
            lora_parameters: self.lora_parameters.clone(),
        }
    }

    /// A numeric option of the optimizer from `optimizer_config`.
    pub fn optimizer_option(&self, name: &str) -> Option<f64> {
        let key = match self.optimizer {
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::Sgd => "sgd",
        };
        self.optimizer_config.get(key)?.get(name)?.as_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mlx_lm_keys_and_defaults() {
        let c = TrainConfig::from_value(
            json!({"model": "m", "data": "d", "iters": 20, "lora_parameters": {"rank": 4,
                   "scale": 10.0, "dropout": 0.0}, "fine_tune_type": "dora",
                   "optimizer": "adamw"}),
            "cfg.yaml",
        )
        .unwrap();
        assert_eq!(c.iters, Some(20));
        assert_eq!(c.lora_parameters.rank, 4);
        assert_eq!(c.fine_tune_type, FineTuneType::Dora);
        assert_eq!(c.optimizer, OptimizerKind::AdamW);
        assert_eq!(c.batch_size, 4);
        assert_eq!(c.num_layers, 16);
        assert_eq!(c.precision, Precision::Auto);
    }

    #[test]
    fn precision_is_read_written_and_absent_means_auto() {
        // A run's configuration written before the setting existed reads as before.
        let mut old = serde_json::to_value(TrainConfig::default()).unwrap();
        old.as_object_mut().unwrap().remove("precision");
        let c: TrainConfig = serde_json::from_value(old).unwrap();
        assert_eq!(c, TrainConfig::default());
        assert_eq!(c.precision, Precision::Auto);
        let c = TrainConfig::from_value(json!({"precision": "bf16"}), "cfg.yaml").unwrap();
        assert_eq!(c.precision, Precision::Bf16);
        assert_eq!(
            serde_json::to_value(&c).unwrap()["precision"],
            json!("bf16")
        );
        assert_eq!(c.precision.dtype(), Some(mlx_rs::Dtype::Bfloat16));
        assert_eq!(Precision::Auto.dtype(), None);
        // `auto` loads as training always did: the backend's choice, quantized kept.
        let auto = Precision::Auto.load_options();
        assert!(auto.format.is_none() && auto.keep_quantized);
        let bf16 = Precision::Bf16.load_options();
        assert_eq!(bf16.format.map(|f| f.dtype), Some(mlx_rs::Dtype::Bfloat16));
        let e = TrainConfig::from_value(json!({"precision": "fp8"}), "cfg.yaml").unwrap_err();
        assert!(e.to_string().contains("cfg.yaml"), "{e}");
        assert_eq!("f16".parse::<Precision>(), Ok(Precision::F16));
        assert!("half"
            .parse::<Precision>()
            .unwrap_err()
            .contains("auto, f32, bf16 or f16"));
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let e = TrainConfig::from_value(json!({"learning_rat": 1e-4}), "cfg.yaml").unwrap_err();
        assert!(
            e.to_string()
                .contains("cfg.yaml: unknown key 'learning_rat'"),
            "{e}"
        );
        let e = TrainConfig::from_value(json!({"batch_size": 0}), "cfg.yaml").unwrap_err();
        assert!(e.to_string().contains("'batch_size': At least 1."), "{e}");
        let e = TrainConfig::from_value(json!({"batch_size": "four"}), "cfg.yaml").unwrap_err();
        assert!(e.to_string().contains("cfg.yaml"), "{e}");
    }
}
