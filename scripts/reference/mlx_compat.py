"""Importing this lets mlx-lm's quantized mixture-of-experts layers run on this MLX.

mlx-lm 0.32.2's quantized expert layers pass `global_scale=None` to `mx.gather_qmm`, which
MLX 0.32.2 does not accept yet. When this MLX rejects the argument, `mx.gather_qmm` is wrapped
to drop it when it is unset (affine quantization never sets it); everything else runs
unchanged.
"""

import mlx.core as mx


def _accepts_global_scale():
    try:
        mx.gather_qmm(
            mx.zeros((1, 1, 32)),
            mx.zeros((1, 1, 4), dtype=mx.uint32),
            mx.zeros((1, 1, 1)),
            mx.zeros((1, 1, 1)),
            global_scale=None,
        )
    except TypeError:
        return False
    return True


if not _accepts_global_scale():
    _gather_qmm = mx.gather_qmm

    def gather_qmm(*args, global_scale=None, **kwargs):
        if global_scale is not None:
            raise ValueError("global_scale needs a newer MLX")
        return _gather_qmm(*args, **kwargs)

    mx.gather_qmm = gather_qmm
