"""GGUF copies of parity fixtures, written the way llama.cpp's convert_hf_to_gguf.py writes
such models, with the `gguf` package's own writer, tensor-name map and metadata keys.

`write(folder, config)` reads the mlx-lm folder (float32 weights) and writes `model.gguf`
beside it, holding the same model as llama.cpp stores it:

- tensor names from `gguf.get_tensor_name_map(arch, blocks)` (llama.cpp's table of
  Hugging Face names), experts merged into one tensor per projection as llama.cpp merges
  them (`...experts.w1` / `...experts.gate_proj`);
- Llama-family query / key rows permuted for RoPE on interleaved pairs (`LlamaModel.permute`;
  the other architectures use RoPE on halves and are stored as they are);
- Gemma norms stored as `1 + w` (`Gemma2Model` / `Gemma3Model.modify_tensors`);
- Llama 3 RoPE scaling as a `rope_freqs` tensor of per-pair factors, Phi-3 LongRoPE as
  `rope_factors_long` / `rope_factors_short` plus the attention factor, YaRN and linear
  scaling as `rope.scaling.*` metadata;
- a small tokenizer (byte-level BPE, or a SentencePiece vocabulary for Gemma and Phi-3) and a
  chat template, so the file loads as a whole.

Where llama.cpp would infer a setting the tiny model does not follow (Gemma's attention scale
is the head size, Gemma 3's sliding-window period is 6) the file states it with the GGUF keys
meant for it (`attention.scale`, `attention.sliding_window_pattern`).
"""

import json
import math
from pathlib import Path

import mlx.core as mx
import numpy as np

try:
    import gguf
except ImportError as e:  # pragma: no cover - a set-up problem, said plainly
    raise SystemExit(
        "the `gguf` package is missing from the reference environment; install it there "
        "(pip install gguf) to write the GGUF copies of the parity fixtures"
    ) from e

# Hugging Face model_type → llama.cpp architecture.
ARCH = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "mistral": gguf.MODEL_ARCH.LLAMA,  # llama.cpp converts Mistral as Llama
    "mixtral": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
    "qwen3": gguf.MODEL_ARCH.QWEN3,
    "qwen3_moe": gguf.MODEL_ARCH.QWEN3MOE,
    "phi3": gguf.MODEL_ARCH.PHI3,
    "gemma2": gguf.MODEL_ARCH.GEMMA2,
    "gemma3_text": gguf.MODEL_ARCH.GEMMA3,
    "gpt2": gguf.MODEL_ARCH.GPT2,
}
LLAMA_FAMILY = {"llama", "mistral", "mixtral"}
SENTENCEPIECE = {"phi3", "gemma2", "gemma3_text"}
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def load_weights(folder):
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        weights.update(mx.load(str(folder / shard)))
    return {k: np.array(v.astype(mx.float32)) for k, v in weights.items()}


