import { describe, expect, it } from "vitest";
import { applyEvent, finishReply, humanBytes, statsLine, turnsUpTo, validName } from "../src/lib/chat";
import type { GenerationStats } from "../src/lib/types";

const stats: GenerationStats = {
  prompt_tokens: 59,
  reused_tokens: 44,
  prefilled_tokens: 15,
  generated_tokens: 7,
  prefill_seconds: 0.1,
  prefill_tokens_per_second: 150,
  decode_seconds: 0.5,
  decode_tokens_per_second: 12.8,
  time_to_first_token: 0.17,
  peak_memory: 5.5e8,
  cache_tokens: 66,
  cache_bytes: 14_000_000,
  left_out_messages: 0,
};

describe("chat logic", () => {
  it("prints a reply's figures", () => {
    expect(statsLine(stats)).toBe(
      "44 reused · 15 new · first token 0.17 s · 12.8 tok/s · cache 66 tokens, 14 MB",
    );
    expect(statsLine({ ...stats, left_out_messages: 2 })).toContain(
      "context full: 2 oldest messages left out",
    );
  });

  it("sizes bytes", () => {
    expect(humanBytes(512)).toBe("512 B");
    expect(humanBytes(2_300_000)).toBe("2.3 MB");
    expect(humanBytes(189_000_000)).toBe("189 MB");
  });

  it("streams text into the reply being written only", () => {
    const turns = [
      { role: "user" as const, content: "Hi" },
      { role: "assistant" as const, content: "Hel" },
    ];
    const next = applyEvent(turns, { kind: "text", data: "lo" });
    expect(next[1].content).toBe("Hello");
    expect(turns[1].content).toBe("Hel");
    expect(applyEvent(turns, { kind: "prefill", data: { done: 1, total: 2 } })).toBe(turns);
    expect(applyEvent(turns.slice(0, 1), { kind: "text", data: "x" })).toHaveLength(1);
  });

  it("counts the turns a fork keeps", () => {
    const m = [
      { role: "system" as const, content: "s" },
      { role: "user" as const, content: "a" },
      { role: "assistant" as const, content: "b" },
      { role: "user" as const, content: "c" },
      { role: "assistant" as const, content: "d" },
    ];
    expect(turnsUpTo(m, 2)).toBe(1);
    expect(turnsUpTo(m, 4)).toBe(2);
    expect(turnsUpTo(m, 0)).toBe(0);
  });

  it("accepts the names the backend accepts", () => {
    expect(validName("trip-2.v1")).toBe(true);
    expect(validName(".hidden")).toBe(false);
    expect(validName("../x")).toBe(false);
    expect(validName("")).toBe(false);
  });
});

import { bucketLabel, isDatasetPath, markedRuns } from "../src/lib/datasets";

describe("dataset helpers", () => {
  it("splits marked text into trained and untrained runs", () => {
    expect(markedRuns("<user>Hi</user><bot>«Hello!»</bot>")).toEqual([
      { text: "<user>Hi</user><bot>", trained: false },
      { text: "Hello!", trained: true },
      { text: "</bot>", trained: false },
    ]);
    expect(markedRuns("«all»")).toEqual([{ text: "all", trained: true }]);
  });

  it("knows dataset files and labels bars", () => {
    expect(isDatasetPath("/data/a.JSONL")).toBe(true);
    expect(isDatasetPath("/data/model.gguf")).toBe(false);
    expect(bucketLabel({ lo: 0, hi: 256 })).toBe("1–256");
    expect(bucketLabel({ lo: 2048, hi: null })).toBe("> 2048");
  });
});

describe("a finished reply", () => {
  it("takes the generation's text and figures, and says when it was stopped", () => {
    const turns = [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hel", streaming: true }];
    const done = finishReply(turns, { text: "Hello.", tokens: [], stop_reason: "end_of_sequence", stats });
    expect(done[1]).toEqual({ role: "assistant", content: "Hello.", stats, streaming: false, stopped: false });
    const stopped = finishReply(turns, { text: "Hel", tokens: [], stop_reason: "cancelled", stats });
    expect(stopped[1].stopped).toBe(true);
    expect(done[0]).toBe(turns[0]);
  });
});
