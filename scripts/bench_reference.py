"""Reference figures for `adapt bench`: the same weights run by mlx-lm.

A model folder is loaded by mlx-lm itself (`mlx_lm.utils.load_model`). A Llama-family GGUF is
loaded with MLX into mlx-lm's own Llama model (RoPE on interleaved pairs, as GGUF weights
need). Either way the weights are held as Adapt holds them on this backend (CPU: dense f32;
GPU: quantized as stored), and mlx-lm's `generate_step` is timed on the same pseudo-random
prompt `adapt bench` uses: prefill, decode, time to first token, peak memory. Prints JSON.

Usage: python bench_reference.py MODEL.gguf|MODEL_DIR PROMPT_TOKENS GENERATE_TOKENS RUNS
"""

import json
import sys
import time
from pathlib import Path

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models import llama

LAYER_PARTS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def hf_name(name):
    stem, suffix = name.rsplit(".", 1)
    if stem in TOP:
        return f"{TOP[stem]}.{suffix}"
    _, layer, part = stem.split(".", 2)
    return f"model.layers.{layer}.{LAYER_PARTS[part]}.{suffix}"


def load(path, gpu):
    tensors, meta = mx.load(path, return_metadata=True)
    arch = str(meta["general.architecture"])

    def num(key, default=None):
        value = meta.get(f"{arch}.{key}")
        return default if value is None else value.item()

    tied = "output.weight" not in tensors
    args = llama.ModelArgs(
        model_type="llama",
        hidden_size=num("embedding_length"),
        num_hidden_layers=num("block_count"),
        intermediate_size=num("feed_forward_length"),
        num_attention_heads=num("attention.head_count"),
        num_key_value_heads=num("attention.head_count_kv"),
        rms_norm_eps=num("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=num("rope.freq_base", 10000.0),
        vocab_size=len(meta["tokenizer.ggml.tokens"]),
        rope_traditional=True,
        tie_word_embeddings=tied,
    )
    weights = {hf_name(k): v for k, v in tensors.items()}
    dtype = mx.float16 if gpu else mx.float32
    out = {}
    for name in [n for n in weights if n.endswith(".weight")]:
        stem = name[: -len(".weight")]
        w = weights[name]
        if stem + ".scales" in weights:
            s, b = weights[stem + ".scales"].astype(dtype), weights[stem + ".biases"].astype(dtype)
            bits = w.shape[-1] * 32 // (s.shape[-1] * 32)
            if gpu:
                out[stem] = (w, s, b, bits)
            else:
                out[name] = mx.dequantize(w, s, b, group_size=32, bits=bits).astype(dtype)
        else:
            out[name] = w.astype(dtype)
    model = llama.Model(args)
    quantized = {k: v for k, v in out.items() if isinstance(v, tuple)}
    if quantized:
        bits_of = {k: v[3] for k, v in quantized.items()}
        from mlx import nn

        nn.quantize(
            model,
            group_size=32,
            bits=4,
            class_predicate=lambda p, m: p in bits_of and {"group_size": 32, "bits": bits_of[p]},
        )
        flat = []
        for k, v in out.items():
            if isinstance(v, tuple):
                flat += [(k + ".weight", v[0]), (k + ".scales", v[1]), (k + ".biases", v[2])]
            else:
                flat.append((k, v))
        model.load_weights(flat)
    else:
        model.load_weights(list(out.items()))
    mx.eval(model.parameters())
    return model, args


def load_folder(path, gpu):
    from types import SimpleNamespace

    from mlx_lm.utils import dequantize_model, load_model

    model, config = load_model(Path(path))
    if not gpu:
        model = dequantize_model(model)
        model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return model, SimpleNamespace(vocab_size=config["vocab_size"])


def bench_prompt(n, vocab):
    # The same xorshift sequence as `adapt bench`.
    low = min(vocab, 1000)
    span = max(vocab - low, 1)
    state = 0x2545F4914F6CDD1D
    mask = (1 << 64) - 1
    out = []
    for _ in range(n):
        state ^= (state << 13) & mask
        state ^= state >> 7
        state ^= (state << 17) & mask
        out.append(low + state % span)
    return out


def main():
    path, n_prompt, n_gen, runs = sys.argv[1], *map(int, sys.argv[2:5])
    gpu = mx.default_device() == mx.gpu
    model, args = load_folder(path, gpu) if Path(path).is_dir() else load(path, gpu)
    prompt = mx.array(bench_prompt(n_prompt, args.vocab_size))
    results = []
    for _ in range(runs + 1):
        mx.reset_peak_memory()
        start = time.perf_counter()
        first = None
        n = 0
        for token, _ in generate_step(prompt, model, max_tokens=n_gen):
            if first is None:
                first = time.perf_counter()
            n += 1
        end = time.perf_counter()
        results.append(
            {
                "prefill_tokens_per_second": n_prompt / (first - start),
                "decode_tokens_per_second": (n - 1) / (end - first),
                "time_to_first_token": first - start,
                "peak_memory": mx.get_peak_memory(),
            }
        )
    measured = results[1:]

    def median(key):
        values = sorted(r[key] for r in measured)
        return values[len(values) // 2]

    print(
        json.dumps(
            {
                "prefill_tokens_per_second": median("prefill_tokens_per_second"),
                "decode_tokens_per_second": median("decode_tokens_per_second"),
                "time_to_first_token": median("time_to_first_token"),
                "peak_memory": max(r["peak_memory"] for r in measured),
                "mlx_version": mx.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
