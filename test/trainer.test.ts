// The browser-safe Trainer: its saved state (the CLI checkpoint format) restores exactly,
// bad input is refused with clear messages, and the demo page's correspondence geometry holds.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu, TINY_TRAINER, tinyBatch } from './helpers.js';
import { runtime, setRuntime, Runtime } from '../engine/index.js';
import { Trainer } from '../train/trainer.js';
import { classifyMatches } from '../web/correspondence.js';
import type { ViewParams } from '../train/data/augment.js';

const t = suite('trainer');
const dir = mkdtempSync(join(tmpdir(), 'densecl-trainer-'));
const TINY = TINY_TRAINER;
const batch = tinyBatch;

async function sameState(a: Trainer, b: Trainer): Promise<void> {
  const stores = (x: Trainer) => [
    x.model.query.params,
    x.model.query.buffers,
    x.model.key.params,
    x.sgd.momentum,
    x.model.queues,
  ];
  const [sa, sb] = [stores(a), stores(b)];
  for (let i = 0; i < sa.length; i++) {
    const [va, vb] = [await sa[i].flat.data(), await sb[i].flat.data()];
    assert.equal(Array.from(va), Array.from(vb), `store ${sa[i].label} differs`);
  }
  assert.is(a.model.ptr, b.model.ptr);
  assert.is(a.steps, b.steps);
}

t.before(async () => {
  await gpu();
});

t('saved state restores into a fresh trainer, which then continues identically', async () => {
  const rt = runtime();
  const a = new Trainer(rt, TINY);
  await a.trainStep(batch(1), batch(2));
  const path = join(dir, 'state.safetensors');
  writeFileSync(path, await a.saveState());
  const b = new Trainer(rt, { ...TINY, seed: 6 });
  const counters = b.loadState(readFileSync(path), path);
  assert.is(counters.step, 1);
  await sameState(a, b);
  const [sa, sb] = [await a.trainStep(batch(3), batch(4)), await b.trainStep(batch(3), batch(4))];
  assert.is(sa.loss, sb.loss, 'the step after a restore is the same step');
  await sameState(a, b);
  for (const x of [a, b]) x.destroy();
});

t('profileStep: the same step and loss, with timestamps and with the coarse fallback', async () => {
  const rt = runtime();
  // A second runtime on the same device that behaves as if the adapter had no timestamp-query.
  const coarse = new Runtime({
    device: rt.device,
    adapterDescription: 'coarse',
    hasTimestamps: false,
    release: () => {},
  });
  const plain = new Trainer(rt, TINY);
  const timed = new Trainer(rt, TINY);
  const fallback = new Trainer(coarse, TINY);
  const want = await plain.trainStep(batch(1), batch(2));
  const fast = await timed.profileStep(batch(1), batch(2));
  // DenseCL makes its small index tensors on the default runtime.
  setRuntime(coarse);
  let slow: Awaited<ReturnType<Trainer['profileStep']>>;
  try {
    // Each kernel is submitted alone in the fallback; a mix-up of kernel parameters hangs or corrupts the step.
    let timer: ReturnType<typeof setTimeout> | undefined;
    slow = await Promise.race([
      fallback.profileStep(batch(1), batch(2)),
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error('the coarse profile of a step did not finish in 60 s')), 60_000)),
      ),
    ]).finally(() => clearTimeout(timer));
  } finally {
    setRuntime(rt);
  }
  assert.is(fast.profile.method, rt.hasTimestamps ? 'timestamps' : 'coarse');
  assert.is(slow.profile.method, 'coarse');
  assert.ok(slow.profile.records.length > 100, `${slow.profile.records.length} kernels timed`);
  assert.is(slow.profile.records.length, fast.profile.records.length);
  assert.is(fast.stats.loss, want.loss);
  assert.is(slow.stats.loss, want.loss);
  for (const x of [plain, timed, fallback]) x.destroy();
  coarse.destroy();
});

t('refuses bad batches, options and mismatched checkpoints with clear messages', async () => {
  const rt = runtime();
  assert.throws(() => new Trainer(rt, { ...TINY, bnGroups: 3 }), /batchSize 4 is not divisible by bnGroups 3/);
  assert.throws(() => new Trainer(rt, { ...TINY, queueSize: 10 }), /queueSize 10 is not divisible by batchSize 4/);
  assert.throws(() => new Trainer(rt, { ...TINY, imgSize: 4 }), /imgSize 4 is smaller than the network's stride 8/);
  const a = new Trainer(rt, TINY);
  assert.throws(
    () => a.trainStep(batch(1).subarray(1), batch(2)),
    /query batch has 3071 values, expected \[4, 3, 16, 16\] = 3072/,
  );
  const other = new Trainer(rt, { ...TINY, dim: 16 });
  const bytes = await other.saveState();
  assert.throws(
    () => a.loadState(bytes, 'other.safetensors'),
    /other\.safetensors does not match this model: 'encoder_q\.neck\.mlp\.2\.weight' is F32\[16, 32\], the model needs F32\[8, 32\]/,
  );
  assert.throws(() => a.loadState(new Uint8Array(16), 'junk'), /junk: /);
  a.destroy();
  other.destroy();
  assert.throws(() => a.trainStep(batch(1), batch(2)), /used after destroy/);
});

t('demo geometry: matches are right, wrong or outside the key crop by source position', () => {
  const view = (left: number, flip = false): ViewParams => ({
    srcWidth: 64,
    srcHeight: 64,
    box: { top: 0, left, width: 32, height: 32 },
    size: 16,
    flip,
    jitter: null,
    grayscale: false,
    blurSigma: null,
  });
  const identity = Array.from({ length: 16 }, (_, i) => i);
  // Same crop: each cell matched to itself is right.
  assert.ok(classifyMatches(view(0), view(0), identity, 4).every((m) => m.kind === 'right'));
  // Same crop, key flipped: the right partner of cell (x, y) is (3 - x, y).
  const mirrored = identity.map((i) => Math.floor(i / 4) * 4 + (3 - (i % 4)));
  assert.ok(classifyMatches(view(0), view(0, true), mirrored, 4).every((m) => m.kind === 'right'));
  assert.ok(classifyMatches(view(0), view(0, true), identity, 4).some((m) => m.kind === 'wrong'));
  // Key crop 16 px to the right: the query's left half lies outside it.
  const kinds = classifyMatches(view(0), view(16), identity, 4).map((m) => m.kind);
  assert.equal(kinds.slice(0, 2), ['outside', 'outside']);
  assert.throws(() => classifyMatches(view(0), view(0), [0, 1], 4), /2 indices for a 4x4 grid/);
});

t.run();
