// Step capture and replay: a replayed training step computes exactly what the eager step does
// (bit for bit, across the queue's wrap-around and a resume), a new shape or code path records
// a new program, and what a capture cannot replay faithfully is refused when captured.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, randomArray, assertClose, TINY_TRAINER, tinyBatch } from './helpers.js';
import { runtime, scope, add, mul, type Tensor } from '../engine/index.js';
import { inputOn, tensorOn } from '../engine/ops/create.js';
import { captureStep, replayStep } from '../engine/replay.js';
import { FlatStore } from '../engine/flat.js';
import { overrideKernels } from '../engine/device-profile.js';
import { Trainer } from '../train/trainer.js';
import { ResNet } from '../models/resnet.js';
import { ModelState } from '../models/state.js';
import { extractFeatures } from '../train/eval/features.js';
import { plainView } from '../train/data/augment.js';
import { noGrad, reshape, adaptiveAvgPool2d, tensor } from '../engine/index.js';

const t = suite('replay');
const TINY = TINY_TRAINER;
const batch = tinyBatch;

async function stores(x: Trainer): Promise<Map<string, Float32Array>> {
  const all = [
    x.model.query.params,
    x.model.query.buffers,
    x.model.key.params,
    x.model.key.buffers,
    x.sgd.momentum,
    x.model.queues,
  ];
  return new Map(await Promise.all(all.map(async (s) => [s.label, new Float32Array(await s.flat.data())] as const)));
}

async function assertSameState(a: Trainer, b: Trainer): Promise<void> {
  const [sa, sb] = [await stores(a), await stores(b)];
  for (const [label, va] of sa)
    assert.ok(Buffer.from(va.buffer).equals(Buffer.from(sb.get(label)!.buffer)), `store ${label} differs bitwise`);
  assert.equal([a.model.ptr, a.model.ptr2, a.steps], [b.model.ptr, b.model.ptr2, b.steps]);
}

const same = (x: number | null, y: number | null) => Object.is(x, y);

t.before(async () => {
  await gpu();
});

for (const method of ['densecl', 'mocov2'] as const) {
  t(`${method}: five replayed steps equal five eager steps bit for bit (the queue wraps twice)`, async () => {
    const rt = runtime();
    const opts = { ...TINY, method, totalSteps: 5 };
    const eager = new Trainer(rt, opts, { replay: false });
    const replay = new Trainer(rt, opts);
    for (let s = 0; s < 5; s++) {
      const [e, r] = [
        await eager.trainStep(batch(10 + s), batch(20 + s)),
        await replay.trainStep(batch(10 + s), batch(20 + s)),
      ];
      assert.ok(
        same(e.loss, r.loss) && same(e.lossGlobal, r.lossGlobal) && same(e.lossDense, r.lossDense),
        `step ${s}: eager ${e.loss} vs replay ${r.loss}`,
      );
      assert.is(e.lr, r.lr);
    }
    assert.equal(replay.programs!.stats, { eager: 1, captured: 1, replayed: 3, evicted: 0 });
    await assertSameState(eager, replay);
    for (const x of [eager, replay]) x.destroy();
  });
}

t('steps issued back to back, none awaited before the next, equal steps awaited one by one', async () => {
  const rt = runtime();
  const awaited = new Trainer(rt, TINY, { replay: false });
  const pipelined = new Trainer(rt, TINY);
  const want = [];
  for (let s = 0; s < 5; s++) want.push(await awaited.trainStep(batch(30 + s), batch(40 + s)));
  // Each replay writes its inputs into the buffers the step before may still be reading.
  const pending = [];
  for (let s = 0; s < 5; s++) pending.push(pipelined.trainStep(batch(30 + s), batch(40 + s)));
  const got = await Promise.all(pending);
  assert.equal(
    got.map((x) => x.loss),
    want.map((x) => x.loss),
  );
  assert.is(pipelined.programs!.stats.replayed, 3);
  await assertSameState(awaited, pipelined);
  for (const x of [awaited, pipelined]) x.destroy();
});

