import { describe, expect, it } from "vitest";
import { checkpointSteps, liveRun, lossSeries, mergeMetrics, resumable, restart, applyProgress, stageLine } from "../src/lib/progress";
import type { Metric, TrainProgress } from "../src/lib/types";

/** A report; with `group`, two ranks' own figures. */
const report = (step: number, total = 4, group = false): TrainProgress => ({
  stage: "engine",
  detail: {
    type: "report", step, total_steps: total, epoch: step / 2, train_loss: 3 - step / 2, learning_rate: 1e-4,
    tokens_per_second: 90, iterations_per_second: 1, trained_tokens: step * 10, peak_memory: 1e9, eta_seconds: total - step,
    ranks: group
      ? [0, 1].map((rank) => ({ rank, trained_tokens: 5, compute_seconds: 0.5, exchange_seconds: 0.1, tokens_per_second: 10 }))
      : [],
  },
});
const started = (resumed_from: number | null, total = 4): TrainProgress => ({
  stage: "engine",
  detail: {
    type: "started", total_steps: total, resumed_from, trainable_parameters: 1000, batches_per_epoch: 2,
    memory: { batch_size: 2, seq_len: 64, weights: 1, adapters: 1, activations: 1, logits: 1, total: 4, budget: 10 },
    batch_size_note: null,
  },
});
const evaluated = (step: number, val_loss: number): TrainProgress => ({
  stage: "engine",
  detail: { type: "evaluated", step, val_loss, improved: true, probes: [{ prompt: "p", answer: "a" }] },
});
const checkpoint = (step: number): TrainProgress => ({ stage: "engine", detail: { type: "checkpoint", step, path: `c/${step}` } });
const ended = (status: "succeeded" | "cancelled" | "failed", error = null as null | { code: "train.bad_run"; message: string }): TrainProgress => ({
  stage: "ended",
  detail: { run_id: 7, status, outcome: null, error: error ? { ...error, fields: [] } : null },
});

describe("a run's stream", () => {
  it("says what it is doing until it trains", () => {
    const live = liveRun(7, "m");
    applyProgress(live, { stage: "preparing", detail: { bytes: 1, total_bytes: 2, examples: 5 } });
    expect(live.stage).toBe("Reading the data… 5 examples");
    applyProgress(live, { stage: "prepared", detail: { train: 11, valid: 1, cached: true } });
    expect(live.stage).toBe("11 training and 1 validation examples (prepared before)");
    applyProgress(live, { stage: "loading" });
    expect(stageLine({ stage: "loading" })).toBe(live.stage);
    applyProgress(live, started(null));
    expect([live.stage, live.totalSteps, live.trainable]).toEqual([null, 4, 1000]);
  });

  it("keeps its rows as the backend stores them: an evaluation completes its step's row", () => {
    const live = liveRun(7);
    for (const p of [started(null), report(1), report(2), evaluated(2, 1.5), evaluated(3, 1.2), checkpoint(2)]) applyProgress(live, p);
    expect(live.rows.map((r) => [r.step, r.train_loss, r.val_loss])).toEqual([[1, 2.5, null], [2, 2, 1.5], [3, null, 1.2]]);
    expect(live.rows[1].probes).toBe('[{"prompt":"p","answer":"a"}]');
    expect(live.rows[0].ranks).toBeNull();
    expect(live.last?.step).toBe(2);
    expect(live.last).not.toHaveProperty("type");
    expect(live.checkpoints).toEqual([{ step: 2, path: "c/2" }]);
    expect(lossSeries(live.rows)).toEqual({ train: [[1, 2.5], [2, 2]], valid: [[2, 1.5], [3, 1.2]] });
    // A group's report keeps each rank's figures in its row, as the backend stores them.
    applyProgress(live, report(4, 4, true));
    expect(JSON.parse(live.rows[3].ranks!).map((r: { rank: number }) => r.rank)).toEqual([0, 1]);
  });

  it("ends as the `ended` event says, and resumes from its checkpoint", () => {
    const live = liveRun(7);
    for (const p of [started(null), report(1), report(2), checkpoint(2), report(3)]) applyProgress(live, p);
    live.stopping = true;
    applyProgress(live, ended("cancelled"));
    expect([live.status, live.stopping, live.stage]).toEqual(["cancelled", false, null]);
    expect(resumable(live.status)).toBe(true);
    restart(live);
    expect([live.status, live.end]).toEqual(["running", null]);
    applyProgress(live, started(2));
    expect(live.rows.map((r) => r.step)).toEqual([1, 2]);
    for (const p of [report(3), report(4), ended("succeeded")]) applyProgress(live, p);
    expect(live.rows.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect([live.status, resumable(live.status)]).toEqual(["succeeded", false]);
  });

  it("shows why it failed", () => {
    const live = liveRun(7);
    applyProgress(live, ended("failed", { code: "train.bad_run", message: "no data" }));
    expect([live.status, live.stage]).toEqual(["failed", "[train.bad_run] no data"]);
  });
});

describe("stored and live figures", () => {
  const row = (step: number, loss: number): Metric => ({
    step, epoch: 0, train_loss: loss, val_loss: null, learning_rate: 0, tokens_per_second: 0, peak_memory: 0,
    iterations_per_second: null, trained_tokens: null, probes: null, ranks: null,
  });

  it("merge by step, the live row winning", () => {
    const merged = mergeMetrics([row(1, 3), row(2, 2.5)], [row(2, 2.4), row(3, 2)]);
    expect(merged.map((r) => [r.step, r.train_loss])).toEqual([[1, 3], [2, 2.4], [3, 2]]);
    const stored = [row(1, 3)];
    expect(mergeMetrics(stored, [])).toBe(stored);
  });

  it("count each checkpoint once", () => {
    expect(checkpointSteps([{ step: 5 }, { step: 10 }], [{ step: 10 }, { step: 15 }])).toEqual([5, 10, 15]);
  });
});
