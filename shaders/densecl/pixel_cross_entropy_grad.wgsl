// Backward of the pixel cross-entropy: dx[n, c, s] = g * scale * (softmax[c] - [c == label]) at
// counted pixels and 0 at ignored ones; scale = 1 / max(count, 1) for the mean (count read from
// the forward's sums, so nothing is read back to the host), 1 for the sum. Grid: x over the
// pixels of an image, y over classes, z over the batch.
//! WG = 256
struct Params { HW: u32, classes: u32, ignoreIndex: i32, mean: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> sums: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = gid.x;
  if (s >= params.HW) { return; }
  let c = gid.y;
  let n = gid.z;
  let p = n * params.HW + s;
  let i = (n * params.classes + c) * params.HW + s;
  let label = labels[p];
  if (label == params.ignoreIndex) {
    dx[i] = 0.0;
    return;
  }
  let scale = select(1.0, 1.0 / max(sums[1], 1.0), params.mean == 1u);
  let hit = select(0.0, 1.0, label == i32(c));
  dx[i] = g[0] * scale * (exp(x[i] - lse[p]) - hit);
}
