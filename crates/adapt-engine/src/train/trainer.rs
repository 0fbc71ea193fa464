//! The training loop: masked cross-entropy over the trained tokens of each batch, gradients
//! of the adapters only, gradient accumulation and clipping, the learning-rate schedule, the
//! optimizer; validation, probe prompts, keep-best and early stopping; checkpoints that make a
//! resumed run take exactly the steps the uninterrupted one would have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use adapt_data::{Batch, BatchConfig, Batcher, Position, TokenCache};
use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::module::{FlattenedModuleParam, ModuleParameters};
use mlx_rs::optimizers::{
    clip_grad_norm, Adam, AdamW, AdamWBuilder, Optimizer, OptimizerState, Sgd, SgdBuilder, State,
};
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use super::adapters::{self, ADAPTERS_FILE, CONFIG_FILE};
use super::checkpoint::{self, replace_file, TrainState, OPTIMIZER_FILE};
use super::config::{OptimizerKind, TrainConfig};
use super::memory::{self, MemoryEstimate};
use super::schedule::Schedule;
use crate::cache::KvCache;
use crate::error::{EngineError, Result};
use crate::generate::{generate, GenerateParams, SequenceCache};
use crate::models::decoder::Decoder;
use crate::models::Model;
use crate::sample::SamplingParams;
use adapt_text::{ChatMessage, ChatTemplate, Tokenizer};

/// The split caches a run trains and validates on.
pub struct TrainData<'a> {
    pub train: &'a TokenCache,
    pub valid: Option<&'a TokenCache>,
    /// Token id written into padding (never trained on).
    pub pad_id: u32,
}

/// Where a run keeps its files: the adapter folder (mlx-lm's layout) with `checkpoints/`.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    pub fn adapters(&self) -> PathBuf {
        self.dir.join(ADAPTERS_FILE)
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join("best_adapters.safetensors")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
}

/// Figures of one report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainReport {
    pub step: u64,
    pub total_steps: u64,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean training loss since the last report.
    pub train_loss: f64,
    pub learning_rate: f64,
    pub tokens_per_second: f64,
    pub iterations_per_second: f64,
    pub trained_tokens: u64,
    /// Bytes.
    pub peak_memory: u64,
    /// Seconds left at the current pace.
    pub eta_seconds: f64,
}

/// A probe prompt's answer at an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ProbeAnswer {
    pub prompt: String,
    pub answer: String,
}

