#!/usr/bin/python3
"""PyTorch reference fixtures for batch norm, pooling and linear (test/bn_pool.test.ts).

Run with Debian's python3 (package python3-torch, PyTorch 1.13):
    /usr/bin/python3 scripts/make_bn_pool_fixtures.py      writes test/fixtures/bn_pool.json

Inputs are float32-exact; references are computed in float64 so they carry no float32 rounding.
Each case: {"name", "op", "args", "inputs": {name: {"shape", "data"}}, "output", "upstream",
"grads": {name: data}} and, for batch norm in training mode, "running" (buffers after the step)
and "step2" (a second step from those buffers: its input, output and buffers).

Grouped batch norm (shuffle-BN emulated on one device) is computed the way several devices would
do it: the batch is split into `groups` contiguous chunks, each runs plain BatchNorm with the
shared weight and bias and its own copy of the running buffers, and the buffers are averaged
afterwards. The output is also checked here against the definition (per-group mean and biased
variance).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "bn_pool.json"
MAX_BYTES = 200_000
gen = torch.Generator().manual_seed(1234)


def rand(shape, lo=-1.0, hi=1.0):
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    return x.float().double()


def f32(values):
    # The shortest decimal that reads back as the same float32.
    return [float(repr(np.float32(v))) for v in values]


def f64(t):
    return [float("%.9g" % v) for v in t.detach().flatten().tolist()]


def tensor_json(t):
    return {"shape": list(t.shape), "data": f32(t.detach().flatten().tolist())}


def grouped_bn(x, w, b, rm, rv, training, groups, momentum, eps, relu):
    """Returns (y, running_mean, running_var); rm and rv are not modified."""
    if not training:
        y = F.batch_norm(x, rm.clone(), rv.clone(), w, b, False, momentum, eps)
        return (torch.relu(y) if relu else y), rm.clone(), rv.clone()
    outs, means, vars_ = [], [], []
    for chunk in x.chunk(groups, 0):
        m, v = rm.clone(), rv.clone()
        outs.append(F.batch_norm(chunk, m, v, w, b, True, momentum, eps))
        means.append(m)
        vars_.append(v)
    y = torch.cat(outs, 0)
    # The definition: per group, normalise with the biased variance.
    with torch.no_grad():
        xs = x.reshape(groups, -1, *x.shape[1:])
        mean = xs.mean((1, 3, 4), keepdim=True)
        var = ((xs - mean) ** 2).mean((1, 3, 4), keepdim=True)
        ref = ((xs - mean) / torch.sqrt(var + eps)).reshape(x.shape) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
        assert torch.allclose(y, ref, atol=1e-12), "grouped BN does not match its definition"
    y = torch.relu(y) if relu else y
    return y, torch.stack(means).mean(0), torch.stack(vars_).mean(0)


cases = []


def add_grads(entry, out, named):
    upstream = rand(list(out.shape))
    wants = [(k, t) for k, t in named.items() if t.requires_grad]
    grads = torch.autograd.grad(out, [t for _, t in wants], upstream)
    entry["upstream"] = f32(upstream.flatten().tolist())
    entry["grads"] = {k: f64(g) for (k, _), g in zip(wants, grads)}


def bn_case(name, shape, training, groups=1, relu=False, momentum=0.1, eps=1e-5):
    C = shape[1]
    x = rand(shape, -2, 3).requires_grad_()
    w = rand([C], 0.5, 1.5).requires_grad_()
    b = rand([C], -0.5, 0.5).requires_grad_()
    rm = rand([C], -0.2, 0.2)
    rv = rand([C], 0.5, 2.0)
    y, rm1, rv1 = grouped_bn(x, w, b, rm, rv, training, groups, momentum, eps, relu)
    entry = {
        "name": name,
        "op": "batchNorm2d",
        "args": {"training": training, "groups": groups, "relu": relu, "momentum": momentum, "eps": eps},
        "inputs": {k: tensor_json(t) for k, t in dict(x=x, weight=w, bias=b, runningMean=rm, runningVar=rv).items()},
        "output": f64(y),
    }
    add_grads(entry, y, dict(x=x, weight=w, bias=b))
    if training:
        entry["running"] = {"mean": f64(rm1), "var": f64(rv1)}
        x2 = rand(shape, -1, 1)
        y2, rm2, rv2 = grouped_bn(x2, w, b, rm1, rv1, training, groups, momentum, eps, relu)
        entry["step2"] = {"x": tensor_json(x2), "output": f64(y2), "running": {"mean": f64(rm2), "var": f64(rv2)}}
    cases.append(entry)


def maxpool_case(name, shape, k, s, p, x=None):
    x = (rand(shape) if x is None else x).requires_grad_()
    y = F.max_pool2d(x, k, s, p)
    entry = {"name": name, "op": "maxPool2d", "args": {"kernelSize": k, "stride": s, "padding": p}, "inputs": {"x": tensor_json(x)}, "output": f64(y)}
    add_grads(entry, y, dict(x=x))
    cases.append(entry)


def avgpool_case(name, shape, size):
    x = rand(shape).requires_grad_()
    y = F.adaptive_avg_pool2d(x, size)
    entry = {"name": name, "op": "adaptiveAvgPool2d", "args": {"outputSize": size}, "inputs": {"x": tensor_json(x)}, "output": f64(y)}
    add_grads(entry, y, dict(x=x))
    cases.append(entry)


def linear_case(name, xshape, out, bias=True):
    x = rand(xshape).requires_grad_()
    w = rand([out, xshape[-1]]).requires_grad_()
    named = dict(x=x, weight=w)
    if bias:
        named["bias"] = rand([out]).requires_grad_()
    y = F.linear(x, w, named.get("bias"))
    entry = {"name": name, "op": "linear", "args": {}, "inputs": {k: tensor_json(t) for k, t in named.items()}, "output": f64(y)}
    add_grads(entry, y, named)
    cases.append(entry)


if __name__ == "__main__":
    # H*W = 25 reads scalars, 16 reads vec4; 25 also gives planes of two unequal chunks.
    bn_case("bn_train", [4, 3, 5, 5], True)
    bn_case("bn_train_vec4", [4, 3, 4, 4], True)
    bn_case("bn_train_g2", [4, 3, 5, 5], True, groups=2)
    bn_case("bn_train_g4_vec4", [8, 2, 4, 4], True, groups=4)
    bn_case("bn_train_g4_momentum", [8, 3, 3, 3], True, groups=4, momentum=0.3, eps=1e-3)
    bn_case("bn_eval", [3, 4, 5, 5], False)
    bn_case("bn_eval_groups_ignored", [3, 2, 4, 4], False, groups=2)
    bn_case("bn_relu_train", [4, 3, 4, 4], True, relu=True)
    bn_case("bn_relu_train_g2", [4, 2, 5, 5], True, groups=2, relu=True)
    bn_case("bn_relu_eval", [2, 3, 5, 5], False, relu=True)

    maxpool_case("maxpool_3x3_s2_p1", [2, 3, 7, 7], 3, 2, 1)
    maxpool_case("maxpool_3x3_s2_p1_even", [1, 2, 8, 8], 3, 2, 1)
    maxpool_case("maxpool_2x2_s2", [2, 2, 6, 6], 2, 2, 0)
    maxpool_case("maxpool_2x2_s2_odd", [1, 2, 7, 5], 2, 2, 0)
    maxpool_case("maxpool_3x2_rect", [1, 2, 6, 7], [3, 2], [2, 1], [1, 0])
    # Many ties in overlapping windows: the gradient goes to the first maximum of each window.
    ties = torch.randint(0, 3, [1, 2, 6, 6], generator=gen).double()
    maxpool_case("maxpool_ties", [1, 2, 6, 6], 3, 1, 1, x=ties)

    avgpool_case("avgpool_global", [2, 3, 7, 7], 1)
    avgpool_case("avgpool_3_divisible", [2, 3, 6, 6], 3)
    avgpool_case("avgpool_5_to_3", [1, 2, 5, 5], 3)
    avgpool_case("avgpool_rect", [1, 2, 5, 7], [3, 4])
    avgpool_case("avgpool_upsample", [1, 1, 3, 2], [5, 3])

    linear_case("linear_2d", [5, 4], 3)
    linear_case("linear_3d", [2, 3, 4], 5)
    linear_case("linear_no_bias", [5, 4], 3, bias=False)
    linear_case("linear_1d", [6], 2)

    doc = {"generator": Path(sys.argv[0]).name, "torch": torch.__version__, "cases": cases}
    text = json.dumps(doc, separators=(",", ":"))
    if len(text) > MAX_BYTES:
        raise SystemExit(f"{OUT.name} would be {len(text)} bytes (> {MAX_BYTES}); use smaller shapes")
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({len(cases)} cases, {len(text)} bytes)")
