// Dataset report helpers: pure, unit-tested.

import type { CsvOptions } from "./types";

/** Text with trained runs between « and » (the backend's marking), split into runs. */
export function markedRuns(marked: string): { text: string; trained: boolean }[] {
  const runs: { text: string; trained: boolean }[] = [];
  let trained = false;
  let text = "";
  for (const ch of marked) {
    if ((ch === "«" && !trained) || (ch === "»" && trained)) {
      if (text) runs.push({ text, trained });
      text = "";
      trained = !trained;
    } else {
      text += ch;
    }
  }
  if (text) runs.push({ text, trained });
  return runs;
}

/** Whether a dropped path is a file the Datasets view reads. */
export function isDatasetPath(path: string): boolean {
  return /\.(csv|tsv|jsonl|json)$/i.test(path);
}

/** The label of a histogram bar. */
export function bucketLabel(b: { lo: number; hi: number | null }): string {
  return b.hi === null ? `> ${b.lo}` : `${b.lo + 1}–${b.hi}`;
}

/** CSV settings that learn one column (the prompt lists the others). */
export function learnColumn(column: string): CsvOptions {
  return { delimiter: null, prompt_template: null, completion_template: null, completion_column: column };
}

/** CSV settings from edited templates; an empty completion makes text examples. */
export function withTemplates(prompt: string, completion: string): CsvOptions {
  return {
    delimiter: null,
    prompt_template: prompt,
    completion_template: completion.trim() ? completion : null,
    completion_column: null,
  };
}

/** The column a default mapping learns, read back from its completion template. */
export function learnedColumn(completion: string | null): string | null {
  const m = completion ? /^\{\{ row\[("(?:[^"\\]|\\.)*")\] \}\}$/.exec(completion.trim()) : null;
  return m ? (JSON.parse(m[1]) as string) : null;
}
