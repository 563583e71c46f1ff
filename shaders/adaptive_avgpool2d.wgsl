// Adaptive average pooling over [planes, H, W] to [planes, OH, OW]: output (oh, ow) averages rows
// [floor(oh * H / OH), ceil((oh + 1) * H / OH)) and likewise columns (PyTorch's rule).
//! WG = 256
struct Params { H: u32, W: u32, OH: u32, OW: u32, total: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * $WGu;
  if (o >= params.total) { return; }
  let ow = o % params.OW;
  let oh = (o / params.OW) % params.OH;
  let plane = o / (params.OW * params.OH);
  let h0 = oh * params.H / params.OH;
  let h1 = ((oh + 1u) * params.H + params.OH - 1u) / params.OH;
  let w0 = ow * params.W / params.OW;
  let w1 = ((ow + 1u) * params.W + params.OW - 1u) / params.OW;
  let base = plane * params.H * params.W;
  var acc = 0.0;
  for (var ih = h0; ih < h1; ih++) {
    for (var iw = w0; iw < w1; iw++) { acc += x[base + ih * params.W + iw]; }
  }
  y[o] = acc / f32((h1 - h0) * (w1 - w0));
}
