// The backend's commands, typed. Every call goes through Tauri's IPC (mocked in tests and in
// the browser build); errors arrive as the API's {code, message, fields}.

import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  AdapterEntry,
  ApiError,
  ConvertReport,
  DatasetRecord,
  ModelEntry,
  RemovalPlan,
  Opened,
  PullEvent,
  Variant,
  Calibration,
  CsvOptions,
  TrainCheck,
  TrainForm,
  TrainPlan,
  TrainPreset,
  TrainProgress,
  ChatId,
  ChatState,
  Generation,
  GenerationEvent,
  InspectReport,
  ModelDetails,
  ModelInfo,
  RunDetails,
  RunRecord,
  SavedChat,
  SavedConversation,
  SavedPrompts,
  ServedRequest,
  ServerSettings,
  ServerStatus,
  SweepDetails,
  SweepForm,
  SweepProgress,
  SweepRecord,
  GroupEstimate,
  GroupStart,
  Host,
  MachineCheck,
  TopicChoice,
  TopicSettings,
} from "./types";

export interface SamplingSettings {
  temperature: number;
  top_p: number;
  max_tokens: number;
}

/** `e` as the API's error. Anything else (a request the app could not even read) is an
 *  invalid request carrying its text. */
export function asApiError(e: unknown): ApiError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    const err = e as ApiError;
    return { ...err, fields: err.fields ?? [] };
  }
  return { code: "request.invalid", message: String(e), fields: [] };
}

function params(s: SamplingSettings) {
  return {
    max_tokens: s.max_tokens,
    sampling: { temperature: s.temperature, top_p: s.top_p },
  };
}

/** A channel that hands each streamed event to `onEvent`. */
function channel<T = GenerationEvent>(onEvent: (e: T) => void): Channel<T> {
  const events = new Channel<T>();
  events.onmessage = onEvent;
  return events;
}

