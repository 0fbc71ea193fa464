// The machines a group trains on, as the Train view keeps them (this machine first, then the
// added hosts, in the hostfile format `adapt launch --hosts` reads), their checks, and each
// rank's throughput as a group run records it.

import { humanBytes } from "./chat";
import type { Point } from "./chart";
import type { Host, MachineCheck, Metric, RankThroughput } from "./types";

/** The `ssh` of the entry that is this machine (rank 0; runs without ssh). */
export const THIS_MACHINE = "localhost";

/** The addresses typed in a field: separated by commas or spaces. */
export function parseIps(text: string): string[] {
  return text.split(/[\s,]+/).filter((s) => s.length > 0);
}

/** What is wrong with a host to add, if anything. */
export function hostProblem(ssh: string, ips: string[], hosts: Host[]): string | null {
  const name = ssh.trim();
  if (!name) return "Give the host's name or address for ssh (e.g. mac-studio.local).";
  if (/\s/.test(name) || name.startsWith("-")) return `"${name}" is not a host name for ssh.`;
  if (name === THIS_MACHINE) return "This machine is already in the group.";
  if (hosts.some((h) => h.ssh === name)) return `${name} is already in the group.`;
  if (ips.length === 0) return "Give the address the other machines reach it at (e.g. 10.0.0.2).";
  const bad = ips.find((ip) => ip.includes(":"));
  if (bad) return `"${bad}" is not an address: give the IP alone (ports are chosen).`;
  return null;
}

/** `hosts` with a new host at the end. */
export function addHost(hosts: Host[], ssh: string, ips: string[], adapt: string | null = null): Host[] {
  return [...hosts, { ssh: ssh.trim(), ips, ...(adapt ? { adapt } : {}) }];
}

/** `hosts` with this machine's addresses set. */
export function withThisMachine(hosts: Host[], ips: string[]): Host[] {
  const rest = hosts.filter((h) => h.ssh !== THIS_MACHINE);
  const mine = hosts.find((h) => h.ssh === THIS_MACHINE);
  return [{ ...(mine ?? {}), ssh: THIS_MACHINE, ips }, ...rest];
}

/** What stops the group from starting, if anything. */
export function groupProblem(hosts: Host[], batchSize: number): string | null {
  if (hosts.length < 2) return "Add another machine to train on a group.";
  const here = hosts.find((h) => h.ssh === THIS_MACHINE);
  if (!here || here.ips.length === 0) return "Give this machine's address (the others connect to it).";
  if (batchSize % hosts.length !== 0)
    return `The batch size ${batchSize} is not divisible by the ${hosts.length} machines: choose a multiple of ${hosts.length}.`;
  return null;
}

/** A check in one line: the machine's figures when it answered, else "not reachable". */
export function checkLine(check: MachineCheck): string {
  const r = check.report;
  if (!r) return check.reachable ? "reachable, no report" : "not reachable";
  return `Adapt ${r.version} · ${r.backend} · ${humanBytes(r.available_memory)} of ${humanBytes(r.total_memory)} free`;
}

/** Each rank's figures recorded in `metric` (none for a run alone). */
export function rankFigures(metric: Metric): RankThroughput[] {
  if (!metric.ranks) return [];
  try {
    const ranks = JSON.parse(metric.ranks);
    return Array.isArray(ranks) ? (ranks as RankThroughput[]) : [];
  } catch {
    return [];
  }
}

/** The newest step with each rank's figures, if the run was a group's. */
export function lastRanks(metrics: Metric[]): { step: number; ranks: RankThroughput[] } | null {
  for (let i = metrics.length - 1; i >= 0; i--) {
    const ranks = rankFigures(metrics[i]);
    if (ranks.length) return { step: metrics[i].step, ranks };
  }
  return null;
}

/** Each rank's tokens per second over the steps, one series per rank. */
export function rankSeries(metrics: Metric[]): { rank: number; points: Point[] }[] {
  const byRank = new Map<number, Point[]>();
  for (const m of metrics) {
    for (const r of rankFigures(m)) {
      if (!byRank.has(r.rank)) byRank.set(r.rank, []);
      byRank.get(r.rank)!.push([m.step, r.tokens_per_second]);
    }
  }
  return [...byRank.entries()].sort((a, b) => a[0] - b[0]).map(([rank, points]) => ({ rank, points }));
}
