// Topics in the Chat view: where a message went and why, the strip of topics above the
// messages, each topic's colour, and the Move to… choices. Free of the DOM and the backend, so
// it is unit-tested.

import { applyEvent, humanBytes, type Turn } from "./chat";
import type {
  ChatMessage,
  GenerationEvent,
  Routing,
  TopicChoice,
  TopicInfo,
  TopicSettings,
  TopicsView,
} from "./types";

/** The similarity a message needs to join a topic unless the person sets another (the
 *  engine's default). */
export const DEFAULT_THRESHOLD = 0.25;

/** The settings that turn topics on (the embedding from the model's last block). */
export function topicSettings(threshold: number = DEFAULT_THRESHOLD): TopicSettings {
  return { layer: null, threshold };
}

/** A similarity as the pane prints it. */
export function similarity(x: number): string {
  return x.toFixed(2);
}

/** How the pane names a topic: its number and name. */
export function topicLabel(id: number, name: string): string {
  return `${id} '${name}'`;
}

/** The tag on a message of topic `id`: "topic 2 · bike chain keeps". */
export function topicTag(view: TopicsView, id: number): string {
  const name = view.topics.find((t) => t.id === id)?.name;
  return name === undefined ? `topic ${id}` : `topic ${id} · ${name}`;
}

/** Where a message went and why, in one line. */
export function routingText(r: Routing): string {
  const topic = `topic ${topicLabel(r.topic, r.name)}`;
  if (r.picked) return r.opened ? `picked: a new topic, ${topic}` : `picked: ${topic}`;
  if (r.opened) {
    const closest = r.similarities[0];
    if (!closest) return `opened the first topic, ${topic}`;
    return `opened a new topic, ${topic}: closest ${similarity(closest.similarity)} < ${similarity(r.threshold)}`;
  }
  const own = r.similarities.find((s) => s.topic === r.topic);
  const others = r.similarities
    .filter((s) => s.topic !== r.topic)
    .map((s) => `${s.topic} ${similarity(s.similarity)}`);
  let text = `→ ${topic}`;
  if (own) text += ` · similarity ${similarity(own.similarity)}`;
  if (others.length > 0) text += ` (others: ${others.join(", ")})`;
  return text;
}

/** The hue (0–360) that marks topic `id` everywhere in the pane: hues a golden angle apart, so
 *  neighbouring ids never look alike. The stylesheet picks lightness for light or dark. */
export function topicHue(id: number): number {
  return Math.round((210 + (id - 1) * 137.508) % 360);
}

/** One chip of the strip. */
export interface TopicChip {
  id: number;
  name: string;
  /** "1 turn", "3 turns". */
  turns: string;
  /** Its cache: "45 tokens · 2.1 MB". */
  cache: string;
  hue: number;
  /** The next message goes here. */
  picked: boolean;
}

/** The strip above the messages: a chip per topic and which choice is on. */
export interface TopicStrip {
  chips: TopicChip[];
  /** Routing by meaning is on for the next message. */
  auto: boolean;
  /** The next message opens a new topic. */
  fresh: boolean;
}

export function turnsText(n: number): string {
  return `${n} turn${n === 1 ? "" : "s"}`;
}

export function cacheText(t: TopicInfo): string {
  return `${t.cache_tokens} tokens · ${humanBytes(t.cache_bytes)}`;
}

/** `choice` if it still names something: a topic that is gone (moved away) means Auto. */
export function effectiveChoice(view: TopicsView | null, choice: TopicChoice): TopicChoice {
  if (typeof choice === "object" && !view?.topics.some((t) => t.id === choice.topic)) return "auto";
  return choice;
}

/** Whether two choices are the same. */
export function sameChoice(a: TopicChoice, b: TopicChoice): boolean {
  if (typeof a === "object" || typeof b === "object") {
    return typeof a === "object" && typeof b === "object" && a.topic === b.topic;
  }
  return a === b;
}

