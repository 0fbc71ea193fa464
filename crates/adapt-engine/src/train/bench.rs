//! Training benchmarks: one setting (a configuration on a loaded base) trained for some
//! warm-up steps and then for measured steps, each step timed on its own (MLX is lazy: a
//! step ends when its adapter and optimizer state are evaluated), then evaluated on the
//! validation split. [`bench_setting`] gives the figures; the caller chooses the settings
//! and reuses the loaded base between them (each session attaches fresh adapters).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::config::TrainConfig;
use super::files::RunFiles;
use super::session::{Session, TrainData};
use crate::adapters;
use crate::error::{EngineError, Result};
use crate::models::Model;

/// Steps a rate is the median of, at the least.
pub const MIN_MEASURED_STEPS: u64 = 3;

/// What one setting measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SettingFigures {
    /// Warm-up steps (trained, not measured) and measured steps.
    pub warmup_steps: u64,
    pub steps: u64,
    /// Trained (loss-bearing) tokens of the measured steps.
    pub trained_tokens: u64,
    /// Medians over the measured steps of each step's trained tokens over its time, and of
    /// one over its time.
    pub tokens_per_second: f64,
    pub steps_per_second: f64,
    /// MLX's peak memory over the session (weights, adapters, optimizer, activations), bytes.
    pub peak_memory: u64,
    /// The base's weights in memory (adapters not counted), bytes.
    pub weight_bytes: u64,
    /// Training loss of the first and of the last step.
    pub first_loss: f64,
    pub last_loss: f64,
    /// Validation loss after the warm-up and measured steps.
    pub val_loss: f64,
    /// Trainable parameters (the adapters).
    pub trainable_parameters: usize,
}

/// Trains `config` on `lm` for `warmup` steps and then `steps` measured ones (its `iters`,
/// evaluation and checkpoint settings are replaced), writing the session's files in `dir`,
/// and measures the validation loss at the end. The adapters are removed afterwards.
pub fn bench_setting(
    lm: &mut Model,
    data: &TrainData<'_>,
    config: &TrainConfig,
    warmup: u64,
    steps: u64,
    dir: &Path,
) -> Result<SettingFigures> {
    if steps < MIN_MEASURED_STEPS {
        return Err(EngineError::InvalidRequest(format!(
            "a benchmark measures at least {MIN_MEASURED_STEPS} steps (its rates are medians), \
             not {steps}"
        )));
    }
    if data.valid.is_none_or(|v| v.is_empty()) {
        return Err(EngineError::InvalidRequest(
            "a training benchmark needs a validation split for its loss".into(),
        ));
    }
    adapters::remove(lm);
    let weight_bytes = lm.nbytes() as u64;
    let total = warmup + steps;
    let config = TrainConfig {
        iters: Some(total),
        epochs: None,
        steps_per_eval: total + 1,
        steps_per_report: total + 1,
        save_every: total + 1,
        early_stopping_patience: None,
        probes: Vec::new(),
        ..config.clone()
    };
    let files = RunFiles {
        dir: dir.to_path_buf(),
    };
    let figures = {
        let mut session = Session::start(lm, data, &config, files, false)?;
        let trainable_parameters = session.trainable_parameters();
        let mut measured = Vec::with_capacity(steps as usize);
        let (mut first_loss, mut last_loss, mut peak) = (f64::NAN, f64::NAN, 0);
        while !session.done() {
            let started = Instant::now();
            let step = session.step()?;
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            if step.step == 1 {
                first_loss = step.loss;
            }
            last_loss = step.loss;
            peak = peak.max(step.peak_memory);
            if step.step > warmup {
                measured.push((step.tokens, seconds));
            }
        }
        let (evaluation, ()) = session.evaluate(|_| Ok(()))?;
        SettingFigures {
            warmup_steps: warmup,
            steps,
            trained_tokens: measured.iter().map(|(t, _)| t).sum(),
            tokens_per_second: median(measured.iter().map(|&(t, s)| t as f64 / s)),
            steps_per_second: median(measured.iter().map(|&(_, s)| 1.0 / s)),
            peak_memory: peak,
            weight_bytes,
            first_loss,
            last_loss,
            val_loss: evaluation.val_loss,
            trainable_parameters,
        }
    };
    adapters::set_training(lm, false);
    lm.net_mut().grad_checkpoint = false;
    adapters::remove(lm);
    Ok(figures)
}

/// The median of `values` (the upper one of an even count); NaN when there are none.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use adapt_data::cache::CacheWriter;
    use adapt_data::{TokenCache, Tokenized};

    use super::*;
    use crate::testing::{random_model, tiny_llama_args, F32};

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 3.0);
        assert!(median(std::iter::empty()).is_nan());
    }

    fn split(path: &Path, rows: u32, vocab: u32) -> TokenCache {
        let mut w = CacheWriter::create(path).unwrap();
        for r in 0..rows {
            let tokens: Vec<u32> = (0..24).map(|i| (r * 7 + i * 3) % vocab).collect();
            let mask = (0..24).map(|i| i >= 8).collect();
            w.push(u64::from(r) + 1, &Tokenized { tokens, mask })
                .unwrap();
        }
        w.finish().unwrap();
        TokenCache::open(path).unwrap()
    }

    #[test]
    fn a_setting_is_measured_and_leaves_the_base_bare() {
        let dir = tempfile::tempdir().unwrap();
        let args = tiny_llama_args();
        let vocab = args.vocab_size as u32;
        let mut lm = random_model(&args, 3, None, F32).unwrap();
        let before = lm.nbytes();
        let train = split(&dir.path().join("train.tok"), 8, vocab);
        let valid = split(&dir.path().join("valid.tok"), 2, vocab);
        let data = TrainData {
            train: &train,
            valid: Some(&valid),
            pad_id: 0,
        };
        let config = TrainConfig {
            batch_size: 2,
            num_layers: 2,
            learning_rate: 1e-3,
            ..TrainConfig::default()
        };
        let f = bench_setting(&mut lm, &data, &config, 1, 3, &dir.path().join("run")).unwrap();
        assert_eq!((f.warmup_steps, f.steps), (1, 3));
        assert_eq!(f.trained_tokens, 3 * 2 * 16);
        assert!(f.tokens_per_second > 0.0 && f.steps_per_second > 0.0);
        assert!(f.peak_memory >= f.weight_bytes && f.weight_bytes == before as u64);
        assert!(f.val_loss.is_finite() && f.first_loss.is_finite() && f.last_loss.is_finite());
        assert!(f.trainable_parameters > 0);
        assert_eq!(lm.nbytes(), before, "the adapters are removed");
        let few = bench_setting(&mut lm, &data, &config, 0, 2, dir.path());
        assert!(few.unwrap_err().to_string().contains("at least 3 steps"));
        let no_valid = TrainData {
            valid: None,
            ..data
        };
        let e = bench_setting(&mut lm, &no_valid, &config, 0, 3, dir.path()).unwrap_err();
        assert!(e.to_string().contains("validation split"));
    }
}
