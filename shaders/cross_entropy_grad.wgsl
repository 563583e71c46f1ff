// Backward of cross-entropy: dx[n, c] = g[n * gStride] * scale * (softmax(x[n])[c] - [c == label]),
// with gStride 0 for a reduced (scalar) loss and scale 1/N for the mean.
//! WG = 256
struct Params { rows: u32, classes: u32, gStride: u32, scale: f32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.rows * params.classes) { return; }
  let n = i / params.classes;
  let c = i % params.classes;
  let p = exp(x[i] - lse[n]);
  let hit = select(0.0, 1.0, labels[n] == i32(c));
  dx[i] = g[n * params.gStride] * params.scale * (p - hit);
}
