import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gpu, assertClose, randomArray, gradCheck } from './helpers.js';
import {
  tensor,
  backward,
  noGrad,
  batchNorm2d,
  maxPool2d,
  adaptiveAvgPool2d,
  linear,
  type Tensor,
  type BatchNormOptions,
} from '../engine/index.js';

// Tests run from the bundle in .build/test/; fixtures stay in the source tree.
const fixturePath = fileURLToPath(new URL('../../test/fixtures/bn_pool.json', import.meta.url));

interface Arr {
  shape: number[];
  data: number[];
}
interface Case {
  name: string;
  op: 'batchNorm2d' | 'maxPool2d' | 'adaptiveAvgPool2d' | 'linear';
  args: Record<string, unknown>;
  inputs: Record<string, Arr>;
  output: number[];
  upstream: number[];
  grads: Record<string, number[]>;
  running?: { mean: number[]; var: number[] };
  step2?: { x: Arr; output: number[]; running: { mean: number[]; var: number[] } };
}

const t = suite('batch norm, pooling, linear');
let cases: Case[] = [];
t.before(async () => {
  await gpu();
  cases = JSON.parse(readFileSync(fixturePath, 'utf8')).cases;
});

const leaf = (a: Arr, grad = true): Tensor => {
  const x = tensor(a.data, a.shape);
  return grad ? x.requireGrad() : x;
};

async function checkGrads(
  c: Case,
  out: Tensor,
  leaves: Record<string, Tensor>,
  rtol: number,
  atol: number,
): Promise<void> {
  backward(out, tensor(c.upstream, out.shape));
  for (const [name, expected] of Object.entries(c.grads)) {
    const g = leaves[name].grad;
    assert.ok(g, `${c.name}: no gradient for ${name}`);
    assertClose(await g.data(), expected, rtol, atol, `${c.name} d${name}`);
  }
}

t('batchNorm2d matches PyTorch: train (two steps, running stats), grouped, eval, fused ReLU', async () => {
  const bn = cases.filter((c) => c.op === 'batchNorm2d');
  assert.ok(bn.length >= 8, 'fixture has the batch norm cases');
  for (const c of bn) {
    const opts = c.args as unknown as BatchNormOptions;
    const x = leaf(c.inputs.x);
    const w = leaf(c.inputs.weight);
    const b = leaf(c.inputs.bias);
    const rm = leaf(c.inputs.runningMean, false);
    const rv = leaf(c.inputs.runningVar, false);
    const y = batchNorm2d(x, w, b, rm, rv, opts);
    assertClose(await y.data(), c.output, 1e-4, 1e-5, `${c.name} output`);
    await checkGrads(c, y, { x, weight: w, bias: b }, 1e-4, 1e-5);
    if (c.running && c.step2) {
      assertClose(await rm.data(), c.running.mean, 1e-4, 1e-6, `${c.name} running mean, step 1`);
      assertClose(await rv.data(), c.running.var, 1e-4, 1e-6, `${c.name} running var, step 1`);
      const y2 = noGrad(() => batchNorm2d(tensor(c.step2!.x.data, c.step2!.x.shape), w, b, rm, rv, opts));
      assertClose(await y2.data(), c.step2.output, 1e-4, 1e-5, `${c.name} output, step 2`);
      assertClose(await rm.data(), c.step2.running.mean, 1e-4, 1e-6, `${c.name} running mean, step 2`);
      assertClose(await rv.data(), c.step2.running.var, 1e-4, 1e-6, `${c.name} running var, step 2`);
      y2.dispose();
    } else {
      // Eval mode leaves the buffers alone.
      assert.equal(
        Array.from(await rm.data()),
        Array.from(Float32Array.from(c.inputs.runningMean.data)),
        `${c.name} running mean unchanged`,
      );
      assert.equal(
        Array.from(await rv.data()),
        Array.from(Float32Array.from(c.inputs.runningVar.data)),
        `${c.name} running var unchanged`,
      );
    }
    for (const v of [x, w, b, rm, rv, y]) v.dispose();
  }
});

