// Backward of max over the middle axis: the gradient goes to the recorded argmax only.
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> arg: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  let total = params.outer * params.reduce * params.inner;
  if (idx >= total) { return; }
  let i = idx % params.inner;
  let r = (idx / params.inner) % params.reduce;
  let o = idx / (params.inner * params.reduce);
  let j = o * params.inner + i;
  dx[idx] = select(0.0, g[j], u32(arg[j]) == r);
}
