//! `adapt train` (LoRA / DoRA / QLoRA fine-tuning, resumable) and `adapt fuse` (an adapter
//! folded into a model folder). Flags override a configuration file in mlx-lm's keys.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use adapt_api::datasets::{PrepareInputs, SplitRatios};
use adapt_api::{
    read_config_file, FineTuneType, MemoryProfile, OptimizerKind, Precision, RankThroughput,
    ResizeReason, ScheduleIntent, TrainConfig, TrainEvent, TrainStop,
};
use adapt_api::{Adapt, ApiError, TrainProgress, TrainRequest};
use anyhow::{anyhow, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::ModelArg;
use crate::data::ReadArgs;
use crate::output::{human_bytes, human_count, CtrlC};

#[derive(Args)]
pub struct TrainArgs {
    /// Go on with run RUN from its newest checkpoint.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["data", "config"])]
    resume: Option<i64>,
    /// Train a whole request from a JSON file (as --print-request writes it, or the app when
    /// it starts a group of machines).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "config", "resume"])]
    request: Option<PathBuf>,
    /// Print the training request these settings make, as JSON, and exit.
    #[arg(long, conflicts_with_all = ["resume", "request"])]
    print_request: bool,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) settings: TrainSettings,
}

/// The model, the data and the training settings (flags over a configuration file).
#[derive(Args)]
pub struct TrainSettings {
    #[command(flatten)]
    model: ModelArg,
    /// Training data: a CSV, TSV or JSONL file (a tenth goes to validation unless --valid is
    /// given), or a folder in mlx-lm's layout (train.jsonl, valid.jsonl, optional test.jsonl).
    /// Needed unless the command goes on with a run or sweep (--resume) or reads a request.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Validation data.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Share of --data held out for validation when --valid is not given.
    #[arg(long, default_value_t = 0.1)]
    valid_ratio: f64,
    /// A YAML or JSON file with mlx-lm's LoRA keys (and Adapt's); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A name for the run.
    #[arg(long)]
    name: Option<String>,
    /// Also write the finished adapter into this folder (adapters.safetensors and
    /// adapter_config.json, as mlx-lm's --adapter-path); `adapt generate` and `adapt chat` read
    /// it with --adapter-path.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    adapter_path: Option<PathBuf>,
    /// lora or dora.
    #[arg(long)]
    fine_tune_type: Option<String>,
    /// Blocks to adapt, from the last (-1: all) [default: 16].
    #[arg(long, allow_hyphen_values = true)]
    num_layers: Option<i32>,
    /// Adapter rank [default: 8].
    #[arg(long)]
    rank: Option<i32>,
    /// Factor on the adapter's update [default: 20].
    #[arg(long)]
    scale: Option<f32>,
    #[arg(long)]
    dropout: Option<f32>,
    /// Projections to adapt, e.g. q_proj,v_proj [default: all of a block].
    #[arg(long, value_delimiter = ',')]
    keys: Option<Vec<String>>,
    /// adam, adamw or sgd [default: adam].
    #[arg(long)]
    optimizer: Option<String>,
    /// [default: 1e-5]
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Linear warmup steps before the schedule.
    #[arg(long)]
    warmup: Option<u64>,
    /// Cosine decay of the learning rate over the run (after the warmup).
    #[arg(long)]
    cosine: bool,
    /// With --cosine: the lowest learning rate, as a share of --learning-rate.
    #[arg(long, default_value_t = 0.0, requires = "cosine")]
    min_lr_ratio: f64,
    /// [default: 4]
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimizer steps [default: 1000 unless --epochs].
    #[arg(long)]
    iters: Option<u64>,
    /// Passes over the training data.
    #[arg(long, conflicts_with = "iters")]
    epochs: Option<u64>,
    #[arg(long)]
    grad_accumulation_steps: Option<u64>,
    /// Recompute activations in the backward pass: less memory, more compute.
    #[arg(long)]
    grad_checkpoint: bool,
    /// Clip the gradients' global norm.
    #[arg(long)]
    max_grad_norm: Option<f32>,
    /// The most memory training may use, in MiB (default: what is free); the micro-batch
    /// follows it during the run.
    #[arg(long, value_name = "MIB")]
    memory_budget: Option<u64>,
    /// Build each step's batches when it starts instead of ahead on a helper thread.
    #[arg(long)]
    no_prefetch: bool,
    /// The base's weights and the compute in auto (as the backend holds the model), f32, bf16
    /// or f16; adapters and optimizer state stay f32 [default: auto].
    #[arg(long, value_parser = parse_precision)]
    precision: Option<Precision>,
    /// [default: 10]
    #[arg(long)]
    steps_per_report: Option<u64>,
    /// [default: 200]
    #[arg(long)]
    steps_per_eval: Option<u64>,
    /// Validation batches per evaluation, -1 for all [default: 25].
    #[arg(long, allow_hyphen_values = true)]
    val_batches: Option<i64>,
    /// Checkpoint every N steps [default: 100].
    #[arg(long)]
    save_every: Option<u64>,
    /// Stop after this many evaluations without a better validation loss.
    #[arg(long)]
    patience: Option<u64>,
    /// Keep the last adapter rather than the one with the best validation loss.
    #[arg(long)]
    keep_last: bool,
    #[arg(long)]
    seed: Option<u64>,
    /// A prompt answered with the adapter at each evaluation (repeatable).
    #[arg(long)]
    probe: Vec<String>,
    /// Write the run's memory profile (per-step memory, leaks, suggestions) to this JSON file.
    #[arg(long, value_name = "FILE")]
    profile_memory: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
}

