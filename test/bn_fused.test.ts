// The fused forms of batchNorm2d against the unfused ops composed: a residual added before the
// ReLU (a ResNet block's tail), a gradient of several terms summed in the kernels, and weight
// and bias gradients added straight into existing .grad tensors; plus finite differences.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, assertClose, randomArray, gradCheck } from './helpers.js';
import { tensor, backward, batchNorm2d, add, mul, relu, sum, Tensor } from '../engine/index.js';

const t = suite('batch norm fused with the residual add and ReLU');
t.before(async () => {
  await gpu();
});

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const input = (shape: number[], seed: number) => ({ data: randomArray(size(shape), seed), shape });

interface Leaves {
  x: Tensor;
  w: Tensor;
  b: Tensor;
  r: Tensor;
}

function leaves(shape: number[], seed: number): Leaves {
  const C = shape[1];
  return {
    x: tensor(randomArray(size(shape), seed), shape).requireGrad(),
    w: tensor(randomArray(C, seed + 1, 0.5, 1.5), [C]).requireGrad(),
    b: tensor(randomArray(C, seed + 2), [C]).requireGrad(),
    r: tensor(randomArray(size(shape), seed + 3), shape).requireGrad(),
  };
}

/** y used `uses` times (each use weighted by its own random tensor), summed to a scalar. */
function objective(y: Tensor, uses: number, seed: number): Tensor {
  let loss: Tensor | null = null;
  for (let u = 0; u < uses; u++) {
    const term = sum(mul(y, tensor(randomArray(y.size, seed + 10 * u), [...y.shape])));
    loss = loss ? add(loss, term) : term;
  }
  return loss!;
}

async function run(shape: number[], groups: number, uses: number, fused: boolean, preset: Float32Array | null) {
  const C = shape[1];
  const { x, w, b, r } = leaves(shape, 1);
  if (preset) {
    w.grad = tensor(preset.subarray(0, C), [C]);
    b.grad = tensor(preset.subarray(C), [C]);
  }
  const rm = tensor(new Float32Array(C), [C]);
  const rv = tensor(new Float32Array(C).fill(1), [C]);
  const opts = { training: true, groups };
  const y = fused
    ? batchNorm2d(x, w, b, rm, rv, { ...opts, relu: true, residual: r })
    : relu(add(batchNorm2d(x, w, b, rm, rv, { ...opts, relu: false }), r));
  backward(objective(y, uses, 5));
  const out = { y: await y.data(), rm: await rm.data(), rv: await rv.data() } as Record<string, Float32Array>;
  for (const [name, leaf] of Object.entries({ x, w, b, r })) out[`d${name}`] = await leaf.grad!.data();
  return out;
}

t('matches relu(add(batchNorm2d(x), r)): output, running statistics, every gradient', async () => {
  // vec4 and scalar planes, one and two BN groups, the output used once, twice (the two gradient
  // terms go to the kernels unsummed) and three times (autograd sums the surplus first).
  const cases: [number[], number, number][] = [
    [[4, 3, 4, 4], 1, 1],
    [[4, 3, 4, 4], 2, 2],
    [[4, 2, 3, 3], 2, 2],
    [[2, 5, 3, 5], 1, 3],
  ];
  for (const [shape, groups, uses] of cases) {
    const what = `[${shape}] groups ${groups}, used ${uses}x`;
    const want = await run(shape, groups, uses, false, null);
    const got = await run(shape, groups, uses, true, null);
    for (const key of Object.keys(want)) assertClose(got[key], want[key], 1e-5, 1e-6, `${what}: ${key}`);
  }
});

t('weight and bias gradients add to existing .grad tensors', async () => {
  const shape = [4, 3, 4, 4];
  const preset = randomArray(6, 42);
  const fresh = await run(shape, 2, 2, true, null);
  const acc = await run(shape, 2, 2, true, preset);
  assertClose(acc.dw, fresh.dw.map((v, i) => v + preset[i]), 1e-6, 1e-6, 'dweight accumulated');
  assertClose(acc.db, fresh.db.map((v, i) => v + preset[3 + i]), 1e-6, 1e-6, 'dbias accumulated');
  assertClose(acc.dx, fresh.dx, 0, 0, 'dx unchanged by the accumulation');
});

t('finite differences through the fused op (x, weight, bias, residual)', async () => {
  const shape = [2, 2, 3, 4];
  const C = shape[1];
  const fn = (x: Tensor, w: Tensor, b: Tensor, r: Tensor) =>
    batchNorm2d(x, w, b, tensor(new Float32Array(C), [C]), tensor(new Float32Array(C).fill(1), [C]), { training: true, relu: true, residual: r });
  // A residual of +-6 keeps every pre-activation well away from the ReLU's kink (|bn| < 5 here),
  // with both signs, so central differences do not straddle it.
  const residual = randomArray(size(shape), 14).map((v) => (v < 0 ? -6 : 6));
  await gradCheck(fn, [input(shape, 11), { data: randomArray(C, 12, 0.5, 1.5), shape: [C] }, input([C], 13), { data: residual, shape }], { what: 'fused batch norm' });
});

t('a residual of another shape is refused by name', async () => {
  const { x, w, b } = leaves([2, 3, 4, 4], 3);
  const rm = tensor(new Float32Array(3), [3]);
  const rv = tensor(new Float32Array(3).fill(1), [3]);
  assert.throws(() => batchNorm2d(x, w, b, rm, rv, { training: true, residual: tensor(new Float32Array(2 * 3 * 16), [2, 3, 16]) }), /residual .* does not match input .* must have the input's shape/);
});

t.run();