t('pooling and linear match PyTorch', async () => {
  const rest = cases.filter((c) => c.op !== 'batchNorm2d');
  assert.ok(rest.length >= 14, 'fixture has the pooling and linear cases');
  for (const c of rest) {
    const leaves: Record<string, Tensor> = {};
    for (const [k, a] of Object.entries(c.inputs)) leaves[k] = leaf(a);
    let y: Tensor;
    if (c.op === 'maxPool2d') {
      const a = c.args as {
        kernelSize: number | [number, number];
        stride: number | [number, number];
        padding: number | [number, number];
      };
      y = maxPool2d(leaves.x, { kernelSize: a.kernelSize, stride: a.stride, padding: a.padding });
    } else if (c.op === 'adaptiveAvgPool2d') {
      y = adaptiveAvgPool2d(leaves.x, c.args.outputSize as number | [number, number]);
    } else {
      y = linear(leaves.x, leaves.weight, leaves.bias);
    }
    assertClose(await y.data(), c.output, 1e-4, 1e-6, `${c.name} output`);
    await checkGrads(c, y, leaves, 1e-4, 1e-6);
    for (const v of [...Object.values(leaves), y]) v.dispose();
  }
});

t('gradient checks by finite differences', async () => {
  const mk = (shape: number[], seed: number, lo = -1, hi = 1) => ({
    data: randomArray(
      shape.reduce((a, b) => a * b, 1),
      seed,
      lo,
      hi,
    ),
    shape,
  });
  const bnWith = (C: number, opts: BatchNormOptions) => {
    const rm = tensor(new Float32Array(C), [C]);
    const rv = tensor(new Float32Array(C).fill(1), [C]);
    return (x: Tensor, w: Tensor, b: Tensor) => batchNorm2d(x, w, b, rm, rv, opts);
  };
  const wb = (C: number, seed: number) => [mk([C], seed, 0.5, 1.5), mk([C], seed + 1)];
  await gradCheck(bnWith(2, { training: true }), [mk([3, 2, 2, 3], 1), ...wb(2, 2)], { what: 'batchNorm2d train' });
  await gradCheck(bnWith(2, { training: true, groups: 2 }), [mk([4, 2, 2, 2], 4), ...wb(2, 5)], {
    what: 'batchNorm2d grouped',
  });
  await gradCheck(bnWith(3, { training: false }), [mk([2, 3, 2, 2], 7), ...wb(3, 8)], { what: 'batchNorm2d eval' });
  // Well-separated values so that no finite-difference step changes which element is the max.
  // (37 is coprime to 50, so i -> 37 i mod 50 is a permutation.)
  const spaced = {
    data: Float32Array.from({ length: 50 }, (_, i) => ((i * 37) % 50) * 0.1 - 2.5),
    shape: [1, 2, 5, 5],
  };
  await gradCheck((x) => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }), [spaced], {
    what: 'maxPool2d 3x3/s2/p1',
  });
  await gradCheck((x) => maxPool2d(x, { kernelSize: 2 }), [spaced], { what: 'maxPool2d 2x2' });
  await gradCheck((x) => adaptiveAvgPool2d(x, 3), [mk([1, 2, 5, 4], 11)], { what: 'adaptiveAvgPool2d 5x4->3' });
  await gradCheck((x) => adaptiveAvgPool2d(x, 1), [mk([2, 2, 3, 3], 12)], { what: 'adaptiveAvgPool2d global' });
  await gradCheck((x, w, b) => linear(x, w, b), [mk([2, 3, 4], 13), mk([5, 4], 14), mk([5], 15)], { what: 'linear' });
  await gradCheck((x, w) => linear(x, w), [mk([3, 4], 16), mk([2, 4], 17)], { what: 'linear without bias' });
});

