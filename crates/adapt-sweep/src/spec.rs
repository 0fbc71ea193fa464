//! A sweep's definition — fixed settings, the space, the budget in trials or minutes, the seed
//! and the rungs — read from YAML or JSON (already parsed) with every field checked by name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SweepError;
use crate::halving::Halving;
use crate::space::{known_knobs, Space};
use crate::tpe::Sampler;

/// What a sweep searches and how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Settings every trial shares, over the defaults.
    pub fixed: serde_json::Map<String, Value>,
    pub space: Space,
    /// Trials in all.
    pub trials: u64,
    /// Start no trial once this many minutes of training are spent.
    pub max_minutes: Option<f64>,
    pub seed: u64,
    /// Trials drawn at random before the sampler learns from the others.
    pub startup_trials: u64,
    /// Rungs as fractions of each trial's steps.
    pub rungs: Vec<f64>,
    /// Each rung keeps the best `1 / reduction` of the trials that reached it.
    pub reduction: f64,
}

/// The file's shape; `space` is read by [`Space::from_value`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    fixed: serde_json::Map<String, Value>,
    space: Value,
    #[serde(default = "default_trials")]
    trials: u64,
    max_minutes: Option<f64>,
    #[serde(default)]
    seed: u64,
    startup_trials: Option<u64>,
    #[serde(default = "default_rungs")]
    rungs: Vec<f64>,
    #[serde(default = "default_reduction")]
    reduction: f64,
}

fn default_trials() -> u64 {
    8
}

fn default_rungs() -> Vec<f64> {
    vec![0.25, 0.5, 1.0]
}

fn default_reduction() -> f64 {
    3.0
}

impl SweepSpec {
    /// Reads a definition. `defaults` is the training settings' defaults (as JSON): knobs are
    /// the settings of `defaults` with `fixed` over them, plus `extra` (settings the defaults
    /// leave unset).
    pub fn from_value(
        value: Value,
        source: &str,
        defaults: &Value,
        extra: &[&str],
    ) -> Result<SweepSpec, SweepError> {
        let raw: Raw = serde_json::from_value(value).map_err(|e| SweepError::BadField {
            source_name: source.into(),
            field: "sweep".into(),
            message: format!(
                "{e} (a sweep has fixed, space, trials, max_minutes, seed, startup_trials, \
                 rungs and reduction)"
            ),
        })?;
        let base = crate::space::apply(
            defaults,
            &raw.fixed
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let space = Space::from_value(&raw.space, source, &known_knobs(&base, extra))?;
        if let Some(knob) = space.knobs.iter().find(|(k, _)| raw.fixed.contains_key(k)) {
            return Err(SweepError::bad(
                source,
                &format!("space.{}", knob.0),
                "is fixed too; keep it in one of fixed and space",
            ));
        }
        if raw.trials == 0 {
            return Err(SweepError::bad(source, "trials", "at least 1"));
        }
        if raw.max_minutes.is_some_and(|m| m.is_nan() || m <= 0.0) {
            return Err(SweepError::bad(source, "max_minutes", "above 0"));
        }
        if raw.rungs.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(SweepError::bad(
                source,
                "rungs",
                "fractions of the steps, above 0 and at most 1",
            ));
        }
        if raw.reduction.is_nan() || raw.reduction < 1.0 {
            return Err(SweepError::bad(
                source,
                "reduction",
                "at least 1 (1: never prune)",
            ));
        }
        Ok(SweepSpec {
            fixed: raw.fixed,
            space,
            startup_trials: raw.startup_trials.unwrap_or((raw.trials / 3).max(2)),
            trials: raw.trials,
            max_minutes: raw.max_minutes,
            seed: raw.seed,
            rungs: raw.rungs,
            reduction: raw.reduction,
        })
    }

    /// The sampler this sweep draws with.
    pub fn sampler(&self) -> Sampler {
        Sampler {
            seed: self.seed,
            startup_trials: self.startup_trials,
            candidates: 24,
        }
    }

    /// The rungs of a trial of `steps` steps.
    pub fn halving(&self, steps: u64) -> Halving {
        Halving::new(steps, &self.rungs, self.reduction)
    }

    /// The fixed settings over `defaults`, before a trial's values.
    pub fn base(&self, defaults: &Value) -> Value {
        let mut out = defaults.clone();
        if let Value::Object(map) = &mut out {
            for (k, v) in &self.fixed {
                map.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Value {
        json!({"learning_rate": 1e-5, "iters": null, "schedule": null,
               "lora_parameters": {"rank": 8, "scale": 20.0}})
    }

    fn read(v: Value) -> Result<SweepSpec, SweepError> {
        SweepSpec::from_value(v, "s.yaml", &defaults(), &["lora_parameters.keys"])
    }

    #[test]
    fn a_full_definition_reads_with_defaults_for_the_rest() {
        let s = read(json!({
            "fixed": {"iters": 40, "schedule": {"kind": "cosine", "warmup": 2}},
            "space": {"learning_rate": {"log_uniform": [1e-5, 1e-1]},
                      "schedule.warmup": {"int": [0, 8]}},
            "trials": 6, "seed": 9
        }))
        .unwrap();
        assert_eq!((s.trials, s.seed, s.startup_trials), (6, 9, 2));
        assert_eq!(s.rungs, [0.25, 0.5, 1.0]);
        assert_eq!(s.halving(40).rungs, [10, 20, 40]);
        assert_eq!(s.base(&defaults())["iters"], json!(40));
    }

    #[test]
    fn bad_fields_are_named() {
        let space = json!({"learning_rate": [1e-3]});
        for (v, says) in [
            (
                json!({"space": space, "trails": 3}),
                "unknown field `trails`",
            ),
            (json!({"space": space, "trials": 0}), "'trials'"),
            (json!({"space": space, "rungs": [0.5, 2]}), "'rungs'"),
            (json!({"space": space, "reduction": 0.5}), "'reduction'"),
            (json!({"space": space, "max_minutes": -1}), "'max_minutes'"),
            (
                json!({"space": {"schedule.warmup": [1]}}),
                "unknown knob 'schedule.warmup'",
            ),
            (
                json!({"space": space, "fixed": {"learning_rate": 1}}),
                "space.learning_rate",
            ),
        ] {
            let e = read(v).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
            assert!(e.to_string().starts_with("s.yaml: "), "{e}");
        }
    }
}
