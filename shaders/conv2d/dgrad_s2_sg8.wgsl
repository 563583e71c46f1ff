enable subgroups;
// Input gradient of a 3x3 convolution with stride 2, padding 1 (ResNet's downsampling convs)
// for 8-wide subgroups, all four residue classes of dx in one pass. With stride 2 the classes
// take 1, 2, 2 and 4 taps; run as separate dispatches (gemm*.wgsl) each loads a dy window
// that serves one or two tap columns. Here an invocation owns the 2 x 2 dx pixels of TB
// consecutive dy positions (rows 2i, 2i+1; columns 2j, 2j+1 for j in j0..j0+TB) for TM input
// channels, and per output channel o loads dy rows i and i+1 at columns j0..j0+TB (2 (TB + 1)
// values) once for all 9 taps. With y = 2i + ry, x = 2j + rx, tap (kh, kw) reads
// dy[(y + 1 - kh) / 2, (x + 1 - kw) / 2] where that is whole: ry = 0 takes kh = 1 from row i;
// ry = 1 takes kh = 0 from row i + 1 and kh = 2 from row i; the same for columns.
// A is the weight as [O, 3, 3, MP] (relayout.wgsl, TRANS), its 9 x TM4 vec4s per o split
// among the lanes and shared by broadcast, as in gemm_sg8.wgsl.
//! TM = 8
//! TB = 4
struct Params {
  N: u32, O: u32, OH: u32, OW: u32,
  C: u32, H: u32, W: u32, MP: u32,
  TJ: u32, G: u32, _p0: u32, _p1: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const TM4 = $TMu / 4u;
const TB1 = $TBu + 1u;
const PIECES = 9u * TM4;
const ROUNDS = (PIECES + 7u) / 8u;
alias Taps = array<array<vec4<f32>, TM4>, 9>;
// [class ry * 2 + rx][block][channel vec4]
alias Acc = array<array<array<vec4<f32>, TM4>, $TB>, 4>;
alias Row = array<f32, TB1>;
//#include "lib/subgroup8.wgsl"

// The 9 taps' A vec4s of one output channel: lane l loads pieces l, l + 8, ... (clamped to the
// last) and the subgroup shares them.
fn loadTaps(aRow: u32, M4: u32) -> Taps {
  var all: array<array<vec4<f32>, 8>, ROUNDS>;
  for (var r = 0u; r < ROUNDS; r++) {
    let p = min(r * 8u + lane8, PIECES - 1u);
    let piece = A[aRow + (p / TM4) * M4 + p % TM4];
    all[r] = share8(piece);
  }
  var taps: Taps;
  for (var k = 0u; k < 9u; k++) {
    for (var t = 0u; t < TM4; t++) {
      taps[k][t] = all[(k * TM4 + t) / 8u][(k * TM4 + t) % 8u];
    }
  }
  return taps;
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) sgLane: u32) {
  lane8 = sgLane;
  let lane = (wid.y + wid.z * nwg.y) * 8u + lid.x;
  // Lanes past the end compute a clamped copy and store nothing.
  let g = min(lane, params.G - 1u);
  let jt = g % params.TJ;
  let ni = g / params.TJ;
  let OH = params.OH;
  let OW = params.OW;
  // Every dx row pair has its dy row i (OH = ceil(H / 2)); row i + 1 may be past the end.
  let i = ni % OH;
  let n = ni / OH;
  let j0 = jt * $TBu;
  let m0 = wid.x * $TMu;
  let M4 = params.MP / 4u;
  let next = i + 1u < OH;
  let i1 = min(i + 1u, OH - 1u);

  var acc: Acc;
  for (var o = 0u; o < params.O; o++) {
    let plane = (n * params.O + o) * OH;
    var r0: Row;
    var r1: Row;
    for (var b = 0u; b < TB1; b++) {
      let col = j0 + b;
      let inside = col < OW;
      let c = min(col, OW - 1u);
      r0[b] = select(0.0, dy[(plane + i) * OW + c], inside);
      r1[b] = select(0.0, dy[(plane + i1) * OW + c], inside && next);
    }
    let w = loadTaps(o * 9u * M4 + m0 / 4u, M4);
    for (var b = 0u; b < $TBu; b++) {
      let a0 = vec4<f32>(r0[b]);
      let a1 = vec4<f32>(r0[b + 1u]);
      let c0 = vec4<f32>(r1[b]);
      let c1 = vec4<f32>(r1[b + 1u]);
      for (var t = 0u; t < TM4; t++) {
        acc[0][b][t] = fma(w[4][t], a0, acc[0][b][t]);
        acc[1][b][t] = fma(w[3][t], a1, fma(w[5][t], a0, acc[1][b][t]));
        acc[2][b][t] = fma(w[1][t], c0, fma(w[7][t], a0, acc[2][b][t]));
        acc[3][b][t] = fma(w[0][t], c1, fma(w[2][t], c0, fma(w[6][t], a1, fma(w[8][t], a0, acc[3][b][t]))));
      }
    }
  }

  if (lane >= params.G) { return; }
  for (var cls = 0u; cls < 4u; cls++) {
    let y = 2u * i + cls / 2u;
    for (var t = 0u; t < TM4; t++) {
      for (var c = 0u; c < 4u; c++) {
        let m = m0 + 4u * t + c;
        let base = ((n * params.C + m) * params.H + y) * params.W;
        for (var b = 0u; b < $TBu; b++) {
          let x = 2u * (j0 + b) + cls % 2u;
          if (y < params.H && x < params.W && m < params.C) { dx[base + x] = acc[cls][b][t][c]; }
        }
      }
    }
  }
}
