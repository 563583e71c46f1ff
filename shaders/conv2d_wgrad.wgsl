// Weight gradient of a convolution as an implicit GEMM with the long axis K = N*OH*OW split into
// fixed chunks of RC output rows (workgroup y = chunk); every chunk writes its own partial
//   P[z, o, c, kh, kw] = sum_{(n, oh) in chunk z, ow} dy[n, o, oh, ow] * x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
// and a second pass sums the partials in a fixed order: deterministic, no float atomics.
// Each invocation owns TMW output channels x KHL (1 to 3) kernel rows x KW kernel columns of one
// input channel in registers. Per row segment of TN output columns it reads the TMW x TN dy
// values once and, per kernel row, one source window of WIN values that serves all KW columns.
// The kernel rows are separate variables, not an array indexed by a loop counter: NIR only
// unrolls that loop while it is small, and an array indexed by a counter it did not unroll goes
// to scratch memory (5x slower on lavapipe).
// Compile-time: the tile, kernel width, column stride and dilation (they place the window in
// registers); the rest are uniforms. The window holds every WSTEP-th source column (the ones
// the taps use: WSTEP = SW for a 1x1 kernel). DYV (TN = 4, OW a multiple of 4): each output channel's
// dy row segment is one aligned vec4 load instead of four scalar ones, which also keeps the
// unrolled body (and lavapipe's compile time) small.
//! TMW = 8
//! TN = 8
//! WG = 16
//! KW = 3
//! KHL = 3
//! SW = 1
//! DW = 1
//! WIN = 10
//! WSTEP = 1
//! CHECK = true
//! PAD = true
//! DYV = false
// With one chunk, ACCUMULATE adds the gradient to what P holds (the weight's .grad).
//! ACCUMULATE = false
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
alias Win = array<f32, $WIN>;

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
  let h = i32(params.H);
  let w = i32(params.W);
  let rowBase = (xPlane + ih) * w + col0;
  var win: Win;
  for (var i = 0u; i < $WINu; i++) {
    let at = rowBase + i32(i * $WSTEPu);
    if ($PAD) {
      let iw = col0 + i32(i * $WSTEPu);
      let ok = ih >= 0 && ih < h && iw >= 0 && iw < w;
      win[i] = select(0.0, X[u32(max(at, 0))], ok);
    } else {
      win[i] = X[u32(at)];
    }
  }
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

@compute @workgroup_size($WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var l = wid.x * $WGu + lid.x;
  if ($CHECK) { l = min(l, params.L - 1u); }
  let OB = (params.O + $TMWu - 1u) / $TMWu;
  let KHB = params.KH / $KHLu;
  let ob = l % OB;
  let rest = l / OB;
  let kh0 = (rest % KHB) * $KHLu;
  let c = rest / KHB;
  let o0 = ob * $TMWu;
  let row0 = wid.y * params.RC;
  let row1 = min(row0 + params.RC, params.R);
  let ohw = params.OH * params.OW;

  var acc0: RowAcc;
  var acc1: RowAcc;
  var acc2: RowAcc;
  for (var row = row0; row < row1; row++) {
    let n = row / params.OH;
    let oh = row - n * params.OH;
    // dy offsets of this row for the invocation's output channels (clamped into range).
    var dyBase: array<vec4<u32>, TM4>;
    for (var t = 0u; t < TM4; t++) {
      let o = min(vec4<u32>(o0 + 4u * t) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.O - 1u));
      dyBase[t] = (n * params.O + o) * ohw + oh * params.OW;
    }
    let xPlane = i32((n * params.C + c) * params.H);
    let ih0 = i32(oh * params.SH) - params.PH + i32(kh0 * params.DH);
    let dh = i32(params.DH);
    for (var q0 = 0u; q0 < params.OW; q0 += $TNu) {
      var dy: DyTile;
      if ($DYV) {
        for (var t = 0u; t < TM4; t++) {
          let at = (dyBase[t] + vec4<u32>(q0)) / 4u;
          let d0 = DY4[at.x];
          let d1 = DY4[at.y];
          let d2 = DY4[at.z];
          let d3 = DY4[at.w];
          for (var j = 0u; j < $TNu; j++) {
            dy[t][j] = vec4<f32>(d0[j], d1[j], d2[j], d3[j]);
          }
        }
      } else {
        for (var t = 0u; t < TM4; t++) {
          for (var j = 0u; j < $TNu; j++) {
            let q = min(q0 + j, params.OW - 1u);
            let at = dyBase[t] + vec4<u32>(q);
            let v = vec4<f32>(DY[at.x], DY[at.y], DY[at.z], DY[at.w]);
            dy[t][j] = select(vec4<f32>(0.0), v, q0 + j < params.OW);
          }
        }
      }
      let col0 = i32(q0 * $SWu) - params.PW;
      accumulateRow(&acc0, &dy, xPlane, ih0, col0);
      if ($KHLu > 1u) { accumulateRow(&acc1, &dy, xPlane, ih0 + dh, col0); }
      if ($KHLu > 2u) { accumulateRow(&acc2, &dy, xPlane, ih0 + 2 * dh, col0); }
    }
  }

  let valid = !$CHECK || wid.x * $WGu + lid.x < params.L;
  storeRow(&acc0, wid.y, o0, c, kh0, valid);
  if ($KHLu > 1u) { storeRow(&acc1, wid.y, o0, c, kh0 + 1u, valid); }
  if ($KHLu > 2u) { storeRow(&acc2, wid.y, o0, c, kh0 + 2u, valid); }
}
