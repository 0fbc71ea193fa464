// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs): do not edit.
// After changing those types: ADAPT_UPDATE_BINDINGS=1 cargo test -p adapt-app bindings

export type ApiError = { 
/**
 * Stable, machine-readable code such as `model.not_found`.
 */
code: string, 
/**
 * What went wrong and what to do about it.
 */
message: string, };

export type CacheKey = { model: string, 
/**
 * Empty for none.
 */
adapter: string, template: string, };

export type ChatId = number;

export type ChatMessage = { 
/**
 * `system`, `user`, `assistant`, `tool`, …
 */
role: string, 
/**
 * The message text.
 */
content: string, };

export type ChatOptions = { 
/**
 * Extra chat-template variables, a JSON object (e.g. `{"enable_thinking": false}`).
 */
template_options: JsonValue, 
/**
 * Keep the KV cache in 8 or 4 bits (`None`: as computed).
 */
kv_bits: number | null, 
/**
 * What happens when the conversation outgrows the model's context.
 */
overflow: Overflow, };

export type ChatState = { 
/**
 * The name it is saved under.
 */
name: string | null, messages: Array<ChatMessage>, turns: number, 
/**
 * Tokens whose keys and values are in memory.
 */
cached_tokens: number, cache_bytes: number, 
/**
 * Its cache left memory to keep within the budget (the next turn reloads it).
 */
evicted: boolean, 
/**
 * Bytes of its cache file, when saved.
 */
disk_bytes: number | null, kv_bits: number | null, 
/**
 * Messages the model no longer sees because the context is full.
 */
left_out_messages: number, 
/**
 * Bytes of every conversation's cache and the shared openings, in memory.
 */
all_caches_bytes: number, 
/**
 * Shared openings kept.
 */
prefixes: number, };

export type CheckpointRecord = { id: number, run_id: number, step: number, path: string, created_at: number, };

export type CsvMapping = { 
/**
 * The header's columns.
 */
columns: Array<string>, 
/**
 * The delimiter used.
 */
delimiter: string, 
/**
 * The prompt template (completions) or text template (text).
 */
prompt: string, 
/**
 * The completion template; `None` makes text examples.
 */
completion: string | null, };

export type DataFormat = "chat" | "completions" | "text";

export type DatasetSample = { 
/**
 * Source line.
 */
line: number, 
/**
 * The example as imported (for CSV: the rendered prompt / completion).
 */
example: JsonValue, 
/**
 * The rendered text with trained tokens between `«` and `»` (with a model).
 */
marked: string | null, 
/**
 * Tokens (with a model).
 */
tokens: number | null, 
/**
 * Trained tokens (with a model).
 */
trained: number | null, };

export type ErrorEntry = { 
/**
 * Stable code.
 */
code: string, 
/**
 * Message naming file, line and field.
 */
message: string, };

export type Estimate = { bytes: number, verdict: Verdict, 
/**
 * (what, bytes), adding up to `bytes`.
 */
parts: Array<[string, number]>, assumptions: Array<string>, };

export type FileKind = "jsonl" | "csv";

export type FileReport = { 
/**
 * The file.
 */
path: string, 
/**
 * JSONL or CSV.
 */
kind: FileKind, 
/**
 * The examples' format (unknown if no line was valid).
 */
format: DataFormat | null, 
/**
 * The CSV column mapping, for CSV.
 */
csv: CsvMapping | null, 
/**
 * Valid examples.
 */
examples: number, 
/**
 * Invalid examples.
 */
invalid: number, 
/**
 * The first `max_errors` errors.
 */
errors: Array<ErrorEntry>, 
/**
 * Examples identical to an earlier one (kept, with a warning).
 */
duplicates: number, 
/**
 * The first `max_errors` warnings.
 */
warnings: Array<Warning>, };

export type Fit = { memory: Memory, chat: Estimate, train: Estimate, };

