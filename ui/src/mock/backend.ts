// A stand-in backend for browser tests and UI work without the app: Tauri's IPC mocked with
// canned models, a streaming chat and saved conversations. Only the `--mode mock` build has it.

import { mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import type { ChatMessage, GenerationEvent, GenerationStats, ModelInfo } from "../lib/types";

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
  messages: ChatMessage[];
  cached: number;
  name: string | null;
}

const chats = new Map<number, MockChat>();
const saved = new Map<string, MockChat>();
let next = 1;

function answer(text: string): string {
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

async function reply(c: MockChat, text: string, events: { onmessage: (e: GenerationEvent) => void }) {
  const prompt = c.messages.reduce((n, m) => n + 4 + Math.ceil(m.content.length / 4), 3);
  const reused = c.cached;
  const words = answer(text).split(/(?= )/);
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

const handlers: Record<string, (a: Args) => unknown> = {
  list_models: () => [
    { name: "SmolLM2-135M-Instruct.Q4_1.gguf", source: "models_cache", path: MODEL, repo_id: null, format: "gguf", architecture: "llama", quantization: "Q4_1", bytes: 98_362_432 },
  ],
  load_model: () => info,
  new_chat: (a) => {
    const id = next++;
    chats.set(id, { messages: a.system ? [{ role: "system", content: a.system }] : [], cached: 0, name: null });
    return id;
  },
  send_message: (a) => {
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
  list_runs: () => [
    { id: 1, name: "smollm2-facts", status: "succeeded", created_at: Date.UTC(2026, 10, 20, 9, 30) },
  ],
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
