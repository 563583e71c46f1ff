// Batch norm backward, pass 2: one invocation per channel sums the chunk partials of each group
// in a fixed order and writes the gradients of weight and bias, and per (group, channel) the
// coefficients of dx = a * dz + b * (x - mean) + d. With batch statistics over m values:
//   dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)),  xhat = (x - mean) * invstd;
// with running statistics (eval) the statistics are constants and dx = gamma * invstd * dz.
// With ACCUMULATE the weight and bias gradients are added to what dweight / dbias hold (the
// parameters' .grad), sparing a separate accumulation.
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

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.C) { return; }
  var dw = 0.0;
  var db = 0.0;
  for (var g = 0u; g < params.G; g++) {
    var s = 0.0;
    var sx = 0.0;
    for (var n = g * params.per; n < (g + 1u) * params.per; n++) {
      let base = (n * params.C + c) * params.chunks;
      for (var k = 0u; k < params.chunks; k++) {
        let v = part[base + k];
        s += v.x;
        sx += v.y;
      }
    }
    let st = stats[g * params.C + c];
    let invstd = st.y;
    let sxhat = sx * invstd;
    let a = weight[c] * invstd;
    if (params.train != 0u) {
      let b = -a * invstd * sxhat / params.count;
      coef[g * params.C + c] = vec4<f32>(a, b, st.x, -a * s / params.count);
    } else {
      coef[g * params.C + c] = vec4<f32>(a, 0.0, st.x, 0.0);
    }
    dw += sxhat;
    db += s;
  }
  if ($ACCUMULATE) {
    dw += dweight[c];
    db += dbias[c];
  }
  dweight[c] = dw;
  dbias[c] = db;
}
