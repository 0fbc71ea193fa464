import { describe, expect, it } from "vitest";
import {
  applyPreset,
  blocks,
  duration,
  formProblems,
  fromTrainForm,
  inputProblems,
  matchingPreset,
  otherProblems,
  problemsAt,
  stepsLeft,
  toTrainForm,
  withLength,
  withReports,
  withSchedule,
  type FormState,
} from "../src/lib/train";
import { adapterLabel, adapterRun, adapterValue, attachedValue } from "../src/lib/chat";
import { PRESETS } from "../src/mock/presets";

const [quick, standard, thorough] = PRESETS;

const ready = (over: Partial<FormState> = {}): FormState => ({
  ...fromTrainForm(quick.form),
  model: "models/SmolLM2.gguf",
  dataset: "examples/blue-lantern.jsonl",
  ...over,
});

describe("presets", () => {
  it("are recognised, and again after a change back", () => {
    const form = ready();
    expect(matchingPreset(form, PRESETS)).toBe("quick");
    const t = applyPreset(form, thorough);
    expect(matchingPreset(t, PRESETS)).toBe("thorough");
    expect(t.model).toBe(form.model);
    expect(t.dataset).toBe(form.dataset);
    expect(t.numLayers).toBe(-1);
    expect(t.schedule).toBe("cosine");
    expect(matchingPreset({ ...t, rank: 12 }, PRESETS)).toBeNull();
    expect(matchingPreset({ ...t, rank: 32 }, PRESETS)).toBe("thorough");
  });

  it("keep the method, probes and masking", () => {
    const form = ready({ method: "dora", probes: "a?", maskPrompt: false });
    const s = applyPreset(form, standard);
    expect([s.method, s.probes, s.maskPrompt]).toEqual(["dora", "a?", false]);
    expect(matchingPreset(s, PRESETS)).toBe("standard");
  });

  it("ignore settings that do not apply (steps while counting epochs, a constant rate's floor)", () => {
    const form = ready({ iters: 123 });
    expect(matchingPreset(form, PRESETS)).toBe("quick");
    const decayed = withSchedule(form, "cosine", PRESETS);
    expect(decayed.minRatio).toBe(0.1);
    expect(matchingPreset(decayed, PRESETS)).toBeNull();
    expect(matchingPreset(withSchedule(decayed, "constant", PRESETS), PRESETS)).toBe("quick");
  });

  it("round-trip through the request unchanged", () => {
    for (const p of PRESETS) {
      const form = toTrainForm(fromTrainForm(p.form), p.form);
      expect(form.config).toEqual({ ...p.form.config, schedule: form.config.schedule });
      expect(matchingPreset(fromTrainForm(form), PRESETS)).toBe(p.name);
    }
  });
});

describe("the request", () => {
  it("carries the form's settings as the API's TrainForm", () => {
    const form = ready({ method: "dora", rank: 4, lengthBy: "iters", iters: 40, probes: " a \n\n b ", name: "  " });
    const r = toTrainForm(withSchedule({ ...form, warmup: 2 }, "cosine", PRESETS), quick.form);
    expect(r.config.fine_tune_type).toBe("dora");
    expect(r.qlora).toBe(false);
    expect(r.config.lora_parameters).toEqual({ rank: 4, scale: 20, dropout: 0, keys: null });
    expect(r.config.iters).toBe(40);
    expect(r.config.epochs).toBeNull();
    expect(r.config.schedule).toEqual({ kind: "cosine", warmup: 2, min_ratio: 0.1 });
    expect(r.config.lr_schedule).toBeNull();
    expect(r.config.probes).toEqual(["a", "b"]);
    expect(r.config.early_stopping_patience).toBeNull();
    expect(r.name).toBeNull();
    // What the form does not show comes from the preset it started from.
    expect(r.config.val_batches).toBe(quick.form.config.val_batches);
    expect(r.config.optimizer).toBe(quick.form.config.optimizer);
  });

  it("sends QLoRA as LoRA on the model as stored, a constant rate as an intent, 0 patience as off", () => {
    const r = toTrainForm(ready({ method: "qlora", patience: 0 }), quick.form);
    expect(r.qlora).toBe(true);
    expect(r.config.fine_tune_type).toBe("lora");
    expect(r.config.schedule).toEqual({ kind: "constant", warmup: 0 });
    expect(r.config.early_stopping_patience).toBeNull();
    expect(toTrainForm(ready({ patience: 2 }), quick.form).config.early_stopping_patience).toBe(2);
  });

  it("sends the precision, which a preset leaves as it is", () => {
    expect(ready().precision).toBe("auto");
    const form = ready({ precision: "bf16" });
    expect(toTrainForm(form, quick.form).config.precision).toBe("bf16");
    expect(applyPreset(form, thorough).precision).toBe("bf16");
    expect(matchingPreset(form, PRESETS)).toBe("quick");
  });

  it("takes the CSV mapping chosen in Datasets", () => {
    const csv = { delimiter: null, prompt_template: "Q", completion_template: "A", completion_column: null };
    expect(toTrainForm(ready(), quick.form, csv).csv).toBe(csv);
    expect(toTrainForm(ready(), quick.form).csv).toEqual(quick.form.csv);
  });

  it("names inputs that cannot be read and sends the preset's value in their place", () => {
    const form = ready({ rank: null as unknown as number, batchSize: 2.5, saveEvery: -3, learningRate: NaN });
    const p = inputProblems(form);
    expect(p.map((x) => x.field).sort()).toEqual(
      ["config.batch_size", "config.learning_rate", "config.lora_parameters.rank", "config.save_every"].sort(),
    );
    expect(problemsAt(p, "config.batch_size")[0].message).toMatch(/whole/);
    const r = toTrainForm(form, quick.form);
    expect(r.config.lora_parameters.rank).toBe(quick.form.config.lora_parameters.rank);
    expect(r.config.batch_size).toBe(quick.form.config.batch_size);
    // Values that read fine are the API's to judge (rank 0 is sent, not refused here).
    expect(inputProblems(ready({ rank: 0, numLayers: -1 }))).toEqual([]);
    expect(inputProblems(ready({ lengthBy: "iters", iters: null }))[0].field).toBe("config.iters");
    expect(inputProblems(ready({ schedule: "linear", minRatio: null }))[0].field).toBe("config.schedule.min_ratio");
  });

  it("switches between epochs and steps, steps starting from the run's step count", () => {
    const steps = withLength(ready(), "iters", 27, PRESETS);
    expect([steps.lengthBy, steps.iters]).toEqual(["iters", 27]);
    expect(toTrainForm(steps, quick.form).config.epochs).toBeNull();
    expect(withLength({ ...steps, iters: 5 }, "iters", 27, PRESETS).iters).toBe(5);
    const back = withLength(steps, "epochs", 27, PRESETS);
    expect(toTrainForm(back, quick.form).config).toMatchObject({ iters: null, epochs: 1 });
  });

  it("reports often enough to draw a short run", () => {
    const f = quick.form;
    expect(withReports(f, 8).config.steps_per_report).toBe(1);
    expect(withReports(f, 100).config.steps_per_report).toBe(5);
    expect(withReports(f, 10_000).config.steps_per_report).toBe(f.config.steps_per_report);
    expect(withReports(f, null)).toBe(f);
  });
});

