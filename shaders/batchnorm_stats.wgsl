// Batch norm, training forward, pass 1. Each (sample, channel) plane of HW values is cut into
// chunks of `chunk` elements of type T (f32, or vec4 when HW divides by 4, LANES values each).
// One invocation per chunk writes the chunk's mean and M2 (sum of squared deviations from that
// mean), read once about a shift (lib/bn_chunk_moments.wgsl), never like E[x^2] - E[x]^2 on a
// large mean. A chunk is at most one plane; batchnorm_reduce merges the chunks of a channel with
// Chan's update. (Two passes over each chunk were twice as slow on lavapipe.)
//! T = f32
//! HSUM = v
//! LANES = 1
//! WG = 64
struct Params { planes: u32, hw: u32, chunk: u32, chunks: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read_write> part: array<vec2<f32>>;

fn hsum(v: $T) -> f32 { return $HSUM; }
//#include "lib/bn_chunk_moments.wgsl"

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = gid.x + gid.y * nwg.x * $WGu;
  if (p >= params.planes * params.chunks) { return; }
  let plane = p / params.chunks;
  let r0 = plane * params.hw + (p - plane * params.chunks) * params.chunk;
  let r1 = min(r0 + params.chunk, (plane + 1u) * params.hw);
  part[p] = chunk_moments(r0, r1).yz;
}
