// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs): do not edit.
// After changing those types: ADAPT_UPDATE_BINDINGS=1 cargo test -p adapt-app bindings

export type AdapterEntry = { 
/**
 * The model (file or folder) the run trained on.
 */
base_model: string | null, id: number, name: string, path: string, run_id: number | null, base_model_id: number | null, created_at: number, };

export type ApiError = { 
/**
 * Stable, machine-readable code such as `model.not_found`.
 */
code: ErrorCode, 
/**
 * What went wrong and what to do about it.
 */
message: string, 
/**
 * For a request whose settings are wrong: each problem by field (empty otherwise).
 */
fields: Array<FieldProblem>, };

export type BatchResize = { 
/**
 * The step (from 1) first taken at the new size.
 */
step: number, 
/**
 * Rows per micro-batch before and after.
 */
from: number, to: number, reason: ResizeReason, 
/**
 * The measured peak that decided it, and the budget it was held against (bytes).
 */
peak_memory: number, budget: number, };

export type CacheKey = { model: string, 
/**
 * Empty for none.
 */
adapter: string, template: string, };

export type Calibration = { 
/**
 * The estimate the run started with (its batch size is the one that fits).
 */
plan: MemoryEstimate, 
/**
 * Peak memory measured after the steps, in bytes.
 */
measured: number, steps: number, seconds_per_step: number, tokens_per_second: number, };

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
prefixes: number, 
/**
 * Its topics, when it keeps them.
 */
topics: TopicsView | null, };

export type CheckpointRecord = { id: number, run_id: number, step: number, path: string, created_at: number, };

export type ConvertReport = { source: string, output: string, 
/**
 * How the output stores its weights, e.g. "4-bit (group 32)".
 */
quantization: string, tensors: number, bytes_before: number, bytes_after: number, 
/**
 * Mean KL divergence (nats per token) of the output's next-token distribution from the
 * source's on a fixed text; `None` where not measured.
 */
mean_kl: number | null, perplexity_before: number | null, perplexity_after: number | null, seconds: number, };

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

export type CsvOptions = { 
/**
 * Field delimiter; default `,` (`\t` for `.tsv`, or when the header has tabs and no commas).
 */
delimiter: number | null, 
/**
 * Jinja template of the prompt.
 */
prompt_template: string | null, 
/**
 * Jinja template of the completion.
 */
completion_template: string | null, 
/**
 * The column to learn; the prompt then lists the other columns as `name: value` lines.
 */
completion_column: string | null, };

export type DataFormat = "chat" | "completions" | "text";

export type DatasetRecord = { id: number, name: string, path: string, format: string, n_examples: number | null, added_at: number, };

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

export type Domain = { "log_uniform": [number, number] } | { "uniform": [number, number] } | { "int": [number, number] } | { "choice": unknown[] };

