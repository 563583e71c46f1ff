// The weight-gradient kernels' interface and per-row work, shared by conv2d/wgrad.wgsl (read its
// header) and conv2d/wgrad_sg8.wgsl, which differ in how an invocation is placed and how it
// loads the dy tile of a row segment.
//! KW = 3
//! KHL = 3
//! SW = 1
//! DW = 1
//! WIN_SRC = X
// With one chunk, ACCUMULATE adds the gradient to what P holds (the weight's .grad).
//! ACCUMULATE = false
//#include "lib/conv2d_window.wgsl"
struct Params {
  N: u32, C: u32, H: u32, W: u32,
  O: u32, OH: u32, OW: u32, L: u32,
  RC: u32, R: u32, KH: u32, SH: u32,
  PH: i32, PW: i32, DH: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read> DY4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> P: array<f32>;

const TM4 = $TMWu / 4u;
alias RowAcc = array<array<vec4<f32>, TM4>, $KW>;
alias DyTile = array<array<vec4<f32>, $TN>, TM4>;

// One kernel column kc (a constant at the hand-unrolled call sites: NIR leaves a loop over 7
// columns of this size rolled, and a rolled loop indexes acc dynamically, i.e. in scratch memory).
fn tapCol(acc: ptr<function, RowAcc>, dy: ptr<function, DyTile>, win: ptr<function, Win>, kc: u32) {
  for (var j = 0u; j < $TNu; j++) {
    let xv = vec4<f32>((*win)[(j * $SWu + kc * $DWu) / $WSTEPu]);
    for (var t = 0u; t < TM4; t++) {
      (*acc)[kc][t] = fma((*dy)[t][j], xv, (*acc)[kc][t]);
    }
  }
}

// Adds one kernel row's contribution of a row segment: ih is the source row, col0 the source
// column of the segment's first tap.
fn accumulateRow(acc: ptr<function, RowAcc>, dy: ptr<function, DyTile>, xPlane: i32, ih: i32, col0: i32) {
  var win: Win;
  loadWindow(&win, xPlane, ih, col0, i32(params.H), i32(params.W));
  if ($KWu > 0u) { tapCol(acc, dy, &win, 0u); }
  if ($KWu > 1u) { tapCol(acc, dy, &win, 1u); }
  if ($KWu > 2u) { tapCol(acc, dy, &win, 2u); }
  if ($KWu > 3u) { tapCol(acc, dy, &win, 3u); }
  if ($KWu > 4u) { tapCol(acc, dy, &win, 4u); }
  if ($KWu > 5u) { tapCol(acc, dy, &win, 5u); }
  if ($KWu > 6u) { tapCol(acc, dy, &win, 6u); }
  for (var kc = 7u; kc < $KWu; kc++) { tapCol(acc, dy, &win, kc); }
}

fn storeRow(acc: ptr<function, RowAcc>, z: u32, o0: u32, c: u32, kh: u32, valid: bool) {
  let khw = params.KH * $KWu;
  for (var kc = 0u; kc < $KWu; kc++) {
    for (var t = 0u; t < TM4; t++) {
      for (var e = 0u; e < 4u; e++) {
        let o = o0 + 4u * t + e;
        if (valid && o < params.O) {
          let at = ((z * params.O + o) * params.C + c) * khw + kh * $KWu + kc;
          var v = (*acc)[kc][t][e];
          if ($ACCUMULATE) { v += P[at]; }
          P[at] = v;
        }
      }
    }
  }
}
