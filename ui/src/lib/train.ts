// The Train view's form: what the person edits, mapped to and from the API's `TrainForm`, and
// which of the API's presets it matches. The defaults, the presets and the validation are the
// API's (`training_presets`, `check_training`); this file only maps. Kept free of Svelte so
// Vitest covers it.

import type { CsvOptions, FieldProblem, Precision, ScheduleIntent, TrainForm, TrainPreset } from "./types";

export type Method = "lora" | "dora" | "qlora";
export type Schedule = ScheduleIntent["kind"];

/** What the person edits. Number inputs hold `null` while empty. */
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
  /** The lowest rate as a share of the peak (decaying schedules only). */
  minRatio: number | null;
  lengthBy: "epochs" | "iters";
  epochs: number | null;
  iters: number | null;
  batchSize: number;
  maxSeqLength: number;
  gradCheckpoint: boolean;
  /** The base's float type while training (adapters stay f32); "auto": as the backend holds
   *  the model. Not a preset's: it follows the machine, so presets leave it as it is. */
  precision: Precision;
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

/** Each setting's name in the request, as the API's problems name it. */
export const FIELD = {
  model: "model",
  dataset: "dataset",
  validShare: "valid_share",
  rank: "config.lora_parameters.rank",
  scale: "config.lora_parameters.scale",
  dropout: "config.lora_parameters.dropout",
  numLayers: "config.num_layers",
  learningRate: "config.learning_rate",
  warmup: "config.schedule.warmup",
  minRatio: "config.schedule.min_ratio",
  epochs: "config.epochs",
  iters: "config.iters",
  batchSize: "config.batch_size",
  maxSeqLength: "config.max_seq_length",
  saveEvery: "config.save_every",
  stepsPerEval: "config.steps_per_eval",
  patience: "config.early_stopping_patience",
} as const;

type NumberKey = Exclude<keyof typeof FIELD, "model" | "dataset">;

/** How each number input must read to make a request: a count (whole, not negative), a
 *  whole number, or any number. */
const NUMBERS: Record<NumberKey, "count" | "whole" | "real"> = {
  validShare: "real",
  rank: "count",
  scale: "real",
  dropout: "real",
  numLayers: "whole",
  learningRate: "real",
  warmup: "count",
  minRatio: "real",
  epochs: "count",
  iters: "count",
  batchSize: "count",
  maxSeqLength: "count",
  saveEvery: "count",
  stepsPerEval: "count",
  patience: "count",
};

/** The inputs that apply to `s` (the schedule's lowest rate only when it decays; epochs or
 *  steps as chosen). */
function inUse(s: FormState, key: NumberKey): boolean {
  if (key === "minRatio") return s.schedule !== "constant";
  if (key === "epochs") return s.lengthBy === "epochs";
  if (key === "iters") return s.lengthBy === "iters";
  return true;
}

/** Why the input `value` cannot go into a request, if it cannot. */
function unreadable(value: unknown, kind: "count" | "whole" | "real"): string | null {
  if (typeof value !== "number" || !Number.isFinite(value)) return "Enter a number.";
  if (kind !== "real" && !Number.isInteger(value)) return "Enter a whole number.";
  if (kind === "count" && value < 0) return "Enter 0 or more.";
  return null;
}

/** The inputs that cannot be read as the request's numbers (empty, not whole, negative), by
 *  field. Whether a readable value is right is the API's to say. */
export function inputProblems(s: FormState): FieldProblem[] {
  return (Object.keys(NUMBERS) as NumberKey[]).flatMap((key) => {
    const message = inUse(s, key) ? unreadable(s[key], NUMBERS[key]) : null;
    return message ? [{ field: FIELD[key], message, warning: false }] : [];
  });
}

/** The form a `TrainForm` (say, a preset's) shows. */
export function fromTrainForm(f: TrainForm): FormState {
  const c = f.config;
  const s = c.schedule;
  return {
    model: f.model,
    dataset: f.dataset,
    name: f.name ?? "",
    method: f.qlora ? "qlora" : c.fine_tune_type,
    rank: c.lora_parameters.rank,
    scale: c.lora_parameters.scale,
    dropout: c.lora_parameters.dropout,
    numLayers: c.num_layers,
    learningRate: c.learning_rate,
    schedule: s?.kind ?? "constant",
    warmup: s?.warmup ?? 0,
    minRatio: s && s.kind !== "constant" ? s.min_ratio : null,
    lengthBy: c.iters !== null ? "iters" : "epochs",
    epochs: c.epochs,
    iters: c.iters,
    batchSize: c.batch_size,
    maxSeqLength: c.max_seq_length,
    gradCheckpoint: c.grad_checkpoint,
    precision: c.precision,
    saveEvery: c.save_every,
    validShare: f.valid_share,
    stepsPerEval: c.steps_per_eval,
    patience: c.early_stopping_patience ?? 0,
    probes: c.probes.join("\n"),
    maskPrompt: f.mask_prompt,
  };
}

/** The request `s` makes. `base` (the preset it started from) gives the settings the form
 *  does not show, and stands in for an input that cannot be read (`inputProblems` names it, so
 *  the request is checked but not sent); `csv` is the mapping chosen in Datasets. */
