// Sweeps as the page keeps them: the Train form's fields that can be swept (each a setting of
// the request, with the values the person gives it), the `SweepForm` the backend takes, a
// sweep's stream folded into its trials, and what its charts draw. Pure, so Vitest covers it;
// the store in sweeps.svelte.ts holds one stream per sweep.

import type { Point } from "./chart";
import { stageLine } from "./progress";
import type { FormState } from "./train";
import type { Domain, Status, SweepDetails, SweepForm, SweepProgress, TrainForm, TrialState } from "./types";

export type SweepField = "learningRate" | "rank" | "scale" | "dropout" | "numLayers" | "batchSize" | "warmup";

/** How a field's values are given: a range (on a log scale, linear, or of whole numbers) or a
 *  list to choose from. */
export type DomainKind = "log_uniform" | "uniform" | "int" | "choice";

/** Each field that can be swept: its setting's name in the request and how its values are given. */
export const SWEEPABLE: Record<SweepField, { knob: string; label: string; kind: DomainKind; whole: boolean }> = {
  learningRate: { knob: "learning_rate", label: "Learning rate", kind: "log_uniform", whole: false },
  rank: { knob: "lora_parameters.rank", label: "Rank", kind: "choice", whole: true },
  scale: { knob: "lora_parameters.scale", label: "Scale", kind: "uniform", whole: false },
  dropout: { knob: "lora_parameters.dropout", label: "Dropout", kind: "uniform", whole: false },
  numLayers: { knob: "num_layers", label: "Layers", kind: "choice", whole: true },
  batchSize: { knob: "batch_size", label: "Batch size", kind: "choice", whole: true },
  warmup: { knob: "schedule.warmup", label: "Warm-up steps", kind: "int", whole: true },
};

/** A swept field as the person edits it: the bounds of a range, or a list ("4, 8, 16"). */
export interface SweptField {
  field: SweepField;
  lo: number | null;
  hi: number | null;
  values: string;
}

/** The sweep part of the Train form. Number inputs hold `null` while empty. */
export interface SweepSettings {
  fields: SweptField[];
  trials: number | null;
  /** Trials drawn at random before the sampler learns; null: the API's default. */
  startupTrials: number | null;
  seed: number | null;
  /** Rungs as fractions of each trial's steps ("0.25, 0.5, 1"). */
  rungs: string;
  /** Each rung keeps the best 1 in `reduction` of the trials that reached it (1: never prune). */
  reduction: number | null;
}

export function defaultSweep(): SweepSettings {
  return { fields: [], trials: 6, startupTrials: null, seed: 0, rungs: "0.25, 0.5, 1", reduction: 3 };
}

const tidy = (v: number) => +v.toPrecision(3);
const distinct = (vs: number[]) => [...new Set(vs)].join(", ");

/** `field` swept around the value `v` the form has. */
export function sweptAround(field: SweepField, v: number): SweptField {
  const range = (lo: number, hi: number): SweptField => ({ field, lo, hi, values: "" });
  const list = (vs: number[]): SweptField => ({ field, lo: null, hi: null, values: distinct(vs) });
  const whole = (x: number) => Math.max(1, Math.round(x));
  switch (field) {
    case "learningRate":
      return v > 0 ? range(tidy(v / 10), tidy(v * 10)) : range(1e-5, 1e-3);
    case "scale":
      return v > 0 ? range(tidy(v / 2), tidy(v * 2)) : range(1, 20);
    case "dropout":
      return range(0, Math.max(0.1, tidy(v * 2)));
    case "warmup":
      return range(0, Math.max(4, Math.round(v * 2)));
    case "numLayers":
      return list(v < 0 ? [4, 8, -1] : [whole(v / 2), whole(v), whole(v * 2)]);
    case "rank":
    case "batchSize":
      return list([whole(v / 2), whole(v), whole(v * 2)]);
  }
}

/** `s` with `field` swept (around the form's value), or no longer swept if it was. */
export function toggleField(s: SweepSettings, field: SweepField, form: FormState): SweepSettings {
  if (s.fields.some((f) => f.field === field)) return { ...s, fields: s.fields.filter((f) => f.field !== field) };
  const v = form[field];
  return { ...s, fields: [...s.fields, sweptAround(field, typeof v === "number" ? v : 0)] };
}

