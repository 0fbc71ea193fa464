//! Learning-rate schedules as mlx-lm builds them: an optional linear warmup from
//! `warmup_init`, then the named schedule counted from the end of the warmup.
//!
//! A request either spells the schedule out in mlx-lm's form ([`LrSchedule`], as config files
//! do: decay steps included) or states its intent ([`ScheduleIntent`]: warm-up, shape and the
//! lowest rate as a share of the peak), which [`Schedule::for_run`] sizes once the run's step
//! count is known.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule in mlx-lm's form: `{name, arguments, warmup, warmup_init}`.
/// Supported names: `cosine_decay` (`[init, decay_steps, end?]`), `linear_schedule`
/// (`[init, end, steps]`), `constant` (`[lr]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LrSchedule {
    pub name: String,
    pub arguments: Vec<f64>,
    #[serde(default)]
    pub warmup: u64,
    #[serde(default)]
    pub warmup_init: f64,
}

/// The schedule a request asks for, sized by the trainer once the run's step count is known:
/// `warmup` steps of linear warm-up from 0 to the learning rate, then the rate held
/// (`constant`) or decayed over the remaining steps to `min_ratio` × the learning rate
/// (`cosine`, `linear`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ScheduleIntent {
    Constant {
        #[serde(default)]
        warmup: u64,
    },
    Cosine {
        #[serde(default)]
        warmup: u64,
        #[serde(default)]
        min_ratio: f64,
    },
    Linear {
        #[serde(default)]
        warmup: u64,
        #[serde(default)]
        min_ratio: f64,
    },
}

impl ScheduleIntent {
    /// Warm-up steps.
    pub fn warmup(&self) -> u64 {
        match *self {
            ScheduleIntent::Constant { warmup }
            | ScheduleIntent::Cosine { warmup, .. }
            | ScheduleIntent::Linear { warmup, .. } => warmup,
        }
    }

    /// The lowest rate as a share of the peak (1 for a constant rate).
    pub fn min_ratio(&self) -> f64 {
        match *self {
            ScheduleIntent::Constant { .. } => 1.0,
            ScheduleIntent::Cosine { min_ratio, .. } | ScheduleIntent::Linear { min_ratio, .. } => {
                min_ratio
            }
        }
    }

    /// mlx-lm's form of this intent for a run of `total_steps` steps at `learning_rate`.
    pub fn sized(&self, learning_rate: f64, total_steps: u64) -> LrSchedule {
        let warmup = self.warmup();
        let decay = total_steps.saturating_sub(warmup).max(1) as f64;
        let end = learning_rate * self.min_ratio();
        let (name, arguments) = match self {
            ScheduleIntent::Constant { .. } => ("constant", vec![learning_rate]),
            ScheduleIntent::Cosine { .. } => ("cosine_decay", vec![learning_rate, decay, end]),
            ScheduleIntent::Linear { .. } => ("linear_schedule", vec![learning_rate, end, decay]),
        };
        LrSchedule {
            name: name.into(),
            arguments,
            warmup,
            warmup_init: 0.0,
        }
    }
}

/// A learning rate for each optimizer step (from 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    kind: Kind,
    warmup: u64,
    warmup_init: f64,
    peak: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Constant(f64),
    Cosine { init: f64, steps: u64, end: f64 },
    Linear { init: f64, end: f64, steps: u64 },
}

impl Schedule {
    /// The schedule `spec` describes, or a constant `learning_rate`.
    pub fn new(learning_rate: f64, spec: Option<&LrSchedule>) -> Result<Schedule, String> {
        let Some(spec) = spec else {
            return Ok(Schedule {
                kind: Kind::Constant(learning_rate),
                warmup: 0,
                warmup_init: 0.0,
                peak: learning_rate,
            });
        };
        let a = &spec.arguments;
        let arg = |i: usize, what: &str| {
            a.get(i).copied().ok_or_else(|| {
                format!(
                    "'lr_schedule.arguments' of {} needs {what} at position {}",
                    spec.name,
                    i + 1
                )
            })
        };
        let kind = match spec.name.as_str() {
            "cosine_decay" => Kind::Cosine {
                init: arg(0, "the initial rate")?,
                steps: arg(1, "the decay steps")?.max(1.0) as u64,
                end: a.get(2).copied().unwrap_or(0.0),
            },
            "linear_schedule" => Kind::Linear {
                init: arg(0, "the initial rate")?,
                end: arg(1, "the final rate")?,
                steps: arg(2, "the steps")?.max(1.0) as u64,
            },
            "constant" => Kind::Constant(arg(0, "the rate")?),
            other => {
                return Err(format!(
                    "'lr_schedule.name' {other:?} is not supported; use cosine_decay, \
                     linear_schedule or constant"
                ))
            }
        };
        let peak = match kind {
            Kind::Constant(lr) => lr,
            Kind::Cosine { init, .. } | Kind::Linear { init, .. } => init,
        };
        Ok(Schedule {
            kind,
            warmup: spec.warmup,
            warmup_init: spec.warmup_init,
            peak,
        })
    }

