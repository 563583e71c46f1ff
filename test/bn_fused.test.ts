// The fused forms of batchNorm2d against the unfused ops composed: a residual added before the
// ReLU (a ResNet block's tail), a gradient of several terms summed in the kernels, and weight
// and bias gradients added straight into existing .grad tensors; plus finite differences, and
// a plain CPU loop, on each path: three passes (the 'two-pass' choice), and under 'one-pass' a
// workgroup per channel (small channels) or the merge folded into the elementwise passes
// (large channels, forced on small shapes by lowering bnOnePassMax). The folded merge must give
// the three-pass path's bits, and every path the same bits run to run.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime, assertClose, randomArray, gradCheck } from './helpers.js';
import { tensor, backward, batchNorm2d, add, mul, relu, sum, type Tensor } from '../engine/index.js';
import { ONE_PASS_MAX } from '../engine/ops/batchnorm.js';
import { overrideKernels, type KernelChoices } from '../engine/device-profile.js';

const t = suite('batch norm fused with the residual add and ReLU');
t.before(async () => {
  await gpu();
});

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const input = (shape: number[], seed: number) => ({ data: randomArray(size(shape), seed), shape });

interface Leaves {
  x: Tensor;
  w: Tensor;
  b: Tensor;
  r: Tensor;
}

function leaves(shape: number[], seed: number): Leaves {
  const C = shape[1];
  return {
    x: tensor(randomArray(size(shape), seed), shape).requireGrad(),
    w: tensor(randomArray(C, seed + 1, 0.5, 1.5), [C]).requireGrad(),
    b: tensor(randomArray(C, seed + 2), [C]).requireGrad(),
    r: tensor(randomArray(size(shape), seed + 3), shape).requireGrad(),
  };
}

/** y used `uses` times (each use weighted by its own random tensor), summed to a scalar. */
function objective(y: Tensor, uses: number, seed: number): Tensor {
  let loss: Tensor | null = null;
  for (let u = 0; u < uses; u++) {
    const term = sum(mul(y, tensor(randomArray(y.size, seed + 10 * u), [...y.shape])));
    loss = loss ? add(loss, term) : term;
  }
  return loss!;
}

async function run(shape: number[], groups: number, uses: number, fused: boolean, preset: Float32Array | null) {
  const C = shape[1];
  const { x, w, b, r } = leaves(shape, 1);
  if (preset) {
    w.grad = tensor(preset.subarray(0, C), [C]);
    b.grad = tensor(preset.subarray(C), [C]);
  }
  const rm = tensor(new Float32Array(C), [C]);
  const rv = tensor(new Float32Array(C).fill(1), [C]);
  const opts = { training: true, groups };
  const y = fused
    ? batchNorm2d(x, w, b, rm, rv, { ...opts, relu: true, residual: r })
    : relu(add(batchNorm2d(x, w, b, rm, rv, { ...opts, relu: false }), r));
  backward(objective(y, uses, 5));
  const read = async (v: Tensor) => Float32Array.from(await v.data());
  const out: Record<string, Float32Array> = { y: await read(y), rm: await read(rm), rv: await read(rv) };
  for (const [name, leaf] of Object.entries({ x, w, b, r })) out[`d${name}`] = await read(leaf.grad!);
  return out;
}

type Variant = 'two-pass' | 'one-pass' | 'one-pass, merge forced';
const VARIANTS: Record<Variant, Partial<KernelChoices>> = {
  'two-pass': { batchnorm: 'two-pass' },
  'one-pass': { batchnorm: 'one-pass' },
  // Every channel is "large": the merge folded into the elementwise passes.
  'one-pass, merge forced': { batchnorm: 'one-pass', bnOnePassMax: 0 },
};

