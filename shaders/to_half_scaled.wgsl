// y = f16(x * s), s the gradient scale of amax (lib/grad_scale.wgsl), two elements per
// invocation (lib/half_pair.wgsl).
//! WG = 256
//#include "lib/grad_scale.wgsl"
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> amax: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<vec2<f16>>;
//#include "lib/half_pair.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (2u * i < params.n) { y[i] = halfPair(i, gradScale(amax[0])); }
}
