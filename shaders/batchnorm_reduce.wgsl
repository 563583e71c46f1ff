// Batch norm, training forward, pass 2: one invocation per channel merges the chunk (mean, M2)
// pairs of batchnorm_stats group by group (Chan et al.'s parallel update, in a fixed order, so
// the result is deterministic), writes per (group, channel) the statistics the other passes
// use, and updates the running statistics in place.
//
// Running statistics with G groups: each is moved towards the MEAN over groups of the group's
// batch mean and of its unbiased variance. That is what averaging the buffers of G devices
// that each ran plain BN on their share of the batch gives (MoCo / DenseCL shuffle-BN), and
// for G = 1 it is PyTorch's update.
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

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.C) { return; }
  var meanSum = 0.0;
  var varSum = 0.0;
  for (var g = 0u; g < params.G; g++) {
    var n = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var s = g * params.per; s < (g + 1u) * params.per; s++) {
      let base = (s * params.C + c) * params.chunks;
      for (var k = 0u; k < params.chunks; k++) {
        let cnt = f32(min(params.chunk, params.hw - k * params.chunk));
        let pm = part[base + k];
        let tot = n + cnt;
        let d = pm.x - mean;
        mean += d * (cnt / tot);
        m2 += pm.y + d * d * (n / tot) * cnt;
        n = tot;
      }
    }
    let invstd = 1.0 / sqrt(m2 / n + params.eps);
    let scale = weight[c] * invstd;
    stats[g * params.C + c] = vec4<f32>(mean, invstd, scale, bias[c] - mean * scale);
    meanSum += mean;
    varSum += m2 / (n - 1.0);
  }
  let m = params.momentum;
  let G = f32(params.G);
  runningMean[c] = (1.0 - m) * runningMean[c] + m * (meanSum / G);
  runningVar[c] = (1.0 - m) * runningVar[c] + m * (varSum / G);
}
