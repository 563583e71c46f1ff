import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, assertClose, randomArray, gradCheck } from './helpers.js';
import {
  tensor,
  add,
  sub,
  mul,
  div,
  exp,
  log,
  sqrt,
  relu,
  neg,
  sum,
  mean,
  max,
  matmul,
  reshape,
  permute,
  backward,
  scope,
  noGrad,
  zeros,
} from '../engine/index.js';

const t = suite('engine core');
t.before(async () => {
  await gpu();
});

t('upload and read back', async () => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  assertClose(await x.data(), [1, 2, 3, 4, 5, 6]);
  const v = reshape(x, [3, -1]);
  assert.equal(v.shape, [3, 2]);
  x.dispose();
  v.dispose();
});

t('broadcast arithmetic matches a CPU loop', async () => {
  const a = randomArray(24, 1);
  const b = randomArray(4, 2, 0.5, 2);
  const r = await scope(() => div(add(tensor(a, [2, 3, 4]), tensor(b, [4])), tensor(b, [1, 1, 4]))).data();
  const exp_ = Array.from(a, (v, i) => (v + b[i % 4]) / b[i % 4]);
  assertClose(r, exp_);
});

t('matmul matches a CPU loop on odd sizes', async () => {
  const [M, K, N] = [7, 13, 5];
  const a = randomArray(M * K, 3);
  const b = randomArray(K * N, 4);
  const c = await matmul(tensor(a, [M, K]), tensor(b, [K, N])).data();
  const ref = new Float32Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) ref[i * N + j] += a[i * K + k] * b[k * N + j];
  assertClose(c, ref, 1e-4, 1e-5);
});

t('gradients: pointwise, reductions, matmul', async () => {
  const x = { data: randomArray(6, 5), shape: [2, 3] };
  const y = { data: randomArray(3, 6), shape: [3] };
  const pos = { data: randomArray(6, 7, 0.5, 2), shape: [2, 3] };
  await gradCheck((a, b) => mul(add(a, b), sub(a, b)), [x, y], { what: 'mul/add/sub' });
  await gradCheck((a, b) => div(a, b), [x, pos], { what: 'div' });
  await gradCheck((a) => exp(a), [x], { what: 'exp' });
  await gradCheck((a) => log(a), [pos], { what: 'log' });
  await gradCheck((a) => sqrt(a), [pos], { what: 'sqrt' });
  await gradCheck((a) => relu(neg(a)), [x], { what: 'relu' });
  await gradCheck((a) => sum(a, 1), [x], { what: 'sum' });
  await gradCheck((a) => mean(a, 0, true), [x], { what: 'mean' });
  await gradCheck((a) => max(a, 1), [x], { what: 'max' });
  await gradCheck((a) => permute(reshape(a, [1, 2, 3]), [2, 0, 1]), [x], { what: 'permute' });
  await gradCheck((a, b) => matmul(a, b), [x, { data: randomArray(12, 8), shape: [3, 4] }], { what: 'matmul' });
  await gradCheck(
    (a, b) => matmul(a, b),
    [
      { data: randomArray(24, 9), shape: [2, 3, 4] },
      { data: randomArray(16, 10), shape: [2, 4, 2] },
    ],
    { what: 'batched matmul' },
  );
});

t('a leaf used twice gets the sum of both paths', async () => {
  const x = tensor([1, 2, 3]).requireGrad();
  const l = sum(mul(x, x));
  backward(l);
  assertClose(await x.grad!.data(), [2, 4, 6]);
});

t('noGrad records nothing', () => {
  const x = tensor([1, 2]).requireGrad();
  const y = noGrad(() => mul(x, 3));
  assert.is(y.requiresGrad, false);
  assert.is(y.node, null);
});

t('long sums use two passes and stay accurate', async () => {
  const n = 100000;
  const s = await sum(zeros([n]).rt ? tensor(new Float32Array(n).fill(1), [n]) : zeros([1])).item();
  assert.is(s, n);
});

t.run();
