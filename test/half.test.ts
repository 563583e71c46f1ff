// f16 tensors: the CPU's binary16 encoding (every bit pattern, ties to even), the GPU's toHalf
// against it bit for bit, uploads and reads of odd lengths, and clear errors.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, runtime } from './helpers.js';
import { halfBits, halfValue } from '../engine/half.js';
import { tensor, toHalf, toFloat } from '../engine/index.js';

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

t('bad input: toHalf of an integer tensor, gradients on f16, no shader-f16', () => {
  assert.throws(() => toHalf(tensor([1, 2], [2], 'i32')), /toHalf: expects f32 tensors, got i32\[2\]/);
  assert.throws(() => tensor([1], [1], 'f16').requireGrad(), /only f32 tensors can have gradients/);
  const features = runtime().profile.features;
  const had = features.shaderF16;
  features.shaderF16 = false;
  try {
    assert.throws(() => toHalf(tensor([1])), /shader-f16 feature, which this device does not offer/);
  } finally {
    features.shaderF16 = had;
  }
});

t.run();
