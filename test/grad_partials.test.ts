// The weight gradients of convolutions whose .grad lives in a gradient store are reduced from
// their partials by one dispatch when the backward pass ends (engine/ops/conv2d/grad-partials.ts).
// The .grads must equal the per-call reduction's bit for bit in both kernel families, with a
// weight used twice, with an area too small for all partials at once, and in a replayed step.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dispatchesOf, gpu, randomArray } from './helpers.js';
import { runtime, scope, backward, sum, conv2d, tensor, type Tensor } from '../engine/index.js';
import { inputOn } from '../engine/ops/create.js';
import { captureStep, replayStep } from '../engine/replay.js';
import { FlatStore } from '../engine/flat.js';
import { overrideKernels } from '../engine/device-profile.js';
import { conv2dPlanFor } from '../engine/ops/conv2d/index.js';
import { GradPartials, GRAD_PARTIALS } from '../engine/ops/conv2d/grad-partials.js';

const t = suite('grad_partials');
// Large N*OH*OW for its weight: K is split into chunks in both families.
const X_SHAPE = [2, 16, 40, 40];
const W_SHAPE = [16, 16, 3, 3];
const W_SIZE = 16 * 16 * 9;
const OPTS = { padding: 1 };

t.before(async () => {
  await gpu();
});

/** `fn`'s dispatches as 'op | kernel' (kernel without its defines). */
function dispatched(fn: () => void): string[] {
  return dispatchesOf(fn).map((info) => `${info.op} | ${info.kernel.split('[')[0]}`);
}

const count = (seen: string[], what: string): number => seen.filter((s) => s === what).length;

/** Two convolutions (weights `a` then `b`, which may be the same tensor) and backward from their sum. */
function step(x: Tensor, a: Tensor, b: Tensor): void {
  backward(sum(conv2d(conv2d(x, a, null, OPTS), b, null, OPTS)));
}

interface Case {
  twice: boolean;
  /** The partials area's size in partials of one weight (0: the default). */
  area: number;
}

/** The .grads after `steps` backward passes from starting gradients g0, with plain tensors (per-call reduction) or a store. */
async function grads(
  x: Float32Array,
  w: Float32Array[],
  g0: Float32Array[],
  viaStore: { area: number; partial: number } | null,
  twice: boolean,
  steps: number,
  seen: string[][],
): Promise<Float32Array[]> {
  const rt = runtime();
  const names = twice ? ['a'] : ['a', 'b'];
  const entries = names.map((name) => ({ name, shape: W_SHAPE }));
  const params = new FlatStore(rt, entries, 'partials-test.params');
  const gradStore = new FlatStore(rt, entries, 'partials-test.grads');
  if (viaStore?.area)
    gradStore.derived(GRAD_PARTIALS, () => new GradPartials(rt, gradStore, viaStore.area * viaStore.partial));
  try {
    const weights = names.map((name, i) => {
      if (!viaStore) return tensor(w[i], W_SHAPE).requireGrad();
      params.write(name, w[i]);
      return params.get(name).requireGrad();
    });
    const out: Float32Array[] = [];
    for (let s = 0; s < steps; s++) {
      weights.forEach((p, i) => {
        if (viaStore) {
          gradStore.write(names[i], g0[i]);
          p.grad = gradStore.get(names[i]);
        } else {
          p.grad?.dispose();
          p.grad = tensor(g0[i], W_SHAPE);
        }
      });
      seen.push(dispatched(() => scope(() => step(tensor(x, X_SHAPE), weights[0], weights[twice ? 0 : 1]))));
    }
    for (const p of weights) out.push((await p.grad!.data()) as Float32Array);
    if (!viaStore) for (const p of weights) p.grad?.dispose();
    return out;
  } finally {
    params.destroy();
    gradStore.destroy();
  }
}

function assertBitwise(actual: Float32Array[], expected: Float32Array[], what: string): void {
  assert.is(actual.length, expected.length);
  actual.forEach((v, i) =>
    assert.ok(Buffer.from(v.buffer).equals(Buffer.from(expected[i].buffer)), `${what}: gradient ${i} differs`),
  );
}

