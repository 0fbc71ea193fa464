// The Models view's logic: which copies a model offers, what a pull reports, what a drop is.

import { humanBytes } from "./chat";
import { isDatasetPath } from "./datasets";
import type { ModelDetails, PullEnd, PullProgress, RemovalPlan, Variant } from "./types";
import { duration } from "./train";

/** The copies of `m` the library can make: GGUF → MLX folder; a folder quantized or back. */
export function variantsFor(m: ModelDetails): { label: string; variant: Variant }[] {
  if (!m.runnable) return [];
  if (m.format === "gguf") return [{ label: "Convert to MLX", variant: { kind: "mlx" } }];
  if (m.quantization) return [{ label: "Dequantize", variant: { kind: "dequantized" } }];
  return [
    { label: "Quantize 4-bit", variant: { kind: "quantized", bits: 4 } },
    { label: "Quantize 8-bit", variant: { kind: "quantized", bits: 8 } },
  ];
}

/** "file 2 of 5 · model.safetensors · 45 MB of 270 MB · 12 MB/s · 20 s left" */
export function pullLine(p: PullProgress): string {
  const parts = [
    `file ${p.file_index} of ${p.file_count}`,
    p.file,
    `${humanBytes(p.file_done)} of ${humanBytes(p.file_total)}`,
  ];
  if (p.stage === "verifying") parts.push("verifying");
  else if (p.bytes_per_second > 0) parts.push(`${humanBytes(p.bytes_per_second)}/s`);
  if (p.eta_seconds !== null && p.stage === "downloading") parts.push(`${duration(p.eta_seconds)} left`);
  return parts.join(" · ");
}

/** Whether a dropped path is a model to import: a GGUF file or a folder (no extension). */
export function isModelPath(path: string): boolean {
  if (isDatasetPath(path)) return false;
  const name = path.split(/[\\/]/).filter(Boolean).pop() ?? "";
  return /\.gguf$/i.test(name) || !/\.[A-Za-z0-9]{1,8}$/.test(name);
}

/** `ORG/NAME` or `ORG/NAME@REVISION`. */
export function isRepoSpec(spec: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w./-]+)?$/.test(spec.trim());
}

/** A pull row's state. */
export type PullState = "running" | "cancelled" | "failed" | "done";

/** How a pull's row reads once its stream says how it ended. */
export function pullEnded(end: PullEnd): { state: PullState; line: string | null; error: string | null } {
  if (end.status === "succeeded" && end.pulled) {
    const p = end.pulled;
    return {
      state: "done",
      line: `${p.files.length} files, ${humanBytes(p.bytes)} (${humanBytes(p.fetched)} fetched now)`,
      error: null,
    };
  }
  if (end.status === "cancelled") return { state: "cancelled", line: null, error: null };
  const e = end.error;
  return { state: "failed", line: null, error: e ? `[${e.code}] ${e.message}` : `the pull ended: ${end.status}` };
}

/** "1 file", "3 files". */
export function fileCount(n: number): string {
  return `${n} file${n === 1 ? "" : "s"}`;
}


/** What Delete will do, said before the second click: "Removes 2 files (98 MB): a, b. Keeps
 *  1 file Adapt did not write: notes.txt." */
export function removalLine(plan: RemovalPlan): string {
  const leaf = (path: string) => path.split(/[\\/]/).filter(Boolean).pop() ?? path;
  const names = (paths: string[]) =>
    paths.length <= 3 ? paths.map(leaf).join(", ") : `${paths.slice(0, 3).map(leaf).join(", ")} and ${paths.length - 3} more`;
  let line = `Removes ${fileCount(plan.files.length)} (${humanBytes(plan.bytes)}): ${names(plan.files.map((f) => f.path))}.`;
  if (plan.kept.length) line += ` Keeps ${fileCount(plan.kept.length)} Adapt did not write: ${names(plan.kept)}.`;
  return line;
}
