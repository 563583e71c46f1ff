// Batch norm, eval mode: the per-channel statistics from the running buffers, in the layout
// batchnorm_reduce writes (one group), so the apply and backward passes serve both modes.
//! WG = 64
struct Params { C: u32, eps: f32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> runningMean: array<f32>;
@group(0) @binding(4) var<storage, read> runningVar: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<vec4<f32>>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.C) { return; }
  let mean = runningMean[c];
  let invstd = 1.0 / sqrt(runningVar[c] + params.eps);
  let scale = weight[c] * invstd;
  stats[c] = vec4<f32>(mean, invstd, scale, bias[c] - mean * scale);
}
