// Implicit-GEMM convolution core, shared by the forward pass and the input gradient.
//   Y[n, m, OR0 + ORS*r, OC0 + OCS*q] = sum_cin sum_taps A[cin, kr, kc, m] * S[n, cin, SRS*r + rowOff, SCS*q + colOff]
// Forward: S = x, A = weight as [C, KH, KW, O], all taps. Input gradient: S = dy, A = weight as
// [O, KH, KW, C], one dispatch per output-pixel residue class mod the stride with only the taps
// that reach it (so no invocation multiplies structural zeros).
// Each invocation owns TM output channels x TN output columns of one row, in registers. The
// im2col operand is never stored: per (cin, tap row) the invocation loads one source row window
// of WIN values (shared by all tap columns, so a 3x3 stride-1 tile of 8 columns loads 10 values
// instead of 24) and one vec4 of A per 4 output channels per tap column. No workgroup memory: on
// lavapipe barriers are costly and every storage load is per lane anyway, so what counts is
// loads per FMA, which the register tile minimises.
// Compile-time: the tile, the tap columns' window positions (TC_WIN, so the window stays in registers) and the
// checks. Run-time (uniforms): sizes, tap row offsets, kernel rows and columns of A, placement; so
// one pipeline serves many layers, and the forward and input-gradient passes of a 3x3 conv.
// Workgroup x walks the output-channel blocks fastest, so the blocks that read the same source
// rows run back to back while those rows are in cache (the other order streams the whole input
// once per block: 2.5x slower at 64 channels).
// The window holds every WSTEP-th source column (WSTEP > 1 when no tap needs the ones between,
// e.g. a 1x1 kernel with stride 2); TC_WIN and WIN count in window elements.
// A comes from relayout.wgsl with its channel axis zero-padded to a multiple of TM, so
// every vec4 read is in range and aligned.
//! TM = 8
//! TN = 8
//! WG = 16
//! NTC = 3
//! TC_WIN = 0, 1, 2
//! WIN = 10
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

// The TM4 vec4s of A for tap column b of the row whose A starts at aRow.
fn loadA(aRow: u32, b: u32) -> TapA {
  let aAt = aRow + params.TC_K[b / 4u][b % 4u] * (params.MP / 4u);
  var w: TapA;
  for (var t = 0u; t < TM4; t++) {
    w[t] = A[aAt + t];
  }
  return w;
}

// One tap column: TN x TM4 vec4 FMAs with the column's A. Called with a constant b (the calls
// are unrolled by hand: NIR leaves a loop over 7 columns of this size rolled, and a rolled
// loop indexes win dynamically, which sends it to scratch memory).
fn tapColumn(acc: ptr<function, Acc>, win: ptr<function, Win>, w: TapA, b: u32) {
  for (var j = 0u; j < $TNu; j++) {
    let xv = vec4<f32>((*win)[j * ($SCSu / $WSTEPu) + TC_WIN[b]]);
    for (var t = 0u; t < TM4; t++) {
      (*acc)[j][t] = fma(w[t], xv, (*acc)[j][t]);
    }
  }
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
  let aRow = aPlane + params.TR_K[a / 4u][a % 4u] * params.KW * M4 + m4;
  if ($NTCu > 0u) { tapColumn(acc, &win, loadA(aRow, 0u), 0u); }
  if ($NTCu > 1u) { tapColumn(acc, &win, loadA(aRow, 1u), 1u); }
  if ($NTCu > 2u) { tapColumn(acc, &win, loadA(aRow, 2u), 2u); }
  if ($NTCu > 3u) { tapColumn(acc, &win, loadA(aRow, 3u), 3u); }
  if ($NTCu > 4u) { tapColumn(acc, &win, loadA(aRow, 4u), 4u); }
  if ($NTCu > 5u) { tapColumn(acc, &win, loadA(aRow, 5u), 5u); }
  if ($NTCu > 6u) { tapColumn(acc, &win, loadA(aRow, 6u), 6u); }
  for (var b = 7u; b < $NTCu; b++) { tapColumn(acc, &win, loadA(aRow, b), b); }
}

@compute @workgroup_size($WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let lane = (wid.y + wid.z * nwg.y) * $WGu + lid.x;
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
