// Max pooling over [planes, H, W]. Each invocation makes a BH x BW block of outputs (a 3-D grid:
// no integer division, which is slow on CPU drivers) and reads the input region under the block
// once, so overlapping windows share loads (loads dominate on lavapipe). Every output keeps the
// FIRST maximum of its window in row-major order (strictly greater replaces) and records the
// flat index ih * W + iw of its source. Padding counts as -inf: it is skipped. Kernel, stride
// and block are compile-time constants so the loops unroll.
//! KH = 3
//! KW = 3
//! SH = 2
//! SW = 2
//! BH = 2
//! BW = 2
struct Params { H: i32, W: i32, OH: i32, OW: i32, ph: i32, pw: i32, planeBase: u32, _p0: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;

const RH = ($BH - 1) * $SH + $KH;
const RW = ($BW - 1) * $SW + $KW;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let ow0 = i32(gid.x) * $BW;
  let oh0 = i32(gid.y) * $BH;
  if (ow0 >= params.OW || oh0 >= params.OH) { return; }
  let plane = gid.z + params.planeBase;
  let h0 = oh0 * $SH - params.ph;
  let w0 = ow0 * $SW - params.pw;
  let base = plane * u32(params.H * params.W);
  var best: array<f32, $BH * $BW>;
  var at: array<i32, $BH * $BW>;
  for (var o = 0; o < $BH * $BW; o++) { at[o] = -1; }
  for (var r = 0; r < RH; r++) {
    let ih = h0 + r;
    let rowOk = ih >= 0 && ih < params.H;
    for (var c = 0; c < RW; c++) {
      let iw = w0 + c;
      let ok = rowOk && iw >= 0 && iw < params.W;
      let i = ih * params.W + iw;
      let v = x[base + u32(select(0, i, ok))];
      for (var a = 0; a < $BH; a++) {
        for (var b = 0; b < $BW; b++) {
          let inside = r >= a * $SH && r < a * $SH + $KH && c >= b * $SW && c < b * $SW + $KW;
          let o = a * $BW + b;
          let take = ok && inside && (at[o] < 0 || v > best[o]);
          best[o] = select(best[o], v, take);
          at[o] = select(at[o], i, take);
        }
      }
    }
  }
  for (var a = 0; a < $BH; a++) {
    for (var b = 0; b < $BW; b++) {
      let oh = oh0 + a;
      let ow = ow0 + b;
      if (oh < params.OH && ow < params.OW) {
        let o = (plane * u32(params.OH) + u32(oh)) * u32(params.OW) + u32(ow);
        y[o] = best[a * $BW + b];
        idx[o] = at[a * $BW + b];
      }
    }
  }
}
