// Batch norm backward, pass 1: per chunk of a (sample, channel) plane (the same cut as
// batchnorm_stats), the sums of dz and of dz * (x - mean), where dz is the incoming gradient,
// masked by y > 0 when a ReLU was fused into the forward pass. With DY2 the incoming gradient
// is the sum dy + dy2 of two terms (the output was used twice), added here on read.
//! T = f32
//! HSUM = v
//! RELU = false
//! DY2 = false
//! WG = 64
struct Params { C: u32, per: u32, hw: u32, chunk: u32, chunks: u32, planes: u32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<$T>;
@group(0) @binding(2) var<storage, read> x: array<$T>;
// The forward output (for the ReLU mask); any buffer of x's size when RELU is false.
@group(0) @binding(3) var<storage, read> y: array<$T>;
@group(0) @binding(4) var<storage, read> stats: array<vec4<f32>>;
// The second gradient term; any buffer of x's size when DY2 is false.
@group(0) @binding(5) var<storage, read> dy2: array<$T>;
@group(0) @binding(6) var<storage, read_write> part: array<vec2<f32>>;

fn hsum(v: $T) -> f32 { return $HSUM; }
//#include "lib/bn_grad_dz.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = gid.x + gid.y * nwg.x * $WGu;
  if (p >= params.planes * params.chunks) { return; }
  let plane = p / params.chunks;
  let c = plane % params.C;
  let g = plane / (params.C * params.per);
  let mean = $T(stats[g * params.C + c].x);
  let r0 = plane * params.hw + (p - plane * params.chunks) * params.chunk;
  let r1 = min(r0 + params.chunk, (plane + 1u) * params.hw);
  var s = $T(0.0);
  var sx = $T(0.0);
  for (var r = r0; r < r1; r++) {
    let dz = grad_dz(r);
    s += dz;
    sx += dz * (x[r] - mean);
  }
  part[p] = vec2<f32>(hsum(s), hsum(sx));
}
