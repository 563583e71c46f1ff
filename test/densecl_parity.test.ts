// One DenseCL training step, driven through the Trainer's public API and replayed from its
// captured program, against the PyTorch reference of scripts/densecl_reference.py:
// same weights, views, permutation and queues -> same losses, correspondence, gradients of every
// query-encoder parameter, key encoder after EMA, queues after enqueue, BN running statistics.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { gpu, assertClose } from './helpers.js';
import { runtime } from '../engine/index.js';
import { Trainer } from '../train/trainer.js';
import type { ContrastiveVariant } from '../models/ops/contrastive.js';
import type { CorrespondenceVariant } from '../models/ops/correspondence.js';
import { overrideKernels } from '../engine/device-profile.js';
import { loadSafetensors } from '../train/io.js';
import type { SafeTensor } from '../engine/safetensors.js';

// Tests run from the bundle in .build/test/; fixtures stay in the source tree.
const FIXTURE = fileURLToPath(new URL('../../test/fixtures/densecl_step.safetensors', import.meta.url));

const t = suite('DenseCL step parity with PyTorch');

function f32(x: SafeTensor): Float32Array {
  return x.data instanceof Float32Array ? x.data : Float32Array.from(x.data as ArrayLike<number>);
}

/** Relative closeness scaled by the tensor's magnitude (entries near zero are compared absolutely). */
function closeToRef(actual: ArrayLike<number>, expected: Float32Array, what: string, rtol = 1e-4): void {
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  assertClose(actual, expected, rtol, rtol * scale * 0.1 + 1e-7, what);
}

// Every kernel variant of the two DenseCL-only ops, forced in turn.
const VARIANTS: [ContrastiveVariant, CorrespondenceVariant][] = [
  ['tiled', 'tiled'],
  ['gemm', 'direct'],
];

for (const [lossVariant, corrVariant] of VARIANTS)
  t(
    `losses, correspondence, gradients, EMA, queues and BN statistics match (${lossVariant} loss, ${corrVariant} correspondence)`,
    async () => {
      const rt = await gpu();
      const restore = overrideKernels(rt.profile, { contrastive: lossVariant, correspondence: corrVariant });
      try {
        await checkStep();
      } finally {
        restore();
      }
    },
  );

async function checkStep(): Promise<void> {
  const fx = loadSafetensors(FIXTURE);
  const m = fx.metadata;
  const get = (name: string): SafeTensor => {
    const v = fx.tensors.get(name);
    if (!v) throw new Error(`fixture lacks ${name}`);
    return v;
  };
  const B = Number(m.batch);
  const S = Number(m.img);
  const trainer = new Trainer(runtime(), {
    arch: 'resnet18',
    width: Number(m.width),
    smallStem: true,
    method: 'densecl',
    dim: Number(m.dim),
    batchSize: B,
    imgSize: S,
    queueSize: Number(m.queue),
    tau: Number(m.tau),
    emaMomentum: Number(m.m),
    lambda: Number(m.lam),
    startIters: 0,
    bnGroups: Number(m.groups),
    seed: 0,
  });
  const model = trainer.model;
  const perm = Array.from(get('perm').data as Int32Array);
  const [xq, xk] = [f32(get('xq')), f32(get('xk'))];
  // Two steps first (eager, then captured), so the checked step is a replay of the captured one.
  for (let i = 0; i < 2; i++) await trainer.trainStep(xk, xq, { keyPermutation: perm, correspondence: true });
  for (const [state, prefix] of [
    [model.query, 'q.'],
    [model.key, 'k.'],
  ] as const) {
    for (const name of state.params.tensors.keys()) state.params.write(name, f32(get(prefix + name)));
    for (const name of state.buffers.tensors.keys()) state.buffers.write(name, f32(get(prefix + name)));
  }
  model.queues.write('queue', f32(get('queue')));
  model.queues.write('queue2', f32(get('queue2')));
  [model.ptr, model.ptr2] = [0, 0];
  const out = await trainer.trainStep(xq, xk, { keyPermutation: perm, correspondence: true });
  assert.is(trainer.programs!.stats.replayed, 1, 'the checked step was replayed');

  closeToRef([out.lossGlobal], f32(get('loss_global')), 'global loss');
  closeToRef([out.lossDense!], f32(get('loss_dense')), 'dense loss');
  assert.equal(Array.from(out.correspondence!), Array.from(get('ind').data as Int32Array), 'correspondence indices');
  const grads = await model.query.grads.readAll();
  for (const [name, g] of grads) closeToRef(g, f32(get('grad.' + name)), `gradient of ${name}`);
  const keyAfter = await model.key.params.readAll();
  for (const [name, v] of keyAfter) closeToRef(v, f32(get('k_after.' + name)), `key encoder ${name} after EMA`);
  for (const [state, prefix] of [
    [model.query, 'q_after.'],
    [model.key, 'k_after.'],
  ] as const) {
    const bufs = await state.buffers.readAll();
    for (const [name, v] of bufs) closeToRef(v, f32(get(prefix + name)), `${prefix}${name}`);
  }
  const queues = await model.queues.readAll();
  closeToRef(queues.get('queue')!, f32(get('queue_after')), 'queue after enqueue');
  closeToRef(queues.get('queue2')!, f32(get('queue2_after')), 'queue2 after enqueue');
  assert.is(model.ptr, B % Number(m.queue));
  trainer.destroy();
}

t.run();
