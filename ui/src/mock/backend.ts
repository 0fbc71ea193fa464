// A stand-in backend for browser tests and UI work without the app: Tauri's IPC mocked with
// canned models, a streaming chat and saved conversations. Only the `--mode mock` build has it.

import { mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import type {
  AdapterEntry,
  ApiError,
  ChatMessage,
  DatasetRecord,
  ErrorCode,
  FieldProblem,
  GenerationEvent,
  Host,
  MachineCheck,
  GenerationStats,
  Metric,
  ModelDetails,
  ModelInfo,
  Routing,
  RunRecord,
  ServerSettings,
  Status,
  TopicChoice,
  TrainCheck,
  TrainForm,
  TrainProgress,
} from "../lib/types";
import { PRESETS } from "./presets";
import { sweepHandlers } from "./sweeps";

/** An error as the API gives it. */
function fail(code: ErrorCode, message: string, fields: FieldProblem[] = []): ApiError {
  return { code, message, fields };
}

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
  /** Its reply was asked to stop. */
  stop?: boolean;
  topics?: MockTopics | null;
}

/** A conversation's topics, as the engine keeps them (less the caches, sized from the text). */
interface MockTopics {
  threshold: number;
  topics: { id: number; name: string }[];
  /** The topic of each message (null: a system message). */
  of: (number | null)[];
  next: number;
}

const chats = new Map<number, MockChat>();
const saved = new Map<string, MockChat>();
let next = 1;

