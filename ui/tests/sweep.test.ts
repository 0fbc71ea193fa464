import { describe, expect, it } from "vitest";
import {
  applySweepProgress,
  bestRun,
  curveSeries,
  defaultSweep,
  domain,
  fieldProblem,
  formatValue,
  GREY,
  knobLabel,
  knobsOf,
  liveSweep,
  logAxis,
  parseRungs,
  scatterPoints,
  sweepProblems,
  sweptAround,
  toggleField,
  toSweepForm,
  trialRows,
  type TrialRow,
} from "../src/lib/sweep";
import { fromTrainForm, toTrainForm } from "../src/lib/train";
import { PRESETS } from "../src/mock/presets";
import type { SweepDetails, SweepProgress, TrialRecord } from "../src/lib/types";

const form = { ...fromTrainForm(PRESETS[0].form), model: "m.gguf", dataset: "d.jsonl", learningRate: 1e-4, rank: 8 };

describe("sweeping the Train form's fields", () => {
  it("starts each field around the form's value and toggles it off again", () => {
    let s = toggleField(defaultSweep(), "learningRate", form);
    s = toggleField(s, "rank", form);
    expect(s.fields).toEqual([
      { field: "learningRate", lo: 1e-5, hi: 1e-3, values: "" },
      { field: "rank", lo: null, hi: null, values: "4, 8, 16" },
    ]);
    expect(toggleField(s, "learningRate", form).fields.map((f) => f.field)).toEqual(["rank"]);
    expect(sweptAround("numLayers", -1).values).toBe("4, 8, -1");
    expect(sweptAround("batchSize", 1).values).toBe("1, 2");
    expect(sweptAround("warmup", 0)).toMatchObject({ lo: 0, hi: 4 });
    expect(sweptAround("dropout", 0)).toMatchObject({ lo: 0, hi: 0.1 });
  });

  it("names what is wrong with a field's values", () => {
    expect(fieldProblem({ field: "learningRate", lo: 0, hi: 1e-3, values: "" })).toMatch(/above 0/);
    expect(fieldProblem({ field: "scale", lo: 5, hi: 5, values: "" })).toMatch(/below/);
    expect(fieldProblem({ field: "scale", lo: null, hi: 5, values: "" })).toMatch(/lowest/);
    expect(fieldProblem({ field: "warmup", lo: 0, hi: 2.5, values: "" })).toMatch(/whole/);
    expect(fieldProblem({ field: "rank", lo: null, hi: null, values: "4, x" })).toMatch(/commas/);
    expect(fieldProblem({ field: "rank", lo: null, hi: null, values: "4, 8.5" })).toMatch(/whole/);
    expect(fieldProblem({ field: "rank", lo: null, hi: null, values: "4, 8" })).toBeNull();
    expect(fieldProblem({ field: "dropout", lo: 0, hi: 0.2, values: "" })).toBeNull();
  });

  it("gives each field its domain as the API reads it", () => {
    expect(domain({ field: "learningRate", lo: 1e-5, hi: 1e-3, values: "" })).toEqual({ log_uniform: [1e-5, 1e-3] });
    expect(domain({ field: "scale", lo: 5, hi: 30, values: "" })).toEqual({ uniform: [5, 30] });
    expect(domain({ field: "warmup", lo: 0, hi: 8, values: "" })).toEqual({ int: [0, 8] });
    expect(domain({ field: "batchSize", lo: null, hi: null, values: " 2,4 ,8" })).toEqual({ choice: [2, 4, 8] });
  });

  it("checks the budget", () => {
    expect(sweepProblems(defaultSweep()).map((p) => p.field)).toEqual(["space"]);
    const s = { ...toggleField(defaultSweep(), "rank", form), trials: 0, seed: -1, rungs: "0.5, 2", reduction: 0.5, startupTrials: 1.5 };
    expect(sweepProblems(s).map((p) => p.field)).toEqual(["trials", "startup_trials", "seed", "rungs", "reduction"]);
    expect(parseRungs("0.25, 0.5, 1")).toEqual([0.25, 0.5, 1]);
    expect(parseRungs("")).toBeNull();
  });

  it("makes the sweep form, budgeting trials in steps", () => {
    const s = { ...toggleField(toggleField(defaultSweep(), "learningRate", form), "warmup", form), trials: 3, seed: 5 };
    const train = toTrainForm({ ...form, lengthBy: "epochs", epochs: 1 }, PRESETS[0].form);
    const f = toSweepForm(train, s, 12);
    expect(f.space).toEqual({ learning_rate: { log_uniform: [1e-5, 1e-3] }, "schedule.warmup": { int: [0, 4] } });
    expect([f.trials, f.seed, f.startup_trials, f.reduction]).toEqual([3, 5, null, 3]);
    expect(f.rungs).toEqual([0.25, 0.5, 1]);
    expect([f.train.config.iters, f.train.config.epochs]).toEqual([12, null]);
    const steps = toTrainForm({ ...form, lengthBy: "iters", iters: 6 }, PRESETS[0].form);
    expect(toSweepForm(steps, s, 12).train.config.iters).toBe(6);
  });
});

const record = (number: number, over: Partial<TrialRecord> = {}): TrialRecord => ({
  sweep_id: 1, number, run_id: number + 10, params: JSON.stringify({ learning_rate: 1e-4 * (number + 1), "lora_parameters.rank": 8 }),
  state: "completed", rung_losses: [2.0], best_val_loss: 2.0 - number / 10, steps: 4, seconds: 3, reason: "trained all 4 steps", ...over,
});

const trialEvent = (number: number, event: object): SweepProgress => ({ stage: "trial", detail: { number, event } }) as SweepProgress;

