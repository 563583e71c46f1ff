// The power-of-two factor s that a gradient tensor is multiplied by before its f16 cast, from the
// bits of its largest magnitude (grad_amax.wgsl): s * amax lies in (2^13, 2^14], far from f16's
// 65504, and values down to amax * 2^-38 stay representable. Zero, infinite or NaN amax: s = 1
// (a NaN then reaches the f16 values and the loss). Kernels that consume the f16 gradient
// multiply their f32 results by 1 / s, which is exact.
fn gradScaleLog2(amaxBits: u32) -> i32 {
  if (amaxBits == 0u || amaxBits >= 0x7f800000u) { return 0; }
  // ceil(log2(amax)) from the exponent and whether any mantissa bit is set.
  let e = i32(amaxBits >> 23u) - 127 + select(0, 1, (amaxBits & 0x7fffffu) != 0u);
  return clamp(14 - e, -100, 100);
}

// 2^e built from its bits (exact for |e| <= 100, where exp2's accuracy is left to the GPU).
fn gradPow2(e: i32) -> f32 {
  return bitcast<f32>(u32(127 + e) << 23u);
}

fn gradScale(amaxBits: u32) -> f32 {
  return gradPow2(gradScaleLog2(amaxBits));
}

fn gradUnscale(amaxBits: u32) -> f32 {
  return gradPow2(-gradScaleLog2(amaxBits));
}
