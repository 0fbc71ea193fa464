"""The `gguf` package (llama.cpp's Python GGUF library) as the reference for GGUF tensor data.

  gguf_quants.py write OUT.gguf SEED
      Writes a GGUF with one tensor per type, named after it: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
      Q5_0 and Q5_1 quantized by `gguf.quants.quantize` from normal values; Q2_K … Q6_K, which
      the package cannot quantize, as random blocks (random bits, with finite f16 super-scales)
      — llama.cpp's own quantizer makes real K-quant files in the llama.cpp tests.
  gguf_quants.py dequantize FILE.gguf OUT.f32
      Dequantizes every tensor of FILE with `gguf.quants.dequantize` and writes the values,
      tensor after tensor in file order, as little-endian f32 to OUT; prints one JSON line per
      tensor: {"name", "type", "count", "offset"} (offset in values).
"""

import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

QUANTIZED_BY_THE_PACKAGE = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
# Offsets of the f16 super-scales (d, and dmin where the type has one) inside each block.
K_QUANT_SCALES = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def write(out, seed):
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(out, arch="test")
    rows, row_len = 3, 512
    for ty in QUANTIZED_BY_THE_PACKAGE:
        values = rng.normal(0.0, 0.05, (rows, row_len)).astype(np.float32)
        values[0, :32] = 0.0  # an all-zero block
        data = quantize(values, ty)
        writer.add_tensor(ty.name, data, raw_dtype=ty if data.dtype == np.uint8 else None)
    for ty, offsets in K_QUANT_SCALES.items():
        block, size = GGML_QUANT_SIZES[ty]
        blocks = rng.integers(0, 256, (rows * row_len // block, size), dtype=np.uint8)
        for at in offsets:
            scale = rng.uniform(-0.01, 0.01, blocks.shape[0]).astype(np.float16)
            blocks[:, at:at + 2] = scale.view(np.uint8).reshape(-1, 2)
        writer.add_tensor(ty.name, blocks.reshape(rows, -1), raw_dtype=ty)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def dequantize_all(path, out):
    offset = 0
    with open(out, "wb") as f:
        for t in GGUFReader(path).tensors:
            values = np.asarray(dequantize(t.data, t.tensor_type), dtype="<f4").reshape(-1)
            f.write(values.tobytes())
            print(json.dumps({"name": t.name, "type": t.tensor_type.name,
                              "count": int(values.size), "offset": offset}))
            offset += int(values.size)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "dequantize":
        dequantize_all(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