describe("a sweep's stream", () => {
  it("adds trials as they start, their curves as they evaluate, and how each ended", () => {
    const live = liveSweep(1, "m.gguf");
    applySweepProgress(live, { stage: "setup", detail: { stage: "loading" } });
    expect(live.stage).toBe("Loading the model…");
    applySweepProgress(live, { stage: "trial_started", detail: { number: 0, run_id: 10, params: { learning_rate: 1e-4 }, resumed: false } });
    expect(live.stage).toBeNull();
    applySweepProgress(live, trialEvent(0, { type: "evaluated", step: 2, val_loss: 2.5, improved: true, probes: [] }));
    applySweepProgress(live, trialEvent(0, { type: "evaluated", step: 4, val_loss: 2.2, improved: true, probes: [] }));
    expect(live.trials[0]).toMatchObject({ runId: 10, state: "running", bestValLoss: 2.2, steps: 4, points: [[2, 2.5], [4, 2.2]] });
    applySweepProgress(live, { stage: "trial_ended", detail: record(0, { state: "pruned", reason: "pruned at step 4", best_val_loss: 2.2 }) });
    expect(live.trials[0]).toMatchObject({ state: "pruned", reason: "pruned at step 4" });
    applySweepProgress(live, { stage: "ended", detail: { sweep_id: 1, status: "succeeded", best: record(1), error: null } });
    expect([live.status, live.bestRun]).toEqual(["succeeded", 11]);
  });

  it("drops what came after the checkpoint a resumed trial goes on from", () => {
    const live = liveSweep(1);
    applySweepProgress(live, trialEvent(2, { type: "evaluated", step: 2, val_loss: 2.5, improved: true, probes: [] }));
    applySweepProgress(live, trialEvent(2, { type: "evaluated", step: 4, val_loss: 2.4, improved: true, probes: [] }));
    applySweepProgress(live, trialEvent(2, { type: "started", total_steps: 8, resumed_from: 2 }));
    expect(live.trials[0].points).toEqual([[2, 2.5]]);
    expect(live.trials[0].totalSteps).toBe(8);
  });
});

describe("the trials shown", () => {
  const details = (): SweepDetails => ({
    sweep: { id: 1, name: "s", spec: "{}", status: "running", error: null, best_run_id: null, created_at: 0, finished_at: null },
    trials: [record(1), record(0, { state: "pruned", best_val_loss: 2.4 }), record(2, { state: "running", best_val_loss: null, steps: 2 })],
    rungs: [2, 4],
    model: "m.gguf",
    curves: [
      { number: 1, points: [[2, 2.1], [4, 1.9]] },
      { number: 0, points: [[2, 2.4]] },
      { number: 2, points: [[2, 2.2]] },
    ],
  });

  it("keep the stored ranking, with a trial the stream follows taken from it while it trains", () => {
    const live = liveSweep(1);
    applySweepProgress(live, { stage: "trial_started", detail: { number: 2, run_id: 12, params: { learning_rate: 3e-4 }, resumed: false } });
    applySweepProgress(live, trialEvent(2, { type: "evaluated", step: 2, val_loss: 2.2, improved: true, probes: [] }));
    applySweepProgress(live, trialEvent(2, { type: "evaluated", step: 4, val_loss: 2.0, improved: true, probes: [] }));
    applySweepProgress(live, { stage: "trial_started", detail: { number: 3, run_id: 13, params: { learning_rate: 5e-4 }, resumed: false } });
    const rows = trialRows(details(), live);
    expect(rows.map((r) => r.number)).toEqual([1, 0, 2, 3]);
    expect(rows[2].points).toEqual([[2, 2.2], [4, 2.0]]);
    expect(rows[0].points).toEqual([[2, 2.1], [4, 1.9]]);
    expect(trialRows(details(), null).map((r) => r.number)).toEqual([1, 0, 2]);
    // Resumed here after step 2: the stored point before it stays, the stream's follow.
    const resumed = liveSweep(1);
    applySweepProgress(resumed, { stage: "trial_started", detail: { number: 2, run_id: 12, params: {}, resumed: true } });
    applySweepProgress(resumed, trialEvent(2, { type: "evaluated", step: 4, val_loss: 2.05, improved: true, probes: [] }));
    expect(trialRows(details(), resumed)[2].points).toEqual([[2, 2.2], [4, 2.05]]);
    expect(trialRows(null, null)).toEqual([]);
  });

  it("grey pruned trials' curves and points, and know the best run", () => {
    const rows = trialRows(details(), null);
    const series = curveSeries(rows);
    expect(series.map((s) => s.name)).toEqual(["trial 0 (pruned)", "trial 1", "trial 2"]);
    expect(series[0].color).toBe(GREY);
    expect(series[1].color).not.toBe(GREY);
    expect(knobsOf(rows)).toEqual(["learning_rate", "lora_parameters.rank"]);
    const points = scatterPoints(rows, "learning_rate");
    expect(points.map((p) => [p.number, p.greyed])).toEqual([[1, false], [0, true], [2, false]]);
    expect(points[2].y).toBe(2.2);
    expect(bestRun(rows, null)).toBe(11);
    expect(bestRun(rows, 10)).toBe(10);
    expect(bestRun(rows.filter((r: TrialRow) => r.state !== "completed"), null)).toBeNull();
  });

  it("format values and names for the table", () => {
    expect([formatValue(3e-5), formatValue(8), formatValue(0.125), formatValue([1])]).toEqual(["3.00e-5", "8", "0.125", "[1]"]);
    expect([knobLabel("lora_parameters.rank"), knobLabel("learning_rate"), knobLabel("a.b_c")]).toEqual(["rank", "learning rate", "b_c"]);
    expect([logAxis([1e-5, 1e-3]), logAxis([4, 8]), logAxis([0, 10]), logAxis([1])]).toEqual([true, false, false, false]);
  });
});
