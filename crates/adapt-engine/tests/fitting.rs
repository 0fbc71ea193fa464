//! Training that fits itself to the machine, on a tiny random model.
//!
//! A batch size that follows memory during the run: a memory budget that the short batches fit
//! and the long ones do not makes the run take its long steps in smaller micro-batches — found
//! out mid-run, retried, and recorded — and the run finishes with the losses of the run that
//! never shrank; a run stopped after the shrink resumes at the smaller micro-batch and still
//! takes the same steps. Batches prepared ahead on a helper thread give the same steps as
//! batches built inline, across a resume.

use std::path::Path;
use std::sync::Mutex;

use adapt_data::cache::CacheWriter;
use adapt_data::render::Tokenized;
use adapt_data::{BatchConfig, Batcher, Position, TokenCache};
use adapt_engine::models::ModelArgs;
use adapt_engine::testing::{random_model, tiny_llama_args, F32};
use adapt_engine::train::checkpoint;
use adapt_engine::train::{
    plan, train, BatchResize, Hooks, MemoryProfile, MemorySample, ResizeReason, RunFiles,
    TrainConfig, TrainData, TrainEvent, TrainStop,
};

/// MLX's memory counters are the process's: one test at a time.
static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

const SHORT: usize = 12;
const LONG: usize = 4;
const BATCH: usize = 4;

/// Twelve short sequences and four long ones: three short batches and one long per epoch.
fn data(path: &Path) -> TokenCache {
    let mut w = CacheWriter::create(path).unwrap();
    for i in 0..SHORT + LONG {
        let len = if i < SHORT { 14 + i % 3 } else { 180 + i };
        let tokens: Vec<u32> = (0..len as u32)
            .map(|j| 10 + (i as u32 * 7 + j) % 64)
            .collect();
        let mask = (0..len).map(|j| j > 0).collect();
        w.push(i as u64 + 1, &Tokenized { tokens, mask }).unwrap();
    }
    w.finish().unwrap();
    TokenCache::open(path).unwrap()
}

/// A wider vocabulary than the usual tiny model, so logits dominate a long batch's memory.
fn args() -> ModelArgs {
    ModelArgs {
        vocab_size: 4096,
        ..tiny_llama_args()
    }
}

fn config(seed: u64) -> TrainConfig {
    let mut c = TrainConfig {
        iters: Some(10),
        learning_rate: 1e-3,
        batch_size: BATCH,
        max_seq_length: 256,
        steps_per_report: 1,
        steps_per_eval: 1000,
        save_every: 1000,
        seed,
        ..TrainConfig::default()
    };
    c.lora_parameters.rank = 4;
    c
}

struct Run {
    losses: Vec<f64>,
    stop: TrainStop,
    /// The run's peak after each step (reports every step).
    peaks: Vec<u64>,
    resizes: Vec<BatchResize>,
    samples: Vec<MemorySample>,
    profile: Option<MemoryProfile>,
}

fn run(
    dir: &Path,
    data: &TokenCache,
    c: &TrainConfig,
    resume: bool,
    stop_after: Option<usize>,
) -> Run {
    let mut model = random_model(&args(), 11, None, F32).unwrap();
    let d = TrainData {
        train: data,
        valid: None,
        pad_id: 0,
    };
    let files = RunFiles {
        dir: dir.join("run"),
    };
    let mut events = Vec::new();
    let polls = std::cell::Cell::new(0usize);
    let hooks = Hooks {
        prober: None,
        on_event: &mut |e| events.push(e.clone()),
        cancel: &|| {
            polls.set(polls.get() + 1);
            stop_after.is_some_and(|n| polls.get() > n)
        },
    };
    let outcome = train(&mut model, &d, c, &files, resume, hooks).unwrap();
    Run {
        losses: outcome.losses,
        stop: outcome.stop,
        peaks: events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::Report(r) => Some(r.peak_memory),
                _ => None,
            })
            .collect(),
        resizes: events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::BatchResized(r) => Some(r.clone()),
                _ => None,
            })
            .collect(),
        samples: events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::Memory(m) => Some(m.clone()),
                _ => None,
            })
            .collect(),
        profile: events.iter().find_map(|e| match e {
            TrainEvent::MemoryProfile(p) => Some(p.clone()),
            _ => None,
        }),
    }
}

fn assert_same_losses(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() < 1e-4 * x.abs().max(1.0),
            "step {}: {x} vs {y}",
            i + 1
        );
    }
}

