// Adds a bias row in place to the [rows, cols] output of the linear layer's GEMM.
//! WG = 256
struct Params { n: u32, cols: u32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  y[i] += bias[i % params.cols];
}
