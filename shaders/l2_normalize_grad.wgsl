// Backward of y = x / max(||x||, eps), recomputing the norm n from x instead of storing it:
//   n >= eps: dx = (g - x * <g, x> / n^2) / n   (the projection off the direction of x)
//   n <  eps: dx = g / eps                       (the clamp makes the denominator constant)
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, eps: f32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
//#include "lib/row_lines.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= line_count()) { return; }
  let base = line_start(idx);
  var ss = 0.0;
  var dot = 0.0;
  for (var r = 0u; r < params.reduce; r++) {
    let at = base + r * params.inner;
    ss += x[at] * x[at];
    dot += g[at] * x[at];
  }
  let n = sqrt(ss);
  var inv = 1.0 / params.eps;
  var proj = 0.0;
  if (n >= params.eps) {
    inv = 1.0 / n;
    proj = dot / ss;
  }
  for (var r = 0u; r < params.reduce; r++) {
    let at = base + r * params.inner;
    dx[at] = (g[at] - x[at] * proj) * inv;
  }
}
