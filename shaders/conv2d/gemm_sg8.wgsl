enable subgroups;
// The implicit-GEMM convolution core of gemm.wgsl (read that header first) for 8-wide
// subgroups (lavapipe on AVX2: a workgroup of 8 invocations is the 8 SIMD lanes of one
// subgroup). All lanes of a workgroup share the output-channel block, so the lanes split the
// A vec4s of a tap row among them and the subgroup shares them by broadcast (register
// shuffles), instead of every lane loading all of them itself. With A nearly free, the tile leans to
// more output channels (TM up to 32) and fewer columns, which cuts the per-lane window loads.
// WGSL has no includes: apart from loadRowA and the workgroup size this mirrors
// gemm.wgsl, and the two files change together.
//! TM = 16
//! TN = 4
//! NTC = 3
//! TC_WIN = 0, 1, 2
//! WIN = 6
//! SCS = 1
//! WSTEP = 1
//! CHECK = true
//! PAD = true
struct Params {
  N: u32, CIN: u32, SH: u32, SW: u32,
  M: u32, OH: u32, OW: u32, NR: u32,
  NQ: u32, TQ: u32, G: u32, MP: u32,
  NTR: u32, KH: u32, KW: u32, SRS: u32,
  ORS: u32, OR0: u32, OCS: u32, OC0: u32,
  WIN_OFF: i32, HAS_BIAS: u32, _p1: u32, _p2: u32,
  // Tap rows: source row offset and kernel row; tap columns: kernel column (up to 16 each).
  TR_OFF: array<vec4<i32>, 4>,
  TR_K: array<vec4<u32>, 4>,
  TC_K: array<vec4<u32>, 4>,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

const TM4 = $TMu / 4u;
const TC_WIN = array<u32, $NTC>($TC_WIN);
alias Acc = array<array<vec4<f32>, TM4>, $TN>;
alias TapA = array<vec4<f32>, TM4>;
alias Win = array<f32, $WIN>;

// The A vec4s of one tap row: NTC tap columns x TM4, as PIECES vec4s, ROUNDS per lane.
const PIECES = $NTCu * TM4;
const ROUNDS = (PIECES + 7u) / 8u;
alias RowA = array<TapA, $NTC>;
var<private> lane8: u32;

// Lane l loads pieces l, l + 8, ... (clamped to the last) and the subgroup broadcasts them all;
// the broadcast lane must be a constant, hence the unrolled list.
fn loadRowA(aRow: u32, M4: u32) -> RowA {
  var all: array<array<vec4<f32>, 8>, ROUNDS>;
  for (var r = 0u; r < ROUNDS; r++) {
    let p = min(r * 8u + lane8, PIECES - 1u);
    let b = p / TM4;
    let piece = A[aRow + params.TC_K[b / 4u][b % 4u] * M4 + p % TM4];
    all[r][0] = subgroupBroadcast(piece, 0u);
    all[r][1] = subgroupBroadcast(piece, 1u);
    all[r][2] = subgroupBroadcast(piece, 2u);
    all[r][3] = subgroupBroadcast(piece, 3u);
    all[r][4] = subgroupBroadcast(piece, 4u);
    all[r][5] = subgroupBroadcast(piece, 5u);
    all[r][6] = subgroupBroadcast(piece, 6u);
    all[r][7] = subgroupBroadcast(piece, 7u);
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
  let sh = i32(params.SH);
  let sw = i32(params.SW);
  let M4 = params.MP / 4u;
  let sr = srcRow0 + params.TR_OFF[a / 4u][a % 4u];
  let rowBase = (plane + sr) * sw + srcCol0;
  var win: Win;
  for (var i = 0u; i < $WINu; i++) {
    let at = rowBase + i32(i * $WSTEPu);
    if ($PAD) {
      let sc = srcCol0 + i32(i * $WSTEPu);
      let ok = sr >= 0 && sr < sh && sc >= 0 && sc < sw;
      win[i] = select(0.0, S[u32(max(at, 0))], ok);
    } else {
      win[i] = S[u32(at)];
    }
  }
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
  var g = lane;
  if ($CHECK) { g = min(g, params.G - 1u); }
  let qt = g % params.TQ;
  let nr = g / params.TQ;
  let r = nr % params.NR;
  let n = nr / params.NR;
  let q0 = qt * $TNu;
  let m0 = wid.x * $TMu;
  let srcRow0 = i32(r * params.SRS);
  let srcCol0 = i32(q0 * $SCSu) + params.WIN_OFF;
  let M4 = params.MP / 4u;

  // The tap-row loop stays rolled: unrolled, LLVM hoists loads across rows and spills more
  // (measured 1.5x slower on lavapipe).
  var acc: Acc;
  for (var cin = 0u; cin < params.CIN; cin++) {
    let plane = i32((n * params.CIN + cin) * params.SH);
    let aPlane = cin * params.KH * params.KW * M4;
    let m4 = m0 / 4u;
    for (var a = 0u; a < params.NTR; a++) { accumulateRow(&acc, a, plane, srcRow0, srcCol0, aPlane, m4); }
  }

  let valid = !$CHECK || lane < params.G;
  let row = params.OR0 + params.ORS * r;
  for (var t = 0u; t < TM4; t++) {
    for (var c = 0u; c < 4u; c++) {
      let m = m0 + 4u * t + c;
      var bv = 0.0;
      if (params.HAS_BIAS != 0u) { bv = bias[min(m, params.M - 1u)]; }
      let base = ((n * params.M + m) * params.OH + row) * params.OW + params.OC0;
      for (var j = 0u; j < $TNu; j++) {
        let q = q0 + j;
        if (!$CHECK || (valid && m < params.M && q < params.NQ)) {
          Y[base + params.OCS * q] = acc[j][t][c] + bv;
        }
      }
    }
  }
}
