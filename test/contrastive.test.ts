import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, assertClose, randomArray, gradCheck } from './helpers.js';
import { tensor, backward } from '../engine/index.js';
import { queueContrastiveLoss } from '../engine/ops/contrastive.js';
import { denseCorrespondence } from '../engine/ops/correspondence.js';

const t = suite('contrastive loss and correspondence');
t.before(async () => {
  await gpu();
});

/** Float64 reference: mean over rows of logsumexp([pos, q.queue]/tau) - pos/tau. */
function referenceLoss(q: Float32Array, pos: Float32Array, queue: Float32Array, R: number, D: number, K: number, tau: number): number {
  let total = 0;
  for (let r = 0; r < R; r++) {
    const logits = [pos[r] / tau];
    for (let j = 0; j < K; j++) {
      let d = 0;
      for (let c = 0; c < D; c++) d += q[r * D + c] * queue[j * D + c];
      logits.push(d / tau);
    }
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((s, l) => s + Math.exp(l - m), 0));
    total += lse - logits[0];
  }
  return total / R;
}

const [R, D, K] = [6, 5, 9];
const q = randomArray(R * D, 1);
const pos = randomArray(R, 2);
const queue = randomArray(K * D, 3);

t('loss matches a float64 reference, whole and in row chunks', async () => {
  const ref = referenceLoss(q, pos, queue, R, D, K, 0.2);
  const whole = await queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(queue, [K, D]), { tau: 0.2 }).item();
  const chunked = await queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(queue, [K, D]), { tau: 0.2, maxLogitBytes: 4 * K * 4 }).item();
  assertClose([whole], [ref], 1e-5, 1e-6, 'whole');
  assertClose([chunked], [ref], 1e-5, 1e-6, 'chunked');
});

t('gradients match finite differences (whole and chunked)', async () => {
  const queueT = tensor(queue, [K, D]);
  for (const maxLogitBytes of [undefined, 2 * K * 4]) {
    await gradCheck((a, b) => queueContrastiveLoss(a, b, queueT, { tau: 0.5, maxLogitBytes }), [
      { data: q, shape: [R, D] },
      { data: pos, shape: [R] },
    ], { what: `contrastive loss (chunk budget ${maxLogitBytes ?? 'default'})` });
  }
});

t('chunked and whole backward agree', async () => {
  const grads: Float32Array[] = [];
  for (const maxLogitBytes of [undefined, 2 * K * 4]) {
    const qt = tensor(q, [R, D]).requireGrad();
    const l = queueContrastiveLoss(qt, tensor(pos, [R]), tensor(queue, [K, D]), { tau: 0.2, maxLogitBytes });
    backward(l);
    grads.push((await qt.grad!.data()) as Float32Array);
  }
  assertClose(grads[1], grads[0], 1e-5, 1e-7, 'dq');
});

t('correspondence is the argmax of cosine similarity', async () => {
  const [N, C, S2] = [2, 7, 10];
  const qb = randomArray(N * C * S2, 4);
  const kb = randomArray(N * C * S2, 5);
  const ind = await denseCorrespondence(tensor(qb, [N, C, S2]), tensor(kb, [N, C, S2])).data();
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < S2; i++) {
      let best = -Infinity;
      let bestJ = -1;
      for (let j = 0; j < S2; j++) {
        let dot = 0;
        let nq = 0;
        let nk = 0;
        for (let c = 0; c < C; c++) {
          const a = qb[(n * C + c) * S2 + i];
          const b = kb[(n * C + c) * S2 + j];
          dot += a * b;
          nq += a * a;
          nk += b * b;
        }
        const cos = dot / Math.sqrt(nq * nk);
        if (cos > best) [best, bestJ] = [cos, j];
      }
      assert.is(ind[n * S2 + i], bestJ, `image ${n} cell ${i}`);
    }
  }
});

t('shape errors name the shapes', () => {
  assert.throws(() => queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(randomArray(K * 4, 1), [K, 4]), { tau: 0.2 }), /q \[R, D\].*\[6, 5\].*\[9, 4\]/);
});

t.run();