export type ErrorCode = "api.bad_name" | "api.engine_stopped" | "api.internal" | "api.io" | "api.no_chat" | "api.no_model" | "api.no_saved_chat" | "api.thread" | "app.not_a_dataset" | "app.worker" | "cli.not_confirmed" | "cli.usage" | "convert.exists" | "data.bad_option" | "data.cache_corrupt" | "data.chat_template" | "data.csv_field_count" | "data.csv_header" | "data.csv_malformed" | "data.csv_template" | "data.csv_unknown_column" | "data.duplicate" | "data.empty_content" | "data.empty_file" | "data.file_type" | "data.folder" | "data.invalid" | "data.invalid_utf8" | "data.io" | "data.isolation_set" | "data.line_too_long" | "data.malformed_json" | "data.mask_alignment" | "data.missing_key" | "data.mixed_formats" | "data.no_assistant_turn" | "data.no_examples" | "data.no_line" | "data.tokenize" | "data.unknown_format" | "data.unknown_role" | "data.wrong_type" | "device.gpu_unavailable" | "distributed.config" | "distributed.init" | "distributed.mismatch" | "distributed.peer_lost" | "engine.mlx" | "engine.panicked" | "gguf.bad_magic" | "gguf.io" | "gguf.malformed" | "gguf.truncated" | "gguf.unsupported_type" | "gguf.unsupported_version" | "hub.bad_repo_id" | "hub.bad_response" | "hub.cancelled" | "hub.checksum_mismatch" | "hub.disk_full" | "hub.forbidden" | "hub.gated" | "hub.interrupted" | "hub.io" | "hub.no_such_file" | "hub.not_found" | "hub.nothing_to_pull" | "hub.offline" | "hub.server" | "hub.unauthorized" | "job.failed" | "job.not_found" | "job.panicked" | "launch.bad_hosts" | "launch.no_program" | "launch.rank_failed" | "launch.spawn" | "library.already_in_library" | "library.exists" | "library.io" | "library.not_a_model" | "library.not_found" | "library.link_outside" | "library.no_file_list" | "library.not_owned" | "library.part_of_model" | "library.part_of_repository" | "library.unconfirmed" | "model.invalid" | "model.not_found" | "model.unsupported_architecture" | "model.write_failed" | "paths.no_home" | "quantize.unsupported" | "request.invalid" | "run.not_found" | "serve.bind" | "serve.busy" | "serve.cancelled" | "serve.context_length" | "serve.runtime" | "serve.unauthorized" | "serve.unknown_model" | "store.busy" | "store.constraint" | "store.create_dir" | "store.invalid" | "store.migration" | "store.not_a_database" | "store.not_found" | "store.open" | "store.sqlite" | "store.too_new" | "sweep.bad_field" | "sweep.bad_record" | "sweep.finished" | "sweep.needs_steps" | "sweep.needs_validation" | "sweep.not_found" | "sweep.not_running" | "sweep.running" | "sweep.unknown_knob" | "text.bad_json" | "text.bad_tokenizer_data" | "text.bad_tokenizer_json" | "text.decode" | "text.encode" | "text.io" | "text.missing_metadata" | "text.template_raised" | "text.template_render" | "text.template_syntax" | "text.unsupported_pre_tokenizer" | "text.unsupported_tokenizer" | "text.write" | "train.bad_config" | "train.bad_run" | "train.calibrate" | "train.cancelled" | "train.data_changed" | "train.finished" | "train.no_adapter" | "train.no_checkpoint" | "train.no_data" | "train.not_running";

export type ErrorEntry = { 
/**
 * Stable code.
 */
code: string, 
/**
 * Message naming file, line and field.
 */
message: string, 
/**
 * 1-based line where the example starts, when the problem is at one.
 */
line: number | null, };

export type Estimate = { bytes: number, verdict: Verdict, 
/**
 * (what, bytes), adding up to `bytes`.
 */
parts: Array<[string, number]>, assumptions: Array<string>, };

export type FieldProblem = { 
/**
 * The setting's name as the request spells it (`lora_parameters.rank`, `valid_share`).
 */
field: string, message: string, 
/**
 * Advice rather than a refusal: the run can start anyway.
 */
warning: boolean, };

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

export type FineTuneType = "lora" | "dora";

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

export type GenerationEvent = { "kind": "prefill", "data": { done: number, total: number, } } | { "kind": "text", "data": string } | { "kind": "routed", "data": Routing };

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

export type GroupEstimate = { ranks: number, 
/**
 * Examples of each global batch each machine trains (`batch_size / ranks`).
 */
batch_per_rank: number, 
/**
 * One machine's plan at its share of the batch: each holds the whole model and its
 * adapters, so this memory is needed on every machine.
 */
per_rank: TrainPlan, 
/**
 * Bytes summed across the machines at every step (the adapters' gradients, float32).
 */
exchanged_bytes: number, 
/**
 * The most the group could train, in tokens per second: `ranks` × one machine's
 * measured speed (none until a calibration measured it).
 */
upper_tokens_per_second: number | null, 
/**
 * How to read the figures.
 */
note: string, };

