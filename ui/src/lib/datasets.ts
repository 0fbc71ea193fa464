// Dataset report helpers: pure, unit-tested.

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
