// Adds bias[o] to y[n, o, p] in place (the bias of a 1x1 convolution run as a plain GEMM).
struct Params { n: u32, HW: u32, O: u32, _p0: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= params.n) { return; }
  y[idx] += bias[(idx / params.HW) % params.O];
}
