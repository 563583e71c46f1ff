// The implicit-GEMM convolution core's interface and main loop, shared by conv2d/gemm.wgsl
// (read its header) and conv2d/gemm_sg8.wgsl, which differ only in how a tap row's A is loaded
// and multiplied: each defines accumulateRow(acc, a, plane, srcRow0, srcCol0, aPlane, m4) and
// calls convCore from its entry point with its invocation's lane and workgroup x.
//! NTC = 3
//! TC_WIN = 0, 1, 2
//! SCS = 1
//! CHECK = true
//#include "lib/conv2d_window.wgsl"
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

// One invocation's TM x TN tile: every input channel's tap rows, then bias and the store.
fn convCore(lane: u32, wgX: u32) {
  var g = lane;
  if ($CHECK) { g = min(g, params.G - 1u); }
  let qt = g % params.TQ;
  let nr = g / params.TQ;
  let r = nr % params.NR;
  let n = nr / params.NR;
  let q0 = qt * $TNu;
  let m0 = wgX * $TMu;
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
