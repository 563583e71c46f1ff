// Max pooling backward without atomics: one invocation per INPUT element gathers, in a fixed
// order, the gradients of the windows that contain it and whose recorded maximum it is.
//! WG = 256
struct Params {
  H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32,
  ph: i32, pw: i32, total: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// Window starts k * s - p that cover position i: k in [ceil((i + p - kernel + 1) / s), (i + p) / s].
fn firstWindow(i: i32, p: i32, kernel: i32, s: i32) -> i32 {
  let lo = i + p - kernel + 1;
  if (lo <= 0) { return 0; }
  return (lo + s - 1) / s;
}

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.total) { return; }
  let iw = i32(i % u32(params.W));
  let ih = i32((i / u32(params.W)) % u32(params.H));
  let plane = i / u32(params.W * params.H);
  let me = ih * params.W + iw;
  let ohEnd = min((ih + params.ph) / params.sh + 1, params.OH);
  let owEnd = min((iw + params.pw) / params.sw + 1, params.OW);
  let owStart = firstWindow(iw, params.pw, params.kw, params.sw);
  let base = plane * u32(params.OH * params.OW);
  var acc = 0.0;
  for (var oh = firstWindow(ih, params.ph, params.kh, params.sh); oh < ohEnd; oh++) {
    for (var ow = owStart; ow < owEnd; ow++) {
      let o = base + u32(oh * params.OW + ow);
      if (idx[o] == me) { acc += dy[o]; }
    }
  }
  dx[i] = acc;
}
