// y = f16(x * s) with s the gradient scale of amax (lib/grad_scale.wgsl), two elements per
// invocation (whole 4-byte stores; the pad half after an odd count is 0).
//! WG = 256
//#include "lib/grad_scale.wgsl"
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> amax: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<vec2<f16>>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  let e = 2u * i;
  if (e >= params.n) { return; }
  let second = select(0.0, x[e + 1u], e + 1u < params.n);
  y[i] = vec2<f16>(vec2<f32>(x[e], second) * gradScale(amax[0]));
}