export type GenerateParams = { 
/**
 * Most tokens to generate.
 */
max_tokens: number, sampling: SamplingParams, 
/**
 * Generation ends before any of these strings; they are not part of the output.
 */
stop: Array<string>, 
/**
 * Prompt tokens processed per forward pass while prefilling.
 */
prefill_chunk: number, 
/**
 * Keep going past end-of-sequence tokens (benchmarks generate a fixed count).
 */
ignore_eos: boolean, };

export type Generation = { text: string, 
/**
 * Generated token ids, without a final end-of-sequence token.
 */
tokens: Array<number>, stop_reason: StopReason | null, stats: GenerationStats, };

export type GenerationEvent = { "kind": "prefill", "data": { done: number, total: number, } } | { "kind": "text", "data": string };

export type GenerationStats = { 
/**
 * Tokens in the prompt.
 */
prompt_tokens: number, 
/**
 * Prompt tokens whose keys and values came from the cache.
 */
reused_tokens: number, 
/**
 * Prompt tokens run through the model.
 */
prefilled_tokens: number, generated_tokens: number, prefill_seconds: number, prefill_tokens_per_second: number, decode_seconds: number, decode_tokens_per_second: number, 
/**
 * From the request to the first generated token.
 */
time_to_first_token: number, 
/**
 * Most bytes MLX held during the request.
 */
peak_memory: number, 
/**
 * Tokens the sequence's KV cache holds after the response.
 */
cache_tokens: number, 
/**
 * Bytes of that cache in memory.
 */
cache_bytes: number, 
/**
 * Messages of a conversation the model no longer sees because the context is full.
 */
left_out_messages: number, };

export type InspectReport = { 
/**
 * Format, counts, errors, warnings.
 */
file: FileReport, 
/**
 * Token lengths (with a model).
 */
stats: LengthStats | null, 
/**
 * The first few valid examples.
 */
samples: Array<DatasetSample>, };

export type JobRecord = { id: number, kind: string, params: string, run_id: number | null, status: Status, progress_done: number, progress_total: number | null, message: string, cancel_requested: boolean, error_code: string | null, error_message: string | null, created_at: number, started_at: number | null, finished_at: number | null, heartbeat_at: number | null, };

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

export type LengthBucket = { 
/**
 * Exclusive lower bound.
 */
lo: number, 
/**
 * Inclusive upper bound.
 */
hi: number | null, 
/**
 * Examples in the bar.
 */
count: number, };

export type LengthStats = { 
/**
 * Examples.
 */
count: number, 
/**
 * All tokens.
 */
tokens: number, 
/**
 * Tokens the loss covers.
 */
trained_tokens: number, 
/**
 * Shortest example.
 */
min: number, 
/**
 * Median length.
 */
p50: number, 
/**
 * 95th percentile.
 */
p95: number, 
/**
 * Longest example.
 */
max: number, 
/**
 * Mean length.
 */
mean: number, 
/**
 * The limit compared against.
 */
max_seq_length: number, 
/**
 * Examples longer than the limit.
 */
truncated: number, 
/**
 * Tokens cut off in all, over the truncated examples.
 */
truncated_tokens: number, 
/**
 * Eight equal bars up to the limit, then one for longer examples.
 */
histogram: Array<LengthBucket>, };

export type Memory = { total: number, available: number, };

export type Metric = { step: number, epoch: number, train_loss: number | null, 
/**
 * Only on steps where validation ran.
 */
val_loss: number | null, learning_rate: number, tokens_per_second: number, 
/**
 * Bytes.
 */
peak_memory: number, iterations_per_second: number | null, 
/**
 * Loss-bearing tokens trained on up to this step.
 */
trained_tokens: number | null, 
/**
 * Probe prompts and their answers at this evaluation, as JSON.
 */
probes: string | null, };

