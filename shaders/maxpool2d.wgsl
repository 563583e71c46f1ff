// Max pooling over [planes, H, W]: one invocation per output element scans its window in
// row-major order and keeps the FIRST maximum (strictly greater replaces), writing the value and
// the flat index ih * W + iw of its source. Padded positions count as -inf, so they are skipped.
//! WG = 256
struct Params {
  H: i32, W: i32, OH: i32, OW: i32,
  kh: i32, kw: i32, sh: i32, sw: i32,
  ph: i32, pw: i32, total: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * $WGu;
  if (o >= params.total) { return; }
  let ow = i32(o % u32(params.OW));
  let oh = i32((o / u32(params.OW)) % u32(params.OH));
  let plane = o / u32(params.OW * params.OH);
  let h0 = oh * params.sh - params.ph;
  let w0 = ow * params.sw - params.pw;
  let hs = max(h0, 0);
  let he = min(h0 + params.kh, params.H);
  let ws = max(w0, 0);
  let we = min(w0 + params.kw, params.W);
  let base = plane * u32(params.H * params.W);
  // The window always holds a real element (padding is at most half the kernel); start there.
  var at = hs * params.W + ws;
  var best = x[base + u32(at)];
  for (var ih = hs; ih < he; ih++) {
    for (var iw = ws; iw < we; iw++) {
      let v = x[base + u32(ih * params.W + iw)];
      if (v > best) {
        best = v;
        at = ih * params.W + iw;
      }
    }
  }
  y[o] = best;
  idx[o] = at;
}