/** Runs fn under one batch norm kernel variant. */
async function under<T>(variant: Variant, fn: () => Promise<T>): Promise<T> {
  const restore = overrideKernels(runtime().profile, VARIANTS[variant]);
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** Runs fn under each batch norm kernel variant. */
async function eachVariant(fn: (variant: Variant) => Promise<void>): Promise<void> {
  for (const variant of Object.keys(VARIANTS) as Variant[]) await under(variant, () => fn(variant));
}

/** The path batchNorm2d must take for a channel of `values` values under `variant`. */
function expectedPath(variant: Variant, values: number): 'three-pass' | 'channel' | 'merge' {
  if (variant === 'two-pass') return 'three-pass';
  return variant === 'one-pass' && values <= ONE_PASS_MAX ? 'channel' : 'merge';
}

/** The kernels each path dispatches in a training step with backward (apply and grad_input aside). */
const PATH_KERNELS = {
  'three-pass': ['batchnorm_stats[', 'batchnorm_reduce', 'batchnorm_grad_stats', 'batchnorm_grad_reduce'],
  channel: ['batchnorm_stats_channel', 'batchnorm_grad_channel'],
  merge: ['batchnorm_stats[', 'batchnorm_apply_merge', 'batchnorm_grad_stats', 'batchnorm_grad_input_merge'],
};
const ALL_PATH_KERNELS = [...new Set(Object.values(PATH_KERNELS).flat())];

function assertBitwise(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  const i = a.findIndex((v, j) => v !== b[j]);
  assert.ok(i < 0, `${what}: element ${i} is ${actual[i]}, expected exactly ${expected[i]}`);
}

/** The kernels that fn dispatches, with their ops. */
async function kernelsOf(fn: () => Promise<void>): Promise<{ kernel: string; op: string }[]> {
  const rt = runtime();
  const seen: { kernel: string; op: string }[] = [];
  rt.observer = {
    timestampWrites: (info) => void seen.push({ kernel: info.kernel, op: info.op }),
    beforeSubmit: () => {},
    afterSubmit: () => {},
  };
  try {
    await fn();
  } finally {
    rt.observer = null;
  }
  return seen;
}

t('matches relu(add(batchNorm2d(x), r)): output, running statistics, every gradient', async () => {
  // vec4 and scalar planes, one and two BN groups, the output used once, twice (the two gradient
  // terms go to the kernels unsummed) and three times (autograd sums the surplus first).
  const cases: [number[], number, number][] = [
    [[4, 3, 4, 4], 1, 1],
    [[4, 3, 4, 4], 2, 2],
    [[4, 2, 3, 3], 2, 2],
    [[2, 5, 3, 5], 1, 3],
  ];
  await eachVariant(async (variant) => {
    for (const [shape, groups, uses] of cases) {
      const what = `${variant} [${shape}] groups ${groups}, used ${uses}x`;
      const want = await run(shape, groups, uses, false, null);
      const got = await run(shape, groups, uses, true, null);
      for (const key of Object.keys(want)) assertClose(got[key], want[key], 1e-5, 1e-6, `${what}: ${key}`);
    }
  });
});

t('weight and bias gradients add to existing .grad tensors', async () => {
  const shape = [4, 3, 4, 4];
  const preset = randomArray(6, 42);
  await eachVariant(async (variant) => {
    const fresh = await run(shape, 2, 2, true, null);
    const acc = await run(shape, 2, 2, true, preset);
    assertClose(
      acc.dw,
      fresh.dw.map((v, i) => v + preset[i]),
      1e-6,
      1e-6,
      `${variant}: dweight accumulated`,
    );
    assertClose(
      acc.db,
      fresh.db.map((v, i) => v + preset[3 + i]),
      1e-6,
      1e-6,
      `${variant}: dbias accumulated`,
    );
    assertBitwise(acc.dx, fresh.dx, `${variant}: dx unchanged by the accumulation`);
  });
});

t('finite differences through the fused op (x, weight, bias, residual), training and eval', async () => {
  const shape = [2, 2, 3, 4];
  const C = shape[1];
  const fn = (training: boolean) => (x: Tensor, w: Tensor, b: Tensor, r: Tensor) =>
    batchNorm2d(x, w, b, tensor(new Float32Array(C), [C]), tensor(new Float32Array(C).fill(1), [C]), {
      training,
      relu: true,
      residual: r,
    });
  // A residual of +-6 keeps every pre-activation well away from the ReLU's kink (|bn| < 5 here),
  // with both signs, so central differences do not straddle it.
  const residual = randomArray(size(shape), 14).map((v) => (v < 0 ? -6 : 6));
  await eachVariant(async (variant) => {
    for (const training of [true, false]) {
      await gradCheck(
        fn(training),
        [
          input(shape, 11),
          { data: randomArray(C, 12, 0.5, 1.5), shape: [C] },
          input([C], 13),
          { data: residual, shape },
        ],
        { what: `fused batch norm, ${variant}, ${training ? 'training' : 'eval'}` },
      );
    }
  });
});

t('weight and bias gradients when x needs none (an input layer) equal those when it does', async () => {
  // The merge path has no input-gradient pass to fold into then: it takes the reduce pass.
  const shape = [5, 2, 64, 64];
  const C = shape[1];
  await eachVariant(async (variant) => {
    const grads: Float32Array[][] = [];
    for (const xGrad of [true, false]) {
      const x = tensor(randomArray(size(shape), 31), shape);
      if (xGrad) x.requireGrad();
      const w = tensor(randomArray(C, 32, 0.5, 1.5), [C]).requireGrad();
      const b = tensor(randomArray(C, 33), [C]).requireGrad();
      const rm = tensor(new Float32Array(C), [C]);
      const rv = tensor(new Float32Array(C).fill(1), [C]);
      const y = batchNorm2d(x, w, b, rm, rv, { training: true, groups: 1, relu: true });
      backward(y, tensor(randomArray(size(shape), 34), shape));
      grads.push([Float32Array.from(await w.grad!.data()), Float32Array.from(await b.grad!.data())]);
      assert.is(x.grad === null, !xGrad, `${variant}: x.grad only when asked for`);
    }
    assertBitwise(grads[1][0], grads[0][0], `${variant}: dweight`);
    assertBitwise(grads[1][1], grads[0][1], `${variant}: dbias`);
  });
});

/** Forward output, running statistics and gradients of sum(u * relu(bn(x) + r)), in float64 on the CPU. */
function cpuReference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  r: Float32Array,
  u: Float32Array,
  shape: number[],
  G: number,
  momentum: number,
  eps: number,
) {
  const [N, C, H, W] = shape;
  const HW = H * W;
  const per = N / G;
  const m = per * HW;
  const y = new Float64Array(x.length);
  const out = {
    y,
    dx: new Float64Array(x.length),
    dr: new Float64Array(x.length),
    dw: new Float64Array(C),
    db: new Float64Array(C),
    rm: new Float64Array(C),
    rv: new Float64Array(C).fill(1),
  };
  const at = (n: number, c: number, i: number) => (n * C + c) * HW + i;
  for (let c = 0; c < C; c++) {
    let meanSum = 0;
    let varSum = 0;
    for (let g = 0; g < G; g++) {
      const idx: number[] = [];
      for (let n = g * per; n < (g + 1) * per; n++) for (let i = 0; i < HW; i++) idx.push(at(n, c, i));
      const mean = idx.reduce((a, j) => a + x[j], 0) / m;
      const v = idx.reduce((a, j) => a + (x[j] - mean) ** 2, 0) / m;
      const invstd = 1 / Math.sqrt(v + eps);
      let sdz = 0;
      let sdzx = 0;
      for (const j of idx) {
        const xhat = (x[j] - mean) * invstd;
        y[j] = Math.max(xhat * w[c] + b[c] + r[j], 0);
        const dz = y[j] > 0 ? u[j] : 0;
        out.dr[j] = dz;
        sdz += dz;
        sdzx += dz * xhat;
      }
      for (const j of idx) {
        const xhat = (x[j] - mean) * invstd;
        out.dx[j] = ((w[c] * invstd) / m) * (m * out.dr[j] - sdz - xhat * sdzx);
      }
      out.dw[c] += sdzx;
      out.db[c] += sdz;
      meanSum += mean;
      varSum += (v * m) / (m - 1);
    }
    out.rm[c] = momentum * (meanSum / G);
    out.rv[c] = 1 - momentum + momentum * (varSum / G);
  }
  return out;
}

