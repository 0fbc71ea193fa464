"""Parity fixtures: tiny random models written by mlx-lm, with mlx-lm's logits for them.

For every case this builds a small model with mlx-lm's own model class, fills it with seeded
random weights, optionally casts or quantizes it with mlx-lm's own utilities, writes it as an
mlx-lm model folder (config.json + safetensors, through `mlx_lm.utils.save_model` and
`save_config`), loads the folder back with `mlx_lm.utils.load_model`, and records in
`reference.json` the logits mlx-lm computes from it:

- "logits": [L][V], one forward pass over all of "ids" with mlx-lm's default causal mask;
- "step_logits": [L-P][V], the logits at positions P..L-1 when the first P ids are fed as one
  prefill call and the rest one at a time through mlx-lm's prompt cache
  (`make_prompt_cache(model)`), which checks KV caching and sliding windows.

Every value is rounded to 6 significant digits. The output is deterministic: running the
script twice gives identical files.

Cases marked `gguf=True` also get `model.gguf`: the same weights as llama.cpp stores them
(see parity_gguf.py; needs the `gguf` package in the reference environment).

Usage: python make_parity_fixtures.py OUT_DIR [CASE ...]
"""

import json
import math
import shutil
import sys
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

import mlx_lm
import mlx_lm.utils as lm_utils
from mlx_lm.models import gemma2, gemma3_text, gpt2, llama, mixtral, phi3, qwen2, qwen3, qwen3_moe
from mlx_lm.models.cache import make_prompt_cache

import mlx_compat  # noqa: F401  (quantized experts on this MLX)

# Token ids fed to every model (all below the smallest vocabulary used here, with repeats).
IDS = [1, 17, 42, 99, 5, 63, 17, 120, 8, 77, 42, 3, 101, 56, 17, 88]
PREFILL = 5
VOCAB = 128

# Shapes shared by the Llama-architecture cases: hidden and intermediate sizes are multiples
# of 64 so that every linear layer can be quantized with group size 64.
LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": VOCAB,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def changed(base, **changes):
    """A copy of the configuration `base` with `changes`."""
    config = dict(base)
    config.update(changes)
    return config


def llama_config(**changes):
    return changed(LLAMA, **changes)


QWEN3_MOE = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "hidden_size": 32,
    "intermediate_size": 48,
    "moe_intermediate_size": 16,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "num_experts": 8,
    "num_experts_per_tok": 4,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [1],
    "norm_topk_prob": True,
    "vocab_size": VOCAB,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": None,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def small_llama_config(**changes):
    """Half the width of LLAMA (2 heads of 16, one key/value head), for the RoPE cases."""
    config = llama_config(hidden_size=32, num_attention_heads=2, num_key_value_heads=1)
    config.update(changes)
    return config


