"""Clients of an OpenAI-compatible server for scripts/bench-serve.sh: CLIENTS threads each hold
a conversation of TURNS turns that grows by one exchange per turn (the same canned replies on
every server, so every server sees the same prompts) and send it whole each turn, streamed;
prints JSON: requests/s, time to first token (p50, p95), prompt tokens and those the server
reports as cached, generated tokens. Standard library only.

Usage: python bench_serve.py BASE_URL MODEL CLIENTS TURNS MAX_TOKENS
"""

import json
import statistics
import sys
import threading
import time
import urllib.request

url, model = sys.argv[1], sys.argv[2]
clients, turns, max_tokens = map(int, sys.argv[3:6])
SYSTEM = "You are a helpful assistant who answers questions about geography in one sentence."
TOPICS = ["France", "Japan", "Brazil", "Kenya", "Canada", "India", "Norway", "Chile"]


def ask(messages):
    body = json.dumps({
        "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    }).encode()
    req = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    first, usage = None, None
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                first = first or time.perf_counter()
            if chunk.get("usage"):
                usage = chunk["usage"]
    end = time.perf_counter()
    return (first or end) - start, usage


def client(i, out):
    topic = TOPICS[i % len(TOPICS)]
    messages = [{"role": "system", "content": SYSTEM}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"Tell me fact number {t + 1} about {topic}."})
        ttft, usage = ask(messages)
        out.append((ttft, usage))
        messages.append({"role": "assistant", "content": f"Here is fact {t + 1} about {topic}: it is a country with a long history."})


ask([{"role": "user", "content": "Hello"}])  # warm-up
results = []
started = time.perf_counter()
threads = [threading.Thread(target=client, args=(i, results)) for i in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - started
ttfts = sorted(r[0] for r in results)
usage = [r[1] or {} for r in results]
print(json.dumps({
    "requests": len(results),
    "requests_per_second": len(results) / wall,
    "ttft_p50": statistics.median(ttfts),
    "ttft_p95": ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))],
    "prompt_tokens": sum(u.get("prompt_tokens", 0) for u in usage),
    "cached_tokens": sum((u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0 for u in usage),
    "completion_tokens": sum(u.get("completion_tokens", 0) for u in usage),
}))
