// Benchmark baseline: C = A * B (row-major [M, K] x [K, N]) with one output per invocation and
// no tiling, the simplest correct WebGPU matmul.
struct Params {
  M: u32, N: u32, K: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = gid.y;
  let n = gid.x;
  if (m >= params.M || n >= params.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < params.K; k++) {
    acc += A[m * params.K + k] * B[k * params.N + n];
  }
  C[m * params.N + n] = acc;
}