t('a change of kernel choices drops the captured steps; the next ones are captured with the new kernels', async () => {
  const rt = runtime();
  const eager = new Trainer(rt, TINY, { replay: false });
  const replay = new Trainer(rt, TINY);
  let restore = () => {};
  try {
    for (let s = 0; s < 6; s++) {
      if (s === 3)
        restore = overrideKernels(rt.profile, {
          contrastive: rt.profile.kernels.contrastive === 'tiled' ? 'gemm' : 'tiled',
        });
      const [e, r] = [
        await eager.trainStep(batch(60 + s), batch(70 + s)),
        await replay.trainStep(batch(60 + s), batch(70 + s)),
      ];
      assert.ok(same(e.loss, r.loss), `step ${s}: ${e.loss} vs ${r.loss}`);
    }
  } finally {
    restore();
  }
  assert.equal(replay.programs!.stats, { eager: 2, captured: 2, replayed: 2, evicted: 0 });
  await assertSameState(eager, replay);
  for (const x of [eager, replay]) x.destroy();
});

t('a resumed run replays the same steps as the run it continues', async () => {
  const rt = runtime();
  const a = new Trainer(rt, TINY);
  for (let s = 0; s < 3; s++) await a.trainStep(batch(s), batch(s + 50));
  const b = new Trainer(rt, TINY);
  b.loadState(await a.saveState());
  for (let s = 3; s < 6; s++) {
    const [x, y] = [await a.trainStep(batch(s), batch(s + 50)), await b.trainStep(batch(s), batch(s + 50))];
    assert.ok(same(x.loss, y.loss), `step ${s}: ${x.loss} vs ${y.loss}`);
  }
  assert.is(b.programs!.stats.replayed, 1, 'the resumed trainer captured anew and replayed');
  await assertSameState(a, b);
  for (const x of [a, b]) x.destroy();
});

t('a different code path records its own program; outputs match eager', async () => {
  const rt = runtime();
  const eager = new Trainer(rt, { ...TINY, startIters: 2 }, { replay: false });
  const replay = new Trainer(rt, { ...TINY, startIters: 2 });
  for (let s = 0; s < 6; s++) {
    const corr = s % 2 === 1;
    const [e, r] = [
      await eager.trainStep(batch(s), batch(s + 7), { correspondence: corr }),
      await replay.trainStep(batch(s), batch(s + 7), { correspondence: corr }),
    ];
    assert.ok(same(e.loss, r.loss), `step ${s}`);
    if (corr) assert.equal(Array.from(r.correspondence!), Array.from(e.correspondence!));
  }
  // Warm-up (lambda 0) and after, each with and without correspondence: four signatures,
  // each seen at most twice in six steps, so captured at most once and never replayed wrongly.
  const st = replay.programs!.stats;
  assert.is(st.eager + st.captured + st.replayed, 6);
  assert.ok(replay.programs!.list().length <= 3);
  await assertSameState(eager, replay);
  for (const x of [eager, replay]) x.destroy();
});

t('profiling a replayed step times the same dispatches the program holds', async () => {
  const rt = runtime();
  const tr = new Trainer(rt, TINY);
  for (let s = 0; s < 2; s++) await tr.trainStep(batch(s), batch(s + 1));
  const { profile } = await tr.profileStep(batch(3), batch(4));
  assert.is(tr.programs!.stats.replayed, 1);
  assert.is(profile.records.length, tr.programs!.list()[0].dispatches);
  tr.destroy();
});

t('evaluation features: replayed batches equal a plain forward of each image', async () => {
  const rt = runtime();
  const net = new ResNet({ arch: 'resnet18', width: 1 / 16, smallStem: true });
  const state = new ModelState(rt, net.paramSpecs(''), net.bufferSpecs(''), 3, 'eval');
  const S = 16;
  const images = Array.from({ length: 9 }, (_, i) => ({
    width: 20,
    height: 18,
    data: Uint8Array.from(randomArray(20 * 18 * 3, i), (v) => Math.abs(v * 97) % 256),
  }));
  const split = {
    length: 9,
    get: (i: number) => ({ image: images[i], label: i % 3 }),
    name: (i: number) => `image ${i}`,
  };
  // Batches of 2: eager, captured, two replays, then a last batch of 1 (its own signature).
  const got = await extractFeatures(rt, net, state, split, { imgSize: S, batchSize: 2, keepMaps: false });
  const C = net.outChannels;
  for (let i = 0; i < 9; i++) {
    const { view } = plainView(images[i], S);
    const avg = noGrad(() =>
      scope(() =>
        reshape(adaptiveAvgPool2d(net.forward(state, tensor(view, [1, 3, S, S]), { training: false }), 1), [1, C]),
      ),
    );
    assertClose(got.pooled.subarray(i * C, (i + 1) * C), await avg.data(), 1e-4, 1e-5, `image ${i}`);
    avg.dispose();
  }
  state.destroy();
});

