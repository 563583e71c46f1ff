// y = x - logsumexp(x) along the middle axis of an [outer, R, inner] view, one invocation per
// line: the max, then the sum of exp(x - max), then the shifted write (stable for large x).
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
//#include "lib/row_lines.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= line_count()) { return; }
  let base = line_start(idx);
  var m = x[base];
  for (var r = 1u; r < params.reduce; r++) { m = max(m, x[base + r * params.inner]); }
  var s = 0.0;
  for (var r = 0u; r < params.reduce; r++) { s += exp(x[base + r * params.inner] - m); }
  let lse = m + log(s);
  for (var r = 0u; r < params.reduce; r++) {
    let at = base + r * params.inner;
    y[at] = x[at] - lse;
  }
}
