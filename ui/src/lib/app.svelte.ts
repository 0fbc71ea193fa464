// State the views share: the loaded model, the current view and the last error.

import type { ApiError, CsvOptions, ModelInfo } from "./types";

export type View = "chat" | "models" | "datasets" | "train" | "runs" | "sweeps" | "server";

export const app = $state({
  model: null as ModelInfo | null,
  view: "chat" as View,
  error: null as ApiError | null,
  /** The dataset file last dropped on the window. */
  dataset: null as string | null,
  /** How the CSV file `path` maps to examples, as set in the Datasets view (Train uses it). */
  csv: null as { path: string; options: CsvOptions } | null,
  /** A model file or folder dropped on the window, to import. */
  importModel: null as string | null,
  /** Bumped by the menu's New Chat. */
  newChat: 0,
  /** The run the Runs view shows (set when a run starts). */
  run: null as number | null,
  /** The sweep the Sweeps view shows (set when a sweep starts). */
  sweep: null as number | null,
});

/** The CSV mapping chosen in Datasets for the file `path`, if any. */
export function csvFor(path: string): CsvOptions | null {
  return app.csv?.path === path.trim() ? app.csv.options : null;
}
