// Explicit im2col for convolutions on tiny maps, with the batch folded into the columns:
//   col[k, j] with k = (c * KH + kh) * KW + kw and j = n * P + p (P = OH * OW output pixels,
//   NP4 columns: N * P rounded up to a multiple of 4, the rest zero)
// COL2IM = false: col[k, j] = x[n, c, oh * SH - PH + kh * DH, ow * SW - PW + kw * DW] (zero
// outside the image). COL2IM = true, its transpose: dst[n, c, y, x] = the sum of col[k, j] over
// the taps that read (y, x), in a fixed order (no atomics). With a 1x1 stride-1 geometry the
// pair is the relayout [N, M, P] <-> [M, NP4].
// One invocation per element; the integer divisions are per lane on CPU drivers, but these
// tensors are small (the path runs only where OH * OW is at most a few pixels).
//! COL2IM = false
struct Params {
  N: u32, C: u32, H: u32, W: u32,
  KH: u32, KW: u32, SH: u32, SW: u32,
  PH: u32, PW: u32, DH: u32, DW: u32,
  OH: u32, OW: u32, NP4: u32, total: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= params.total) { return; }
  let P = params.OH * params.OW;
  let KHW = params.KH * params.KW;
  if (!$COL2IM) {
    let k = idx / params.NP4;
    let j = idx % params.NP4;
    var v = 0.0;
    if (j < params.N * P) {
      let n = j / P;
      let p = j % P;
      let c = k / KHW;
      let kh = (k % KHW) / params.KW;
      let kw = k % params.KW;
      let y = i32((p / params.OW) * params.SH + kh * params.DH) - i32(params.PH);
      let x = i32((p % params.OW) * params.SW + kw * params.DW) - i32(params.PW);
      if (y >= 0 && y < i32(params.H) && x >= 0 && x < i32(params.W)) {
        v = src[((n * params.C + c) * params.H + u32(y)) * params.W + u32(x)];
      }
    }
    dst[idx] = v;
  } else {
    let x = idx % params.W;
    let y = (idx / params.W) % params.H;
    let c = (idx / (params.W * params.H)) % params.C;
    let n = idx / (params.W * params.H * params.C);
    var s = 0.0;
    for (var kh = 0u; kh < params.KH; kh++) {
      let ty = i32(y + params.PH) - i32(kh * params.DH);
      if (ty < 0 || u32(ty) % params.SH != 0u || u32(ty) / params.SH >= params.OH) { continue; }
      for (var kw = 0u; kw < params.KW; kw++) {
        let tx = i32(x + params.PW) - i32(kw * params.DW);
        if (tx < 0 || u32(tx) % params.SW != 0u || u32(tx) / params.SW >= params.OW) { continue; }
        let p = (u32(ty) / params.SH) * params.OW + u32(tx) / params.SW;
        s += src[((c * params.KH + kh) * params.KW + kw) * params.NP4 + n * P + p];
      }
    }
    dst[idx] = s;
  }
}