    /// The schedule of a run of `total_steps` steps: the spelled-out one, the intent sized to
    /// the run, or a constant `learning_rate`.
    pub fn for_run(
        learning_rate: f64,
        spelled: Option<&LrSchedule>,
        intent: Option<&ScheduleIntent>,
        total_steps: u64,
    ) -> Result<Schedule, String> {
        match (spelled, intent) {
            (Some(s), _) => Schedule::new(learning_rate, Some(s)),
            (None, Some(i)) => {
                Schedule::new(learning_rate, Some(&i.sized(learning_rate, total_steps)))
            }
            (None, None) => Schedule::new(learning_rate, None),
        }
    }

    /// The rate at optimizer step `step` (0 for the first update).
    pub fn at(&self, step: u64) -> f64 {
        if self.warmup > 0 && step <= self.warmup {
            let t = step as f64 / self.warmup as f64;
            return self.warmup_init + (self.peak - self.warmup_init) * t;
        }
        let step = if self.warmup > 0 {
            step - self.warmup - 1
        } else {
            step
        };
        match self.kind {
            Kind::Constant(lr) => lr,
            Kind::Cosine { init, steps, end } => {
                let t = step.min(steps) as f64 / steps as f64;
                end + (init - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Kind::Linear { init, end, steps } => {
                init + (end - init) * step.min(steps) as f64 / steps as f64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, arguments: Vec<f64>, warmup: u64) -> LrSchedule {
        LrSchedule {
            name: name.into(),
            arguments,
            warmup,
            warmup_init: 0.0,
        }
    }

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule::new(1.0, Some(&spec("cosine_decay", vec![1e-3, 100.0], 10))).unwrap();
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(5) - 5e-4).abs() < 1e-12);
        assert!((s.at(10) - 1e-3).abs() < 1e-12);
        assert!((s.at(11) - 1e-3).abs() < 1e-12);
        assert!((s.at(61) - 5e-4).abs() < 1e-9);
        assert!(s.at(111).abs() < 1e-12);
        assert!(s.at(500).abs() < 1e-12);
    }

    #[test]
    fn an_intent_is_sized_to_the_run() {
        let cosine = ScheduleIntent::Cosine {
            warmup: 10,
            min_ratio: 0.1,
        };
        let s = Schedule::for_run(1e-3, None, Some(&cosine), 110).unwrap();
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(10) - 1e-3).abs() < 1e-12);
        // The decay spans the 100 steps after the warm-up and ends at a tenth of the peak.
        assert!((s.at(61) - 5.5e-4).abs() < 1e-9);
        assert!((s.at(111) - 1e-4).abs() < 1e-12);
        let linear = ScheduleIntent::Linear {
            warmup: 0,
            min_ratio: 0.0,
        };
        let s = Schedule::for_run(1.0, None, Some(&linear), 10).unwrap();
        assert!((s.at(5) - 0.5).abs() < 1e-12);
        let constant = ScheduleIntent::Constant { warmup: 4 };
        let s = Schedule::for_run(2.0, None, Some(&constant), 10).unwrap();
        assert_eq!((s.at(2), s.at(9)), (1.0, 2.0));
        // A spelled-out schedule wins over the intent.
        let spelled = spec("constant", vec![3.0], 0);
        let s = Schedule::for_run(1.0, Some(&spelled), Some(&cosine), 10).unwrap();
        assert_eq!(s.at(5), 3.0);
    }

    #[test]
    fn constant_and_errors() {
        assert_eq!(Schedule::new(2e-5, None).unwrap().at(1000), 2e-5);
        let e = Schedule::new(1.0, Some(&spec("step_decay", vec![1.0], 0))).unwrap_err();
        assert!(e.contains("step_decay"), "{e}");
        let e = Schedule::new(1.0, Some(&spec("cosine_decay", vec![1.0], 0))).unwrap_err();
        assert!(e.contains("decay steps"), "{e}");
    }
}