#[test]
fn a_budget_that_long_batches_overrun_shrinks_the_micro_batch_mid_run() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let cache = data(&dir.path().join("train.bin"));
    // A seed whose first epoch opens with a short batch, so the long one comes mid-run.
    let long_step = |seed: u64| {
        let b = Batcher::new(
            &cache,
            BatchConfig {
                batch_size: BATCH,
                max_seq_length: 256,
                seed,
                pad_id: 0,
            },
        )
        .unwrap();
        (0..4u64)
            .find(|&s| b.batch_at(Position { epoch: 0, step: s }).width > 64)
            .unwrap()
    };
    let seed = (0..64).find(|&s| long_step(s) >= 1).unwrap();
    let first_long = long_step(seed) + 1;
    let c = config(seed);

    let whole = run(&dir.path().join("whole"), &cache, &c, false, None);
    assert_eq!(whole.stop, TrainStop::Finished);
    assert!(whole.resizes.is_empty(), "{:?}", whole.resizes);
    // The run's peak before the first long step is the short batches'; at it, the long one's.
    // The preflight estimate of a long batch falls short of what it measures: the budget
    // between them lets the run start with whole batches and find out at the first long one.
    let mut model = random_model(&args(), 11, None, F32).unwrap();
    let estimate = plan(&mut model, &cache, &c).unwrap().memory.total;
    let short_peak = whole.peaks[first_long as usize - 2];
    let long_peak = whole.peaks[first_long as usize - 1];
    assert!(
        short_peak * 2 < estimate && estimate < long_peak,
        "short {short_peak}, estimated {estimate}, long {long_peak}"
    );
    let mut capped = c.clone();
    capped.memory_budget = Some((estimate + long_peak) / 2);
    let shrunk = run(&dir.path().join("shrunk"), &cache, &capped, false, None);
    assert_eq!(shrunk.stop, TrainStop::Finished);
    let first = &shrunk.resizes[0];
    assert_eq!(first.step, first_long, "{:?}", shrunk.resizes);
    assert_eq!(
        (first.from, first.reason),
        (BATCH, ResizeReason::OverBudget)
    );
    assert!(first.to < BATCH && first.peak_memory > first.budget);
    for pair in shrunk.resizes.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "{:?}", shrunk.resizes);
    }
    // The same batches, the same optimizer: the losses of the run that never shrank.
    assert_same_losses(&whole.losses, &shrunk.losses);
    // The profile saw every step at the micro-batch it ran with.
    assert_eq!(shrunk.samples.len(), 10);
    let long = &shrunk.samples[first_long as usize - 1];
    assert_eq!((long.micro_batch_size, long.width > 64), (first.to, true));
    assert_eq!(shrunk.samples[0].micro_batch_size, BATCH);

    // Stopped right after the shrink, then resumed: the checkpoint holds the micro-batch and
    // its history, and the run takes the same steps.
    let part = dir.path().join("resumed");
    let stopped = run(&part, &cache, &capped, false, Some(first_long as usize));
    assert_eq!(stopped.stop, TrainStop::Cancelled);
    let (_, state) = checkpoint::latest(&part.join("run/checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(state.step, first_long);
    assert_eq!(state.batch_size, Some(BATCH));
    assert_eq!(state.resizes, stopped.resizes);
    assert_eq!(
        state.micro_batch_size,
        Some(stopped.resizes.last().unwrap().to)
    );
    let resumed = run(&part, &cache, &capped, true, None);
    assert_eq!(resumed.stop, TrainStop::Finished);
    let losses: Vec<f64> = stopped
        .losses
        .iter()
        .chain(&resumed.losses)
        .copied()
        .collect();
    assert_same_losses(&whole.losses, &losses);
}

#[test]
fn a_budget_below_one_row_is_refused_with_what_to_change() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let cache = data(&dir.path().join("train.bin"));
    let mut model = random_model(&args(), 11, None, F32).unwrap();
    let mut c = config(0);
    c.memory_budget = Some(1 << 10);
    let d = TrainData {
        train: &cache,
        valid: None,
        pad_id: 0,
    };
    let files = RunFiles {
        dir: dir.path().join("run"),
    };
    let hooks = Hooks {
        prober: None,
        on_event: &mut |_| {},
        cancel: &|| false,
    };
    let e = train(&mut model, &d, &c, &files, false, hooks).unwrap_err();
    assert!(e.to_string().contains("memory_budget"), "{e}");
}

#[test]
fn batches_prepared_ahead_take_the_same_steps_across_a_resume() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let cache = data(&dir.path().join("train.bin"));
    let mut c = config(3);
    c.grad_accumulation_steps = 2;
    c.save_every = 2;
    c.prefetch = false;
    let inline = run(&dir.path().join("inline"), &cache, &c, false, None);
    c.prefetch = true;
    let part = dir.path().join("ahead");
    let first = run(&part, &cache, &c, false, Some(5));
    assert_eq!(first.stop, TrainStop::Cancelled);
    let second = run(&part, &cache, &c, true, None);
    let ahead: Vec<f64> = first.losses.iter().chain(&second.losses).copied().collect();
    assert_eq!(inline.losses, ahead);
}

#[test]
fn the_memory_profile_breaks_down_every_step_and_ranks_suggestions() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let cache = data(&dir.path().join("train.bin"));
    let r = run(&dir.path().join("p"), &cache, &config(1), false, None);
    let p = r.profile.unwrap();
    assert_eq!(p.samples, r.samples);
    assert_eq!(p.samples.len(), 10);
    assert_eq!(p.peak, p.samples.iter().map(|s| s.peak).max().unwrap());
    for s in &p.samples {
        assert!(s.weights > 0 && s.adapters > 0 && s.active > 0, "{s:?}");
        assert!(s.logits + s.activations <= s.peak, "{s:?}");
        // A long batch's logits (4 rows of at least 184 tokens, 4096 f32 and their gradient).
        if s.width > 64 {
            assert!(s.logits >= 4 * 184 * 4096 * 8, "{s:?}");
        }
    }
    // Steady memory: no leak; the suggestions, largest saving first, each below the estimate.
    assert!(p.leaks.is_empty(), "{:?}", p.leaks);
    let names: Vec<&str> = p.suggestions.iter().map(|s| s.setting.as_str()).collect();
    for expected in [
        "grad_checkpoint",
        "max_seq_length",
        "quantize",
        "grad_accumulation_steps",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    assert!(p.suggestions.windows(2).all(|w| w[0].saves >= w[1].saves));
    assert!(p.suggestions.iter().all(|s| s.saves < p.estimate.total));
}