describe("problems", () => {
  it("show unreadable inputs first, the API's for the other fields, then a refusal's", () => {
    const input = [{ field: "config.batch_size", message: "Enter a whole number.", warning: false }];
    const checked = [
      { field: "config.batch_size", message: "must be at least 1", warning: false },
      { field: "config.learning_rate", message: "is high", warning: true },
    ];
    const refused = [
      { field: "config.learning_rate", message: "is high", warning: true },
      { field: "config.val_batches", message: "must be -1 (all) or at least 1", warning: false },
    ];
    const all = formProblems(input, checked, refused);
    expect(all.map((p) => p.message)).toEqual(["Enter a whole number.", "is high", "must be -1 (all) or at least 1"]);
    expect(otherProblems(all).map((p) => p.field)).toEqual(["config.val_batches"]);
    expect(blocks(all)).toBe(true);
    expect(blocks(problemsAt(all, "config.learning_rate"))).toBe(false);
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

  it("names adapters and finds the attached one", () => {
    const run = { id: 3, name: "facts", path: "/data/runs/7", run_id: 7, base_model_id: null, created_at: 0, base_model: null };
    const own = { id: 4, name: "mine", path: "/adapters/mine", run_id: null, base_model_id: null, created_at: 0, base_model: null };
    expect([adapterValue(run), adapterLabel(run)]).toEqual(["7", "#7 facts"]);
    expect([adapterValue(own), adapterLabel(own)]).toEqual(["/adapters/mine", "mine"]);
    expect(attachedValue([run, own], ["/adapters/mine/", "f"])).toBe("/adapters/mine");
    expect(attachedValue([run, own], ["/data/runs/7", "f"])).toBe("7");
    expect(attachedValue([], ["/data/runs/9", "f"])).toBe("9");
    expect(attachedValue([run], ["/elsewhere/x", "f"])).toBe("/elsewhere/x");
    expect(attachedValue([run], null)).toBe("");
  });

  it("finds the run of an attached adapter folder", () => {
    expect(adapterRun(["data/runs/12", "f"])).toBe(12);
    expect(adapterRun(["C:\\adapt\\runs\\3\\", "f"])).toBe(3);
    expect(adapterRun(["/somewhere/my-adapter", "f"])).toBeNull();
    expect(adapterRun(null)).toBeNull();
  });
});

import { isModelPath, isRepoSpec, pullEnded, pullLine, variantsFor } from "../src/lib/models";
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

  it("says how a pull ended", () => {
    const pulled = {
      repo: "o/n", revision: "main", commit: "c", snapshot: "s", fetched: 40e6, bytes: 270e6,
      files: [{ name: "a", bytes: 1, fetched: 1, resumed_from: 0 }, { name: "b", bytes: 2, fetched: 2, resumed_from: 0 }],
    };
    expect(pullEnded({ job: 1, status: "succeeded", pulled, error: null })).toEqual({
      state: "done", line: "2 files, 270 MB (40 MB fetched now)", error: null,
    });
    expect(pullEnded({ job: 1, status: "cancelled", pulled: null, error: null }).state).toBe("cancelled");
    const failed = pullEnded({ job: 1, status: "failed", pulled: null, error: { code: "hub.offline", message: "no network", fields: [] } });
    expect(failed).toEqual({ state: "failed", line: null, error: "[hub.offline] no network" });
  });
});

import { isDatasetPath, isTemplateError, learnColumn, learnedColumn, previewRow, withTemplates } from "../src/lib/datasets";

describe("dataset files", () => {
  it("are the files the backend reads", () => {
    expect(isDatasetPath("/d/train.JSONL")).toBe(true);
    expect(isDatasetPath("/d/rows.tsv")).toBe(true);
    expect(isDatasetPath("/d/rows.json")).toBe(false);
  });

  it("tell a template's error from the file's", () => {
    expect(isTemplateError("data.csv_template")).toBe(true);
    expect(isTemplateError("data.csv_unknown_column")).toBe(true);
    expect(isTemplateError("data.csv_header")).toBe(false);
    expect(isTemplateError("data.io")).toBe(false);
  });
});

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