CASES = {
    "llama": dict(module=llama, config=llama_config(), gguf=True),
    "llama_tied": dict(module=llama, config=llama_config(tie_word_embeddings=True), gguf=True),
    "llama_rope_linear": dict(
        gguf=True,
        module=llama,
        config=small_llama_config(rope_scaling={"type": "linear", "factor": 2.0}),
    ),
    "llama_rope_llama3": dict(
        gguf=True,
        module=llama,
        config=small_llama_config(
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            }
        ),
    ),
    "llama_rope_yarn": dict(
        gguf=True,
        module=llama,
        config=small_llama_config(
            rope_scaling={
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 32,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
            }
        ),
    ),
    # mlx-lm maps model_type "mistral" to its llama module. 4 heads of 16 make the
    # attention width (64) differ from hidden_size (32); one key/value head.
    "mistral": dict(
        gguf=True,
        module=llama,
        config=small_llama_config(
            architectures=["MistralForCausalLM"],
            model_type="mistral",
            num_attention_heads=4,
            num_key_value_heads=1,
            rope_theta=1000000.0,
            sliding_window=None,
        ),
    ),
    "qwen2": dict(
        gguf=True,
        module=qwen2,
        config={
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 64,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": True,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
    "qwen3": dict(
        gguf=True,
        module=qwen3,
        config={
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_size": 64,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
    "phi3": dict(
        gguf=True,
        module=phi3,
        config={
            "architectures": ["Phi3ForCausalLM"],
            "model_type": "phi3",
            "hidden_size": 64,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "original_max_position_embeddings": 256,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": None,
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
    # LongRoPE ("su") with distinct short and long factors (head_dim 16: 8 factors each).
    "phi3_longrope": dict(
        gguf=True,
        module=phi3,
        config={
            "architectures": ["Phi3ForCausalLM"],
            "model_type": "phi3",
            "hidden_size": 64,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": VOCAB,
            "max_position_embeddings": 128,
            "original_max_position_embeddings": 32,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": {
                "type": "longrope",
                "short_factor": [1.0, 1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0],
                "long_factor": [1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
            },
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
    # Small soft caps so that they change the result; query_pre_attn_scalar differs from
    # head_dim; hidden_size 48 (sqrt(48) is not a round number).
    "gemma2": dict(
        gguf=True,
        module=gemma2,
        gemma=True,
        config={
            "architectures": ["Gemma2ForCausalLM"],
            "model_type": "gemma2",
            "hidden_size": 48,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "attn_logit_softcapping": 2.0,
            "final_logit_softcapping": 3.0,
            "query_pre_attn_scalar": 24,
            "sliding_window": 4096,
            "hidden_activation": "gelu_pytorch_tanh",
            "tie_word_embeddings": True,
            "bos_token_id": 2,
            "eos_token_id": 1,
        },
    ),
    # Layers 0 and 2 slide over a window of 4 (local RoPE base), layers 1 and 3 are global
    # (rope_theta with linear scaling); 16 ids are longer than the window. No lm_head is
    # stored: mlx-lm then ties it to the embeddings, as in real Gemma 3 checkpoints.
    "gemma3_text": dict(
        gguf=True,
        module=gemma3_text,
        gemma=True,
        tied_by_absence=True,
        config={
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "hidden_size": 48,
            "intermediate_size": 64,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "query_pre_attn_scalar": 24,
            "sliding_window": 4,
            "sliding_window_pattern": 2,
            "hidden_activation": "gelu_pytorch_tanh",
            "tie_word_embeddings": True,
            "bos_token_id": 2,
            "eos_token_id": 1,
        },
    ),
    # Learned positions, layer norms with biases, fused c_attn, plain GELU MLP, tied head.
    "gpt2": dict(
        gguf=True,
        module=gpt2,
        config={
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_ctx": 64,
            "n_embd": 32,
            "n_head": 4,
            "n_layer": 2,
            "n_positions": 64,
            "layer_norm_epsilon": 1e-5,
            "vocab_size": VOCAB,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
    # 4 experts, 2 per token (fewer than 64 token-expert pairs: unsorted gathered matmuls).
    "mixtral": dict(
        gguf=True,
        module=mixtral,
        config={
            "architectures": ["MixtralForCausalLM"],
            "model_type": "mixtral",
            "hidden_size": 32,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
    # 8 experts, 4 per token (16 tokens x 4 = 64 pairs: the one-pass logits take the sorted
    # path), renormalized top-k, layer 1 dense (mlp_only_layers).
    "qwen3_moe": dict(gguf=True, module=qwen3_moe, config=QWEN3_MOE),
    # Quantized experts (gather_qmm), as mlx-lm quantizes Qwen3-MoE: 4-bit / 64, the router
    # 8-bit / 64 (the model's own quant_predicate); top-k probabilities not renormalized.
    "qwen3_moe_q4": dict(
        module=qwen3_moe,
        config=changed(
            QWEN3_MOE,
            hidden_size=64,
            intermediate_size=64,
            moe_intermediate_size=64,
            num_hidden_layers=2,
            head_dim=16,
            num_experts=4,
            num_experts_per_tok=2,
            mlp_only_layers=[],
            norm_topk_prob=False,
            tie_word_embeddings=True,
        ),
        quantize=(64, 4),
    ),
    # Storage variants of the `llama` case (same seed, so the same weights before storage).
    "llama_f16": dict(module=llama, config=llama_config(), seed_of="llama", dtype="float16"),
    "llama_bf16": dict(
        module=llama, config=llama_config(), seed_of="llama", dtype="bfloat16"
    ),
    "llama_q4_g64": dict(
        module=llama, config=llama_config(), seed_of="llama", quantize=(64, 4)
    ),
    "llama_q8_g32": dict(
        module=llama, config=llama_config(), seed_of="llama", quantize=(32, 8)
    ),
    "llama_mixed_quant": dict(
        module=llama,
        config=llama_config(),
        seed_of="llama",
        quantize=(64, 4),
        mixed=True,
    ),
    "llama_sharded": dict(module=llama, config=llama_config(), seed_of="llama", shards=3),
    # Quantized from bfloat16 weights, as most published MLX checkpoints are: scales,
    # biases, norms in bfloat16; tied (quantized) embeddings as the output layer.
    "qwen3_q4": dict(
        module=qwen3,
        config={
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": VOCAB,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        dtype="bfloat16",
        quantize=(64, 4),
    ),
}


def seed_for(name):
    # A stable seed from the case name (Python's hash() is salted per process).
    return sum((i + 1) * ord(c) for i, c in enumerate(name))


def randomize(model, seed, gemma):
    """Seeded random weights with O(1) activations and logits.

    Linear weights ~ N(0, 1/in_features), embeddings ~ N(0, 0.2^2), biases ~ N(0, 0.1^2);
    norm weights near 1 (layer norm biases near 0), or near 0 for Gemma, whose norms
    multiply by (1 + weight).
    """
    mx.random.seed(seed)
    params = []
    for name, value in tree_flatten(model.parameters()):
        noise = mx.random.normal(value.shape, dtype=mx.float32)
        layer_norm = ".ln_" in name  # GPT-2's ln_1, ln_2, ln_f (weight and bias)
        if layer_norm and name.endswith("bias"):
            value = noise * 0.1
        elif "norm" in name or layer_norm:
            value = noise * 0.1 if gemma else 1.0 + noise * 0.1
        elif name.endswith("bias"):
            value = noise * 0.1
        elif any(e in name for e in ("embed_tokens", ".wte.", ".wpe.")):
            value = noise * 0.2
        else:
            value = noise / math.sqrt(value.shape[-1])
        params.append((name, value))
    model.update(tree_unflatten(params))
    mx.eval(model.parameters())


def mixed_predicate(path, module):
    """Per-module choices in the style of mlx-lm's mixed recipes (plus one dense layer)."""
    if path == "lm_head":
        return {"group_size": 64, "bits": 6, "mode": "affine"}
    if path.startswith("model.layers.0.") and ("v_proj" in path or "down_proj" in path):
        return {"group_size": 32, "bits": 8, "mode": "affine"}
    if path == "model.layers.1.mlp.up_proj":
        return False
    return True


def shards_of(count):
    """A stand-in for mlx_lm.utils.make_shards that splits the weights into `count` files
    of about equal size (mlx-lm's own limit is whole gigabytes), keeping its order."""

    def make_shards(weights, *_args, **_kwargs):
        total = sum(v.nbytes for v in weights.values())
        limit = -(-total // count)
        shards, size = [], 0
        for k, v in weights.items():
            if not shards or (size + v.nbytes > limit and len(shards) < count):
                shards.append({})
                size = 0
            shards[-1][k] = v
            size += v.nbytes
        return shards

    return make_shards


def rounded(array):
    return [[float(f"{x:.6g}") for x in row] for row in array.astype(mx.float32).tolist()]


def full_logits(model):
    out = model(mx.array(IDS)[None])
    mx.eval(out)
    return out[0]


def step_logits(model):
    cache = make_prompt_cache(model)
    out = model(mx.array(IDS[:PREFILL])[None], cache=cache)
    mx.eval(out)
    rows = []
    for token in IDS[PREFILL:]:
        out = model(mx.array([[token]]), cache=cache)
        mx.eval(out)
        rows.append(out[0, -1])
    return mx.stack(rows)


def build(name, spec, out_dir):
    config = json.loads(json.dumps(spec["config"]))
    module = spec["module"]
    model = module.Model(module.ModelArgs.from_dict(config))
    randomize(model, seed_for(spec.get("seed_of", name)), spec.get("gemma", False))
    if spec.get("tied_by_absence"):
        model.pop("lm_head")
        model.tie_word_embeddings = True

    dtype = spec.get("dtype", "float32")
    if dtype != "float32":
        model.set_dtype(getattr(mx, dtype))
        config["torch_dtype"] = dtype
    else:
        config["torch_dtype"] = "float32"

    if "quantize" in spec:
        group_size, bits = spec["quantize"]
        predicate = mixed_predicate if spec.get("mixed") else None
        model, config = lm_utils.quantize_model(
            model, config, group_size, bits, quant_predicate=predicate
        )
    mx.eval(model.parameters())
    expected = full_logits(model)

    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    original_make_shards = lm_utils.make_shards
    if "shards" in spec:
        lm_utils.make_shards = shards_of(spec["shards"])
    try:
        lm_utils.save_model(folder, model)
    finally:
        lm_utils.make_shards = original_make_shards
    lm_utils.save_config(config, folder / "config.json")

    # Everything recorded comes from the folder as mlx-lm loads it.
    loaded, _ = lm_utils.load_model(folder)
    logits = full_logits(loaded)
    if not mx.array_equal(logits, expected).item():
        diff = mx.abs(logits - expected).max().item()
        raise AssertionError(f"{name}: the reloaded model differs by {diff}")
    steps = step_logits(loaded)
    step_diff = mx.abs(steps - logits[PREFILL:]).max().item()
    tolerance = 1e-4 if dtype == "float32" else 0.1
    if step_diff > tolerance:
        raise AssertionError(f"{name}: cached steps differ from one pass by {step_diff}")

    f32 = logits.astype(mx.float32)
    spread = mx.std(f32, axis=-1).mean().item()
    top = mx.sort(f32, axis=-1)
    margin = (top[:, -1] - top[:, -2]).min().item()
    reference = {
        "model_type": config["model_type"],
        "dtype": dtype,
        "quantized": "quantize" in spec,
        "ids": IDS,
        "prefill": PREFILL,
        "logits": rounded(logits),
        "step_logits": rounded(steps),
        "mlx_lm_version": mlx_lm.__version__,
        "mlx_version": mx.__version__,
    }
    with open(folder / "reference.json", "w") as f:
        json.dump(reference, f, separators=(",", ":"))
        f.write("\n")
    if spec.get("gguf"):
        import parity_gguf

        parity_gguf.write(folder, config)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(
        f"{name:20} {size / 1024:7.1f} KiB  logits std {spread:.3f}, "
        f"min top-2 margin {margin:.4f}, cached-step max diff {step_diff:.2e}",
        file=sys.stderr,
    )


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = Path(sys.argv[1])
    names = sys.argv[2:] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown cases: {', '.join(unknown)}; known: {', '.join(CASES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.set_default_device(mx.cpu)
    for name in names:
        build(name, CASES[name], out_dir)


if __name__ == "__main__":
    main()
