//! A sweep as the app's form gives it: the Train form the trials start from, the settings to
//! search with their values, and the budget. [`SweepForm::checked_request`] makes it the
//! [`SweepRequest`] the CLI's space file makes, checked by the same rules.

use std::collections::BTreeMap;

use adapt_engine::train::TrainConfig;
use adapt_sweep::{Domain, SweepSpec};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::sweeps::{read_sweep_spec, SweepRequest};
use crate::train_form::TrainForm;

/// A sweep from the app: trials start from `train` and search `space`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SweepForm {
    pub train: TrainForm,
    /// Each searched setting by its dotted name (`learning_rate`, `lora_parameters.rank`,
    /// `schedule.warmup`) with the values it may take.
    pub space: BTreeMap<String, Domain>,
    /// Trials in all.
    pub trials: u64,
    /// Trials drawn at random before the sampler learns from the others (default: a third of
    /// the trials, at least 2).
    pub startup_trials: Option<u64>,
    pub seed: u64,
    /// Rungs as fractions of each trial's steps.
    pub rungs: Vec<f64>,
    /// Each rung keeps the best `1 / reduction` of the trials that reached it (1: never prune).
    pub reduction: f64,
}

impl SweepForm {
    /// The sweep's definition over `base` (the settings trials start from).
    pub fn spec(&self, base: &TrainConfig) -> Result<SweepSpec, ApiError> {
        let mut value = serde_json::json!({
            "space": self.space,
            "trials": self.trials,
            "seed": self.seed,
            "rungs": self.rungs,
            "reduction": self.reduction,
        });
        if let Some(n) = self.startup_trials {
            value["startup_trials"] = n.into();
        }
        read_sweep_spec(value, "sweep", base)
    }

    /// The request this form makes, or the Train form's problems by field, or what is wrong
    /// with the space or the budget.
    pub fn checked_request(self) -> Result<SweepRequest, ApiError> {
        let spec = self.spec(&self.train.config)?;
        let request = self.train.checked_request()?;
        Ok(SweepRequest {
            name: request.name.clone(),
            request,
            spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(space: &[(&str, Domain)]) -> SweepForm {
        let mut train = crate::training_presets().remove(0).form;
        // As the app's form sends it: a schedule with its warm-up.
        train.config.schedule = Some(
            serde_json::from_value(serde_json::json!({"kind": "constant", "warmup": 0})).unwrap(),
        );
        SweepForm {
            train,
            space: space
                .iter()
                .map(|(k, d)| (k.to_string(), d.clone()))
                .collect(),
            trials: 4,
            startup_trials: None,
            seed: 7,
            rungs: vec![0.5, 1.0],
            reduction: 2.0,
        }
    }

    #[test]
    fn the_forms_space_and_budget_make_the_definition() {
        let f = form(&[
            ("learning_rate", Domain::LogUniform(1e-5, 1e-3)),
            (
                "lora_parameters.rank",
                Domain::Choice(vec![4.into(), 8.into()]),
            ),
            ("schedule.warmup", Domain::Int(0, 4)),
        ]);
        let spec = f.spec(&f.train.config).unwrap();
        assert_eq!((spec.trials, spec.seed, spec.startup_trials), (4, 7, 2));
        assert_eq!(
            (spec.rungs.as_slice(), spec.reduction),
            ([0.5, 1.0].as_slice(), 2.0)
        );
        let knobs: Vec<&str> = spec.space.knobs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            knobs,
            ["learning_rate", "lora_parameters.rank", "schedule.warmup"]
        );
        assert!(spec.fixed.is_empty());
        let mut f = f;
        f.startup_trials = Some(3);
        assert_eq!(f.spec(&f.train.config).unwrap().startup_trials, 3);
    }

    #[test]
    fn a_bad_space_or_budget_is_refused_by_field() {
        for (f, code, says) in [
            (form(&[]), "sweep.bad_field", "'space'"),
            (
                form(&[("learning_rat", Domain::Uniform(0.1, 0.2))]),
                "sweep.unknown_knob",
                "'learning_rat'",
            ),
            (
                form(&[("learning_rate", Domain::LogUniform(0.0, 1e-3))]),
                "sweep.bad_field",
                "above 0",
            ),
            (
                SweepForm {
                    trials: 0,
                    ..form(&[("learning_rate", Domain::Uniform(0.1, 0.2))])
                },
                "sweep.bad_field",
                "'trials'",
            ),
            (
                SweepForm {
                    rungs: vec![0.0],
                    ..form(&[("learning_rate", Domain::Uniform(0.1, 0.2))])
                },
                "sweep.bad_field",
                "'rungs'",
            ),
        ] {
            let e = f.spec(&f.train.config).unwrap_err();
            assert_eq!(e.code, code, "{}", e.message);
            assert!(e.message.contains(says), "{}", e.message);
        }
    }

    #[test]
    fn a_train_form_without_a_model_or_data_is_refused_by_field() {
        let e = form(&[("learning_rate", Domain::Uniform(0.1, 0.2))])
            .checked_request()
            .unwrap_err();
        let fields: Vec<&str> = e.fields.iter().map(|p| p.field.as_str()).collect();
        assert!(
            fields.contains(&"model") && fields.contains(&"dataset"),
            "{fields:?}"
        );
    }
}
