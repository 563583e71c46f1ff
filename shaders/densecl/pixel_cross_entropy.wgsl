// Per-pixel cross-entropy of logits [N, C, H, W] (classes strided by H*W, no transpose) against
// labels [N, H, W]. Writes, for pixel p of P = N*H*W, loss[p] = lse - x[label] and loss[P + p] = 1
// (0 and 0 where the label is ignoreIndex), so one reduction gives the loss sum and the count.
// The log-sum-exp is kept for the backward pass. A label outside [0, C) that is not ignored
// gives a NaN loss (passed in `invalid`: WGSL has no NaN constant).
//! WG = 256
struct Params { HW: u32, classes: u32, pixels: u32, ignoreIndex: i32, invalid: f32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = gid.x;
  if (s >= params.HW) { return; }
  let n = gid.y;
  let p = n * params.HW + s;
  let base = n * params.classes * params.HW + s;
  let HW = params.HW;
  var m = x[base];
  for (var c = 1u; c < params.classes; c++) { m = max(m, x[base + c * HW]); }
  var sum = 0.0;
  for (var c = 0u; c < params.classes; c++) { sum += exp(x[base + c * HW] - m); }
  let l = m + log(sum);
  lse[p] = l;
  let label = labels[p];
  if (label == params.ignoreIndex) {
    loss[p] = 0.0;
    loss[params.pixels + p] = 0.0;
    return;
  }
  loss[params.pixels + p] = 1.0;
  if (label < 0 || u32(label) >= params.classes) {
    loss[p] = params.invalid;
    return;
  }
  loss[p] = l - x[base + u32(label) * HW];
}
