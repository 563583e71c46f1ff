enable subgroups;
// Batched C[b] = op(A[b]) * op(B[b]) for 8-wide subgroups (Mesa lavapipe on AVX2: the 8
// invocations of a workgroup are the 8 SIMD lanes of one subgroup). On such CPU drivers every
// storage-buffer load is split into one scalar load per lane, so loads, not FLOPs, bound the
// speed. Here each lane loads a single vec4 of op(A) per 4 steps of k and the subgroup shares
// it by broadcast (register shuffles), instead of every lane loading all 8 rows itself.
// A workgroup computes an 8 x 32 block of C; lane l owns columns 4q..4q+3 (q = block*8 + l)
// of 8 rows, kept as two 4x4 matrices whose columns are rows of C.
// Needs K % 4 == 0, N % 4 == 0, and M % 4 == 0 when TRANS_A; strides in multiples of 4.
// CHECKED = false drops the clamps and store guards (M % 8 == 0 and N % 32 == 0).
//! TRANS_A = false
//! TRANS_B = false
//! CHECKED = true
struct Params {
  M: u32, N: u32, K: u32, rowStart: u32,
  strideA: u32, strideB: u32, strideC: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let M = params.M;
  let K4 = params.K / 4u;
  let N4 = params.N / 4u;
  let row0 = params.rowStart + wid.y * 8u;
  let q = wid.x * 8u + lane;
  let baseA = wid.z * (params.strideA / 4u);
  let baseB = wid.z * (params.strideB / 4u);
  // Clamped reads stay in bounds; rows and columns past the edge are computed but never stored.
  var qc = q;
  if ($CHECKED) { qc = min(q, N4 - 1u); }
  // This lane's piece of op(A): row row0+lane along k, or (TRANS_A) 4 rows of A^T's row k.
  var fragA: u32;
  var stepA: u32;
  if ($TRANS_A) {
    var m = row0 + 4u * (lane % 2u);
    if ($CHECKED) { m = min(m, M - 4u); }
    fragA = baseA + (lane / 2u) * (M / 4u) + m / 4u;
    stepA = M;
  } else {
    var m = row0 + lane;
    if ($CHECKED) { m = min(m, M - 1u); }
    fragA = baseA + m * K4;
    stepA = 1u;
  }
  // Four vec4 loads give the 4x4 block of op(B) at rows 4k..4k+3, columns 4q..4q+3.
  var fragB: u32;
  var stepB: u32;
  if ($TRANS_B) {
    fragB = baseB + 4u * qc * K4;
    stepB = 1u;
  } else {
    fragB = baseB + qc;
    stepB = 4u * N4;
  }
  var lo = mat4x4<f32>();
  var hi = mat4x4<f32>();
  for (var k = 0u; k < K4; k++) {
    let a = A[fragA + k * stepA];
    let bp = fragB + k * stepB;
    var b: mat4x4<f32>;
    if ($TRANS_B) {
      b = transpose(mat4x4<f32>(B[bp], B[bp + K4], B[bp + 2u * K4], B[bp + 3u * K4]));
    } else {
      b = mat4x4<f32>(B[bp], B[bp + N4], B[bp + 2u * N4], B[bp + 3u * N4]);
    }
    let t0 = subgroupBroadcast(a, 0u);
    let t1 = subgroupBroadcast(a, 1u);
    let t2 = subgroupBroadcast(a, 2u);
    let t3 = subgroupBroadcast(a, 3u);
    let t4 = subgroupBroadcast(a, 4u);
    let t5 = subgroupBroadcast(a, 5u);
    let t6 = subgroupBroadcast(a, 6u);
    let t7 = subgroupBroadcast(a, 7u);
    // Columns of xlo/xhi: rows 0-3 / 4-7 of op(A) over the 4 values of k.
    var xlo: mat4x4<f32>;
    var xhi: mat4x4<f32>;
    if ($TRANS_A) {
      xlo = transpose(mat4x4<f32>(t0, t2, t4, t6));
      xhi = transpose(mat4x4<f32>(t1, t3, t5, t7));
    } else {
      xlo = mat4x4<f32>(t0, t1, t2, t3);
      xhi = mat4x4<f32>(t4, t5, t6, t7);
    }
    lo += b * xlo;
    hi += b * xhi;
  }
  if ($CHECKED && q >= N4) { return; }
  let out = wid.z * (params.strideC / 4u) + row0 * N4 + q;
  for (var r = 0u; r < 4u; r++) {
    if (!$CHECKED || row0 + r < M) { C[out + r * N4] = lo[r]; }
    if (!$CHECKED || row0 + 4u + r < M) { C[out + (4u + r) * N4] = hi[r]; }
  }
}