t('every path matches a CPU loop, in two dispatches each way under one-pass', async () => {
  // [N, C, H, W], BN groups: vec4 and scalar planes on both sides of ONE_PASS_MAX; the large
  // ones span two workgroups of the merging passes per (group, channel).
  const cases: [number[], number][] = [
    [[4, 3, 8, 8], 2],
    [[4, 2, 5, 7], 1],
    [[5, 2, 64, 64], 1],
    [[9, 2, 45, 45], 3],
  ];
  await eachVariant(async (variant) => {
    for (const [shape, G] of cases) {
      const [N, C, H, W] = shape;
      const path = expectedPath(variant, N * H * W);
      const n = size(shape);
      const data = {
        x: randomArray(n, 21, -2, 3),
        w: randomArray(C, 22, 0.5, 1.5),
        b: randomArray(C, 23),
        r: randomArray(n, 24),
        u: randomArray(n, 25),
      };
      const x = tensor(data.x, shape).requireGrad();
      const w = tensor(data.w, [C]).requireGrad();
      const b = tensor(data.b, [C]).requireGrad();
      const r = tensor(data.r, shape).requireGrad();
      const rm = tensor(new Float32Array(C), [C]);
      const rv = tensor(new Float32Array(C).fill(1), [C]);
      const outs: Tensor[] = [];
      const kernels = await kernelsOf(async () => {
        outs.push(batchNorm2d(x, w, b, rm, rv, { training: true, groups: G, relu: true, residual: r }));
        backward(outs[0], tensor(data.u, shape));
      });
      const y = outs[0];
      const what = `${variant} [${shape}] groups ${G}`;
      const used = ALL_PATH_KERNELS.filter((name) => kernels.some((k) => k.kernel.startsWith(name)));
      const expected = ALL_PATH_KERNELS.filter((name) => PATH_KERNELS[path].includes(name));
      assert.equal(used, expected, `${what}: the ${path} path's kernels`);
      const each = path === 'three-pass' ? 3 : 2;
      assert.is(kernels.filter((k) => k.op === 'batchNorm2d').length, each, `${what}: forward dispatches`);
      assert.is(kernels.filter((k) => k.op === 'batchNorm2d.backward').length, each, `${what}: backward dispatches`);
      const want = cpuReference(data.x, data.w, data.b, data.r, data.u, shape, G, 0.1, 1e-5);
      assertClose(await y.data(), want.y, 1e-4, 1e-5, `${what}: y`);
      assertClose(await rm.data(), want.rm, 1e-4, 1e-6, `${what}: running mean`);
      assertClose(await rv.data(), want.rv, 1e-4, 1e-6, `${what}: running var`);
      assertClose(await x.grad!.data(), want.dx, 1e-3, 1e-5, `${what}: dx`);
      assertClose(await r.grad!.data(), want.dr, 0, 0, `${what}: dresidual`);
      assertClose(await w.grad!.data(), want.dw, 1e-4, 1e-3, `${what}: dweight`);
      assertClose(await b.grad!.data(), want.db, 1e-4, 1e-3, `${what}: dbias`);
    }
  });
});