t('capture: replay takes new inputs and live values; wrong or missing values are refused', async () => {
  const rt = runtime();
  const step = () =>
    scope(() => ({
      y: add(mul(inputOn(rt, 'x', Float32Array.of(1, 2, 3), [3]), tensorOn(rt, [2, 2, 2])), tensorOn(rt, [1, 1, 1])),
    }));
  const { captured, result } = captureStep(rt, step);
  assert.equal(Array.from(await result.y!.data()), [3, 5, 7]);
  result.y!.dispose();
  const again = replayStep(rt, captured, { x: Float32Array.of(10, 20, 30) });
  assert.equal(Array.from(await again.y!.data()), [21, 41, 61]);
  assert.throws(
    () => replayStep(rt, captured, { x: Float32Array.of(1, 2) }),
    /input 'x' has 8 bytes, the captured step took 12; a batch of another shape needs a new capture/,
  );
  assert.throws(() => replayStep(rt, captured, {}), /input 'x' \(12 bytes\) was not given/);
  assert.throws(
    () => replayStep(rt, captured, { x: Float32Array.of(1, 2, 3), lr: 1 }),
    /'lr' is neither an input nor a live value/,
  );
  captured.program.destroy();
  assert.throws(() => replayStep(rt, captured, { x: Float32Array.of(1, 2, 3) }), /program was destroyed/);
});

t('a program that binds a replaced buffer refuses to replay; one that does not still replays', async () => {
  const rt = runtime();
  const a = new FlatStore(rt, [{ name: 'w', shape: [2] }], 'a');
  const b = new FlatStore(rt, [{ name: 'w', shape: [2] }], 'b');
  a.write('w', Float32Array.of(1, 2));
  b.write('w', Float32Array.of(3, 4));
  const reads = (store: FlatStore) => () =>
    scope(() => ({ y: add(inputOn(rt, 'x', Float32Array.of(1, 1), [2]), store.get('w')) }));
  const [onA, onB] = [captureStep(rt, reads(a)), captureStep(rt, reads(b))];
  for (const c of [onA, onB]) c.result.y!.dispose();
  rt.retire(a.buffer); // as a weight pack's rebuild does with its old buffers
  assert.ok(!rt.canReplay(onA.captured.program) && rt.canReplay(onB.captured.program));
  assert.throws(() => replayStep(rt, onA.captured, { x: Float32Array.of(0, 0) }), /was replaced after the capture/);
  const y = replayStep(rt, onB.captured, { x: Float32Array.of(10, 10) }).y!;
  assert.equal(Array.from(await y.data()), [13, 14]);
  for (const c of [onA, onB]) c.captured.program.destroy();
  a.destroy();
  b.destroy();
});

t('capture refuses what a replay could not repeat', async () => {
  const rt = runtime();
  const before: Tensor = tensorOn(rt, [1, 2]);
  assert.throws(
    () => captureStep(rt, () => scope(() => ({ y: add(before, before) }))),
    /used a tensor created before the capture/,
  );
  before.dispose();
  let read: Promise<unknown> = Promise.resolve();
  rt.capture(() => (read = tensorOn(rt, [1]).data()));
  const err = await read.then(
    () => null,
    (e: Error) => e,
  );
  assert.match(String(err?.message), /cannot read values back mid-step/);
  const store = new FlatStore(rt, [{ name: 'w', shape: [2] }], 'w');
  assert.throws(() => rt.capture(() => store.write('w', Float32Array.of(1, 2))), /would not be replayed/);
  store.destroy();
  assert.throws(() => rt.capture(() => rt.capture(() => 0)), /captures do not nest/);
});

t.run();