/** Float64 batch norm (training, groups) of x [N, C, H, W]: output, running stats, gradients. */
function referenceBn(
  x: Float32Array,
  shape: number[],
  w: Float32Array,
  b: Float32Array,
  dy: Float32Array,
  G: number,
  momentum: number,
  eps: number,
) {
  const [N, C, H, W] = shape;
  const hw = H * W;
  const per = N / G;
  const m = per * hw;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  const rm = new Float64Array(C);
  const rv = new Float64Array(C).fill(1 - momentum);
  for (let c = 0; c < C; c++) {
    for (let g = 0; g < G; g++) {
      const at = (n: number, i: number) => (n * C + c) * hw + i;
      let s = 0;
      for (let n = g * per; n < (g + 1) * per; n++) for (let i = 0; i < hw; i++) s += x[at(n, i)];
      const mean = s / m;
      let q = 0;
      for (let n = g * per; n < (g + 1) * per; n++) for (let i = 0; i < hw; i++) q += (x[at(n, i)] - mean) ** 2;
      const invstd = 1 / Math.sqrt(q / m + eps);
      rm[c] += (momentum * mean) / G;
      rv[c] += (momentum * (q / (m - 1))) / G;
      let sdy = 0;
      let sdyx = 0;
      for (let n = g * per; n < (g + 1) * per; n++) {
        for (let i = 0; i < hw; i++) {
          const xh = (x[at(n, i)] - mean) * invstd;
          y[at(n, i)] = xh * w[c] + b[c];
          sdy += dy[at(n, i)];
          sdyx += dy[at(n, i)] * xh;
        }
      }
      dw[c] += sdyx;
      db[c] += sdy;
      for (let n = g * per; n < (g + 1) * per; n++) {
        for (let i = 0; i < hw; i++) {
          const xh = (x[at(n, i)] - mean) * invstd;
          dx[at(n, i)] = w[c] * invstd * (dy[at(n, i)] - sdy / m - (xh * sdyx) / m);
        }
      }
    }
  }
  return { y, dx, dw, db, rm, rv };
}

t('batchNorm2d on ResNet-like shapes with a large mean: accurate, grouped, deterministic', async () => {
  for (const [shape, G] of [
    [[8, 16, 28, 28], 2],
    [[4, 8, 7, 7], 4],
  ] as [number[], number][]) {
    const [, C] = shape;
    const n = shape.reduce((a, b) => a * b, 1);
    // A mean 100 times the spread: E[x^2] - E[x]^2 in float32 would lose most digits.
    const xs = randomArray(n, 21, 99, 101);
    const dys = randomArray(n, 22);
    const ws = randomArray(C, 23, 0.5, 1.5);
    const bs = randomArray(C, 24);
    const ref = referenceBn(xs, shape, ws, bs, dys, G, 0.1, 1e-5);
    const x = tensor(xs, shape).requireGrad();
    const w = tensor(ws, [C]).requireGrad();
    const b = tensor(bs, [C]).requireGrad();
    const rm = tensor(new Float32Array(C), [C]);
    const rv = tensor(new Float32Array(C).fill(1), [C]);
    const y = batchNorm2d(x, w, b, rm, rv, { training: true, groups: G });
    const what = `${shape.join('x')} groups ${G}`;
    const yv = await y.data();
    assertClose(yv, ref.y, 1e-3, 1e-3, `${what} output`);
    assertClose(await rm.data(), ref.rm, 1e-5, 1e-5, `${what} running mean`);
    assertClose(await rv.data(), ref.rv, 1e-3, 1e-6, `${what} running var`);
    backward(y, tensor(dys, shape));
    assertClose(await x.grad!.data(), ref.dx, 1e-3, 1e-3, `${what} dx`);
    assertClose(await w.grad!.data(), ref.dw, 1e-3, 1e-2, `${what} dweight`);
    assertClose(await b.grad!.data(), ref.db, 1e-3, 1e-2, `${what} dbias`);
    const again = noGrad(() => batchNorm2d(x, w, b, rm, rv, { training: true, groups: G }));
    assert.equal(Array.from(await again.data()), Array.from(yv), `${what}: a second run gives the same bits`);
    for (const v of [x, w, b, rm, rv, y, again, x.grad!, w.grad!, b.grad!]) v.dispose();
  }
});

t('batchNorm2d without gradients (key encoder) still updates the running stats', async () => {
  const x = tensor(randomArray(2 * 3 * 4 * 4, 31), [2, 3, 4, 4]);
  const w = tensor([1, 1, 1], [3]).requireGrad();
  const b = tensor([0, 0, 0], [3]).requireGrad();
  const rm = tensor([0, 0, 0], [3]);
  const rv = tensor([1, 1, 1], [3]);
  const y = noGrad(() => batchNorm2d(x, w, b, rm, rv, { training: true }));
  assert.is(y.node, null);
  const mean = await rm.data();
  assert.ok(
    mean.some((v) => v !== 0),
    'running mean moved',
  );
  for (const v of [x, w, b, rm, rv, y]) v.dispose();
});

