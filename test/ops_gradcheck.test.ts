// Finite-difference gradient checks of the indexing, normalisation and loss ops.
import { suite } from 'uvu';
import { gpu, randomArray, gradCheck } from './helpers.js';
import {
  tensor,
  concat,
  slice,
  gather,
  indexSelect,
  l2Normalize,
  logSoftmax,
  crossEntropy,
  mul,
  type Tensor,
} from '../engine/index.js';

const t = suite('ops gradient checks');
t.before(async () => {
  await gpu();
});

const input = (shape: number[], seed: number, lo = -1, hi = 1) => ({
  data: randomArray(
    shape.reduce((a, b) => a * b, 1),
    seed,
    lo,
    hi,
  ),
  shape,
});

/** Runs fn with i32 tensors made from `indices`, disposing them afterwards. */
async function withIndices(
  indices: { data: number[]; shape: number[] }[],
  fn: (...ix: Tensor[]) => Promise<void>,
): Promise<void> {
  const ix = indices.map((i) => tensor(i.data, i.shape, 'i32'));
  try {
    await fn(...ix);
  } finally {
    for (const i of ix) i.dispose();
  }
}

t('concat and slice', async () => {
  await gradCheck((a, b, c) => concat([a, b, c], 1), [input([2, 1, 3], 1), input([2, 3, 3], 2), input([2, 2, 3], 3)], {
    what: 'concat axis 1',
  });
  // The same tensor twice: both ranges of the gradient must be summed into it.
  await gradCheck((a, b) => concat([a, b, a], -1), [input([3, 2], 4), input([3, 1], 5)], {
    what: 'concat with a repeated input',
  });
  await gradCheck((a) => slice(a, 1, 1, 4), [input([2, 5, 3], 6)], { what: 'slice' });
});

t('gather with repeated and missing indices', async () => {
  await withIndices([{ data: [0, 2, 2, 4, 0, 0, 1, 3, 4, 4, 2, 1], shape: [2, 3, 2] }], async (idx) => {
    // index [2, 3, 2] into x [3, 5, 2] along axis 1: x's last row gets no gradient.
    await gradCheck((x) => gather(x, idx, 1), [input([3, 5, 2], 7)], { what: 'gather axis 1' });
  });
  await withIndices([{ data: [3, 3, 0, 1, 2, 0], shape: [2, 3] }], async (idx) => {
    await gradCheck((x) => gather(x, idx, -1), [input([2, 4], 8)], { what: 'gather last axis' });
  });
});

t('indexSelect permuting and repeating a batch', async () => {
  await withIndices([{ data: [2, 0, 1, 0], shape: [4] }], async (idx) => {
    await gradCheck((x) => indexSelect(x, idx, 0), [input([3, 2, 2], 9)], { what: 'indexSelect axis 0' });
    await gradCheck((x) => indexSelect(x, idx, 2), [input([2, 2, 3], 10)], { what: 'indexSelect axis 2' });
  });
});

t('l2Normalize', async () => {
  await gradCheck((x) => l2Normalize(x, 1), [input([3, 4], 11)], { what: 'l2Normalize rows' });
  await gradCheck((x) => l2Normalize(x, 1), [input([2, 3, 4], 12)], { what: 'l2Normalize over channels' });
  // Row 0 has a norm far below eps = 1 (the clamp), rows 1-2 far above it.
  const data = randomArray(12, 13, 1, 2);
  for (let i = 0; i < 4; i++) data[i] *= 0.05;
  await gradCheck((x) => l2Normalize(x, -1, 1), [{ data, shape: [3, 4] }], { what: 'l2Normalize clamped by eps' });
});

t('logSoftmax', async () => {
  await gradCheck((x) => logSoftmax(x), [input([3, 5], 14, -3, 3)], { what: 'logSoftmax last axis' });
  await gradCheck((x) => logSoftmax(x, 1), [input([2, 4, 3], 15, -3, 3)], { what: 'logSoftmax middle axis' });
});

t('crossEntropy', async () => {
  await withIndices([{ data: [0, 3, 3, 1, 4], shape: [5] }], async (labels) => {
    await gradCheck((x) => crossEntropy(x, labels), [input([5, 5], 16, -3, 3)], { what: 'crossEntropy mean' });
    await gradCheck((x) => crossEntropy(x, labels, 'sum'), [input([5, 5], 17, -3, 3)], { what: 'crossEntropy sum' });
    await gradCheck((x) => crossEntropy(mul(x, 2), labels, 'none'), [input([5, 5], 18, -3, 3)], {
      what: 'crossEntropy none, after an op',
    });
  });
});

t.run();
