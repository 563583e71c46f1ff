// Batched C[b] = op(A[b]) * op(B[b]) with vec4 loads, for adapters without 8-wide subgroups.
// Each invocation accumulates a 4 x 8 block of C (4 rows, two vec4 column groups 32 columns
// apart, so the 8 invocations of a workgroup read neighbouring vec4s of B) and steps k by 4:
// per step it loads 4 vec4 of op(A) and 8 vec4 of op(B), held as 4x4 matrices, for 128 FMAs.
// On CPU drivers, which split every load into per-lane scalar loads, fewer and wider loads
// are what makes it faster than the scalar kernel (matmul.wgsl).
// Needs K % 4 == 0, N % 4 == 0, and M % 4 == 0 when TRANS_A; strides in multiples of 4.
// CHECKED = false drops the clamps and store guards (M % 4 == 0 and N % 64 == 0).
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

// The 4x4 block of op(B) at rows 4k..4k+3 and columns 4q..4q+3, one row per matrix column.
fn blockB(base: u32, k: u32, q: u32, K4: u32, N4: u32) -> mat4x4<f32> {
  if ($TRANS_B) {
    let p = base + 4u * q * K4 + k;
    return transpose(mat4x4<f32>(B[p], B[p + K4], B[p + 2u * K4], B[p + 3u * K4]));
  }
  let p = base + 4u * k * N4 + q;
  return mat4x4<f32>(B[p], B[p + N4], B[p + 2u * N4], B[p + 3u * N4]);
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = params.M;
  let K4 = params.K / 4u;
  let N4 = params.N / 4u;
  let row0 = params.rowStart + wid.y * 4u;
  let q0 = wid.x * 16u + lid.x;
  let q1 = q0 + 8u;
  let baseA = wid.z * (params.strideA / 4u);
  let baseB = wid.z * (params.strideB / 4u);
  // Clamped reads stay in bounds; rows and columns past the edge are computed but never stored.
  var c0 = q0;
  var c1 = q1;
  var r = array<u32, 4>(row0, row0 + 1u, row0 + 2u, row0 + 3u);
  if ($CHECKED) {
    c0 = min(q0, N4 - 1u);
    c1 = min(q1, N4 - 1u);
    for (var i = 0u; i < 4u; i++) { r[i] = min(r[i], M - 1u); }
  }
  var acc0 = mat4x4<f32>();
  var acc1 = mat4x4<f32>();
  for (var k = 0u; k < K4; k++) {
    // Columns of x: the 4 rows of op(A) over k..k+3.
    var x: mat4x4<f32>;
    if ($TRANS_A) {
      let p = baseA + 4u * k * (M / 4u) + row0 / 4u;
      let s = M / 4u;
      x = transpose(mat4x4<f32>(A[p], A[p + s], A[p + 2u * s], A[p + 3u * s]));
    } else {
      x = mat4x4<f32>(A[baseA + r[0] * K4 + k], A[baseA + r[1] * K4 + k], A[baseA + r[2] * K4 + k], A[baseA + r[3] * K4 + k]);
    }
    acc0 += blockB(baseB, k, c0, K4, N4) * x;
    acc1 += blockB(baseB, k, c1, K4, N4) * x;
  }
  let out = wid.z * (params.strideC / 4u) + row0 * N4;
  for (var i = 0u; i < 4u; i++) {
    if ($CHECKED && row0 + i >= M) { break; }
    if (!$CHECKED || q0 < N4) { C[out + i * N4 + q0] = acc0[i]; }
    if (!$CHECKED || q1 < N4) { C[out + i * N4 + q1] = acc1[i]; }
  }
}
