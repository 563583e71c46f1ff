// y = f32(x) for integer tensors (indices, labels, counts) and f16 tensors.
//! WG = 256
//! T = i32
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  y[i] = f32(x[i]);
}
