// f16 tensors: the CPU's binary16 encoding (every bit pattern, ties to even), the GPU's toHalf
// against it bit for bit, uploads and reads of odd lengths, and clear errors.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime } from './helpers.js';
import { halfBits, halfValue } from '../engine/half.js';
import { tensor, toHalf, toFloat, autocast, setPrecision } from '../engine/index.js';
import { scaledHalf } from '../engine/ops/grad-scale.js';

const t = suite('f16 tensors');
t.before(async () => {
  await gpu();
});

t('every binary16 pattern decodes and encodes back to itself', () => {
  for (let b = 0; b < 0x10000; b++) {
    const v = halfValue(b);
    if (Number.isNaN(v)) {
      assert.ok((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0, `pattern ${b.toString(16)} decodes to NaN`);
      assert.ok(Number.isNaN(halfValue(halfBits(v))));
      continue;
    }
    assert.is(halfBits(v), b, `pattern 0x${b.toString(16)} (${v})`);
  }
});

t('known values, overflow and underflow', () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00], // the midpoint to the next (infinite) step rounds to even: infinity
    [65519, 0x7bff],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // a tie between 0 and the smallest subnormal: even is 0
    [1.5 * 2 ** -25, 0x0001],
    [2 ** -14, 0x0400],
    [0.1, 0x2e66],
    [Number.POSITIVE_INFINITY, 0x7c00],
    [-0, 0x8000],
  ];
  for (const [x, bits] of cases) assert.is(halfBits(x), bits, `halfBits(${x})`);
});

t('midpoints between neighbouring halves round to the even one', () => {
  for (let b = 0; b < 0x7bff; b += 7) {
    const lo = halfValue(b);
    const hi = halfValue(b + 1);
    const mid = (lo + hi) / 2;
    assert.is(halfBits(mid), b % 2 === 0 ? b : b + 1, `mid of 0x${b.toString(16)}`);
    assert.is(halfBits(mid + (hi - lo) / 8), b + 1);
    assert.is(halfBits(mid - (hi - lo) / 8), b);
  }
});

t('toHalf on the GPU rounds as the CPU encoding does, scaled, odd lengths', async () => {
  const values: number[] = [];
  for (let i = 0; i < 2001; i++) {
    const mag = 2 ** (((i * 37) % 50) - 30); // 2^-30 .. 2^19: subnormals, normals, a few overflows
    values.push((i % 2 ? -1 : 1) * mag * (1 + ((i * 7919) % 1000) / 1000));
  }
  for (const scale of [1, 2 ** -6]) {
    const h = toHalf(tensor(values), scale);
    assert.is(h.dtype, 'f16');
    const got = (await h.data()) as Float32Array;
    const back = (await toFloat(h).data()) as Float32Array;
    assert.is(got.length, values.length);
    for (let i = 0; i < values.length; i++) {
      const want = halfValue(halfBits(Math.fround(values[i] * scale)));
      if (Math.abs(values[i] * scale) > 65504) continue; // beyond f16's range WGSL defines no value
      assert.is(got[i], want, `toHalf(${values[i]} * ${scale}) = ${got[i]}, CPU rounding ${want}`);
      assert.is(back[i], want);
    }
  }
});

t('f16 uploads round trip, odd and empty lengths', async () => {
  for (const n of [0, 1, 3, 8]) {
    const v = Array.from({ length: n }, (_, i) => i / 3 - 1);
    const h = tensor(v, [n], 'f16');
    const got = (await h.data()) as Float32Array;
    assert.equal(
      [...got],
      v.map((x) => halfValue(halfBits(x))),
    );
  }
});

t('scaledHalf: a power-of-two scale puts max |g| in (2^13, 2^14], tiny gradients keep f16 precision', async () => {
  for (const [mag, n] of [
    [3e-9, 5001],
    [0.7, 64],
    [2 ** -20, 7],
  ] as const) {
    const g = Array.from({ length: n }, (_, i) => mag * Math.sin(i * 1.7 + 0.3));
    const { half, amax } = scaledHalf(tensor(g));
    const bits = (await amax.data())[0];
    const f32 = new Float32Array(new Uint32Array([bits]).buffer)[0];
    const want = Math.max(...g.map((v) => Math.abs(Math.fround(v))));
    assert.is(f32, want, 'amax is the largest magnitude');
    const s = 2 ** (14 - Math.ceil(Math.log2(want)));
    assert.ok(want * s > 2 ** 13 && want * s <= 2 ** 14, `scale ${s} for amax ${want}`);
    const h = (await half.data()) as Float32Array;
    for (let i = 0; i < n; i++) {
      assert.is(h[i], halfValue(halfBits(Math.fround(g[i]) * s)), `element ${i}`);
      if (Math.abs(g[i]) > want / 1000) assert.ok(Math.abs(h[i] / s - g[i]) <= Math.abs(g[i]) * 2 ** -11);
    }
  }
});

t('scaledHalf: zeros stay zeros (scale 1), a NaN reaches the f16 values', async () => {
  const zero = scaledHalf(tensor([0, 0, 0]));
  assert.equal([...((await zero.half.data()) as Float32Array)], [0, 0, 0]);
  assert.is((await zero.amax.data())[0], 0);
  const nan = scaledHalf(tensor([1e-6, Number.NaN, 2e-6]));
  const h = (await nan.half.data()) as Float32Array;
  assert.ok(Number.isNaN(h[1]), 'NaN kept');
  assert.is(h[0], halfValue(halfBits(1e-6)), 'a NaN amax means scale 1');
});

t('bad input: toHalf of an integer tensor, gradients on f16, no shader-f16', () => {
  assert.throws(() => toHalf(tensor([1, 2], [2], 'i32')), /toHalf: expects f32 tensors, got i32\[2\]/);
  assert.throws(() => tensor([1], [1], 'f16').requireGrad(), /only f32 tensors can have gradients/);
  const rt = runtime();
  assert.throws(() => setPrecision(rt, 'half' as 'mixed'), /precision must be one of f32, mixed, got 'half'/);
  assert.is(
    autocast(rt, () => rt.precision),
    'mixed',
  );
  assert.is(rt.precision, 'f32', 'autocast restores the precision');
  const features = rt.profile.features;
  const had = features.shaderF16;
  features.shaderF16 = false;
  try {
    assert.throws(() => toHalf(tensor([1])), /shader-f16 feature, which this device does not offer/);
    assert.throws(() => setPrecision(rt, 'mixed'), /precision 'mixed': f16 needs the adapter's shader-f16/);
  } finally {
    features.shaderF16 = had;
  }
});

t.run();
