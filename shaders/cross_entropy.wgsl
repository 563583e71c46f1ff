// Per-row cross-entropy of logits [N, C] with integer labels: loss[n] = lse(x[n]) - x[n, label].
// The log-sum-exp is kept for the backward pass. A label outside [0, C) gives a NaN loss, so a
// bad label shows up in the loss instead of silently reading another row (the host passes the
// NaN in `invalid`: WGSL has no NaN constant).
//! WG = 256
struct Params { rows: u32, classes: u32, invalid: f32, _p0: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * $WGu;
  if (n >= params.rows) { return; }
  let base = n * params.classes;
  var m = x[base];
  for (var c = 1u; c < params.classes; c++) { m = max(m, x[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < params.classes; c++) { s += exp(x[base + c] - m); }
  let l = m + log(s);
  lse[n] = l;
  let label = u32(labels[n]);
  if (label >= params.classes) {
    loss[n] = params.invalid;
    return;
  }
  loss[n] = l - x[base + label];
}
