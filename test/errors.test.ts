// Bad input fails early with a message that names the op, the shapes involved and the fix,
// and leaves nothing allocated behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime } from './helpers.js';
import {
  tensor,
  zeros,
  add,
  mul,
  exp,
  matmul,
  sum,
  backward,
  concat,
  slice,
  gather,
  indexSelect,
  crossEntropy,
  l2Normalize,
  logSoftmax,
  toFloat,
  type Tensor,
} from '../engine/index.js';

const t = suite('error messages');
t.before(async () => {
  await gpu();
});

/** Asserts that fn throws, that the message contains every part, and that no bytes leaked. */
function throwsWith(fn: () => unknown, ...parts: string[]): void {
  const before = runtime().memory().bytesLive;
  let msg: string | null = null;
  try {
    fn();
  } catch (e) {
    msg = (e as Error).message;
  }
  if (msg === null) assert.unreachable(`expected an error mentioning ${parts.join(', ')}`);
  for (const p of parts) assert.ok(msg!.includes(p), `error "${msg}" should mention "${p}"`);
  assert.is(runtime().memory().bytesLive, before, `the failed call left memory allocated (${msg})`);
}

function withTensors(ts: Tensor[], fn: () => void): void {
  try {
    fn();
  } finally {
    for (const x of ts) x.dispose();
  }
}

t('shape mismatch: broadcasting', () => {
  const a = zeros([2, 3]);
  const b = zeros([4]);
  withTensors([a, b], () => {
    throwsWith(() => add(a, b), 'add', '[2, 3]', '[4]', 'cannot be broadcast', 'equal or 1');
    throwsWith(() => mul(b, a), 'mul', '[4]', '[2, 3]');
  });
});

t('shape mismatch: matmul inner dimensions', () => {
  const a = zeros([2, 3]);
  const b = zeros([4, 5]);
  const c = zeros([2, 4, 3]);
  const d = zeros([3, 3, 5]);
  withTensors([a, b, c, d], () => {
    throwsWith(() => matmul(a, b), 'matmul', '[2, 3]', '[4, 5]', '3 vs 4', 'transpose');
    throwsWith(() => matmul(c, d), 'matmul', 'batch dimensions', '[2]', '[3]', 'make them equal');
  });
});

t('wrong dtype: integer tensors into float ops', () => {
  const i = tensor([1, 2, 3], [3], 'i32');
  const f = zeros([3]);
  withTensors([i, f], () => {
    throwsWith(() => exp(i), 'exp', 'i32[3]', 'f32', 'toFloat()');
    throwsWith(() => add(f, i), 'add', 'i32[3]', 'toFloat()');
    throwsWith(() => i.requireGrad(), 'requireGrad', 'i32[3]', 'only f32');
    throwsWith(() => toFloat(f), 'toFloat', 'f32[3]', 'already f32');
  });
});

t('use after dispose', () => {
  const x = tensor([1, 2, 3]);
  x.dispose();
  throwsWith(() => exp(x), 'exp', 'f32[3]', 'used after dispose()', 'keep it alive');
  throwsWith(() => sum(x), 'sum', 'used after dispose()');
  throwsWith(() => concat([x, x]), 'concat', 'used after dispose()');
  throwsWith(() => l2Normalize(x, 0), 'l2Normalize', 'used after dispose()');
});

t('backward on a non-scalar without a gradient', () => {
  const x = zeros([2, 3]).requireGrad();
  const y = mul(x, 2);
  const wrong = zeros([3, 2]);
  withTensors([x, y, wrong], () => {
    throwsWith(() => backward(y), 'backward', 'f32[2, 3]', 'not a scalar', 'pass a gradient', 'sum or mean');
    throwsWith(() => backward(y, wrong), 'backward', 'f32[3, 2]', 'does not match', 'f32[2, 3]');
  });
  const c = zeros([1]);
  withTensors([c], () => throwsWith(() => backward(c), 'backward', 'does not require grad', 'requireGrad()'));
});

t('indexing, concat and loss ops', () => {
  const x = zeros([3, 4]);
  const y = zeros([3, 5]);
  const fIdx = zeros([3, 2]);
  const bigIdx = tensor([0, 0, 0, 0, 0, 0, 0, 0], [4, 2], 'i32');
  const labels = tensor([0, 1], [2], 'i32');
  const cube = zeros([2, 3, 4]);
  withTensors([x, y, fIdx, bigIdx, labels, cube], () => {
    throwsWith(() => concat([x, y], 0), 'concat', '[3, 4]', '[3, 5]', 'axis 0', 'same dtype, rank and sizes');
    throwsWith(() => concat([]), 'concat', 'at least one tensor');
    throwsWith(() => slice(x, 1, 2, 6), 'slice', 'axis 1 (size 4)', 'f32[3, 4]', '0 <= start <= end <= 4');
    throwsWith(() => gather(x, fIdx, 1), 'gather', 'i32 tensor', 'f32[3, 2]', "'i32'");
    throwsWith(() => gather(x, bigIdx, 1), 'gather', 'i32[4, 2]', 'f32[3, 4]', 'no larger');
    throwsWith(() => indexSelect(x, bigIdx, 0), 'indexSelect', '1-D', 'reshape it to [8]');
    throwsWith(() => crossEntropy(x, labels), 'crossEntropy', 'i32 [3]', 'f32[3, 4]', 'i32[2]');
    throwsWith(() => crossEntropy(cube, labels), 'crossEntropy', '[N, C]', 'f32[2, 3, 4]');
    throwsWith(() => logSoftmax(x, 2), 'logSoftmax', 'axis 2', 'rank 2');
    throwsWith(() => l2Normalize(x, 1, 0), 'l2Normalize', 'eps', 'positive');
  });
});

t.run();
