// y = EXPR(v) elementwise; alpha and beta are the scalar operands of the scalar forms.
//! EXPR = v
//! WG = 256
struct Params { n: u32, alpha: f32, beta: f32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn op(v: f32, alpha: f32, beta: f32) -> f32 { return $EXPR; }

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  y[i] = op(x[i], params.alpha, params.beta);
}
