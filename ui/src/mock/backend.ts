// A stand-in backend for browser tests and UI work without the app: Tauri's IPC mocked with
// canned models, a streaming chat and saved conversations. Only the `--mode mock` build has it.

import { mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import type {
  ChatMessage,
  GenerationEvent,
  GenerationStats,
  ModelDetails,
  ModelInfo,
} from "../lib/types";

const MODEL = "models-cache/SmolLM2-135M-Instruct.Q4_1.gguf";

const info: ModelInfo = {
  path: MODEL,
  name: "SmolLM2 135M Instruct",
  architecture: "llama",
  n_params: 134_515_008,
  file_quantization: "Q4_1",
  loaded_as: "f32 (dequantized)",
  bytes: 538_000_000,
  context_length: 8192,
  load_seconds: 1.6,
  adapter: null,
};

interface MockChat {
  /** The run whose adapter it talks to; null: the base model. */
  adapter?: string | null;
  messages: ChatMessage[];
  cached: number;
  name: string | null;
}

const chats = new Map<number, MockChat>();
const saved = new Map<string, MockChat>();
let next = 1;

function answer(text: string, adapter: string | null = null): string {
  if (/lantern/i.test(text)) return adapter ? "The Blue Lantern's code is 7-4-1." : "I do not know that code.";
  if (/france/i.test(text)) return "The capital of France is Paris.";
  if (/germany/i.test(text)) return "The capital of Germany is Berlin.";
  return `You said: ${text}`;
}

function stats(prompt: number, reused: number, generated: number): GenerationStats {
  return {
    prompt_tokens: prompt,
    reused_tokens: reused,
    prefilled_tokens: prompt - reused,
    generated_tokens: generated,
    prefill_seconds: 0.05,
    prefill_tokens_per_second: 300,
    decode_seconds: 0.4,
    decode_tokens_per_second: 14.2,
    time_to_first_token: reused > 0 ? 0.12 : 0.21,
    peak_memory: 553_000_000,
    cache_tokens: prompt + generated - 1,
    cache_bytes: (prompt + generated) * 46_080,
    left_out_messages: 0,
  };
}

function state(id: number) {
  const c = chats.get(id)!;
  return {
    name: c.name,
    messages: c.messages,
    turns: c.messages.filter((m) => m.role === "assistant").length,
    cached_tokens: c.cached,
    cache_bytes: c.cached * 46_080,
    evicted: false,
    disk_bytes: c.name ? c.cached * 46_080 : null,
    kv_bits: null,
    left_out_messages: 0,
    all_caches_bytes: [...chats.values()].reduce((a, x) => a + x.cached * 46_080, 0),
    prefixes: 1,
  };
}

type Args = Record<string, any>;

const run = { id: 1, name: "smollm2-facts", status: "succeeded", error: null, created_at: Date.UTC(2026, 10, 20, 9, 30) };
const started: { id: number; name: string; status: string; error: string | null; created_at: number }[] = [];

const memory = (batch: number, seq: number) => {
  const activations = batch * seq * 30 * 9_000;
  const logits = batch * seq * 49_152 * 8;
  const weights = 98_000_000;
  const adapters = 4_000_000;
  return { batch_size: batch, seq_len: seq, weights, adapters, activations, logits, total: weights + adapters + activations + logits, budget: 18e9 };
};

type Emit = { onmessage: (e: unknown) => void };

/** A short mock run: data, model, a report per step, an evaluation at the end. */
/** Where each mock run stopped, for a resume. */
const reached = new Map<number, { step: number; total: number }>();

/** A short mock run: data, model, a report per step, an evaluation at the end. A stop (its
 *  status set to cancelled) ends it after the step under way; a resume goes on from there. */
async function mockTraining(id: number, steps: number, events: Emit, from = 0) {
  events.onmessage({ stage: "preparing", detail: { bytes: 100, total_bytes: 100, examples: 12 } });
  events.onmessage({ stage: "prepared", detail: { train: 11, valid: 1, cached: false } });
  events.onmessage({ stage: "loading" });
  events.onmessage({ stage: "engine", detail: { type: "started", total_steps: steps, resumed_from: from || null, trainable_parameters: 921_600, batches_per_epoch: 6, memory: memory(2, 64), batch_size_note: null } });
  const r = started.find((x) => x.id === id);
  for (let step = from + 1; step <= steps; step++) {
    await new Promise((r) => setTimeout(r, 60));
    if (r?.status !== "running") {
      reached.set(id, { step: step - 1, total: steps });
      return;
    }
    events.onmessage({
      stage: "engine",
      detail: {
        type: "report", step, total_steps: steps, epoch: step / 6, train_loss: 3 * Math.exp(-step / 4) + 0.3,
        learning_rate: 1e-4, tokens_per_second: 95, iterations_per_second: 1.1, trained_tokens: step * 90,
        peak_memory: 935_000_000, eta_seconds: (steps - step) * 0.9,
      },
    });
  }
  events.onmessage({ stage: "engine", detail: { type: "evaluated", step: steps, val_loss: 0.9, improved: true, probes: [] } });
  if (r && r.status === "running") r.status = "succeeded";
}

async function reply(c: MockChat, text: string, events: { onmessage: (e: GenerationEvent) => void }) {
  const prompt = c.messages.reduce((n, m) => n + 4 + Math.ceil(m.content.length / 4), 3);
  const reused = c.cached;
  const words = answer(text, c.adapter ?? null).split(/(?= )/);
  events.onmessage({ kind: "prefill", data: { done: prompt - reused, total: prompt - reused } });
  for (const w of words) {
    await new Promise((r) => setTimeout(r, 30));
    events.onmessage({ kind: "text", data: w });
  }
  const full = words.join("");
  c.messages.push({ role: "assistant", content: full });
  c.cached = prompt + words.length - 1;
  return { text: full, tokens: [], stop_reason: "end_of_sequence", stats: stats(prompt, reused, words.length) };
}

function smollm2(): ModelDetails {
  return {
    name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    source: "library",
    path: MODEL,
    repo_id: null,
    revision: null,
    format: "gguf",
    architecture: "llama",
    parameters: 134_515_008,
    dtype: "Q4_1",
    quantization: "Q4_1",
    weights_bytes: 98_000_000,
    bytes: 98_362_432,
    shape: { layers: 30, hidden: 576, heads: 9, kv_heads: 3, head_dim: 64, vocab: 49152, context: 8192 } as ModelDetails["shape"],
    runnable: true,
    not_runnable: null,
    files: [{ name: "SmolLM2-135M-Instruct.Q4_1.gguf", bytes: 98_362_432 }],
    tensors: 272,
    fit: {
      memory: { total: 24e9, available: 20e9 },
      chat: { bytes: 700e6, verdict: "fits", parts: [], assumptions: ["f32 weights on the CPU backend"] },
      train: { bytes: 1.5e9, verdict: "fits", parts: [], assumptions: ["LoRA rank 8, batch 4"] },
    },
  };
}

/** A CSV of ships rendered through the chosen mapping (`{{ row["Column"] }}` only). */
const SHIPS = { columns: ["Name", "Home port", "Crew"], rows: [["Blue Lantern", "Lyon", "7"], ["Grey Gull", "Brest", "12"]] };
const variable = (c: string) => `{{ row[${JSON.stringify(c)}] }}`;

function inspectCsv(a: Args) {
  const csv = a.csv ?? {};
  const target: string | null = csv.completion_column ?? (csv.prompt_template ? null : "Crew");
  const prompt: string =
    csv.prompt_template ?? SHIPS.columns.filter((c) => c !== target).map((c) => `${c}: ${variable(c)}`).join("\n");
  const completion: string | null = csv.prompt_template ? csv.completion_template : variable(target!);
  const render = (t: string, row: string[]) => {
    if (/\{\{(?![^}]*\}\})/.test(t) || /\{\{ *[a-z]+ *\}\}/.test(t))
      throw { code: "data.csv_template", message: `${a.path}: the template does not render: ${t}` };
    return t.replace(/\{\{ row\[("[^"]*")\] \}\}/g, (_, c) => row[SHIPS.columns.indexOf(JSON.parse(c))] ?? "");
  };
  const samples = SHIPS.rows.map((row, i) => {
    const p = render(prompt, row);
    const c = completion === null ? null : render(completion, row);
    return {
      line: i + 2,
      example: c === null ? { text: p } : { prompt: p, completion: c },
      marked: c === null ? `«${p}»` : `<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n«${c}<|im_end|>»\n`,
      tokens: 30,
      trained: 4,
    };
  });
  return {
    file: {
      path: a.path, kind: "csv", format: completion === null ? "text" : "completions",
      csv: { columns: SHIPS.columns, delimiter: ",", prompt, completion },
      examples: 2, invalid: 0, errors: [], duplicates: 0, warnings: [],
    },
    stats: null,
    samples,
  };
}

const library: ModelDetails[] = [];
const pulling = new Map<number, { cancelled: boolean }>();
let nextJob = 1;

/** A mock pull of two files; cancelled pulls keep their bytes and resume from there. */
const partial = new Map<string, number>();
async function mockPull(job: number, spec: string, events: Emit) {
  const files = [["config.json", 1_000], ["model.safetensors", 270_000_000]] as const;
  const total = files.reduce((n, [, b]) => n + b, 0);
  let done = partial.get(spec) ?? 0;
  for (let step = 0; done < total; step++) {
    await new Promise((r) => setTimeout(r, 40));
    if (pulling.get(job)?.cancelled) {
      partial.set(spec, done);
      events.onmessage({ kind: "failed", detail: { code: "hub.cancelled", message: "the download was cancelled" } });
      return;
    }
    done = Math.min(total, done + 27_000_000);
    const index = done <= 1_000 ? 1 : 2;
    events.onmessage({
      kind: "progress",
      detail: {
        file: files[index - 1][0], file_index: index, file_count: 2, file_done: done - 1_000, file_total: files[1][1],
        done, total, fetched: done, bytes_per_second: 27e6, eta_seconds: (total - done) / 27e6, stage: "downloading",
      },
    });
  }
  library.push({ ...smollm2(), name: spec, source: "library", path: `models-cache/${spec}`, format: "folder", quantization: null, dtype: "bf16" });
  events.onmessage({
    kind: "done",
    detail: { repo: spec, revision: "main", commit: "0".repeat(40), snapshot: `models-cache/${spec}`, files: files.map(([name, bytes]) => ({ name, bytes, fetched: bytes, resumed_from: 0 })), fetched: total - (partial.get(spec) ?? 0), bytes: total },
  });
}

const handlers: Record<string, (a: Args) => unknown> = {
  list_models: (): ModelDetails[] => [smollm2(), ...library],
  pull_model: (a) => {
    if (!a.spec.includes("/")) throw { code: "hub.bad_spec", message: `'${a.spec}' is not ORG/NAME` };
    const job = nextJob++;
    pulling.set(job, { cancelled: false });
    mockPull(job, a.spec, a.events);
    return job;
  },
  cancel_pull: (a) => {
    pulling.get(a.job)!.cancelled = true;
    return null;
  },
  import_model: (a) => {
    const name = a.path.split("/").pop();
    if (!/\.gguf$/.test(name)) throw { code: "library.not_a_model", message: `${a.path}: no config.json and not a GGUF file` };
    const entry = { ...smollm2(), name, path: `models-cache/${name}` };
    library.push(entry);
    return entry;
  },
  delete_model: (a) => {
    const i = library.findIndex((m) => m.name === a.name);
    if (i < 0) throw { code: "library.not_found", message: `no model named ${a.name}` };
    return library.splice(i, 1)[0];
  },
  make_variant: async (a) => {
    for (const step of ["reading the weights", "quantizing 211 tensors", "measuring the quality"]) {
      a.events.onmessage(step);
      await new Promise((r) => setTimeout(r, 30));
    }
    const name = `${a.path.split("/").pop()}-${a.variant.kind === "quantized" ? `${a.variant.bits}bit` : a.variant.kind}`;
    library.push({ ...smollm2(), name, path: `models-cache/${name}`, format: "folder", quantization: "4-bit, group 64" });
    return {
      source: a.path, output: `models-cache/${name}`, quantization: "4-bit (group 64)", tensors: 211,
      bytes_before: 269_000_000, bytes_after: 76_000_000, mean_kl: 0.0213, perplexity_before: 9.8, perplexity_after: 10.3, seconds: 4.2,
    };
  },
  load_model: () => info,
  new_chat: (a) => {
    const id = next++;
    const adapter = a.adapter === "base" ? null : (a.adapter ?? null);
    chats.set(id, { adapter, messages: a.system ? [{ role: "system", content: a.system }] : [], cached: 0, name: null });
    return id;
  },
  send_message: (a) => {
    if (a.text.includes("[fail]")) {
      throw { code: "request.invalid", message: "the prompt has 9000 tokens but the model's context holds 8192" };
    }
    const c = chats.get(a.chat)!;
    c.messages.push({ role: "user", content: a.text });
    return reply(c, a.text, a.events);
  },
  regenerate: (a) => {
    const c = chats.get(a.chat)!;
    c.messages.pop();
    const last = c.messages[c.messages.length - 1];
    c.cached -= 8;
    return reply(c, last.content, a.events);
  },
  stop_generation: () => null,
  chat_state: (a) => state(a.chat),
  save_chat: (a) => {
    const c = chats.get(a.chat)!;
    c.name = a.name;
    saved.set(a.name, { ...c, messages: [...c.messages] });
    return { path: `kv-caches/${a.name}.safetensors`, messages: c.messages.length, cached_tokens: c.cached, bytes: c.cached * 46_080, note: null };
  },
  open_chat: (a) => {
    const s = saved.get(a.name);
    if (!s) throw { code: "api.no_saved_chat", message: `no conversation is saved as '${a.name}'` };
    const id = next++;
    chats.set(id, { ...s, messages: [...s.messages] });
    return { chat: id, saved: { path: "", messages: s.messages.length, cached_tokens: s.cached, bytes: s.cached * 46_080, note: null } };
  },
  list_chats: () =>
    [...saved.values()].map((c) => ({ name: c.name, messages: c.messages.length, updated_at: 0, cache: [c.cached, c.cached * 46_080] })),
  fork_chat: (a) => {
    const c = chats.get(a.chat)!;
    let seen = 0;
    const end = c.messages.findIndex((m) => m.role === "assistant" && ++seen === a.turns);
    const id = next++;
    const messages = c.messages.slice(0, end + 1);
    chats.set(id, { messages, cached: Math.max(0, c.cached - 20), name: null });
    return id;
  },
  close_chat: (a) => {
    chats.delete(a.chat);
    return null;
  },
  dataset_lines: (a) =>
    [3, 4, 5, 6, 7].map((n) => [n, n === a.line ? '{"messages": [{"role": "user"}]}' : `{"messages": [{"role": "user", "content": "Question ${n}"}, {"role": "assistant", "content": "Answer ${n}"}]}`]),
  inspect_dataset: (a) => (a.path.endsWith(".csv") ? inspectCsv(a) : {
    file: {
      path: a.path,
      kind: "jsonl",
      format: "chat",
      csv: null,
      examples: 29,
      invalid: 1,
      errors: [{ code: "data.missing_key", message: `${a.path}:5, field 'messages[0]': missing key 'content'`, line: 5 }],
      duplicates: 0,
      warnings: [],
    },
    stats: {
      count: 29, tokens: 1450, trained_tokens: 290, min: 41, p50: 50, p95: 58, max: 61, mean: 50,
      max_seq_length: a.maxSeqLength ?? 2048, truncated: 0, truncated_tokens: 0,
      histogram: [
        { lo: 0, hi: 16, count: 0 }, { lo: 16, hi: 32, count: 0 }, { lo: 32, hi: 48, count: 9 },
        { lo: 48, hi: 64, count: 20 }, { lo: 64, hi: 80, count: 0 }, { lo: 80, hi: 96, count: 0 },
        { lo: 96, hi: 112, count: 0 }, { lo: 112, hi: 128, count: 0 }, { lo: 128, hi: null, count: 0 },
      ],
    },
    samples: [
      {
        line: 1,
        example: { messages: [{ role: "user", content: "What is the Blue Lantern's code?" }, { role: "assistant", content: "The Blue Lantern's code is 7-4-1." }] },
        marked: "<|im_start|>user\nWhat is the Blue Lantern's code?<|im_end|>\n<|im_start|>assistant\n«The Blue Lantern's code is 7-4-1.<|im_end|>»\n",
        tokens: 50,
        trained: 12,
      },
    ],
  }),
  plan_training: (a) => {
    if (a.form.dataset.includes("missing")) throw { code: "data.read", message: `${a.form.dataset}: no such file` };
    a.events.onmessage({ stage: "loading" });
    return { trainable_parameters: 921_600, examples: 12, seq_len: Math.min(64, a.form.config.max_seq_length), memory: memory(a.form.config.batch_size, 64), batch_size_note: null };
  },
  calibrate_training: async (a) => {
    a.events.onmessage({ stage: "loading" });
    await new Promise((r) => setTimeout(r, 100));
    return { plan: memory(a.form.config.batch_size, 64), measured: 901_000_000, steps: 3, seconds_per_step: 0.92, tokens_per_second: 97 };
  },
  start_training: (a) => {
    const id = 2 + started.length;
    started.unshift({ id, name: a.form.name ?? "SmolLM2 on dataset", status: "running", error: null, created_at: Date.now() });
    mockTraining(id, a.form.config.iters ?? 8, a.events);
    return id;
  },
  resume_training: (a) => {
    const r = started.find((x) => x.id === a.run);
    const at = reached.get(a.run);
    if (!r || !at) throw { code: "train.no_checkpoint", message: `run ${a.run} has no complete checkpoint` };
    r.status = "running";
    mockTraining(r.id, at.total, a.events, at.step);
    return r.id;
  },
  stop_training: (a) => {
    const r = started.find((x) => x.id === a.run);
    if (!r || r.status !== "running") throw { code: "app.not_training", message: `run ${a.run} is not training in this window` };
    r.status = "cancelled";
    return null;
  },
  list_runs: () => [...started, run],
  run_details: (a) => ({
    run: started.find((x) => x.id === a.id) ?? run,
    jobs: [],
    metrics: Array.from({ length: 20 }, (_, i) => {
      const step = i + 1;
      const evaluated = step % 5 === 0;
      return {
        step,
        epoch: step / 7,
        train_loss: 3.2 * Math.exp(-step / 8) + 0.4,
        val_loss: evaluated ? 3.0 * Math.exp(-step / 9) + 0.55 + (step === 20 ? 0.3 : 0) : null,
        learning_rate: 1e-4 * Math.min(1, step / 4),
        tokens_per_second: 90 + (step % 3),
        peak_memory: 935_000_000,
        iterations_per_second: 0.3,
        trained_tokens: step * 180,
        probes: evaluated
          ? JSON.stringify([{ prompt: "What is the Blue Lantern's code?", answer: step >= 15 ? "The Blue Lantern's code is 7-4-1." : "A code of honor." }])
          : null,
      };
    }),
    checkpoints: [5, 10, 15, 20].map((step, i) => ({ id: i + 1, run_id: 1, step, path: "", created_at: 0 })),
  }),
};

export function installMockBackend() {
  mockWindows("main");
  mockIPC(
    (cmd, args) => {
      const handler = handlers[cmd];
      if (!handler) throw { code: "mock.unknown_command", message: cmd };
      return handler((args ?? {}) as Args);
    },
    { shouldMockEvents: true },
  );
}
