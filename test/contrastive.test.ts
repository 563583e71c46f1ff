import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, assertClose, randomArray, gradCheck } from './helpers.js';
import { tensor, backward } from '../engine/index.js';
import { queueContrastiveLoss, type ContrastiveVariant } from '../models/ops/contrastive.js';
import { denseCorrespondence, type CorrespondenceVariant } from '../models/ops/correspondence.js';

const VARIANTS: ContrastiveVariant[] = ['tiled', 'gemm'];

const t = suite('contrastive loss and correspondence');
t.before(async () => {
  await gpu();
});

/** Float64 reference: mean over rows of logsumexp([pos, q.queue]/tau) - pos/tau. */
function referenceLoss(
  q: Float32Array,
  pos: Float32Array,
  queue: Float32Array,
  R: number,
  D: number,
  K: number,
  tau: number,
): number {
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

/** Float64 loss, dq and dpos of the mean loss (d/dpos through the positive logit). */
function referenceGrads(
  q: Float32Array,
  pos: Float32Array,
  queue: Float32Array,
  R: number,
  D: number,
  K: number,
  tau: number,
) {
  const dq = new Float64Array(R * D);
  const dpos = new Float64Array(R);
  let total = 0;
  const l = new Float64Array(K);
  for (let r = 0; r < R; r++) {
    const p = pos[r] / tau;
    let m = p;
    for (let j = 0; j < K; j++) {
      let d = 0;
      for (let c = 0; c < D; c++) d += q[r * D + c] * queue[j * D + c];
      l[j] = d / tau;
      m = Math.max(m, l[j]);
    }
    let s = Math.exp(p - m);
    for (let j = 0; j < K; j++) s += Math.exp(l[j] - m);
    const lse = m + Math.log(s);
    total += lse - p;
    dpos[r] = (Math.exp(p - lse) - 1) / (R * tau);
    for (let j = 0; j < K; j++) {
      const w = Math.exp(l[j] - lse) / (R * tau);
      for (let c = 0; c < D; c++) dq[r * D + c] += w * queue[j * D + c];
    }
  }
  return { loss: total / R, dq, dpos };
}

async function lossAndGrads(
  qd: Float32Array,
  pd: Float32Array,
  kd: Float32Array,
  R: number,
  D: number,
  K: number,
  tau: number,
  variant: ContrastiveVariant,
) {
  const qt = tensor(qd, [R, D]).requireGrad();
  const pt = tensor(pd, [R]).requireGrad();
  const l = queueContrastiveLoss(qt, pt, tensor(kd, [K, D]), { tau, variant });
  backward(l);
  return {
    loss: await l.item(),
    dq: (await qt.grad!.data()) as Float32Array,
    dpos: (await pt.grad!.data()) as Float32Array,
  };
}

// Shapes that exercise the tiled kernels' edges: K not a multiple of the 64-column tile, several
// splits of the queue, D not a multiple of the 16-wide chunk, two row blocks with a partial one.
for (const [Rp, Dp, Kp] of [
  [37, 36, 1000],
  [70, 128, 300],
] as const) {
  for (const variant of VARIANTS) {
    t(`${variant}: loss, dq and dpos match a float64 reference (R ${Rp}, D ${Dp}, K ${Kp})`, async () => {
      const qd = randomArray(Rp * Dp, 11, -0.3, 0.3);
      const pd = randomArray(Rp, 12, -1, 1);
      const kd = randomArray(Kp * Dp, 13, -0.3, 0.3);
      const ref = referenceGrads(qd, pd, kd, Rp, Dp, Kp, 0.2);
      const got = await lossAndGrads(qd, pd, kd, Rp, Dp, Kp, 0.2, variant);
      assertClose([got.loss], [ref.loss], 1e-4, 1e-6, 'loss');
      // dpos = (softmax of the positive - 1) / (R tau) pins each row's lse.
      assertClose(got.dpos, ref.dpos, 1e-4, 1e-7, 'dpos');
      assertClose(got.dq, ref.dq, 1e-4, 1e-7, 'dq');
    });
  }
}

t('each variant gives bit-identical results run to run', async () => {
  const [Rb, Db, Kb] = [37, 36, 1000];
  const qd = randomArray(Rb * Db, 21, -0.3, 0.3);
  const pd = randomArray(Rb, 22);
  const kd = randomArray(Kb * Db, 23, -0.3, 0.3);
  for (const variant of VARIANTS) {
    const a = await lossAndGrads(qd, pd, kd, Rb, Db, Kb, 0.2, variant);
    const b = await lossAndGrads(qd, pd, kd, Rb, Db, Kb, 0.2, variant);
    assert.is(a.loss, b.loss, `${variant} loss`);
    assert.equal(Array.from(a.dq), Array.from(b.dq), `${variant} dq`);
    assert.equal(Array.from(a.dpos), Array.from(b.dpos), `${variant} dpos`);
  }
});

t('NaN in q, pos or the queue gives a NaN loss in each variant', async () => {
  const [Rn, Dn, Kn] = [5, 8, 100];
  for (const variant of VARIANTS) {
    for (const where of ['q', 'pos', 'queue'] as const) {
      const qd = randomArray(Rn * Dn, 31);
      const pd = randomArray(Rn, 32);
      const kd = randomArray(Kn * Dn, 33);
      ({ q: qd, pos: pd, queue: kd })[where][3] = Number.NaN;
      const l = await queueContrastiveLoss(tensor(qd, [Rn, Dn]), tensor(pd, [Rn]), tensor(kd, [Kn, Dn]), {
        tau: 0.2,
        variant,
      }).item();
      assert.ok(Number.isNaN(l), `${variant}, NaN in ${where}: loss ${l}`);
    }
  }
});

const [R, D, K] = [6, 5, 9];
const q = randomArray(R * D, 1);
const pos = randomArray(R, 2);
const queue = randomArray(K * D, 3);

t('loss matches a float64 reference, whole and in row chunks', async () => {
  const ref = referenceLoss(q, pos, queue, R, D, K, 0.2);
  const whole = await queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(queue, [K, D]), {
    tau: 0.2,
  }).item();
  const chunked = await queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(queue, [K, D]), {
    tau: 0.2,
    maxLogitBytes: 4 * K * 4,
  }).item();
  assertClose([whole], [ref], 1e-5, 1e-6, 'whole');
  assertClose([chunked], [ref], 1e-5, 1e-6, 'chunked');
});

