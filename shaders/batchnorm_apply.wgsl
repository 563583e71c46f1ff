// Batch norm, last forward pass: y = x * scale + shift with the (group, channel) statistics,
// plus an optional residual (a ResNet block's shortcut), then an optional ReLU, per block of
// ITEMS elements of type T (lib/bn_blocks.wgsl).
//! T = f32
//! ITEMS = 16
//! RELU = false
//! RESIDUAL = false
//! WG = 256
//#include "lib/bn_blocks.wgsl"
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read> stats: array<vec4<f32>>;
// The shortcut added before the ReLU; any buffer of x's size when RESIDUAL is false.
@group(0) @binding(3) var<storage, read> res: array<$T>;
@group(0) @binding(4) var<storage, read_write> y: array<$T>;
//#include "lib/bn_apply_block.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * $WGu;
  if (t >= params.total) { return; }
  let b = block_at(t);
  apply_block(b, stats[b.coef]);
}
