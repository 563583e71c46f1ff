// Bilinear resizing and the per-pixel loss with an ignore index: PyTorch parity (fixtures from
// scripts/make_upsample_fixtures.py), finite-difference gradients, determinism and bad input.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, randomArray, gradCheck, assertClose } from './helpers.js';
import { loadFixtures, checkCase, type OpRunner } from './parity.js';
import { tensor, backward, bilinearUpsample2d, type Tensor } from '../engine/index.js';
import { pixelCrossEntropy } from '../models/ops/pixel_cross_entropy.js';

const runners: Record<string, OpRunner> = {
  bilinearUpsample2d: ([x], a) => bilinearUpsample2d(x, a.size, a.alignCorners),
  pixelCrossEntropy: ([x, y], a) => pixelCrossEntropy(x, y, { reduction: a.reduction, ignoreIndex: a.ignoreIndex }),
};

const fixtures = loadFixtures('upsample');
const t = suite('bilinear upsample and pixel loss');
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

t('fixtures cover both ops', () => {
  const ops = new Set(fixtures.cases.map((c) => c.op));
  for (const op of Object.keys(runners)) assert.ok(ops.has(op), `no fixture for ${op}`);
});

for (const c of fixtures.cases) {
  t(`PyTorch parity: ${c.name}`, async () => {
    await checkCase(c, runners[c.op]);
  });
}

t('bilinear upsample gradients match finite differences', async () => {
  await gradCheck((x) => bilinearUpsample2d(x, [7, 5]), [input([1, 2, 3, 2], 1)], { what: 'upsample 3x2 -> 7x5' });
  await gradCheck((x) => bilinearUpsample2d(x, [3, 4]), [input([2, 1, 5, 6], 2)], { what: 'downsample 5x6 -> 3x4' });
  await gradCheck((x) => bilinearUpsample2d(x, [5, 9], true), [input([1, 1, 4, 3], 3)], { what: 'align corners' });
});

t('pixel cross-entropy gradients match finite differences, ignored pixels get none', async () => {
  const labels = tensor([0, 2, 255, 1, 255, 255, 2, 0, 1, 1, 0, 255], [2, 2, 3], 'i32');
  await gradCheck((x) => pixelCrossEntropy(x, labels), [input([2, 3, 2, 3], 4, -2, 2)], { what: 'pixel loss (mean)' });
  await gradCheck((x) => pixelCrossEntropy(x, labels, { reduction: 'sum' }), [input([2, 3, 2, 3], 5, -2, 2)], {
    what: 'pixel loss (sum)',
  });
  const x = tensor(randomArray(36, 6), [2, 3, 2, 3]).requireGrad();
  backward(pixelCrossEntropy(x, labels));
  const g = await x.grad!.data();
  // Pixel 2 of image 0 is ignored: its three class gradients are exactly zero.
  for (let c = 0; c < 3; c++) assert.is(g[c * 6 + 2], 0, `class ${c} of an ignored pixel`);
  labels.dispose();
});

t('pixel loss: every pixel ignored gives 0 and a zero gradient (not NaN); a bad label gives NaN', async () => {
  const x = tensor(randomArray(12, 7), [1, 3, 2, 2]).requireGrad();
  const loss = pixelCrossEntropy(x, tensor([255, 255, 255, 255], [1, 2, 2], 'i32'));
  assert.is(await loss.item(), 0);
  backward(loss);
  assert.ok((await x.grad!.data()).every((v) => v === 0));
  const bad = pixelCrossEntropy(x, tensor([0, 1, 7, 2], [1, 2, 2], 'i32'));
  assert.ok(Number.isNaN(await bad.item()), 'label 7 of 3 classes');
});

t('upsample backward is deterministic (no atomics): two runs agree bit for bit', async () => {
  const data = randomArray(2 * 4 * 4 * 4, 8);
  const run = async (): Promise<Float32Array> => {
    const x = tensor(data, [2, 4, 4, 4]).requireGrad();
    backward(bilinearUpsample2d(x, [32, 32]), tensor(randomArray(2 * 4 * 32 * 32, 9), [2, 4, 32, 32]));
    return (await x.grad!.data()) as Float32Array;
  };
  const a = await run();
  const b = await run();
  assert.equal([...a], [...b]);
  // An upsample of a constant map is that constant.
  const y = await bilinearUpsample2d(tensor(new Float32Array(9).fill(2.5), [1, 1, 3, 3]), [17, 8]).data();
  assertClose(y, new Float32Array(17 * 8).fill(2.5), 1e-6, 1e-6, 'constant map');
});

t('bad input is refused with the shapes in the message', () => {
  const x: Tensor = tensor(randomArray(8, 9), [2, 4]);
  assert.throws(
    () => bilinearUpsample2d(x, [4, 4]),
    /bilinearUpsample2d: expects an input \[N, C, H, W\], got f32\[2, 4\]/,
  );
  const x4 = tensor(randomArray(8, 9), [1, 2, 2, 2]);
  assert.throws(() => bilinearUpsample2d(x4, [0, 4]), /size must be two positive integers/);
  assert.throws(() => pixelCrossEntropy(x4, tensor([0, 1, 1, 0], [1, 4], 'i32')), /labels must be i32 \[1, 2, 2\]/);
  assert.throws(() => pixelCrossEntropy(x4, tensor([0, 1, 1, 0], [1, 2, 2])), /labels must be i32/);
});

t.run();
