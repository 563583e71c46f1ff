// Gradients that kernels add straight into a parameter's existing .grad (conv weight gradients
// of one chunk or summed from partials, conv and linear bias) equal the existing values plus
// the gradient a fresh leaf receives, in both convolution families.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime, assertClose, randomArray } from './helpers.js';
import { tensor, backward, conv2d, linear, mul, sum, type Tensor } from '../engine/index.js';
import { overrideKernels } from '../engine/device-profile.js';

const t = suite('gradients accumulated in the producing kernel');
t.before(async () => {
  await gpu();
});

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The .grad of each parameter after one backward of sum(u * f(x, params)), starting from `preset` (or none). */
async function gradsOf(
  f: (x: Tensor, ps: Tensor[]) => Tensor,
  xShape: number[],
  pShapes: number[][],
  preset: Float32Array[] | null,
  ops: string[] = [],
): Promise<Float32Array[]> {
  const x = tensor(randomArray(size(xShape), 1), xShape);
  const ps = pShapes.map((s, i) => tensor(randomArray(size(s), 2 + i), s).requireGrad());
  if (preset) ps.forEach((p, i) => (p.grad = tensor(preset[i], p.shape)));
  const y = f(x, ps);
  const rt = runtime();
  rt.observer = {
    timestampWrites: (info) => void ops.push(`${info.op} ${info.kernel}`),
    beforeSubmit: () => {},
    afterSubmit: () => {},
  };
  try {
    backward(sum(mul(y, tensor(randomArray(y.size, 9), [...y.shape]))));
  } finally {
    rt.observer = null;
  }
  return Promise.all(ps.map(async (p) => Float32Array.from(await p.grad!.data())));
}

/** `folded`: how many parameters must get their gradient added by the kernel that computes it. */
async function check(
  what: string,
  f: (x: Tensor, ps: Tensor[]) => Tensor,
  xShape: number[],
  pShapes: number[][],
  folded: number,
): Promise<void> {
  const fresh = await gradsOf(f, xShape, pShapes, null);
  const preset = pShapes.map((s, i) => randomArray(size(s), 50 + i));
  const ops: string[] = [];
  const acc = await gradsOf(f, xShape, pShapes, preset, ops);
  assert.is(
    ops.filter((o) => o.includes('ACCUMULATE=true')).length,
    folded,
    `${what}: gradients added by their kernels (${ops.join('; ')})`,
  );
  assert.is(
    ops.filter((o) => o.startsWith('grad.accumulate')).length,
    pShapes.length - folded,
    `${what}: separate accumulations`,
  );
  acc.forEach((g, i) =>
    assertClose(
      g,
      fresh[i].map((v, j) => Math.fround(v + preset[i][j])),
      0,
      0,
      `${what}: parameter ${i}`,
    ),
  );
}

const conv3x3 = (x: Tensor, [w, b]: Tensor[]) => conv2d(x, w, b, { padding: 1 });

t('conv2d weight and bias: 3x3 of many and of one row chunk, 1x1 (per-image products)', async () => {
  await check('3x3 conv, partials', conv3x3, [4, 16, 64, 64], [[32, 16, 3, 3], [32]], 2);
  await check('3x3 conv, one chunk', conv3x3, [4, 3, 16, 16], [[5, 3, 3, 3], [5]], 2);
  await check('1x1 conv', (x, [w, b]) => conv2d(x, w, b), [3, 4, 6, 6], [[6, 4, 1, 1], [6]], 2);
});

t('conv2d weight and bias in the tiled (GPU) family', async () => {
  const restore = overrideKernels(runtime().profile, { conv: 'tiled' });
  try {
    await check('tiled 3x3 conv', conv3x3, [2, 3, 8, 8], [[5, 3, 3, 3], [5]], 2);
    await check('tiled 1x1 conv', (x, [w, b]) => conv2d(x, w, b), [2, 4, 6, 6], [[6, 4, 1, 1], [6]], 2);
  } finally {
    restore();
  }
});

t('linear bias', async () => {
  // The weight gradient is one GEMM (no partials): accumulated separately.
  await check('linear', (x, [w, b]) => linear(x, w, b), [7, 5], [[3, 5], [3]], 1);
});

t.run();
