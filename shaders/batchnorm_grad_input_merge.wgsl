// Batch norm backward, second and last pass for large channels on GPUs: the input-gradient pass
// that adds up the chunk sums itself, sparing batchnorm_grad_reduce's dispatch. Workgroup
// (slice, c, g) covers WG blocks of group g of channel c (lib/bn_blocks.wgsl). Its invocation 0
// adds the group's chunk partials of batchnorm_grad_stats in batchnorm_grad_reduce's fixed
// order (the same function, so every workgroup of the group gets the same coefficients) and the
// workgroup writes dx (and dres with RESIDUAL). The first slice of group 0 also writes the
// channel's weight and bias gradients (added to dweight / dbias with ACCUMULATE).
//! T = f32
//! ITEMS = 16
//! RELU = false
//! DY2 = false
//! RESIDUAL = false
//! ACCUMULATE = false
//! WG = 256
//#include "lib/bn_blocks.wgsl"
@group(0) @binding(1) var<storage, read> dy: array<$T>;
@group(0) @binding(2) var<storage, read> x: array<$T>;
// The forward output (for the ReLU mask); any buffer of x's size when RELU is false.
@group(0) @binding(3) var<storage, read> y: array<$T>;
@group(0) @binding(4) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<$T>;
// The second gradient term; any buffer of x's size when DY2 is false.
@group(0) @binding(6) var<storage, read> dy2: array<$T>;
// The shortcut's gradient; a small stand-in when RESIDUAL is false (never written then).
@group(0) @binding(7) var<storage, read_write> dres: array<$T>;
@group(0) @binding(8) var<storage, read> weight: array<f32>;
@group(0) @binding(9) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(11) var<storage, read_write> dbias: array<f32>;
//#include "lib/bn_grad_dz.wgsl"
//#include "lib/bn_grad_input_block.wgsl"
//#include "lib/bn_grad_coef.wgsl"
//#include "lib/bn_grad_partials.wgsl"

var<workgroup> groupCoef: vec4<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let c = wid.y;
  let g = wid.z;
  if (t == 0u) {
    groupCoef = group_grad(c, g).coef;
    if (wid.x == 0u && g == 0u) {
      var dw = 0.0;
      var db = 0.0;
      for (var h = 0u; h < params.G; h++) {
        let r = group_grad(c, h);
        dw += r.dw;
        db += r.db;
      }
      write_param_grads(c, dw, db);
    }
  }
  let k = workgroupUniformLoad(&groupCoef);
  let i = wid.x * $WGu + t;
  if (i < params.per * params.blocks) { grad_input_block(channel_block(g, c, i), k); }
}
