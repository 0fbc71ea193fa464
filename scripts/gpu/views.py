"""What a view primitive costs a step on MLX's CUDA backend: the same chain of linear layers
with 3-D activations (MLX's matmul adds a Flatten and an Unflatten around each product) and
with 2-D ones (none), weights used as `w.T` (a Transpose each) or stored transposed (none).
Prints one JSON object: per variant the primitives of one step and the median milliseconds of
an evaluated step, forward only (decode-like) and forward plus gradients (training-like)."""

import json
import statistics
import sys
import tempfile
import time

import mlx.core as mx

LAYERS, LINEARS, DIM = 32, 7, 256


def census(outputs):
    with tempfile.NamedTemporaryFile("r", suffix=".dot") as f:
        mx.export_to_dot(f.name, *outputs)
        return sum(1 for line in f if "shape=rectangle" in line)


def chain(x, weights, transposed):
    for layer in range(LAYERS):
        h = x
        for w in weights[layer]:
            h = h @ (w if transposed else w.T)
        x = x + h
    return x


def timed(step, runs=60):
    for _ in range(5):
        mx.eval(step())
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        mx.eval(step())
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def main():
    mx.random.seed(0)
    weights = [[mx.random.normal((DIM, DIM)) * DIM ** -0.5 for _ in range(LINEARS)]
               for _ in range(LAYERS)]
    flipped = [[w.T + 0 for w in layer] for layer in weights]
    mx.eval(weights, flipped)
    results = {"device": str(mx.default_device()), "layers": LAYERS, "linears": LINEARS,
               "dim": DIM}
    for kind, shape3 in (("decode", (1, 1)), ("train", (4, 64))):
        n = shape3[0] * shape3[1]
        x3 = mx.random.normal((*shape3, DIM))
        x2 = x3.reshape(n, DIM)
        mx.eval(x3, x2)
        for name, x, ws, transposed in (("3d", x3, weights, False), ("2d", x2, weights, False),
                                        ("2d_pretransposed", x2, flipped, True)):
            if kind == "decode":
                def step(x=x, ws=ws, transposed=transposed):
                    return [chain(x, ws, transposed)]
            else:
                def loss(ws, x=x, transposed=transposed):
                    return chain(x, ws, transposed).square().mean()

                grad = mx.value_and_grad(loss)

                def step(ws=ws, grad=grad):
                    value, g = grad(ws)
                    return [value] + [a for layer in g for a in layer]
            primitives = census(step())
            ms = timed(step)
            results[f"{kind}_{name}"] = {"primitives": primitives, "ms": ms}
            print(kind, name, primitives, f"{ms:.3f} ms", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
