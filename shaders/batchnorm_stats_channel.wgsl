// Batch norm, training forward, statistics in one pass for channels of modest size: one
// workgroup per channel does what batchnorm_stats and batchnorm_reduce do in two dispatches.
// Per group, each invocation takes chunks of the group's planes (the cut and the shifted
// one-read (mean, M2) of batchnorm_stats), merges them with Chan's update, and the workgroup
// merges its invocations' results in invocation order (deterministic). Invocation 0 writes the
// (group, channel) statistics and, after the last group, the running update (lib/bn_group_stats.wgsl).
//! T = f32
//! HSUM = v
//! LANES = 1
//! WG = 64
struct Params {
  C: u32, G: u32, per: u32, hw: u32,
  chunk: u32, chunks: u32, momentum: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> runningVar: array<f32>;
// (mean, 1 / sqrt(var + eps), scale, shift) per (group, channel); y = x * scale + shift.
@group(0) @binding(6) var<storage, read_write> stats: array<vec4<f32>>;

// (count, mean, M2) of each invocation, merged by invocation 0.
var<workgroup> acc: array<vec3<f32>, $WG>;

fn hsum(v: $T) -> f32 { return $HSUM; }
//#include "lib/bn_chunk_moments.wgsl"
//#include "lib/bn_group_stats.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let items = params.per * params.chunks;
  var sums = vec2<f32>(0.0);
  for (var g = 0u; g < params.G; g++) {
    var mine = vec3<f32>(0.0);
    for (var i = t; i < items; i += $WGu) {
      let plane = (g * params.per + i / params.chunks) * params.C + c;
      let r0 = plane * params.hw + (i % params.chunks) * params.chunk;
      let r1 = min(r0 + params.chunk, (plane + 1u) * params.hw);
      mine = merge(mine, chunk_moments(r0, r1));
    }
    acc[t] = mine;
    workgroupBarrier();
    if (t == 0u) {
      var r = acc[0];
      for (var j = 1u; j < $WGu; j++) { r = merge(r, acc[j]); }
      stats[g * params.C + c] = group_stats(c, r);
      sums += running_terms(r);
    }
    // acc is rewritten by the next group.
    workgroupBarrier();
  }
  if (t == 0u) { update_running(c, sums); }
}
