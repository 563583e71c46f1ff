// Generators derived from several integers (seed, epoch, index, view, ...): every sample's
// randomness depends only on these, never on which worker made it or in what order.
import { Rng } from '../../engine/random.js';

// murmur3's 32-bit finaliser: every input bit affects every output bit.
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A generator whose 128-bit state is a hash of `parts` (each taken as a 32-bit integer). */
export function rngFor(...parts: number[]): Rng {
  const s = new Uint32Array(4);
  for (let lane = 0; lane < 4; lane++) {
    let h = fmix(0x9e3779b9 * (lane + 1));
    for (const p of parts) h = fmix((h ^ fmix(p >>> 0)) + 0x7f4a7c15 * (lane + 1));
    s[lane] = h;
  }
  if (s.every((v) => v === 0)) s[0] = 1; // xoshiro must not start from all zeros
  return new Rng(s);
}
