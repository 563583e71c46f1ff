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
// The interface, the source windows and the row accumulation are in lib/conv2d_wgrad.wgsl,
// shared with wgrad_sg8.wgsl.
//! TMW = 8
//! TN = 8
//! WG = 16
//! WIN = 10
//! CHECK = true
//! DYV = false
//#include "lib/conv2d_wgrad.wgsl"

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
