import { describe, expect, it } from "vitest";
import type { Turn } from "../src/lib/chat";
import {
  applyTopicEvent,
  effectiveChoice,
  moveChoice,
  moveNotice,
  moveTargets,
  routingLine,
  routingText,
  topicHue,
  topicSettings,
  topicStrip,
  topicTag,
  turnsOf,
  withTopics,
} from "../src/lib/topics";
import type { Routing, TopicsView } from "../src/lib/types";

const sims = (...s: [number, string, number][]) => s.map(([topic, name, similarity]) => ({ topic, name, similarity }));

const routing = (r: Partial<Routing>): Routing => ({
  topic: 2,
  name: "bike chain keeps",
  opened: false,
  picked: false,
  similarities: [],
  threshold: 0.25,
  ...r,
});

/** A system message, then topic 1 (sourdough), topic 2 (bike), topic 1 again. */
const view: TopicsView = {
  settings: { layer: null, threshold: 0.25 },
  layer: 30,
  topics: [
    { id: 1, name: "sourdough starter smells", turns: 2, cache_tokens: 120, cache_bytes: 5_530_000 },
    { id: 2, name: "bike chain keeps", turns: 1, cache_tokens: 60, cache_bytes: 2_760_000 },
  ],
  message_topics: [null, 1, 1, 2, 2, 1, 1],
};

const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "My sourdough starter smells like nail polish." },
  { role: "assistant", content: "Feed it." },
  { role: "user", content: "My bike chain keeps slipping." },
  { role: "assistant", content: "Check the cog." },
  { role: "user", content: "How long should I proof the dough?" },
  { role: "assistant", content: "Overnight." },
];

describe("routing text", () => {
  it("says which topic took the message, its similarity and the others'", () => {
    const r = routing({ similarities: sims([2, "bike chain keeps", 0.583], [1, "sourdough starter smells", 0.26]) });
    expect(routingText(r)).toBe("→ topic 2 'bike chain keeps' · similarity 0.58 (others: 1 0.26)");
    expect(routingText(routing({ similarities: sims([2, "b", 0.9]) }))).toBe("→ topic 2 'bike chain keeps' · similarity 0.90");
  });

  it("says why a new topic opened: the closest fell below the threshold", () => {
    const r = routing({ opened: true, similarities: sims([1, "sourdough starter smells", 0.12]) });
    expect(routingText(r)).toBe("opened a new topic, topic 2 'bike chain keeps': closest 0.12 < 0.25");
    expect(routingText(routing({ topic: 1, name: "sourdough starter smells", opened: true }))).toBe(
      "opened the first topic, topic 1 'sourdough starter smells'",
    );
  });

  it("says when the person picked the topic", () => {
    expect(routingText(routing({ picked: true, similarities: sims([1, "s", 0.3]) }))).toBe(
      "picked: topic 2 'bike chain keeps'",
    );
    expect(routingText(routing({ picked: true, opened: true, topic: 3, name: "new" }))).toBe(
      "picked: a new topic, topic 3 'new'",
    );
  });
});

describe("topic colours", () => {
  it("gives each id its own hue, the same every time", () => {
    const hues = [1, 2, 3, 4, 5, 6, 7, 8].map(topicHue);
    expect(new Set(hues).size).toBe(8);
    for (const h of hues) expect(h >= 0 && h < 360).toBe(true);
    expect(topicHue(2)).toBe(topicHue(2));
    // Neighbouring ids are far apart on the colour wheel.
    const apart = (a: number, b: number) => Math.min(Math.abs(a - b), 360 - Math.abs(a - b));
    for (let id = 1; id < 8; id++) expect(apart(topicHue(id), topicHue(id + 1))).toBeGreaterThan(60);
  });
});

describe("the topic strip", () => {
  it("shows a chip per topic with its turns and cache, Auto picked by default", () => {
    const strip = topicStrip(view, "auto");
    expect(strip.auto).toBe(true);
    expect(strip.fresh).toBe(false);
    expect(strip.chips.map((c) => [c.id, c.name, c.turns, c.cache, c.picked])).toEqual([
      [1, "sourdough starter smells", "2 turns", "120 tokens · 5.5 MB", false],
      [2, "bike chain keeps", "1 turn", "60 tokens · 2.8 MB", false],
    ]);
    expect(strip.chips[1].hue).toBe(topicHue(2));
  });

  it("marks the chosen topic, or New topic", () => {
    const picked = topicStrip(view, { topic: 2 });
    expect(picked.chips.map((c) => c.picked)).toEqual([false, true]);
    expect(picked.auto).toBe(false);
    expect(topicStrip(view, "new").fresh).toBe(true);
  });

  it("falls back to Auto when the chosen topic is gone", () => {
    expect(effectiveChoice(view, { topic: 7 })).toBe("auto");
    expect(effectiveChoice(view, { topic: 1 })).toEqual({ topic: 1 });
    expect(effectiveChoice(null, { topic: 1 })).toBe("auto");
    expect(effectiveChoice(view, "new")).toBe("new");
    expect(topicStrip(view, { topic: 7 }).auto).toBe(true);
  });

  it("turns topics on with the default threshold unless told", () => {
    expect(topicSettings()).toEqual({ layer: null, threshold: 0.25 });
    expect(topicSettings(0.4).threshold).toBe(0.4);
  });
});

