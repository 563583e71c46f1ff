// The (count, mean, M2) of group g of channel c from batchnorm_stats's chunk partials, merged
// with Chan et al.'s update in one fixed order (samples of the group, then chunks of a plane),
// so that every caller (the reduce pass, each workgroup of the merging apply pass) gets the
// same bits. (Not lib/bn_group_stats.wgsl's merge: its M2 sum associates differently, and the
// three-pass results keep their bits.) The including shader declares part:
// array<vec2<f32>> (chunk mean, M2) and params with C, per, chunks, chunk and hw (chunk and
// plane lengths in units of the input type, LANES values each).
fn group_moments(c: u32, g: u32) -> vec3<f32> {
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var s = g * params.per; s < (g + 1u) * params.per; s++) {
    let base = (s * params.C + c) * params.chunks;
    for (var k = 0u; k < params.chunks; k++) {
      let count = f32(min(params.chunk, params.hw - k * params.chunk) * $LANESu);
      let pm = part[base + k];
      let tot = n + count;
      let d = pm.x - mean;
      mean += d * (count / tot);
      m2 += pm.y + d * d * (n / tot) * count;
      n = tot;
    }
  }
  return vec3<f32>(n, mean, m2);
}
