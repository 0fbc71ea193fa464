import { describe, expect, it } from "vitest";
import {
  PRESETS,
  applyPreset,
  duration,
  initialForm,
  matchingPreset,
  stepsLeft,
  toRequest,
  totalSteps,
  validate,
  type FormState,
} from "../src/lib/train";
import { adapterRun } from "../src/lib/chat";

const ready = (over: Partial<FormState> = {}): FormState => ({
  ...initialForm(),
  model: "models/SmolLM2.gguf",
  dataset: "examples/blue-lantern.jsonl",
  ...over,
});

describe("presets", () => {
  it("start from Quick and are recognised after a change back", () => {
    const form = ready();
    expect(matchingPreset(form)).toBe("quick");
    const thorough = applyPreset(form, "thorough");
    expect(matchingPreset(thorough)).toBe("thorough");
    expect(thorough.model).toBe(form.model);
    expect(thorough.numLayers).toBe(-1);
    expect(matchingPreset({ ...thorough, rank: 12 })).toBeNull();
  });

  it("each pass validation", () => {
    for (const name of Object.keys(PRESETS) as (keyof typeof PRESETS)[]) {
      expect(validate(applyPreset(ready(), name), false)).toEqual({});
    }
  });
});

describe("validation", () => {
  it("names each field that cannot be sent", () => {
    const p = validate(
      ready({ model: "", dataset: "notes.txt", rank: 0, dropout: 1, learningRate: 0.5, batchSize: 1.5, numLayers: 0 }),
      null,
    );
    expect(Object.keys(p).sort()).toEqual(
      ["batchSize", "dataset", "dropout", "learningRate", "model", "numLayers", "rank"].sort(),
    );
    expect(p.dataset).toMatch(/CSV, TSV or JSONL/);
  });

  it("asks for a quantized model for QLoRA and held-out data for early stopping", () => {
    expect(validate(ready({ method: "qlora" }), false).method).toMatch(/quantize/);
    expect(validate(ready({ method: "qlora" }), true).method).toBeUndefined();
    expect(validate(ready({ patience: 3, validShare: 0 }), null).patience).toMatch(/validation/);
  });
});

describe("the request", () => {
  it("counts steps from the examples left after the held-out share", () => {
    const form = ready({ epochs: 2, batchSize: 4, validShare: 0.1 });
    expect(totalSteps(form, 12)).toBe(2 * Math.ceil(11 / 4));
    expect(totalSteps(form, null)).toBeNull();
    expect(totalSteps({ ...form, lengthBy: "iters", iters: 30 }, null)).toBe(30);
  });

  it("carries the form's settings in mlx-lm's terms", () => {
    const form = ready({ method: "dora", schedule: "cosine", warmup: 2, lengthBy: "iters", iters: 40, probes: " a \n\n b " });
    const r = toRequest(form, 12);
    expect(r.config.fine_tune_type).toBe("dora");
    expect(r.config.iters).toBe(40);
    expect(r.config.epochs).toBeNull();
    expect(r.config.lr_schedule).toEqual({ name: "cosine_decay", arguments: [1e-4, 38, 1e-5], warmup: 2, warmup_init: 0 });
    expect(r.config.probes).toEqual(["a", "b"]);
    expect(r.config.early_stopping_patience).toBeNull();
    expect(r.name).toBeNull();
    expect(toRequest(ready({ schedule: "constant", warmup: 0 }), 12).config.lr_schedule).toBeNull();
    expect(toRequest(ready({ validShare: 0 }), 12).config.keep_best).toBe(false);
  });
});

