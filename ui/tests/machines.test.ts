import { describe, expect, it } from "vitest";
import {
  THIS_MACHINE,
  addHost,
  checkLine,
  groupProblem,
  hostProblem,
  lastRanks,
  parseIps,
  rankFigures,
  rankSeries,
  withThisMachine,
} from "../src/lib/machines";
import type { Host, MachineCheck, Metric } from "../src/lib/types";

const here: Host = { ssh: THIS_MACHINE, ips: ["10.0.0.1"] };

const metric = (step: number, ranks: string | null): Metric => ({
  step, epoch: 0, train_loss: 1, val_loss: null, learning_rate: 1e-4, tokens_per_second: 100,
  peak_memory: 0, iterations_per_second: 1, trained_tokens: step * 10, probes: null, ranks,
});

const figures = (a: number, b: number) =>
  JSON.stringify([
    { rank: 0, trained_tokens: 40, compute_seconds: 1, exchange_seconds: 0.2, tokens_per_second: a },
    { rank: 1, trained_tokens: 40, compute_seconds: 2, exchange_seconds: 0.1, tokens_per_second: b },
  ]);

describe("hosts", () => {
  it("reads addresses separated by commas or spaces", () => {
    expect(parseIps(" 10.0.0.2, 10.0.1.2  192.168.1.4,")).toEqual(["10.0.0.2", "10.0.1.2", "192.168.1.4"]);
    expect(parseIps("  ")).toEqual([]);
  });

  it("says what is wrong with a host to add", () => {
    const hosts = [here, { ssh: "mac-b", ips: ["10.0.0.2"] }];
    expect(hostProblem("", ["10.0.0.3"], hosts)).toMatch(/host's name/);
    expect(hostProblem("mac c", ["10.0.0.3"], hosts)).toMatch(/not a host name/);
    expect(hostProblem("-oProxyCommand=x", ["10.0.0.3"], hosts)).toMatch(/not a host name/);
    expect(hostProblem("localhost", ["10.0.0.3"], hosts)).toMatch(/already in the group/);
    expect(hostProblem("mac-b", ["10.0.0.3"], hosts)).toMatch(/mac-b is already/);
    expect(hostProblem("mac-c", [], hosts)).toMatch(/address/);
    expect(hostProblem("mac-c", ["10.0.0.3:22"], hosts)).toMatch(/IP alone/);
    expect(hostProblem("mac-c", ["10.0.0.3"], hosts)).toBeNull();
  });

  it("keeps this machine first with its addresses", () => {
    const added = addHost([{ ssh: THIS_MACHINE, ips: [] }], "mac-b", ["10.0.0.2"], "/opt/adapt");
    expect(added[1]).toEqual({ ssh: "mac-b", ips: ["10.0.0.2"], adapt: "/opt/adapt" });
    const set = withThisMachine(added, ["10.0.0.1"]);
    expect(set.map((h) => h.ssh)).toEqual([THIS_MACHINE, "mac-b"]);
    expect(set[0].ips).toEqual(["10.0.0.1"]);
    expect(withThisMachine([{ ssh: "mac-b", ips: [] }], [])[0].ssh).toBe(THIS_MACHINE);
  });

  it("refuses a group that cannot start", () => {
    const b: Host = { ssh: "mac-b", ips: ["10.0.0.2"] };
    expect(groupProblem([here], 4)).toMatch(/Add another machine/);
    expect(groupProblem([{ ssh: THIS_MACHINE, ips: [] }, b], 4)).toMatch(/this machine's address/);
    expect(groupProblem([here, b, { ...b, ssh: "mac-c" }], 4)).toMatch(/not divisible by the 3 machines/);
    expect(groupProblem([here, b], 4)).toBeNull();
  });

  it("puts a check in one line", () => {
    const check: MachineCheck = {
      ssh: "mac-b", ok: true, reachable: true, problems: [],
      report: { version: "0.1.0", backend: "metal", total_memory: 64 * 2 ** 30, available_memory: 40 * 2 ** 30, paths: [] },
    };
    expect(checkLine(check)).toMatch(/^Adapt 0\.1\.0 · metal · .* free$/);
    expect(checkLine({ ...check, report: null, reachable: false })).toBe("not reachable");
    expect(checkLine({ ...check, report: null })).toBe("reachable, no report");
  });
});

describe("each rank's throughput", () => {
  it("reads the recorded figures, none for a run alone or a broken record", () => {
    expect(rankFigures(metric(1, figures(40, 20)))[1].tokens_per_second).toBe(20);
    expect(rankFigures(metric(1, null))).toEqual([]);
    expect(rankFigures(metric(1, "{not json"))).toEqual([]);
  });

  it("takes the newest step with figures and a series per rank", () => {
    const metrics = [metric(1, figures(40, 20)), metric(2, figures(44, 22)), metric(3, null)];
    expect(lastRanks(metrics)?.step).toBe(2);
    expect(lastRanks([metric(1, null)])).toBeNull();
    const series = rankSeries(metrics);
    expect(series.map((s) => s.rank)).toEqual([0, 1]);
    expect(series[1].points).toEqual([[1, 20], [2, 22]]);
  });
});
