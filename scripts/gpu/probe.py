"""mlx-lm's side of the diagnostics `ADAPT_TRACE=1` gives for Adapt, timed the same way:

  probe.py decode MODEL PROMPT GENERATE   per decode step: building the graph, submitting it,
                                          waiting for the token (mlx-lm's own step function)
  probe.py chat MODEL HISTORY             a conversation of HISTORY tokens through mlx-lm's
                                          prompt cache: time to first token of the cold turn
                                          and of a warm one (15 new tokens), twice
Prints JSON.
"""

import json
import sys
import time

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load


def decode(path, prompt_tokens, generate):
    model, tokenizer = load(path)
    vocab = model.args.vocab_size
    state = 0x2545F4914F6CDD1D
    ids = []
    for _ in range(prompt_tokens):
        state ^= (state << 13) & (2**64 - 1)
        state ^= state >> 7
        state ^= (state << 17) & (2**64 - 1)
        ids.append(1000 + state % (vocab - 1000))
    out = {}
    for run in range(2):
        cache = make_prompt_cache(model)
        logits = model(mx.array([ids]), cache=cache)[:, -1, :]
        y = mx.argmax(logits, axis=-1)
        mx.async_eval(y)
        build = submit = wait = 0.0
        for _ in range(generate):
            t0 = time.perf_counter()
            nxt = mx.argmax(model(y[None], cache=cache)[:, -1, :], axis=-1)
            t1 = time.perf_counter()
            mx.async_eval(nxt)
            t2 = time.perf_counter()
            y.item()
            t3 = time.perf_counter()
            build, submit, wait = build + t1 - t0, submit + t2 - t1, wait + t3 - t2
            y = nxt
        out[f"run{run}"] = {k: v * 1e3 / generate for k, v in
                            (("build_ms", build), ("submit_ms", submit), ("wait_ms", wait))}
    return out


def chat(path, history):
    model, tokenizer = load(path)
    turn = ("Tell me something about rivers, mountains and the weather in spring, and how "
            "farmers plan their fields when the snow melts early in the valleys.")
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    def tokens(msgs):
        text = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        return list(tokenizer.encode(text, add_special_tokens=False))
    while len(tokens(messages)) < history:
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": turn}]
    runs = []
    for _ in range(2):
        cache = make_prompt_cache(model)
        cold = tokens(messages + [{"role": "user", "content": "Answer in one word: rivers?"}])
        t0 = time.perf_counter()
        gen = generate_step(mx.array(cold), model, prompt_cache=cache, max_tokens=8)
        first = next(gen)
        cold_ttft = time.perf_counter() - t0
        reply = [int(first[0])] + [int(t) for t, _ in gen]
        # mlx-lm's cache now holds the prompt and the reply but its last token; the next turn
        # continues from there with only its new tokens.
        warm_all = tokens(messages + [{"role": "user", "content": "Answer in one word: rivers?"},
                                      {"role": "assistant", "content": tokenizer.decode(reply)},
                                      {"role": "user", "content": "And mountains?"}])
        held = cache[0].offset
        new = warm_all[held:]
        t0 = time.perf_counter()
        gen = generate_step(mx.array(new), model, prompt_cache=cache, max_tokens=8)
        next(gen)
        warm_ttft = time.perf_counter() - t0
        for _ in gen:
            pass
        runs.append({"history_tokens": len(cold), "cold_ttft": cold_ttft, "warm_ttft": warm_ttft,
                     "warm_prefilled": len(new), "warm_reused": held})
    return {"runs": runs}


if __name__ == "__main__":
    what, path, *rest = sys.argv[1:]
    if what == "decode":
        print(json.dumps(decode(path, int(rest[0]), int(rest[1]))))
    else:
        print(json.dumps(chat(path, int(rest[0]))))