export function topicStrip(view: TopicsView, choice: TopicChoice): TopicStrip {
  const next = effectiveChoice(view, choice);
  return {
    chips: view.topics.map((t) => ({
      id: t.id,
      name: t.name,
      turns: turnsText(t.turns),
      cache: cacheText(t),
      hue: topicHue(t.id),
      picked: sameChoice(next, { topic: t.id }),
    })),
    auto: next === "auto",
    fresh: next === "new",
  };
}

/** `turns` with each message's topic from `view` (the backend's list, message by message);
 *  with topics off, none. The latest routing stays where it is. */
export function withTopics(turns: Turn[], view: TopicsView | null): Turn[] {
  if (!view) return turns.map(({ topic: _t, routing: _r, ...rest }) => rest);
  if (view.message_topics.length !== turns.length) return turns;
  return turns.map((t, i) => ({ ...t, topic: view.message_topics[i] }));
}

/** The conversation's messages as turns, each with its topic. */
export function turnsOf(messages: ChatMessage[], view: TopicsView | null): Turn[] {
  return withTopics(
    messages.map((m) => ({ ...m })),
    view,
  );
}

/** A streamed event of a reply: a Routed event marks the message being answered with its
 *  topic and routing; the others go to the reply (`applyEvent`). */
export function applyTopicEvent(turns: Turn[], event: GenerationEvent): Turn[] {
  return event.kind === "routed" ? applyRouted(turns, event.data) : applyEvent(turns, event);
}

/** A Routed event: the message being answered (the last user message) is in `routing`'s
 *  topic, and only it shows the routing. */
export function applyRouted(turns: Turn[], routing: Routing): Turn[] {
  const at = turns.map((t) => t.role).lastIndexOf("user");
  return turns.map((t, i) => {
    if (i === at) return { ...t, topic: routing.topic, routing };
    if (t.routing) {
      const { routing: _r, ...rest } = t;
      return rest;
    }
    return t;
  });
}

/** The routing line of a message: where it went and why, and where it was moved since. */
export function routingLine(turn: Turn): string | null {
  if (!turn.routing) return null;
  const text = routingText(turn.routing);
  const moved = turn.topic != null && turn.topic !== turn.routing.topic;
  return moved ? `${text} · moved to topic ${turn.topic} since` : text;
}

/** A choice of the Move to… menu. */
export interface MoveTarget {
  /** The menu's value: "new" or the topic's id. */
  value: string;
  label: string;
}

/** Where user message `index` can move: every other topic, and a new one unless it is alone
 *  in its topic already. */
export function moveTargets(view: TopicsView, index: number): MoveTarget[] {
  const from = view.message_topics[index] ?? null;
  const alone = (view.topics.find((t) => t.id === from)?.turns ?? 0) <= 1;
  const targets: MoveTarget[] = view.topics
    .filter((t) => t.id !== from)
    .map((t) => ({ value: String(t.id), label: `topic ${topicLabel(t.id, t.name)}` }));
  if (!alone) targets.push({ value: "new", label: "New topic" });
  return targets;
}

/** The choice a Move to… value stands for. */
export function moveChoice(value: string): TopicChoice {
  return value === "new" ? "new" : { topic: Number(value) };
}

/** What moving message `index` did, for the notice: where it went and how the caches of the
 *  topics it left and joined changed. */
export function moveNotice(before: TopicsView, after: TopicsView, index: number): string {
  const from = before.message_topics[index];
  const to = after.message_topics[index];
  const joined = after.topics.find((t) => t.id === to);
  if (!joined) return "Moved.";
  const tokens = (v: TopicsView, id: number | null | undefined) =>
    v.topics.find((t) => t.id === id)?.cache_tokens ?? 0;
  const change = (id: number | null | undefined) =>
    `topic ${id} ${tokens(before, id)} → ${tokens(after, id)} tokens`;
  const left = after.topics.some((t) => t.id === from) ? change(from) : `topic ${from} closed`;
  return `Moved to topic ${topicLabel(joined.id, joined.name)}: ${change(to)}, ${left}.`;
}
