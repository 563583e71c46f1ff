// Backward of log_softmax from its output y: dx = g - exp(y) * sum(g) along the line.
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
//#include "lib/row_lines.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= line_count()) { return; }
  let base = line_start(idx);
  var gs = 0.0;
  for (var r = 0u; r < params.reduce; r++) { gs += g[base + r * params.inner]; }
  for (var r = 0u; r < params.reduce; r++) {
    let at = base + r * params.inner;
    dx[at] = g[at] - exp(y[at]) * gs;
  }
}
