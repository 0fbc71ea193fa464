//! Learning-rate schedules as mlx-lm builds them: an optional linear warmup from
//! `warmup_init`, then the named schedule counted from the end of the warmup.

use super::config::LrSchedule;

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
    fn constant_and_errors() {
        assert_eq!(Schedule::new(2e-5, None).unwrap().at(1000), 2e-5);
        let e = Schedule::new(1.0, Some(&spec("step_decay", vec![1.0], 0))).unwrap_err();
        assert!(e.contains("step_decay"), "{e}");
        let e = Schedule::new(1.0, Some(&spec("cosine_decay", vec![1.0], 0))).unwrap_err();
        assert!(e.contains("decay steps"), "{e}");
    }
}
