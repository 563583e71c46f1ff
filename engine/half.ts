// IEEE 754 binary16 ("half") bits from and to numbers on the CPU, for f16 tensors' uploads and
// reads (Node 20 has no Float16Array). Encoding rounds to nearest, ties to even, as GPUs convert;
// out-of-range values become infinities, NaN stays NaN.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bits nearest to `x` (after rounding x to f32, as a GPU would hold it). */
export function halfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (exp > 112) {
    // Normal in half precision (or overflowing it): keep 10 of 23 mantissa bits, carry may
    // ripple into the exponent and on to infinity, which the bit pattern does by itself.
    if (exp > 142) return sign | 0x7c00;
    const kept = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    return sign | (kept + (rest > 0x1000 || (rest === 0x1000 && kept & 1) ? 1 : 0));
  }
  // Subnormal half: units of 2^-24; the 24-bit significand shifted right by `shift`.
  const shift = 126 - exp;
  if (shift > 24) return sign;
  const sig = mant | 0x800000;
  const units = sig >>> shift;
  const rest = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (units + (rest > half || (rest === half && units & 1) ? 1 : 0));
}

/** The number a binary16 bit pattern holds. */
export function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

export function toHalfBits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i]);
  return out;
}

export function fromHalfBits(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfValue(bits[i]);
  return out;
}