describe("helpers", () => {
  it("says how long a running run has left", () => {
    expect(stepsLeft(40, 100, 0.5)).toBe(" of 100 · about 2 min 0 s left");
    expect(stepsLeft(40, null, 0.5)).toBe("");
    expect(stepsLeft(40, 100, null)).toBe("");
  });

  it("formats durations", () => {
    expect(duration(42.4)).toBe("42 s");
    expect(duration(200)).toBe("3 min 20 s");
    expect(duration(7300)).toBe("2 h 1 min");
  });

  it("finds the run of an attached adapter folder", () => {
    expect(adapterRun(["data/runs/12", "f"])).toBe(12);
    expect(adapterRun(["C:\\adapt\\runs\\3\\", "f"])).toBe(3);
    expect(adapterRun(["/somewhere/my-adapter", "f"])).toBeNull();
    expect(adapterRun(null)).toBeNull();
  });
});

import { isModelPath, isRepoSpec, pullLine, variantsFor } from "../src/lib/models";
import type { ModelDetails } from "../src/lib/types";

describe("models", () => {
  const model = (over: Partial<ModelDetails>) => ({ runnable: true, format: "folder", quantization: null, ...over }) as ModelDetails;

  it("offers the copies that make sense for each model", () => {
    expect(variantsFor(model({ format: "gguf", quantization: "Q4_1" })).map((v) => v.variant)).toEqual([{ kind: "mlx" }]);
    expect(variantsFor(model({})).map((v) => v.label)).toEqual(["Quantize 4-bit", "Quantize 8-bit"]);
    expect(variantsFor(model({ quantization: "4-bit, group 64" })).map((v) => v.variant.kind)).toEqual(["dequantized"]);
    expect(variantsFor(model({ runnable: false }))).toEqual([]);
  });

  it("tells a model drop from a dataset drop", () => {
    expect(isModelPath("/m/SmolLM2.Q4_1.gguf")).toBe(true);
    expect(isModelPath("/m/Qwen2.5-0.5B-Instruct")).toBe(true);
    expect(isModelPath("/m/qwen/")).toBe(true);
    expect(isModelPath("/d/train.jsonl")).toBe(false);
    expect(isModelPath("/d/notes.txt")).toBe(false);
  });

  it("checks repository ids and describes a pull", () => {
    expect(isRepoSpec("HuggingFaceTB/SmolLM2-135M-Instruct")).toBe(true);
    expect(isRepoSpec("org/name@main")).toBe(true);
    expect(isRepoSpec("just-a-name")).toBe(false);
    expect(
      pullLine({
        file: "model.safetensors", file_index: 2, file_count: 5, file_done: 45e6, file_total: 270e6,
        done: 50e6, total: 280e6, fetched: 40e6, bytes_per_second: 12e6, eta_seconds: 20, stage: "downloading",
      }),
    ).toBe("file 2 of 5 · model.safetensors · 45 MB of 270 MB · 12 MB/s · 20 s left");
  });
});

import { learnColumn, learnedColumn, previewRow, withTemplates } from "../src/lib/datasets";

describe("CSV mapping", () => {
  it("reads back the learned column and builds settings", () => {
    expect(learnedColumn('{{ row["Home port"] }}')).toBe("Home port");
    expect(learnedColumn('{{ row["A \\"quoted\\" name"] }}')).toBe('A "quoted" name');
    expect(learnedColumn('{{ row["Crew"] }} sailors')).toBeNull();
    expect(learnedColumn(null)).toBeNull();
    expect(learnColumn("Crew").completion_column).toBe("Crew");
    expect(withTemplates("Q: {{ q }}", "  ").completion_template).toBeNull();
  });
});

describe("preview rows", () => {
  it("split each format into what the model reads and what it learns", () => {
    expect(
      previewRow({ messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }, { role: "assistant", content: "Hello." }] }),
    ).toEqual({ input: "system: Be brief.\nuser: Hi", output: "Hello." });
    expect(previewRow({ prompt: "2+2=", completion: "4" })).toEqual({ input: "2+2=", output: "4" });
    expect(previewRow({ text: "Once upon a time" })).toEqual({ input: "", output: "Once upon a time" });
    expect(previewRow({ messages: [{ role: "user", content: "Hi" }] })).toEqual({ input: "user: Hi", output: "" });
  });
});
