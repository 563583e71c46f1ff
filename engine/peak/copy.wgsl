// Streaming copy for the machine's peak memory bandwidth: one vec4 read and one vec4 write per
// invocation, consecutive invocations on consecutive addresses. Bytes = 2 * 16 * n.
//! WG = 256
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  dst[i] = src[i];
}
