// Batch norm backward, pass 2 of three: one invocation per channel adds the chunk partials of
// each group in a fixed order (lib/bn_grad_partials.wgsl) and writes per (group, channel) the
// coefficients of dx = a * dz + b * (x - mean) + d, and the gradients of weight and bias
// (added to what dweight / dbias hold with ACCUMULATE: the parameters' .grad, sparing a
// separate accumulation; lib/bn_grad_coef.wgsl).
//! ACCUMULATE = false
//! WG = 64
struct Params { C: u32, G: u32, per: u32, chunks: u32, count: f32, train: u32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> coef: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;
//#include "lib/bn_grad_coef.wgsl"
//#include "lib/bn_grad_partials.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.C) { return; }
  var dw = 0.0;
  var db = 0.0;
  for (var g = 0u; g < params.G; g++) {
    let r = group_grad(c, g);
    coef[g * params.C + c] = r.coef;
    dw += r.dw;
    db += r.db;
  }
  write_param_grads(c, dw, db);
}
