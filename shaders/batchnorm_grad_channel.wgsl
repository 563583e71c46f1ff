// Batch norm backward, the sums in one pass for channels of modest size: one workgroup per
// channel does what batchnorm_grad_stats and batchnorm_grad_reduce do in two dispatches. Per
// group, each invocation sums dz and dz * (x - mean) over chunks of the group's planes (dz the
// incoming gradient, of two terms with DY2, masked by y > 0 with RELU), the workgroup adds its
// invocations' sums in invocation order (deterministic), and invocation 0 writes the coefficients
// of dx = a * dz + b * (x - mean) + d and, after the last group, the weight and bias gradients
// (added to dweight / dbias with ACCUMULATE; lib/bn_grad_coef.wgsl).
//! T = f32
//! HSUM = v
//! RELU = false
//! DY2 = false
//! ACCUMULATE = false
//! WG = 64
struct Params {
  C: u32, G: u32, per: u32, hw: u32,
  chunk: u32, chunks: u32, count: f32, train: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<$T>;
@group(0) @binding(2) var<storage, read> x: array<$T>;
// The forward output (for the ReLU mask); any buffer of x's size when RELU is false.
@group(0) @binding(3) var<storage, read> y: array<$T>;
// The second gradient term; any buffer of x's size when DY2 is false.
@group(0) @binding(4) var<storage, read> dy2: array<$T>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> coef: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(9) var<storage, read_write> dbias: array<f32>;

var<workgroup> acc: array<vec2<f32>, $WG>;

fn hsum(v: $T) -> f32 { return $HSUM; }
//#include "lib/bn_grad_dz.wgsl"
//#include "lib/bn_grad_coef.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let items = params.per * params.chunks;
  var dw = 0.0;
  var db = 0.0;
  for (var g = 0u; g < params.G; g++) {
    let mean = $T(stats[g * params.C + c].x);
    var s = $T(0.0);
    var sx = $T(0.0);
    for (var i = t; i < items; i += $WGu) {
      let plane = (g * params.per + i / params.chunks) * params.C + c;
      let r0 = plane * params.hw + (i % params.chunks) * params.chunk;
      let r1 = min(r0 + params.chunk, (plane + 1u) * params.hw);
      for (var r = r0; r < r1; r++) {
        let dz = grad_dz(r);
        s += dz;
        sx += dz * (x[r] - mean);
      }
    }
    acc[t] = vec2<f32>(hsum(s), hsum(sx));
    workgroupBarrier();
    if (t == 0u) {
      var tot = acc[0];
      for (var j = 1u; j < $WGu; j++) { tot += acc[j]; }
      let r = grad_coef(c, g, tot);
      coef[g * params.C + c] = r.coef;
      dw += r.dw;
      db += r.db;
    }
    // acc is rewritten by the next group.
    workgroupBarrier();
  }
  if (t == 0u) { write_param_grads(c, dw, db); }
}
