// Batch norm, training forward, pass 2 of three: one invocation per channel merges the chunk
// (mean, M2) pairs of batchnorm_stats group by group (lib/bn_moment_partials.wgsl, in a fixed
// order, so the result is deterministic), writes per (group, channel) the statistics the other
// passes use, and updates the running statistics in place (lib/bn_group_stats.wgsl).
//! LANES = 1
//! WG = 64
struct Params {
  C: u32, G: u32, per: u32, chunks: u32,
  hw: u32, chunk: u32, momentum: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> runningVar: array<f32>;
// (mean, 1 / sqrt(var + eps), scale, shift) per (group, channel); y = x * scale + shift.
@group(0) @binding(6) var<storage, read_write> stats: array<vec4<f32>>;
//#include "lib/bn_group_stats.wgsl"
//#include "lib/bn_moment_partials.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.C) { return; }
  var sums = vec2<f32>(0.0);
  for (var g = 0u; g < params.G; g++) {
    let r = group_moments(c, g);
    stats[g * params.C + c] = group_stats(c, r);
    sums += running_terms(r);
  }
  update_running(c, sums);
}