impl TrainSettings {
    /// The data's files: a folder in mlx-lm's layout, or a file (with --valid, or a share held
    /// out by --valid-ratio).
    fn inputs(&self, data: PathBuf, seed: u64) -> Result<PrepareInputs> {
        if data.is_dir() {
            if self.valid.is_some() {
                return Err(anyhow!(
                    "--valid: {} is a data folder, whose valid.jsonl is the validation data",
                    data.display()
                ));
            }
            return Ok(PrepareInputs::from_folder(&data, seed).map_err(ApiError::from)?);
        }
        Ok(PrepareInputs {
            train: data,
            valid: self.valid.clone(),
            test: None,
            ratios: SplitRatios {
                valid: if self.valid.is_some() {
                    0.0
                } else {
                    self.valid_ratio
                },
                test: 0.0,
                seed,
            },
        })
    }

    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => read_config_file(path)?,
            None => TrainConfig::default(),
        };
        if let Some(t) = &self.fine_tune_type {
            c.fine_tune_type = match t.as_str() {
                "lora" => FineTuneType::Lora,
                "dora" => FineTuneType::Dora,
                other => return Err(anyhow!("--fine-tune-type {other}: use lora or dora")),
            };
        }
        if let Some(o) = &self.optimizer {
            c.optimizer = match o.as_str() {
                "adam" => OptimizerKind::Adam,
                "adamw" => OptimizerKind::AdamW,
                "sgd" => OptimizerKind::Sgd,
                other => return Err(anyhow!("--optimizer {other}: use adam, adamw or sgd")),
            };
        }
        macro_rules! set {
            ($($field:ident = $value:expr),* $(,)?) => {
                $(if let Some(v) = $value { c.$field = v; })*
            };
        }
        set!(
            num_layers = self.num_layers,
            learning_rate = self.learning_rate,
            batch_size = self.batch_size,
            grad_accumulation_steps = self.grad_accumulation_steps,
            steps_per_report = self.steps_per_report,
            steps_per_eval = self.steps_per_eval,
            val_batches = self.val_batches,
            save_every = self.save_every,
            seed = self.seed,
        );
        if let Some(n) = self.read.max_seq_length {
            c.max_seq_length = n as usize;
        }
        if let Some(r) = self.rank {
            c.lora_parameters.rank = r;
        }
        if let Some(s) = self.scale {
            c.lora_parameters.scale = s;
        }
        if let Some(d) = self.dropout {
            c.lora_parameters.dropout = d;
        }
        if self.keys.is_some() {
            c.lora_parameters.keys = self.keys.clone();
        }
        if self.iters.is_some() {
            (c.iters, c.epochs) = (self.iters, None);
        }
        if self.epochs.is_some() {
            (c.iters, c.epochs) = (None, self.epochs);
        }
        c.max_grad_norm = self.max_grad_norm.or(c.max_grad_norm);
        if let Some(mib) = self.memory_budget {
            c.memory_budget = Some(mib << 20);
        }
        if self.no_prefetch {
            c.prefetch = false;
        }
        if let Some(p) = self.precision {
            c.precision = p;
        }
        c.early_stopping_patience = self.patience.or(c.early_stopping_patience);
        if self.grad_checkpoint {
            c.grad_checkpoint = true;
        }
        if self.keep_last {
            c.keep_best = false;
        }
        c.probes.extend(self.probe.iter().cloned());
        if self.cosine || self.warmup.is_some() {
            // An intent: the run sizes the decay once it knows its step count.
            let warmup = self.warmup.unwrap_or(0);
            c.lr_schedule = None;
            c.schedule = Some(match self.cosine {
                true => ScheduleIntent::Cosine {
                    warmup,
                    min_ratio: self.min_lr_ratio,
                },
                false => ScheduleIntent::Constant { warmup },
            });
        }
        c.validate("flags").map_err(adapt_api::ApiError::from)?;
        Ok(c)
    }

    /// The training request these flags describe.
    pub(crate) fn request(&self, adapt: &Adapt) -> Result<TrainRequest> {
        let config = self.config()?;
        let mut data_options = self.read.options()?;
        data_options.max_seq_length = config.max_seq_length as u32;
        let Some(data) = self.data.clone() else {
            return Err(anyhow!(
                "--data is required: a CSV, TSV or JSONL file, or an mlx-lm data folder \
                 (or --resume to go on with an earlier one)"
            ));
        };
        Ok(TrainRequest {
            model: self.model.path(adapt),
            data: self.inputs(data, config.seed)?,
            data_options,
            config,
            name: self.name.clone(),
            // A quantized model trains as it is stored either way.
            qlora: false,
            adapter_path: self.adapter_path.clone(),
        })
    }
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse()
}

