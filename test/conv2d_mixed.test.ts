// conv2d under mixed precision (rt.precision 'mixed'): the tiled kernels on f16 operands with f32
// accumulation. References are float64 CPU convolutions of the operands rounded as the engine
// rounds them (x and the weight to f16; dy scaled by scaledHalf's power of two, rounded, divided
// back), so what is left is the f32 accumulation: checked tightly. Also: against the f32 path
// within f16's precision, bit identity from run to run, a gradient far below f16's range, NaN,
// every tile, and weights from a parameter store (the f16 weight pack).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime, randomArray } from './helpers.js';
import { tensor, backward, scope, autocast, clone, type Tensor } from '../engine/index.js';
import {
  conv2d,
  conv2dGeometry,
  convShapeClass,
  TILED_TILES,
  type ConvGeometry,
  type TiledTileName,
} from '../engine/ops/conv2d/index.js';
import { overrideKernels } from '../engine/device-profile.js';
import { halfBits, halfValue } from '../engine/half.js';
import { FlatStore } from '../engine/flat.js';
import { WEIGHT_PACK, WEIGHT_PACK_F16 } from '../engine/ops/conv2d/weight-pack.js';
import type { Decision, TuneStore } from '../engine/tune/tuner.js';

const t = suite('conv2d mixed precision');

interface Geo {
  name: string;
  x: number[];
  w: number[];
  stride: number;
  padding: number;
  bias: boolean;
}

// Channel counts that do not divide the tiles (5, 7, 9, 3) and ones that do (16 in, 64 out).
// Output maps of 25 pixels read dy as scalars in the weight gradient, of 16 and 36 as vec4s;
// fewer input channels than a K slice take the kernel's few-channel path.
const GEOS: Geo[] = [
  { name: '1x1', x: [2, 5, 5, 5], w: [6, 5, 1, 1], stride: 1, padding: 0, bias: true },
  { name: '3x3 s1 p1', x: [2, 7, 5, 5], w: [9, 7, 3, 3], stride: 1, padding: 1, bias: false },
  { name: '3x3 s2 p1', x: [2, 16, 8, 8], w: [64, 16, 3, 3], stride: 2, padding: 1, bias: true },
  { name: '7x7 s2 p3', x: [1, 3, 12, 12], w: [8, 3, 7, 7], stride: 2, padding: 3, bias: false },
];

const half = (v: number): number => halfValue(halfBits(v));

/** dy as the backward sees it: f16(dy * s) / s with scaledHalf's s (2^(14 - ceil(log2 max |dy|))). */
function scaledRound(dy: Float32Array): Float64Array {
  let amax = 0;
  for (const v of dy) amax = Math.max(amax, Math.abs(v));
  const s = amax === 0 ? 1 : 2 ** (14 - Math.ceil(Math.log2(amax)));
  return Float64Array.from(dy, (v) => half(v * s) / s);
}

/** y, dx and dw of a convolution in float64 (bias added to y). */
function reference(
  g: ConvGeometry,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  dy: ArrayLike<number>,
): { y: Float64Array; dx: Float64Array; dw: Float64Array } {
  const y = new Float64Array(g.N * g.O * g.OH * g.OW);
  const dx = new Float64Array(g.N * g.C * g.H * g.W);
  const dw = new Float64Array(g.O * g.C * g.KH * g.KW);
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.O; o++)
      for (let oh = 0; oh < g.OH; oh++)
        for (let ow = 0; ow < g.OW; ow++) {
          const yi = ((n * g.O + o) * g.OH + oh) * g.OW + ow;
          let acc = bias ? bias[o] : 0;
          for (let c = 0; c < g.C; c++)
            for (let kh = 0; kh < g.KH; kh++)
              for (let kw = 0; kw < g.KW; kw++) {
                const ih = oh * g.SH - g.PH + kh * g.DH;
                const iw = ow * g.SW - g.PW + kw * g.DW;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                const xi = ((n * g.C + c) * g.H + ih) * g.W + iw;
                const wi = ((o * g.C + c) * g.KH + kh) * g.KW + kw;
                acc += x[xi] * w[wi];
                dx[xi] += dy[yi] * w[wi];
                dw[wi] += dy[yi] * x[xi];
              }
          y[yi] = acc;
        }
  return { y, dx, dw };
}

/** |a - b| <= tol * max |b| everywhere (NaN fails). */
function assertNear(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  assert.ok(scale > 0, `${what}: the reference is not all zero`);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  assert.ok(
    worst <= tol * scale,
    `${what}: element ${at} is ${a[at]}, expected ${b[at]} (error ${worst / scale} of the scale, limit ${tol})`,
  );
}

interface Inputs {
  g: ConvGeometry;
  geo: Geo;
  x: Float32Array;
  w: Float32Array;
  b: Float32Array | null;
  dy: Float32Array;
}

