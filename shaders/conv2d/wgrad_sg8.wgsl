enable subgroups;
// The weight-gradient kernel of wgrad.wgsl (read that header first) for 8-wide subgroups
// (lavapipe on AVX2: a workgroup of 8 invocations is one subgroup). The 8 lanes share the
// output-channel block and differ in (input channel, kernel-row block), so the dy values of a
// row segment, which all lanes need, are loaded once per subgroup (lanes split them) and shared
// by broadcast; each lane still loads its own source windows. That leaves most per-lane loads to
// the windows, so the tile takes more output channels (TMW 16).
// The interface, the source windows and the row accumulation come from lib/conv2d_wgrad.wgsl,
// shared with wgrad.wgsl; only the lane mapping and loadDy are this file's.
//! TMW = 16
//! TN = 4
//! WIN = 6
//! DYV = true
//#include "lib/conv2d_wgrad.wgsl"
//#include "lib/subgroup8.wgsl"

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
      pieces[r] = share8(DY4[(rowOff + o * ohw + q0) / 4u]);
    } else {
      let pc = min(p, TM4 * $TNu - 1u);
      let q = min(q0 + pc % $TNu, params.OW - 1u);
      let o = min(vec4<u32>(o0 + 4u * (pc / $TNu)) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.O - 1u));
      let at = vec4<u32>(rowOff + q) + o * ohw;
      pieces[r] = share8(vec4<f32>(DY[at.x], DY[at.y], DY[at.z], DY[at.w]));
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
