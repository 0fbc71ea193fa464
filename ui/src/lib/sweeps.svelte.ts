// The sweeps this window follows, shared by the Train and Sweeps views: it starts, stops and
// resumes sweeps and keeps each one's stream by sweep id until its `ended` event says how it
// ended (nothing is polled). A sweep another window or process runs is read from its record.

import { backend } from "./backend";
import { applySweepProgress, liveSweep, type LiveSweep } from "./sweep";
import type { SweepForm, SweepProgress } from "./types";

class Sweeps {
  /** Each followed sweep's stream so far, by sweep id. */
  live: Record<number, LiveSweep> = $state({});
  /** Streams ended so far (views that list sweeps read them again when it changes). */
  ended = $state(0);
  /** Trials that ended so far (the shown sweep's record is read again when it changes). */
  trialsEnded = $state(0);
  /** The sweeps running now. */
  readonly running = $derived(Object.values(this.live).filter((s) => s.status === "running"));

  /** Starts a sweep of `form`; returns its id. */
  start(form: SweepForm): Promise<number> {
    return this.follow(form.train.model, (on) => backend.startSweep(form, on));
  }

  /** Goes on with sweep `id` where it stopped. */
  resume(id: number): Promise<number> {
    return this.follow(this.live[id]?.model ?? null, (on) => backend.resumeSweep(id, on));
  }

  /** Asks sweep `id` to stop (whoever runs it); its trial writes a checkpoint first. */
  async stop(id: number): Promise<void> {
    await backend.stopSweep(id);
    const live = this.live[id];
    if (live?.status === "running") {
      live.stopping = true;
      live.stage = "Stopping after this step (a checkpoint is written first)…";
    }
  }

  /** Follows the stream `begin` opens. Events that come before the sweep's id is known wait. */
  private async follow(model: string | null, begin: (on: (p: SweepProgress) => void) => Promise<number>): Promise<number> {
    let id: number | null = null;
    const early: SweepProgress[] = [];
    id = await begin((p) => (id === null ? early.push(p) : this.apply(id, p)));
    const kept = this.live[id];
    this.live[id] = { ...liveSweep(id, model ?? kept?.model ?? null), trials: kept?.trials ?? [] };
    for (const p of early) this.apply(id, p);
    return id;
  }

  private apply(id: number, p: SweepProgress) {
    const live = this.live[id];
    if (!live) return;
    applySweepProgress(live, p);
    if (p.stage === "trial_ended") this.trialsEnded += 1;
    if (p.stage === "ended") this.ended += 1;
  }
}

export const sweeps = new Sweeps();
