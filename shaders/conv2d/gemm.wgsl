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
// The interface, the source windows and the main loop (convCore) are in lib/conv2d_core.wgsl,
// shared with gemm_sg8.wgsl.
//! TM = 8
//! TN = 8
//! WG = 16
//! WIN = 10
//#include "lib/conv2d_core.wgsl"

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
  let M4 = params.MP / 4u;
  var win: Win;
  loadWindow(&win, plane, srcRow0 + params.TR_OFF[a / 4u][a % 4u], srcCol0, i32(params.SH), i32(params.SW));
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
  convCore(lane, wid.x);
}
