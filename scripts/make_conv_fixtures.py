#!/usr/bin/python3
"""PyTorch reference fixtures for conv2d (test/conv2d.test.ts).

Run with Debian's python3 (package python3-torch, PyTorch 1.13):
    /usr/bin/python3 scripts/make_conv_fixtures.py      writes test/fixtures/conv2d.json

A grid of small shapes: 1x1, 3x3, 5x3 and 7x7 kernels, stride 1/2 (and mixed), padding 0/1/2/3,
dilation 1/2, odd sizes, channel counts that are not multiples of 4, batch 1 and > 1, with and
without bias. Some shapes are chosen to take a particular variant of the engine's kernels (the
1x1 GEMM path, the exact-tile path without bounds checks, the 3-channel stem); the test checks
that they do.

Inputs are float32-exact; references are computed in float64. Each case:
{"name", "args": {"stride", "padding", "dilation"}, "inputs": {"x", "weight"[, "bias"]},
 "upstream", "output", "grads": {"x", "weight"[, "bias"]}} with arrays as {"shape", "data"}
(inputs) or flat lists (the rest).
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "conv2d.json"
MAX_BYTES = 300_000
gen = torch.Generator().manual_seed(2024)

# name, x shape, weight shape, stride, padding, dilation, bias
CASES = [
    ("1x1 s1 small image, bias", (2, 5, 4, 5), (6, 5, 1, 1), 1, 0, 1, True),
    ("1x1 s1 small image, batch 1", (1, 8, 3, 5), (4, 8, 1, 1), 1, 0, 1, False),
    ("1x1 s2 downsample", (2, 4, 7, 7), (6, 4, 1, 1), 2, 0, 1, False),
    ("1x1 s1 padded (implicit path)", (1, 3, 4, 4), (2, 3, 1, 1), 1, 1, 1, True),
    ("3x3 s1 p1 odd sizes, 5->6 channels, bias", (2, 5, 5, 7), (6, 5, 3, 3), 1, 1, 1, True),
    ("3x3 s1 p1 exact tile (no bounds checks)", (2, 2, 8, 8), (8, 2, 3, 3), 1, 1, 1, False),
    ("3x3 s2 p1", (1, 4, 9, 9), (8, 4, 3, 3), 2, 1, 1, False),
    ("3x3 s2 p0 odd", (2, 3, 10, 11), (4, 3, 3, 3), 2, 0, 1, True),
    ("3x3 s1 p2 dilation 2", (2, 3, 7, 7), (5, 3, 3, 3), 1, 2, 2, True),
    ("3x3 s1 p1 dilation 2", (1, 2, 7, 6), (3, 2, 3, 3), 1, 1, 2, False),
    ("3x3 s1 p1 batch 3, 7->10 channels", (3, 7, 4, 3), (10, 7, 3, 3), 1, 1, 1, False),
    ("3x3 s1 p0 14 columns", (1, 5, 5, 16), (8, 5, 3, 3), 1, 0, 1, False),
    ("7x7 s2 p3 stem, 3 channels, bias", (2, 3, 11, 11), (4, 3, 7, 7), 2, 3, 1, True),
    ("7x7 s2 p3 stem, 1 channel", (1, 1, 12, 13), (4, 1, 7, 7), 2, 3, 1, False),
    ("5x3 stride (2,1) padding (2,1) dilation (1,2)", (2, 3, 8, 9), (4, 3, 5, 3), (2, 1), (2, 1), (1, 2), True),
    ("2x2 s2 p0 even", (2, 2, 6, 8), (3, 2, 2, 2), 2, 0, 1, False),
    ("3x3 s3 p1 (a stride with empty classes)", (1, 2, 8, 7), (4, 2, 3, 3), 3, 1, 1, False),
]


def rand(shape, lo=-1.0, hi=1.0):
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    return x.float().double()


def f32(values):
    # The shortest decimal that reads back as the same float32.
    return [float(repr(np.float32(v))) for v in values]


def flat(t):
    return [float("%.9g" % v) for v in t.detach().flatten().tolist()]


def arr(t):
    return {"shape": list(t.shape), "data": f32(t.detach().flatten().tolist())}


def pair(v):
    return list(v) if isinstance(v, tuple) else [v, v]


def make_case(name, xs, ws, stride, padding, dilation, with_bias):
    x = rand(xs).requires_grad_()
    w = rand(ws, -0.5, 0.5).requires_grad_()
    b = rand((ws[0],)).requires_grad_() if with_bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    up = rand(tuple(y.shape))
    y.backward(up)
    inputs = {"x": arr(x), "weight": arr(w)}
    grads = {"x": flat(x.grad), "weight": flat(w.grad)}
    if b is not None:
        inputs["bias"] = arr(b)
        grads["bias"] = flat(b.grad)
    return {
        "name": name,
        "args": {"stride": pair(stride), "padding": pair(padding), "dilation": pair(dilation)},
        "inputs": inputs,
        "outputShape": list(y.shape),
        "output": flat(y),
        "upstream": f32(up.flatten().tolist()),
        "grads": grads,
    }


def main():
    cases = [make_case(*c) for c in CASES]
    text = json.dumps({"generator": "scripts/make_conv_fixtures.py", "torch": torch.__version__, "cases": cases}, separators=(",", ":"))
    if len(text) > MAX_BYTES:
        raise SystemExit(f"fixture is {len(text)} bytes, over the {MAX_BYTES} budget: use smaller shapes")
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({len(text)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
