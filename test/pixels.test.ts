// Byte images normalised on the GPU: the kernel matches the CPU formula (padding and unaligned
// views included), and a trainer fed bytes trains as one fed the same images as floats.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, assertClose, TINY_TRAINER } from './helpers.js';
import { runtime, Rng } from '../engine/index.js';
import { pixelsOn, pixelWords } from '../engine/ops/pixels.js';
import { viewsFromBytes } from '../train/data/augment.js';
import { Trainer, IMAGENET_NORMALIZATION } from '../train/trainer.js';

const t = suite('pixels');
const TINY = TINY_TRAINER;

function bytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => rng.int(256));
}

t.before(async () => {
  await gpu();
});

t('normalizePixels equals the CPU formula, for whole words, a padded tail and an unaligned view', async () => {
  const rt = runtime();
  const norm = { mean: [0.1, 0.5, 0.9], std: [0.2, 0.3, 0.25] };
  for (const [N, H, W, offset] of [
    [2, 4, 4, 0],
    [1, 3, 5, 0],
    [2, 2, 3, 1],
  ]) {
    const n = N * 3 * H * W;
    const raw = bytes(n + offset, n);
    const view = raw.subarray(offset);
    const y = pixelsOn(rt, 'x', view, [N, 3, H, W], norm);
    assertClose(
      await y.data(),
      viewsFromBytes(view, H * W, norm.mean, norm.std),
      1e-6,
      1e-6,
      `[${N}, 3, ${H}, ${W}] from offset ${offset}`,
    );
    y.dispose();
  }
  assert.is(pixelWords(Uint8Array.of(1, 2, 3, 4, 5)).length, 2);
  assert.throws(() => pixelsOn(rt, 'x', bytes(10, 1), [1, 3, 2, 2], norm), /10 bytes do not fill \[1, 3, 2, 2\]/);
  assert.throws(
    () => pixelsOn(rt, 'x', bytes(12, 1), [1, 3, 2, 2], { mean: [0, 0, 0], std: [1, 0, 1] }),
    /every std must be positive/,
  );
});

t('a trainer fed bytes takes the same steps as one fed the floats they stand for, replayed or not', async () => {
  const rt = runtime();
  const n = 4 * 3 * 16 * 16;
  const viaBytes = new Trainer(rt, TINY);
  const viaFloats = new Trainer(rt, TINY, { replay: false });
  for (let s = 0; s < 4; s++) {
    const [q, k] = [bytes(n, 2 * s), bytes(n, 2 * s + 1)];
    const a = await viaBytes.trainStep(q, k);
    const b = await viaFloats.trainStep(
      viewsFromBytes(q, 16 * 16, IMAGENET_NORMALIZATION.mean, IMAGENET_NORMALIZATION.std),
      viewsFromBytes(k, 16 * 16, IMAGENET_NORMALIZATION.mean, IMAGENET_NORMALIZATION.std),
    );
    assertClose([a.loss], [b.loss], 1e-5, 1e-6, `step ${s} loss`);
  }
  assert.is(viaBytes.programs!.stats.replayed, 2);
  assert.throws(() => viaBytes.trainStep(bytes(n, 9), new Float32Array(n)), /both be floats or both bytes/);
  for (const x of [viaBytes, viaFloats]) x.destroy();
});

t.run();