describe("messages and their topics", () => {
  it("names a message's topic on its tag", () => {
    expect(topicTag(view, 2)).toBe("topic 2 · bike chain keeps");
    expect(topicTag(view, 9)).toBe("topic 9");
  });

  it("tags each message with the backend's topic, none with topics off", () => {
    const turns = turnsOf(messages, view);
    expect(turns.map((t) => t.topic)).toEqual([null, 1, 1, 2, 2, 1, 1]);
    expect(withTopics(turns, null).every((t) => t.topic === undefined)).toBe(true);
    // A list that does not match the messages changes nothing.
    expect(withTopics(turns.slice(0, 3), view)).toEqual(turns.slice(0, 3));
  });

  it("applies a Routed event to the message being answered, and only it shows routing", () => {
    let turns: Turn[] = turnsOf(messages.slice(0, 3), { ...view, message_topics: [null, 1, 1] });
    turns = applyTopicEvent(turns, { kind: "routed", data: routing({ topic: 1, name: "s", opened: true }) });
    expect(turns[1].routing?.opened).toBe(true);
    turns = [...turns, { role: "user", content: "My bike chain keeps slipping." }, { role: "assistant", content: "", streaming: true }];
    const r = routing({ opened: true, similarities: sims([1, "s", 0.1]) });
    turns = applyTopicEvent(turns, { kind: "routed", data: r });
    expect(turns[3].topic).toBe(2);
    expect(turns[3].routing).toEqual(r);
    expect(turns[1].routing).toBeUndefined();
    expect(turns[1].topic).toBe(1);
    // Text still streams into the reply.
    turns = applyTopicEvent(turns, { kind: "text", data: "Oil" });
    expect(turns[4].content).toBe("Oil");
    // A later refresh keeps the routing shown.
    const after = withTopics(turns, { ...view, message_topics: [null, 1, 1, 2, 2] });
    expect(after[3].routing).toEqual(r);
    expect(routingLine(after[3])).toBe(routingText(r));
    expect(routingLine(after[1])).toBeNull();
    // Moved since: the line says so.
    const moved = withTopics(after, { ...view, message_topics: [null, 1, 1, 1, 1] });
    expect(routingLine(moved[3])).toBe(`${routingText(r)} · moved to topic 1 since`);
  });
});

describe("moving a message", () => {
  it("offers the other topics, and a new one unless the message is alone in its topic", () => {
    expect(moveTargets(view, 1)).toEqual([
      { value: "2", label: "topic 2 'bike chain keeps'" },
      { value: "new", label: "New topic" },
    ]);
    expect(moveTargets(view, 3)).toEqual([{ value: "1", label: "topic 1 'sourdough starter smells'" }]);
    expect(moveChoice("new")).toBe("new");
    expect(moveChoice("2")).toEqual({ topic: 2 });
  });

  it("says where the message went and how both caches changed", () => {
    const after: TopicsView = {
      ...view,
      topics: [
        { ...view.topics[0], turns: 1, cache_tokens: 70 },
        { ...view.topics[1], turns: 2, cache_tokens: 115 },
      ],
      message_topics: [null, 1, 1, 2, 2, 2, 2],
    };
    expect(moveNotice(view, after, 5)).toBe(
      "Moved to topic 2 'bike chain keeps': topic 2 60 → 115 tokens, topic 1 120 → 70 tokens.",
    );
    const closed: TopicsView = {
      ...view,
      topics: [{ ...view.topics[0], turns: 3, cache_tokens: 170 }],
      message_topics: [null, 1, 1, 1, 1, 1, 1],
    };
    expect(moveNotice(view, closed, 3)).toBe(
      "Moved to topic 1 'sourdough starter smells': topic 1 120 → 170 tokens, topic 2 closed.",
    );
  });
});