export function toTrainForm(s: FormState, base: TrainForm, csv: CsvOptions | null = null): TrainForm {
  const fallback = fromTrainForm(base);
  const num = (key: NumberKey): number => {
    const v = s[key];
    return unreadable(v, NUMBERS[key]) === null ? (v as number) : (fallback[key] ?? 0);
  };
  const length =
    unreadable(s[s.lengthBy], "count") === null
      ? { iters: s.lengthBy === "iters" ? num("iters") : null, epochs: s.lengthBy === "epochs" ? num("epochs") : null }
      : { iters: base.config.iters, epochs: base.config.epochs };
  const warmup = num("warmup");
  const schedule: ScheduleIntent =
    s.schedule === "constant"
      ? { kind: "constant", warmup }
      : { kind: s.schedule, warmup, min_ratio: num("minRatio") };
  const patience = num("patience");
  return {
    model: s.model,
    dataset: s.dataset.trim(),
    csv: csv ?? base.csv,
    valid_share: num("validShare"),
    mask_prompt: s.maskPrompt,
    qlora: s.method === "qlora",
    name: s.name.trim() || null,
    config: {
      ...base.config,
      fine_tune_type: s.method === "dora" ? "dora" : "lora",
      num_layers: num("numLayers"),
      lora_parameters: { ...base.config.lora_parameters, rank: num("rank"), scale: num("scale"), dropout: num("dropout") },
      learning_rate: num("learningRate"),
      lr_schedule: null,
      schedule,
      ...length,
      batch_size: num("batchSize"),
      max_seq_length: num("maxSeqLength"),
      grad_checkpoint: s.gradCheckpoint,
      precision: s.precision,
      save_every: num("saveEvery"),
      steps_per_eval: num("stepsPerEval"),
      early_stopping_patience: patience > 0 ? patience : null,
      probes: s.probes
        .split("\n")
        .map((p) => p.trim())
        .filter(Boolean),
    },
  };
}

/** `form` reporting often enough to draw about twenty points on the live chart of a short
 *  run, never less often than it asks. */
export function withReports(form: TrainForm, totalSteps: number | null): TrainForm {
  if (!totalSteps) return form;
  const every = Math.max(1, Math.min(form.config.steps_per_report, Math.floor(totalSteps / 20)));
  return { ...form, config: { ...form.config, steps_per_report: every } };
}

/** The settings a preset sets (not the model, data, name, method, probes or masking). */
const KNOBS = [
  "rank", "scale", "dropout", "numLayers", "learningRate", "schedule", "warmup", "minRatio",
  "lengthBy", "epochs", "iters", "batchSize", "maxSeqLength", "gradCheckpoint", "saveEvery",
  "validShare", "stepsPerEval", "patience",
] as const;

/** `s`'s knobs, those that do not apply left out. */
function knobs(s: FormState): Partial<FormState> {
  const k: Partial<FormState> = {};
  for (const key of KNOBS) (k as Record<string, unknown>)[key] = s[key];
  if (s.schedule === "constant") delete k.minRatio;
  delete k[s.lengthBy === "epochs" ? "iters" : "epochs"];
  return k;
}

/** The name of the preset whose settings `s` has, if any. */
export function matchingPreset(s: FormState, presets: TrainPreset[]): string | null {
  const mine = JSON.stringify(knobs(s));
  return presets.find((p) => JSON.stringify(knobs(fromTrainForm(p.form))) === mine)?.name ?? null;
}

/** `s` with `preset`'s settings; the model, data, name, method, probes and masking stay. */
export function applyPreset(s: FormState, preset: TrainPreset): FormState {
  const p = fromTrainForm(preset.form);
  const out = { ...s };
  for (const key of KNOBS) (out as Record<string, unknown>)[key] = p[key];
  return out;
}

/** The first value the presets give `key`, for an input that had none. */
function presetValue<K extends keyof FormState>(presets: TrainPreset[], key: K): FormState[K] | null {
  for (const p of presets) {
    const v = fromTrainForm(p.form)[key];
    if (v !== null) return v;
  }
  return null;
}

/** `s` with another schedule shape; a decaying one starts from the presets' lowest rate. */
export function withSchedule(s: FormState, kind: Schedule, presets: TrainPreset[]): FormState {
  const minRatio = kind === "constant" ? s.minRatio : (s.minRatio ?? presetValue(presets, "minRatio"));
  return { ...s, schedule: kind, minRatio };
}

/** `s` measured in epochs or in steps; steps start from the run's current step count. */
export function withLength(
  s: FormState,
  by: "epochs" | "iters",
  totalSteps: number | null,
  presets: TrainPreset[],
): FormState {
  if (by === "iters") return { ...s, lengthBy: by, iters: s.iters ?? totalSteps };
  return { ...s, lengthBy: by, epochs: s.epochs ?? presetValue(presets, "epochs") };
}

/** What the form shows: the inputs that cannot be read, then the API's check for the other
 *  fields, then what the API refused when asked to run (each once). */
export function formProblems(
  input: FieldProblem[],
  checked: FieldProblem[],
  refused: FieldProblem[] = [],
): FieldProblem[] {
  const unread = new Set(input.map((p) => p.field));
  const out = [...input];
  for (const p of [...checked, ...refused]) {
    if (unread.has(p.field)) continue;
    if (!out.some((q) => q.field === p.field && q.message === p.message)) out.push(p);
  }
  return out;
}

/** The problems of `fields`. */
export function problemsAt(problems: FieldProblem[], ...fields: string[]): FieldProblem[] {
  return problems.filter((p) => fields.includes(p.field));
}

/** The problems of fields the form does not show (said with their names). */
export function otherProblems(problems: FieldProblem[]): FieldProblem[] {
  const shown: string[] = Object.values(FIELD);
  return problems.filter((p) => !shown.includes(p.field));
}

/** Whether any problem stops a run (warnings do not). */
export function blocks(problems: FieldProblem[]): boolean {
  return problems.some((p) => !p.warning);
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
