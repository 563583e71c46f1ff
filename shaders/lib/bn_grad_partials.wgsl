// Group g of channel c's backward sums (sum(dz), sum(dz * (x - mean))) from
// batchnorm_grad_stats's chunk partials, added in one fixed order (samples of the group, then
// chunks), and what they give (lib/bn_grad_coef.wgsl), so that every caller gets the same bits.
// The including shader declares part: array<vec2<f32>> and params with C, per and chunks.
fn group_grad(c: u32, g: u32) -> GroupGrad {
  var sums = vec2<f32>(0.0);
  for (var n = g * params.per; n < (g + 1u) * params.per; n++) {
    let base = (n * params.C + c) * params.chunks;
    for (var k = 0u; k < params.chunks; k++) { sums += part[base + k]; }
  }
  return grad_coef(c, g, sums);
}
