// Batched C[b] = op(A[b]) * op(B[b]) with register tiling: each invocation accumulates a 4x4
// block of C, reading operands straight from global memory (no workgroup memory: barriers are
// expensive on CPU Vulkan drivers). TRANS_A reads A stored as [K, M], TRANS_B B as [N, K].
//! TRANS_A = false
//! TRANS_B = false
struct Params {
  M: u32, N: u32, K: u32, _p0: u32,
  strideA: u32, strideB: u32, strideC: u32, _p1: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

fn readA(base: u32, m: u32, k: u32) -> f32 {
  if (m >= params.M) { return 0.0; }
  if ($TRANS_A) { return A[base + k * params.M + m]; }
  return A[base + m * params.K + k];
}

fn readB(base: u32, k: u32, n: u32) -> f32 {
  if (n >= params.N) { return 0.0; }
  if ($TRANS_B) { return B[base + n * params.K + k]; }
  return B[base + k * params.N + n];
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = (wid.y * 8u + lid.y) * 4u;
  let col0 = (wid.x * 8u + lid.x) * 4u;
  if (row0 >= params.M || col0 >= params.N) { return; }
  let baseA = wid.z * params.strideA;
  let baseB = wid.z * params.strideB;
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < params.K; k++) {
    let b = vec4<f32>(readB(baseB, k, col0), readB(baseB, k, col0 + 1u), readB(baseB, k, col0 + 2u), readB(baseB, k, col0 + 3u));
    acc[0] += readA(baseA, row0, k) * b;
    acc[1] += readA(baseA, row0 + 1u, k) * b;
    acc[2] += readA(baseA, row0 + 2u, k) * b;
    acc[3] += readA(baseA, row0 + 3u, k) * b;
  }
  let baseC = wid.z * params.strideC;
  for (var r = 0u; r < 4u; r++) {
    let m = row0 + r;
    if (m >= params.M) { break; }
    for (var c = 0u; c < 4u; c++) {
      if (col0 + c < params.N) { C[baseC + m * params.N + col0 + c] = acc[r][c]; }
    }
  }
}