function inputs(geo: Geo, seed: number, dyScale = 1): Inputs {
  const g = conv2dGeometry(geo.x, geo.w, { stride: geo.stride, padding: geo.padding });
  const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  return {
    g,
    geo,
    x: randomArray(size(geo.x), seed),
    w: randomArray(size(geo.w), seed + 1, -0.5, 0.5),
    b: geo.bias ? randomArray(geo.w[0], seed + 2) : null,
    dy: randomArray(g.N * g.O * g.OH * g.OW, seed + 3).map((v) => v * dyScale),
  };
}

/** y, dx, dw (and db) of conv2d at `precision`; `weight` overrides the weight tensor (a store's). */
async function run(
  i: Inputs,
  precision: 'f32' | 'mixed',
  weight?: Tensor,
): Promise<{ y: Float32Array; dx: Float32Array; dw: Float32Array; db: Float32Array | null }> {
  const rt = runtime();
  const out = scope(() => {
    const x = tensor(i.x, i.geo.x).requireGrad();
    const w = (weight ?? tensor(i.w, i.geo.w)).requireGrad();
    const b = i.b ? tensor(i.b, [i.geo.w[0]]).requireGrad() : null;
    const y = autocast(rt, () => conv2d(x, w, b, { stride: i.geo.stride, padding: i.geo.padding }), precision);
    backward(y, tensor(i.dy, [...y.shape]));
    const grads = { y, dx: x.grad!, dw: w.grad!, db: b?.grad ?? null };
    if (weight) w.grad = null;
    return grads;
  });
  return {
    y: (await out.y.data()) as Float32Array,
    dx: (await out.dx.data()) as Float32Array,
    dw: (await out.dw.data()) as Float32Array,
    db: out.db ? ((await out.db.data()) as Float32Array) : null,
  };
}

/** The mixed results against the float64 reference of the rounded operands. */
async function checkMixed(i: Inputs, what: string, tol = 1e-5): Promise<void> {
  const got = await run(i, 'mixed');
  const ref = reference(i.g, Float64Array.from(i.x, half), Float64Array.from(i.w, half), i.b, scaledRound(i.dy));
  assertNear(got.y, ref.y, tol, `${what} y`);
  assertNear(got.dx, ref.dx, tol, `${what} dx`);
  assertNear(got.dw, ref.dw, tol, `${what} dw`);
  if (i.b) {
    const want = new Float64Array(i.g.O);
    const plane = i.g.OH * i.g.OW;
    i.dy.forEach((v, k) => (want[Math.floor(k / plane) % i.g.O] += v));
    assertNear(got.db!, want, 1e-6, `${what} bias gradient (from the f32 dy)`);
  }
}

t.before(async () => {
  const rt = await gpu();
  assert.ok(rt.profile.features.shaderF16, 'lavapipe offers shader-f16 (these tests need it)');
});

t('forward, dx and dw match float64 on the f16-rounded operands (only f32 accumulation left)', async () => {
  for (const [k, geo] of GEOS.entries()) await checkMixed(inputs(geo, 10 * k + 1), geo.name);
});

// Two geometries only: the f32 path on lavapipe is the classic family, more kernels to compile.
t('mixed agrees with the f32 path within f16 precision', async () => {
  for (const k of [2, 3]) {
    const geo = GEOS[k];
    const i = inputs(geo, 10 * k + 2);
    const [mixed, full] = [await run(i, 'mixed'), await run(i, 'f32')];
    for (const key of ['y', 'dx', 'dw'] as const) assertNear(mixed[key], full[key], 1e-2, `${geo.name} ${key}`);
  }
});

t('the same inputs give the same bits from run to run', async () => {
  for (const geo of [GEOS[1], GEOS[2]]) {
    const i = inputs(geo, 7);
    const [a, b] = [await run(i, 'mixed'), await run(i, 'mixed')];
    for (const key of ['y', 'dx', 'dw'] as const)
      assert.ok(Buffer.from(a[key].buffer).equals(Buffer.from(b[key].buffer)), `${geo.name} ${key} differs`);
  }
});

t(
  'a second backward adds into the weight .grad (the kernel accumulates, unscaled first): twice the first',
  async () => {
    const rt = runtime();
    const i = inputs(GEOS[1], 9);
    const [once, twice] = scope(() => {
      const x = tensor(i.x, i.geo.x);
      const w = tensor(i.w, i.geo.w).requireGrad();
      const pass = (): void => {
        const y = autocast(rt, () => conv2d(x, w, null, { stride: i.geo.stride, padding: i.geo.padding }));
        backward(y, tensor(i.dy, [...y.shape]));
      };
      pass();
      const first = clone(w.grad!);
      pass();
      return [first, w.grad!];
    });
    const a = (await once.data()) as Float32Array;
    const b = (await twice.data()) as Float32Array;
    assert.ok(
      b.every((v, k) => v === 2 * a[k]),
      'the second dw added to the first',
    );
  },
);

