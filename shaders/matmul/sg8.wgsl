enable subgroups;
// Batched C[b] = op(A[b]) * op(B[b]) for 8-wide subgroups (Mesa lavapipe on AVX2: the 8
// invocations of a workgroup are the 8 SIMD lanes of one subgroup). On such CPU drivers every
// storage-buffer load is split into one scalar load per lane, so loads, not FLOPs, bound the
// speed. Here each lane loads two vec4 of op(A) per 4 steps of k and the subgroup shares them
// by broadcast (register shuffles), instead of every lane loading all 16 rows itself.
// A workgroup computes a 16 x 32 block of C; lane l owns columns 4q..4q+3 (q = block*8 + l)
// of 16 rows, kept as four 4x4 matrices whose columns are rows of C. (16 rows measured about
// 25% faster than 8 on lavapipe; 32 rows no faster than 16.)
// Needs K % 4 == 0, N % 4 == 0, and M % 4 == 0 when TRANS_A; strides in multiples of 4.
// CHECKED = false drops the clamps and store guards (M % 16 == 0 and N % 32 == 0).
//! TRANS_A = false
//! TRANS_B = false
//! CHECKED = true
//#include "lib/gemm_params.wgsl"
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;

// Where this lane's vec4 of an 8-row block of op(A) starts (the block's first k step):
// row rb+lane along k, or (TRANS_A) rows rb+4*(lane%2).. of A^T's row lane/2.
fn pieceOfA(baseA: u32, rb: u32, lane: u32) -> u32 {
  let M = params.M;
  if ($TRANS_A) {
    var m = rb + 4u * (lane % 2u);
    if ($CHECKED) { m = min(m, M - 4u); }
    return baseA + (lane / 2u) * (M / 4u) + m / 4u;
  }
  var m = rb + lane;
  if ($CHECKED) { m = min(m, M - 1u); }
  return baseA + m * (params.K / 4u);
}

// Rows 0-3 and 4-7 of an 8-row block of op(A) over 4 values of k, as the columns of two
// matrices, gathered from the 8 lanes' pieces.
fn share(a: vec4<f32>) -> array<mat4x4<f32>, 2> {
  let t0 = subgroupBroadcast(a, 0u);
  let t1 = subgroupBroadcast(a, 1u);
  let t2 = subgroupBroadcast(a, 2u);
  let t3 = subgroupBroadcast(a, 3u);
  let t4 = subgroupBroadcast(a, 4u);
  let t5 = subgroupBroadcast(a, 5u);
  let t6 = subgroupBroadcast(a, 6u);
  let t7 = subgroupBroadcast(a, 7u);
  if ($TRANS_A) {
    return array(transpose(mat4x4<f32>(t0, t2, t4, t6)), transpose(mat4x4<f32>(t1, t3, t5, t7)));
  }
  return array(mat4x4<f32>(t0, t1, t2, t3), mat4x4<f32>(t4, t5, t6, t7));
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let M = params.M;
  let K4 = params.K / 4u;
  let N4 = params.N / 4u;
  let row0 = params.rowStart + wid.y * 16u;
  let q = wid.x * 8u + lane;
  let baseA = wid.z * (params.strideA / 4u);
  let baseB = wid.z * (params.strideB / 4u);
  // Clamped reads stay in bounds; rows and columns past the edge are computed but never stored.
  var qc = q;
  if ($CHECKED) { qc = min(q, N4 - 1u); }
  let pieceA0 = pieceOfA(baseA, row0, lane);
  let pieceA1 = pieceOfA(baseA, row0 + 8u, lane);
  var stepA = 1u;
  if ($TRANS_A) { stepA = M; }
  // Four vec4 loads give the 4x4 block of op(B) at rows 4k..4k+3, columns 4q..4q+3.
  var pieceB = baseB + qc;
  var stepB = 4u * N4;
  if ($TRANS_B) {
    pieceB = baseB + 4u * qc * K4;
    stepB = 1u;
  }
  var acc: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < K4; k++) {
    let bp = pieceB + k * stepB;
    var b: mat4x4<f32>;
    if ($TRANS_B) {
      b = transpose(mat4x4<f32>(B[bp], B[bp + K4], B[bp + 2u * K4], B[bp + 3u * K4]));
    } else {
      b = mat4x4<f32>(B[bp], B[bp + N4], B[bp + 2u * N4], B[bp + 3u * N4]);
    }
    let x0 = share(A[pieceA0 + k * stepA]);
    let x1 = share(A[pieceA1 + k * stepA]);
    acc[0] += b * x0[0];
    acc[1] += b * x0[1];
    acc[2] += b * x1[0];
    acc[3] += b * x1[1];
  }
  if ($CHECKED && q >= N4) { return; }
  let out = wid.z * (params.strideC / 4u) + row0 * N4 + q;
  for (var j = 0u; j < 4u; j++) {
    for (var r = 0u; r < 4u; r++) {
      let row = 4u * j + r;
      if (!$CHECKED || row0 + row < M) { C[out + row * N4] = acc[j][r]; }
    }
  }
}