export type GroupStart = { ranks: number, 
/**
 * Every rank's output, line by line with its rank, and how the group ended.
 */
log: string, };

export type Host = { ssh: string, ips: Array<string>, adapt?: string | null, };

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

export type LoraParameters = { rank: number, scale: number, dropout: number, 
/**
 * Projections to adapt, relative to a block (`self_attn.q_proj`, or just `q_proj`);
 * `None`: every projection of the block.
 */
keys: Array<string> | null, };

export type LrSchedule = { name: string, arguments: Array<number>, warmup: number, warmup_init: number, };

export type MachineCheck = { ssh: string, 
/**
 * Ready to train: reachable, the same Adapt, the model and data there.
 */
ok: boolean, 
/**
 * The machine answered (over ssh, or this machine's `adapt` ran).
 */
reachable: boolean, report: MachineReport | null, 
/**
 * Each problem with what to do about it.
 */
problems: Array<string>, };

export type MachineReport = { 
/**
 * Adapt's version there.
 */
version: string, 
/**
 * MLX's backend there (`metal`, `cpu`, `cuda`).
 */
backend: string, 
/**
 * Bytes.
 */
total_memory: number, 
/**
 * Bytes.
 */
available_memory: number, 
/**
 * Each asked path and whether it exists there.
 */
paths: Array<PathPresence>, };

export type Memory = { total: number, available: number, };

export type MemoryEstimate = { 
/**
 * Rows passed through the model at once (the batch is kept by adding their gradients).
 */
batch_size: number, seq_len: number, weights: number, 
/**
 * Adapter weights, their gradients and the optimizer's state.
 */
adapters: number, 
/**
 * Activations kept for the backward pass.
 */
activations: number, 
/**
 * Logits and their gradient.
 */
logits: number, total: number, 
/**
 * What MLX may use on this machine now.
 */
budget: number, };

export type MemoryLeak = { micro_batch_size: number, width: number, first_step: number, last_step: number, 
/**
 * Growth from the first to the last of those steps, bytes.
 */
growth: number, };

export type MemoryProfile = { samples: Array<MemorySample>, 
/**
 * The highest peak of any step, and the preflight estimate beside it.
 */
peak: number, estimate: MemoryEstimate, leaks: Array<MemoryLeak>, 
/**
 * Largest saving first.
 */
suggestions: Array<MemorySuggestion>, };

export type MemorySample = { step: number, 
/**
 * Rows per pass through the model, and the widest batch's tokens per row.
 */
micro_batch_size: number, width: number, 
/**
 * Held by arrays after the step, the step's peak, and MLX's buffer cache after it.
 */
active: number, peak: number, cache: number, 
/**
 * The breakdown of the peak: model weights (with the dequantized copies a quantized
 * model's layers make during a step where the backend multiplies that way), adapter
 * weights with their gradients and optimizer state, logits with their gradient (from the
 * shape), and the rest of what the step added (activations kept for the backward pass).
 */
weights: number, adapters: number, logits: number, activations: number, 
/**
 * What an evaluation after this step (validation batches, probe answers with their KV
 * caches) took above the memory held before it.
 */
evaluation: number | null, };

export type MemorySuggestion = { 
/**
 * The setting, as a configuration spells it.
 */
setting: string, advice: string, 
/**
 * Bytes saved per step, by the estimate.
 */
saves: number, };

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
probes: string | null, 
/**
 * In a group: each rank's own throughput since the report before, as JSON (a list of
 * `{rank, trained_tokens, compute_seconds, exchange_seconds, tokens_per_second}`).
 */
ranks: string | null, };

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