export type ModelDetails = { fit: Fit, 
/**
 * What commands take: `ORG/NAME` for Hub repositories, else the file or folder name.
 */
name: string, source: ModelSource, 
/**
 * What to load: the snapshot folder, the model folder, or the GGUF file.
 */
path: string, repo_id: string | null, 
/**
 * The commit of a Hub snapshot.
 */
revision: string | null, format: ModelFormat, architecture: string | null, parameters: number | null, 
/**
 * The dominant storage type: `bf16`, `f16`, `f32`, or a GGUF type such as `Q4_1`.
 */
dtype: string | null, 
/**
 * `4-bit, group 64` (MLX) or the GGUF quantized type; `None` for float weights.
 */
quantization: string | null, 
/**
 * Bytes of the weight files.
 */
weights_bytes: number, 
/**
 * Bytes of every file.
 */
bytes: number, shape: Shape | null, runnable: boolean, 
/**
 * Why the model cannot run, when it cannot.
 */
not_runnable: string | null, files: Array<ModelFileEntry>, 
/**
 * Tensor count.
 */
tensors: number, };

export type ModelFileEntry = { name: string, bytes: number, };

export type ModelFormat = "folder" | "gguf";

export type ModelInfo = { path: string, name: string, architecture: string, n_params: number, 
/**
 * How the file stores its weights, e.g. "Q4_1".
 */
file_quantization: string, 
/**
 * How the engine holds them, e.g. "f32 (dequantized)".
 */
loaded_as: string, 
/**
 * Bytes of the weights in memory.
 */
bytes: number, context_length: number, load_seconds: number, 
/**
 * The attached adapter: its folder and a fingerprint of its files.
 */
adapter: [string, string] | null, };

export type ModelSource = "library" | "hugging_face_cache" | "external";

export type Opened = { chat: ChatId, saved: SavedChat, };

export type Overflow = "drop_oldest" | "refuse";

export type RunDetails = { run: RunRecord, metrics: Array<Metric>, checkpoints: Array<CheckpointRecord>, jobs: Array<JobRecord>, };

export type RunRecord = { id: number, name: string, model_id: number | null, dataset_id: number | null, config: string, status: Status, error: string | null, created_at: number, started_at: number | null, finished_at: number | null, };

export type SamplingParams = { 
/**
 * 0 picks the most likely token (greedy); higher values flatten the distribution.
 */
temperature: number, 
/**
 * Keep the smallest set of tokens whose probabilities sum to at least this (1 = off).
 */
top_p: number, 
/**
 * Keep only the k most likely tokens (0 = off).
 */
top_k: number, 
/**
 * Drop tokens less likely than `min_p` × the most likely one (0 = off).
 */
min_p: number, 
/**
 * Penalize tokens seen in the last `repetition_context` tokens (1 = off).
 */
repetition_penalty: number, repetition_context: number, 
/**
 * Seed of the random draw; `None` seeds from the clock.
 */
seed: number | null, };

export type SavedChat = { path: string, messages: number, 
/**
 * Tokens whose keys and values the file holds (0 when no cache could be used).
 */
cached_tokens: number, bytes: number, key: CacheKey, 
/**
 * Why the cache could not be used, when it could not.
 */
note: string | null, };

export type SavedConversation = { name: string, messages: number, updated_at: number, 
/**
 * Its cache on disk: tokens and bytes (`None`: removed, the history is processed again).
 */
cache: [number, number] | null, };

export type Shape = { layers: number, hidden: number, heads: number, kv_heads: number, head_dim: number, vocab: number, 
/**
 * The longest context the model was trained for, when stated.
 */
context: number | null, };

export type Status = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "interrupted";

export type StopReason = "end_of_sequence" | "stop_string" | "max_tokens" | "context_full" | "cancelled";

export type Verdict = "fits" | "tight" | "too_big";

export type Warning = { 
/**
 * Stable code, e.g. `data.duplicate`.
 */
code: string, 
/**
 * What and where.
 */
message: string, };
