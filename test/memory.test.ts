// The buffer pool under a training loop: after the first step a step allocates no new GPU
// buffers and leaves no bytes behind; dispose returns bytes; noGrad keeps nothing alive.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime, randomArray } from './helpers.js';
import {
  tensor,
  scope,
  backward,
  noGrad,
  matmul,
  relu,
  add,
  mean,
  mul,
  crossEntropy,
  l2Normalize,
  concat,
  gather,
  logSoftmax,
  axpyInPlace,
  zeroGrad,
  zeros,
  type Tensor,
} from '../engine/index.js';

const t = suite('memory and pool reuse');
t.before(async () => {
  await gpu();
});

t('dispose returns the bytes of a tensor, and a view frees them only with the last reference', () => {
  const mem = () => runtime().memory().bytesLive;
  const before = mem();
  const x = zeros([1000]);
  assert.is(mem() - before, 4096, 'a 4000-byte tensor takes its 4096-byte size class');
  const sq = l2Normalize(x, 0);
  assert.is(mem() - before, 8192);
  sq.dispose();
  x.dispose();
  assert.is(mem(), before);
  x.dispose(); // a second dispose is a no-op, not a double release
  assert.is(mem(), before);
});

t('50 training steps: no bytes left behind, no buffers created after the first step', async () => {
  const rt = runtime();
  const [N, D, H, C] = [8, 6, 16, 5];
  const x = tensor(randomArray(N * D, 1), [N, D]);
  const labels = tensor([0, 1, 2, 3, 4, 0, 1, 2], [N], 'i32');
  const idx = tensor([1, 0, 3, 2, 5, 4, 7, 6], [N, 1], 'i32');
  const w1 = tensor(randomArray(D * H, 2, -0.5, 0.5), [D, H]).requireGrad();
  const w2 = tensor(randomArray(H * C, 3, -0.5, 0.5), [H, C]).requireGrad();
  const base = rt.memory().bytesLive;
  const live: number[] = [];
  const created: number[] = [];
  const losses: number[] = [];
  for (let step = 0; step < 50; step++) {
    const loss = scope(() => {
      const h = relu(matmul(x, w1));
      const logits = matmul(h, w2);
      // The new ops, with their saved tensors (log-sum-exp, indices), inside the same step.
      const feats = l2Normalize(concat([h, logits], 1), 1);
      const picked = gather(feats, idx, 1);
      const l = add(crossEntropy(logits, labels), mul(mean(add(picked, mean(logSoftmax(logits, 1)))), 0.01));
      backward(l);
      noGrad(() => {
        axpyInPlace(w1, w1.grad!, -0.1, 1, 'sgd');
        axpyInPlace(w2, w2.grad!, -0.1, 1, 'sgd');
      });
      zeroGrad([w1, w2]);
      return l;
    });
    losses.push(await loss.item());
    loss.dispose();
    live.push(rt.memory().bytesLive);
    created.push(rt.memory().buffersCreated);
  }
  for (let s = 0; s < 50; s++) {
    // Gradients are cleared and the loss disposed, so only the five inputs and weights remain.
    assert.is(live[s], base, `bytesLive after step ${s} is ${live[s]}, before the loop ${base}`);
    assert.is(created[s], created[0], `buffersCreated grew at step ${s}: ${created[s]} vs ${created[0]} after step 0`);
  }
  assert.ok(losses[49] < losses[0], `the loss should fall: ${losses[0]} -> ${losses[49]}`);
  for (const z of [x, labels, idx, w1, w2]) z.dispose();
});

t('noGrad records no node and keeps no saved tensors alive', () => {
  const mem = () => runtime().memory().bytesLive;
  const logits = tensor(randomArray(12, 4), [4, 3]).requireGrad();
  const labels = tensor([0, 2, 1, 1], [4], 'i32');
  const before = mem();
  const ys: Tensor[] = noGrad(() => [crossEntropy(logits, labels), logSoftmax(logits), mul(logits, 2)]);
  for (const y of ys) {
    assert.is(y.node, null);
    assert.is(y.requiresGrad, false);
    y.dispose();
  }
  assert.is(mem(), before, 'crossEntropy under noGrad must not keep its log-sum-exp');
  scope(() => assert.ok(crossEntropy(logits, labels).node, 'with gradients on, the same call records a node'));
  assert.is(mem(), before, 'the scope frees the loss and its saved log-sum-exp');
  logits.dispose();
  labels.dispose();
});

t.run();
