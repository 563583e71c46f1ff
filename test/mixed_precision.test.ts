// --precision mixed end to end: a Trainer whose convolutions and linear layers run on f16
// operands trains like the f32 one within f16 rounding, runs its convolutions through f16
// kernels, leaves the runtime's precision as it found it, replays bit-identically, and refuses
// a device without shader-f16 or an unknown precision by name.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dispatchesOf, gpu, runtime, TINY_TRAINER, tinyBatch } from './helpers.js';
import { Trainer } from '../train/trainer.js';
import { checkStepSettings } from '../train/step-checks.js';
import { flagName } from '../train/args.js';
import { presetOptions } from '../train/presets.js';

const t = suite('mixed precision');
t.before(async () => {
  await gpu();
});

const relDiff = (a: Float32Array, b: Float32Array): number => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
};

async function run(precision: 'f32' | 'mixed', replay: boolean, steps = 3) {
  const tr = new Trainer(runtime(), { ...TINY_TRAINER, precision, method: 'densecl' }, { replay });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await tr.trainStep(tinyBatch(10 + i), tinyBatch(20 + i))).loss);
  const params = (await tr.model.query.params.flat.data()) as Float32Array;
  tr.destroy();
  return { losses, params };
}

t('a mixed-precision DenseCL trainer follows the f32 one within f16 rounding', async () => {
  const f32 = await run('f32', false);
  const mixed = await run('mixed', false);
  for (let i = 0; i < f32.losses.length; i++) {
    assert.ok(Number.isFinite(mixed.losses[i]), `step ${i} loss ${mixed.losses[i]}`);
    assert.ok(
      Math.abs(mixed.losses[i] - f32.losses[i]) <= 2e-2 * Math.abs(f32.losses[i]),
      `step ${i}: mixed ${mixed.losses[i]} vs f32 ${f32.losses[i]}`,
    );
  }
  const d = relDiff(mixed.params, f32.params);
  assert.ok(d > 0, 'mixed precision changed nothing: its kernels did not run');
  assert.ok(d < 2e-2, `parameters after 3 steps differ by ${d} of their scale`);
  assert.is(runtime().precision, 'f32', 'the step restores the runtime precision');
});

t('mixed steps replay bit-identically to eager ones', async () => {
  const eager = await run('mixed', false, 4);
  const replayed = await run('mixed', true, 4);
  assert.equal(replayed.losses, eager.losses);
  assert.equal(Array.from(replayed.params), Array.from(eager.params));
});

t('the convolutions of a mixed step read f16 operands', async () => {
  const tr = new Trainer(runtime(), { ...TINY_TRAINER, precision: 'mixed' }, { replay: false });
  try {
    let step: Promise<unknown> = Promise.resolve();
    const seen = dispatchesOf(() => {
      step = tr.trainStep(tinyBatch(1), tinyBatch(2));
    });
    await step;
    const labels = seen.map((d) => d.kernel);
    assert.ok(
      labels.some((k) => /to_half/.test(k)),
      `no f16 casts among ${[...new Set(labels)].join(', ')}`,
    );
    assert.ok(
      labels.some((k) => /conv2d_tiled.*f16/.test(k)),
      `no f16 tiled conv among ${[...new Set(labels)].join(', ')}`,
    );
  } finally {
    tr.destroy();
  }
});

t('bad input: an unknown precision, a device without shader-f16', () => {
  const o = { ...presetOptions('tiny'), precision: 'bf16' };
  assert.throws(() => checkStepSettings(o, 1, flagName), /--precision must be f32 or mixed, got 'bf16'/);
  const features = runtime().profile.features;
  const had = features.shaderF16;
  features.shaderF16 = false;
  try {
    assert.throws(
      () => new Trainer(runtime(), { ...TINY_TRAINER, precision: 'mixed' }),
      /precision 'mixed': f16 needs the adapter's shader-f16 feature/,
    );
  } finally {
    features.shaderF16 = had;
  }
});

t.run();
