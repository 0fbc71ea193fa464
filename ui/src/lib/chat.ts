// Chat logic the views share, kept free of the DOM and the backend so it is unit-tested.

import type { AdapterEntry, ChatMessage, Generation, GenerationEvent, GenerationStats, Routing } from "./types";

/** A message as the chat pane shows it: with its reply's figures once they are known. */
export interface Turn extends ChatMessage {
  stats?: GenerationStats;
  streaming?: boolean;
  /** The reply was stopped before its end. */
  stopped?: boolean;
  /** Its topic, in a conversation that keeps them. */
  topic?: number | null;
  /** Where the latest routed message went, and why (on that message only). */
  routing?: Routing;
}

export function humanBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The figures of one reply, as the pane prints them under it. */
export function statsLine(s: GenerationStats): string {
  const parts = [
    `${s.reused_tokens} reused · ${s.prefilled_tokens} new`,
    `first token ${s.time_to_first_token.toFixed(2)} s`,
    `${s.decode_tokens_per_second.toFixed(1)} tok/s`,
    `cache ${s.cache_tokens} tokens, ${humanBytes(s.cache_bytes)}`,
  ];
  if (s.left_out_messages > 0) {
    parts.push(`context full: ${s.left_out_messages} oldest messages left out`);
  }
  return parts.join(" · ");
}

/** Adds a streamed event to the reply being written (the last turn). */
export function applyEvent(turns: Turn[], event: GenerationEvent): Turn[] {
  const last = turns[turns.length - 1];
  if (!last || last.role !== "assistant" || event.kind !== "text") return turns;
  return [...turns.slice(0, -1), { ...last, content: last.content + event.data }];
}

/** The streamed reply (the last turn) finished as `generation` says. */
export function finishReply(turns: Turn[], generation: Generation): Turn[] {
  const last = turns[turns.length - 1];
  const reply: Turn = {
    ...last,
    content: generation.text,
    stats: generation.stats,
    streaming: false,
    stopped: generation.stop_reason === "cancelled",
  };
  return [...turns.slice(0, -1), reply];
}

/** How many turns (replies) a fork at message `index` keeps: every reply up to it. */
export function turnsUpTo(messages: ChatMessage[], index: number): number {
  return messages.slice(0, index + 1).filter((m) => m.role === "assistant").length;
}

/** Whether `name` can name a saved conversation (the backend's rule). */
export function validName(name: string): boolean {
  return /^[\p{L}\p{N}_\-][\p{L}\p{N}_.\-]*$/u.test(name);
}

/** The run whose adapter folder (`…/runs/<id>`) is attached, if it is a run's. */
export function adapterRun(adapter: [string, string] | null): number | null {
  if (!adapter) return null;
  const m = /[\\/]runs[\\/](\d+)[\\/]?$/.exec(adapter[0]);
  return m ? Number(m[1]) : null;
}

/** What the page passes to pick `a` (as `load_model` and `new_chat` take it): its run's id, or
 *  its folder when no run made it. */
export function adapterValue(a: AdapterEntry): string {
  return a.run_id !== null ? String(a.run_id) : a.path;
}

/** How the pickers name `a`. */
export function adapterLabel(a: AdapterEntry): string {
  return a.run_id !== null ? `#${a.run_id} ${a.name}` : a.name;
}

/** The picker's value for the attached adapter (folder and fingerprint); "" for none. */
export function attachedValue(adapters: AdapterEntry[], attached: [string, string] | null): string {
  if (!attached) return "";
  const trim = (p: string) => p.replace(/[\\/]+$/, "");
  const known = adapters.find((a) => trim(a.path) === trim(attached[0]));
  if (known) return adapterValue(known);
  const run = adapterRun(attached);
  return run !== null ? String(run) : attached[0];
}
