// The shapes the backend's commands return (serde's JSON of the adapt-api types).

export interface ApiError {
  code: string;
  message: string;
}

export interface ModelDetails {
  name: string;
  source: string;
  path: string;
  repo_id: string | null;
  format?: string;
  architecture?: string | null;
  bytes?: number;
  quantization?: string | null;
  [key: string]: unknown;
}

export interface ModelInfo {
  path: string;
  name: string;
  architecture: string;
  n_params: number;
  file_quantization: string;
  loaded_as: string;
  bytes: number;
  context_length: number;
  load_seconds: number;
  adapter: [string, string] | null;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface GenerationStats {
  prompt_tokens: number;
  reused_tokens: number;
  prefilled_tokens: number;
  generated_tokens: number;
  prefill_seconds: number;
  prefill_tokens_per_second: number;
  decode_seconds: number;
  decode_tokens_per_second: number;
  time_to_first_token: number;
  peak_memory: number;
  cache_tokens: number;
  cache_bytes: number;
  left_out_messages: number;
}

export interface Generation {
  text: string;
  tokens: number[];
  stop_reason: string | null;
  stats: GenerationStats;
}

export type GenerationEvent =
  | { kind: "prefill"; data: { done: number; total: number } }
  | { kind: "text"; data: string };

export interface ChatState {
  name: string | null;
  messages: ChatMessage[];
  turns: number;
  cached_tokens: number;
  cache_bytes: number;
  evicted: boolean;
  disk_bytes: number | null;
  kv_bits: number | null;
  left_out_messages: number;
  all_caches_bytes: number;
  prefixes: number;
}

export interface SavedChat {
  path: string;
  messages: number;
  cached_tokens: number;
  bytes: number;
  note: string | null;
}

export interface SavedConversation {
  name: string;
  messages: number;
  updated_at: number;
  cache: [number, number] | null;
}

export interface RunRecord {
  id: number;
  name: string;
  status: string;
  created_at: number;
  [key: string]: unknown;
}

export type ChatId = number;