/// A rank other than 0 of a group (`adapt launch`): trains rank 0's run beside it.
fn follow(args: &TrainArgs, rank: usize, size: usize) -> Result<()> {
    let adapt = crate::output::start()?;
    eprintln!("Rank {rank} of {size}: training rank 0's run beside it; rank 0 writes the files.");
    let mut view = View::new(args.json, None);
    let outcome = adapt.follow_training(|p| view.show(p))?;
    view.done();
    eprintln!(
        "Rank {rank}: {} steps, final training loss {}.",
        outcome.steps,
        outcome
            .final_train_loss
            .map_or("-".to_string(), |l| format!("{l:.4}"))
    );
    Ok(())
}

pub fn train(args: &TrainArgs) -> Result<()> {
    if let Some((rank, size)) = adapt_api::launch::this_rank()?.filter(|(r, _)| *r > 0) {
        return follow(args, rank, size);
    }
    let adapt = crate::output::start()?;
    if args.print_request {
        println!(
            "{}",
            serde_json::to_string_pretty(&args.settings.request(&adapt)?)?
        );
        return Ok(());
    }
    let (tx, rx) = mpsc::channel();
    let on_progress = move |p: &TrainProgress| {
        let _ = tx.send(p.clone());
    };
    let job = match args.resume {
        Some(run) => {
            eprintln!("Resuming run {run} from its newest checkpoint …");
            adapt.resume_training(run, on_progress)?
        }
        None => {
            let request = match &args.request {
                Some(file) => adapt_api::read_request(file)?,
                None => args.settings.request(&adapt)?,
            };
            adapt.start_training(request, on_progress)?
        }
    };
    let run_id = job.run_id();
    eprintln!(
        "Run {run_id} (job {}); Ctrl-C saves a checkpoint and stops.",
        job.job_id()
    );
    let ctrl_c = CtrlC::install();
    ctrl_c.arm();
    let mut view = View::new(args.json, args.settings.profile_memory.clone());
    let mut asked = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(p) => view.show(&p),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if ctrl_c.pressed() && !asked {
            asked = true;
            view.line("Stopping: saving a checkpoint after this step …");
            job.cancel();
        }
    }
    ctrl_c.disarm();
    view.done();
    let summary = job.wait()?;
    let o = &summary.outcome;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    match o.stop {
        TrainStop::Cancelled => {
            println!(
                "Stopped at step {} of {}; resume with: adapt train --resume {run_id}",
                o.steps, o.total_steps
            );
        }
        stop => {
            let how = if stop == TrainStop::EarlyStopped {
                "Stopped early (validation loss stopped improving)"
            } else {
                "Finished"
            };
            println!(
                "{how} after {} steps in {:.0} s: {} trained tokens, peak memory {}",
                o.steps,
                o.seconds,
                human_count(o.trained_tokens as f64),
                human_bytes(o.peak_memory)
            );
            if let (Some(v), Some(s)) = (o.best_val_loss, o.best_step) {
                println!("Best validation loss {v:.3} at step {s}");
            }
            println!("Adapter: {}", o.adapter_dir.display());
            if let Some(dir) = &args.settings.adapter_path {
                println!("Adapter also in: {}", dir.display());
            }
            println!(
                "Try it: adapt chat --adapter {run_id}   ·   fuse it: adapt fuse --adapter {run_id} --out DIR"
            );
        }
    }
    Ok(())
}

