// Batch norm, training forward, second and last pass for large channels on GPUs: the apply pass
// that merges the statistics itself, sparing batchnorm_reduce's dispatch. Workgroup
// (slice, c, g) covers WG blocks of group g of channel c (lib/bn_blocks.wgsl). Its invocation 0
// merges the group's chunk partials of batchnorm_stats in batchnorm_reduce's fixed order (the
// same function, so every workgroup of the group gets the same bits, and the reduce pass's);
// the workgroup applies them. The first slice of each group saves the statistics for the
// backward, and the first slice of group 0 also moves the channel's running buffers.
//! T = f32
//! LANES = 1
//! ITEMS = 16
//! RELU = false
//! RESIDUAL = false
//! WG = 256
//#include "lib/bn_blocks.wgsl"
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read> part: array<vec2<f32>>;
// The shortcut added before the ReLU; any buffer of x's size when RESIDUAL is false.
@group(0) @binding(3) var<storage, read> res: array<$T>;
@group(0) @binding(4) var<storage, read_write> y: array<$T>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(8) var<storage, read_write> runningVar: array<f32>;
// (mean, 1 / sqrt(var + eps), scale, shift) per (group, channel), for the backward.
@group(0) @binding(9) var<storage, read_write> stats: array<vec4<f32>>;
//#include "lib/bn_group_stats.wgsl"
//#include "lib/bn_moment_partials.wgsl"
//#include "lib/bn_apply_block.wgsl"

var<workgroup> groupStats: vec4<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let c = wid.y;
  let g = wid.z;
  if (t == 0u) {
    let st = group_stats(c, group_moments(c, g));
    groupStats = st;
    if (wid.x == 0u) {
      stats[g * params.C + c] = st;
      if (g == 0u) {
        var sums = vec2<f32>(0.0);
        for (var h = 0u; h < params.G; h++) { sums += running_terms(group_moments(c, h)); }
        update_running(c, sums);
      }
    }
  }
  let st = workgroupUniformLoad(&groupStats);
  let i = wid.x * $WGu + t;
  if (i < params.per * params.blocks) { apply_block(channel_block(g, c, i), st); }
}
