// The mock backend's sweeps: trials drawn from the space in a fixed order (the seed shifts
// it), a validation loss that depends on the drawn values, successive halving at the rungs as
// the API judges them, streamed as the API streams a sweep. A stop ends the sweep after the
// step under way; a resume goes on with the trial that was training.

import type { ApiError, Domain, Status, SweepForm, SweepProgress, SweepRecord, TrialRecord } from "../lib/types";

type Args = Record<string, any>;
type Emit = { onmessage: (e: unknown) => void };

function fail(code: ApiError["code"], message: string): ApiError {
  return { code, message, fields: [] };
}

interface MockSweep {
  record: SweepRecord;
  form: SweepForm;
  trials: TrialRecord[];
  curves: Map<number, [number, number][]>;
}
const sweeps: MockSweep[] = [];
/** Runs of trials get ids from here (the canned runs are below). */
let nextRun = 100;

/** Where in each domain trial `n` draws from: a fixed walk, shifted by the seed. */
const DRAWS = [0.5, 0.85, 0.05, 0.7, 0.3, 0.95, 0.15, 0.6];

function draw(d: Domain, n: number, seed: number): unknown {
  const u = DRAWS[(n + seed) % DRAWS.length];
  if ("choice" in d) return d.choice[Math.floor(u * d.choice.length) % d.choice.length];
  if ("log_uniform" in d) {
    const [lo, hi] = d.log_uniform;
    return +Math.exp(Math.log(lo) + u * (Math.log(hi) - Math.log(lo))).toPrecision(4);
  }
  if ("uniform" in d) return +(d.uniform[0] + u * (d.uniform[1] - d.uniform[0])).toPrecision(4);
  return Math.round(d.int[0] + u * (d.int[1] - d.int[0]));
}

/** A trial's validation loss at `fraction` of its steps: lower near a learning rate of 6e-4
 *  and a rank of 8. */
function loss(params: Record<string, unknown>, fraction: number): number {
  const lr = typeof params.learning_rate === "number" ? params.learning_rate : 6e-4;
  const rank = typeof params["lora_parameters.rank"] === "number" ? params["lora_parameters.rank"] : 8;
  const off = Math.abs(Math.log10(lr / 6e-4)) * 0.6 + Math.abs(Math.log2(rank / 8)) * 0.05;
  return +(1.1 + off + 1.4 * Math.exp(-3 * fraction)).toFixed(4);
}

function rungSteps(total: number, fractions: number[]): number[] {
  const steps = fractions.map((f) => Math.min(total, Math.max(1, Math.ceil(total * f))));
  return [...new Set([...steps, total])].sort((a, b) => a - b);
}

function promote(rung: number, rungs: number, value: number, earlier: number[], reduction: number): boolean {
  if (rung + 1 >= rungs) return true;
  const keep = Math.max(1, Math.floor((earlier.length + 1) / Math.max(1, reduction)));
  return earlier.filter((e) => e < value).length < keep;
}

const pause = () => new Promise((r) => setTimeout(r, 120));