export const backend = {
  listModels: () => invoke<ModelDetails[]>("list_models"),
  loadModel: (path: string, adapter: string | null = null) =>
    invoke<ModelInfo>("load_model", { path, adapter }),
  /** `adapter`: absent, the loaded one; "base", none; else a run id or adapter folder (this
   *  chat only). */
  newChat: (system: string | null, kvBits: number | null = null, adapter: string | null = null) =>
    invoke<ChatId>("new_chat", { system, options: { kv_bits: kvBits }, adapter }),
  /** `topic`: where the message goes in a conversation that keeps topics (null: where it
   *  fits by meaning); the first event then says where it went. */
  sendMessage(
    chat: ChatId,
    text: string,
    settings: SamplingSettings,
    onEvent: (e: GenerationEvent) => void,
    topic: TopicChoice | null = null,
  ) {
    const events = channel(onEvent);
    return invoke<Generation>("send_message", { chat, text, params: params(settings), topic, events });
  },
  regenerate(chat: ChatId, settings: SamplingSettings, onEvent: (e: GenerationEvent) => void) {
    const events = channel(onEvent);
    return invoke<Generation>("regenerate", { chat, params: params(settings), events });
  },
  /** Stops the reply conversation `chat` is writing (each reply has its own stop). */
  stopGeneration: (chat: ChatId) => invoke<void>("stop_generation", { chat }),
  chatState: (chat: ChatId) => invoke<ChatState>("chat_state", { chat }),
  /** Turns `chat`'s topics on with `settings` (again: new settings) or off with null. */
  setTopics: (chat: ChatId, settings: TopicSettings | null) =>
    invoke<ChatState>("set_topics", { chat, settings }),
  /** Moves user message `index` (with its reply) to another topic or a new one; the caches
   *  follow. */
  moveMessage: (chat: ChatId, index: number, to: TopicChoice) =>
    invoke<ChatState>("move_message", { chat, index, to }),
  saveChat: (chat: ChatId, name: string) => invoke<SavedChat>("save_chat", { chat, name }),
  openChat: (name: string) => invoke<Opened>("open_chat", { name }),
  listChats: () => invoke<SavedConversation[]>("list_chats"),
  forkChat: (chat: ChatId, turns: number) => invoke<ChatId>("fork_chat", { chat, turns }),
  closeChat: (chat: ChatId) => invoke<SavedChat | null>("close_chat", { chat }),
  listDatasets: () => invoke<DatasetRecord[]>("list_datasets"),
  listAdapters: () => invoke<AdapterEntry[]>("list_adapters"),
  listRuns: () => invoke<RunRecord[]>("list_runs"),
  runDetails: (id: number) => invoke<RunDetails>("run_details", { id }),
  inspectDataset: (
    path: string,
    model: string | null,
    maxSeqLength: number | null = null,
    csv: CsvOptions | null = null,
  ) => invoke<InspectReport>("inspect_dataset", { path, model, maxSeqLength, csv }),
  datasetLines: (path: string, line: number, context: number) =>
    invoke<[number, string][]>("dataset_lines", { path, line, context }),
  trainingPresets: () => invoke<TrainPreset[]>("training_presets"),
  checkTraining: (form: TrainForm) => invoke<TrainCheck>("check_training", { form }),
  planTraining: (form: TrainForm, onProgress: (p: TrainProgress) => void) =>
    invoke<TrainPlan>("plan_training", { form, events: channel(onProgress) }),
  calibrateTraining: (form: TrainForm, onProgress: (p: TrainProgress) => void) =>
    invoke<Calibration>("calibrate_training", { form, events: channel(onProgress) }),
  /** Starts a run; its stream ends with an `ended` event. Returns the run's id. */
  startTraining: (form: TrainForm, onProgress: (p: TrainProgress) => void) =>
    invoke<number>("start_training", { form, events: channel(onProgress) }),
  resumeTraining: (run: number, onProgress: (p: TrainProgress) => void) =>
    invoke<number>("resume_training", { run, events: channel(onProgress) }),
  /** Stops a run, whichever window or process started it (it writes a checkpoint first). */
  stopTraining: (run: number) => invoke<void>("stop_training", { run }),
  listSweeps: () => invoke<SweepRecord[]>("list_sweeps"),
  /** A sweep's trials ranked (best first), its rungs and each trial's validation curve. */
  sweepDetails: (id: number) => invoke<SweepDetails>("sweep_details", { id }),
  /** Starts a sweep; its stream ends with an `ended` event. Returns the sweep's id. */
  startSweep: (form: SweepForm, onProgress: (p: SweepProgress) => void) =>
    invoke<number>("start_sweep", { form, events: channel(onProgress) }),
  resumeSweep: (id: number, onProgress: (p: SweepProgress) => void) =>
    invoke<number>("resume_sweep", { id, events: channel(onProgress) }),
  /** Stops a sweep, whichever window or process runs it (its trial writes a checkpoint). */
  stopSweep: (id: number) => invoke<void>("stop_sweep", { id }),
  /** The machines a group trains on: this one (`localhost`) first, then the added hosts. */
  listMachines: () => invoke<Host[]>("list_machines"),
  saveMachines: (hosts: Host[]) => invoke<void>("save_machines", { hosts }),
  /** Whether `host` is ready: reachable, the same Adapt, `paths` (model, data) there. */
  checkMachine: (host: Host, paths: string[]) => invoke<MachineCheck>("check_machine", { host, paths }),
  estimateGroup: (form: TrainForm, ranks: number, tokensPerSecond: number | null) =>
    invoke<GroupEstimate>("estimate_group", { form, ranks, tokensPerSecond, events: channel(() => {}) }),
  /** Starts the form on the kept machines; rank 0 (this machine) records the run. */
  startGroupTraining: (form: TrainForm) => invoke<GroupStart>("start_group_training", { form }),
  importModel: (path: string) => invoke<ModelEntry>("import_model", { path }),
  /** What deleting `name` would remove and keep, or why it is refused; shown before Delete. */
  removalPlan: (name: string) => invoke<RemovalPlan>("removal_plan", { name }),
  /** Deletes what `plan` showed; refused when the files changed since. */
  deleteModel: (plan: RemovalPlan) =>
    invoke<RemovalPlan>("delete_model", { name: plan.name, confirmation: plan.confirmation }),
  makeVariant: (path: string, variant: Variant, onStep: (step: string) => void) =>
    invoke<ConvertReport>("make_variant", { path, variant, events: channel(onStep) }),
  /** Starts a pull; its stream ends with an `ended` event. Returns the job's id. */
  pullModel: (spec: string, file: string | null, onEvent: (e: PullEvent) => void) =>
    invoke<number>("pull_model", { spec, file, events: channel(onEvent) }),
  cancelPull: (job: number) => invoke<void>("cancel_pull", { job }),
  /** The local server: running or not, its address and key, settings and recent requests. */
  serverStatus: () => invoke<ServerStatus>("server_status"),
  /** Saves the settings and starts the server (loading its model); each answered request
   *  comes to `onRequest`. */
  startServer: (settings: ServerSettings, onRequest: (r: ServedRequest) => void) =>
    invoke<ServerStatus>("start_server", { settings, events: channel(onRequest) }),
  stopServer: () => invoke<SavedPrompts | null>("stop_server"),
};