t('pooling over more than 65535 planes (dispatched in chunks)', async () => {
  const planes = 70000;
  const xs = randomArray(planes * 4, 41);
  const x = tensor(xs, [1, planes, 2, 2]).requireGrad();
  const mx = maxPool2d(x, { kernelSize: 2 });
  const avg = adaptiveAvgPool2d(x, 1);
  const mxRef = new Float32Array(planes);
  const avgRef = new Float32Array(planes);
  for (let p = 0; p < planes; p++) {
    const v = xs.subarray(4 * p, 4 * p + 4);
    mxRef[p] = Math.max(...v);
    avgRef[p] = (v[0] + v[1] + v[2] + v[3]) / 4;
  }
  assertClose(await mx.data(), mxRef, 0, 0, 'max');
  assertClose(await avg.data(), avgRef, 1e-6, 1e-7, 'average');
  backward(mx, tensor(new Float32Array(planes).fill(1), mx.shape));
  const dx = Float32Array.from(await x.grad!.data());
  assert.is(
    dx.reduce((a, b) => a + b, 0),
    planes,
    'one unit of gradient per plane',
  );
  assert.is(
    dx[4 * (planes - 1) + xs.subarray(4 * (planes - 1)).indexOf(mxRef[planes - 1])],
    1,
    'the last plane routes to its max',
  );
  for (const v of [x, mx, avg, x.grad!]) v.dispose();
});

t('clear errors for bad input', () => {
  const x = tensor(new Float32Array(6 * 4 * 3 * 3), [6, 4, 3, 3]);
  const c4 = tensor(new Float32Array(4), [4]);
  const c3 = tensor(new Float32Array(3), [3]);
  assert.throws(
    () => batchNorm2d(x, c3, c4, c4, c4, { training: true }),
    /weight f32\[3\] does not match the 4 channels of input f32\[6, 4, 3, 3\]/,
  );
  assert.throws(() => batchNorm2d(x, c4, c4, c4, c3, { training: false }), /runningVar f32\[3\]/);
  assert.throws(
    () => batchNorm2d(x, c4, c4, c4, c4, { training: true, groups: 4 }),
    /input f32\[6, 4, 3, 3\] \(N = 6\) is not divisible by groups = 4/,
  );
  assert.throws(
    () => batchNorm2d(tensor([1, 2, 3, 4], [1, 4]), c4, c4, c4, c4, { training: true }),
    /expects an input \[N, C, H, W\], got f32\[1, 4\]/,
  );
  const one = tensor(new Float32Array(4), [1, 4, 1, 1]);
  assert.throws(() => batchNorm2d(one, c4, c4, c4, c4, { training: true }), /more than one value per channel/);
  const small = tensor(new Float32Array(2 * 2), [1, 1, 2, 2]);
  assert.throws(
    () => maxPool2d(small, { kernelSize: 3 }),
    /3x3 window is larger than input f32\[1, 1, 2, 2\] padded by 0x0 \(2x2\)/,
  );
  assert.throws(
    () => maxPool2d(small, { kernelSize: 2, padding: 2 }),
    /padding 2x2 must be at most half the kernel 2x2/,
  );
  assert.throws(() => adaptiveAvgPool2d(tensor([1, 2], [1, 2]), 1), /expects an input \[N, C, H, W\], got f32\[1, 2\]/);
  assert.throws(
    () => linear(tensor(new Float32Array(6), [2, 3]), tensor(new Float32Array(8), [2, 4])),
    /input f32\[2, 3\] must end in the 4 input features of weight f32\[2, 4\]/,
  );
  assert.throws(
    () => linear(tensor(new Float32Array(8), [2, 4]), tensor(new Float32Array(8), [2, 4]), c3),
    /bias f32\[3\] does not match the 2 outputs/,
  );
});

t.run();