async function runSweep(s: MockSweep, events: Emit, resumed: boolean) {
  const send = (p: SweepProgress) => events.onmessage(p);
  const total = s.form.train.config.iters ?? 8;
  const rungs = rungSteps(total, s.form.rungs);
  const end = (status: Status) => {
    s.record.status = status;
    const best = [...s.trials]
      .filter((t) => t.state === "completed")
      .sort((a, b) => (a.best_val_loss ?? 9) - (b.best_val_loss ?? 9))[0] ?? null;
    if (status === "succeeded") s.record.best_run_id = best?.run_id ?? null;
    send({ stage: "ended", detail: { sweep_id: s.record.id, status, best: status === "succeeded" ? best : null, error: null } });
  };
  send({ stage: "sweep", detail: { sweep_id: s.record.id, resumed } });
  send({ stage: "setup", detail: { stage: "prepared", detail: { train: 11, valid: 3, cached: resumed } } });
  send({ stage: "setup", detail: { stage: "loading" } });
  await pause();
  while (true) {
    let t = s.trials.find((x) => x.state === "running");
    if (!t) {
      if (s.trials.length >= s.form.trials) break;
      const n = s.trials.length;
      const params = Object.fromEntries(Object.entries(s.form.space).map(([k, d]) => [k, draw(d as Domain, n, s.form.seed)]));
      t = { sweep_id: s.record.id, number: n, run_id: nextRun++, params: JSON.stringify(params), state: "running", rung_losses: [], best_val_loss: null, steps: 0, seconds: 0, reason: null };
      s.trials.push(t);
    }
    const params = JSON.parse(t.params);
    send({ stage: "trial_started", detail: { number: t.number, run_id: t.run_id!, params, resumed: t.steps > 0 } });
    const from = t.steps;
    send({ stage: "trial", detail: { number: t.number, event: { type: "started", total_steps: total, resumed_from: from || null, trainable_parameters: 921_600, batches_per_epoch: 6, memory: { batch_size: 2, seq_len: 64, weights: 1, adapters: 1, activations: 1, logits: 1, total: 4, budget: 10 }, batch_size_note: null } } });
    const curve = (s.curves.get(t.number) ?? []).filter(([step]) => step <= from);
    s.curves.set(t.number, curve);
    let pruned = false;
    for (let step = from + 1; step <= total; step++) {
      await pause();
      if (s.record.status !== "running") {
        t.steps = step - 1;
        end("cancelled");
        return;
      }
      t.steps = step;
      t.seconds += 0.8;
      const report = { step, total_steps: total, epoch: step / 6, train_loss: loss(params, step / total) + 0.2, learning_rate: 1e-4, tokens_per_second: 95, iterations_per_second: 1.2, trained_tokens: step * 90, peak_memory: 935_000_000, eta_seconds: total - step, ranks: [] };
      send({ stage: "trial", detail: { number: t.number, event: { type: "report", ...report } } });
      const rung = rungs.indexOf(step);
      if (rung < 0) continue;
      const value = loss(params, step / total);
      curve.push([step, value]);
      t.rung_losses.push(value);
      t.best_val_loss = Math.min(t.best_val_loss ?? value, value);
      send({ stage: "trial", detail: { number: t.number, event: { type: "evaluated", step, val_loss: value, improved: true, probes: [] } } });
      const earlier = s.trials.filter((x) => x.number < t!.number && x.rung_losses.length > rung).map((x) => x.rung_losses[rung]);
      if (!promote(rung, rungs.length, value, earlier, s.form.reduction)) {
        pruned = true;
        t.state = "pruned";
        t.reason = `pruned at step ${step}: validation loss ${value.toFixed(4)} not among the best at this rung`;
        break;
      }
    }
    if (!pruned) {
      t.state = "completed";
      t.reason = `trained all ${total} steps`;
    }
    send({ stage: "trial_ended", detail: { ...t } });
  }
  end("succeeded");
}

/** Trials best first: completed by loss, then pruned ones by how far they got, then the rest. */
function ranked(trials: TrialRecord[]): TrialRecord[] {
  const group = (t: TrialRecord) => (t.state === "completed" || t.state === "pruned" ? 0 : t.state === "running" ? 1 : 2);
  const last = (t: TrialRecord) => (t.state === "completed" ? (t.best_val_loss ?? 9) : (t.rung_losses[t.rung_losses.length - 1] ?? 9));
  return [...trials].sort(
    (a, b) => group(a) - group(b) || b.rung_losses.length - a.rung_losses.length || last(a) - last(b),
  );
}

function find(id: number): MockSweep {
  const s = sweeps.find((x) => x.record.id === id);
  if (!s) throw fail("sweep.not_found", `there is no sweep ${id}`);
  return s;
}

export const sweepHandlers: Record<string, (a: Args) => unknown> = {
  list_sweeps: () => sweeps.map((s) => s.record),
  sweep_details: (a) => {
    const s = find(a.id);
    const trials = ranked(s.trials);
    const total = s.form.train.config.iters ?? 8;
    return {
      sweep: s.record,
      trials,
      rungs: rungSteps(total, s.form.rungs),
      model: s.form.train.model,
      curves: trials.map((t) => ({ number: t.number, points: s.curves.get(t.number) ?? [] })),
    };
  },
  start_sweep: (a) => {
    const form: SweepForm = a.form;
    if (Object.keys(form.space).length === 0) throw fail("sweep.bad_field", "sweep: 'space' name at least one setting to search");
    const id = (sweeps[0]?.record.id ?? 0) + 1;
    const s: MockSweep = {
      record: { id, name: form.train.name ?? "sweep of SmolLM2-135M-Instruct.Q4_1 on blue-lantern", spec: "{}", status: "running", error: null, best_run_id: null, created_at: Date.now(), finished_at: null },
      form,
      trials: [],
      curves: new Map(),
    };
    sweeps.unshift(s);
    runSweep(s, a.events, false);
    return id;
  },
  stop_sweep: (a) => {
    const s = find(a.id);
    if (s.record.status !== "running") throw fail("sweep.not_running", `sweep ${a.id} is not running`);
    s.record.status = "cancelled";
    return null;
  },
  resume_sweep: (a) => {
    const s = find(a.id);
    if (s.record.status === "succeeded") throw fail("sweep.finished", `sweep ${a.id} already finished`);
    if (s.record.status === "running") throw fail("sweep.running", `sweep ${a.id} is running`);
    s.record.status = "running";
    runSweep(s, a.events, true);
    return a.id;
  },
};
