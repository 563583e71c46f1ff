// Moves image planes between the full grid [planes, H, W] and a packed grid [planes, P4] that
// holds only the pixels a strided 1x1 convolution touches (OH x OW of them, every SH-th row and
// SW-th column), each plane zero-padded to P4 (a multiple of 4) so the packed planes meet the
// subgroup matmul's alignment. GATHER: full -> packed; else packed -> full, with zeros at the
// pixels no output reaches (the input gradient of a strided 1x1 convolution).
// One invocation per row (packed row for GATHER, full row otherwise): integer division is a
// per-lane scalar instruction on CPU drivers, so it is paid per row, not per pixel.
//! GATHER = true
struct Params {
  H: u32, W: u32, OH: u32, OW: u32,
  SH: u32, SW: u32, P4: u32, rows: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= params.rows) { return; }
  let W = params.W;
  let OW = params.OW;
  if ($GATHER) {
    let plane = idx / params.OH;
    let r = idx % params.OH;
    let at = (plane * params.H + r * params.SH) * W;
    let to = plane * params.P4 + r * OW;
    for (var q = 0u; q < OW; q++) { dst[to + q] = src[at + q * params.SW]; }
    // The last row of a plane also zeroes the plane's padding.
    if (r + 1u == params.OH) {
      for (var p = params.OH * OW; p < params.P4; p++) { dst[plane * params.P4 + p] = 0.0; }
    }
  } else {
    let plane = idx / params.H;
    let y = idx % params.H;
    let r = y / params.SH;
    let to = idx * W;
    let at = plane * params.P4 + r * OW;
    let hit = y % params.SH == 0u && r < params.OH;
    var q = 0u;
    var phase = 0u;
    for (var x = 0u; x < W; x++) {
      var v = 0.0;
      if (hit && phase == 0u && q < OW) { v = src[at + q]; }
      dst[to + x] = v;
      phase++;
      if (phase == params.SW) {
        phase = 0u;
        q++;
      }
    }
  }
}
