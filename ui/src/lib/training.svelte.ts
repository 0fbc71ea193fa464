// The training runs this window follows, shared by the Train and Runs views: it starts and
// resumes runs and keeps each one's stream by run id until the stream's `ended` event says how
// it ended (nothing is polled). A run another window or process trains is read from its
// record instead.

import { backend } from "./backend";
import { applyProgress, liveRun, restart, type LiveRun } from "./progress";
import type { TrainForm, TrainProgress } from "./types";

class Training {
  /** Each followed run's stream so far, by run id. */
  runs: Record<number, LiveRun> = $state({});
  /** The run Train's card shows: the last one started or resumed here. */
  current: number | null = $state(null);
  /** Streams ended so far (views that list runs read them again when it changes). */
  ended = $state(0);
  /** The runs training now. */
  readonly running = $derived(Object.values(this.runs).filter((r) => r.status === "running"));

  /** Starts a run of `form`; returns its id. */
  start(form: TrainForm): Promise<number> {
    return this.follow(form.model, (on) => backend.startTraining(form, on));
  }

  /** Resumes run `run` from its newest checkpoint; returns its id. */
  resume(run: number): Promise<number> {
    return this.follow(this.runs[run]?.model ?? null, (on) => backend.resumeTraining(run, on));
  }

  /** Asks run `run` to stop (whoever started it); it writes a checkpoint, then its stream ends. */
  async stop(run: number): Promise<void> {
    await backend.stopTraining(run);
    const live = this.runs[run];
    if (live?.status === "running") {
      live.stopping = true;
      live.stage = "Stopping after this step (a checkpoint is written first)…";
    }
  }

  /** Follows the stream `begin` opens. Events that come before the run's id is known wait. */
  private async follow(
    model: string | null,
    begin: (on: (p: TrainProgress) => void) => Promise<number>,
  ): Promise<number> {
    let id: number | null = null;
    const early: TrainProgress[] = [];
    id = await begin((p) => (id === null ? early.push(p) : this.apply(id, p)));
    const kept = this.runs[id];
    if (kept) restart(kept);
    else this.runs[id] = liveRun(id, model);
    this.current = id;
    for (const p of early) this.apply(id, p);
    return id;
  }

  private apply(id: number, p: TrainProgress) {
    const live = this.runs[id];
    if (!live) return;
    applyProgress(live, p);
    if (p.stage === "ended") this.ended += 1;
  }
}

export const training = new Training();
