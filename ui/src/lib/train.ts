// The Train view's form: presets, inline validation and the request it sends. Kept free of
// Svelte so Vitest covers it.

import type { LrSchedule, TrainConfig, TrainForm } from "./types";

export type Method = "lora" | "dora" | "qlora";
export type Schedule = "constant" | "cosine" | "linear";
export type PresetName = "quick" | "standard" | "thorough";

/** What the person edits. */
export interface FormState {
  model: string;
  dataset: string;
  name: string;
  method: Method;
  rank: number;
  scale: number;
  dropout: number;
  /** Adapted blocks counted from the last; -1: all. */
  numLayers: number;
  learningRate: number;
  schedule: Schedule;
  warmup: number;
  lengthBy: "epochs" | "iters";
  epochs: number;
  iters: number;
  batchSize: number;
  maxSeqLength: number;
  gradCheckpoint: boolean;
  saveEvery: number;
  /** Share of the examples held out for validation. */
  validShare: number;
  stepsPerEval: number;
  /** Evaluations without improvement before stopping; 0: never stop early. */
  patience: number;
  /** One probe prompt per line. */
  probes: string;
  maskPrompt: boolean;
}

type Knobs = Omit<FormState, "model" | "dataset" | "name" | "method" | "probes" | "maskPrompt">;

export const PRESETS: Record<PresetName, { label: string; hint: string; knobs: Knobs }> = {
  quick: {
    label: "Quick",
    hint: "a first look in minutes: few layers, one epoch",
    knobs: {
      rank: 8, scale: 20, dropout: 0, numLayers: 8, learningRate: 1e-4, schedule: "constant",
      warmup: 0, lengthBy: "epochs", epochs: 1, iters: 100, batchSize: 4, maxSeqLength: 512,
      gradCheckpoint: false, saveEvery: 50, validShare: 0.1, stepsPerEval: 25, patience: 0,
    },
  },
  standard: {
    label: "Standard",
    hint: "a good default: 16 layers, three epochs, cosine decay",
    knobs: {
      rank: 16, scale: 20, dropout: 0.05, numLayers: 16, learningRate: 1e-4, schedule: "cosine",
      warmup: 10, lengthBy: "epochs", epochs: 3, iters: 300, batchSize: 4, maxSeqLength: 1024,
      gradCheckpoint: false, saveEvery: 100, validShare: 0.1, stepsPerEval: 50, patience: 3,
    },
  },
  thorough: {
    label: "Thorough",
    hint: "every layer, rank 32, five epochs, checkpointed activations",
    knobs: {
      rank: 32, scale: 20, dropout: 0.05, numLayers: -1, learningRate: 5e-5, schedule: "cosine",
      warmup: 20, lengthBy: "epochs", epochs: 5, iters: 1000, batchSize: 4, maxSeqLength: 2048,
      gradCheckpoint: true, saveEvery: 100, validShare: 0.1, stepsPerEval: 100, patience: 5,
    },
  },
};

export function initialForm(preset: PresetName = "quick"): FormState {
  return {
    model: "",
    dataset: "",
    name: "",
    method: "lora",
    probes: "",
    maskPrompt: true,
    ...PRESETS[preset].knobs,
  };
}

/** `form` with a preset's knobs; the model, data, method and probes stay. */
export function applyPreset(form: FormState, preset: PresetName): FormState {
  return { ...form, ...PRESETS[preset].knobs };
}

/** The preset `form`'s knobs match, if any. */
export function matchingPreset(form: FormState): PresetName | null {
  const names = Object.keys(PRESETS) as PresetName[];
  return (
    names.find((n) =>
      Object.entries(PRESETS[n].knobs).every(([k, v]) => form[k as keyof Knobs] === v),
    ) ?? null
  );
}

/** Optimizer steps of a run over `examples` examples (null when not known yet). */
export function totalSteps(form: FormState, examples: number | null): number | null {
  if (form.lengthBy === "iters") return form.iters;
  if (examples === null) return null;
  const train = Math.max(1, examples - Math.round(examples * form.validShare));
  return form.epochs * Math.ceil(train / form.batchSize);
}

export type Problems = Partial<Record<keyof FormState, string>>;

const whole = (v: number) => Number.isInteger(v);

