// Batch norm, training forward, statistics in one pass for channels of modest size: one
// workgroup per channel does what batchnorm_stats and batchnorm_reduce do in two dispatches.
// Per group, each invocation takes chunks of the group's planes (the cut and the shifted
// one-read (mean, M2) of batchnorm_stats), merges them with Chan's update, and the workgroup
// merges its invocations' results in invocation order (deterministic). Invocation 0 writes the
// (group, channel) statistics and, after the last group, the running update (the rule of
// batchnorm_reduce: the mean over groups of each group's mean and unbiased variance).
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

/** Chan et al.'s merge of two (count, mean, M2) summaries. */
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (b.x == 0.0) { return a; }
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x / n) * b.x);
}

@compute @workgroup_size($WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let items = params.per * params.chunks;
  var meanSum = 0.0;
  var varSum = 0.0;
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
      let invstd = 1.0 / sqrt(r.z / r.x + params.eps);
      let scale = weight[c] * invstd;
      stats[g * params.C + c] = vec4<f32>(r.y, invstd, scale, bias[c] - r.y * scale);
      meanSum += r.y;
      varSum += r.z / (r.x - 1.0);
    }
    // acc is rewritten by the next group.
    workgroupBarrier();
  }
  if (t == 0u) {
    let m = params.momentum;
    let G = f32(params.G);
    runningMean[c] = (1.0 - m) * runningMean[c] + m * (meanSum / G);
    runningVar[c] = (1.0 - m) * runningVar[c] + m * (varSum / G);
  }
}
