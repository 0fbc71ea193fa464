// State the views share: the loaded model, the current view and the last error.

import type { ApiError, ModelInfo } from "./types";

export type View = "chat" | "models" | "datasets" | "runs";

export const app = $state({
  model: null as ModelInfo | null,
  view: "chat" as View,
  error: null as ApiError | null,
  /** The dataset file last dropped on the window. */
  dataset: null as string | null,
});
