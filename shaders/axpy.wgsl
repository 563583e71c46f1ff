// In place: y = beta * y + alpha * x. Gradient accumulation (beta = alpha = 1) and the
// momentum encoder's EMA (beta = m, alpha = 1 - m) over one flat parameter buffer.
//! WG = 256
struct Params { n: u32, alpha: f32, beta: f32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  y[i] = params.beta * y[i] + params.alpha * x[i];
}
