enable subgroups;
// The weight-gradient kernel of conv2d_wgrad.wgsl (read that header first) for 8-wide subgroups
// (lavapipe on AVX2: a workgroup of 8 invocations is one subgroup). The 8 lanes share the
// output-channel block and differ in (input channel, kernel-row block), so the dy values of a
// row segment, which all lanes need, are loaded once per subgroup (lanes split them) and shared
// by broadcast; each lane still loads its own source windows. That leaves most per-lane loads to
// the windows, so the tile takes more output channels (TMW 16).
// WGSL has no includes: apart from the lane mapping and loadDy this mirrors conv2d_wgrad.wgsl,
// and the two files change together.
//! TMW = 16
//! TN = 4
//! KW = 3
//! KHL = 3
//! SW = 1
//! DW = 1
//! WIN = 6
//! WSTEP = 1
//! PAD = true
//! DYV = true
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
var<private> lane8: u32;

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

// Broadcasts the 8 lanes' vec4s (the lane must be a constant, hence the list).
fn share(v: vec4<f32>) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(
    subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
    subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// Vec4 pieces per lane for one dy tile: with DYV a piece is one channel's 4-column segment,
// else the 4 channels of one column.
const ROUNDS = select((TM4 * $TNu + 7u) / 8u, ($TMWu + 7u) / 8u, $DYV);

// The TMW x TN dy values of the segment at column q0 of the row whose channel o sits at
// rowOff + o * OH*OW: lane l loads pieces l, l + 8, ... (clamped), the subgroup shares them.
fn loadDy(rowOff: u32, o0: u32, q0: u32) -> DyTile {
  let ohw = params.OH * params.OW;
  var pieces: array<array<vec4<f32>, 8>, ROUNDS>;
  for (var r = 0u; r < ROUNDS; r++) {
    let p = r * 8u + lane8;
    if ($DYV) {
      let o = min(o0 + p, params.O - 1u);
      pieces[r] = share(DY4[(rowOff + o * ohw + q0) / 4u]);
    } else {
      let pc = min(p, TM4 * $TNu - 1u);
      let q = min(q0 + pc % $TNu, params.OW - 1u);
      let o = min(vec4<u32>(o0 + 4u * (pc / $TNu)) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.O - 1u));
      let at = vec4<u32>(rowOff + q) + o * ohw;
      pieces[r] = share(vec4<f32>(DY[at.x], DY[at.y], DY[at.z], DY[at.w]));
    }
  }
  var dy: DyTile;
  for (var t = 0u; t < TM4; t++) {
    for (var j = 0u; j < $TNu; j++) {
      if ($DYV) {
        for (var e = 0u; e < 4u; e++) {
          let k = 4u * t + e;
          dy[t][j][e] = pieces[k / 8u][k % 8u][j % 4u];
        }
      } else {
        let k = t * $TNu + j;
        dy[t][j] = select(vec4<f32>(0.0), pieces[k / 8u][k % 8u], q0 + j < params.OW);
      }
    }
  }
  return dy;
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

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sgLane: u32) {
  lane8 = sgLane;
  // Workgroup x: blocks of 8 (input channel, kernel-row block) pairs fastest, then output blocks.
  let KHB = params.KH / $KHLu;
  let UB = (params.L + 7u) / 8u;
  let u = (wid.x % UB) * 8u + lane8;
  let valid = u < params.L;
  let uc = min(u, params.L - 1u);
  let c = uc / KHB;
  let kh0 = (uc % KHB) * $KHLu;
  let o0 = (wid.x / UB) * $TMWu;
  let row0 = wid.y * params.RC;
  let row1 = min(row0 + params.RC, params.R);

  var acc0: RowAcc;
  var acc1: RowAcc;
  var acc2: RowAcc;
  for (var row = row0; row < row1; row++) {
    let n = row / params.OH;
    let oh = row - n * params.OH;
    let rowOff = n * params.O * params.OH * params.OW + oh * params.OW;
    let xPlane = i32((n * params.C + c) * params.H);
    let ih0 = i32(oh * params.SH) - params.PH + i32(kh0 * params.DH);
    let dh = i32(params.DH);
    for (var q0 = 0u; q0 < params.OW; q0 += $TNu) {
      var dy = loadDy(rowOff, o0, q0);
      let col0 = i32(q0 * $SWu) - params.PW;
      accumulateRow(&acc0, &dy, xPlane, ih0, col0);
      if ($KHLu > 1u) { accumulateRow(&acc1, &dy, xPlane, ih0 + dh, col0); }
      if ($KHLu > 2u) { accumulateRow(&acc2, &dy, xPlane, ih0 + 2 * dh, col0); }
    }
  }

  storeRow(&acc0, wid.y, o0, c, kh0, valid);
  if ($KHLu > 1u) { storeRow(&acc1, wid.y, o0, c, kh0 + 1u, valid); }
  if ($KHLu > 2u) { storeRow(&acc2, wid.y, o0, c, kh0 + 2u, valid); }
}