def permute(w, n_head, n_head_kv):
    """llama.cpp's LlamaModel.permute: rows of each head from halves to interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def hf_name(model_type, name):
    """mlx-lm's stored name → the Hugging Face name llama.cpp's table knows."""
    if model_type == "gpt2":
        return name.removeprefix("model.")
    if model_type == "mixtral":
        for proj, w in (("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3")):
            name = name.replace(f"switch_mlp.{proj}", f"experts.{w}")
    return name.replace(".switch_mlp.", ".experts.")


def llama3_factors(config, head_dim):
    """Llama 3 scaling as llama.cpp stores it: one factor per rotated pair (the settings of
    this config's rope_scaling)."""
    s = config["rope_scaling"]
    base = config.get("rope_theta", 10000.0)
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old = s["original_max_position_embeddings"]
    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * base ** (i / head_dim)
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def shape_metadata(w, config, model_type):
    c = config
    if model_type == "gpt2":
        w.add_block_count(c["n_layer"])
        w.add_context_length(c["n_ctx"])
        w.add_embedding_length(c["n_embd"])
        w.add_feed_forward_length(4 * c["n_embd"])
        w.add_head_count(c["n_head"])
        w.add_layer_norm_eps(c["layer_norm_epsilon"])
        return
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    if model_type == "mixtral":
        head_dim = c["hidden_size"] // heads
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(c.get("num_key_value_heads", heads))
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_rope_freq_base(c.get("rope_theta", 10000.0))
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    experts = c.get("num_local_experts", c.get("num_experts"))
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(c["num_experts_per_tok"])
    if model_type == "qwen3_moe":
        w.add_expert_feed_forward_length(c["moe_intermediate_size"])
        w.add_expert_weights_norm(c["norm_topk_prob"])


def extra_metadata(w, config, model_type, tensors):
    """Soft caps, windows, scales and RoPE scaling."""
    c = config
    if model_type in ("gemma2", "gemma3_text"):
        head_dim = c["head_dim"]
        if c["query_pre_attn_scalar"] != head_dim:
            w.add_attention_scale(c["query_pre_attn_scalar"] ** -0.5)
        w.add_sliding_window(c["sliding_window"])
    if model_type == "gemma2":
        w.add_attn_logit_softcapping(c["attn_logit_softcapping"])
        w.add_final_logit_softcapping(c["final_logit_softcapping"])
    if model_type == "gemma3_text":
        w.add_sliding_window_pattern(c["sliding_window_pattern"])
        w.add_rope_freq_base_swa(c["rope_local_base_freq"])
    if model_type == "phi3":
        original = c["original_max_position_embeddings"]
        w.add_rope_scaling_orig_ctx_len(original)
        s = c.get("rope_scaling")
        if s:
            scale = c["max_position_embeddings"] / original
            attn = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1 else 1.0
            w.add_rope_scaling_attn_factors(attn)
            tensors["rope_factors_long.weight"] = np.array(s["long_factor"], np.float32)
            tensors["rope_factors_short.weight"] = np.array(s["short_factor"], np.float32)
        return
    s = c.get("rope_scaling")
    kind = s and s.get("rope_type", s.get("type"))
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(s["factor"])
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(s["factor"])
        w.add_rope_scaling_orig_ctx_len(s["original_max_position_embeddings"])
        w.add_rope_scaling_yarn_beta_fast(s["beta_fast"])
        w.add_rope_scaling_yarn_beta_slow(s["beta_slow"])
    elif kind == "llama3":
        head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        tensors["rope_freqs.weight"] = llama3_factors(c, head_dim)


def tokenizer_metadata(w, config, model_type, vocab_size):
    bos, eos = config.get("bos_token_id", 1), config.get("eos_token_id", 2)
    gemma = model_type.startswith("gemma")
    if model_type in SENTENCEPIECE:
        # Phi-3's vocabulary also has <|endoftext|> (llama.cpp looks it up for Phi-3 files).
        specials = ["<pad>", "<eos>", "<bos>"] if gemma else ["<unk>", "<s>", "</s>", "<|endoftext|>"]
        pieces = ["<0x0A>"] + [f"▁{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
        pieces += list("abcdefghijklmnopqrstuvwxyz") + ["▁", "▁the", "▁hello", "he", "ll"]
        tokens = specials + pieces
        tokens += [f"<unused{i}>" for i in range(vocab_size - len(tokens))]
        types = ([3, 3, 3] if gemma else [2, 3, 3, 3]) + [6] + [1] * (len(pieces) - 1)
        types += [5] * (vocab_size - len(types))
        scores = [0.0] * len(specials) + [0.0] + [-float(i) for i in range(len(pieces) - 1)]
        scores += [-1000.0] * (vocab_size - len(scores))
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_add_space_prefix(not gemma)
        w.add_chat_template(GEMMA_TEMPLATE if gemma else CHATML)
    else:
        byte_chars = [chr(b) for b in range(33, 127)] + ["Ġ", "Ċ"]
        merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("e", "r")]
        merges += [("o", "n"), ("r", "e"), ("Ġ", "s"), ("a", "n"), ("l", "l"), ("Ġ", "h")]
        merges += [("he", "ll"), ("hell", "o"), ("Ġ", "hello")]
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tokens = specials + byte_chars + ["".join(m) for m in merges]
        tokens += [f"<unused{i}>" for i in range(vocab_size - len(tokens))]
        types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2" if model_type == "gpt2" else "qwen2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges([f"{a} {b}" for a, b in merges])
        w.add_chat_template(CHATML)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)


def write(folder, config):
    model_type = config["model_type"]
    arch = ARCH[model_type]
    weights = load_weights(folder)
    blocks = config.get("num_hidden_layers", config.get("n_layer"))
    names = gguf.get_tensor_name_map(arch, blocks)
    # llama.cpp's Qwen3-MoE has no dense layers (mlp_only_layers): name one as llama.cpp names
    # dense feed-forward tensors everywhere else (blk.N.ffn_up, ...).
    generic = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    tensors = {}
    for name, value in weights.items():
        if model_type in LLAMA_FAMILY and name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = config["num_attention_heads"]
            kv = config.get("num_key_value_heads", heads)
            value = permute(value, heads, heads if "q_proj" in name else kv)
        if model_type.startswith("gemma") and name.endswith("norm.weight"):
            value = value + 1
        hf = hf_name(model_type, name)
        new = names.get_name(hf, try_suffixes=(".weight", ".bias"))
        if new is None and ".mlp." in hf:
            new = generic.get_name(hf, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ValueError(f"{folder.name}: no GGUF name for {hf}")
        tensors[new] = value
    path = folder / "model.gguf"
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_name(folder.name)
    shape_metadata(w, config, model_type)
    extra_metadata(w, config, model_type, tensors)
    tokenizer_metadata(w, config, model_type, config.get("vocab_size"))
    for name in sorted(tensors):
        w.add_tensor(name, np.ascontiguousarray(tensors[name], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)