/** The numbers of a list ("4, 8, 16"), or null when one is not a number. */
export function parseList(text: string): number[] | null {
  const parts = text.split(",").map((p) => p.trim()).filter(Boolean);
  const values = parts.map(Number);
  return values.every(Number.isFinite) ? values : null;
}

/** Why `f`'s inputs cannot give its values, if they cannot. */
export function fieldProblem(f: SweptField): string | null {
  const { kind, whole } = SWEEPABLE[f.field];
  if (kind === "choice") {
    const values = parseList(f.values);
    if (!values?.length) return "Enter values separated by commas.";
    if (whole && !values.every(Number.isInteger)) return "Enter whole numbers.";
    return null;
  }
  const { lo, hi } = f;
  if (typeof lo !== "number" || typeof hi !== "number" || !Number.isFinite(lo) || !Number.isFinite(hi))
    return "Enter the lowest and the highest value.";
  if (!(lo < hi)) return "The lowest value must be below the highest.";
  if (kind === "log_uniform" && lo <= 0) return "A log range starts above 0.";
  if (kind === "int" && !(Number.isInteger(lo) && Number.isInteger(hi))) return "Enter whole numbers.";
  return null;
}

/** The values `f` may take, as the API reads them (`f` must have no problem). */
export function domain(f: SweptField): Domain {
  const { kind } = SWEEPABLE[f.field];
  const pair: [number, number] = [f.lo ?? 0, f.hi ?? 0];
  switch (kind) {
    case "choice":
      return { choice: parseList(f.values) ?? [] };
    case "log_uniform":
      return { log_uniform: pair };
    case "uniform":
      return { uniform: pair };
    case "int":
      return { int: pair };
  }
}

/** The rung fractions of `text`, or null unless each is above 0 and at most 1. */
export function parseRungs(text: string): number[] | null {
  const rungs = parseList(text);
  return rungs?.length && rungs.every((r) => r > 0 && r <= 1) ? rungs : null;
}

export interface SweepProblem {
  /** The swept field's setting (`learning_rate`), or `trials`, `startup_trials`, `seed`,
   *  `rungs`, `reduction`, or `space` when nothing is swept. */
  field: string;
  message: string;
}

/** What stops `s` from making a sweep, by field. */
export function sweepProblems(s: SweepSettings): SweepProblem[] {
  const out: SweepProblem[] = [];
  if (!s.fields.length) out.push({ field: "space", message: "Choose a field to sweep (“sweep” beside it)." });
  for (const f of s.fields) {
    const message = fieldProblem(f);
    if (message) out.push({ field: SWEEPABLE[f.field].knob, message });
  }
  const count = (v: number | null, least: number) => typeof v === "number" && Number.isInteger(v) && v >= least;
  if (!count(s.trials, 1)) out.push({ field: "trials", message: "Enter 1 or more trials." });
  if (s.startupTrials !== null && !count(s.startupTrials, 0))
    out.push({ field: "startup_trials", message: "Enter 0 or more (empty: a third of the trials)." });
  if (!count(s.seed, 0)) out.push({ field: "seed", message: "Enter a whole number, 0 or more." });
  if (!parseRungs(s.rungs)) out.push({ field: "rungs", message: "Enter fractions of the steps, above 0 and at most 1 (0.5, 1)." });
  if (!(typeof s.reduction === "number" && s.reduction >= 1)) out.push({ field: "reduction", message: "Enter 1 or more (1: never prune)." });
  return out;
}

/** The sweep `s` makes of the Train form `train`: each trial gets the form's steps (`totalSteps`
 *  when the form counts epochs; a sweep budgets every trial in steps). */
export function toSweepForm(train: TrainForm, s: SweepSettings, totalSteps: number | null): SweepForm {
  const config =
    train.config.iters === null && totalSteps !== null ? { ...train.config, iters: totalSteps, epochs: null } : train.config;
  return {
    train: { ...train, config },
    space: Object.fromEntries(s.fields.map((f) => [SWEEPABLE[f.field].knob, domain(f)])),
    trials: s.trials ?? 0,
    startup_trials: s.startupTrials,
    seed: s.seed ?? 0,
    rungs: parseRungs(s.rungs) ?? [],
    reduction: s.reduction ?? 1,
  };
}

