// Batched C[b] = op(A[b]) * op(B[b]) on subgroup matrices (cooperative matrices: tensor cores on
// NVIDIA), f16 operands, f32 results. Dawn's experimental WGSL extension; the device must offer a
// GPUSubgroupMatrixConfig of f16 components and f32 results with SM x SN results over SK, and
// subgroups of exactly SG invocations (engine/ops/subgroup-matrix.ts picks them and checks the
// kernel against the tiled one before first use: nothing here ran where it was written).
// A workgroup of WM x WN subgroups owns a BM x BN block of C (BM = WM*FM*SM, BN = WN*FN*SN); each
// subgroup FM x FN result matrices. K streams through workgroup memory in slices of BK = KS*SK:
// every invocation copies elements of both operand tiles in the operand's own layout (so global
// reads are contiguous), zero outside the matrix, and the matrix loads read the tile row- or
// column-major to match (A [m][k] or, transposed, [k][m]; B [k][n] or, transposed, [n][k]).
// The results go through workgroup memory to C, with bound checks and the UNSCALE factor
// (as in tiled.wgsl).
// The offsets of the matrix loads depend on the subgroup, which is uniform within it but not
// across the workgroup, hence the uniformity diagnostic is off (every call is in uniform control
// flow: loop bounds are constants or uniforms).
//! SM = 16
//! SN = 16
//! SK = 16
//! SG = 32
//! WM = 2
//! WN = 2
//! FM = 2
//! FN = 2
//! KS = 2
//! TRANS_A = false
//! TRANS_B = false
//! UNSCALE = false
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
//#include "lib/gemm_params.wgsl"
@group(0) @binding(1) var<storage, read> A: array<f16>;
@group(0) @binding(2) var<storage, read> B: array<f16>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
//#include "lib/out_scale.wgsl"

const SM: u32 = $SM;
const SN: u32 = $SN;
const SK: u32 = $SK;
const FM: u32 = $FM;
const FN: u32 = $FN;
const KS: u32 = $KS;
const BM: u32 = $WM * FM * SM;
const BN: u32 = $WN * FN * SN;
const BK: u32 = KS * SK;
const THREADS: u32 = $WM * $WN * $SG;

alias Left = subgroup_matrix_left<f16, SK, SM>;
alias Right = subgroup_matrix_right<f16, SN, SK>;
alias Result = subgroup_matrix_result<f32, SN, SM>;

var<workgroup> As: array<f16, BM * BK>;
var<workgroup> Bs: array<f16, BK * BN>;
var<workgroup> Cs: array<f32, BM * BN>;

// Element v of A's tile at rows m0.., k0.. in A's layout: [m][k], or [k][m] when transposed.
fn fetchA(v: u32, base: u32, m0: u32, k0: u32) -> f16 {
  var m: u32;
  var k: u32;
  if ($TRANS_A) {
    k = k0 + v / BM;
    m = m0 + v % BM;
  } else {
    m = m0 + v / BK;
    k = k0 + v % BK;
  }
  if (m >= params.M || k >= params.K) { return f16(0.0); }
  return A[base + select(m * params.K + k, k * params.M + m, $TRANS_A)];
}

// Element v of B's tile at rows k0.., columns n0..: [k][n], or [n][k] when transposed.
fn fetchB(v: u32, base: u32, n0: u32, k0: u32) -> f16 {
  var n: u32;
  var k: u32;
  if ($TRANS_B) {
    n = n0 + v / BK;
    k = k0 + v % BK;
  } else {
    k = k0 + v / BN;
    n = n0 + v % BN;
  }
  if (n >= params.N || k >= params.K) { return f16(0.0); }
  return B[base + select(k * params.N + n, n * params.K + k, $TRANS_B)];
}

// The left matrix of rows m.., columns k.. of A's tile; the right one of rows k.., columns n.. of B's.
fn loadLeft(m: u32, k: u32) -> Left {
  if ($TRANS_A) { return subgroupMatrixLoad<Left, col_major>(&As, k * BM + m, BM); }
  return subgroupMatrixLoad<Left, row_major>(&As, m * BK + k, BK);
}

fn loadRight(k: u32, n: u32) -> Right {
  if ($TRANS_B) { return subgroupMatrixLoad<Right, col_major>(&Bs, n * BK + k, BK); }
  return subgroupMatrixLoad<Right, row_major>(&Bs, k * BN + n, BN);
}

@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lix: u32,
        @builtin(subgroup_id) sg: u32) {
  let m0 = params.rowStart + wid.y * BM;
  let n0 = wid.x * BN;
  let baseA = wid.z * params.strideA;
  let baseB = wid.z * params.strideB;
  // This subgroup's corner in the block.
  let sm = (sg / $WN) * FM * SM;
  let sn = (sg % $WN) * FN * SN;

  var acc: array<Result, FM * FN>;
  for (var i = 0u; i < FM * FN; i++) { acc[i] = Result(); }
  let slices = (params.K + BK - 1u) / BK;
  for (var t = 0u; t < slices; t++) {
    workgroupBarrier(); // the previous slice's matrix loads are done
    for (var v = lix; v < BM * BK; v += THREADS) { As[v] = fetchA(v, baseA, m0, t * BK); }
    for (var v = lix; v < BK * BN; v += THREADS) { Bs[v] = fetchB(v, baseB, n0, t * BK); }
    workgroupBarrier();
    for (var ks = 0u; ks < KS; ks++) {
      var right: array<Right, FN>;
      for (var j = 0u; j < FN; j++) { right[j] = loadRight(ks * SK, sn + j * SN); }
      for (var i = 0u; i < FM; i++) {
        let left = loadLeft(sm + i * SM, ks * SK);
        for (var j = 0u; j < FN; j++) {
          acc[i * FN + j] = subgroupMatrixMultiplyAccumulate(left, right[j], acc[i * FN + j]);
        }
      }
    }
  }

  for (var i = 0u; i < FM; i++) {
    for (var j = 0u; j < FN; j++) {
      subgroupMatrixStore<row_major>(&Cs, (sm + i * SM) * BN + sn + j * SN, acc[i * FN + j], BN);
    }
  }
  workgroupBarrier();
  let scale = outScale();
  let baseC = wid.z * params.strideC;
  for (var v = lix; v < BM * BN; v += THREADS) {
    let row = m0 + v / BN;
    let col = n0 + v % BN;
    if (row < params.M && col < params.N) { C[baseC + row * params.N + col] = Cs[v] * scale; }
  }
}
