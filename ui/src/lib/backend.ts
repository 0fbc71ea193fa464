// The backend's commands, typed. Every call goes through Tauri's IPC (mocked in tests and in
// the browser build); errors arrive as {code, message}.

import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  ApiError,
  ConvertReport,
  ModelEntry,
  PullUpdate,
  Variant,
  Calibration,
  CsvOptions,
  TrainForm,
  TrainPlan,
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
} from "./types";

export interface SamplingSettings {
  temperature: number;
  top_p: number;
  max_tokens: number;
}

export function asApiError(e: unknown): ApiError {
  if (e && typeof e === "object" && "code" in e && "message" in e) return e as ApiError;
  return { code: "app.unknown", message: String(e) };
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
  /** `adapter`: absent, the loaded one; "base", none; else a run id (this chat only). */
  newChat: (system: string | null, kvBits: number | null = null, adapter: string | null = null) =>
    invoke<ChatId>("new_chat", { system, options: { kv_bits: kvBits }, adapter }),
  sendMessage(
    chat: ChatId,
    text: string,
    settings: SamplingSettings,
    onEvent: (e: GenerationEvent) => void,
  ) {
    const events = channel(onEvent);
    return invoke<Generation>("send_message", { chat, text, params: params(settings), events });
  },
  regenerate(chat: ChatId, settings: SamplingSettings, onEvent: (e: GenerationEvent) => void) {
    const events = channel(onEvent);
    return invoke<Generation>("regenerate", { chat, params: params(settings), events });
  },
  stopGeneration: () => invoke<void>("stop_generation"),
  chatState: (chat: ChatId) => invoke<ChatState>("chat_state", { chat }),
  saveChat: (chat: ChatId, name: string) => invoke<SavedChat>("save_chat", { chat, name }),
  openChat: (name: string) =>
    invoke<{ chat: ChatId; saved: SavedChat }>("open_chat", { name }),
  listChats: () => invoke<SavedConversation[]>("list_chats"),
  forkChat: (chat: ChatId, turns: number) => invoke<ChatId>("fork_chat", { chat, turns }),
  closeChat: (chat: ChatId) => invoke<SavedChat | null>("close_chat", { chat }),
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
  planTraining: (form: TrainForm, onProgress: (p: TrainProgress) => void) =>
    invoke<TrainPlan>("plan_training", { form, events: channel(onProgress) }),
  calibrateTraining: (form: TrainForm, onProgress: (p: TrainProgress) => void) =>
    invoke<Calibration>("calibrate_training", { form, events: channel(onProgress) }),
  startTraining: (form: TrainForm, onProgress: (p: TrainProgress) => void) =>
    invoke<number>("start_training", { form, events: channel(onProgress) }),
  resumeTraining: (run: number, onProgress: (p: TrainProgress) => void) =>
    invoke<number>("resume_training", { run, events: channel(onProgress) }),
  stopTraining: (run: number) => invoke<void>("stop_training", { run }),
  importModel: (path: string) => invoke<ModelEntry>("import_model", { path }),
  deleteModel: (name: string) => invoke<ModelEntry>("delete_model", { name }),
  makeVariant: (path: string, variant: Variant, onStep: (step: string) => void) =>
    invoke<ConvertReport>("make_variant", { path, variant, events: channel(onStep) }),
  pullModel: (spec: string, file: string | null, onUpdate: (u: PullUpdate) => void) =>
    invoke<number>("pull_model", { spec, file, events: channel(onUpdate) }),
  cancelPull: (job: number) => invoke<void>("cancel_pull", { job }),
};