/// What a run streams.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrainEvent {
    Started {
        total_steps: u64,
        resumed_from: Option<u64>,
        trainable_parameters: usize,
        batches_per_epoch: usize,
        memory: MemoryEstimate,
        /// Set when the batch size was lowered to fit in memory.
        batch_size_note: Option<String>,
    },
    /// Measured peak after the first steps, next to the estimate.
    Calibrated {
        estimated: u64,
        measured: u64,
    },
    Report(TrainReport),
    Evaluated {
        step: u64,
        val_loss: f64,
        improved: bool,
        probes: Vec<ProbeAnswer>,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrainStop {
    Finished,
    EarlyStopped,
    Cancelled,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainOutcome {
    pub stop: TrainStop,
    pub steps: u64,
    pub total_steps: u64,
    pub final_train_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// The adapter folder (`adapters.safetensors` is the best or the last adapter).
    pub adapter_dir: PathBuf,
    pub trained_tokens: u64,
    pub seconds: f64,
    pub peak_memory: u64,
    /// Losses of every step, for tests and plots.
    pub losses: Vec<f64>,
}

/// The optimizers a run can use.
enum Opt {
    Adam(Adam),
    AdamW(AdamW),
    Sgd(Sgd),
}

impl Opt {
    fn new(config: &TrainConfig) -> Opt {
        let lr = config.learning_rate as f32;
        let option = |name: &str| config.optimizer_option(name).map(|v| v as f32);
        match config.optimizer {
            OptimizerKind::Adam => Opt::Adam(Adam::new(lr)),
            OptimizerKind::AdamW => {
                let mut b = AdamWBuilder::new(lr);
                if let Some(wd) = option("weight_decay") {
                    b = b.weight_decay(wd);
                }
                Opt::AdamW(b.build().unwrap_or_else(|e| match e {}))
            }
            OptimizerKind::Sgd => {
                let mut b = SgdBuilder::new(lr);
                if let Some(m) = option("momentum") {
                    b = b.momentum(m);
                }
                if let Some(wd) = option("weight_decay") {
                    b = b.weight_decay(wd);
                }
                Opt::Sgd(b.build().unwrap_or_else(|e| match e {}))
            }
        }
    }

    fn set_lr(&mut self, lr: f32) {
        match self {
            Opt::Adam(o) => o.lr = Array::from_f32(lr),
            Opt::AdamW(o) => o.lr = Array::from_f32(lr),
            Opt::Sgd(o) => o.lr = lr,
        }
    }

    fn update(&mut self, net: &mut Decoder, grads: &FlattenedModuleParam) -> Result<()> {
        match self {
            Opt::Adam(o) => o.update(net, grads)?,
            Opt::AdamW(o) => o.update(net, grads)?,
            Opt::Sgd(o) => o.update(net, grads)?,
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<(Rc<str>, Array)>> {
        let flat = match self {
            Opt::Adam(o) => o.state_mut().flatten(),
            Opt::AdamW(o) => o.state_mut().flatten(),
            Opt::Sgd(o) => o.state_mut().flatten(),
        }
        .map_err(|e| Exception::custom(e.to_string()))?;
        Ok(flat.into_iter().map(|(k, v)| (k, v.clone())).collect())
    }

    fn load_state(&mut self, arrays: HashMap<String, Array>) -> Result<()> {
        let bad = |e: String| EngineError::InvalidRequest(format!("optimizer state: {e}"));
        match self {
            Opt::Adam(o) => {
                o.state =
                    State::<(Array, Array)>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
            Opt::AdamW(o) => {
                o.state =
                    State::<(Array, Array)>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
            Opt::Sgd(o) => {
                o.state = State::<Array>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
        }
        Ok(())
    }
}

/// Batch → `(inputs, targets, mask)`: each position predicts the next token; the mask is the
/// batch's loss mask shifted onto the predicted tokens.
fn batch_arrays(batch: &Batch) -> Result<(Array, Array, Array)> {
    let (rows, width) = (batch.rows as i32, batch.width as i32);
    let ids: Vec<i32> = batch.tokens.iter().map(|&t| t as i32).collect();
    let ids = Array::from_slice(&ids, &[rows, width]);
    let mask: Vec<f32> = batch.mask.iter().map(|&m| f32::from(m)).collect();
    let mask = Array::from_slice(&mask, &[rows, width]);
    use mlx_rs::ops::indexing::IndexOp;
    Ok((
        ids.index((.., ..width - 1)),
        ids.index((.., 1..)),
        mask.index((.., 1..)),
    ))
}

/// Mean cross-entropy over the masked positions, and their count.
pub fn masked_loss(
    net: &Decoder,
    inputs: &Array,
    targets: &Array,
    mask: &Array,
) -> std::result::Result<Vec<Array>, Exception> {
    let mut caches: Vec<KvCache> = net
        .model
        .layers
        .iter()
        .map(|_| KvCache::discarding())
        .collect();
    let logits = net.head(&net.hidden(inputs, &mut caches)?)?;
    let logits = logits.as_dtype(Dtype::Float32)?;
    let lse = logits.logsumexp_axis(-1, false)?;
    let picked = logits
        .take_along_axis(targets.expand_dims(-1)?, -1)?
        .squeeze_axes(&[-1])?;
    let ce = lse.subtract(&picked)?.multiply(mask)?;
    let ntoks = mask.sum(None)?;
    Ok(vec![
        ce.sum(None)?
            .divide(mlx_rs::ops::maximum(&ntoks, Array::from_f32(1.0))?)?,
        ntoks,
    ])
}

fn step_seed(seed: u64, step: u64) -> u64 {
    let mut x = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 29)
}

/// How a run talks to its caller.
pub struct Hooks<'a> {
    /// Answers probe prompts (none: probes are skipped).
    pub prober: Option<&'a Prober<'a>>,
    /// Hears every event.
    pub on_event: &'a mut dyn FnMut(&TrainEvent),
    /// Polled before every step; `true` stops the run after a checkpoint.
    pub cancel: &'a dyn Fn() -> bool,
}

/// Answers a probe prompt with the model as it is now.
pub type Prober<'a> = dyn Fn(&Model, &str, usize) -> Result<String> + 'a;

/// A [`Prober`] that renders the prompt as a user turn with `template` (if any) and answers
/// greedily.
pub fn greedy_prober<'a>(
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
) -> impl Fn(&Model, &str, usize) -> Result<String> + 'a {
    move |model, prompt, max_tokens| {
        let messages = [ChatMessage::new("user", prompt)];
        let tokens = match template {
            Some(t) => tokenizer.encode(&t.render(&messages, true)?, false)?,
            None => tokenizer.encode(prompt, true)?,
        };
        let mut cache = SequenceCache::new(model);
        let params = GenerateParams {
            max_tokens,
            sampling: SamplingParams::default(),
            ..GenerateParams::default()
        };
        let out = generate(
            model,
            tokenizer,
            &mut cache,
            &tokens,
            &params,
            &mut |_: &str| true,
        )?;
        Ok(out.text.trim().to_string())
    }
}

/// What a run would take before it starts: its trainable parameters and memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainPlan {
    pub trainable_parameters: usize,
    /// Examples in the training split.
    pub examples: usize,
    /// The longest example, capped at `max_seq_length` (what the estimate assumes).
    pub seq_len: usize,
    /// The estimate at the batch size that fits (`memory.batch_size`).
    pub memory: MemoryEstimate,
    /// Set when the configured batch size would not fit.
    pub batch_size_note: Option<String>,
}

/// Plans a run of `config` on `train` without training: attaches the adapters to count what
/// trains, estimates the memory of one step, then takes the adapters off again. Refuses, as
/// `train` would, when not even a batch of one fits.
pub fn plan(lm: &mut Model, train: &TokenCache, config: &TrainConfig) -> Result<TrainPlan> {
    config.validate("training configuration")?;
    adapters::remove(lm);
    let trainable = adapters::attach(lm, &config.adapter(), config.seed)?;
    let seq_len = longest(train, config);
    let fitted = fit_memory(lm, config, trainable, seq_len);
    adapters::remove(lm);
    let (memory, batch_size_note) = fitted?;
    Ok(TrainPlan {
        trainable_parameters: trainable,
        examples: train.len(),
        seq_len,
        memory,
        batch_size_note,
    })
}

/// The longest training example, capped at the configured length.
fn longest(train: &TokenCache, config: &TrainConfig) -> usize {
    (0..train.len())
        .map(|i| train.length(i))
        .max()
        .unwrap_or(1)
        .min(config.max_seq_length)
}

/// The estimate at the largest batch size up to the configured one that fits (with a note when
/// it is lower), or an error that says what to change.
fn fit_memory(
    lm: &Model,
    config: &TrainConfig,
    trainable: usize,
    seq_len: usize,
) -> Result<(MemoryEstimate, Option<String>)> {
    let budget = memory::budget();
    match memory::fit_batch(lm, config, trainable, seq_len, budget) {
        Ok(e) if e.batch_size == config.batch_size => Ok((e, None)),
        Ok(e) => {
            let full = memory::estimate(lm, config, trainable, config.batch_size, seq_len, budget);
            let note = format!(
                "batch size {} would need about {} MB, more than the {} MB available; using {}",
                config.batch_size,
                full.total >> 20,
                budget >> 20,
                e.batch_size
            );
            Ok((e, Some(note)))
        }
        Err(e) => Err(EngineError::InvalidRequest(format!(
            "training needs about {} MB even with batch size 1 at {} tokens (weights {} MB, \
             activations {} MB, logits {} MB) but about {} MB is available; lower \
             max_seq_length, adapt fewer layers (num_layers), turn on grad_checkpoint, or use a \
             quantized model",
            e.total >> 20,
            e.seq_len,
            e.weights >> 20,
            e.activations >> 20,
            e.logits >> 20,
            e.budget >> 20
        ))),
    }
}

/// Trains adapters on `model` with `data`, writing into `files.dir`. With `resume`, goes on from
/// the newest checkpoint there (the configuration must be the one the run started with).
/// `cancel` is polled before every step; on cancel a checkpoint is written first.
pub fn train(
    lm: &mut Model,
    data: &TrainData<'_>,
    config: &TrainConfig,
    files: &RunFiles,
    resume: bool,
    hooks: Hooks<'_>,
) -> Result<TrainOutcome> {
    let Hooks {
        prober,
        on_event,
        cancel,
    } = hooks;
    config.validate("training configuration")?;
    std::fs::create_dir_all(files.checkpoints()).map_err(|e| EngineError::Write {
        path: files.checkpoints(),
        message: e.to_string(),
    })?;
    adapters::remove(lm);
    let adapter_config = config.adapter();
    let trainable = adapters::attach(lm, &adapter_config, config.seed)?;

    let resumed = if resume {
        let Some((dir, state)) = checkpoint::latest(&files.checkpoints())? else {
            return Err(EngineError::InvalidRequest(format!(
                "{}: no complete checkpoint to resume from",
                files.checkpoints().display()
            )));
        };
        adapters::load_weights(lm, &dir.join(ADAPTERS_FILE))?;
        Some((dir, state))
    } else {
        let mut json = serde_json::to_value(config).unwrap_or_default();
        if let Some(map) = json.as_object_mut() {
            map.insert(
                "lora_parameters".into(),
                serde_json::to_value(&adapter_config.lora_parameters).unwrap_or_default(),
            );
        }
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        replace_file(&files.config(), |p| {
            std::fs::write(p, &text).map_err(|e| EngineError::Write {
                path: p.to_path_buf(),
                message: e.to_string(),
            })
        })?;
        None
    };

    // Memory: lower the batch size until the estimate fits, or refuse.
    let seq_len = longest(data.train, config);
    let (estimate, batch_size_note) = match &resumed {
        // A resumed run keeps the batches it started with.
        Some((_, state)) => {
            let batch = state.batch_size.unwrap_or(config.batch_size);
            let e = memory::estimate(&*lm, config, trainable, batch, seq_len, memory::budget());
            (e, None)
        }
        None => fit_memory(lm, config, trainable, seq_len)?,
    };
    let mut run_config = config.clone();
    run_config.batch_size = estimate.batch_size;

    let batch_config = |seed| BatchConfig {
        batch_size: run_config.batch_size,
        max_seq_length: run_config.max_seq_length,
        seed,
        pad_id: data.pad_id,
    };
    let train_batches = Batcher::new(data.train, batch_config(config.seed))
        .map_err(|e| EngineError::InvalidRequest(format!("training split: {e}")))?;
    let valid_batches = match data.valid {
        Some(v) if !v.is_empty() => Some(
            Batcher::new(v, batch_config(config.seed))
                .map_err(|e| EngineError::InvalidRequest(format!("validation split: {e}")))?,
        ),
        _ => None,
    };
    let per_epoch = train_batches.batches_per_epoch() as u64;
    let steps_per_epoch = per_epoch.div_ceil(config.grad_accumulation_steps);
    let total_steps = match (config.iters, config.epochs) {
        (Some(iters), _) => iters,
        (None, Some(epochs)) => epochs * steps_per_epoch,
        (None, None) => 1000,
    };

    let mut opt = Opt::new(config);
    let mut state = match &resumed {
        Some((dir, state)) => {
            let arrays = Array::load_safetensors(dir.join(OPTIMIZER_FILE)).map_err(|e| {
                EngineError::InvalidRequest(format!("{}: {e}", dir.join(OPTIMIZER_FILE).display()))
            })?;
            opt.load_state(arrays)?;
            state.clone()
        }
        None => TrainState {
            step: 0,
            position: Position::default(),
            trained_tokens: 0,
            seed: config.seed,
            best_val_loss: None,
            best_step: None,
            evals_since_best: 0,
            seconds: 0.0,
            batch_size: Some(estimate.batch_size),
        },
    };
    let schedule = Schedule::new(config.learning_rate, config.lr_schedule.as_ref())
        .map_err(EngineError::InvalidRequest)?;
    on_event(&TrainEvent::Started {
        total_steps,
        resumed_from: resumed.as_ref().map(|(_, s)| s.step),
        trainable_parameters: trainable,
        batches_per_epoch: per_epoch as usize,
        memory: estimate.clone(),
        batch_size_note,
    });

    let mut value_and_grad =
        mlx_rs::nn::value_and_grad(|net: &mut Decoder, (x, y, m): (&Array, &Array, &Array)| {
            masked_loss(net, x, y, m)
        });
    mlx_rs::memory::reset_peak_memory()?;
    let session_start = Instant::now();
    let seconds_before = state.seconds;
    let mut losses = Vec::new();
    let mut window = (0.0f64, 0u64, 0u64, Instant::now()); // loss sum, steps, tokens, since
    let mut last_loss = None;
    let mut stop = TrainStop::Finished;
    // Generation (probes) resets MLX's peak counter, so the run keeps its own.
    let mut run_peak = 0u64;
    let ckpt = |lm: &Model, opt: &mut Opt, state: &TrainState| -> Result<PathBuf> {
        let opt_state = opt.state()?;
        checkpoint::write(&files.checkpoints(), state, |dir| {
            adapters::save_weights(&*lm, &dir.join(ADAPTERS_FILE))?;
            let refs: Vec<(&str, &Array)> =
                opt_state.iter().map(|(k, v)| (k.as_ref(), v)).collect();
            Array::save_safetensors(refs, None, dir.join(OPTIMIZER_FILE)).map_err(|e| {
                EngineError::Write {
                    path: dir.join(OPTIMIZER_FILE),
                    message: e.to_string(),
                }
            })
        })
    };
    adapters::set_training(lm, true);
    lm.net_mut().grad_checkpoint = config.grad_checkpoint;
    while state.step < total_steps {
        if cancel() {
            stop = TrainStop::Cancelled;
            break;
        }
        mlx_rs::random::seed(step_seed(config.seed, state.step))?;
        let lr = schedule.at(state.step);
        opt.set_lr(lr as f32);
        let mut grads: Option<FlattenedModuleParam> = None;
        let (mut loss_sum, mut toks_sum) = (0.0f64, 0u64);
        for _ in 0..config.grad_accumulation_steps {
            let batch = train_batches.next_batch(&mut state.position);
            let (x, y, m) = batch_arrays(&batch)?;
            let (values, g) = value_and_grad(lm.net_mut(), (&x, &y, &m))?;
            mlx_rs::transforms::eval(values.iter().chain(g.values()))?;
            let toks = values[1].item_cast::<f32>() as u64;
            loss_sum += values[0].item_cast::<f32>() as f64 * toks as f64;
            toks_sum += toks;
            grads = Some(match grads {
                None => g,
                Some(acc) => acc
                    .into_iter()
                    .map(|(k, a)| {
                        let sum = a.add(&g[&k])?;
                        Ok((k, sum))
                    })
                    .collect::<std::result::Result<_, Exception>>()?,
            });
        }
        let mut grads = grads.unwrap_or_default();
        if config.grad_accumulation_steps > 1 {
            let n = Array::from_f32(config.grad_accumulation_steps as f32);
            for g in grads.values_mut() {
                *g = g.divide(&n)?;
            }
        }
        if let Some(max) = config.max_grad_norm {
            let (clipped, _) = clip_grad_norm(&grads, max)?;
            grads = clipped
                .into_iter()
                .map(|(k, v)| (k, v.into_owned()))
                .collect();
        }
        opt.update(lm.net_mut(), &grads)?;
        let trainable_now: Vec<Array> = lm
            .net()
            .trainable_parameters()
            .flatten()
            .values()
            .map(|a| (*a).clone())
            .collect();
        let opt_state = opt.state()?;
        mlx_rs::transforms::eval(trainable_now.iter().chain(opt_state.iter().map(|(_, a)| a)))?;
        let loss = loss_sum / toks_sum.max(1) as f64;
        if !loss.is_finite() {
            return Err(EngineError::InvalidRequest(format!(
                "the training loss became {loss} at step {}; lower learning_rate or set \
                 max_grad_norm",
                state.step + 1
            )));
        }
        state.step += 1;
        state.trained_tokens += toks_sum;
        losses.push(loss);
        last_loss = Some(loss);
        window.0 += loss;
        window.1 += 1;
        window.2 += toks_sum;
        let peak = mlx_rs::memory::peak_memory()? as u64;
        run_peak = run_peak.max(peak);
        if state.step == 3.min(total_steps) {
            on_event(&TrainEvent::Calibrated {
                estimated: estimate.total,
                measured: peak,
            });
        }
        let last = state.step == total_steps;
        if state.step % config.steps_per_report == 0 || last {
            let secs = window.3.elapsed().as_secs_f64().max(1e-9);
            let elapsed = session_start.elapsed().as_secs_f64();
            let done_here = state.step - resumed.as_ref().map_or(0, |(_, s)| s.step);
            on_event(&TrainEvent::Report(TrainReport {
                step: state.step,
                total_steps,
                epoch: state.position.epoch as f64
                    + state.position.step as f64 / per_epoch.max(1) as f64,
                train_loss: window.0 / window.1 as f64,
                learning_rate: lr,
                tokens_per_second: window.2 as f64 / secs,
                iterations_per_second: window.1 as f64 / secs,
                trained_tokens: state.trained_tokens,
                peak_memory: peak,
                eta_seconds: elapsed / done_here.max(1) as f64 * (total_steps - state.step) as f64,
            }));
            window = (0.0, 0, 0, Instant::now());
        }
        if let Some(valid) = &valid_batches {
            if state.step % config.steps_per_eval == 0 || last {
                adapters::set_training(lm, false);
                let val_loss = evaluate(lm, valid, config.val_batches)?;
                let probes = probe(lm, prober, config)?;
                adapters::set_training(lm, true);
                let improved = state.best_val_loss.is_none_or(|b| val_loss < b);
                if improved {
                    state.best_val_loss = Some(val_loss);
                    state.best_step = Some(state.step);
                    state.evals_since_best = 0;
                    replace_file(&files.best(), |p| adapters::save_weights(lm, p))?;
                } else {
                    state.evals_since_best += 1;
                }
                on_event(&TrainEvent::Evaluated {
                    step: state.step,
                    val_loss,
                    improved,
                    probes,
                });
                // Evaluation time does not count against training speed.
                window.3 = Instant::now();
                if config
                    .early_stopping_patience
                    .is_some_and(|p| state.evals_since_best >= p)
                {
                    stop = TrainStop::EarlyStopped;
                }
            }
        }
        state.seconds = seconds_before + session_start.elapsed().as_secs_f64();
        if state.step % config.save_every == 0 || last || stop == TrainStop::EarlyStopped {
            let path = ckpt(lm, &mut opt, &state)?;
            on_event(&TrainEvent::Checkpoint {
                step: state.step,
                path,
            });
        }
        if stop == TrainStop::EarlyStopped {
            break;
        }
    }
    adapters::set_training(lm, false);
    lm.net_mut().grad_checkpoint = false;
    state.seconds = seconds_before + session_start.elapsed().as_secs_f64();
    let started_at = resumed.as_ref().map_or(0, |(_, s)| s.step);
    if stop == TrainStop::Cancelled && state.step > started_at {
        let path = ckpt(lm, &mut opt, &state)?;
        on_event(&TrainEvent::Checkpoint {
            step: state.step,
            path,
        });
    }
    if stop != TrainStop::Cancelled {
        // The run's adapter: the best one when validation ran and keep_best is on.
        let best = files.best();
        if config.keep_best && best.exists() {
            replace_file(&files.adapters(), |p| {
                std::fs::copy(&best, p)
                    .map(|_| ())
                    .map_err(|e| EngineError::Write {
                        path: p.to_path_buf(),
                        message: e.to_string(),
                    })
            })?;
        } else {
            replace_file(&files.adapters(), |p| adapters::save_weights(lm, p))?;
        }
    }
    Ok(TrainOutcome {
        stop,
        steps: state.step,
        total_steps,
        final_train_loss: last_loss,
        best_val_loss: state.best_val_loss,
        best_step: state.best_step,
        adapter_dir: files.dir.clone(),
        trained_tokens: state.trained_tokens,
        seconds: state.seconds,
        peak_memory: run_peak,
        losses,
    })
}

/// Mean validation loss over the first `batches` batches (`-1`: all), weighted by tokens.
fn evaluate(lm: &Model, valid: &Batcher<'_>, batches: i64) -> Result<f64> {
    let n = if batches < 0 {
        valid.batches_per_epoch()
    } else {
        (batches as usize).min(valid.batches_per_epoch())
    };
    let (mut sum, mut toks) = (0.0f64, 0.0f64);
    for step in 0..n {
        let batch = valid.batch_at(Position {
            epoch: 0,
            step: step as u64,
        });
        let (x, y, m) = batch_arrays(&batch)?;
        let v = masked_loss(lm.net(), &x, &y, &m)?;
        mlx_rs::transforms::eval(&v)?;
        let t = v[1].item_cast::<f32>() as f64;
        sum += v[0].item_cast::<f32>() as f64 * t;
        toks += t;
    }
    Ok(sum / toks.max(1.0))
}

/// Answers to the probe prompts with the current adapter.
fn probe(
    model: &Model,
    prober: Option<&Prober<'_>>,
    config: &TrainConfig,
) -> Result<Vec<ProbeAnswer>> {
    let Some(prober) = prober else {
        return Ok(Vec::new());
    };
    config
        .probes
        .iter()
        .map(|prompt| {
            Ok(ProbeAnswer {
                prompt: prompt.clone(),
                answer: prober(model, prompt, config.probe_max_tokens)?,
            })
        })
        .collect()
}

/// Where the run folder `dir` stands: its newest complete checkpoint's state.
pub fn run_state(dir: &Path) -> Result<Option<TrainState>> {
    let files = RunFiles {
        dir: dir.to_path_buf(),
    };
    Ok(checkpoint::latest(&files.checkpoints())?.map(|(_, s)| s))
}
