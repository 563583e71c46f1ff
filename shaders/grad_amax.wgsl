// amax = max |x| as float bits (non-negative floats order as their bits do, NaN above infinity),
// for the gradient scale of lib/grad_scale.wgsl. Each workgroup reduces its grid-stride share in
// workgroup memory, then one atomicMax per workgroup: max is exact in any order, so the result is
// deterministic. amax must be 0 before the dispatch.
//! WG = 256
struct Params { n: u32, stride: u32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> amax: array<atomic<u32>>;

var<workgroup> partial: array<u32, $WG>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lix: u32) {
  var m = 0u;
  for (var i = gid.x; i < params.n; i += params.stride) { m = max(m, bitcast<u32>(x[i]) & 0x7fffffffu); }
  partial[lix] = m;
  for (var half = $WGu / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lix < half) { partial[lix] = max(partial[lix], partial[lix + half]); }
  }
  if (lix == 0u) { atomicMax(&amax[0], partial[0]); }
}