export type ModelEntry = { 
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

export type OptimizerKind = "adam" | "adamw" | "sgd";

export type Overflow = "drop_oldest" | "refuse";

export type PathPresence = { path: string, present: boolean, };

export type PlannedFile = { path: string, 
/**
 * Its size (0 for a link, which takes no room of its own).
 */
bytes: number, };

export type Precision = "auto" | "f32" | "bf16" | "f16";

export type ProbeAnswer = { prompt: string, answer: string, };

export type Progress = { 
/**
 * Bytes read so far.
 */
bytes: number, 
/**
 * Bytes in all.
 */
total_bytes: number, 
/**
 * Examples read so far.
 */
examples: number, };

export type PullEnd = { job: number, 
/**
 * `succeeded`, `failed` or `cancelled`.
 */
status: Status, pulled: Pulled | null, error: ApiError | null, };

export type PullEvent = { "kind": "progress", "detail": PullProgress } | { "kind": "ended", "detail": PullEnd };

export type PullProgress = { 
/**
 * The file being fetched or verified.
 */
file: string, 
/**
 * 1-based position of `file` among `file_count`.
 */
file_index: number, file_count: number, 
/**
 * Bytes of `file` on disk.
 */
file_done: number, file_total: number, 
/**
 * Bytes of all files on disk (including those present before this pull).
 */
done: number, total: number, 
/**
 * Bytes fetched by this pull so far.
 */
fetched: number, 
/**
 * Download speed over this pull (fetched bytes per second).
 */
bytes_per_second: number, 
/**
 * Seconds left at that speed, once it is known.
 */
eta_seconds: number | null, stage: Stage, };

export type Pulled = { repo: string, revision: string, commit: string, 
/**
 * The snapshot folder: load the model from here.
 */
snapshot: string, files: Array<PulledFile>, 
/**
 * Bytes fetched over the network by this pull.
 */
fetched: number, bytes: number, };

export type PulledFile = { name: string, bytes: number, 
/**
 * Bytes fetched for it by this pull (0 when it was already there).
 */
fetched: number, 
/**
 * Where this pull started fetching it (the size of a partial download it resumed).
 */
resumed_from: number, };

export type RankThroughput = { rank: number, 
/**
 * Trained (loss-bearing) tokens of this rank's rows.
 */
trained_tokens: number, 
/**
 * Seconds spent computing gradients (forward and backward passes, evaluated).
 */
compute_seconds: number, 
/**
 * Seconds spent in the gradient exchange, including waiting for slower ranks.
 */
exchange_seconds: number, 
/**
 * `trained_tokens / compute_seconds`: the rank's own speed.
 */
tokens_per_second: number, };

export type RemovalPlan = { 
/**
 * The model's name in the library.
 */
name: string, 
/**
 * The file or folder Adapt put it in.
 */
root: string, 
/**
 * How Adapt came to hold it: `imported`, `pulled` or `converted`.
 */
origin: string, 
/**
 * The files Adapt wrote and removes (folders they leave empty go too).
 */
files: Array<PlannedFile>, 
/**
 * Their bytes in all.
 */
bytes: number, 
/**
 * Files in the model's folder that Adapt did not write: they stay, and so does the
 * folder holding them.
 */
kept: Array<string>, 
/**
 * Gives this plan back to [`Library::remove_planned`]: it changes when the files do.
 */
confirmation: string, };

export type ResizeReason = "over_budget" | "allocation_failed" | "near_budget" | "room";

export type RestoredPrompts = { caches: number, tokens: number, bytes: number, };

export type Routing = { topic: number, name: string, 
/**
 * The message opened this topic.
 */
opened: boolean, 
/**
 * The person picked the topic (no routing by meaning).
 */
picked: boolean, 
/**
 * Every topic's similarity to the message, most similar first.
 */
similarities: Array<TopicSimilarity>, threshold: number, };

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

export type SavedPrompts = { caches: number, tokens: number, bytes: number, };

export type ScheduleIntent = { "kind": "constant", warmup: number, } | { "kind": "cosine", warmup: number, min_ratio: number, } | { "kind": "linear", warmup: number, min_ratio: number, };

export type ServedRequest = { 
/**
 * When it came, in milliseconds since 1970.
 */
at_ms: number, 
/**
 * `POST /v1/chat/completions`, …
 */
endpoint: string, 
/**
 * The model name it asked for.
 */
model: string, 
/**
 * The HTTP status it got.
 */
status: number, stream: boolean, prompt_tokens: number, 
/**
 * Prompt tokens whose keys and values came from the prompt cache.
 */
cached_tokens: number, completion_tokens: number, 
/**
 * From its arrival (queue wait included) to its first generated token, in seconds.
 */
time_to_first_token: number, 
/**
 * Generated tokens per second while decoding.
 */
tokens_per_second: number, 
/**
 * From its arrival to its last byte, in seconds.
 */
seconds: number, 
/**
 * Why it failed, when it did.
 */
error: string | null, };

export type ServerSettings = { 
/**
 * The model to serve (`None`: the bundled one).
 */
model: string | null, 
/**
 * The adapter requests get when they name no model: a run id or a folder.
 */
adapter: string | null, host: string, port: number, 
/**
 * Required of clients (`Authorization: Bearer KEY`); `None` on loopback: no key.
 */
api_key: string | null, 
/**
 * Requests accepted at once (one runs, the others wait in order); more are refused as
 * busy.
 */
max_concurrency: number, 
/**
 * The most tokens a request may ask to generate.
 */
max_tokens: number, 
/**
 * Memory for prompt caches, in MB (`None`: the saved budget).
 */
cache_memory_mb: number | null, };

export type ServerStatus = { running: boolean, 
/**
 * `http://HOST:PORT/v1`, while running.
 */
address: string | null, 
/**
 * The key clients must send, if any.
 */
key: string | null, 
/**
 * The model name requests without one get.
 */
model: string | null, 
/**
 * Prompt caches brought back from disk when it started.
 */
restored: RestoredPrompts | null, 
/**
 * The saved settings.
 */
settings: ServerSettings, 
/**
 * Recent requests, oldest first.
 */
log: Array<ServedRequest>, };

export type Shape = { layers: number, hidden: number, heads: number, kv_heads: number, head_dim: number, vocab: number, 
/**
 * The longest context the model was trained for, when stated.
 */
context: number | null, };

export type Stage = "downloading" | "verifying" | "done";

export type Status = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "interrupted";

export type StopReason = "end_of_sequence" | "stop_string" | "max_tokens" | "context_full" | "cancelled";

export type SweepDetails = { sweep: SweepRecord, 
/**
 * Trials ranked: completed by validation loss, then pruned ones by how far they got,
 * then the rest.
 */
trials: Array<TrialRecord>, 
/**
 * The rungs (steps) of a trial, when every trial has the same budget.
 */
rungs: Array<number>, 
/**
 * The model every trial trains (the base of their adapters).
 */
model: string | null, 
/**
 * Each trial's validation losses as its run recorded them, in the order of `trials`.
 */
curves: Array<TrialCurve>, };

export type SweepEnd = { sweep_id: number, status: Status, 
/**
 * The promoted trial, when one completed.
 */
best: TrialRecord | null, error: ApiError | null, };

export type SweepForm = { train: TrainForm, 
/**
 * Each searched setting by its dotted name (`learning_rate`, `lora_parameters.rank`,
 * `schedule.warmup`) with the values it may take.
 */
space: { [key in string]: Domain }, 
/**
 * Trials in all.
 */
trials: number, 
/**
 * Trials drawn at random before the sampler learns from the others (default: a third of
 * the trials, at least 2).
 */
startup_trials: number | null, seed: number, 
/**
 * Rungs as fractions of each trial's steps.
 */
rungs: Array<number>, 
/**
 * Each rung keeps the best `1 / reduction` of the trials that reached it (1: never prune).
 */
reduction: number, };

export type SweepProgress = { "stage": "sweep", "detail": { sweep_id: number, resumed: boolean, } } | { "stage": "setup", "detail": TrainProgress } | { "stage": "trial_started", "detail": { number: number, run_id: number, params: Record<string, unknown>, resumed: boolean, } } | { "stage": "trial", "detail": { number: number, event: TrainEvent, } } | { "stage": "trial_ended", "detail": TrialRecord } | { "stage": "ended", "detail": SweepEnd };

export type SweepRecord = { id: number, name: string, 
/**
 * The definition and the request (JSON).
 */
spec: string, status: Status, error: string | null, best_run_id: number | null, created_at: number, finished_at: number | null, };

export type TopicChoice = "auto" | { "topic": number } | "new";

export type TopicInfo = { id: number, name: string, turns: number, 
/**
 * Tokens its cache holds (the system message and its turns).
 */
cache_tokens: number, cache_bytes: number, };

export type TopicSettings = { 
/**
 * The block whose hidden states make a message's embedding (1-based; `None`: the last).
 */
layer: number | null, 
/**
 * The least similarity to a topic's centroid (cosine, -1 to 1) for a message to join it;
 * below it for every topic, the message opens a new one.
 */
threshold: number, };

export type TopicSimilarity = { topic: number, name: string, similarity: number, };

export type TopicsView = { settings: TopicSettings, 
/**
 * The block whose hidden states route messages (1-based).
 */
layer: number, topics: Array<TopicInfo>, 
/**
 * The topic of each message (`null`: a system message).
 */
message_topics: Array<number | null>, };

export type TrainCheck = { 
/**
 * Every problem, by field (`config.learning_rate`, `valid_share`, `dataset`, …).
 */
problems: Array<FieldProblem>, 
/**
 * Examples in the dataset file (when it could be read).
 */
examples: number | null, 
/**
 * Of those, the ones trained on (the rest are held out).
 */
train_examples: number | null, 
/**
 * Optimizer steps the run would take, when the data is known.
 */
total_steps: number | null, };

export type TrainConfig = { fine_tune_type: FineTuneType, num_layers: number, lora_parameters: LoraParameters, optimizer: OptimizerKind, 
/**
 * Per-optimizer options as mlx-lm spells them (`{"adamw": {"weight_decay": 0.01}}`).
 */
optimizer_config: JsonValue, learning_rate: number, 
/**
 * The schedule spelled out in mlx-lm's form (decay steps included), as config files give
 * it; wins over `schedule`.
 */
lr_schedule: LrSchedule | null, 
/**
 * The schedule as an intent, sized once the run's step count is known.
 */
schedule: ScheduleIntent | null, batch_size: number, 
/**
 * Optimizer steps; `None` with `epochs` set trains for that many epochs.
 */
iters: number | null, epochs: number | null, max_seq_length: number, steps_per_report: number, steps_per_eval: number, 
/**
 * Validation batches per evaluation (`-1`: the whole split).
 */
val_batches: number, save_every: number, grad_accumulation_steps: number, grad_checkpoint: boolean, seed: number, 
/**
 * Clip the gradients' global norm to this.
 */
max_grad_norm: number | null, 
/**
 * Stop when the validation loss has not improved for this many evaluations.
 */
early_stopping_patience: number | null, 
/**
 * The run's adapter is the one with the best validation loss, not the last.
 */
keep_best: boolean, 
/**
 * Prompts answered greedily with the current adapter at each evaluation.
 */
probes: Array<string>, 
/**
 * Tokens generated per probe answer.
 */
probe_max_tokens: number, 
/**
 * The most memory training may use, in bytes (default: what the machine has free). The
 * micro-batch shrinks when a step nears it and grows back when there is room.
 */
memory_budget: number | null, 
/**
 * Build the next step's batches on a helper thread while a step runs.
 */
prefetch: boolean, 
/**
 * The base's weights and the compute in this float type (adapters and optimizer in f32).
 */
precision: Precision, };

export type TrainEnd = { run_id: number, 
/**
 * `succeeded`, `failed` or `cancelled`.
 */
status: Status, 
/**
 * How the run ended (a cancelled run's, too, when it had started training).
 */
outcome: TrainOutcome | null, error: ApiError | null, };

export type TrainEvent = { "type": "started", total_steps: number, resumed_from: number | null, trainable_parameters: number, batches_per_epoch: number, memory: MemoryEstimate, 
/**
 * Set when the batch size was lowered to fit in memory.
 */
batch_size_note: string | null, } | { "type": "calibrated", estimated: number, measured: number, } | { "type": "report" } & TrainReport | { "type": "evaluated", step: number, val_loss: number, improved: boolean, probes: Array<ProbeAnswer>, } | { "type": "checkpoint", step: number, path: string, } | { "type": "batch_resized" } & BatchResize | { "type": "memory" } & MemorySample | { "type": "memory_profile" } & MemoryProfile;

export type TrainForm = { model: string, dataset: string, 
/**
 * How CSV records become examples (ignored for JSONL).
 */
csv: CsvOptions, 
/**
 * Share of the examples held out for validation, 0..0.5.
 */
valid_share: number, 
/**
 * Train only on the answers (on) or on every token.
 */
mask_prompt: boolean, 
/**
 * QLoRA: the model must be quantized (it trains as stored).
 */
qlora: boolean, config: TrainConfig, name: string | null, };

export type TrainOutcome = { stop: TrainStop, steps: number, total_steps: number, final_train_loss: number | null, best_val_loss: number | null, best_step: number | null, 
/**
 * The adapter folder (`adapters.safetensors` is the best or the last adapter).
 */
adapter_dir: string, trained_tokens: number, seconds: number, peak_memory: number, 
/**
 * Losses of every step, for tests and plots.
 */
losses: Array<number>, };

export type TrainPlan = { trainable_parameters: number, 
/**
 * Examples in the training split.
 */
examples: number, 
/**
 * The longest example, capped at `max_seq_length` (what the estimate assumes).
 */
seq_len: number, 
/**
 * The estimate at the batch size that fits (`memory.batch_size`).
 */
memory: MemoryEstimate, 
/**
 * Set when the configured batch size would not fit.
 */
batch_size_note: string | null, };

export type TrainPreset = { name: string, label: string, hint: string, 
/**
 * The form with the preset's settings (no model or dataset chosen).
 */
form: TrainForm, };

export type TrainProgress = { "stage": "run", "detail": { run_id: number, resumed: boolean, } } | { "stage": "preparing", "detail": Progress } | { "stage": "prepared", "detail": { train: number, valid: number, cached: boolean, } } | { "stage": "loading" } | { "stage": "engine", "detail": TrainEvent } | { "stage": "ended", "detail": TrainEnd };

export type TrainReport = { step: number, total_steps: number, 
/**
 * Epochs done, fractional.
 */
epoch: number, 
/**
 * Mean training loss since the last report.
 */
train_loss: number, learning_rate: number, tokens_per_second: number, iterations_per_second: number, trained_tokens: number, 
/**
 * Bytes.
 */
peak_memory: number, 
/**
 * Seconds left at the current pace.
 */
eta_seconds: number, 
/**
 * In a group, each rank's own figures since the last report, by rank (gathered to
 * every rank); empty for a process training alone.
 */
ranks: Array<RankThroughput>, };

export type TrainStop = "finished" | "early_stopped" | "cancelled";

export type TrialCurve = { number: number, 
/**
 * `(step, validation loss)`.
 */
points: Array<[number, number]>, };

export type TrialRecord = { sweep_id: number, 
/**
 * 0 for the first trial.
 */
number: number, run_id: number | null, 
/**
 * The trial's values by setting (a JSON object).
 */
params: string, state: TrialState, 
/**
 * Validation loss at each rung reached, in order.
 */
rung_losses: Array<number>, best_val_loss: number | null, steps: number, seconds: number, 
/**
 * Why it stopped, in words.
 */
reason: string | null, };

export type TrialState = "running" | "completed" | "pruned" | "failed";

export type Variant = { "kind": "mlx" } | { "kind": "quantized", bits: number, } | { "kind": "dequantized" };

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
