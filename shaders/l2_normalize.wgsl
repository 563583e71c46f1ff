// y = x / max(||x||, eps) along the middle axis of an [outer, R, inner] view, one invocation
// per (outer, inner) line: the squared norm in one pass over R, the scaled copy in a second.
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, eps: f32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
//#include "lib/row_lines.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= line_count()) { return; }
  let base = line_start(idx);
  var ss = 0.0;
  for (var r = 0u; r < params.reduce; r++) {
    let v = x[base + r * params.inner];
    ss += v * v;
  }
  let inv = 1.0 / max(sqrt(ss), params.eps);
  for (var r = 0u; r < params.reduce; r++) {
    let at = base + r * params.inner;
    y[at] = x[at] * inv;
  }
}
