enable subgroups;
// The implicit-GEMM convolution core of gemm.wgsl (read that header first) for 8-wide
// subgroups (lavapipe on AVX2: a workgroup of 8 invocations is the 8 SIMD lanes of one
// subgroup). All lanes of a workgroup share the output-channel block, so the lanes split the
// A vec4s of a tap row among them and the subgroup shares them by broadcast (register
// shuffles), instead of every lane loading all of them itself. With A nearly free, the tile leans to
// more output channels (TM up to 32) and fewer columns, which cuts the per-lane window loads.
// The interface, the source windows and the main loop come from lib/conv2d_core.wgsl, shared
// with gemm.wgsl; only loading and multiplying a tap row's A are this file's.
//! TM = 16
//! TN = 4
//! WIN = 6
//#include "lib/conv2d_core.wgsl"

// The A vec4s of one tap row: NTC tap columns x TM4, as PIECES vec4s, ROUNDS per lane.
const PIECES = $NTCu * TM4;
const ROUNDS = (PIECES + 7u) / 8u;
alias RowA = array<TapA, $NTC>;
//#include "lib/subgroup8.wgsl"

// Lane l loads pieces l, l + 8, ... (clamped to the last) and the subgroup shares them all.
fn loadRowA(aRow: u32, M4: u32) -> RowA {
  var all: array<array<vec4<f32>, 8>, ROUNDS>;
  for (var r = 0u; r < ROUNDS; r++) {
    let p = min(r * 8u + lane8, PIECES - 1u);
    let b = p / TM4;
    let piece = A[aRow + params.TC_K[b / 4u][b % 4u] * M4 + p % TM4];
    all[r] = share8(piece);
  }
  var rowA: RowA;
  for (var b = 0u; b < $NTCu; b++) {
    for (var t = 0u; t < TM4; t++) {
      rowA[b][t] = all[(b * TM4 + t) / 8u][(b * TM4 + t) % 8u];
    }
  }
  return rowA;
}

// The products of one accumulator with the tap columns b0.. of one tap row, adjacent so that a
// spilled accumulator is loaded and stored once per row instead of once per tap column.
// Constant b (unrolled by hand, clamped so columns past NTC still compile): a rolled loop
// would index win dynamically, which sends it to scratch memory.
fn tapSum(s: vec4<f32>, win: ptr<function, Win>, rowA: ptr<function, RowA>, j: u32, t: u32) -> vec4<f32> {
  let jw = j * ($SCSu / $WSTEPu);
  var r = s;
  if ($NTCu > 0u) { r = fma((*rowA)[0][t], vec4<f32>((*win)[jw + TC_WIN[0]]), r); }
  if ($NTCu > 1u) { r = fma((*rowA)[min(1u, $NTCu - 1u)][t], vec4<f32>((*win)[jw + TC_WIN[min(1u, $NTCu - 1u)]]), r); }
  if ($NTCu > 2u) { r = fma((*rowA)[min(2u, $NTCu - 1u)][t], vec4<f32>((*win)[jw + TC_WIN[min(2u, $NTCu - 1u)]]), r); }
  if ($NTCu > 3u) { r = fma((*rowA)[min(3u, $NTCu - 1u)][t], vec4<f32>((*win)[jw + TC_WIN[min(3u, $NTCu - 1u)]]), r); }
  if ($NTCu > 4u) { r = fma((*rowA)[min(4u, $NTCu - 1u)][t], vec4<f32>((*win)[jw + TC_WIN[min(4u, $NTCu - 1u)]]), r); }
  if ($NTCu > 5u) { r = fma((*rowA)[min(5u, $NTCu - 1u)][t], vec4<f32>((*win)[jw + TC_WIN[min(5u, $NTCu - 1u)]]), r); }
  if ($NTCu > 6u) { r = fma((*rowA)[min(6u, $NTCu - 1u)][t], vec4<f32>((*win)[jw + TC_WIN[min(6u, $NTCu - 1u)]]), r); }
  for (var b = 7u; b < $NTCu; b++) { r = fma((*rowA)[b][t], vec4<f32>((*win)[jw + TC_WIN[b]]), r); }
  return r;
}

// One tap row: loads the source row window once, then for every tap column one vec4 of A per 4
// output channels and TN x TM4 vec4 FMAs.
fn accumulateRow(acc: ptr<function, Acc>, a: u32, plane: i32, srcRow0: i32, srcCol0: i32, aPlane: u32, m4: u32) {
  let M4 = params.MP / 4u;
  var win: Win;
  loadWindow(&win, plane, srcRow0 + params.TR_OFF[a / 4u][a % 4u], srcCol0, i32(params.SH), i32(params.SW));
  var rowA = loadRowA(aPlane + params.TR_K[a / 4u][a % 4u] * params.KW * M4 + m4, M4);
  for (var j = 0u; j < $TNu; j++) {
    for (var t = 0u; t < TM4; t++) {
      (*acc)[j][t] = tapSum((*acc)[j][t], &win, &rowA, j, t);
    }
  }
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) sgLane: u32) {
  lane8 = sgLane;
  let lane = (wid.y + wid.z * nwg.y) * 8u + lid.x;
  convCore(lane, wid.x);
}