/// What the person sees: a progress bar on a terminal, report lines always.
struct View {
    json: bool,
    bar: Option<ProgressBar>,
    /// Where the memory profile goes.
    profile: Option<PathBuf>,
}

impl View {
    fn new(json: bool, profile: Option<PathBuf>) -> View {
        View {
            json,
            bar: None,
            profile,
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn show(&mut self, p: &TrainProgress) {
        if let (TrainProgress::Engine(TrainEvent::MemoryProfile(m)), Some(path)) =
            (p, &self.profile)
        {
            let written = serde_json::to_vec_pretty(m)
                .map_err(|e| e.to_string())
                .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
            match written {
                Ok(()) => self.line(&format!("Memory profile: {}", path.display())),
                Err(e) => self.line(&format!(
                    "Memory profile: cannot write {}: {e}",
                    path.display()
                )),
            }
        }
        if self.json {
            if let TrainProgress::Engine(e) = p {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
            }
            return;
        }
        match p {
            TrainProgress::Preparing(_) => {}
            TrainProgress::Prepared {
                train,
                valid,
                cached,
            } => self.line(&format!(
                "Data: {train} training and {valid} validation examples{}",
                if *cached { " (cached)" } else { "" }
            )),
            TrainProgress::Loading => self.line("Loading the model …"),
            TrainProgress::Engine(e) => self.engine(e),
            // The run's id is printed when it starts; the summary comes from the job's
            // result, printed after it ends.
            TrainProgress::Run { .. } | TrainProgress::Ended(_) => {}
        }
    }

    fn engine(&mut self, e: &TrainEvent) {
        match e {
            TrainEvent::Started {
                total_steps,
                resumed_from,
                trainable_parameters,
                memory,
                batch_size_note,
                ..
            } => {
                self.line(&format!(
                    "Training {} adapter parameters for {total_steps} steps{}; estimated peak memory {} of {} available",
                    human_count(*trainable_parameters as f64),
                    resumed_from.map(|s| format!(" from step {s}")).unwrap_or_default(),
                    human_bytes(memory.total),
                    human_bytes(memory.budget)
                ));
                if let Some(note) = batch_size_note {
                    self.line(&format!("Memory: {note}"));
                }
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::with_draw_target(
                        Some(*total_steps),
                        ProgressDrawTarget::stderr(),
                    );
                    bar.set_style(
                        ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg} · ETA {eta}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_position(resumed_from.unwrap_or(0));
                    self.bar = Some(bar);
                }
            }
            TrainEvent::Calibrated {
                estimated,
                measured,
            } => self.line(&format!(
                "Memory: measured peak {} after 3 steps (estimated {})",
                human_bytes(*measured),
                human_bytes(*estimated)
            )),
            TrainEvent::Report(r) => {
                if let Some(bar) = &self.bar {
                    bar.set_position(r.step);
                    bar.set_message(format!(
                        "loss {:.3} · {:.0} tok/s",
                        r.train_loss, r.tokens_per_second
                    ));
                }
                self.line(&format!(
                    "step {:>5}/{}: train loss {:.3}, lr {:.2e}, {:.2} it/s, {:.0} tok/s, {} trained tokens, peak {}",
                    r.step,
                    r.total_steps,
                    r.train_loss,
                    r.learning_rate,
                    r.iterations_per_second,
                    r.tokens_per_second,
                    r.trained_tokens,
                    human_bytes(r.peak_memory)
                ));
                if !r.ranks.is_empty() {
                    self.line(&format!("  ranks: {}", rank_figures(&r.ranks)));
                }
            }
            TrainEvent::Evaluated {
                step,
                val_loss,
                improved,
                probes,
            } => {
                self.line(&format!(
                    "step {step:>5}: validation loss {val_loss:.3}{}",
                    if *improved { " (best so far)" } else { "" }
                ));
                for p in probes {
                    self.line(&format!("  probe: {} → {}", p.prompt, p.answer));
                }
            }
            TrainEvent::BatchResized(r) => self.line(&format!(
                "Memory: from step {} passing {} rows at a time instead of {} ({}: peak {} against \
                 a budget of {}); the batch is unchanged",
                r.step,
                r.to,
                r.from,
                match r.reason {
                    ResizeReason::OverBudget => "the step went over the budget and was retried",
                    ResizeReason::AllocationFailed => "MLX could not allocate; the step was retried",
                    ResizeReason::NearBudget => "the step came near the budget",
                    ResizeReason::Room => "there was room for more",
                },
                human_bytes(r.peak_memory),
                human_bytes(r.budget)
            )),
            TrainEvent::Memory(_) => {}
            TrainEvent::MemoryProfile(m) => self.memory_summary(m),
            TrainEvent::Checkpoint { step, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("checkpoint at step {step}"));
                }
            }
        }
    }

    fn memory_summary(&self, m: &MemoryProfile) {
        self.line(&format!(
            "Memory: peak {} (estimated {}) over {} steps",
            human_bytes(m.peak),
            human_bytes(m.estimate.total),
            m.samples.len()
        ));
        for l in &m.leaks {
            self.line(&format!(
                "  possible leak: {} more held after steps {}–{} at {} rows × {} tokens",
                human_bytes(l.growth),
                l.first_step,
                l.last_step,
                l.micro_batch_size,
                l.width
            ));
        }
        for s in m.suggestions.iter().take(3) {
            self.line(&format!(
                "  saves ~{}: {} ({})",
                human_bytes(s.saves),
                s.advice,
                s.setting
            ));
        }
    }

    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[derive(Args)]
