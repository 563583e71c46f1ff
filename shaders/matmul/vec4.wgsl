// Batched C[b] = op(A[b]) * B[b] with vec4 loads of B, for adapters without 8-wide subgroups.
// Each invocation accumulates a 6 x 8 block of C: 6 rows, two vec4 column groups 32 columns
// apart, so the 8 invocations of a workgroup read neighbouring vec4s of B. Per step of k it
// loads 6 scalars of op(A) and 2 vec4 of B for 48 FMAs. CPU drivers split every load into
// per-lane scalar loads, so fewer, wider loads are what makes it faster than matmul.wgsl
// (6 rows measured faster than 4 or 8 on lavapipe). TRANS_A reads A stored as [K, M].
// Needs N % 4 == 0 and a row-major B; strides in multiples of 4.
// CHECKED = false drops the clamps and store guards (M % 6 == 0 and N % 64 == 0).
//! TRANS_A = false
//! CHECKED = true
//#include "lib/gemm_params.wgsl"
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;

const ROWS = 6u;

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = params.M;
  let K = params.K;
  let N4 = params.N / 4u;
  let row0 = params.rowStart + wid.y * ROWS;
  let q0 = wid.x * 16u + lid.x;
  let q1 = q0 + 8u;
  let baseA = wid.z * params.strideA;
  let baseB = wid.z * (params.strideB / 4u);
  // Clamped reads stay in bounds; rows and columns past the edge are computed but never stored.
  var c0 = q0;
  var c1 = q1;
  if ($CHECKED) {
    c0 = min(q0, N4 - 1u);
    c1 = min(q1, N4 - 1u);
  }
  // Where row r of op(A) starts, and the step from one k to the next.
  var rowA: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    var m = row0 + r;
    if ($CHECKED) { m = min(m, M - 1u); }
    if ($TRANS_A) { rowA[r] = baseA + m; } else { rowA[r] = baseA + m * K; }
  }
  var stepA = 1u;
  if ($TRANS_A) { stepA = M; }
  var acc0: array<vec4<f32>, ROWS>;
  var acc1: array<vec4<f32>, ROWS>;
  for (var k = 0u; k < K; k++) {
    let b0 = B[baseB + k * N4 + c0];
    let b1 = B[baseB + k * N4 + c1];
    for (var r = 0u; r < ROWS; r++) {
      let a = vec4<f32>(A[rowA[r] + k * stepA]);
      acc0[r] = fma(a, b0, acc0[r]);
      acc1[r] = fma(a, b1, acc1[r]);
    }
  }
  let out = wid.z * (params.strideC / 4u) + row0 * N4;
  for (var r = 0u; r < ROWS; r++) {
    if ($CHECKED && row0 + r >= M) { break; }
    if (!$CHECKED || q0 < N4) { C[out + r * N4 + q0] = acc0[r]; }
    if (!$CHECKED || q1 < N4) { C[out + r * N4 + q1] = acc1[r]; }
  }
}