t('gradients match finite differences (whole and chunked)', async () => {
  const queueT = tensor(queue, [K, D]);
  for (const maxLogitBytes of [undefined, 2 * K * 4]) {
    await gradCheck(
      (a, b) => queueContrastiveLoss(a, b, queueT, { tau: 0.5, maxLogitBytes }),
      [
        { data: q, shape: [R, D] },
        { data: pos, shape: [R] },
      ],
      { what: `contrastive loss (chunk budget ${maxLogitBytes ?? 'default'})` },
    );
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

for (const variant of ['tiled', 'direct'] as CorrespondenceVariant[])
  t(`${variant} correspondence is the argmax of cosine similarity, first index on ties`, async () => {
    // S2 over one 16-cell tile and C over one 16-channel chunk, both partial.
    const [N, C, S2] = [2, 37, 21];
    const qb = randomArray(N * C * S2, 4);
    const kb = randomArray(N * C * S2, 5);
    // Key cells 3 and 9 of image 1 equal (and most similar to query cell 9): the tie goes to 3.
    for (let c = 0; c < C; c++) {
      kb[(1 * C + c) * S2 + 9] = kb[(1 * C + c) * S2 + 3] = 4 * qb[(1 * C + c) * S2 + 9];
    }
    const ind = await denseCorrespondence(tensor(qb, [N, C, S2]), tensor(kb, [N, C, S2]), variant).data();
    assert.is(ind[1 * S2 + 9], 3, 'tie at image 1 cell 9');
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
  assert.throws(
    () =>
      queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(randomArray(K * 4, 1), [K, 4]), { tau: 0.2 }),
    /q \[R, D\].*\[6, 5\].*\[9, 4\]/,
  );
  assert.throws(
    () => queueContrastiveLoss(tensor(q, [R, D]), tensor(pos.subarray(0, 5), [5]), tensor(queue, [K, D]), { tau: 0.2 }),
    /pos \[R\]/,
  );
  const none = (shape: number[]) => tensor(new Float32Array(0), shape);
  assert.throws(
    () => queueContrastiveLoss(none([0, D]), none([0]), tensor(queue, [K, D]), { tau: 0.2 }),
    /at least one row.*\[0, 5\]/,
  );
  assert.throws(
    () => queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), none([0, D]), { tau: 0.2 }),
    /one queue entry.*\[0, 5\]/,
  );
  assert.throws(() => queueContrastiveLoss(none([R, 0]), tensor(pos, [R]), none([K, 0]), { tau: 0.2 }), /one feature/);
  assert.throws(
    () => queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(queue, [K, D]), { tau: 0 }),
    /tau must be a positive/,
  );
  assert.throws(
    () =>
      queueContrastiveLoss(tensor(q, [R, D]), tensor(pos, [R]), tensor(queue, [K, D]), { tau: 0.2, variant: 'tiled' }),
    /tiled kernels cannot run.*D \(5\) must be a multiple of 4/,
  );
});

t.run();
