// Batch norm backward, last pass: dx = a * dz + b * (x - mean) + d per element, with the
// (group, channel) coefficients of batchnorm_grad_reduce or batchnorm_grad_channel and dz the
// ReLU-masked gradient (of dy + dy2 with DY2). With RESIDUAL, dz is also the gradient of the
// forward's shortcut and is written to dres. Blocked like batchnorm_apply.
//! T = f32
//! ITEMS = 16
//! RELU = false
//! DY2 = false
//! RESIDUAL = false
//! WG = 256
//#include "lib/bn_blocks.wgsl"
@group(0) @binding(1) var<storage, read> dy: array<$T>;
@group(0) @binding(2) var<storage, read> x: array<$T>;
// The forward output (for the ReLU mask); any buffer of x's size when RELU is false.
@group(0) @binding(3) var<storage, read> y: array<$T>;
@group(0) @binding(4) var<storage, read> coef: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<$T>;
// The second gradient term; any buffer of x's size when DY2 is false.
@group(0) @binding(6) var<storage, read> dy2: array<$T>;
// The shortcut's gradient; a small stand-in when RESIDUAL is false (never written then).
@group(0) @binding(7) var<storage, read_write> dres: array<$T>;
//#include "lib/bn_grad_dz.wgsl"
//#include "lib/bn_grad_input_block.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * $WGu;
  if (t >= params.total) { return; }
  let b = block_at(t);
  grad_input_block(b, coef[b.coef]);
}
