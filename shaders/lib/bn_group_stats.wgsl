// What batch norm's training forward makes of a (group, channel)'s (count, mean, M2): Chan et
// al.'s merge of two such summaries, the statistics the apply and backward passes read, and the
// running update. Running statistics with G groups move towards the MEAN over groups of each
// group's batch mean and unbiased variance: what averaging the buffers of G devices that each
// ran plain BN on their share of the batch gives (MoCo / DenseCL shuffle-BN); for G = 1 it is
// PyTorch's update. The including shader declares weight, bias, runningMean and runningVar
// (array<f32>) and params with G, eps and momentum.

/** Chan et al.'s merge of two (count, mean, M2) summaries. */
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (b.x == 0.0) { return a; }
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x / n) * b.x);
}

/** (mean, 1 / sqrt(var + eps), scale, shift) of channel c from its (count, mean, M2); y = x * scale + shift. */
fn group_stats(c: u32, r: vec3<f32>) -> vec4<f32> {
  let invstd = 1.0 / sqrt(r.z / r.x + params.eps);
  let scale = weight[c] * invstd;
  return vec4<f32>(r.y, invstd, scale, bias[c] - r.y * scale);
}

/** A group's share of the running update: its mean and unbiased variance, summed over groups by the caller. */
fn running_terms(r: vec3<f32>) -> vec2<f32> {
  return vec2<f32>(r.y, r.z / (r.x - 1.0));
}

/** Moves channel c's running buffers towards the mean over groups of `sums` (running_terms added up). */
fn update_running(c: u32, sums: vec2<f32>) {
  let m = params.momentum;
  let G = f32(params.G);
  runningMean[c] = (1.0 - m) * runningMean[c] + m * (sums.x / G);
  runningVar[c] = (1.0 - m) * runningVar[c] + m * (sums.y / G);
}