t(
  'the folded merge gives the three-pass bits (output, running and saved statistics, gradients), run to run',
  async () => {
    // Saved statistics: a second forward in eval mode would read the running buffers instead, so
    // they are checked through what only they feed: the backward's dx (mean and invstd).
    const cases: [number[], number][] = [
      [[5, 2, 64, 64], 1],
      [[9, 2, 45, 45], 3],
      [[4, 3, 4, 4], 2],
    ];
    for (const [shape, G] of cases) {
      const runOnce = (variant: Variant) => under(variant, () => run(shape, G, 2, true, null));
      const three = await runOnce('two-pass');
      const merged = await runOnce('one-pass, merge forced');
      const again = await runOnce('one-pass, merge forced');
      for (const key of Object.keys(three)) {
        assertBitwise(merged[key], three[key], `[${shape}] groups ${G}: ${key}, merge vs three passes`);
        assertBitwise(again[key], merged[key], `[${shape}] groups ${G}: ${key}, merge run to run`);
      }
      const channel = await runOnce('one-pass');
      const channelAgain = await runOnce('one-pass');
      for (const key of Object.keys(channel))
        assertBitwise(channelAgain[key], channel[key], `[${shape}] groups ${G}: ${key}, one-pass run to run`);
    }
  },
);

t('a residual of another shape is refused by name', async () => {
  const { x, w, b } = leaves([2, 3, 4, 4], 3);
  const rm = tensor(new Float32Array(3), [3]);
  const rv = tensor(new Float32Array(3).fill(1), [3]);
  assert.throws(
    () => batchNorm2d(x, w, b, rm, rv, { training: true, residual: tensor(new Float32Array(2 * 3 * 16), [2, 3, 16]) }),
    /residual .* does not match input .* must have the input's shape/,
  );
});

t.run();
