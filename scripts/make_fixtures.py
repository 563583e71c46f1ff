#!/usr/bin/python3
"""PyTorch reference fixtures for the engine's op parity tests (test/ops_parity.test.ts).

Run with Debian's python3 (package python3-torch, PyTorch 1.13):
    /usr/bin/python3 scripts/make_fixtures.py          writes test/fixtures/ops.json

Each case holds float32-exact inputs, the output computed in float64, a fixed random upstream
gradient (float32-exact) and the float64 gradient of every float input under it, so the
reference itself carries no float32 rounding. The JSON layout (one file per script):

    {"generator": ..., "torch": ..., "cases": [
      {"name", "op", "args": {...}, "rtol",
       "inputs":   [{"shape", "dtype": "f32" | "i32", "data"}],
       "output":   {"shape", "dtype", "data"},
       "upstream": [...] (only when the op has a gradient),
       "grads":    [[...] or null per input]}]}

Other engineers' scripts reuse the machinery and write their own file, e.g.
    from make_fixtures import FixtureFile
    f = FixtureFile("conv")                      # -> test/fixtures/conv.json
    f.case("conv3x3", "conv2d", lambda x, w: F.conv2d(x, w, padding=1),
           [f.rand([2, 3, 5, 5]), f.rand([4, 3, 3, 3])], args={"padding": 1})
    f.write()
and their TypeScript test reads it with the same loader (see test/ops_parity.test.ts).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FIXTURES = Path(__file__).resolve().parent.parent / "test" / "fixtures"
MAX_BYTES = 200_000


def _f32_exact(values):
    # The shortest decimal that reads back as the same float32.
    return [float(repr(np.float32(v))) for v in values]


def _out_values(values):
    # Float64 results rounded to 9 significant digits: far below the tests' tolerances.
    return [float("%.9g" % v) for v in values]


class FixtureFile:
    def __init__(self, name, seed=0):
        self.name = name
        self.cases = []
        self.gen = torch.Generator().manual_seed(seed)

    # Inputs: float64 tensors whose values are exactly representable in float32.
    def rand(self, shape, lo=-1.0, hi=1.0, decimals=None):
        """Uniform values; with `decimals`, rounded to that many decimals (short JSON, but still
        inexact in binary) for the large inputs of long reductions."""
        x = torch.rand(shape, generator=self.gen, dtype=torch.float64) * (hi - lo) + lo
        if decimals is not None:
            x = torch.round(x * 10**decimals) / 10**decimals
        return x.float().double()

    def randn(self, shape, std=1.0):
        return (torch.randn(shape, generator=self.gen, dtype=torch.float64) * std).float().double()

    def ints(self, shape, high, low=0):
        return torch.randint(low, high, shape, generator=self.gen, dtype=torch.int64)

    def case(self, name, op, fn, inputs, args=None, rtol=1e-4, grad=True):
        """Records fn(*inputs); with grad, also the gradients of the float inputs."""
        if any(c["name"] == name for c in self.cases):
            raise ValueError(f"duplicate fixture case name {name!r}")
        # Float inputs are rounded to float32 first, so that what is stored is what was used.
        xs = [x.float().double().requires_grad_(grad) if x.is_floating_point() else x.clone() for x in inputs]
        out = fn(*xs)
        entry = {
            "name": name,
            "op": op,
            "args": args or {},
            "rtol": rtol,
            "inputs": [self._tensor(x.detach()) for x in xs],
            "output": self._tensor(out.detach(), exact=False),
        }
        wants = [x for x in xs if x.requires_grad]
        if grad and wants and out.requires_grad:
            upstream = self.rand(list(out.shape))
            grads = dict(zip(map(id, wants), torch.autograd.grad(out, wants, upstream, allow_unused=True)))
            entry["upstream"] = _f32_exact(upstream.flatten().tolist())
            entry["grads"] = [self._grad(x, grads.get(id(x))) if x.requires_grad else None for x in xs]
        self.cases.append(entry)

    @staticmethod
    def _grad(x, g):
        # An input the output does not depend on has a zero gradient.
        return _out_values((g if g is not None else torch.zeros_like(x)).flatten().tolist())

    @staticmethod
    def _tensor(t, exact=True):
        flat = t.flatten().tolist()
        if t.is_floating_point():
            return {"shape": list(t.shape), "dtype": "f32", "data": _f32_exact(flat) if exact else _out_values(flat)}
        return {"shape": list(t.shape), "dtype": "i32", "data": [int(v) for v in flat]}

    def write(self):
        path = FIXTURES / f"{self.name}.json"
        doc = {"generator": Path(sys.argv[0]).name, "torch": torch.__version__, "cases": self.cases}
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) > MAX_BYTES:
            raise SystemExit(f"{path.name} would be {len(text)} bytes (> {MAX_BYTES}); use smaller shapes")
        FIXTURES.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        print(f"wrote {path} ({len(self.cases)} cases, {len(text)} bytes)")


def op_cases(f):
    # Elementwise arithmetic with broadcasting, and the scalar forms.
    f.case("add_broadcast", "add", torch.add, [f.rand([2, 3, 4]), f.rand([3, 1])])
    f.case("add_scalar", "add", lambda a: a + 0.75, [f.rand([5])], args={"scalar": 0.75})
    f.case("sub_broadcast", "sub", torch.sub, [f.rand([4, 1]), f.rand([3])])
    f.case("mul_broadcast", "mul", torch.mul, [f.rand([2, 1, 3]), f.rand([2, 3])])
    f.case("mul_scalar", "mul", lambda a: a * -1.5, [f.rand([2, 3])], args={"scalar": -1.5})
    f.case("div_broadcast", "div", torch.div, [f.rand([3, 4]), f.rand([4], 0.5, 2.0)])
    f.case("div_scalar", "div", lambda a: a / 4.0, [f.rand([3])], args={"scalar": 4.0})
    f.case("neg", "neg", torch.neg, [f.rand([2, 3])])
    f.case("exp", "exp", torch.exp, [f.rand([2, 3], -3, 3)])
    f.case("log", "log", torch.log, [f.rand([2, 3], 0.1, 5)])
    f.case("sqrt", "sqrt", torch.sqrt, [f.rand([2, 3], 0.1, 5)])
    # Away from 0, where relu's derivative is undefined.
    relu_in = f.rand([3, 4], 0.05, 1) * torch.where(f.rand([3, 4]) > 0, 1.0, -1.0).double()
    f.case("relu", "relu", torch.relu, [relu_in])
    f.case("affine", "affine", lambda x: 2.5 * x - 0.5, [f.rand([4])], args={"alpha": 2.5, "beta": -0.5})
    f.case("pow_scalar", "powScalar", lambda x: x**2.5, [f.rand([4], 0.2, 2)], args={"p": 2.5})

    # Reductions.
    f.case("sum_all", "sum", torch.sum, [f.rand([2, 3, 4])], args={})
    f.case("sum_axis", "sum", lambda x: x.sum(1), [f.rand([2, 3, 4])], args={"axes": 1})
    f.case("sum_axes_gap_keep", "sum", lambda x: x.sum((0, 2), keepdim=True), [f.rand([2, 3, 4])], args={"axes": [0, 2], "keepDims": True})
    # Long enough for the two-pass reduction; their gradient is a plain broadcast, tested above.
    f.case("sum_long", "sum", torch.sum, [f.rand([2100], decimals=2)], args={}, rtol=1e-3, grad=False)
    f.case("sum_long_axis", "sum", lambda x: x.sum(1), [f.rand([2, 2100], decimals=2)], args={"axes": 1}, rtol=1e-3, grad=False)
    f.case("mean_all", "mean", torch.mean, [f.rand([3, 4])], args={})
    f.case("mean_axis_neg", "mean", lambda x: x.mean(-1), [f.rand([2, 3, 4])], args={"axes": -1})
    f.case("mean_axes_keep", "mean", lambda x: x.mean((0, 1), keepdim=True), [f.rand([2, 3, 4])], args={"axes": [0, 1], "keepDims": True})
    f.case("max_axis", "max", lambda x: x.max(1).values, [f.rand([3, 5, 2])], args={"axis": 1})
    f.case("max_axis_keep", "max", lambda x: x.max(0, keepdim=True).values, [f.rand([4, 3])], args={"axis": 0, "keepDims": True})
    f.case("max_all", "max", torch.max, [f.rand([3, 4])], args={})
    f.case("sum_to", "sumTo", lambda x: x.sum((0, 2), keepdim=True)[0], [f.rand([2, 3, 4])], args={"shape": [3, 1]})

    # Matrix products.
    f.case("matmul_2d", "matmul", torch.matmul, [f.rand([5, 7]), f.rand([7, 3])])
    f.case("matmul_batched", "matmul", torch.matmul, [f.rand([2, 4, 5]), f.rand([2, 5, 3])])
    f.case("matmul_batched_2d", "matmul", torch.matmul, [f.rand([2, 3, 4, 5]), f.rand([5, 6])])

    # Shape ops.
    f.case("permute", "permute", lambda x: x.permute(2, 0, 1), [f.rand([2, 3, 4])], args={"perm": [2, 0, 1]})
    f.case("transpose", "transpose", lambda x: x.transpose(0, 2), [f.rand([2, 3, 4])], args={"dim0": 0, "dim1": 2})
    f.case("transpose_last", "transpose", lambda x: x.transpose(-2, -1), [f.rand([2, 3, 4])], args={})
    f.case("reshape", "reshape", lambda x: x.reshape(4, -1), [f.rand([2, 3, 4])], args={"shape": [4, -1]})
    f.case("expand", "expandTo", lambda x: x.expand(2, 3, 4), [f.rand([3, 1])], args={"shape": [2, 3, 4]})
    f.case("concat_axis1", "concat", lambda a, b, c: torch.cat([a, b, c], 1), [f.rand([2, 1, 3]), f.rand([2, 4, 3]), f.rand([2, 2, 3])], args={"axis": 1})
    f.case("concat_axis0", "concat", lambda a, b: torch.cat([a, b], 0), [f.rand([1, 5]), f.rand([3, 5])], args={"axis": 0})
    f.case("concat_last", "concat", lambda a, b: torch.cat([a, b], -1), [f.rand([3, 2]), f.rand([3, 4])], args={"axis": -1})
    f.case("slice", "slice", lambda x: x[:, 1:4], [f.rand([3, 5, 2])], args={"axis": 1, "start": 1, "end": 4})
    f.case("slice_neg", "slice", lambda x: x[..., -2:], [f.rand([2, 5])], args={"axis": -1, "start": -2})

    # Indexing. Indices repeat, so the backward pass must sum several entries into one element.
    f.case("gather_axis1", "gather", lambda x, i: torch.gather(x, 1, i), [f.rand([3, 5, 4]), f.ints([3, 6, 4], 5)], args={"axis": 1})
    f.case("gather_small_index", "gather", lambda x, i: torch.gather(x, 1, i), [f.rand([3, 5, 4]), f.ints([2, 3, 3], 5)], args={"axis": 1})
    f.case("gather_last", "gather", lambda x, i: torch.gather(x, -1, i), [f.rand([4, 7]), f.ints([4, 3], 7)], args={"axis": -1})
    f.case("index_select", "indexSelect", lambda x, i: torch.index_select(x, 0, i), [f.rand([4, 3, 2]), torch.tensor([2, 0, 2, 3, 1])], args={"axis": 0})
    f.case("index_select_mid", "indexSelect", lambda x, i: torch.index_select(x, 1, i), [f.rand([2, 5, 3]), torch.tensor([4, 1, 4])], args={"axis": 1})
    f.case("argmax_axis", "argmax", lambda x: torch.argmax(x, 1), [f.rand([4, 6])], args={"axis": 1}, grad=False)
    f.case("argmax_keep", "argmax", lambda x: torch.argmax(x, 0, keepdim=True), [f.rand([5, 3])], args={"axis": 0, "keepDims": True}, grad=False)
    f.case("argmax_all", "argmax", torch.argmax, [f.rand([3, 4])], args={}, grad=False)
    # Integer tensors through the same copy and gather kernels (labels, indices).
    f.case("concat_int", "concat", lambda a, b: torch.cat([a, b], 1), [f.ints([2, 2], 9, -9), f.ints([2, 3], 9, -9)], args={"axis": 1}, grad=False)
    f.case("gather_int", "gather", lambda x, i: torch.gather(x, 0, i), [f.ints([4, 3], 50), f.ints([2, 3], 4)], args={"axis": 0}, grad=False)
    f.case("to_float", "toFloat", lambda i: i.double(), [f.ints([2, 3], 100, -100)], args={}, grad=False)

    # Normalisation and losses.
    f.case("l2_normalize_rows", "l2Normalize", lambda x: F.normalize(x, dim=1), [f.rand([4, 6])], args={"axis": 1})
    f.case("l2_normalize_mid", "l2Normalize", lambda x: F.normalize(x, dim=1), [f.rand([2, 5, 3])], args={"axis": 1})
    small = torch.cat([f.rand([1, 4], -0.05, 0.05), f.rand([2, 4])])  # row 0's norm is below eps
    f.case("l2_normalize_clamped", "l2Normalize", lambda x: F.normalize(x, dim=-1, eps=0.5), [small], args={"axis": -1, "eps": 0.5})
    f.case("log_softmax_rows", "logSoftmax", lambda x: F.log_softmax(x, 1), [f.rand([3, 7], -3, 3)], args={"axis": 1})
    f.case("log_softmax_mid", "logSoftmax", lambda x: F.log_softmax(x, 1), [f.rand([2, 4, 3], -3, 3)], args={"axis": 1})
    f.case("log_softmax_large", "logSoftmax", lambda x: F.log_softmax(x, -1), [f.rand([2, 5], 50, 90)], args={"axis": -1})
    for red in ("mean", "sum", "none"):
        f.case(f"cross_entropy_{red}", "crossEntropy", lambda x, y, r=red: F.cross_entropy(x, y, reduction=r), [f.rand([6, 5], -4, 4), f.ints([6], 5)], args={"reduction": red})
    f.case("cross_entropy_wide", "crossEntropy", F.cross_entropy, [f.randn([3, 300], 5.0), f.ints([3], 300)], args={"reduction": "mean"}, rtol=1e-3)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    ops = FixtureFile("ops")
    op_cases(ops)
    ops.write()
