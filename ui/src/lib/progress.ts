// A training run's stream as the page keeps it: what it is doing, its metrics rows (as the
// backend stores them: a report starts its step's row, an evaluation completes it), its
// checkpoints and how it ended. Pure, so Vitest covers it; the store in training.svelte.ts
// holds one per run.

import type { Point } from "./chart";
import type { Metric, Status, TrainEnd, TrainProgress, TrainReport } from "./types";

export interface LiveRun {
  run: number;
  /** The model it trains (known when this window started it). */
  model: string | null;
  /** `running` until the stream's `ended` event says how it ended. */
  status: Status;
  /** What it is doing before its first step, or why it ended. */
  stage: string | null;
  /** A stop was asked for; the run writes a checkpoint, then ends. */
  stopping: boolean;
  totalSteps: number | null;
  trainable: number | null;
  batchNote: string | null;
  last: TrainReport | null;
  rows: Metric[];
  checkpoints: { step: number; path: string }[];
  end: TrainEnd | null;
}

export function liveRun(run: number, model: string | null = null): LiveRun {
  return {
    run, model, status: "running", stage: null, stopping: false, totalSteps: null, trainable: null,
    batchNote: null, last: null, rows: [], checkpoints: [], end: null,
  };
}

/** What the stream says while the data and model are prepared (null for the engine's events). */
export function stageLine(p: TrainProgress): string | null {
  switch (p.stage) {
    case "preparing":
      return `Reading the data… ${p.detail.examples} examples`;
    case "prepared":
      return `${p.detail.train} training and ${p.detail.valid} validation examples${p.detail.cached ? " (prepared before)" : ""}`;
    case "loading":
      return "Loading the model…";
    default:
      return null;
  }
}

/** `live` going on again (resumed): running, its figures kept until the stream says where it
 *  resumed from. */
export function restart(live: LiveRun): void {
  live.status = "running";
  live.stage = null;
  live.stopping = false;
  live.end = null;
}

/** `live` after the event `p` (changed in place). */
export function applyProgress(live: LiveRun, p: TrainProgress): void {
  if (p.stage === "ended") {
    live.status = p.detail.status;
    live.end = p.detail;
    live.stopping = false;
    live.stage = p.detail.error ? `[${p.detail.error.code}] ${p.detail.error.message}` : null;
    return;
  }
  if (p.stage !== "engine") {
    live.stage = stageLine(p);
    return;
  }
  const e = p.detail;
  switch (e.type) {
    case "started":
      live.stage = null;
      live.totalSteps = e.total_steps;
      live.trainable = e.trainable_parameters;
      live.batchNote = e.batch_size_note;
      // A resumed run goes on from its checkpoint: what came after it is trained again.
      if (e.resumed_from !== null) {
        const from = e.resumed_from;
        live.rows = live.rows.filter((r) => r.step <= from);
        live.checkpoints = live.checkpoints.filter((c) => c.step <= from);
      }
      break;
    case "report": {
      const report: TrainReport = { ...e };
      delete (report as { type?: string }).type;
      live.last = report;
      live.totalSteps = e.total_steps;
      setRow(live.rows, {
        step: e.step, epoch: e.epoch, train_loss: e.train_loss, val_loss: null, learning_rate: e.learning_rate,
        tokens_per_second: e.tokens_per_second, peak_memory: e.peak_memory,
        iterations_per_second: e.iterations_per_second, trained_tokens: e.trained_tokens, probes: null,
        ranks: e.ranks.length ? JSON.stringify(e.ranks) : null,
      });
      break;
    }
    case "evaluated": {
      const row = live.rows.find((r) => r.step === e.step) ?? emptyRow(e.step);
      setRow(live.rows, {
        ...row,
        val_loss: e.val_loss,
        probes: e.probes.length ? JSON.stringify(e.probes) : row.probes,
      });
      break;
    }
    case "checkpoint":
      live.checkpoints.push({ step: e.step, path: e.path });
      break;
    case "calibrated":
      break;
  }
}

function emptyRow(step: number): Metric {
  return {
    step, epoch: 0, train_loss: null, val_loss: null, learning_rate: 0, tokens_per_second: 0,
    peak_memory: 0, iterations_per_second: null, trained_tokens: null, probes: null, ranks: null,
  };
}

/** Puts `row` in `rows` (ordered by step), replacing its step's row. */
function setRow(rows: Metric[], row: Metric): void {
  const i = rows.findIndex((r) => r.step >= row.step);
  if (i < 0) rows.push(row);
  else if (rows[i].step === row.step) rows[i] = row;
  else rows.splice(i, 0, row);
}

/** The stored rows with the live ones over them (a live row wins at its step). */
export function mergeMetrics(stored: Metric[], live: Metric[]): Metric[] {
  if (!live.length) return stored;
  const rows = [...stored];
  for (const r of live) setRow(rows, r);
  return rows;
}

/** The training and validation loss curves of `rows`. */
export function lossSeries(rows: Metric[]): { train: Point[]; valid: Point[] } {
  const train: Point[] = [];
  const valid: Point[] = [];
  for (const r of rows) {
    if (r.train_loss !== null) train.push([r.step, r.train_loss]);
    if (r.val_loss !== null) valid.push([r.step, r.val_loss]);
  }
  return { train, valid };
}

/** Whether a run that ended this way can go on from a checkpoint. */
export function resumable(status: Status): boolean {
  return status === "cancelled" || status === "failed" || status === "interrupted";
}

/** The steps with a checkpoint: the stored ones and those the stream reported since. */
export function checkpointSteps(stored: { step: number }[], live: { step: number }[]): number[] {
  return [...new Set([...stored, ...live].map((c) => c.step))].sort((a, b) => a - b);
}
