// outScale(): what a kernel multiplies its f32 results by. UNSCALE: one of its operands is a
// gradient cast to f16 scaled by gradScale(amax) (engine/ops/grad-scale.ts), so 1 / s, exact;
// its amax (one u32) is bound at AMAX_BINDING. Otherwise 1, and no such binding.
//! AMAX_BINDING = 4
//#if UNSCALE
@group(0) @binding($AMAX_BINDING) var<storage, read> amax: array<u32>;
//#include "lib/grad_scale.wgsl"
fn outScale() -> f32 { return gradUnscale(amax[0]); }
//#endif
//#if !UNSCALE
fn outScale() -> f32 { return 1.0; }
//#endif