t('a gradient of 1e-8 (below f16 subnormals) still gives accurate dx and dw: the scale at work', async () => {
  const i = inputs(GEOS[1], 5, 1e-8);
  const flushed = i.dy.filter((v) => half(v) === 0).length;
  assert.ok(flushed > i.dy.length / 2, `unscaled, f16 would flush ${flushed} of ${i.dy.length} values to 0`);
  await checkMixed(i, 'dy ~ 1e-8');
  const full = await run(i, 'f32');
  const mixed = await run(i, 'mixed');
  assertNear(mixed.dw, full.dw, 1e-2, 'tiny dy: dw vs f32');
  assertNear(mixed.dx, full.dx, 1e-2, 'tiny dy: dx vs f32');
});

t('a NaN in x gives NaN in the outputs it reaches, and only there', async () => {
  const i = inputs(GEOS[1], 3);
  i.x[0] = Number.NaN; // image 0, channel 0, pixel (0, 0): reaches outputs (0..1, 0..1) of image 0
  const { y } = await run(i, 'mixed');
  const { O, OH, OW } = i.g;
  for (let o = 0; o < O; o++) {
    assert.ok(Number.isNaN(y[(o * OH + 0) * OW + 0]), `y[0, ${o}, 0, 0] is NaN`);
    assert.ok(Number.isNaN(y[(o * OH + 1) * OW + 1]), `y[0, ${o}, 1, 1] is NaN`);
  }
  assert.ok(
    y.slice(O * OH * OW).every((v) => Number.isFinite(v)),
    'image 1 is finite',
  );
});

// The tests above ran the 4x4 tile (the default rule's for small problems); the other tiles run
// the geometries that reach both B-load paths (a slice of one tap's channels, or of several
// taps) and both dy loads (vec4s, scalars): lavapipe compiles each specialisation slowly.
t('every other tile of the tiled family, forced', async () => {
  const rt = runtime();
  for (const tile of Object.keys(TILED_TILES) as TiledTileName[]) {
    if (tile === '4x4') continue;
    const restore = overrideKernels(rt.profile, { convTile: tile });
    try {
      // One geometry per tile: the f16 variants differ from the f32 ones (forced on several
      // geometries in conv2d.test.ts) only in their loads' conversion.
      await checkMixed(inputs(GEOS[2], 102), `${GEOS[2].name} (${tile})`);
    } finally {
      restore();
    }
  }
});

t('tuning: f16 operands are classes of their own, timed on the f16 kernels; the winners stay accurate', async () => {
  const rt = runtime();
  const saved: Record<string, Decision> = {};
  const store: TuneStore = { load: () => ({}), save: (_a, k, d) => void (saved[k] = d) };
  const i = inputs(GEOS[1], 31);
  // The tuner's counters are the shared runtime's (test/tune.test.ts counts from zero).
  const stats = { ...rt.tuner.stats };
  try {
    rt.tuner.configure({ mode: 'on', budgetMs: 5, store });
    await run(i, 'mixed');
    await rt.tuner.settled();
    const keys = Object.keys(saved);
    for (const dir of ['fwd', 'dx', 'dw'] as const) {
      const key = convShapeClass(i.g, dir, 'f16');
      assert.ok(saved[key], `a decision for ${key} among ${keys.join(', ')}`);
      assert.ok(Object.values(saved[key].ms).every((ms) => ms > 0 && Number.isFinite(ms)));
    }
    assert.ok(
      keys.every((k) => k.startsWith('conv2d|f16|')),
      `only f16 classes: ${keys.join(', ')}`,
    );
    await checkMixed(i, 'tuned tiles');
  } finally {
    rt.tuner.configure({ mode: 'off' });
    Object.assign(rt.tuner.stats, stats);
  }
});

t(
  'weights in a parameter store: the f16 pack, apart from the f32 one, gives the per-call results bit for bit',
  async () => {
    const rt = runtime();
    const geo = GEOS[2];
    const store = new FlatStore(rt, [{ name: 'w', shape: geo.w }], 'mixed-pack-test');
    try {
      const i = inputs(geo, 21);
      store.write('w', i.w);
      const perCall = await run(i, 'mixed');
      // The first call registers the layouts, the second packs them.
      for (let k = 0; k < 3; k++) {
        const got = await run(i, 'mixed', store.get('w'));
        for (const key of ['y', 'dx'] as const)
          assert.ok(Buffer.from(got[key].buffer).equals(Buffer.from(perCall[key].buffer)), `call ${k}: ${key}`);
      }
      const full = await run(i, 'f32', store.get('w'));
      assertNear(full.y, perCall.y, 1e-2, 'f32 from the same store');
      const has = (key: string): boolean => {
        try {
          store.derived(key, () => {
            throw new Error('absent');
          });
          return true;
        } catch {
          return false;
        }
      };
      assert.ok(has(WEIGHT_PACK_F16), 'an f16 pack');
      assert.ok(has(WEIGHT_PACK), 'an f32 pack beside it');
    } finally {
      store.destroy();
    }
  },
);

t.run();