/** Messages for the fields that cannot be sent as they are, by field. */
export function validate(form: FormState, quantizedModel: boolean | null): Problems {
  const p: Problems = {};
  if (!form.model) p.model = "Choose a model.";
  if (!form.dataset.trim()) p.dataset = "Choose a CSV or JSONL file (or drop one on the window).";
  else if (!/\.(csv|tsv|jsonl|json)$/i.test(form.dataset.trim()))
    p.dataset = "Datasets are CSV, TSV or JSONL files.";
  if (form.method === "qlora" && quantizedModel === false)
    p.method = "QLoRA trains a quantized model: quantize this one in Models first, or use LoRA.";
  if (!whole(form.rank) || form.rank < 1 || form.rank > 512) p.rank = "A whole number from 1 to 512.";
  if (!(form.scale > 0)) p.scale = "Above 0 (mlx-lm's default is 20).";
  if (!(form.dropout >= 0 && form.dropout < 1)) p.dropout = "From 0 up to (not including) 1.";
  if (!whole(form.numLayers) || (form.numLayers < 1 && form.numLayers !== -1))
    p.numLayers = "A whole number of layers, or -1 for all.";
  if (!(form.learningRate > 0 && form.learningRate < 1)) p.learningRate = "Between 0 and 1, e.g. 1e-4.";
  else if (form.learningRate > 1e-2) p.learningRate = "Above 1e-2 LoRA training usually diverges.";
  if (!whole(form.warmup) || form.warmup < 0) p.warmup = "Steps: a whole number, 0 or more.";
  if (form.lengthBy === "epochs" && (!whole(form.epochs) || form.epochs < 1))
    p.epochs = "At least one whole epoch.";
  if (form.lengthBy === "iters" && (!whole(form.iters) || form.iters < 1))
    p.iters = "At least one whole step.";
  if (!whole(form.batchSize) || form.batchSize < 1) p.batchSize = "At least 1.";
  if (!whole(form.maxSeqLength) || form.maxSeqLength < 16) p.maxSeqLength = "At least 16 tokens.";
  if (!whole(form.saveEvery) || form.saveEvery < 1) p.saveEvery = "Every 1 or more steps.";
  if (!(form.validShare >= 0 && form.validShare <= 0.5)) p.validShare = "From 0 to 0.5.";
  if (!whole(form.stepsPerEval) || form.stepsPerEval < 1) p.stepsPerEval = "Every 1 or more steps.";
  if (!whole(form.patience) || form.patience < 0) p.patience = "0 (off) or more evaluations.";
  else if (form.patience > 0 && form.validShare === 0)
    p.patience = "Early stopping watches the validation loss: hold some examples out.";
  return p;
}

function schedule(form: FormState, steps: number | null): LrSchedule | null {
  if (form.schedule === "constant" && form.warmup === 0) return null;
  const decay = Math.max(1, (steps ?? form.iters) - form.warmup);
  const args =
    form.schedule === "cosine"
      ? [form.learningRate, decay, form.learningRate / 10]
      : form.schedule === "linear"
        ? [form.learningRate, form.learningRate / 10, decay]
        : [form.learningRate];
  const name = form.schedule === "cosine" ? "cosine_decay" : form.schedule === "linear" ? "linear_schedule" : "constant";
  return { name, arguments: args, warmup: form.warmup, warmup_init: 0 };
}

/** The request the backend receives; `examples` (the dataset's count) sizes the schedule. */
export function toRequest(form: FormState, examples: number | null): TrainForm {
  const steps = totalSteps(form, examples);
  const probes = form.probes
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
  const config: TrainConfig = {
    fine_tune_type: form.method === "dora" ? "dora" : "lora",
    num_layers: form.numLayers,
    lora_parameters: { rank: form.rank, scale: form.scale, dropout: form.dropout, keys: null },
    optimizer: "adam",
    optimizer_config: null,
    learning_rate: form.learningRate,
    lr_schedule: schedule(form, steps),
    batch_size: form.batchSize,
    iters: form.lengthBy === "iters" ? form.iters : null,
    epochs: form.lengthBy === "epochs" ? form.epochs : null,
    max_seq_length: form.maxSeqLength,
    steps_per_report: Math.max(1, Math.min(10, Math.floor((steps ?? 100) / 20))),
    steps_per_eval: form.stepsPerEval,
    val_batches: 25,
    save_every: form.saveEvery,
    grad_accumulation_steps: 1,
    grad_checkpoint: form.gradCheckpoint,
    seed: 0,
    max_grad_norm: null,
    early_stopping_patience: form.patience > 0 ? form.patience : null,
    keep_best: form.validShare > 0,
    probes,
    probe_max_tokens: 48,
  };
  return {
    model: form.model,
    dataset: form.dataset.trim(),
    csv: { delimiter: null, prompt_template: null, completion_template: null, completion_column: null },
    valid_share: form.validShare,
    mask_prompt: form.maskPrompt,
    config,
    name: form.name.trim() || null,
  };
}

/** "3 min 20 s" for a number of seconds. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** " of N · about T left" for a running run at `step` of `total` steps at its latest pace. */
export function stepsLeft(step: number, total: number | null, stepsPerSecond: number | null): string {
  if (!total || !stepsPerSecond || stepsPerSecond <= 0) return "";
  return ` of ${total} · about ${duration(Math.max(0, total - step) / stepsPerSecond)} left`;
}
