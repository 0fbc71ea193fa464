#!/usr/bin/env python3
"""Regenerates tests/data/spm_{llama,gemma}.gguf and tests/data/spm_reference.json: two small
SentencePiece BPE models trained by the `sentencepiece` library (byte fallback, identity
normalization; one with the dummy prefix space as Llama's, one without as Gemma's), stored in
GGUF the way llama.cpp stores SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`,
tokens, scores and token types as the model's pieces state them), with the ids
sentencepiece itself gives for a set of texts — the reference that tests/sentencepiece.rs
compares our GGUF tokenizer against. Texts with an added token (`<tool>`) also get the ids
llama.cpp gives: it cuts the text at added tokens and encodes each piece of text on its own,
each with the dummy prefix (`fragment_ids`: sentencepiece's ids of each piece, joined).

Optional: the files are committed and the Rust tests never run this script. Run it with the
reference environment's python (scripts/reference/env.sh), which has sentencepiece and gguf:

    $(scripts/reference/env.sh) crates/adapt-text/tests/gen_spm_reference.py
"""

import io
import json
from pathlib import Path

import gguf
import sentencepiece as spm
from gen_reference import TEXTS as GENERAL_TEXTS
from sentencepiece import sentencepiece_model_pb2 as model_pb2

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parents[3]

# The texts of the other reference (gen_reference.py), and two of this corpus's own.
TEXTS = [t for t in GENERAL_TEXTS if "<|" not in t] + [
    "A <tool> call and <tool>again</tool>",
    "The model's tokenizer is rebuilt from GGUF metadata.",
]


def train(add_dummy_prefix):
    corpus = (ROOT / "README.md").read_text() + (ROOT / "ARCHITECTURE.md").read_text()
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus.splitlines()),
        model_writer=out,
        model_type="bpe",
        vocab_size=1000,
        byte_fallback=True,
        add_dummy_prefix=add_dummy_prefix,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=1.0,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=["<tool>"],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()


def write_gguf(path, proto_bytes, add_dummy_prefix):
    proto = model_pb2.ModelProto()
    proto.ParseFromString(proto_bytes)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([p.piece for p in proto.pieces])
    w.add_token_scores([p.score for p in proto.pieces])
    # SentencePiece's piece types are GGUF's token types (normal 1 … byte 6).
    w.add_token_types([int(p.type) for p in proto.pieces])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(add_dummy_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    reference = {"sentencepiece_version": spm.__version__, "models": {}}
    for kind, prefix in (("llama", True), ("gemma", False)):
        proto = train(prefix)
        write_gguf(DATA / f"spm_{kind}.gguf", proto, prefix)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        cases = []
        for t in TEXTS:
            case = {"text": t, "ids": sp.encode(t), "decoded": sp.decode(sp.encode(t))}
            if "<tool>" in t:
                tool = sp.piece_to_id("<tool>")
                ids = []
                for i, part in enumerate(t.split("<tool>")):
                    if i > 0:
                        ids.append(tool)
                    ids.extend(sp.encode(part) if part else [])
                case["fragment_ids"] = ids
            cases.append(case)
        reference["models"][kind] = cases
    with open(DATA / "spm_reference.json", "w") as f:
        json.dump(reference, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