pub struct FuseArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The adapter: a run id (`adapt runs list`) or an adapter folder (ours or mlx-lm's).
    #[arg(long)]
    adapter: String,
    /// The model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Write dense weights even where the base is quantized.
    #[arg(long)]
    dequantize: bool,
}

pub fn fuse(args: &FuseArgs) -> Result<()> {
    let adapt = crate::output::start()?;
    let adapter = adapt.resolve_adapter(&args.adapter)?;
    let src = args.model.path(&adapt);
    let report = adapt.fuse_adapter(&src, &adapter, &args.out, args.dequantize, |s| {
        eprintln!("{s} …")
    })?;
    println!(
        "Fused {} projections of {} into {} in {:.1} s",
        report.modules,
        report.source.display(),
        report.output.display(),
        report.seconds
    );
    Ok(())
}

/// Each rank's own speed, compute and exchange time, e.g.
/// `0: 412 tok/s (compute 1.21 s, exchange 0.08 s) · 1: …`.
fn rank_figures(ranks: &[RankThroughput]) -> String {
    ranks
        .iter()
        .map(|r| {
            format!(
                "{}: {:.0} tok/s (compute {:.2} s, exchange {:.2} s)",
                r.rank, r.tokens_per_second, r.compute_seconds, r.exchange_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ranks_figures_are_one_line() {
        let rank = |rank, tokens_per_second, compute_seconds| RankThroughput {
            rank,
            trained_tokens: 100,
            compute_seconds,
            exchange_seconds: 0.08,
            tokens_per_second,
        };
        assert_eq!(
            rank_figures(&[rank(0, 412.4, 1.214), rank(1, 300.0, 2.0)]),
            "0: 412 tok/s (compute 1.21 s, exchange 0.08 s) · 1: 300 tok/s (compute 2.00 s, \
             exchange 0.08 s)"
        );
    }
}
