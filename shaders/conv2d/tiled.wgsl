// Workgroup-tiled implicit-GEMM convolution for GPUs (NCHW, no im2col buffer), one core for all
// three products:
//   forward / input gradient (WGRAD = false):  Y[m, j] = sum_k A[k, m] * B[k, j]
//     j = (n, r, q) an output pixel of this dispatch's grid, k = (t, cin) a tap and a channel of
//     the source S (x forward, dy for one residue class of the input gradient),
//     B[k, j] = S[n, cin, SRS*r + TAPS[t].x, SCS*q + TAPS[t].y] (0 outside S),
//     A = the weight re-laid [taps, CINP, MP] (relayout.wgsl), row TAPS[t].z*CINP + cin;
//     Y[n, m, OR0 + ORS*r, OC0 + OCS*q] (+ bias[m]).
//   weight gradient (WGRAD = true):  P[z, o, col] = sum_{k in chunk z} dy[o, k] * B[k, col]
//     k = (n, p) an output pixel (p padded per image to whole slices), col = (c, t) a channel and
//     tap of the weight, B[k, col] = x[n, c, SRS*oh + TAPS[t].x, SCS*ow + TAPS[t].y]; the chunks'
//     partials are summed in a fixed order by a second pass (deterministic, no atomics).
// A workgroup of 16 x 16 invocations owns a BM x BN block of the output (BM = 16*TM rows of m,
// BN = 16*TN columns), each invocation a TM x TN register tile (rows ty*4 + 64*i, columns
// tx*4 + 64*i: vec4 reads of workgroup memory, no bank conflicts across a row of invocations).
// K is streamed in slices of BK through two workgroup buffers: the next slice's global loads are
// issued before the current slice's FMAs and stored into the other buffer after them, so one
// barrier per slice suffices. Global loads run along the contiguous axis: forward B and all of
// the weight gradient's operands along pixels, the forward A (the re-laid weight) along m as
// vec4s; the weight gradient reads dy as vec4s where the pixel count divides by 4 (DYV).
// K order: forward (t, cin) with channels padded to CINP (a multiple of BK, or a power of two
// CPS < BK for few channels, the taps then padded to whole slices), so a slice's tap, and with
// it the bounds check's row and column, is one per row of the slice.
// Checks compiled out where shapes divide: CHECK_N (columns past the end), CHECK_M (rows of m
// past M), PAD (taps outside the source), KPAD (padded channels/taps, or pixels past an image's end).
// Mixed precision (engine/autocast.ts): ST is S's element type, AT A4's (and A1's in the weight
// gradient, where A1 is dy), f16 for f16 operands; loads convert to f32, so the workgroup tiles,
// the FMAs and Y stay f32. UNSCALE: the gradient operand (dy) was cast scaled by gradScale(amax)
// (engine/ops/grad-scale.ts), and each result is multiplied by the exact power of two
// gradUnscale(amax) before it is stored or added: once per output element, and before the
// weight gradient's chunk partials are summed, which multiplying by a power of two commutes with.
//! TM = 8
//! TN = 8
//! BK = 8
//! CPS = 8
//! WGRAD = false
//! CHECK_N = true
//! CHECK_M = true
//! PAD = true
//! KPAD = true
//! DYV = false
// Weight gradient of one chunk: add to what Y holds (the weight's .grad).
//! ACCUMULATE = false
//! ST = f32
//! AT = f32
// A1's element type: the bias's (f32) forward, AT in the weight gradient.
//! A1T = f32
//! UNSCALE = false
//! AMAX_BINDING = 5
struct Params {
  // Source planes and the pixel grid the columns (forward) or K (weight gradient) walk.
  SC: u32, SH: u32, SW: u32, NCOL: u32,
  NR: u32, NQ: u32, SRS: u32, SCS: u32,
  M: u32, MP4: u32, OH: u32, OW: u32,
  ORS: u32, OR0: u32, OCS: u32, OC0: u32,
  CINP: u32, NT: u32, KT: u32, HAS_BIAS: u32,
  // Weight gradient: slices per image, per chunk and in all; pixels per image of the grid.
  SPI: u32, KSC: u32, KST: u32, NPIX: u32,
  // Per tap: source row offset, column offset, A row block (forward).
  TAPS: array<vec4<i32>, 64>,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> S: array<$ST>;
@group(0) @binding(2) var<storage, read> A4: array<vec4<$AT>>;
// The weight gradient's A (dy) as scalars where its rows are no multiple of 4 long; forward: the bias.
@group(0) @binding(3) var<storage, read> A1: array<$A1T>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
//#include "lib/out_scale.wgsl"

const BN = 16u * $TNu;
const BM4 = 4u * $TMu;
const BN4 = 4u * $TNu;
const TM4 = $TMu / 4u;
const TN4 = $TNu / 4u;
// vec4s of A and scalars of B each invocation fetches per slice (A_ALL: every invocation
// fetches AV; else, the 4x8 tile's 128 vec4s of A, only the first half fetches one).
const AV = max(1u, $BKu * BM4 / 256u);
const BV = $BKu * BN / 256u;
const A_ALL = $BKu * BM4 == 256u * AV;

var<workgroup> As: array<vec4<f32>, 2u * $BKu * BM4>;
var<workgroup> Bs: array<vec4<f32>, 2u * $BKu * BN4>;

alias ARegs = array<vec4<f32>, AV>;
alias BRegs = array<f32, BV>;
alias Acc = array<array<vec4<f32>, TN4>, $TMu>;

// Per invocation, fixed for the whole K loop: where its B loads read.
struct BSlot { base: u32, row: i32, col: i32, ok: bool }

fn tapOk(row: i32, col: i32) -> bool {
  return row >= 0 && row < i32(params.SH) && col >= 0 && col < i32(params.SW);
}

// Forward: the tap and channel of row kr of slice s (K order (t, cin), channels padded to CINP).
fn tapChannel(s: u32, kr: u32) -> vec2<u32> {
  if ($CPSu == $BKu) {
    let spt = params.CINP / $BKu;
    let t = s / spt;
    return vec2<u32>(t, (s - t * spt) * $BKu + kr);
  }
  return vec2<u32>(s * ($BKu / $CPSu) + kr / $CPSu, kr % $CPSu);
}

fn fetchA(s: u32, tid: u32, m0: u32) -> ARegs {
  var a: ARegs;
  for (var i = 0u; i < AV; i++) {
    let idx = tid + 256u * i;
    if (!A_ALL && idx >= $BKu * BM4) { break; }
    if ($WGRAD) {
      // dy[n, o, p0 + 4*kq .. +3]: rows o of the tile, 4 pixels per vec4.
      let o = m0 + idx / ($BKu / 4u);
      let p = (s % params.SPI) * $BKu + 4u * (idx % ($BKu / 4u));
      let n = s / params.SPI;
      let oc = min(o, params.M - 1u);
      let at = (n * params.M + oc) * params.NPIX + p;
      var v = vec4<f32>(0.0);
      if ($DYV) {
        v = vec4<f32>(A4[at / 4u]);
        if ($KPAD) { v = select(vec4<f32>(0.0), v, p < params.NPIX); }
      } else {
        for (var e = 0u; e < 4u; e++) {
          v[e] = select(0.0, f32(A1[at + e]), p + e < params.NPIX);
        }
      }
      if ($CHECK_M) { v = select(vec4<f32>(0.0), v, o < params.M); }
      a[i] = v;
    } else {
      let kr = idx / BM4;
      let tc = tapChannel(s, kr);
      let row = u32(params.TAPS[tc.x].z) * params.CINP + tc.y;
      a[i] = vec4<f32>(A4[row * params.MP4 + m0 / 4u + idx % BM4]);
    }
  }
  return a;
}

fn fetchB(s: u32, tid: u32, slots: ptr<function, array<BSlot, BV>>) -> BRegs {
  var b: BRegs;
  let plane = params.SH * params.SW;
  if ($WGRAD) {
    // One pixel per invocation per slice, BV weight columns.
    let n = s / params.SPI;
    let p = (s % params.SPI) * $BKu + tid % $BKu;
    let oh = p / params.OW;
    let ow = p - oh * params.OW;
    let r0 = i32(oh * params.SRS);
    let c0 = i32(ow * params.SCS);
    let pixOk = !$KPAD || p < params.NPIX;
    for (var i = 0u; i < BV; i++) {
      let sl = (*slots)[i];
      let row = r0 + sl.row;
      let col = c0 + sl.col;
      var ok = sl.ok && pixOk;
      if ($PAD) { ok = ok && tapOk(row, col); }
      let at = (n * params.SC * plane) + sl.base + u32(max(row, 0)) * params.SW + u32(max(col, 0));
      b[i] = select(0.0, f32(S[at]), ok);
    }
  } else if ($CPSu == $BKu) {
    // One column (output pixel) per invocation, BV channels of the slice's one tap: one bounds
    // check and one address per slice.
    let sl = (*slots)[0];
    let tc = tapChannel(s, tid / BN);
    let tap = params.TAPS[min(tc.x, 63u)];
    let row = sl.row + tap.x;
    let col = sl.col + tap.y;
    var ok = sl.ok;
    if ($PAD) { ok = ok && tapOk(row, col); }
    let at = sl.base + tc.y * plane + u32(max(row, 0)) * params.SW + u32(max(col, 0));
    for (var i = 0u; i < BV; i++) {
      let cin = tc.y + i * (256u / BN);
      var oki = ok;
      if ($KPAD) { oki = oki && cin < params.SC; }
      b[i] = select(0.0, f32(S[at + i * (256u / BN) * plane]), oki);
    }
  } else {
    // Few channels: the rows of a slice span several taps.
    for (var i = 0u; i < BV; i++) {
      let kr = tid / BN + i * (256u / BN);
      let tc = tapChannel(s, kr);
      let sl = (*slots)[0];
      let tap = params.TAPS[min(tc.x, 63u)];
      let row = sl.row + tap.x;
      let col = sl.col + tap.y;
      var ok = sl.ok;
      if ($PAD) { ok = ok && tapOk(row, col); }
      if ($KPAD) { ok = ok && tc.x < params.NT && tc.y < params.SC; }
      let at = sl.base + tc.y * plane + u32(max(row, 0)) * params.SW + u32(max(col, 0));
      b[i] = select(0.0, f32(S[at]), ok);
    }
  }
  return b;
}

// Stores a fetched slice into workgroup buffer buf.
fn storeSlice(buf: u32, tid: u32, a: ARegs, b: BRegs) {
  let aBase = buf * $BKu * BM4;
  for (var i = 0u; i < AV; i++) {
    let idx = tid + 256u * i;
    if (!A_ALL && idx >= $BKu * BM4) { break; }
    if ($WGRAD) {
      // Transposed: 4 pixels (rows k) of one output channel m.
      let m = idx / ($BKu / 4u);
      let k = 4u * (idx % ($BKu / 4u));
      for (var e = 0u; e < 4u; e++) {
        As[aBase + (k + e) * BM4 + m / 4u][m % 4u] = a[i][e];
      }
    } else {
      As[aBase + idx] = a[i];
    }
  }
  let bBase = buf * $BKu * BN4;
  for (var i = 0u; i < BV; i++) {
    var k: u32;
    var j: u32;
    if ($WGRAD) {
      k = tid % $BKu;
      j = tid / $BKu + i * (256u / $BKu);
    } else {
      k = tid / BN + i * (256u / BN);
      j = tid % BN;
    }
    Bs[bBase + k * BN4 + j / 4u][j % 4u] = b[i];
  }
}

// The FMAs of one slice from workgroup buffer buf.
fn multiplySlice(acc: ptr<function, Acc>, buf: u32, tx: u32, ty: u32) {
  for (var k = 0u; k < $BKu; k++) {
    var a: array<vec4<f32>, TM4>;
    var b: array<vec4<f32>, TN4>;
    for (var i = 0u; i < TM4; i++) { a[i] = As[(buf * $BKu + k) * BM4 + 16u * i + ty]; }
    for (var i = 0u; i < TN4; i++) { b[i] = Bs[(buf * $BKu + k) * BN4 + 16u * i + tx]; }
    for (var i = 0u; i < TM4; i++) {
      for (var c = 0u; c < 4u; c++) {
        let av = vec4<f32>(a[i][c]);
        for (var jb = 0u; jb < TN4; jb++) {
          (*acc)[4u * i + c][jb] = fma(av, b[jb], (*acc)[4u * i + c][jb]);
        }
      }
    }
  }
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tx = tid % 16u;
  let ty = tid / 16u;
  let m0 = wid.x * 16u * $TMu;
  let plane = params.SH * params.SW;
  // Columns: forward, output pixels (folded into z beyond 65535 tiles); weight gradient, weight
  // columns (c, t), with z the chunk of K.
  var n0 = (wid.y + wid.z * nwg.y) * BN;
  var s0 = 0u;
  var s1 = params.KT;
  var slots: array<BSlot, BV>;
  if ($WGRAD) {
    n0 = wid.y * BN;
    s0 = wid.z * params.KSC;
    s1 = min(s0 + params.KSC, params.KST);
    for (var i = 0u; i < BV; i++) {
      let col = n0 + tid / $BKu + i * (256u / $BKu);
      let c = col / params.NT;
      let t = col - c * params.NT;
      let tap = params.TAPS[min(t, 63u)];
      slots[i] = BSlot(c * plane, tap.x, tap.y, !$CHECK_N || col < params.NCOL);
    }
  } else {
    let j = n0 + tid % BN;
    let n = j / params.NPIX;
    let rq = j - n * params.NPIX;
    let r = rq / params.NQ;
    let q = rq - r * params.NQ;
    slots[0] = BSlot(n * params.SC * plane, i32(r * params.SRS), i32(q * params.SCS), !$CHECK_N || j < params.NCOL);
  }

  var acc: Acc;
  if (s0 < s1) {
    storeSlice(0u, tid, fetchA(s0, tid, m0), fetchB(s0, tid, &slots));
  }
  workgroupBarrier();
  for (var s = s0; s < s1; s++) {
    let buf = (s - s0) % 2u;
    let more = s + 1u < s1;
    var a: ARegs;
    var b: BRegs;
    // The next slice's global loads are in flight while this slice's FMAs run.
    if (more) {
      a = fetchA(s + 1u, tid, m0);
      b = fetchB(s + 1u, tid, &slots);
    }
    multiplySlice(&acc, buf, tx, ty);
    if (more) { storeSlice(1u - buf, tid, a, b); }
    workgroupBarrier();
  }

  // Output offsets of this invocation's columns.
  var colAt: array<vec4<u32>, TN4>;
  var colOk: array<vec4<bool>, TN4>;
  for (var jb = 0u; jb < TN4; jb++) {
    for (var e = 0u; e < 4u; e++) {
      let j = n0 + 64u * jb + 4u * tx + e;
      colOk[jb][e] = !$CHECK_N || j < params.NCOL;
      if ($WGRAD) {
        colAt[jb][e] = (wid.z * params.M) * params.NCOL + j;
      } else {
        let n = j / params.NPIX;
        let rq = j - n * params.NPIX;
        let r = rq / params.NQ;
        let q = rq - r * params.NQ;
        colAt[jb][e] = ((n * params.M) * params.OH + params.OR0 + params.ORS * r) * params.OW + params.OC0 + params.OCS * q;
      }
    }
  }
  let rowStride = select(params.OH * params.OW, params.NCOL, $WGRAD);
  let unscale = outScale();
  for (var i = 0u; i < TM4; i++) {
    for (var c = 0u; c < 4u; c++) {
      let m = m0 + 64u * i + 4u * ty + c;
      if ($CHECK_M && m >= params.M) { continue; }
      var bv = 0.0;
      if (!$WGRAD && params.HAS_BIAS != 0u) { bv = f32(A1[m]); }
      for (var jb = 0u; jb < TN4; jb++) {
        for (var e = 0u; e < 4u; e++) {
          if (colOk[jb][e]) {
            let at = colAt[jb][e] + m * rowStride;
            var v = acc[4u * i + c][jb][e];
            if ($UNSCALE) { v *= unscale; }
            v += bv;
            if ($ACCUMULATE) { v += Y[at]; }
            Y[at] = v;
          }
        }
      }
    }
  }
}
