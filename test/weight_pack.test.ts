// Conv weights inside a parameter store are re-laid once per change of the store, for every
// convolution at once (engine/ops/conv2d/weight-pack.ts). The results must be exactly those of
// the per-call re-layout, after every kind of write to the store (upload, kernel, replayed
// step), in both kernel families; a replay must never read a pack made from older weights; and a
// pack that grows must retire the programs that bind its old buffer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dispatchesOf, gpu, randomArray } from './helpers.js';
import { runtime, scope, backward, sum, conv2d, tensor, type Tensor } from '../engine/index.js';
import { inputOn } from '../engine/ops/create.js';
import { captureStep, replayStep } from '../engine/replay.js';
import { fillInPlace } from '../engine/ops/pointwise.js';
import { FlatStore } from '../engine/flat.js';
import { overrideKernels } from '../engine/device-profile.js';
import { WeightPack, WEIGHT_PACK } from '../engine/ops/conv2d/weight-pack.js';

const t = suite('weight_pack');
const X_SHAPE = [2, 4, 9, 9];
const SHAPES = { a: [8, 4, 3, 3], b: [6, 8, 3, 3], c: [5, 6, 3, 3] };

t.before(async () => {
  await gpu();
});

/** Kernel labels dispatched while `fn` runs. */
function dispatched(fn: () => void): string[] {
  return dispatchesOf(fn).map((info) => info.kernel.split('[')[0]);
}

/** How many buffers `fn` retires. */
function spyRetire(fn: () => void): number {
  const rt = runtime();
  const retire = rt.retire.bind(rt);
  let n = 0;
  rt.retire = (b: GPUBuffer) => {
    n++;
    retire(b);
  };
  try {
    fn();
  } finally {
    rt.retire = retire;
  }
  return n;
}

/** Two 3x3 convolutions and the input gradient through both (forward and transposed layouts). */
function net(x: Tensor, a: Tensor, b: Tensor): { y: Tensor; dx: Tensor } {
  x.requireGrad();
  const y = conv2d(conv2d(x, a, null, { padding: 1 }), b, null, { padding: 1 });
  backward(sum(y));
  return { y, dx: x.grad! };
}

async function run(x: Float32Array, a: Tensor, b: Tensor): Promise<Float32Array[]> {
  const { y, dx } = scope(() => {
    const out = net(tensor(x, X_SHAPE), a, b);
    return { y: out.y, dx: out.dx };
  });
  return [(await y.data()) as Float32Array, (await dx.data()) as Float32Array];
}

function assertBitwise(actual: Float32Array[], expected: Float32Array[], what: string): void {
  actual.forEach((v, i) =>
    assert.ok(Buffer.from(v.buffer).equals(Buffer.from(expected[i].buffer)), `${what}: output ${i} differs`),
  );
}

for (const [conv, cap] of [
  ['classic', 0],
  ['tiled', 6000],
  ['tiled', 6000],
] as const) {
  t(
    `${conv}${cap ? `, packs of at most ${cap} floats` : ''}: store weights give the per-call re-layout's results bit for bit after every kind of write`,
    async () => {
      const rt = runtime();
      const restore = overrideKernels(rt.profile, { conv });
      const store = new FlatStore(
        rt,
        Object.entries(SHAPES).map(([name, shape]) => ({ name, shape })),
        'pack-test',
      );
      // A small cap splits the layouts over several packs, as a binding limit does for a large model.
      if (cap) store.derived(WEIGHT_PACK, () => new WeightPack(rt, store, cap));
      try {
        const values = { a: randomArray(288, 1), b: randomArray(432, 2) };
        store.write('a', values.a);
        store.write('b', values.b);
        const x = randomArray(2 * 4 * 81, 3);
        const reference = () => run(x, tensor(values.a, SHAPES.a), tensor(values.b, SHAPES.b));
        const fromStore = () => run(x, store.get('a'), store.get('b'));

        assertBitwise(await fromStore(), await reference(), 'first call (layouts registered)');
        let kernels: string[] = [];
        const second = scope(() => {
          kernels = dispatched(() => net(tensor(x, X_SHAPE), store.get('a'), store.get('b')));
          return 0;
        });
        assert.is(second, 0);
        assert.is(kernels.filter((k) => k === 'conv2d_relayout').length, 0, 'no per-call re-layout once packed');
        const packs = kernels.filter((k) => k === 'conv2d_relayout_pack').length;
        if (cap) assert.ok(packs > 1, `the layouts need several packs of ${cap} floats, got ${packs}`);
        else assert.is(packs, 1, 'one pack for the whole store');
        assertBitwise(await fromStore(), await reference(), 'packed');

        values.a = randomArray(288, 4);
        store.write('a', values.a);
        assertBitwise(await fromStore(), await reference(), 'after an upload');

        fillInPlace(store.get('b'), 0.25);
        values.b = new Float32Array(432).fill(0.25);
        assertBitwise(await fromStore(), await reference(), 'after a kernel wrote the store');
      } finally {
        store.destroy();
        restore();
      }
    },
  );
}

t(
  'a replayed step refreshes the pack from the current weights, and a pack that grows retires older programs',
  async () => {
    const rt = runtime();
    const store = new FlatStore(
      rt,
      Object.entries(SHAPES).map(([name, shape]) => ({ name, shape })),
      'pack-replay',
    );
    const conv3 = (x: Tensor, w: Tensor) => conv2d(x, w, null, { padding: 1 });
    try {
      store.write('a', randomArray(288, 5));
      store.write('b', randomArray(432, 6));
      const x = randomArray(2 * 4 * 81, 7);
      const step = () => ({ y: conv3(conv3(inputOn(rt, 'x', x, X_SHAPE), store.get('a')), store.get('b')) });
      scope(() => void step()); // registers the layouts
      scope(() => void step()); // packs them
      const { captured, result } = captureStep(rt, step);
      assert.ok(
        captured.program.commands.some((c) => c.kind === 'dispatch' && c.kernel.label === 'conv2d_relayout_pack'),
        'the capture refreshes the pack although the store did not change',
      );
      result.y!.dispose();
      try {
        store.write('b', randomArray(432, 8));
        const replayed = (await replayStep(rt, captured, { x }).y!.data()) as Float32Array;
        const eager = (await scope(() => step()).y.data()) as Float32Array;
        assert.ok(Buffer.from(replayed.buffer).equals(Buffer.from(eager.buffer)), 'the replay used the new weights');

        // Another store's pack growing (its second layout joins on the second call) leaves the program alone.
        const other = new FlatStore(
          rt,
          ['a', 'b'].map((name) => ({ name, shape: SHAPES[name as 'a' | 'b'] })),
          'pack-other',
        );
        const viaOther = () => scope(() => void conv3(conv3(tensor(x, X_SHAPE), other.get('a')), other.get('b')));
        const retired = spyRetire(() => {
          viaOther();
          viaOther();
        });
        other.destroy();
        assert.ok(retired > 0, "the other store's pack grew");
        assert.ok(rt.canReplay(captured.program), "another store's pack does not retire the program");

        // A new layout (weight c), asked for twice, grows the pack: the program binding the old one is refused.
        const c = () => scope(() => void conv3(tensor(randomArray(2 * 6 * 81, 9), [2, 6, 9, 9]), store.get('c')));
        c();
        c();
        assert.throws(() => replayStep(rt, captured, { x }), /capture the step again/);
      } finally {
        captured.program.destroy();
      }
    } finally {
      store.destroy();
    }
  },
);

t.run();
