// Adaptive average pooling backward without atomics: one invocation per INPUT element (3-D grid)
// sums dy / area over the output cells whose window contains it. Along one axis these are the
// cells o in [floor(i * O / I), ceil((i + 1) * O / I)), each checked against the window rule.
struct Params { H: u32, W: u32, OH: u32, OW: u32, planeBase: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

fn start(o: u32, I: u32, O: u32) -> u32 { return o * I / O; }
fn end(o: u32, I: u32, O: u32) -> u32 { return ((o + 1u) * I + O - 1u) / O; }

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let H = params.H;
  let W = params.W;
  let OH = params.OH;
  let OW = params.OW;
  let iw = gid.x;
  let ih = gid.y;
  if (iw >= W || ih >= H) { return; }
  let plane = gid.z + params.planeBase;
  let ow0 = iw * OW / W;
  let ow1 = min(((iw + 1u) * OW + W - 1u) / W, OW);
  let oh1 = min(((ih + 1u) * OH + H - 1u) / H, OH);
  let base = plane * OH * OW;
  var acc = 0.0;
  for (var oh = ih * OH / H; oh < oh1; oh++) {
    let h0 = start(oh, H, OH);
    let h1 = end(oh, H, OH);
    if (ih < h0 || ih >= h1) { continue; }
    for (var ow = ow0; ow < ow1; ow++) {
      let w0 = start(ow, W, OW);
      let w1 = end(ow, W, OW);
      if (iw < w0 || iw >= w1) { continue; }
      acc += dy[base + oh * OW + ow] / f32((h1 - h0) * (w1 - w0));
    }
  }
  dx[(plane * H + ih) * W + iw] = acc;
}
