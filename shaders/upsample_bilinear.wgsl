// Bilinear resize of [planes, IH, IW] to [planes, OH, OW]. The host computes, per output row and
// per output column, the two source taps and their weights (PyTorch's source-index rule) into
// one table: entry k is [i0, i1, bits(w0), bits(w1)], rows first (OH entries), then columns (OW).
// One invocation per output on a 3-D grid (no integer division).
struct Params { IH: u32, IW: u32, OH: u32, OW: u32, planeBase: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> taps: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let ow = gid.x;
  let oh = gid.y;
  if (ow >= params.OW || oh >= params.OH) { return; }
  let plane = gid.z + params.planeBase;
  let r = 4u * oh;
  let c = 4u * (params.OH + ow);
  let h0 = taps[r];
  let h1 = taps[r + 1u];
  let wh0 = bitcast<f32>(taps[r + 2u]);
  let wh1 = bitcast<f32>(taps[r + 3u]);
  let w0 = taps[c];
  let w1 = taps[c + 1u];
  let ww0 = bitcast<f32>(taps[c + 2u]);
  let ww1 = bitcast<f32>(taps[c + 3u]);
  let base = plane * params.IH * params.IW;
  let row0 = base + h0 * params.IW;
  let row1 = base + h1 * params.IW;
  let top = ww0 * x[row0 + w0] + ww1 * x[row0 + w1];
  let bottom = ww0 * x[row1 + w0] + ww1 * x[row1 + w1];
  y[(plane * params.OH + oh) * params.OW + ow] = wh0 * top + wh1 * bottom;
}
