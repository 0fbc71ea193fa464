// Dataset report helpers: pure, unit-tested.

import type { CsvOptions, ErrorCode, JsonValue } from "./types";

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

/** Whether a dropped path is a file the Datasets view reads (the backend reads CSV, TSV and
 *  JSONL files). */
export function isDatasetPath(path: string): boolean {
  return /\.(csv|tsv|jsonl)$/i.test(path);
}

/** The errors of a CSV mapping's templates (shown beside the template editor). */
const TEMPLATE_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["data.csv_template", "data.csv_unknown_column"]);

/** Whether `code` says a CSV mapping's template or column is wrong. */
export function isTemplateError(code: ErrorCode): boolean {
  return TEMPLATE_ERRORS.has(code);
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

/** An example as one row of the preview table: what the model reads and what it learns. */
export function previewRow(example: JsonValue): { input: string; output: string } {
  const e = (example ?? {}) as Record<string, JsonValue>;
  const text = (v: JsonValue | undefined) => (typeof v === "string" ? v : JSON.stringify(v ?? ""));
  if (Array.isArray(e.messages)) {
    const messages = e.messages as { role?: JsonValue; content?: JsonValue }[];
    const last = messages.length - 1;
    const answer = last >= 0 && messages[last].role === "assistant" ? last : -1;
    return {
      input: messages
        .filter((_, i) => i !== answer)
        .map((m) => `${text(m.role)}: ${text(m.content)}`)
        .join("\n"),
      output: answer >= 0 ? text(messages[answer].content) : "",
    };
  }
  if ("prompt" in e) return { input: text(e.prompt), output: text(e.completion) };
  if ("text" in e) return { input: "", output: text(e.text) };
  return { input: JSON.stringify(example), output: "" };
}