function answer(text: string, adapter: string | null = null): string {
  if (/lantern/i.test(text)) return adapter ? "The Blue Lantern's code is 7-4-1." : "I do not know that code.";
  if (/france/i.test(text)) return "The capital of France is Paris.";
  if (/germany/i.test(text)) return "The capital of Germany is Berlin.";
  if (/code/i.test(text))
    return "Here is **bold** and `inline` code:\n\n```python\nprint('<b>hi</b>')\n```\n\n- one\n- two\n\n<img src=x onerror=\"window.__pwned = 1\">";
  if (/story/i.test(text)) return Array.from({ length: 40 }, (_, i) => `word${i + 1}`).join(" ") + ".";
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

/** Subjects the mock's routing knows: a message's words from one subject count as one
 *  strong feature, so messages on one subject land together (a deterministic stand-in for the
 *  model's embedding). */
const SUBJECTS: Record<string, string[]> = {
  baking: ["sourdough", "starter", "dough", "proof", "bread", "flour", "bake", "oven", "yeast", "loaf"],
  cycling: ["bike", "chain", "cog", "gear", "gears", "pedal", "wheel", "tyre", "brake", "saddle"],
  geography: ["capital", "france", "germany", "paris", "berlin", "city", "country"],
};

function embed(text: string): Map<string, number> {
  const v = new Map<string, number>();
  for (const w of text.toLowerCase().split(/[^\p{L}\p{N}']+/u)) {
    const subject = Object.keys(SUBJECTS).find((k) => SUBJECTS[k].includes(w));
    const key = subject ? `#${subject}` : w.length > 4 ? w : null;
    if (key) v.set(key, (v.get(key) ?? 0) + (subject ? 3 : 1));
  }
  return v;
}

function cosine(a: Map<string, number>, b: Map<string, number>): number {
  const norm = (v: Map<string, number>) => Math.sqrt([...v.values()].reduce((n, x) => n + x * x, 0));
  const dot = [...a].reduce((n, [k, x]) => n + x * (b.get(k) ?? 0), 0);
  return norm(a) && norm(b) ? dot / (norm(a) * norm(b)) : 0;
}

/** Longer words that say nothing about a topic (the engine's list). */
const PLAIN_WORDS = new Set([
  "what", "when", "where", "which", "while", "should", "would", "could", "does", "have", "with",
  "that", "this", "there", "their", "they", "from", "your", "about", "into", "just", "some",
  "also", "been",
]);

/** A topic's name from its first message, as the engine names it: its first few longer words
 *  that say something. */
function topicName(text: string): string {
  const words = text
    .split(/[^\p{L}\p{N}'-]+/u)
    .map((w) => w.toLowerCase())
    .filter((w) => [...w].length > 3 && !PLAIN_WORDS.has(w))
    .slice(0, 3);
  return words.length ? words.join(" ") : "topic";
}

const tokensOf = (messages: ChatMessage[]) => messages.reduce((n, m) => n + 4 + Math.ceil(m.content.length / 4), 3);

function topicMessages(c: MockChat, id: number) {
  return c.messages.filter((m, i) => m.role === "system" || c.topics!.of[i] === id);
}

/** Where `text` goes under `choice`, as the engine routes it. */
function route(c: MockChat, text: string, choice: TopicChoice): Routing {
  const t = c.topics!;
  const e = embed(text);
  const similarities = t.topics
    .map((topic) => {
      const centroid = new Map<string, number>();
      c.messages.forEach((m, i) => {
        if (m.role === "user" && t.of[i] === topic.id) for (const [k, x] of embed(m.content)) centroid.set(k, (centroid.get(k) ?? 0) + x);
      });
      return { topic: topic.id, name: topic.name, similarity: Math.round(cosine(e, centroid) * 100) / 100 };
    })
    .sort((a, b) => b.similarity - a.similarity);
  const base = { similarities, threshold: t.threshold };
  const fresh = (picked: boolean) => ({ ...base, topic: t.next, name: topicName(text), opened: true, picked });
  const existing = (id: number, picked: boolean) => {
    const topic = t.topics.find((x) => x.id === id);
    if (!topic) throw fail("request.invalid", `this conversation has no topic ${id}`);
    return { ...base, topic: id, name: topic.name, opened: false, picked };
  };
  if (choice === "new") return fresh(true);
  if (choice !== "auto") return existing(choice.topic, true);
  const best = similarities[0];
  return best && best.similarity >= t.threshold ? existing(best.topic, false) : fresh(false);
}

/** Topics without messages go. */
function prune(t: MockTopics) {
  t.topics = t.topics.filter((x) => t.of.includes(x.id));
}

function topicsView(c: MockChat) {
  const t = c.topics;
  if (!t) return null;
  return {
    settings: { layer: null, threshold: t.threshold },
    layer: 30,
    topics: t.topics.map((topic) => {
      const tokens = tokensOf(topicMessages(c, topic.id));
      const turns = c.messages.filter((m, i) => m.role === "assistant" && t.of[i] === topic.id).length;
      return { id: topic.id, name: topic.name, turns, cache_tokens: tokens, cache_bytes: tokens * 46_080 };
    }),
    message_topics: [...t.of],
  };
}

function cachedTokens(c: MockChat): number {
  const view = topicsView(c);
  return view ? view.topics.reduce((n, t) => n + t.cache_tokens, 0) : c.cached;
}

function state(id: number) {
  const c = chats.get(id)!;
  const cached = cachedTokens(c);
  return {
    name: c.name,
    messages: c.messages,
    turns: c.messages.filter((m) => m.role === "assistant").length,
    cached_tokens: cached,
    cache_bytes: cached * 46_080,
    evicted: false,
    disk_bytes: c.name ? cached * 46_080 : null,
    kv_bits: null,
    left_out_messages: 0,
    all_caches_bytes: [...chats.values()].reduce((a, x) => a + cachedTokens(x) * 46_080, 0),
    prefixes: 1,
    topics: topicsView(c),
  };
}

/** A copy of a conversation (saved, reopened, forked): its topics its own. */
function copyChat(c: MockChat): MockChat {
  return { ...c, messages: [...c.messages], topics: c.topics ? structuredClone(c.topics) : null };
}

type Args = Record<string, any>;

/** The run recorded before (its figures canned), and those started here. */
interface MockRun {
  record: RunRecord;
  metrics: Metric[];
  checkpoints: number[];
  total: number;
  saveEvery: number;
}
const record = (id: number, name: string, status: Status): RunRecord => ({
  id, name, model_id: 1, dataset_id: 1, config: "{}", status, error: null,
  created_at: Date.UTC(2026, 10, 20, 9, 30), started_at: null, finished_at: null,
});
const cannedRun: MockRun = {
  record: record(1, "smollm2-facts", "succeeded"),
  total: 20,
  saveEvery: 5,
  checkpoints: [5, 10, 15, 20],
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
      ranks: null,
    };
  }),
};
/** Newest first. */
const runs: MockRun[] = [cannedRun];
const findRun = (id: number) => runs.find((r) => r.record.id === id);

const memory = (batch: number, seq: number) => {
  const activations = batch * seq * 30 * 9_000;
  const logits = batch * seq * 49_152 * 8;
  const weights = 98_000_000;
  const adapters = 4_000_000;
  return { batch_size: batch, seq_len: seq, weights, adapters, activations, logits, total: weights + adapters + activations + logits, budget: 18e9 };
};

type Emit = { onmessage: (e: unknown) => void };

/** A short mock run, recorded as the backend records one: data, model, a report per step, a
 *  checkpoint every `saveEvery` steps, an evaluation at the end, then how it ended. A stop
 *  (its status set to cancelled) writes a checkpoint after the step under way and ends it; a
 *  resume goes on from its last checkpoint. */
async function mockTraining(r: MockRun, events: Emit, from = 0) {
  const send = (p: TrainProgress) => events.onmessage(p);
  const id = r.record.id;
  const end = (status: Status) =>
    send({ stage: "ended", detail: { run_id: id, status, outcome: null, error: null } });
  send({ stage: "preparing", detail: { bytes: 100, total_bytes: 100, examples: 12 } });
  send({ stage: "prepared", detail: { train: 11, valid: 1, cached: false } });
  send({ stage: "loading" });
  send({ stage: "engine", detail: { type: "started", total_steps: r.total, resumed_from: from || null, trainable_parameters: 921_600, batches_per_epoch: 6, memory: memory(2, 64), batch_size_note: null } });
  r.metrics = r.metrics.filter((m) => m.step <= from);
  const checkpoint = (step: number) => {
    r.checkpoints.push(step);
    send({ stage: "engine", detail: { type: "checkpoint", step, path: `/data/runs/${id}/checkpoints/${step}` } });
  };
  for (let step = from + 1; step <= r.total; step++) {
    await new Promise((res) => setTimeout(res, 60));
    if (r.record.status !== "running") {
      if (step - 1 > from && !r.checkpoints.includes(step - 1)) checkpoint(step - 1);
      end("cancelled");
      return;
    }
    const report = {
      step, total_steps: r.total, epoch: step / 6, train_loss: 3 * Math.exp(-step / 4) + 0.3,
      learning_rate: 1e-4, tokens_per_second: 95, iterations_per_second: 1.1, trained_tokens: step * 90,
      peak_memory: 935_000_000, eta_seconds: (r.total - step) * 0.9, ranks: [],
    };
    const { ranks: _alone, ...row } = report;
    r.metrics.push({ ...row, val_loss: null, probes: null, ranks: null });
    send({ stage: "engine", detail: { type: "report", ...report } });
    if (step % r.saveEvery === 0) checkpoint(step);
  }
  r.metrics[r.metrics.length - 1].val_loss = 0.9;
  send({ stage: "engine", detail: { type: "evaluated", step: r.total, val_loss: 0.9, improved: true, probes: [] } });
  r.record.status = "succeeded";
  end("succeeded");
}

/** The machines kept (this one first), as the API keeps its hostfile. */
let machines: Host[] = [{ ssh: "localhost", ips: [] }];

/** A check as the API gives it: hosts named "offline…" cannot be reached, "bare…" have no
 *  Adapt, the others are ready. */
function checkMachine(host: Host, paths: string[]): MachineCheck {
  const base = { ssh: host.ssh, ok: false, reachable: false, report: null, problems: [] as string[] };
  if (host.ssh.startsWith("offline"))
    return { ...base, problems: [`cannot reach ${host.ssh} over ssh (Connection timed out); turn on Remote Login there (System Settings → General → Sharing) and set up key login from this machine: \`ssh-copy-id ${host.ssh}\`, then \`ssh ${host.ssh}\` must log in without a password`] };
  if (host.ssh.startsWith("bare"))
    return { ...base, reachable: true, problems: [`Adapt is not installed on ${host.ssh} (\`adapt\` was not found); install it there, or set the host's "adapt" to the program's full path`] };
  const report = { version: "0.1.0", backend: "metal", total_memory: 68_719_476_736, available_memory: 41_000_000_000, paths: paths.map((path) => ({ path, present: true })) };
  return { ...base, ok: true, reachable: true, report };
}

/** A group run as rank 0 records it: a report per step with each rank's own figures; rank 1
 *  a little slower. Not followed by the page (the ranks are other processes). */
async function mockGroupRun(r: MockRun, ranks: number) {
  for (let step = 1; step <= r.total; step++) {
    await new Promise((res) => setTimeout(res, 40));
    const figures = Array.from({ length: ranks }, (_, rank) => {
      const tokens = 90;
      const compute = 0.8 + rank * 0.15;
      return { rank, trained_tokens: tokens, compute_seconds: compute, exchange_seconds: 0.05 + (ranks - 1 - rank) * 0.15, tokens_per_second: tokens / compute };
    });
    r.metrics.push({
      step, epoch: step / 6, train_loss: 3 * Math.exp(-step / 4) + 0.3, val_loss: null, learning_rate: 1e-4,
      tokens_per_second: (ranks * 90) / 1.0, peak_memory: 935_000_000, iterations_per_second: 1, trained_tokens: step * ranks * 90,
      probes: null, ranks: JSON.stringify(figures),
    });
    if (step % r.saveEvery === 0) r.checkpoints.push(step);
  }
  r.record.status = "succeeded";
}

/** A stand-in for the API's check of the form: a few of its rules, by field. */
function checkTraining(f: TrainForm): TrainCheck {
  const problems: FieldProblem[] = [];
  const say = (field: string, message: string, warning = false) => problems.push({ field, message, warning });
  const model = [smollm2(), ...library].find((m) => m.path === f.model);
  if (!f.model) say("model", "Choose a model.");
  else if (!model) say("model", `${f.model}: no such model file or folder`);
  else if (f.qlora && !model.quantization) say("model", "QLoRA trains a quantized model: quantize this one in Models first, or use LoRA.");
  if (!f.dataset) say("dataset", "Choose a CSV, TSV or JSONL file (or drop one on the window).");
  else if (!/\.(csv|tsv|jsonl)$/i.test(f.dataset)) say("dataset", "Datasets are CSV, TSV or JSONL files.");
  else if (f.dataset.includes("missing")) say("dataset", `${f.dataset}: no such file`);
  if (!(f.valid_share >= 0 && f.valid_share <= 0.5)) say("valid_share", "Hold out from 0 to 0.5 of the examples.");
  const c = f.config;
  if (c.early_stopping_patience !== null && f.valid_share === 0)
    say("config.early_stopping_patience", "Early stopping watches the validation loss: hold some examples out.");
  if (c.lora_parameters.rank < 1 || c.lora_parameters.rank > 1024) say("config.lora_parameters.rank", "must be a whole number from 1 to 1024");
  if (!(c.learning_rate > 0 && c.learning_rate < 1)) say("config.learning_rate", "must be between 0 and 1, e.g. 1e-4");
  else if (c.learning_rate > 1e-2) say("config.learning_rate", "is high: above 1e-2 LoRA training usually diverges", true);
  if (c.batch_size < 1) say("config.batch_size", "must be at least 1");
  if (c.iters === 0) say("config.iters", "must be at least 1");
  if (c.epochs === 0) say("config.epochs", "must be at least 1");
  if (c.max_seq_length < 16) say("config.max_seq_length", "must be at least 16 tokens");
  if (c.schedule && c.schedule.kind !== "constant" && !(c.schedule.min_ratio >= 0 && c.schedule.min_ratio <= 1))
    say("config.schedule.min_ratio", "must be from 0 to 1");
  const readable = !problems.some((p) => p.field === "dataset");
  const examples = readable ? (f.dataset.endsWith(".csv") ? 2 : 29) : null;
  const train = examples === null ? null : examples - Math.round(examples * f.valid_share);
  const steps = train ? (c.iters ?? (c.epochs ?? 1) * Math.ceil(train / Math.max(1, c.batch_size))) : null;
  return { problems, examples, train_examples: train, total_steps: steps };
}

/** The datasets inspected, the most recent first. */
const datasets: DatasetRecord[] = [];
function recordDataset(path: string, format: string, examples: number) {
  const i = datasets.findIndex((d) => d.path === path);
  if (i >= 0) datasets.splice(i, 1);
  datasets.unshift({ id: datasets.length + 1, name: path.split("/").pop()!, path, format, n_examples: examples, added_at: Date.now() });
}

async function reply(c: MockChat, text: string, events: { onmessage: (e: GenerationEvent) => void }) {
  const prompt = c.messages.reduce((n, m) => n + 4 + Math.ceil(m.content.length / 4), 3);
  const reused = c.cached;
  const words = answer(text, c.adapter ?? null).split(/(?= )/);
  events.onmessage({ kind: "prefill", data: { done: prompt - reused, total: prompt - reused } });
  c.stop = false;
  const said: string[] = [];
  for (const w of words) {
    await new Promise((r) => setTimeout(r, 30));
    if (c.stop) break;
    said.push(w);
    events.onmessage({ kind: "text", data: w });
  }
  const full = said.join("");
  c.messages.push({ role: "assistant", content: full });
  c.cached = prompt + said.length - 1;
  const stopReason = c.stop ? "cancelled" : "end_of_sequence";
  return { text: full, tokens: [], stop_reason: stopReason, stats: stats(prompt, reused, said.length) };
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
      throw fail("data.csv_template", `${a.path}: the template does not render: ${t}`);
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

function inspectJsonl(a: Args) {
  return {
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
      events.onmessage({ kind: "ended", detail: { job, status: "cancelled", pulled: null, error: fail("hub.cancelled", "the download was cancelled") } });
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
  const pulled = {
    repo: spec, revision: "main", commit: "0".repeat(40), snapshot: `models-cache/${spec}`,
    files: files.map(([name, bytes]) => ({ name, bytes, fetched: bytes, resumed_from: 0 })),
    fetched: total - (partial.get(spec) ?? 0), bytes: total,
  };
  events.onmessage({ kind: "ended", detail: { job, status: "succeeded", pulled, error: null } });
}

/** The mock's server: its saved settings and whether it runs. */
const server = {
  settings: { model: null, adapter: null, host: "127.0.0.1", port: 8080, api_key: null, max_concurrency: 16, max_tokens: 4096, cache_memory_mb: null } as ServerSettings,
  running: false,
};

function serverStatus() {
  const running = server.running;
  return {
    running,
    address: running ? `http://${server.settings.host}:${server.settings.port}/v1` : null,
    key: running ? server.settings.api_key : null,
    model: running ? "SmolLM2-135M-Instruct.Q4_1" : null,
    restored: running ? { caches: 2, tokens: 180, bytes: 8_000_000 } : null,
    settings: server.settings,
    log: [],
  };
}

/** What deleting a library model removes: its one file, as the real library records it. */
function removalPlan(name: string) {
  const m = library.find((e) => e.name === name);
  if (!m) throw fail("library.not_found", `no model named ${name} in the library`);
  const files = [{ path: m.path, bytes: m.bytes }];
  return { name, root: m.path, origin: "imported", files, bytes: m.bytes, kept: [], confirmation: `plan:${m.path}:${m.bytes}` };
}

const handlers: Record<string, (a: Args) => unknown> = {
  ...sweepHandlers,
  server_status: () => serverStatus(),
  start_server: (a) => {
    if (!a.settings.model) throw fail("request.invalid", "choose a model to serve");
    server.settings = a.settings;
    server.running = true;
    // A client's two turns: the second reuses the first's tokens.
    setTimeout(() => {
      for (const [cached, prompt] of [[0, 37], [44, 59]]) {
        a.events.onmessage({
          at_ms: Date.now(), endpoint: "POST /v1/chat/completions", model: "SmolLM2-135M-Instruct.Q4_1", status: 200,
          stream: cached > 0, prompt_tokens: prompt, cached_tokens: cached, completion_tokens: 7,
          time_to_first_token: cached > 0 ? 0.25 : 0.86, tokens_per_second: 14.0, seconds: 1.2, error: null,
        });
      }
    }, 30);
    return serverStatus();
  },
  stop_server: () => {
    server.running = false;
    return { caches: 2, tokens: 180, bytes: 8_000_000 };
  },
  list_models: (): ModelDetails[] => [smollm2(), ...library],
  pull_model: (a) => {
    if (!a.spec.includes("/")) throw fail("hub.bad_repo_id", `'${a.spec}' is not ORG/NAME`);
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
    if (!/\.gguf$/.test(name)) throw fail("library.not_a_model", `${a.path}: no config.json and not a GGUF file`);
    const entry = { ...smollm2(), name, path: `models-cache/${name}` };
    library.push(entry);
    return entry;
  },
  removal_plan: (a) => removalPlan(a.name),
  delete_model: (a) => {
    const plan = removalPlan(a.name);
    if (a.confirmation !== plan.confirmation) throw fail("library.unconfirmed", `${a.name}: its files changed since they were shown; look again before deleting`);
    library.splice(library.findIndex((m) => m.name === a.name), 1);
    return plan;
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
  load_model: (a): ModelInfo => {
    const adapter = a.adapter ? (/^\d+$/.test(a.adapter) ? `/data/runs/${a.adapter}` : a.adapter) : null;
    return { ...info, adapter: adapter ? [adapter, "fingerprint"] : null };
  },
  new_chat: (a) => {
    const id = next++;
    const adapter = a.adapter === "base" ? null : (a.adapter ?? null);
    chats.set(id, { adapter, messages: a.system ? [{ role: "system", content: a.system }] : [], cached: 0, name: null });
    return id;
  },
  send_message: (a) => {
    if (a.text.includes("[fail]")) {
      throw fail("request.invalid", "the prompt has 9000 tokens but the model's context holds 8192");
    }
    const c = chats.get(a.chat)!;
    const choice: TopicChoice = a.topic ?? "auto";
    const t = c.topics;
    if (!t) {
      if (choice !== "auto") throw fail("request.invalid", "this conversation does not keep topics; turn them on first");
      c.messages.push({ role: "user", content: a.text });
      return reply(c, a.text, a.events);
    }
    const routing = route(c, a.text, choice);
    a.events.onmessage({ kind: "routed", data: routing });
    if (routing.opened) {
      t.topics.push({ id: routing.topic, name: routing.name });
      t.next += 1;
    }
    c.messages.push({ role: "user", content: a.text });
    t.of.push(routing.topic);
    return reply(c, a.text, a.events).then((g) => {
      t.of.push(routing.topic);
      return g;
    });
  },
  regenerate: (a) => {
    const c = chats.get(a.chat)!;
    c.messages.pop();
    const topic = c.topics?.of.pop();
    const last = c.messages[c.messages.length - 1];
    c.cached -= 8;
    return reply(c, last.content, a.events).then((g) => {
      if (c.topics && topic !== undefined) c.topics.of.push(topic);
      return g;
    });
  },
  set_topics: (a) => {
    const c = chats.get(a.chat);
    if (!c) throw fail("api.no_chat", "that conversation does not exist (it was closed, or the model changed)");
    if (a.settings === null) {
      c.topics = null;
      return state(a.chat);
    }
    const threshold: number = a.settings.threshold;
    if (!(threshold >= -1 && threshold <= 1)) {
      throw fail("request.invalid", `the topic threshold is a cosine similarity between -1 and 1, not ${threshold}`);
    }
    if (c.topics) {
      c.topics.threshold = threshold;
      return state(a.chat);
    }
    // The turns so far make the first topic.
    const first = c.messages.find((m) => m.role === "user");
    c.topics = {
      threshold,
      topics: first ? [{ id: 1, name: topicName(first.content) }] : [],
      of: c.messages.map((m) => (m.role === "system" ? null : 1)),
      next: first ? 2 : 1,
    };
    return state(a.chat);
  },
  move_message: async (a) => {
    const c = chats.get(a.chat);
    if (!c) throw fail("api.no_chat", "that conversation does not exist (it was closed, or the model changed)");
    const t = c.topics;
    if (!t) throw fail("request.invalid", "this conversation does not keep topics; turn them on first");
    const index: number = a.index;
    if (c.messages[index]?.role !== "user") {
      throw fail("request.invalid", `message ${index} is not a user message of this conversation (${c.messages.length} messages)`);
    }
    const to: TopicChoice = a.to;
    if (to === "auto") throw fail("request.invalid", "say which topic the message moves to, or a new one");
    let id: number;
    if (to === "new") {
      id = t.next++;
      t.topics.push({ id, name: topicName(c.messages[index].content) });
    } else {
      if (!t.topics.some((x) => x.id === to.topic)) throw fail("request.invalid", `this conversation has no topic ${to.topic}`);
      id = to.topic;
    }
    // Prefilling the moved turn in its new cache takes a moment.
    await new Promise((r) => setTimeout(r, 40));
    t.of[index] = id;
    if (c.messages[index + 1]?.role === "assistant") t.of[index + 1] = id;
    prune(t);
    return state(a.chat);
  },
  stop_generation: (a) => {
    const c = chats.get(a.chat);
    if (c) c.stop = true;
    return null;
  },
  chat_state: (a) => state(a.chat),
  save_chat: (a) => {
    const c = chats.get(a.chat)!;
    c.name = a.name;
    saved.set(a.name, copyChat(c));
    const cached = cachedTokens(c);
    return { path: `kv-caches/${a.name}.safetensors`, messages: c.messages.length, cached_tokens: cached, bytes: cached * 46_080, note: null };
  },
  open_chat: (a) => {
    const s = saved.get(a.name);
    if (!s) throw fail("api.no_saved_chat", `no conversation is saved as '${a.name}'`);
    const id = next++;
    chats.set(id, copyChat(s));
    const cached = cachedTokens(s);
    return { chat: id, saved: { path: "", messages: s.messages.length, cached_tokens: cached, bytes: cached * 46_080, note: null } };
  },
  list_chats: () =>
    [...saved.values()].map((c) => ({ name: c.name, messages: c.messages.length, updated_at: 0, cache: [cachedTokens(c), cachedTokens(c) * 46_080] })),
  fork_chat: (a) => {
    const c = chats.get(a.chat)!;
    let seen = 0;
    const end = c.messages.findIndex((m) => m.role === "assistant" && ++seen === a.turns);
    const id = next++;
    const messages = c.messages.slice(0, end + 1);
    let topics: MockTopics | null = null;
    if (c.topics) {
      topics = structuredClone(c.topics);
      topics.of = topics.of.slice(0, messages.length);
      prune(topics);
    }
    chats.set(id, { messages, cached: Math.max(0, c.cached - 20), name: null, topics });
    return id;
  },
  close_chat: (a) => {
    chats.delete(a.chat);
    return null;
  },
  dataset_lines: (a) =>
    [3, 4, 5, 6, 7].map((n) => [n, n === a.line ? '{"messages": [{"role": "user"}]}' : `{"messages": [{"role": "user", "content": "Question ${n}"}, {"role": "assistant", "content": "Answer ${n}"}]}`]),
  inspect_dataset: (a) => {
    const report = a.path.endsWith(".csv") ? inspectCsv(a) : inspectJsonl(a);
    recordDataset(a.path, report.file.format ?? report.file.kind, report.file.examples);
    return report;
  },
  list_datasets: () => datasets,
  training_presets: () => PRESETS,
  check_training: (a) => checkTraining(a.form),
  plan_training: (a) => {
    const f: TrainForm = a.form;
    if (f.dataset.includes("missing")) throw fail("data.io", `${f.dataset}: no such file`);
    if (f.config.batch_size > 64) {
      throw fail("request.invalid", "the request's settings are wrong", [
        { field: "config.batch_size", message: "does not fit in memory even with recomputed activations", warning: false },
      ]);
    }
    a.events.onmessage({ stage: "loading" });
    return { trainable_parameters: 921_600, examples: 12, seq_len: Math.min(64, f.config.max_seq_length), memory: memory(f.config.batch_size, 64), batch_size_note: null };
  },
  calibrate_training: async (a) => {
    a.events.onmessage({ stage: "loading" });
    await new Promise((r) => setTimeout(r, 100));
    return { plan: memory(a.form.config.batch_size, 64), measured: 901_000_000, steps: 3, seconds_per_step: 0.92, tokens_per_second: 97 };
  },
  start_training: (a) => {
    const f: TrainForm = a.form;
    const id = runs[0].record.id + 1;
    const r: MockRun = {
      record: { ...record(id, f.name ?? "SmolLM2 on dataset", "running"), created_at: Date.now() },
      metrics: [],
      checkpoints: [],
      total: checkTraining(f).total_steps ?? 8,
      saveEvery: f.config.save_every,
    };
    runs.unshift(r);
    mockTraining(r, a.events);
    return id;
  },
  resume_training: (a) => {
    const r = findRun(a.run);
    if (!r) throw fail("run.not_found", `no run ${a.run}`);
    if (r.record.status === "succeeded") throw fail("train.finished", `run ${a.run} already finished`);
    const from = r.checkpoints[r.checkpoints.length - 1];
    if (from === undefined) throw fail("train.no_checkpoint", `run ${a.run} has no complete checkpoint`);
    r.record.status = "running";
    mockTraining(r, a.events, from);
    return a.run;
  },
  stop_training: (a) => {
    const r = findRun(a.run);
    if (!r || r.record.status !== "running") throw fail("train.not_running", `run ${a.run} is not training`);
    r.record.status = "cancelled";
    return null;
  },
  list_machines: () => machines,
  save_machines: (a) => {
    const hosts: Host[] = a.hosts;
    if (hosts[0]?.ssh !== "localhost")
      throw fail("launch.bad_hosts", `/data/machines/hosts.json: entry 0 must be this machine ("ssh": "localhost"), which runs rank 0`);
    machines = hosts;
    return null;
  },
  check_machine: async (a) => {
    await new Promise((r) => setTimeout(r, 80));
    return checkMachine(a.host, a.paths);
  },
  estimate_group: (a) => {
    const f: TrainForm = a.form;
    const n: number = a.ranks;
    if (f.config.batch_size % n !== 0)
      throw fail("request.invalid", `config.batch_size ${f.config.batch_size} is not divisible by the group's ${n} machines`);
    const per = f.config.batch_size / n;
    const upper = a.tokensPerSecond === null ? null : a.tokensPerSecond * n;
    return {
      ranks: n, batch_per_rank: per, exchanged_bytes: 3_686_400, upper_tokens_per_second: upper,
      per_rank: { trainable_parameters: 921_600, examples: 12, seq_len: 64, memory: memory(per, 64), batch_size_note: null },
      note: `Every machine holds the whole model and needs the memory shown. ${upper === null ? "Measure one machine (Calibrate) for a speed estimate." : `The speed is an upper bound: ${n} × one machine's measured speed.`} Each step also sums 3.5 MiB of gradients across the machines, and the slowest machine sets the pace.`,
    };
  },
  start_group_training: (a) => {
    const f: TrainForm = a.form;
    const id = runs[0].record.id + 1;
    const r: MockRun = {
      record: { ...record(id, f.name ?? "SmolLM2 on dataset (group)", "running"), created_at: Date.now() },
      metrics: [], checkpoints: [], total: 6, saveEvery: 3,
    };
    runs.unshift(r);
    mockGroupRun(r, machines.length);
    return { ranks: machines.length, log: `/data/machines/group-${id}.log` };
  },
  list_runs: () => runs.map((r) => r.record),
  run_details: (a) => {
    const r = findRun(a.id);
    if (!r) throw fail("run.not_found", `no run ${a.id}`);
    return {
      run: r.record,
      jobs: [],
      metrics: r.metrics.map((m) => ({ ...m })),
      checkpoints: r.checkpoints.map((step, i) => ({ id: i + 1, run_id: a.id, step, path: "", created_at: 0 })),
    };
  },
  list_adapters: (): AdapterEntry[] =>
    runs
      .filter((r) => r.record.status === "succeeded")
      .map((r) => ({ id: r.record.id, name: r.record.name, path: `/data/runs/${r.record.id}`, run_id: r.record.id, base_model_id: null, created_at: 0, base_model: null })),
};

/** How many times the page called each command, and what it sent last (the browser test
 *  reads them). */
const calls: Record<string, number> = {};
const lastArgs: Record<string, unknown> = {};

export function installMockBackend() {
  mockWindows("main");
  (window as unknown as { __mockCalls: Record<string, number> }).__mockCalls = calls;
  (window as unknown as { __mockLastArgs: Record<string, unknown> }).__mockLastArgs = lastArgs;
  mockIPC(
    (cmd, args) => {
      calls[cmd] = (calls[cmd] ?? 0) + 1;
      lastArgs[cmd] = args;
      const handler = handlers[cmd];
      if (!handler) throw fail("api.internal", `the mock has no command ${cmd}`);
      // As over IPC, the page gets a copy: the mock's own records change later.
      const copy = (v: unknown) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));
      const result = handler((args ?? {}) as Args);
      return result instanceof Promise ? result.then(copy) : copy(result);
    },
    { shouldMockEvents: true },
  );
}