/** A trial as the page shows it: its stored record and its stream merged. */
export interface TrialRow {
  number: number;
  runId: number | null;
  params: Record<string, unknown>;
  state: TrialState;
  bestValLoss: number | null;
  steps: number;
  totalSteps: number | null;
  reason: string | null;
  /** Validation loss by step. */
  points: Point[];
}

/** A sweep's stream as this window follows it. */
export interface LiveSweep {
  id: number;
  /** The model its trials train (known when this window started it). */
  model: string | null;
  /** `running` until the stream's `ended` event says how it ended. */
  status: Status;
  /** What it is doing before its first trial, or why it ended. */
  stage: string | null;
  stopping: boolean;
  trials: TrialRow[];
  /** The promoted trial's run, once the sweep ended with one. */
  bestRun: number | null;
}

export function liveSweep(id: number, model: string | null = null): LiveSweep {
  return { id, model, status: "running", stage: null, stopping: false, trials: [], bestRun: null };
}

function params(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

function trialOf(live: LiveSweep, number: number): TrialRow {
  let t = live.trials.find((x) => x.number === number);
  if (!t) {
    t = { number, runId: null, params: {}, state: "running", bestValLoss: null, steps: 0, totalSteps: null, reason: null, points: [] };
    live.trials.push(t);
    live.trials.sort((a, b) => a.number - b.number);
    t = live.trials.find((x) => x.number === number)!;
  }
  return t;
}

/** `live` after the event `p` (changed in place). */
export function applySweepProgress(live: LiveSweep, p: SweepProgress): void {
  switch (p.stage) {
    case "sweep":
      live.status = "running";
      break;
    case "setup":
      live.stage = stageLine(p.detail) ?? live.stage;
      break;
    case "trial_started": {
      const t = trialOf(live, p.detail.number);
      live.stage = null;
      t.runId = p.detail.run_id;
      t.params = p.detail.params;
      t.state = "running";
      t.reason = null;
      break;
    }
    case "trial": {
      const t = trialOf(live, p.detail.number);
      const e = p.detail.event;
      if (e.type === "started") {
        t.totalSteps = e.total_steps;
        const from = e.resumed_from;
        if (from !== null) t.points = t.points.filter(([step]) => step <= from);
      } else if (e.type === "report") {
        t.steps = e.step;
        t.totalSteps = e.total_steps;
      } else if (e.type === "evaluated") {
        t.points = [...t.points.filter(([step]) => step !== e.step), [e.step, e.val_loss] as Point].sort((a, b) => a[0] - b[0]);
        t.steps = Math.max(t.steps, e.step);
        if (t.bestValLoss === null || e.val_loss < t.bestValLoss) t.bestValLoss = e.val_loss;
      }
      break;
    }
    case "trial_ended": {
      const r = p.detail;
      const t = trialOf(live, r.number);
      t.state = r.state;
      t.steps = r.steps;
      t.bestValLoss = r.best_val_loss ?? t.bestValLoss;
      t.reason = r.reason;
      t.runId = r.run_id;
      break;
    }
    case "ended":
      live.status = p.detail.status;
      live.stopping = false;
      live.bestRun = p.detail.best?.run_id ?? null;
      live.stage = p.detail.error ? `[${p.detail.error.code}] ${p.detail.error.message}` : null;
      break;
  }
}

/** The trials to show: the stored ones in their ranking (best first), a trial this window's
 *  stream follows taken from the stream while it trains, then trials only the stream knows. */
export function trialRows(details: SweepDetails | null, live: LiveSweep | null): TrialRow[] {
  const stored: TrialRow[] = (details?.trials ?? []).map((t) => ({
    number: t.number,
    runId: t.run_id,
    params: params(t.params),
    state: t.state,
    bestValLoss: t.best_val_loss,
    steps: t.steps,
    totalSteps: null,
    reason: t.reason,
    points: (details?.curves.find((c) => c.number === t.number)?.points ?? []).map(([s, v]) => [s, v] as Point),
  }));
  const rows = stored.map((r) => {
    const l = live?.trials.find((t) => t.number === r.number);
    // The stream is newer while the trial trains, or when it has seen more of it.
    if (l && (l.state === "running" || l.points.length > r.points.length)) {
      // A trial resumed here streams from its checkpoint on: the stored points before it stay.
      const from = l.points.length ? l.points[0][0] : Infinity;
      const points = [...r.points.filter(([step]) => step < from), ...l.points];
      return { ...l, points, bestValLoss: l.bestValLoss ?? r.bestValLoss };
    }
    return l ? { ...r, totalSteps: l.totalSteps } : r;
  });
  for (const l of live?.trials ?? []) if (!rows.some((r) => r.number === l.number)) rows.push(l);
  return rows;
}

/** The run of the sweep's best trial: the promoted one, else the completed trial with the
 *  lowest validation loss. */
export function bestRun(rows: TrialRow[], promoted: number | null): number | null {
  if (promoted !== null) return promoted;
  let best: TrialRow | null = null;
  for (const r of rows)
    if (r.state === "completed" && r.bestValLoss !== null && r.runId !== null && (best === null || r.bestValLoss < best.bestValLoss!))
      best = r;
  return best?.runId ?? null;
}

/** Colours of the trials' curves; pruned and failed trials are greyed. */
const PALETTE = ["#2f6fdf", "#e0863a", "#2e9d5b", "#8a5cd1", "#c4302b", "#1f9bb4", "#b5892a", "#d14f9c"];
export const GREY = "#b9b9b9";

export function trialColor(row: TrialRow): string {
  return row.state === "pruned" || row.state === "failed" ? GREY : PALETTE[row.number % PALETTE.length];
}

/** The validation-loss curves to overlay, one per trial (the greyed ones first, drawn under). */
export function curveSeries(rows: TrialRow[]): { name: string; points: Point[]; color: string }[] {
  const series = rows
    .filter((r) => r.points.length)
    .map((r) => ({ name: `trial ${r.number}${r.state === "pruned" ? " (pruned)" : ""}`, points: r.points, color: trialColor(r) }));
  return [...series.filter((s) => s.color === GREY), ...series.filter((s) => s.color !== GREY)];
}

/** The settings the trials searched, in the order first seen. */
export function knobsOf(rows: TrialRow[]): string[] {
  const out: string[] = [];
  for (const r of rows) for (const k of Object.keys(r.params)) if (!out.includes(k)) out.push(k);
  return out;
}

/** A trial's loss for the scatter: its best validation loss, else its latest. */
export function trialLoss(r: TrialRow): number | null {
  return r.bestValLoss ?? (r.points.length ? r.points[r.points.length - 1][1] : null);
}

export interface ScatterPoint {
  number: number;
  x: number;
  y: number;
  greyed: boolean;
}

/** Each trial with a numeric value of `knob` and a loss, as (value, loss). */
export function scatterPoints(rows: TrialRow[], knob: string): ScatterPoint[] {
  return rows.flatMap((r) => {
    const x = r.params[knob];
    const y = trialLoss(r);
    return typeof x === "number" && y !== null ? [{ number: r.number, x, y, greyed: trialColor(r) === GREY }] : [];
  });
}

/** Whether values spread over a decade or more of positive numbers (drawn on a log axis). */
export function logAxis(xs: number[]): boolean {
  return xs.length > 1 && xs.every((x) => x > 0) && Math.max(...xs) / Math.min(...xs) >= 10;
}

/** A value as the table shows it (small or large numbers in exponent form). */
export function formatValue(v: unknown): string {
  if (typeof v !== "number") return JSON.stringify(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) < 0.01 || Math.abs(v) >= 1e4 ? v.toExponential(2) : String(+v.toPrecision(3));
}

/** A setting's short name for the table (`lora_parameters.rank` → `rank`). */
export function knobLabel(knob: string): string {
  const field = (Object.keys(SWEEPABLE) as SweepField[]).find((f) => SWEEPABLE[f].knob === knob);
  return field ? SWEEPABLE[field].label.toLowerCase() : (knob.split(".").pop() ?? knob);
}