for (const conv of ['classic', 'tiled'] as const) {
  for (const c of [
    { twice: false, area: 0 },
    { twice: true, area: 0 },
    { twice: false, area: 1.5 },
  ] satisfies Case[]) {
    const what = `${conv}${c.twice ? ', one weight used twice' : ''}${c.area ? ', an area of 1.5 partials' : ''}`;
    t(`${what}: store gradients summed at the end of backward equal the per-call reduction bit for bit`, async () => {
      const rt = runtime();
      const restore = overrideKernels(rt.profile, { conv });
      try {
        const plan = conv2dPlanFor(rt, X_SHAPE, W_SHAPE, OPTS);
        const chunks = plan.tiled ? plan.tiled.chunks : plan.weightGrad!.chunks;
        assert.ok(chunks > 1, `the weight gradient is split (${chunks} chunks)`);
        const x = randomArray(16 * 1600 * 2, 1);
        const w = [randomArray(W_SIZE, 2, -0.3, 0.3), randomArray(W_SIZE, 3, -0.3, 0.3)];
        // Non-zero starting gradients: the sums are added to what .grad holds.
        const g0 = [randomArray(W_SIZE, 4), randomArray(W_SIZE, 5)];
        const perCall: string[][] = [];
        const expected = await grads(x, w, g0, null, c.twice, 1, perCall);
        const reductions = count(perCall[0], 'conv2d.backward | reduce_sum');
        assert.is(reductions, 2, 'the per-call path reduces each weight gradient itself');

        const seen: string[][] = [];
        const actual = await grads(x, w, g0, { area: c.area, partial: chunks * W_SIZE }, c.twice, 3, seen);
        assertBitwise(actual, expected, `${what}, after the third backward pass`);
        // The first pass measures the area (per-call reductions), later ones defer.
        assert.is(count(seen[0], 'conv2d.backward | reduce_sum'), 2, 'first pass: per-call reductions');
        assert.is(count(seen[0], 'conv2d.backward | conv2d_partials_sum'), 0);
        for (const later of seen.slice(1)) {
          assert.is(count(later, 'conv2d.backward | reduce_sum'), 0, 'no per-call reduction once the area exists');
          // One sum, or one per fill of the area / per second use of a weight.
          assert.is(count(later, 'conv2d.backward | conv2d_partials_sum'), c.twice || c.area ? 2 : 1);
        }
      } finally {
        restore();
      }
    });
  }
}

t('a replayed step sums the partials as the eager one did, and a grown area retires the program', async () => {
  const rt = runtime();
  const restore = overrideKernels(rt.profile, { conv: 'tiled' });
  const entries = ['a', 'b', 'c'].map((name) => ({ name, shape: W_SHAPE }));
  const params = new FlatStore(rt, entries, 'partials-replay.params');
  const gradStore = new FlatStore(rt, entries, 'partials-replay.grads');
  try {
    const weights = ['a', 'b', 'c'].map((name, i) => {
      params.write(name, randomArray(W_SIZE, 10 + i, -0.3, 0.3));
      const p = params.get(name).requireGrad();
      p.grad = gradStore.get(name);
      return p;
    });
    const x = randomArray(16 * 1600 * 2, 12);
    const run = () => {
      step(inputOn(rt, 'x', x, X_SHAPE), weights[0], weights[1]);
      return {};
    };
    const eager = async (): Promise<Float32Array> => {
      gradStore.fill(0);
      scope(run);
      return (await gradStore.flat.data()) as Float32Array;
    };
    await eager(); // measures the area
    const expected = await eager();
    gradStore.fill(0);
    const { captured } = captureStep(rt, run);
    try {
      assert.ok(
        captured.program.commands.some((c) => c.kind === 'dispatch' && c.kernel.label === 'conv2d_partials_sum'),
        'the captured step sums the partials',
      );
      gradStore.fill(0);
      replayStep(rt, captured, { x });
      const replayed = (await gradStore.flat.data()) as Float32Array;
      assert.ok(Buffer.from(replayed.buffer).equals(Buffer.from(expected.buffer)), 'replay equals eager');
      // A backward pass with more partials (a third weight) grows the area: the program binding the old one is refused.
      const [a, b, c] = weights;
      scope(() =>
        backward(sum(conv2d(conv2d(conv2d(tensor(x, X_SHAPE), a, null, OPTS), b, null, OPTS), c, null, OPTS))),
      );
      assert.throws(() => replayStep(rt, captured, { x }), /capture the step again/);
    } finally {
      captured.program.destroy();
    }
  } finally {
    params.destroy();
    gradStore.destroy();
    restore();
  }
});

t.run();
