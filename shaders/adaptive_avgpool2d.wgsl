// Adaptive average pooling over [planes, H, W] to [planes, OH, OW]: output (oh, ow) averages rows
// [floor(oh * H / OH), ceil((oh + 1) * H / OH)) and likewise columns (PyTorch's rule). One
// invocation per output on a 3-D grid.
struct Params { H: u32, W: u32, OH: u32, OW: u32, planeBase: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let ow = gid.x;
  let oh = gid.y;
  if (ow >= params.OW || oh >= params.OH) { return; }
  let plane = gid.z + params.planeBase;
  let h0 = oh * params.H / params.OH;
  let h1 = ((oh + 1u) * params.H + params.OH - 1u) / params.OH;
  let w0 = ow * params.W / params.OW;
  let w1 = ((ow + 1u) * params.W + params.OW - 1u) / params.OW;
  let base = plane * params.H * params.W;
  var acc = 0.0;
  for (var ih = h0; ih < h1; ih++) {
    for (var iw = w0; iw < w1; iw++) { acc += x[base + ih * params.W + iw]; }
  }
  y[(plane * params.OH + oh) * params.OW + ow] = acc / f32((h1 - h0) * (w1 - w0));
}
