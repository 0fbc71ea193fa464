import { describe, expect, it } from "vitest";
import { removalLine } from "../src/lib/models";
import type { RemovalPlan } from "../src/lib/types";

const plan = (files: string[], kept: string[] = []): RemovalPlan => ({
  name: "tiny",
  root: "models/tiny",
  origin: "converted",
  files: files.map((path) => ({ path, bytes: 1_000_000 })),
  bytes: files.length * 1_000_000,
  kept,
  confirmation: "c",
});

describe("removalLine", () => {
  it("names the one file and its size", () => {
    expect(removalLine(plan(["models/tiny.Q8_0.gguf"]))).toBe("Removes 1 file (1.0 MB): tiny.Q8_0.gguf.");
  });
  it("names at most three files and says what stays", () => {
    const line = removalLine(plan(["m/a", "m/b", "m/c", "m/d", "m/e"], ["m/notes.txt"]));
    expect(line).toBe("Removes 5 files (5.0 MB): a, b, c and 2 more. Keeps 1 file Adapt did not write: notes.txt.");
  });
});
