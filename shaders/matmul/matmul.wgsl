// Batched C[b] = op(A[b]) * op(B[b]) for any shape: the fallback when the vec4 kernels'
// divisibility rules do not hold. Register tiling: each invocation accumulates a 4x4 block of
// C, reading operands straight from global memory (no workgroup memory: barriers are
// expensive on CPU Vulkan drivers). TRANS_A reads A stored as [K, M], TRANS_B B as [N, K].
// Reads are clamped into the matrix instead of branching, so control flow stays uniform
// across the SIMD lanes of CPU drivers; rows and columns past the edge are never stored.
//! TRANS_A = false
//! TRANS_B = false
//#include "lib/gemm_params.wgsl"
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

fn readA(base: u32, m: u32, k: u32) -> f32 {
  if ($TRANS_A) { return A[base + k * params.M + m]; }
  return A[base + m * params.K + k];
}

fn readB(base: u32, k: u32, n: u32) -> f32 {
  if ($TRANS_B) { return B[base + n * params.K + k]; }
  return B[base + k * params.N + n];
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = params.rowStart + (wid.y * 8u + lid.y) * 4u;
  let col0 = (wid.x * 8u + lid.x) * 4u;
  let baseA = wid.z * params.strideA;
  let baseB = wid.z * params.strideB;
  let lastM = params.M - 1u;
  let lastN = params.N - 1u;
  let m = vec4<u32>(min(row0, lastM), min(row0 + 1u, lastM), min(row0 + 2u, lastM), min(row0 + 3u, lastM));
  let n = vec4<u32>(min(col0, lastN), min(col0 + 1u, lastN), min(col0 + 2u, lastN), min(col0 + 3u, lastN));
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < params.K; k++) {
    let b = vec4<f32>(readB(baseB, k, n.x), readB(baseB, k, n.y), readB(baseB, k, n.z), readB(baseB, k, n.w));
    acc[0] = fma(vec4<f32>(readA(baseA, m.x, k)), b, acc[0]);
    acc[1] = fma(vec4<f32>(readA(baseA, m.y, k)), b, acc[1]);
    acc[2] = fma(vec4<f32>(readA(baseA, m.z, k)), b, acc[2]);
    acc[3] = fma(vec4<f32>(readA(baseA, m.w, k)), b, acc[3]);
  }
  let baseC = wid.z * params.strideC;
  for (var r = 0u; r < 4u; r++) {
    if (row0 + r >= params.M) { break; }
    for (var c = 0u; c < 4u; c++) {
      if (col0 + c < params.N) { C[baseC + (row0 + r) * params.N + col0 + c] = acc[r][c]; }
    }
  }
}
