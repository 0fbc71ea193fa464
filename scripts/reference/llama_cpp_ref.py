"""llama.cpp itself (PyPI `llama-cpp-python`, built by scripts/reference/env.sh) as the
reference for K-quant files: its quantizer makes them, its forward pass scores them.

  llama_cpp_ref.py model DIR SEED [tiny|1b] [FTYPE ...]
      Writes DIR/F16.gguf — a Llama with seeded random weights in F16 (norms in F32) and a
      byte-level vocabulary (one merge), written with the `gguf` package's GGUFWriter — and quantizes it
      with `llama_model_quantize` to each FTYPE (default Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K) as
      DIR/FTYPE.gguf, printing "FTYPE<tab>path" for each file (F16 first). `tiny`: 2 layers, 256 hidden units, 259 tokens (every matrix row a whole
      number of 256-value K-quant blocks); `1b`: Llama 3.2 1B's shape (16 layers, 2048 hidden,
      8192 feed-forward, 32 / 8 heads, 128256 tokens).
  llama_cpp_ref.py logits FILE N_NEW TOKEN...
      N_NEW greedy tokens after the prompt TOKEN... (ids), and llama.cpp's logits at every
      position of the prompt and the greedy tokens; prints {"logits": [[...], ...],
      "greedy": [...]}.
"""

import ctypes
import json
import os
import sys

import numpy as np

SHAPES = {
    "tiny": dict(layers=2, hidden=256, ffn=512, heads=4, kv_heads=2, vocab=259),
    "1b": dict(layers=16, hidden=2048, ffn=8192, heads=32, kv_heads=8, vocab=128256),
}


def byte_tokens():
    """GPT-2's byte ↔ printable-character mapping: the vocabulary of a byte-level BPE."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    extra, out = 0, []
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            extra += 1
            out.append(chr(255 + extra))
    return out


def write_f16(path, seed, shape):
    from gguf import GGUFWriter, LlamaFileType

    s = SHAPES[shape]
    h, ffn, heads, kv = s["hidden"], s["ffn"], s["heads"], s["kv_heads"]
    head_dim = h // heads
    rng = np.random.default_rng(seed)
    w = GGUFWriter(path, arch="llama")
    w.add_name(f"random-llama-{shape}")
    w.add_block_count(s["layers"])
    w.add_embedding_length(h)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_context_length(2048)
    w.add_vocab_size(s["vocab"])
    w.add_file_type(LlamaFileType.MOSTLY_F16)
    # llama.cpp wants at least one merge: two spaces.
    tokens = byte_tokens() + ["<s>", "</s>", "\u0120\u0120"]
    tokens += [f"<unused{i}>" for i in range(s["vocab"] - len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([1] * 256 + [3, 3] + [1] * (len(tokens) - 258))
    w.add_token_merges(["\u0120 \u0120"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)

    def matrix(name, rows, cols, gain=1.0):
        a = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(gain / np.sqrt(cols))
        w.add_tensor(name, a.astype(np.float16))

    def norm(name):
        w.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32))

    matrix("token_embd.weight", s["vocab"], h, gain=np.sqrt(h))
    for l in range(s["layers"]):
        b = f"blk.{l}"
        norm(f"{b}.attn_norm.weight")
        matrix(f"{b}.attn_q.weight", heads * head_dim, h)
        matrix(f"{b}.attn_k.weight", kv * head_dim, h)
        matrix(f"{b}.attn_v.weight", kv * head_dim, h)
        matrix(f"{b}.attn_output.weight", h, heads * head_dim)
        norm(f"{b}.ffn_norm.weight")
        matrix(f"{b}.ffn_gate.weight", ffn, h)
        matrix(f"{b}.ffn_up.weight", ffn, h)
        matrix(f"{b}.ffn_down.weight", h, ffn)
    norm("output_norm.weight")
    # A head strong enough that greedy choices are clear-cut.
    matrix("output.weight", s["vocab"], h, gain=4.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src, dst, ftype):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = os.cpu_count() or 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize {ftype} failed: {rc}")


def model(out_dir, seed, shape="tiny", *ftypes):
    os.makedirs(out_dir, exist_ok=True)
    src = os.path.join(out_dir, "F16.gguf")
    write_f16(src, seed, shape)
    print(f"F16\t{src}", flush=True)
    for ftype in ftypes or ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"]:
        dst = os.path.join(out_dir, f"{ftype}.gguf")
        quantize(src, dst, ftype)
        print(f"{ftype}\t{dst}", flush=True)


def logits(path, n_new, tokens):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=256, n_batch=256, logits_all=True, n_threads=2,
                seed=0, verbose=False)
    llm.eval(tokens)
    greedy = []
    for _ in range(n_new):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        greedy.append(t)
        llm.eval([t])
    scores = [llm.scores[i].tolist() for i in range(llm.n_tokens)]
    print(json.dumps({"logits": scores, "greedy": greedy}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "model":
        model(args[0], int(args[1]), *args[2:])
    elif cmd == "logits":
        logits(args[0], int(args[1]), [int(t) for t in args[2:]])
    else:
        sys.exit(__doc__)
